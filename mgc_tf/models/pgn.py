"""PGN's UV position-map decoder for the 68 3D landmarks (Liu et al. 3.2).

    features [B, F] (the shared encoder's pooled output)
      -> Dense(4 * 4 * C) -> [B, 4, 4, C]
      -> (2x transposed conv, ReLU) until uv_size x uv_size, channels halving
      -> 3x3 conv -> [B, uv, uv, 3] position-map residual, in crop sides
      -> read at the 68 landmarks' UV pixels, times S, plus the template
      -> [B, 68, 3] X_UV: (x, y) crop pixels, z pixels (weak perspective,
         `mgc_tf.geometry.landmark_pose.weak_perspective_depth`)

The paper's PGN is PRNet's decoder over a full UV position map; we decode a
small map and keep only the landmark pixels, which is what the method reads.
The UV pixel of landmark k is the template's (x, y) (the mean face at the
default pose, seen frontally) scaled into the map, so neighbouring
landmarks sit in neighbouring map pixels (two landmarks that fall into one
pixel share a residual). The template is added to the output, so the
untrained decoder predicts the mean face's landmarks and the closed-form
pose is well defined from the first step.
"""

from typing import NamedTuple, Sequence

import keras
import numpy as np
import tensorflow as tf

from mgc_tf.geometry import landmark_pose
from mgc_tf.models import registry

INPUT_NAME = "features"
OUTPUT_NAME = "landmarks_uv"


def landmark_uv_pixels(template: np.ndarray, uv_size: int) -> np.ndarray:
  """[L, 2] int (row, column) of each landmark in the UV map.

  Args:
    template: [L, 3] template landmarks, (x, y) used.
    uv_size: the map's side.
  """
  xy = np.asarray(template, np.float64)[:, :2]
  low, high = xy.min(0), xy.max(0)
  unit = (xy - low) / np.maximum(high - low, 1e-6)
  pixels = np.round(unit * (uv_size - 1)).astype(np.int32)
  return pixels[:, ::-1]


@keras.saving.register_keras_serializable(package="mgc_tf")
class GatherLandmarks(keras.layers.Layer):
  """[B, U, U, 3] map -> [B, L, 3] map values at fixed pixels * scale +
  template (no weights)."""

  def __init__(self, pixels: Sequence[Sequence[int]],
               template: Sequence[Sequence[float]], scale: float, **kwargs):
    super().__init__(**kwargs)
    self.pixels = [[int(v) for v in p] for p in pixels]
    self.template = [[float(v) for v in p] for p in template]
    self.scale = float(scale)

  def call(self, position_map):
    pixels = keras.ops.convert_to_tensor(np.asarray(self.pixels, np.int32))
    size = keras.ops.shape(position_map)[2]
    flat = keras.ops.reshape(position_map,
                             (keras.ops.shape(position_map)[0], -1, 3))
    index = pixels[:, 0] * size + pixels[:, 1]
    values = keras.ops.take(flat, index, axis=1)
    template = keras.ops.convert_to_tensor(
        np.asarray(self.template, np.float32))
    return values * self.scale + template[None]

  def compute_output_shape(self, input_shape):
    return (input_shape[0], len(self.pixels), 3)

  def get_config(self):
    return {**super().get_config(), "pixels": self.pixels,
            "template": self.template, "scale": self.scale}


@registry.register("pgn_uv_decoder")
def build_uv_decoder(feature_dim: int, image_size: int,
                     template: Sequence[Sequence[float]], uv_size: int = 32,
                     filters: int = 64) -> keras.Model:
  """Builds features [B, F] -> X_UV [B, L, 3] (module docstring).

  Args:
    feature_dim: F, the encoder's feature width.
    image_size: S, crop side in pixels (the output's unit).
    template: [L, 3] the mean face's X_UV at the default pose, pixels.
    uv_size: side of the decoded map, a power of two >= 8.
    filters: channels of the first decoder level (halving per level,
      at least 8).

  Raises:
    ValueError: bad sizes (the message names them).
  """
  template = np.asarray(template, np.float32)
  problems = []
  if feature_dim < 1 or image_size < 1:
    problems.append(f"feature_dim={feature_dim}, image_size={image_size}")
  if uv_size < 8 or uv_size & (uv_size - 1):
    problems.append(f"uv_size={uv_size} (a power of two >= 8)")
  if filters < 8:
    problems.append(f"filters={filters} (>= 8)")
  if template.ndim != 2 or template.shape[1] != 3:
    problems.append(f"template shape {template.shape} (L x 3)")
  if problems:
    raise ValueError("Bad PGN decoder arguments. Received: " +
                     ", ".join(problems))
  features = keras.Input((feature_dim,), dtype="float32", name=INPUT_NAME)
  x = keras.layers.Dense(4 * 4 * filters, activation="relu",
                         name="pgn_project")(features)
  x = keras.layers.Reshape((4, 4, filters))(x)
  size, channels = 4, filters
  while size < uv_size:
    channels = max(8, channels // 2)
    size *= 2
    x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                                     activation="relu",
                                     name=f"pgn_up{size}")(x)
  position_map = keras.layers.Conv2D(
      3, 3, padding="same", dtype="float32", kernel_initializer=
      keras.initializers.RandomNormal(stddev=1e-3), name="pgn_map")(x)
  landmarks = GatherLandmarks(landmark_uv_pixels(template, uv_size).tolist(),
                              template.tolist(), float(image_size),
                              dtype="float32", name=OUTPUT_NAME)(position_map)
  return keras.Model(features, landmarks, name="pgn")


# ------------------------------------------------ the pose solve at inference

