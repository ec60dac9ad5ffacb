"""Differentiable bilinear sampling of images at continuous pixel coordinates.

Core TensorFlow only (what MGCNet took from tensorflow-addons' resampler).

Pixel convention (OpenCV, as in `mgc_tf.geometry.camera`): a coordinate is
(x, y) = (column, row) in pixels and the centre of pixel [row i, column j] is
at (x, y) = (j, i). So integer coordinates return pixel values exactly, and the
image covers the closed rectangle [0, W - 1] x [0, H - 1] of coordinates that
can be interpolated from pixel centres alone.

Shapes: B batch, H x W the sampled image, h x w the grid of sample points,
C channels.
"""

from typing import Tuple

import tensorflow as tf


def bilinear_sample(image: tf.Tensor,
                    coords: tf.Tensor,
                    name: str = "bilinear_sample"
                    ) -> Tuple[tf.Tensor, tf.Tensor]:
  """Samples `image` bilinearly at continuous pixel coordinates.

  Each sample is the bilinear interpolation of the four pixel centres around
  it, `sum_k w_k image[y_k, x_k]` with the usual tent weights. Corners that
  fall outside the image contribute 0 (zero padding, like tensorflow-addons'
  `resampler`), so values fade to 0 within one pixel outside the image; use
  `valid` to drop those samples.

  A sample is valid when its coordinates are finite and lie in the closed
  rectangle 0 <= x <= W - 1 and 0 <= y <= H - 1, i.e. it is interpolated from
  pixel centres of the image only (a point on the last row or column is
  valid). Non-finite coordinates give value 0 and valid 0.

  The values are differentiable with respect to the image and to the
  coordinates (piecewise linear in each coordinate: the derivative jumps at
  integer coordinates, where TensorFlow returns the one-sided derivative of
  the cell the point is in). Coordinates are clamped to [-1, W] x [-1, H]
  before sampling, so the gradient with respect to coordinates outside that
  range is 0.

  Args:
    image: [B, H, W, C] float tensor (float32 or float64).
    coords: [B, h, w, 2] tensor of (x, y) pixel coordinates, cast to the
      dtype of `image`.
    name: name scope of the ops.

  Returns:
    A tuple (values, valid):
      values: [B, h, w, C] sampled values, dtype of `image`.
      valid: [B, h, w, 1] same dtype, 1 where the sample is valid (see above),
        else 0. It carries no gradient.

  Raises:
    ValueError: if the static shapes are not [B, H, W, C] and [B, h, w, 2].
  """
  with tf.name_scope(name):
    image = tf.convert_to_tensor(image)
    if not image.dtype.is_floating:
      image = tf.cast(image, tf.float32)
    coords = tf.cast(tf.convert_to_tensor(coords), image.dtype)
    if image.shape.rank is not None and image.shape.rank != 4:
      raise ValueError(f"`image` must have shape [B, H, W, C]. Received: "
                       f"image.shape={image.shape}")
    if coords.shape.rank is not None and (
        coords.shape.rank != 4 or
        (coords.shape[-1] is not None and coords.shape[-1] != 2)):
      raise ValueError(f"`coords` must have shape [B, h, w, 2]. Received: "
                       f"coords.shape={coords.shape}")

    dtype = image.dtype
    shape = tf.shape(image)
    batch, height, width = shape[0], shape[1], shape[2]
    out_shape = tf.shape(coords)[:3]
    channels = image.shape[-1] if image.shape[-1] is not None else shape[3]
    w_max = tf.cast(width - 1, dtype)
    h_max = tf.cast(height - 1, dtype)

    finite = tf.reduce_all(tf.math.is_finite(coords), axis=-1, keepdims=True)
    safe = tf.where(finite, coords, -2.0 * tf.ones_like(coords))
    x, y = safe[..., 0:1], safe[..., 1:2]  # [B, h, w, 1]
    valid = tf.logical_and(
        finite,
        tf.logical_and(tf.logical_and(x >= 0.0, x <= w_max),
                       tf.logical_and(y >= 0.0, y <= h_max)))

    # Clamping keeps the integer corners small; inside [0, W-1] nothing moves.
    x = tf.clip_by_value(x, -1.0, w_max + 1.0)
    y = tf.clip_by_value(y, -1.0, h_max + 1.0)
    x0 = tf.stop_gradient(tf.floor(x))
    y0 = tf.stop_gradient(tf.floor(y))
    fx = x - x0  # in [0, 1), carries the gradient w.r.t. the coordinates
    fy = y - y0
    x0 = tf.cast(x0, tf.int32)
    y0 = tf.cast(y0, tf.int32)

    flat = tf.reshape(image, tf.stack([batch, height * width, channels]))
    values = tf.zeros(tf.concat([out_shape, [channels]], 0), dtype)
    for dx, dy, weight in ((0, 0, (1.0 - fx) * (1.0 - fy)),
                           (1, 0, fx * (1.0 - fy)),
                           (0, 1, (1.0 - fx) * fy),
                           (1, 1, fx * fy)):
      xi, yi = x0 + dx, y0 + dy
      inside = tf.logical_and(tf.logical_and(xi >= 0, xi < width),
                              tf.logical_and(yi >= 0, yi < height))
      index = (tf.clip_by_value(yi, 0, height - 1) * width +
               tf.clip_by_value(xi, 0, width - 1))  # [B, h, w, 1]
      index = tf.reshape(index, tf.stack([batch, -1]))
      corner = tf.gather(flat, index, batch_dims=1)  # [B, h*w, C]
      corner = tf.reshape(corner, tf.concat([out_shape, [channels]], 0))
      values += corner * (weight * tf.cast(inside, dtype))
    values = tf.where(finite, values, tf.zeros_like(values))
    return values, tf.cast(valid, dtype)
