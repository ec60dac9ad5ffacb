"""dlib's face-recognition ResNet as a Keras 3 model, converted from dlib's file.

The network is `dlib_face_recognition_resnet_model_v1.dat` (Davis King, CC0:
public domain), which ships in the `face-recognition-models` package of the
`preprocess` extra. `build_dlib_resnet` makes the same architecture in Keras,
`load_dlib_resnet` returns it with dlib's weights, converted on first use
(`mgc_tf.models.dlib_format` reads dlib's file) and cached:

  <cache>/<sha256 of the .dat, 16 hex>-r<recipe>/dlib_face_resnet.weights.h5

`<cache>` is `$MGC_TF_FACE_EMBEDDING_CACHE`, else
`$XDG_CACHE_HOME/mgc_tf/face_embedding`, else `~/.cache/mgc_tf/face_embedding`.
A file lock makes concurrent first uses convert once. `python -m
mgc_tf.build_face_embedding` converts ahead of time and prints the path.

The network (dlib's `anet_type`, tools/python/src/face_recognition.cpp):

  input [B, 150, 150, 3] RGB pixel values in [0, 255] (float), normalised as
    dlib does: (pixel - mean) / 256, means (122.782, 117.001, 104.298)
  stem: conv 7x7/32 stride 2 (no padding) -> affine -> relu ->
    max-pool 3x3 stride 2 (no padding)                        [B, 35, 35, 32]
  stage32:  3 residual blocks                                   [B, 35, 35, 32]
  stage64:  a down block + 3 blocks                             [B, 17, 17, 64]
  stage128: a down block + 2 blocks                             [B, 8, 8, 128]
  stage256: a down block + 2 blocks                             [B, 4, 4, 256]
  stage256b: a down block                                       [B, 2, 2, 256]
  pool: global average                                          [B, 256]
  embedding: fully connected, 128 units, no bias, not normalised [B, 128]

A block is conv 3x3 -> affine -> relu -> conv 3x3 -> affine, plus the
shortcut, then relu. "affine" is a per-channel gamma * x + beta (dlib's
inference form of batch normalisation). In a down block the first convolution
has stride 2 and no padding (dlib pads a strided convolution by 0, so TF's
"same" would be wrong), and the shortcut is a 2x2 average pool with stride 2
and no projection; the sum zero-fills the smaller tensor (missing channels,
and the bottom rows / right columns when the pool is larger than the
convolution's output, as at 8 -> 3 vs 4) instead of cropping.

Each stage's output, "stem", "pool" and "embedding" are layers of that name:
`feature_model(model, names)` returns a model with those outputs (for
perceptual or attribute losses).
"""

import hashlib
import os
import tempfile
import threading
from typing import Dict, List, Optional, Sequence

import filelock
import keras
import numpy as np

from mgc_tf.models import dlib_format
from mgc_tf.models import dlib_models

INSTALL_COMMAND = dlib_models.INSTALL_COMMAND
DAT_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"
CACHE_ENV_VAR = "MGC_TF_FACE_EMBEDDING_CACHE"
WEIGHTS_FILENAME = "dlib_face_resnet.weights.h5"
# Bump when the Keras architecture or the conversion changes.
CONVERSION_RECIPE_VERSION = "1"
LOCK_TIMEOUT_S = 600

CHIP_SIZE = 150
EMBEDDING_SIZE = 128
# dlib's input_rgb_image_sized: (pixel - mean) / 256, per RGB channel.
MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_DIVISOR = 256.0

# (feature name, filters, blocks, first block is a down block).
STAGES = (("stage32", 32, 3, False), ("stage64", 64, 4, True),
          ("stage128", 128, 3, True), ("stage256", 256, 3, True),
          ("stage256b", 256, 1, True))
FEATURE_NAMES = (("stem",) + tuple(stage[0] for stage in STAGES) +
                 ("pool", "embedding"))

_convert_lock = threading.Lock()


class FaceEmbeddingDependencyError(ImportError):
  """face-recognition-models (the `preprocess` extra) is not installed."""


class FaceEmbeddingConversionError(RuntimeError):
  """dlib's network file could not be converted; the message says why."""


