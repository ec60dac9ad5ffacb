"""Soft census transform and Hamming distance (PGN eq. 9; Hafner et al.).

The census transform describes each pixel by the signs of its differences
to the pixels of a W x W window around it, which does not change under
additive or multiplicative brightness changes. The hard sign has no
gradient, so as in unsupervised optical flow we use the soft version:

    c_k(p) = d_k / sqrt(0.81 + d_k^2),   d_k = g(p + o_k) - g(p)

on the grey image g in [0, 255] grey levels (0.81 = 0.9^2: differences of
under about one grey level count as roughly zero), and the soft Hamming
distance between two descriptors

    h(p) = sum_k (c_k - c'_k)^2 / (0.1 + (c_k - c'_k)^2),

each summand in [0, 1) (a "bit" that differs counts ~1). Pixels whose window
leaves the image are masked out (`census_valid`).

Shapes: B batch, H x W pixels; images RGB in [0, 1].
"""

import tensorflow as tf

#: The paper's window side (7 x 7).
DEFAULT_WINDOW = 7
#: Softening constants of the transform and of the distance.
TRANSFORM_EPSILON = 0.81
DISTANCE_EPSILON = 0.1
#: Luma weights of the grey image.
_GREY = (0.299, 0.587, 0.114)


def _check_images(image: tf.Tensor, key: str) -> None:
  if image.shape.rank != 4 or image.shape[-1] not in (1, 3):
    raise ValueError(f"{key} must be [B, H, W, 3] or [B, H, W, 1]. "
                     f"Received: {key}.shape={image.shape}")


def soft_census(image, window: int = DEFAULT_WINDOW,
                name: str = "soft_census") -> tf.Tensor:
  """[B, H, W, 3|1] image in [0, 1] -> [B, H, W, window^2] soft census.

  Grey levels are taken in [0, 255] units (so the constants above mean what
  they do in the optical-flow literature); neighbours outside the image are
  zero (mask those pixels with `census_valid`).
  """
  if window < 3 or window % 2 == 0:
    raise ValueError(f"window must be odd and >= 3. Received: window={window}")
  with tf.name_scope(name):
    image = tf.convert_to_tensor(image, tf.float32)
    _check_images(image, "image")
    if image.shape[-1] == 3:
      grey = tf.reduce_sum(image * tf.constant(_GREY), axis=-1, keepdims=True)
    else:
      grey = image
    grey = grey * 255.0
    # Identity kernel per window offset: one output channel per neighbour.
    kernel = tf.reshape(tf.eye(window * window), [window, window, 1,
                                                  window * window])
    patches = tf.nn.conv2d(grey, kernel, strides=1, padding="SAME")
    difference = patches - grey
    return difference / tf.sqrt(TRANSFORM_EPSILON + tf.square(difference))


def soft_hamming(census_a, census_b, name: str = "soft_hamming") -> tf.Tensor:
  """[B, H, W, C] x 2 soft census descriptors -> [B, H, W, 1] distance."""
  with tf.name_scope(name):
    squared = tf.square(census_a - census_b)
    return tf.reduce_sum(squared / (DISTANCE_EPSILON + squared), axis=-1,
                         keepdims=True)


def census_valid(height: int, width: int, window: int = DEFAULT_WINDOW
                 ) -> tf.Tensor:
  """[1, H, W, 1] float32: 1 where the whole window lies in the image."""
  r = window // 2
  inner = tf.ones([1, height - 2 * r, width - 2 * r, 1])
  return tf.pad(inner, [[0, 0], [r, r], [r, r], [0, 0]])


def census_loss(target, rendered, mask, weights=None,
                window: int = DEFAULT_WINDOW,
                name: str = "census_loss") -> tf.Tensor:
  """Eq. 9 per sample: sum(H(C(I_2), C(I_1->2)) M W) / sum(M W).

  Args:
    target: [B, H, W, 3] the real image I_2 in [0, 1].
    rendered: [B, H, W, 3] the swapped render I_1->2 (composited over I_2).
    mask: [B, H, W, 1] M_2^2d, 1 where the face is rendered (no gradient
      is taken through it).
    weights: optional [B, H, W, 1] W (5 on eyes, nose and mouth, 1 else).
    window: census window side.

  Returns:
    [B] soft Hamming distance in "bits" (0 to window^2 - 1); 0 for a sample
    with an empty mask.
  """
  with tf.name_scope(name):
    target = tf.convert_to_tensor(target, tf.float32)
    rendered = tf.convert_to_tensor(rendered, tf.float32)
    _check_images(rendered, "rendered")
    distance = soft_hamming(soft_census(target, window),
                            soft_census(rendered, window))
    h, w = distance.shape[1], distance.shape[2]
    weight = tf.stop_gradient(tf.cast(mask, tf.float32)) * census_valid(
        h, w, window)
    if weights is not None:
      weight = weight * tf.cast(weights, tf.float32)
    total = tf.reduce_sum(distance * weight, axis=[1, 2, 3])
    return tf.math.divide_no_nan(total, tf.reduce_sum(weight, axis=[1, 2, 3]))
