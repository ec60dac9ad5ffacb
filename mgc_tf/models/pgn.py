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

from typing import Sequence

import keras
import numpy as np

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