@keras.saving.register_keras_serializable(package="mgc_tf")
class InputNormalization(keras.layers.Layer):
  """(x - mean) / divisor per channel, as dlib's input layer computes it."""

  def __init__(self, mean: Sequence[float] = MEAN_RGB,
               divisor: float = INPUT_DIVISOR, **kwargs):
    super().__init__(**kwargs)
    self.mean = [float(m) for m in mean]
    self.divisor = float(divisor)

  def call(self, inputs):
    mean = keras.ops.convert_to_tensor(self.mean, dtype=inputs.dtype)
    return (inputs - mean) / keras.ops.cast(self.divisor, inputs.dtype)

  def get_config(self):
    return {**super().get_config(), "mean": self.mean,
            "divisor": self.divisor}


@keras.saving.register_keras_serializable(package="mgc_tf")
class ChannelAffine(keras.layers.Layer):
  """gamma * x + beta per channel (dlib's `affine` layer)."""

  def build(self, input_shape):
    channels = input_shape[-1]
    self.gamma = self.add_weight(name="gamma", shape=(channels,),
                                 initializer="ones")
    self.beta = self.add_weight(name="beta", shape=(channels,),
                                initializer="zeros")

  def call(self, inputs):
    return inputs * self.gamma + self.beta


@keras.saving.register_keras_serializable(package="mgc_tf")
class ZeroFillAdd(keras.layers.Layer):
  """Sums two [B, h, w, c] tensors after zero-filling each to the larger size.

  dlib's `add_prev`: the output has the larger height, width and channel
  count of the two; the smaller tensor is padded with zeros at the bottom,
  right and in the last channels.
  """

  def call(self, inputs):
    first, second = inputs
    shape_a, shape_b = first.shape, second.shape
    target = [max(shape_a[i], shape_b[i]) for i in (1, 2, 3)]

    def fill(x):
      pads = [[0, 0]] + [[0, t - s] for t, s in zip(target, x.shape[1:])]
      if any(p[1] for p in pads):
        x = keras.ops.pad(x, pads)
      return x

    return fill(first) + fill(second)

  def compute_output_shape(self, input_shapes):
    shape_a, shape_b = input_shapes
    return (shape_a[0],) + tuple(max(a, b) for a, b in zip(shape_a[1:],
                                                           shape_b[1:]))


def _conv(x, filters, size, stride, name):
  # dlib pads a stride-1 convolution by size // 2 ("same" here) and a strided
  # one by 0 ("valid").
  padding = "same" if stride == 1 else "valid"
  return keras.layers.Conv2D(filters, size, strides=stride, padding=padding,
                             name=name)(x)


def _block(x, filters: int, down: bool, prefix: str, output_name: str):
  y = _conv(x, filters, 3, 2 if down else 1, f"{prefix}_conv1")
  y = ChannelAffine(name=f"{prefix}_affine1")(y)
  y = keras.layers.ReLU(name=f"{prefix}_relu1")(y)
  y = _conv(y, filters, 3, 1, f"{prefix}_conv2")
  y = ChannelAffine(name=f"{prefix}_affine2")(y)
  shortcut = x
  if down:
    shortcut = keras.layers.AveragePooling2D(2, 2, padding="valid",
                                             name=f"{prefix}_shortcut")(x)
  y = ZeroFillAdd(name=f"{prefix}_add")([y, shortcut])
  return keras.layers.ReLU(name=output_name)(y)


def build_dlib_resnet(name: str = "dlib_face_resnet") -> keras.Model:
  """dlib's face-recognition ResNet architecture, randomly initialised.

  Args:
    name: the model's name.

  Returns:
    A Keras model [B, 150, 150, 3] float32 RGB in [0, 255] -> [B, 128]
    (not normalised). Layers named by `FEATURE_NAMES` output the features.
  """
  inputs = keras.Input((CHIP_SIZE, CHIP_SIZE, 3), name="chip_rgb_255")
  x = InputNormalization(name="normalize")(inputs)
  x = _conv(x, 32, 7, 2, "stem_conv")
  x = ChannelAffine(name="stem_affine")(x)
  x = keras.layers.ReLU(name="stem_relu")(x)
  x = keras.layers.MaxPooling2D(3, 2, padding="valid", name="stem")(x)
  for stage, filters, blocks, down in STAGES:
    for index in range(blocks):
      last = index == blocks - 1
      x = _block(x, filters, down and index == 0, f"{stage}_block{index + 1}",
                 stage if last else f"{stage}_block{index + 1}_out")
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  outputs = keras.layers.Dense(EMBEDDING_SIZE, use_bias=False,
                               name="embedding")(x)
  return keras.Model(inputs, outputs, name=name)


