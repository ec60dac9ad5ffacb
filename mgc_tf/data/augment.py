"""Augmentation of N-view samples that keeps landmarks consistent.

Two kinds:
- Colour jitter (brightness, contrast, saturation, hue), drawn ONCE per sample
  and applied to all its views: the multi-view losses compare colours across
  views, so the views must stay photometrically consistent.
- A small random scale and shift per view, applied to the image, the skin
  map and the landmarks by the same affine map (the network predicts a pose
  per view, so views need not share it).

All randomness is stateless, from a [2] int seed, so a deterministic pipeline
reproduces its samples exactly.

Pixel convention: OpenCV (the centre of pixel [i, j] is at (x, y) = (j, i)),
the same as TensorFlow's ImageProjectiveTransformV3 uses.
"""

import dataclasses
from typing import Dict, Optional, Tuple

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Augmentation strengths; zeros turn a kind off.

  Attributes:
    brightness: max additive brightness change (image in [0, 1]).
    contrast: max relative contrast change (factor in [1 - c, 1 + c]).
    saturation: max relative saturation change.
    hue: max hue rotation, as a fraction of the colour circle.
    scale: max relative zoom about the crop centre (factor in [1 - s, 1 + s]).
    shift: max shift, as a fraction of the image side.
  """
  brightness: float = 0.1
  contrast: float = 0.1
  saturation: float = 0.1
  hue: float = 0.02
  scale: float = 0.05
  shift: float = 0.03

  @property
  def colour_enabled(self) -> bool:
    return any(v > 0 for v in (self.brightness, self.contrast,
                               self.saturation, self.hue))

  @property
  def geometry_enabled(self) -> bool:
    return self.scale > 0 or self.shift > 0


NO_AUGMENTATION = AugmentConfig(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _uniform(seed, salt: int, shape, max_abs: float) -> tf.Tensor:
  """Uniform in [-max_abs, max_abs] from a stateless seed and a salt."""
  seed = tf.stack([seed[0], seed[1] + salt])
  return tf.random.stateless_uniform(shape, seed, -max_abs, max_abs)


def jitter_colour(images: tf.Tensor, seed: tf.Tensor,
                  config: AugmentConfig) -> tf.Tensor:
  """One colour jitter for all views.

  Args:
    images: [N, H, W, 3] float32 in [0, 1].
    seed: [2] int seed.
    config: strengths.

  Returns:
    [N, H, W, 3] float32 in [0, 1].
  """
  if not config.colour_enabled:
    return images
  seed = tf.cast(seed, tf.int64)
  if config.hue > 0:
    images = tf.image.adjust_hue(images, _uniform(seed, 1, [], config.hue))
  if config.saturation > 0:
    images = tf.image.adjust_saturation(
        images, 1.0 + _uniform(seed, 2, [], config.saturation))
  if config.contrast > 0:
    # Per-view mean would differ across views; use one mean for all views so
    # equal colours stay equal.
    factor = 1.0 + _uniform(seed, 3, [], config.contrast)
    mean = tf.reduce_mean(images, axis=[0, 1, 2], keepdims=True)
    images = (images - mean) * factor + mean
  if config.brightness > 0:
    images = images + _uniform(seed, 4, [], config.brightness)
  return tf.clip_by_value(images, 0.0, 1.0)


def random_view_affines(num_views: int, image_size: int, seed: tf.Tensor,
                        config: AugmentConfig) -> tf.Tensor:
  """Per-view zoom-and-shift maps from input to output pixel coordinates.

  Returns:
    [N, 2, 3] float32 affine matrices A with p_out = A[:, :2] p_in + A[:, 2].
  """
  seed = tf.cast(seed, tf.int64)
  scale = 1.0 + _uniform(seed, 5, [num_views], config.scale)
  shift = _uniform(seed, 6, [num_views, 2], config.shift) * image_size
  centre = (image_size - 1) / 2.0
  zero = tf.zeros_like(scale)
  # Zoom about the crop centre, then shift.
  tx = centre - scale * centre + shift[:, 0]
  ty = centre - scale * centre + shift[:, 1]
  return tf.reshape(tf.stack([scale, zero, tx, zero, scale, ty], axis=1),
                    [num_views, 2, 3])


def warp_views(images: tf.Tensor, affines: tf.Tensor,
               interpolation: str = "bilinear") -> tf.Tensor:
  """Warps images by `affines` (input -> output pixels), border replicated.

  Args:
    images: [N, H, W, C] float32.
    affines: [N, 2, 3] maps from input to output pixel coordinates.
    interpolation: "bilinear", or "nearest" for maps whose values must not
      blend across edges (depth).

  Returns:
    [N, H, W, C] float32.
  """
  linear, offset = affines[:, :, :2], affines[:, :, 2:]
  inverse = tf.linalg.inv(linear)
  inverse_offset = -tf.matmul(inverse, offset)
  # ImageProjectiveTransformV3 maps OUTPUT pixels to INPUT pixels.
  rows = tf.concat([inverse, inverse_offset], axis=2)  # [N, 2, 3]
  transforms = tf.concat(
      [tf.reshape(rows, [-1, 6]), tf.zeros([tf.shape(rows)[0], 2])], axis=1)
  shape = tf.shape(images)
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=images, transforms=transforms, output_shape=shape[1:3],
      fill_value=0.0, interpolation=interpolation.upper(),
      fill_mode="NEAREST")


def transform_landmarks(landmarks: tf.Tensor, affines: tf.Tensor) -> tf.Tensor:
  """[N, L, 2] landmarks through [N, 2, 3] affines -> [N, L, 2]."""
  return (tf.einsum("nij,nlj->nli", affines[:, :, :2], landmarks)
          + affines[:, None, :, 2])


def augment_views(images: tf.Tensor, skin: tf.Tensor, landmarks: tf.Tensor,
                  seed: tf.Tensor, config: AugmentConfig,
                  extra_maps: Optional[Dict[str, Tuple[tf.Tensor, str]]] = None,
                  extra_points: Optional[Dict[str, tf.Tensor]] = None):
  """Colour jitter (shared) and zoom/shift (per view) of one N-view sample.

  Args:
    images: [N, S, S, 3] float32 in [0, 1].
    skin: [N, S, S, 1] float32 in [0, 1].
    landmarks: [N, 68, 2] float32 pixels.
    seed: [2] int seed.
    config: strengths.
    extra_maps: name -> ([N, S, S, C] float32, interpolation): more per-view
      maps of the same pixels (ground-truth depth, masks), warped with the
      images but not colour-jittered.
    extra_points: name -> [N, L, 2] float32 pixels, moved as the landmarks.

  Returns:
    (images, skin, landmarks, maps, points): the same shapes; maps and points
    are dicts name -> tensor (empty when none were given).
  """
  extra_maps = dict(extra_maps or {})
  extra_points = dict(extra_points or {})
  images = jitter_colour(images, seed, config)
  maps = {name: value for name, (value, _) in extra_maps.items()}
  if config.geometry_enabled:
    num_views = images.shape[0]
    image_size = images.shape[1]
    affines = random_view_affines(num_views, image_size, seed, config)
    images = warp_views(images, affines)
    skin = warp_views(skin, affines)
    landmarks = transform_landmarks(landmarks, affines)
    maps = {name: warp_views(value, affines, interpolation)
            for name, (value, interpolation) in extra_maps.items()}
    extra_points = {name: transform_landmarks(value, affines)
                    for name, value in extra_points.items()}
  return images, skin, landmarks, maps, extra_points
