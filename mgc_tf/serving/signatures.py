"""The serving graph: a tf.Module whose signatures TF Serving calls.

    module = ReconstructionModule(restored.model, restored.decoder.face_model)
    tf.saved_model.save(module, path, signatures=module.signatures())

The graph holds the Keras reconstructor and the pure-TF face decoding
(`FaceDecoder.decode`: shape, pose, shading, projection) and nothing else: no
rasterizer op, so stock TF Serving, or `tf.saved_model.load` in a process that
never imports mgc_tf, runs it.

Signatures (names shared with `mgc_tf.inference.reconstructor`; B = batch, S =
the training crop side, H = the side of the crop given, K = coefficients,
V = vertices):

  serving_default   image_bytes string [B] (JPEG/PNG of square aligned crops,
                    any side H, normally 224)
                    -> coefficients [B, K], pose [B, 6], landmarks_2d
                       [B, 68, 2] (pixels of each input crop),
                       landmarks_3d [B, 68, 3] (camera mm)
  predict_images    images float32 [B, H, H, 3] RGB in [0, 1] -> the same four
  predict_vertices  images float32 [B, H, H, 3] -> vertices [B, V, 3] (camera
                    mm), colors [B, V, 3] (shaded, clipped to [0, 1])
  predict_depth     (models with a depth output, --method=depthnet)
                    images float32 [B, H, H, 3] -> depth [B, S, S, 1] camera
                    z in mm (0 off the face), suitability [B, S, S, 1],
                    intrinsics [B, 3, 3] (K of the S crop)

Inputs of another side than S are resized to S in-graph (bilinear with
antialiasing, as the training pipeline resizes its crops); at H == S no
resize runs, so the outputs equal the Keras model's. Bad inputs fail with
tf.errors.InvalidArgumentError naming the input (`image_bytes[i]`, with the
bad element's index, or `images`); GIF, BMP, TIFF and WebP bytes are
refused by name.
"""

from typing import Dict, Optional

import keras
import tensorflow as tf

from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.geometry import depth_map
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.models import registry

SERVING_DEFAULT = "serving_default"
# The float signature `Reconstructor.from_saved_model` calls.
PREDICT_IMAGES = reconstructor_lib.IMAGES_SIGNATURE
PREDICT_VERTICES = "predict_vertices"
PREDICT_DEPTH = "predict_depth"
BYTES_INPUT = "image_bytes"
IMAGES_INPUT = "images"

# What each input and output holds (written into the export metadata).
UNITS = {
    BYTES_INPUT: ("JPEG or PNG bytes of a square aligned crop (any side H, "
                  "normally 224), resized to the model's S in-graph"),
    IMAGES_INPUT: ("float32 RGB in [0, 1], [B, H, H, 3], any square side H, "
                   "resized to the model's S in-graph"),
    "coefficients": "the face model's coefficient layout (coefficient_layout)",
    "pose": ("default + predicted pose: rz, ry, rx (radians, R = Rx Ry Rz), "
             "tx, ty, tz (mm)"),
    "landmarks_2d": "68 iBUG landmarks, (x, y) pixels of the input crop",
    "landmarks_3d": "68 iBUG landmarks, camera frame (OpenCV axes), mm",
    "vertices": "mesh vertices, camera frame (OpenCV axes), mm",
    "colors": "SH-shaded vertex colours, RGB clipped to [0, 1]",
    "depth": ("DepthNet's depth of the model's S crop, camera z in mm, 0 off "
              "the face: D = (D' - c) / a + t_z (mgc_tf.geometry.depth_map)"),
    "intrinsics": "K of the model's S crop, pixels",
}
# Input shapes as documented. The float input is declared [-1, -1, -1, -1]
# (any channel count) so that a wrong shape reaches the in-graph check, which
# names the input and prints the shape received.
_INPUT_SHAPES = {BYTES_INPUT: [-1], IMAGES_INPUT: [-1, -1, -1, 3]}

