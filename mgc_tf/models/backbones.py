"""Image encoders: [B, S, S, 3] images in [0, 1] -> [B, F] pooled features.

Three backbones:
  resnet50      keras.applications.ResNet50 (the paper's encoder), F = 2048,
                ImageNet weights through Keras' own download and cache.
  resnet18      our own ResNet-18 (basic blocks [2, 2, 2, 2]), F = 512, for
                CPU runs; Keras ships no ImageNet weights for it.
  mobilenet_v2  keras.applications.MobileNetV2 (alpha 1.0), F = 1280,
                ImageNet weights through Keras' download and cache.

Every backbone takes RGB in [0, 1]: the conversion to the range its weights
were trained with is the first layer of the model (`ImagePreprocessing`), so an
exported model needs no preprocessing outside it.

Weights (`weights=`): "none" (random initialisation), "imagenet" (Keras'
download into `$KERAS_HOME/models`, default `~/.keras/models`; a failed
download raises `BackboneWeightsError` saying which file to place where), or
the path of a Keras 3 `.weights.h5` file saved from a backbone of the same
kind or from a whole reconstructor (its backbone part is loaded).
"""

import os
import tempfile
import warnings
from typing import Dict, Optional, Tuple

from absl import logging
import h5py
import keras

BACKBONES = ("resnet50", "resnet18", "mobilenet_v2")
#: Width of each backbone's pooled feature vector (a head's input).
FEATURE_DIMS = {"resnet50": 2048, "resnet18": 512, "mobilenet_v2": 1280}
MIN_IMAGE_SIZE = 32  # Keras applications refuse smaller inputs.

# Where keras.applications (Keras 3) fetches the include_top=False ImageNet
# weights; mirrored here so a failed download can say what to fetch by hand.
_KERAS_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/")
_MOBILENET_V2_WEIGHT_SIZES = (96, 128, 160, 192, 224)

# How each backbone expects its input (the ImageNet training convention of
# its weights; ResNet-18 follows torchvision, where ResNet-18 weights exist).
_PREPROCESSING_MODE = {
    "resnet50": "caffe",
    "resnet18": "torch",
    "mobilenet_v2": "tf",
}
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # on [0, 255] BGR
_TORCH_RGB_MEAN = (0.485, 0.456, 0.406)  # on [0, 1] RGB
_TORCH_RGB_STD = (0.229, 0.224, 0.225)


class BackboneWeightsError(RuntimeError):
  """Backbone weights could not be fetched or do not fit the backbone."""


@keras.saving.register_keras_serializable(package="mgc_tf")
class ImagePreprocessing(keras.layers.Layer):
  """RGB in [0, 1] -> the input convention of a backbone's weights.

  Modes (those of `keras.applications.imagenet_utils.preprocess_input`, but
  starting from [0, 1] instead of [0, 255]):
    caffe: BGR, 255 x, minus the ImageNet mean (ResNet50).
    tf:    2 x - 1, in [-1, 1] (MobileNetV2).
    torch: (x - ImageNet mean) / ImageNet std (ResNet-18).

  Computes in float32 (default dtype) even under a mixed-precision policy: the
  mean subtraction on 255-scaled values would lose 0.1 grey levels in float16.

  Args:
    mode: "caffe", "tf" or "torch".
  """

  MODES = ("caffe", "tf", "torch")

  def __init__(self, mode: str, **kwargs):
    kwargs.setdefault("dtype", "float32")
    super().__init__(**kwargs)
    if mode not in self.MODES:
      raise ValueError(f"Unknown preprocessing mode {mode!r}; "
                       f"valid: {', '.join(self.MODES)}.")
    self.mode = mode

  def call(self, images):
    """[..., 3] RGB in [0, 1] -> [..., 3] in the backbone's convention."""
    ops = keras.ops
    if self.mode == "caffe":
      bgr = ops.flip(images, axis=-1) * 255.0
      return bgr - ops.convert_to_tensor(_CAFFE_BGR_MEAN, self.compute_dtype)
    if self.mode == "tf":
      return images * 2.0 - 1.0
    mean = ops.convert_to_tensor(_TORCH_RGB_MEAN, self.compute_dtype)
    std = ops.convert_to_tensor(_TORCH_RGB_STD, self.compute_dtype)
    return (images - mean) / std

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "mode": self.mode}