def feature_model(model: keras.Model, names: Sequence[str] = FEATURE_NAMES
                  ) -> keras.Model:
  """A model over the same layers whose outputs are the named features.

  Args:
    model: a model from `build_dlib_resnet` / `load_dlib_resnet`.
    names: features among `FEATURE_NAMES` ("stem" [B, 35, 35, 32],
      "stage32" [B, 35, 35, 32], "stage64" [B, 17, 17, 64], "stage128"
      [B, 8, 8, 128], "stage256" [B, 4, 4, 256], "stage256b" [B, 2, 2, 256],
      "pool" [B, 256], "embedding" [B, 128]).

  Returns:
    A Keras model, same input, returning {name: feature}. It shares the
    weights of `model`.
  """
  unknown = [n for n in names if n not in FEATURE_NAMES]
  if unknown or not names:
    raise ValueError(f"Feature names must be among {FEATURE_NAMES}. "
                     f"Received: names={list(names)}")
  outputs = {n: model.get_layer(n).output for n in names}
  return keras.Model(model.input, outputs, name=f"{model.name}_features")


def _conv_and_affine_names() -> List[str]:
  """The convolution / affine layer names in dlib's forward order."""
  names = ["stem_conv", "stem_affine"]
  for stage, _, blocks, _ in STAGES:
    for index in range(blocks):
      prefix = f"{stage}_block{index + 1}"
      names += [f"{prefix}_conv1", f"{prefix}_affine1", f"{prefix}_conv2",
                f"{prefix}_affine2"]
  return names


def assign_dlib_weights(model: keras.Model,
                        layers: List[dlib_format.DlibLayer]) -> None:
  """Copies the weights read by `dlib_format.read_network` into `model`.

  Checks the file's layer settings (strides, paddings, pools, input means)
  against the Keras architecture as it goes.

  Raises:
    FaceEmbeddingConversionError: a setting or shape differs.
  """
  def fail(message):
    raise FaceEmbeddingConversionError(
        f"dlib's network does not match the Keras architecture: {message}")

  inputs = [l for l in layers if l.kind == "input"]
  if len(inputs) != 1 or inputs[0].fields["rows"] != CHIP_SIZE:
    fail(f"input layer {inputs}")
  if not np.allclose(inputs[0].fields["mean_rgb"], MEAN_RGB, atol=1e-3):
    fail(f"input means {inputs[0].fields['mean_rgb']}")
  weighted = [l for l in layers if l.kind in ("con", "affine")]
  names = _conv_and_affine_names()
  if len(weighted) != len(names):
    fail(f"{len(weighted)} convolution and affine layers, expected "
         f"{len(names)}")
  for name, layer in zip(names, weighted):
    target = model.get_layer(name)
    if layer.kind == "con":
      if not isinstance(target, keras.layers.Conv2D):
        fail(f"{name} is a convolution in dlib's file")
      stride = layer.fields["stride_y"]
      padding = layer.fields["padding_y"]
      expected_padding = layer.fields["rows"] // 2 if stride == 1 else 0
      if (target.strides != (stride, layer.fields["stride_x"]) or
          padding != expected_padding or
          layer.fields["padding_x"] != padding):
        fail(f"{name}: dlib stride {stride}, padding {padding}")
      kernel = np.transpose(layer.arrays["filters"], (2, 3, 1, 0))
      biases = layer.arrays.get("biases")
      if biases is None:
        fail(f"{name} has no biases")
      if tuple(target.kernel.shape) != kernel.shape:
        fail(f"{name}: kernel {kernel.shape} vs {tuple(target.kernel.shape)}")
      target.set_weights([kernel, biases])
    else:
      if not isinstance(target, ChannelAffine):
        fail(f"{name} is an affine layer in dlib's file")
      if layer.fields["mode"] != 0:
        fail(f"{name}: affine mode {layer.fields['mode']} (not per channel)")
      target.set_weights([layer.arrays["gamma"], layer.arrays["beta"]])
  pools = [l for l in layers if l.kind in ("max_pool", "avg_pool")]
  for pool in pools:
    f = pool.fields
    if f["rows"] and (f["padding_y"], f["padding_x"]) != (0, 0):
      fail(f"a padded pool {f}")
  fcs = [l for l in layers if l.kind == "fc"]
  if len(fcs) != 1 or "biases" in fcs[0].arrays:
    fail("expected one fully connected layer without bias")
  model.get_layer("embedding").set_weights([fcs[0].arrays["weights"]])