# Leading bytes of the accepted encodings.
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Formats recognised only to be refused by name: tf.io.decode_image reads
# GIF (palette colours; animations are frames) and BMP, TIFF it cannot read;
# none is what the training crops were, so a client converts to JPEG/PNG.
_REFUSED_FORMATS = (("GIF", 0, (b"GIF87a", b"GIF89a")),
                    ("BMP", 0, (b"BM",)),
                    ("TIFF", 0, (b"II*\x00", b"MM\x00*")),
                    ("WebP", 8, (b"WEBP",)))

# Per element: why it is refused (0 = accepted). The message of each status
# follows "image_bytes[i]: "; no message embeds the element's bytes (an
# error message must be valid UTF-8, and raw bytes are not).
_OK, _EMPTY, _UNKNOWN, _UNDECODABLE, _NOT_SQUARE = 0, 1, 2, 3, 4
_STATUS_MESSAGES = (
    "",
    "empty string; send the encoded file bytes of a JPEG or PNG crop",
    ("neither a JPEG nor a PNG image; send the encoded file bytes of an "
     "aligned crop (in REST JSON: base64 in a b64 object)"),
    "the JPEG/PNG data cannot be decoded (truncated or corrupt)",
    ("images must be square aligned crops (H == W, normally 224 x 224). "
     "Decoded [H, W, C]:"),
) + tuple(f"a {name} image; only JPEG and PNG are accepted: convert it "
          "(losslessly: PNG)" for name, _, _ in _REFUSED_FORMATS)
_FIRST_REFUSED = len(_STATUS_MESSAGES) - len(_REFUSED_FORMATS)

# The arrays FaceDecoder holds as constants; stored as variables here so the
# (large, for BFM) face model is written once into variables/ rather than
# copied into the graph of every signature.
_DECODER_TENSORS = ("mean_shape", "id_basis", "exp_basis", "mean_albedo",
                    "albedo_basis", "triangles",
                    "landmark_indices", "skin_mask", "default_pose")


class _VariableFaceDecoder(face_decoder.FaceDecoder):
  """A FaceDecoder whose face-model arrays are non-trainable tf.Variables.

  Attributes:
    arrays: {name: tf.Variable}, the variables (tracked by the module that
      holds this dict).
  """

  def __init__(self, face_model):
    super().__init__(face_model)
    self.arrays = {}
    for name in _DECODER_TENSORS:
      variable = tf.Variable(getattr(self, name), trainable=False,
                             name=f"face_model_{name}")
      setattr(self, name, variable)
      self.arrays[name] = variable


def _resize_to(images: tf.Tensor, side: tf.Tensor, size: int) -> tf.Tensor:
  """[..., H, H, 3] float32 -> [..., S, S, 3]; untouched when H == S.

  Bilinear with antialiasing, as `mgc_tf.data.pipeline` resizes training
  crops. (No shape assertion inside the branches: the caller's checks must be
  the first thing to fail on a bad input.)
  """
  return tf.cond(
      tf.equal(side, size), lambda: tf.identity(images),
      lambda: tf.image.resize(images, [size, size], antialias=True))


def _check_float_images(images: tf.Tensor):
  """Asserts images is [B, H, H, 3] with B, H > 0, before anything reads it.

  One assert on the whole shape, whose message gives the shape received.
  The shape is zero-padded to rank 4 before it is read, so no slice can run
  out of bounds first (the loaded signature does not check the rank of what
  it is fed, and with the rank declared as 4 a rank test alone folds away).

  Returns:
    (images [B, H, H, 3] with that static rank and channel count, H int32).

  Raises (when run):
    tf.errors.InvalidArgumentError naming `images`.
  """
  shape = tf.shape(images)
  dims = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)
  valid = tf.reduce_all(tf.stack([
      tf.equal(tf.size(shape), 4), tf.equal(dims[3], 3),
      tf.equal(dims[1], dims[2]), dims[0] > 0, dims[1] > 0]))
  check = tf.debugging.Assert(valid, [
      f"{IMAGES_INPUT} must be float32 [B, H, H, 3]: B >= 1 square RGB "
      "crops (H == W) with values in [0, 1]. Received shape:", shape],
      summarize=8)
  with tf.control_dependencies([check]):
    images = tf.ensure_shape(tf.identity(images), [None, None, None, 3])
    return images, tf.identity(dims[1])


