"""Multi-view consistency terms on covisible pixels (MGCNet eqs. 3 and 4).

Pure per-sample functions of tensors: each takes a synthesized target view
(`mgc_tf.render.view_synthesis.synthesize_view`), the target, and a covisible
weight map C (typically `covisible_map(...) * SynthesizedView.valid`), and
returns one value per sample, [B]. A sample with an empty C gives 0, and the
gradients stay finite (no 0 / 0, no sqrt(0) derivative).

Shapes: B batch, H x W the target image, C image channels.
"""

import tensorflow as tf

from mgc_tf.losses import photometric

#: SSIM stabilisers for images in [0, 1]: (0.01 L)^2 and (0.03 L)^2 with L = 1.
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def _masked_mean(values: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
  """sum(w v) / sum(w) per sample over [H, W, 1]; 0 where sum(w) = 0."""
  total = tf.reduce_sum(values * weights, axis=[1, 2, 3])
  count = tf.reduce_sum(weights, axis=[1, 2, 3])
  return tf.math.divide_no_nan(total, count)


def _as_maps(*named):
  """float32 [B, H, W, C] tensors from (value, name) pairs, shapes checked.

  The last one is the covisible map and carries no gradient.
  """
  tensors = []
  for value, key in named:
    tensor = tf.convert_to_tensor(value, tf.float32)
    _check_map(tensor, key)
    tensors.append(tensor)
  tensors[-1] = tf.stop_gradient(tensors[-1])
  return tensors


def _check_map(tensor: tf.Tensor, key: str) -> None:
  if tensor.shape.rank is not None and tensor.shape.rank != 4:
    raise ValueError(f"`{key}` must have shape [B, H, W, C]. Received: "
                     f"{key}.shape={tensor.shape}")


def pixel_consistency(synth_image: tf.Tensor,
                      target_image: tf.Tensor,
                      covisible: tf.Tensor,
                      name: str = "pixel_consistency") -> tf.Tensor:
  """Mean over C of ||I~_t^s(p) - I_t(p)||_2 (MGCNet eq. 3, DESIGN.md 5).

  Args:
    synth_image: [B, H, W, C] float32 target image synthesized from a source
      view, I~_t^s.
    target_image: [B, H, W, C] float32 target image I_t.
    covisible: [B, H, W, 1] float32 covisible weights C (0/1; fractional
      weights give a weighted mean). Treated as a constant (no gradient).
    name: name scope of the ops.

  Returns:
    [B] float32: sum_p C(p) ||I~(p) - I(p)|| / sum_p C(p), the L2 norm taken
    over channels (image units, e.g. RGB in [0, 1]); 0 where sum C = 0.
  """
  with tf.name_scope(name):
    synth_image, target_image, covisible = _as_maps((synth_image, "synth_image"), (target_image, "target_image"),
                                   (covisible, "covisible"))
    error = photometric.safe_norm(synth_image - target_image)[..., None]
    return _masked_mean(error, covisible)


def depth_scale(synth_depth: tf.Tensor,
                target_depth: tf.Tensor,
                covisible: tf.Tensor,
                name: str = "depth_scale") -> tf.Tensor:
  """S = sum(D_t C) / sum(D~ C) per sample (MGCNet eq. 4); 0 if undefined.

  Args:
    synth_depth: [B, H, W, 1] float32 synthesized depth D~, mm.
    target_depth: [B, H, W, 1] float32 reference depth D_t, mm.
    covisible: [B, H, W, 1] float32 weights C (no gradient).
    name: name scope of the ops.

  Returns:
    [B, 1, 1, 1] float32, dimensionless; differentiable in both depths.
  """
  with tf.name_scope(name):
    synth_depth = tf.convert_to_tensor(synth_depth, tf.float32)
    target_depth = tf.convert_to_tensor(target_depth, tf.float32)
    covisible = tf.stop_gradient(tf.convert_to_tensor(covisible, tf.float32))
    numerator = tf.reduce_sum(target_depth * covisible, axis=[1, 2, 3],
                              keepdims=True)
    denominator = tf.reduce_sum(synth_depth * covisible, axis=[1, 2, 3],
                                keepdims=True)
    return tf.math.divide_no_nan(numerator, denominator)


def depth_consistency(synth_depth: tf.Tensor,
                      target_depth: tf.Tensor,
                      covisible: tf.Tensor,
                      name: str = "depth_consistency") -> tf.Tensor:
  """Scale-rectified L1 depth error over C (MGCNet eq. 4, DESIGN.md 5).

  S = sum_p D_t(p) C(p) / sum_p D~(p) C(p) and the result is
  sum_p C(p) |S D~(p) - D_t(p)| / sum_p C(p). The gradient flows through S.

  Per DESIGN.md, D~ is `SynthesizedView.sampled_depth` (the source depth map
  sampled at p_s) and D_t the rendered target depth. Passing
  `SynthesizedView.warped_depth` (X_s.z) as `target_depth` instead compares
  both depths in the source camera frame, where consistent geometry gives 0.

  Args:
    synth_depth: [B, H, W, 1] float32 synthesized depth D~, mm.
    target_depth: [B, H, W, 1] float32 reference depth D_t, mm.
    covisible: [B, H, W, 1] float32 covisible weights C (no gradient).
    name: name scope of the ops.

  Returns:
    [B] float32, mm; 0 where sum C = 0.
  """
  with tf.name_scope(name):
    synth_depth, target_depth, covisible = _as_maps((synth_depth, "synth_depth"), (target_depth, "target_depth"),
                                   (covisible, "covisible"))
    scale = depth_scale(synth_depth, target_depth, covisible)
    error = tf.abs(scale * synth_depth - target_depth)
    return _masked_mean(error, covisible)


def ssim_map(x: tf.Tensor, y: tf.Tensor, window: int = 3,
             name: str = "ssim_map") -> tf.Tensor:
  """SSIM with a `window` x `window` mean filter, VALID padding.

  SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)
  (s_x + s_y + C2)), with local means, variances and covariance from
  `window` x `window` box filters (as in MGCNet / SfMLearner) and
  C1 = 0.01^2, C2 = 0.03^2 for images in [0, 1].

  Args:
    x, y: [B, H, W, C] float32 images.
    window: odd filter size >= 3.
    name: name scope of the ops.

  Returns:
    [B, H - window + 1, W - window + 1, C] float32 SSIM per channel.
  """
  with tf.name_scope(name):
    def pool(t):
      return tf.nn.avg_pool2d(t, window, 1, "VALID")
    mu_x, mu_y = pool(x), pool(y)
    sigma_x = pool(x * x) - mu_x * mu_x
    sigma_y = pool(y * y) - mu_y * mu_y
    sigma_xy = pool(x * y) - mu_x * mu_y
    numerator = (2.0 * mu_x * mu_y + SSIM_C1) * (2.0 * sigma_xy + SSIM_C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (
        sigma_x + sigma_y + SSIM_C2)
    return numerator / denominator


def ssim_consistency(synth_image: tf.Tensor,
                     target_image: tf.Tensor,
                     covisible: tf.Tensor,
                     window: int = 3,
                     name: str = "ssim_consistency") -> tf.Tensor:
  """Mean over C of the structural dissimilarity (1 - SSIM) / 2.

  The SSIM map (see `ssim_map`) is averaged over channels and clipped to
  [0, 1] after (1 - SSIM) / 2. Each VALID window is weighted by the fraction
  of its pixels that are covisible (C box-filtered with the same window, as
  in MGCNet's code), so windows straddling the covisible border count less.

  Args:
    synth_image: [B, H, W, C] float32 synthesized target image, in [0, 1].
    target_image: [B, H, W, C] float32 target image, in [0, 1].
    covisible: [B, H, W, 1] float32 covisible weights C (no gradient).
    window: odd mean-filter size >= 3 (3 or 7 are usual).
    name: name scope of the ops.

  Returns:
    [B] float32 in [0, 1]; 0 where no window touches C.

  Raises:
    ValueError: if `window` is not an odd integer >= 3.
  """
  if not isinstance(window, int) or window < 3 or window % 2 == 0:
    raise ValueError(f"`window` must be an odd integer >= 3. Received: "
                     f"window={window!r}")
  with tf.name_scope(name):
    synth_image, target_image, covisible = _as_maps((synth_image, "synth_image"), (target_image, "target_image"),
                                   (covisible, "covisible"))
    ssim = ssim_map(synth_image, target_image, window)
    dssim = tf.clip_by_value((1.0 - ssim) / 2.0, 0.0, 1.0)
    dssim = tf.reduce_mean(dssim, axis=-1, keepdims=True)
    weights = tf.nn.avg_pool2d(covisible, window, 1, "VALID")
    return _masked_mean(dssim, weights)