class LandmarkSolve(NamedTuple):
  """What `solve_pose` gives.

  Attributes:
    coefficients: [B, K] the head's coefficients with the pose slot replaced
      by the solved pose's offset from the face model's default pose.
    pose: [B, 6] that offset: (rz, ry, rx) radians wrapped into (-pi, pi],
      (tx, ty, tz) mm.
    affine: [B, 3, 4] T of eq. 4 (model landmarks, mm -> X_UV, pixels).
    model_landmarks: [B, L, 3] the landmark vertices of the coefficients'
      identity and expression, model space, mm.
    fitted: [B, L, 3] the model landmarks mapped into X_UV's frame by the
      fit eq. 8 compares with X_UV: T X ("affine", the paper's) or
      f R X + t ("similarity": the scaled rotation of T and the
      translation that best goes with it).
  """
  coefficients: tf.Tensor
  pose: tf.Tensor
  affine: tf.Tensor
  model_landmarks: tf.Tensor
  fitted: tf.Tensor


AFFINE, SIMILARITY = "affine", "similarity"
LANDMARK_FITS = (AFFINE, SIMILARITY)


def solve_pose(groups, landmarks_uv, decoder, focal_length: float,
               principal_point: float, fit: str = SIMILARITY
               ) -> LandmarkSolve:
  """The PGN's pose: eq. 4 between the model's landmarks and X_UV, in closed
  form (`mgc_tf.geometry.landmark_pose`).

  Args:
    groups: the layout's groups of [B, K] coefficients (`layout.split`);
      their pose is replaced.
    landmarks_uv: [B, L, 3] X_UV, crop pixels.
    decoder: the face model's `FaceDecoder`.
    focal_length: F of the crop's camera, pixels.
    principal_point: c, pixels (the crop's centre).
    fit: which fit `fitted` holds (`LANDMARK_FITS`); the pose is the same.
  """
  if fit not in LANDMARK_FITS:
    raise ValueError(f"fit must be one of {LANDMARK_FITS}; got {fit!r}.")
  model_landmarks = decoder.landmark_shape(groups["identity"],
                                           groups["expression"])
  landmarks_uv = tf.cast(landmarks_uv, tf.float32)
  affine = landmark_pose.affine_from_landmarks(model_landmarks, landmarks_uv)
  # One fit serves both the pose and the fitted landmarks.
  similarity = landmark_pose.similarity_from_affine(affine)
  if fit == AFFINE:
    fitted = tf.einsum("bij,blj->bli", affine[..., :3], model_landmarks) + (
        affine[:, None, :, 3])
  else:
    scale, rotation, _ = similarity
    rotated = scale[:, None, None] * tf.einsum("bij,blj->bli", rotation,
                                               model_landmarks)
    fitted = rotated + tf.reduce_mean(landmarks_uv - rotated, axis=1,
                                      keepdims=True)
  solved = landmark_pose.pose_from_similarity(
      similarity, model_landmarks, focal_length, principal_point)
  pose = decoder.pose_coefficients(solved)
  coefficients = decoder.layout.join({**groups, "pose": pose})
  return LandmarkSolve(coefficients, pose, affine, model_landmarks, fitted)


class SolvedPoseCoefficients(keras.layers.Layer):
  """[B, K] head coefficients, [B, L, 3] X_UV -> [B, K] with the solved pose
  (`solve_pose`). Holds the face model's decoder, so it is rebuilt from
  model.json rather than saved as a Keras layer."""

  def __init__(self, decoder, focal_length: float, principal_point: float,
               **kwargs):
    super().__init__(**kwargs)
    self.decoder = decoder
    self.focal_length = float(focal_length)
    self.principal_point = float(principal_point)

  def call(self, inputs):
    predicted, landmarks_uv = inputs
    groups = self.decoder.layout.split(tf.cast(predicted, tf.float32))
    return solve_pose(groups, landmarks_uv, self.decoder, self.focal_length,
                      self.principal_point).coefficients

  def compute_output_shape(self, input_shapes):
    return input_shapes[0]


@registry.register("pgn_solved_pose")
def build_solved_pose_reconstructor(backbone_layer: str, head_layers:
                                    Sequence[str], focal_length: float,
                                    principal_point: float, *, networks,
                                    decoder, reconstructor: str =
                                    "reconstructor", pgn: str = "pgn"
                                    ) -> keras.Model:
  """images [B, S, S, 3] -> [B, K] coefficients whose pose is the PGN's solve.

  The exported and evaluated model of `--method=pgn`: the reconstructor's
  encoder gives the features, its head the identity, expression, albedo
  and lighting, the PGN decoder X_UV, and `solve_pose` the pose. Shares
  every weight with the two networks (nothing new to restore).

  Args:
    backbone_layer: the encoder's layer name in the reconstructor.
    head_layers: the head's layer names, applied in order to the features.
    focal_length, principal_point: the crop camera's F and c, pixels.
    networks: name -> the built (restored) networks.
    decoder: the face model's `FaceDecoder`.
    reconstructor, pgn: the two networks' names in `networks`.
  """
  model = networks[reconstructor]
  images = keras.Input(model.input_shape[1:], dtype="float32", name="image")
  features = model.get_layer(backbone_layer)(images)
  predicted = features
  for name in head_layers:
    predicted = model.get_layer(name)(predicted)
  landmarks_uv = networks[pgn](features)
  coefficients = SolvedPoseCoefficients(
      decoder, focal_length, principal_point, dtype="float32",
      name="solved_pose_coefficients")([predicted, landmarks_uv])
  return keras.Model(images, coefficients, name="pgn_solved_pose")