def _header_status(image_bytes: tf.Tensor) -> tf.Tensor:
  """[B] encoded bytes -> [B] int32 status from the leading bytes alone.

  _OK for a JPEG or PNG header, _EMPTY, a refused format's status, or
  _UNKNOWN.
  """
  # Padded so that no substr runs past the end of a short element (whose
  # error would quote its bytes).
  padded = tf.strings.join([image_bytes, b"\x00" * 16])

  def starts_with(offset, magic):
    return tf.equal(tf.strings.substr(padded, offset, len(magic)), magic)

  status = tf.fill(tf.shape(image_bytes), _UNKNOWN)
  for i, (_, offset, magics) in reversed(list(enumerate(_REFUSED_FORMATS))):
    match = tf.reduce_any(tf.stack([starts_with(offset, m) for m in magics]),
                          axis=0)
    status = tf.where(match, _FIRST_REFUSED + i, status)
  accepted = tf.logical_or(starts_with(0, _JPEG_MAGIC),
                           starts_with(0, _PNG_MAGIC))
  status = tf.where(accepted, _OK, status)
  return tf.where(tf.equal(tf.strings.length(image_bytes), 0), _EMPTY,
                  status)


def _decode_batch(image_bytes: tf.Tensor, size: int):
  """[B] JPEG/PNG crops -> ([B, S, S, 3] float32 in [0, 1], sides [B]).

  Decoded as the training pipeline decodes its crops (uint8 ->
  tf.image.convert_image_dtype), then resized to S unless H == S. Every
  element is checked and the first bad one fails the call with an
  InvalidArgumentError that names `image_bytes[i]` and why: a decoder error
  is caught per element (a tf.data map with ignore_errors) rather than
  raised by the decoder op, whose message could not say which element.

  Raises (when run):
    tf.errors.InvalidArgumentError "image_bytes[i]: ...".
  """
  count = tf.size(image_bytes)
  status = _header_status(image_bytes)

  def decode(index, data):
    with tf.name_scope(f"{BYTES_INPUT}_decode"):
      image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])
    shape = tf.shape(image)
    square = tf.equal(shape[0], shape[1])
    floats = tf.image.convert_image_dtype(image, tf.float32)
    resized = tf.cond(
        square, lambda: _resize_to(floats, shape[0], size),
        lambda: tf.zeros([size, size, 3]))
    return (index, shape, tf.ensure_shape(resized, [size, size, 3]),
            tf.cast(shape[0], tf.float32))

  # Only elements with a JPEG/PNG header are decoded; an element the
  # decoder fails on is dropped here and found missing below.
  header_ok = tf.where(tf.equal(status, _OK))[:, 0]
  dataset = tf.data.Dataset.from_tensor_slices(
      (tf.cast(header_ok, tf.int32), tf.gather(image_bytes, header_ok)))
  dataset = dataset.map(decode).ignore_errors()
  empty = (tf.zeros([0], tf.int32), tf.zeros([0, 3], tf.int32),
           tf.zeros([0, size, size, 3]), tf.zeros([0]))
  indices, shapes, images, sides = dataset.batch(
      tf.cast(tf.maximum(count, 1), tf.int64)).reduce(
          empty, lambda state, batch: tuple(
              tf.concat([s, b], axis=0) for s, b in zip(state, batch)))

  # Decoded elements: _OK or _NOT_SQUARE; the others that passed the header
  # check but are missing from the dataset did not decode.
  decoded = tf.where(tf.equal(shapes[:, 0], shapes[:, 1]), _OK, _NOT_SQUARE)
  status = tf.where(tf.equal(status, _OK), _UNDECODABLE, status)
  status = tf.tensor_scatter_nd_update(status, indices[:, None], decoded)
  all_shapes = tf.tensor_scatter_nd_update(
      tf.zeros([count, 3], tf.int32), indices[:, None], shapes)
  bad = tf.where(tf.not_equal(status, _OK))[:, 0]
  first = tf.cast(tf.concat([bad, [0]], axis=0)[0], tf.int32)
  first_status = status[first]
  detail = tf.where(
      tf.equal(first_status, _NOT_SQUARE),
      tf.strings.join([" [", tf.strings.reduce_join(
          tf.strings.as_string(all_shapes[first]), separator=" "), "]"]),
      tf.strings.join([" (", tf.strings.as_string(
          tf.strings.length(image_bytes[first])), " bytes)"]))
  message = tf.strings.join([
      f"{BYTES_INPUT}[", tf.strings.as_string(first), "]: ",
      tf.gather(tf.constant(_STATUS_MESSAGES), first_status), detail,
      tf.strings.join([" (", tf.strings.as_string(tf.size(bad)), " of ",
                       tf.strings.as_string(count), " elements bad)"])])
  check = tf.debugging.Assert(tf.equal(tf.size(bad), 0), [message])
  with tf.control_dependencies([check]):
    images = tf.identity(images)
    sides = tf.identity(sides)
  return images, sides