def check_backbone_args(name: str, image_size: int) -> None:
  """Raises ValueError for an unknown backbone or an unusable image size."""
  if name not in BACKBONES:
    raise ValueError(f"Unknown backbone {name!r}; valid choices: "
                     f"{', '.join(BACKBONES)}.")
  if (isinstance(image_size, bool) or not isinstance(image_size, int) or
      image_size < MIN_IMAGE_SIZE):
    raise ValueError(f"image_size must be an integer >= {MIN_IMAGE_SIZE} "
                     f"(the backbones downsample 32 x); got {image_size!r}.")


def keras_cache_dir() -> str:
  """The folder keras.utils.get_file downloads applications' weights into.

  `$KERAS_HOME/models` if KERAS_HOME is set, else `~/.keras/models`; Keras
  falls back to `/tmp/.keras/models` when the base folder is not writable.
  """
  base = os.environ.get("KERAS_HOME") or os.path.join(
      os.path.expanduser("~"), ".keras")
  if not os.access(base, os.W_OK):  # the same test keras.utils.get_file makes
    base = os.path.join(
        "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
  return os.path.join(base, "models")


def imagenet_weights_file(name: str, image_size: int) -> Tuple[str, str]:
  """(file name, URL) of the ImageNet weights Keras fetches for a backbone.

  Raises:
    ValueError: for resnet18, which has no ImageNet weights in Keras.
  """
  if name == "resnet50":
    file_name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    return file_name, f"{_KERAS_WEIGHTS_URL}resnet/{file_name}"
  if name == "mobilenet_v2":
    weight_size = (image_size if image_size in _MOBILENET_V2_WEIGHT_SIZES
                   else 224)
    file_name = ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_"
                 f"{weight_size}_no_top.h5")
    return file_name, f"{_KERAS_WEIGHTS_URL}mobilenet_v2/{file_name}"
  raise ValueError(
      f"Keras has no ImageNet weights for {name!r}. Use "
      "--backbone_weights=PATH (a .weights.h5 file saved from a resnet18 "
      "backbone or reconstructor), --backbone_weights=none (train from "
      "scratch), or a backbone with ImageNet weights: resnet50 or "
      "mobilenet_v2.")


def _imagenet_application(name: str, image_size: int) -> keras.Model:
  """keras.applications network with ImageNet weights (downloads if needed).

  Raises:
    BackboneWeightsError: the weights could not be downloaded or loaded.
  """
  file_name, url = imagenet_weights_file(name, image_size)
  input_shape = (image_size, image_size, 3)
  try:
    if name == "resnet50":
      return keras.applications.ResNet50(
          include_top=False, weights="imagenet", input_shape=input_shape,
          pooling="avg")
    if image_size not in _MOBILENET_V2_WEIGHT_SIZES:
      # Keras warns and loads the 224 weights; they fit any size (the network
      # is fully convolutional) but were trained at 224. Log it plainly instead.
      logging.info(
          "MobileNetV2 ImageNet weights exist for sizes %s; using those "
          "trained at 224 for %d x %d inputs.", _MOBILENET_V2_WEIGHT_SIZES,
          image_size, image_size)
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", message=".*input_shape.*")
      return keras.applications.MobileNetV2(
          include_top=False, weights="imagenet", input_shape=input_shape,
          pooling="avg")
  except Exception as error:  # pylint: disable=broad-except
    # Keras raises a bare Exception("URL fetch failure on ...") without a
    # network, ValueError for a corrupt cached file: both mean "get the file".
    cache_dir = keras_cache_dir()
    raise BackboneWeightsError(
        f"Could not get the ImageNet weights of {name}: {error}\n"
        f"Keras downloads {file_name} from {url} into {cache_dir}. Without "
        f"network access, download that file elsewhere and place it in "
        f"{cache_dir} (set KERAS_HOME to use <KERAS_HOME>/models instead), "
        "or use --backbone_weights=none (random initialisation) or "
        "--backbone_weights=PATH (a .weights.h5 file saved from this "
        "backbone or a reconstructor).") from error


