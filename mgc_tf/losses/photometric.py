"""Skin-weighted render (photometric) loss between the input and its render.

  L_render = sum_i w(i) ||I(i) - I_re(i)||_2 / sum_i w(i),
  w(i) = w_skin(i) * M(i),

over the pixels i of one image, where M is the rendered face mask and w_skin
the skin probability of the pixel (MGCNet paper section 3.3, DESIGN.md
section 5; default weight w_render = 1.9 is applied by the combinator). I_re
is the render composited over the input, so outside the mask it equals I;
the mask restricts both sums to the projected face.

Shape glossary: B batch, H x W pixels. Colours are RGB in [0, 1], so the
per-pixel error is in [0, sqrt(3)].
"""

import tensorflow as tf


def _as_weight_map(value, name: str, dtype) -> tf.Tensor:
  """[B, H, W] or [B, H, W, 1] (any real or bool dtype) -> [B, H, W] `dtype`."""
  value = tf.cast(tf.convert_to_tensor(value, name=name), dtype)
  rank = value.shape.rank
  if rank == 4:
    if value.shape[-1] is not None and value.shape[-1] != 1:
      raise ValueError(f"`{name}` must have shape [B, H, W] or [B, H, W, 1]. "
                       f"Received: {name}.shape={tuple(value.shape)}")
    value = value[..., 0]
  elif rank != 3:
    raise ValueError(f"`{name}` must have shape [B, H, W] or [B, H, W, 1]. "
                     f"Received: {name}.shape={tuple(value.shape)}")
  return value


def safe_norm(vectors: tf.Tensor, axis: int = -1) -> tf.Tensor:
  """Euclidean norm with a zero (not NaN) gradient at the zero vector.

  Args:
    vectors: `[..., C]` tensor.
    axis: the axis to reduce.

  Returns:
    `[...]` tensor ||v||_2, exactly 0 for v = 0 (no epsilon bias).
  """
  squared = tf.reduce_sum(tf.square(vectors), axis=axis)
  nonzero = squared > 0.0
  # Double where: the unused branch gets a safe value, so sqrt'(0) = inf
  # never meets a zero upstream gradient (0 * inf = NaN).
  safe = tf.where(nonzero, squared, tf.ones_like(squared))
  return tf.where(nonzero, tf.sqrt(safe), tf.zeros_like(squared))


def render_loss(images,
                rendered_images,
                mask,
                skin_weights=None,
                name: str = "render_loss") -> tf.Tensor:
  """Per-sample skin-weighted mean colour distance inside the face mask.

  The weights w = w_skin * mask are treated as constants (no gradient flows
  through them). A sample whose weights sum to 0 (empty render, or no skin
  inside it) has loss 0 with finite (zero) gradients.

  Args:
    images: `[B, H, W, 3]` input images I, RGB in [0, 1].
    rendered_images: `[B, H, W, 3]` renders I_re composited over `images`,
      RGB in [0, 1] (`RenderOutput.image`).
    mask: `[B, H, W, 1]` or `[B, H, W]` rendered face mask M in {0, 1}
      (`RenderOutput.mask`); soft values in [0, 1] act as weights.
    skin_weights: optional `[B, H, W, 1]` or `[B, H, W]` skin probability
      w_skin in [0, 1]; None weights every face pixel by 1.
    name: name scope of the ops.

  Returns:
    `[B]` tensor: the weighted mean of ||I(i) - I_re(i)||_2 over the face
    pixels, in colour units ([0, 1] per channel), dtype of `images`.

  Raises:
    ValueError: if the images are not `[B, H, W, 3]` or a weight map is not
      `[B, H, W(, 1)]`.
  """
  with tf.name_scope(name):
    images = tf.convert_to_tensor(images, name="images")
    if not images.dtype.is_floating:
      images = tf.cast(images, tf.float32)
    rendered_images = tf.convert_to_tensor(
        rendered_images, dtype=images.dtype, name="rendered_images")
    for key, value in (("images", images),
                       ("rendered_images", rendered_images)):
      if value.shape.rank != 4 or value.shape[-1] not in (None, 3):
        raise ValueError(f"`{key}` must have shape [B, H, W, 3]. "
                         f"Received: {key}.shape={tuple(value.shape)}")
    weights = _as_weight_map(mask, "mask", images.dtype)
    if skin_weights is not None:
      weights = weights * _as_weight_map(skin_weights, "skin_weights",
                                         images.dtype)
    weights = tf.stop_gradient(weights)

    error = safe_norm(images - rendered_images, axis=-1)  # [B, H, W]
    numerator = tf.reduce_sum(weights * error, axis=[1, 2])
    denominator = tf.reduce_sum(weights, axis=[1, 2])
    return tf.math.divide_no_nan(numerator, denominator)