def find_dat_path() -> str:
  """Path of dlib's network file inside `face_recognition_models`.

  Raises:
    FaceEmbeddingDependencyError: package or file missing.
  """
  return dlib_models.model_file(DAT_FILENAME,
                                "dlib's face-recognition network",
                                FaceEmbeddingDependencyError)


def cache_root() -> str:
  root = os.environ.get(CACHE_ENV_VAR)
  if not root:
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    root = os.path.join(xdg, "mgc_tf", "face_embedding")
  return root


def _file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def weights_path(dat_path: Optional[str] = None) -> str:
  """Where the converted weights of `dat_path` live (or will)."""
  dat_path = dat_path or find_dat_path()
  key = f"{_file_sha256(dat_path)[:16]}-r{CONVERSION_RECIPE_VERSION}"
  return os.path.join(cache_root(), key, WEIGHTS_FILENAME)


def convert(dat_path: Optional[str] = None, force: bool = False) -> str:
  """Converts dlib's network file into cached Keras weights; returns the path.

  Safe to call from many processes at once: a file lock serialises the
  conversions and the weights are written under a temporary name and renamed
  into place.

  Args:
    dat_path: dlib's `.dat` file; default: the one in face-recognition-models.
    force: convert again even if the cache holds the weights.

  Raises:
    FaceEmbeddingDependencyError: face-recognition-models is not installed.
    FaceEmbeddingConversionError: the file cannot be read or converted.
  """
  dat_path = dat_path or find_dat_path()
  output = weights_path(dat_path)
  if os.path.exists(output) and not force:
    return output
  out_dir = os.path.dirname(output)
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    raise FaceEmbeddingConversionError(
        f"Cannot create the face-embedding cache folder {out_dir}: {e}. Set "
        f"${CACHE_ENV_VAR} to a writable folder.") from e
  lock = filelock.FileLock(os.path.join(out_dir, ".convert.lock"),
                           timeout=LOCK_TIMEOUT_S)
  try:
    with _convert_lock, lock:
      if os.path.exists(output) and not force:
        return output  # Another process converted it while we waited.
      try:
        _, layers = dlib_format.read_network_file(dat_path)
      except dlib_format.DlibFormatError as e:
        raise FaceEmbeddingConversionError(
            f"{dat_path} is not dlib's face-recognition ResNet: {e}") from e
      model = build_dlib_resnet()
      assign_dlib_weights(model, layers)
      fd, tmp_output = tempfile.mkstemp(suffix=".weights.h5", dir=out_dir)
      os.close(fd)
      try:
        model.save_weights(tmp_output, overwrite=True)
        os.replace(tmp_output, output)
      finally:
        if os.path.exists(tmp_output):
          os.remove(tmp_output)
  except filelock.Timeout as e:
    raise FaceEmbeddingConversionError(
        f"Waited {LOCK_TIMEOUT_S} s for another process converting the "
        f"face-embedding network (lock {lock.lock_file}). If none is running, "
        "delete the lock file and retry.") from e
  return output


def load_dlib_resnet(dat_path: Optional[str] = None) -> keras.Model:
  """dlib's face-recognition ResNet with its weights, frozen.

  Converts and caches the weights on first use (see `convert`).

  Args:
    dat_path: dlib's `.dat` file; default: the one in face-recognition-models.

  Returns:
    The model of `build_dlib_resnet` with dlib's weights, non-trainable:
    [B, 150, 150, 3] RGB in [0, 255] (a chip as `dlib.get_face_chip` cuts
    it, as float) -> [B, 128], equal to dlib's `compute_face_descriptor`.
  """
  path = convert(dat_path)
  model = build_dlib_resnet()
  model.load_weights(path)
  model.trainable = False
  return model


def feature_names() -> Dict[str, str]:
  """{feature name: description with shape} for documentation and help."""
  return {
      "stem": "[B, 35, 35, 32] after the 7x7 conv, affine, relu, max-pool",
      "stage32": "[B, 35, 35, 32] after 3 blocks of 32",
      "stage64": "[B, 17, 17, 64] after a down block and 3 blocks of 64",
      "stage128": "[B, 8, 8, 128] after a down block and 2 blocks of 128",
      "stage256": "[B, 4, 4, 256] after a down block and 2 blocks of 256",
      "stage256b": "[B, 2, 2, 256] after the last down block",
      "pool": "[B, 256] global average pool",
      "embedding": "[B, 128] the descriptor (not normalised)",
  }