def _application(name: str, image_size: int) -> keras.Model:
  """Randomly initialised keras.applications network, avg-pooled."""
  input_shape = (image_size, image_size, 3)
  if name == "resnet50":
    return keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=input_shape,
        pooling="avg")
  return keras.applications.MobileNetV2(
      include_top=False, weights=None, input_shape=input_shape, pooling="avg")


def _conv_bn(x, filters, kernel_size, stride, name, relu=True):
  """Conv (no bias, torch-style explicit padding) + BN (+ ReLU)."""
  if stride > 1 and kernel_size > 1:
    # Symmetric padding as in torchvision; "same" pads only bottom/right for
    # even sizes, which would shift features by half a pixel per stage.
    x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    padding = "valid"
  else:
    padding = "same"
  x = keras.layers.Conv2D(filters, kernel_size, strides=stride,
                          padding=padding, use_bias=False,
                          name=f"{name}_conv")(x)
  x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9,
                                      name=f"{name}_bn")(x)
  if relu:
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
  return x


def _basic_block(x, filters, stride, name):
  """ResNet basic block: two 3x3 convs plus a (projected) shortcut."""
  if stride != 1 or x.shape[-1] != filters:
    shortcut = _conv_bn(x, filters, 1, stride, f"{name}_0", relu=False)
  else:
    shortcut = x
  y = _conv_bn(x, filters, 3, stride, f"{name}_1")
  y = _conv_bn(y, filters, 3, 1, f"{name}_2", relu=False)
  y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
  return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet18(image_size: int, name: str = "resnet18") -> keras.Model:
  """ResNet-18 (He et al. 2016, basic blocks [2, 2, 2, 2]) without its head.

  Layout as torchvision's resnet18 (7x7/2 stem, 3x3/2 max pool, projection
  shortcuts where the shape changes, BN epsilon 1e-5 and momentum 0.9).
  Convolutions keep Keras' glorot_uniform initialiser, as
  keras.applications.ResNet50 does: with BN still at its initial moving
  statistics (inference mode), He initialisation doubles the activation
  variance in every residual block (features of rms ~50 at 224 px), glorot
  keeps them O(1); in training mode BN normalises either way.

  Input: [B, S, S, 3] already preprocessed; output: [B, 512]
  global-average-pooled features.
  """
  inputs = keras.Input((image_size, image_size, 3), name=f"{name}_input")
  x = _conv_bn(inputs, 64, 7, 2, "conv1")
  x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
  x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
  for stage, filters in enumerate((64, 128, 256, 512)):
    for block in range(2):
      stride = 2 if stage > 0 and block == 0 else 1
      x = _basic_block(x, filters, stride, f"conv{stage + 2}_block{block + 1}")
  features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
  return keras.Model(inputs, features, name=name)


def _weights_inventory(path: str) -> Dict[str, Tuple[int, ...]]:
  """Dataset path -> shape for every array in an HDF5 file."""
  inventory = {}
  with h5py.File(path, "r") as f:
    def visit(name, item):
      if isinstance(item, h5py.Dataset):
        inventory[name] = tuple(item.shape)
    f.visititems(visit)
  return inventory


def _find_backbone_group(inventory: Dict[str, Tuple[int, ...]],
                         expected: Dict[str, Tuple[int, ...]]
                         ) -> Optional[str]:
  """The group prefix ("" = the root) under which the file holds exactly the
  expected arrays with the expected shapes, or None."""
  anchor = min(expected)
  for path in inventory:
    if path != anchor and not path.endswith("/" + anchor):
      continue
    prefix = path[:len(path) - len(anchor)]
    subtree = {p[len(prefix):]: s for p, s in inventory.items()
               if p.startswith(prefix)}
    if subtree == expected:
      return prefix
  return None