class ReconstructionModule(tf.Module):
  """Encoder + face decoding with the three serving signatures.

  Args:
    model: the reconstructor, keras.Model image [B, S, S, 3] float32 in
      [0, 1] -> coefficients [B, K].
    face_model: the `FaceModel` the coefficients decode with.
    extra_outputs: a method's extra inference outputs, name -> network
      taking the same images (e.g. a depth map); added to the outputs of
      every signature.
  """

  def __init__(self, model: keras.Model, face_model, extra_outputs=None):
    super().__init__(name="mgc_reconstruction")
    shape = model.input_shape
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2]:
      raise ValueError("model must take square images [B, S, S, 3]; its "
                       f"input shape is {shape}.")
    self.model = model
    self.extra_outputs = dict(extra_outputs or {})
    if self.has_depth:
      # Only a model with a depth network has this signature (saving traces
      # every tf.function of the module, so it exists only then).
      self.predict_depth = tf.function(
          self._predict_depth, input_signature=[tf.TensorSpec(
              [None, None, None, None], tf.float32, name=IMAGES_INPUT)])
    self.image_size = int(shape[1])
    self._decoder = _VariableFaceDecoder(face_model)
    self.face_model_arrays = self._decoder.arrays
    if model.output_shape[-1] != self._decoder.layout.size:
      raise ValueError(
          f"model predicts {model.output_shape[-1]} coefficients but the face "
          f"model {face_model.name!r} has {self._decoder.layout.size}: export "
          "with the face model the run was trained with.")

  @property
  def num_coefficients(self) -> int:
    return self._decoder.layout.size

  @property
  def num_vertices(self) -> int:
    return self._decoder.num_vertices

  def _outputs(self, images: tf.Tensor, side: tf.Tensor
               ) -> Dict[str, tf.Tensor]:
    """images [B, S, S, 3], crop sides [B] or [] float32 -> the four outputs.

    landmarks_2d are projected with the camera of an S crop and scaled by
    H / S: the camera's focal length and principal point scale linearly with
    the crop side (`FaceDecoder.intrinsics`), so this equals
    `decode(..., image_size=H)`.
    """
    images = tf.ensure_shape(images, [None, self.image_size,
                                      self.image_size, 3])
    coefficients = self.model(images, training=False)
    face = self._decoder.decode(coefficients, image_size=self.image_size)
    scale = tf.reshape(side / float(self.image_size), [-1, 1, 1])
    extras = {name: tf.identity(tf.cast(registry.call_output(
        network, images, tf.cast(coefficients, tf.float32)), tf.float32),
                                name=name)
              for name, network in self.extra_outputs.items()}
    return {
        **extras,
        "coefficients": tf.identity(coefficients, name="coefficients"),
        "pose": tf.identity(face.pose, name="pose"),
        "landmarks_2d": tf.identity(face.landmarks_2d * scale,
                                    name="landmarks_2d"),
        "landmarks_3d": tf.identity(face.landmarks_3d, name="landmarks_3d"),
    }

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name=BYTES_INPUT)])
  def serve_image_bytes(self, image_bytes):
    """image_bytes [B] JPEG/PNG square crops -> coefficients, pose, landmarks.

    Each image may have its own side H; landmarks_2d are in its pixels.
    """
    not_empty = tf.debugging.Assert(
        tf.size(image_bytes) > 0,
        [f"{BYTES_INPUT} must hold at least one encoded image; got an "
         "empty batch."])
    with tf.control_dependencies([not_empty]):
      image_bytes = tf.identity(image_bytes)
    images, sides = _decode_batch(image_bytes, self.image_size)
    return self._outputs(images, sides)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, None], tf.float32,
                    name=IMAGES_INPUT)])
  def predict_images(self, images):
    """images [B, H, H, 3] float32 in [0, 1] -> the four outputs."""
    images, side = _check_float_images(images)
    resized = _resize_to(images, side, self.image_size)
    return self._outputs(resized, tf.cast(side, tf.float32))

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, None], tf.float32,
                    name=IMAGES_INPUT)])
  def predict_vertices(self, images):
    """images [B, H, H, 3] -> vertices [B, V, 3] mm, colors [B, V, 3]."""
    images, side = _check_float_images(images)
    resized = _resize_to(images, side, self.image_size)
    resized = tf.ensure_shape(resized, [None, self.image_size,
                                        self.image_size, 3])
    face = self._decoder.decode(self.model(resized, training=False),
                                image_size=self.image_size)
    return {
        "vertices": tf.identity(face.vertices, name="vertices"),
        "colors": tf.clip_by_value(face.colors, 0.0, 1.0, name="colors"),
    }

  @property
  def has_depth(self) -> bool:
    return depth_map.NORMALIZED_OUTPUT in self.extra_outputs

  def _predict_depth(self, images):
    """images [B, H, H, 3] -> depth [B, S, S, 1] mm, suitability, K.

    D' of the depth network becomes camera z with xi_V = t_z of the
    reconstructor's view (eq. 7 of Shu et al.).
    """
    images, side = _check_float_images(images)
    resized = tf.ensure_shape(_resize_to(images, side, self.image_size),
                              [None, self.image_size, self.image_size, 3])
    face = self._decoder.decode(self.model(resized, training=False),
                                image_size=self.image_size)
    normalized = tf.cast(self.extra_outputs[depth_map.NORMALIZED_OUTPUT](
        resized, training=False), tf.float32)
    out = {
        "depth": tf.identity(depth_map.denormalize_depth(
            normalized, face.translation[:, 2]), name="depth"),
        "intrinsics": tf.identity(face.intrinsics, name="intrinsics"),
    }
    suitability = self.extra_outputs.get(depth_map.SUITABILITY_OUTPUT)
    if suitability is not None:
      out["suitability"] = tf.identity(tf.cast(
          suitability(resized, training=False), tf.float32),
                                       name="suitability")
    return out

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    """{signature name: concrete function} for tf.saved_model.save."""
    out = {
        SERVING_DEFAULT: self.serve_image_bytes.get_concrete_function(),
        PREDICT_IMAGES: self.predict_images.get_concrete_function(),
        PREDICT_VERTICES: self.predict_vertices.get_concrete_function(),
    }
    if self.has_depth:
      out[PREDICT_DEPTH] = self.predict_depth.get_concrete_function()
    return out


def _shape_list(shape: tf.TensorShape):
  return [-1 if d is None else int(d) for d in shape.as_list()]


def describe(functions: Dict[str, tf.types.experimental.ConcreteFunction],
             extra_units: Optional[Dict[str, str]] = None
             ) -> Dict[str, dict]:
  """{signature: {"inputs": {name: {dtype, shape, units}}, "outputs": ...}}.

  Shapes use -1 for a dimension of any size (B, H); output shapes are those
  of the traced functions. `extra_units` describes a method's extra outputs.
  """
  units = {**UNITS, **(extra_units or {})}
  out = {}
  for name, function in functions.items():
    input_specs = tf.nest.flatten(function.structured_input_signature)
    inputs = {spec.name: {"dtype": spec.dtype.name,
                          "shape": _INPUT_SHAPES[spec.name],
                          "units": UNITS[spec.name]}
              for spec in input_specs}
    outputs = {key: {"dtype": spec.dtype.name,
                     "shape": _shape_list(spec.shape), "units": units[key]}
               for key, spec in sorted(function.structured_outputs.items())}
    out[name] = {"inputs": inputs, "outputs": outputs}
  return out