def _describe_mismatch(inventory, expected, limit=3) -> str:
  """A few lines saying how a weights file differs from the backbone."""
  missing = sorted(set(expected) - set(inventory))
  unexpected = sorted(set(inventory) - set(expected))
  reshaped = sorted(p for p in set(expected) & set(inventory)
                    if expected[p] != inventory[p])
  lines = [f"the file holds {len(inventory)} arrays, the backbone has "
           f"{len(expected)}"]
  if reshaped:
    lines.append("shape differs: " + "; ".join(
        f"{p} file {inventory[p]} vs backbone {expected[p]}"
        for p in reshaped[:limit]))
  if missing:
    lines.append(f"missing from the file ({len(missing)}): "
                 + ", ".join(missing[:limit]))
  if unexpected:
    lines.append(f"not in the backbone ({len(unexpected)}): "
                 + ", ".join(unexpected[:limit]))
  return "\n  ".join(lines)


def load_backbone_weights(backbone: keras.Model, path: str) -> None:
  """Loads a Keras 3 `.weights.h5` file into `backbone`.

  The file may come from `backbone.save_weights` of the same kind of backbone
  or from a whole reconstructor's `save_weights` (the backbone's part is
  found by matching array names and shapes; the head is ignored).

  Raises:
    BackboneWeightsError: missing file, wrong format, or no part of the file
      matches the backbone (the message names the path and the differences).
  """
  if not path.endswith(".weights.h5"):
    raise BackboneWeightsError(
        f"Backbone weights {path!r}: expected a Keras 3 '.weights.h5' file "
        "(model.save_weights). For the ImageNet files of keras.applications "
        f"place them in {keras_cache_dir()} and use "
        "--backbone_weights=imagenet.")
  if not os.path.isfile(path):
    raise BackboneWeightsError(f"Backbone weights file not found: {path}")
  try:
    inventory = _weights_inventory(path)
  except OSError as error:
    raise BackboneWeightsError(
        f"Backbone weights {path} is not a readable HDF5 file: {error}"
    ) from error
  with tempfile.TemporaryDirectory() as tmp:
    reference = os.path.join(tmp, "reference.weights.h5")
    backbone.save_weights(reference)
    expected = _weights_inventory(reference)
    prefix = _find_backbone_group(inventory, expected)
    if prefix is None:
      raise BackboneWeightsError(
          f"Backbone weights {path} do not fit backbone {backbone.name!r} "
          "(saved from another backbone?):\n  "
          + _describe_mismatch(inventory, expected))
    if not prefix:
      backbone.load_weights(path)
      return
    # The backbone is nested in a bigger model: copy its group to the root of
    # a file of its own, the layout backbone.save_weights writes.
    part = os.path.join(tmp, "backbone.weights.h5")
    with h5py.File(path, "r") as source, h5py.File(part, "w") as target:
      group = source[prefix.rstrip("/")]
      for key in group:
        source.copy(group[key], target, name=key)
    backbone.load_weights(part)


def build_backbone(name: str, image_size: int,
                   weights: Optional[str] = "none") -> keras.Model:
  """Builds a backbone: [B, S, S, 3] RGB in [0, 1] -> [B, F] features.

  Args:
    name: one of BACKBONES.
    image_size: S, the square input side in pixels (>= 32).
    weights: "none" (or None), "imagenet", or a `.weights.h5` path.

  Returns:
    A functional keras.Model named f"{name}_backbone": `ImagePreprocessing`,
    then the network, then global average pooling. F = 2048 (resnet50),
    512 (resnet18), 1280 (mobilenet_v2).

  Raises:
    ValueError: unknown name, bad size, or "imagenet" for resnet18.
    BackboneWeightsError: ImageNet download failed, or a weights file that
      is missing or does not fit.
  """
  check_backbone_args(name, image_size)
  weights = "none" if weights is None else str(weights)
  use_imagenet = weights.lower() == "imagenet"
  if name == "resnet18":
    if use_imagenet:
      imagenet_weights_file(name, image_size)  # raises the ValueError
    network = resnet18(image_size)
  elif use_imagenet:
    network = _imagenet_application(name, image_size)
  else:
    network = _application(name, image_size)
  images = keras.Input((image_size, image_size, 3), name="image")
  preprocessed = ImagePreprocessing(_PREPROCESSING_MODE[name],
                                    name="preprocess")(images)
  backbone = keras.Model(images, network(preprocessed),
                         name=f"{name}_backbone")
  if not use_imagenet and weights.lower() != "none":
    load_backbone_weights(backbone, weights)
  return backbone
