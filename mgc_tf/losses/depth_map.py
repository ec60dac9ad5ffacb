"""DepthNet terms of Shu et al. (eqs. 8-15): per-pixel depth, 3DMM and views.

  depth_l1:                 |D' - D^'| on ground-truth face pixels (eq. 8)
  normal_loss:              |N_D - N_D^| by finite differences (eq. 9)
  depth_regularizer:        (D' - D'_S)^2, D'_S the 3DMM render, no
                            gradient to it (eq. 10; lambda = 0.02 is the
                            method's weight)
  occlusion_mask:           M^o from warping the 3DMM depth between views,
                            threshold 0.05 in D' units (eqs. 12-13)
  photo_consistency:        |h(I^1) M^o (I^1 - I^(2->1))| (eqs. 11, 14)
  suitability_regularizer:  |C - 1| (eq. 15)

Depths D' are the normalised maps of `mgc_tf.geometry.depth_map` (a, c and
xi_V for our camera are stated there); depths in mm are camera z. Warping
reuses `mgc_tf.render.view_synthesis.synthesize_view` (the view synthesis
of MGCNet's consistency losses), so the two methods share one warp.

Pure per-sample functions: each returns [B]; a sample with an empty mask
gives 0 with finite gradients. Shapes: B batch, H x W the maps.
"""

from typing import NamedTuple

import tensorflow as tf

from mgc_tf.geometry import depth_map
from mgc_tf.losses import photometric
from mgc_tf.render import view_synthesis

#: Occlusion threshold of eq. 13 in D' units (the paper's 0.05).
OCCLUSION_THRESHOLD = 0.05


def _masked_mean(values, weights):
  """sum(w v) / sum(w) over [H, W, C] per sample; 0 where sum(w) = 0."""
  return tf.math.divide_no_nan(tf.reduce_sum(values * weights, [1, 2, 3]),
                               tf.reduce_sum(weights, [1, 2, 3]))


def _map(value, key, channels=1):
  tensor = tf.convert_to_tensor(value, tf.float32)
  if tensor.shape.rank is not None and (
      tensor.shape.rank != 4 or
      (channels and tensor.shape[-1] not in (None, channels))):
    expected = f"[B, H, W, {channels}]" if channels else "[B, H, W, C]"
    raise ValueError(f"`{key}` must have shape {expected}. Received: "
                     f"{key}.shape={tensor.shape}")
  return tensor


def depth_l1(depth, depth_true, name: str = "depth_l1") -> tf.Tensor:
  """Eq. 8: mean |D' - D^'| over the pixels where the ground truth is face.

  Args:
    depth: [B, H, W, 1] predicted D'.
    depth_true: [B, H, W, 1] ground-truth D' (`normalize_depth`), 0 off the
      face; only its face pixels (> 0) count.
    name: name scope.

  Returns:
    [B] float32, D' units (x 300 mm for ours).
  """
  with tf.name_scope(name):
    depth, depth_true = _map(depth, "depth"), _map(depth_true, "depth_true")
    face = tf.cast(depth_true > 0.0, tf.float32)
    return _masked_mean(tf.abs(depth - depth_true), face)


def normal_loss(depth_mm, depth_true_mm, intrinsics,
                name: str = "normal_loss") -> tf.Tensor:
  """Eq. 9: mean L1 distance of unit normals (finite differences).

  Normals come from `mgc_tf.geometry.depth_map.depth_normals` of each
  depth map; a pixel counts where the ground-truth normal is valid.

  Args:
    depth_mm: [B, H, W, 1] predicted depth, mm (positive everywhere the
      ground truth is face).
    depth_true_mm: [B, H, W, 1] ground-truth depth, mm, 0 off the face.
    intrinsics: [B, 3, 3] K, pixels.
    name: name scope.

  Returns:
    [B] float32, sum over x, y, z of |n - n^| averaged over pixels (in
    [0, 2 sqrt(3)]).
  """
  with tf.name_scope(name):
    normals, _ = depth_map.depth_normals(_map(depth_mm, "depth_mm"),
                                         intrinsics)
    normals_true, valid = depth_map.depth_normals(
        _map(depth_true_mm, "depth_true_mm"), intrinsics)
    error = tf.reduce_sum(tf.abs(normals - normals_true), -1, keepdims=True)
    return _masked_mean(error, valid)


def depth_regularizer(depth, depth_3dmm,
                      name: str = "depth_regularizer") -> tf.Tensor:
  """Eq. 10: mean (D' - D'_S)^2 over all pixels, no gradient to D'_S.

  D'_S is the normalised depth render of g's 3DMM (0 off its face), so the
  term also teaches f the background value 0. The gradient reaches only
  the depth network (the paper: "back-propagated only to DepthNet").

  Args:
    depth: [B, H, W, 1] predicted D'.
    depth_3dmm: [B, H, W, 1] D'_S.
    name: name scope.

  Returns:
    [B] float32, squared D' units.
  """
  with tf.name_scope(name):
    depth = _map(depth, "depth")
    depth_3dmm = tf.stop_gradient(_map(depth_3dmm, "depth_3dmm"))
    return tf.reduce_mean(tf.square(depth - depth_3dmm), [1, 2, 3])


def occlusion_mask(depth_3dmm_mm, source_depth_3dmm_mm, intrinsics,
                   source_intrinsics, rotation, translation,
                   threshold: float = OCCLUSION_THRESHOLD,
                   scale: float = depth_map.DEPTH_SCALE,
                   name: str = "occlusion_mask") -> tf.Tensor:
  """Eqs. 12-13: M^o, target pixels whose surface point the source sees.

  Each target pixel p with 3DMM depth D_S^1(p) > 0 is carried into the
  source camera (X_s = R_rel X + t_rel, `synthesize_view`); the source's
  3DMM depth map sampled bilinearly at its projection is compared with
  X_s.z. They agree where the source sees that same point; where something
  nearer hides it (or the source sees background) they differ. M^o = 1
  where the projection lands inside the source image and the two depths
  differ by at most `threshold` in D' units, i.e. threshold / a mm.

  Args:
    depth_3dmm_mm: [B, H, W, 1] 3DMM depth of the target view (view 1),
      mm, 0 off the face.
    source_depth_3dmm_mm: [B, H_s, W_s, 1] 3DMM depth of the source view
      (view 2), mm.
    intrinsics, source_intrinsics: [B, 3, 3] K_1 and K_2.
    rotation: [B, 3, 3] R_rel, target camera -> source camera.
    translation: [B, 3] t_rel, mm.
    threshold: in D' units (0.05 in the paper).
    scale: a of eq. 7 (per mm).
    name: name scope.

  Returns:
    [B, H, W, 1] float32 in {0, 1}, no gradient.
  """
  with tf.name_scope(name):
    depth_3dmm_mm = _map(depth_3dmm_mm, "depth_3dmm_mm")
    source_depth_3dmm_mm = _map(source_depth_3dmm_mm, "source_depth_3dmm_mm")
    # Only depths are sampled: the source "image" is its depth map.
    synth = view_synthesis.synthesize_view(
        source_depth_3dmm_mm, source_depth_3dmm_mm, depth_3dmm_mm,
        intrinsics, source_intrinsics, rotation, translation)
    close = tf.abs(synth.sampled_depth - synth.warped_depth) <= (
        threshold / scale)
    return tf.stop_gradient(synth.valid * tf.cast(close, tf.float32))


class WarpedView(NamedTuple):
  """I^(2->1) and where it is defined.

  Attributes:
    image: [B, H, W, C] the source image sampled at the projections.
    valid: [B, H, W, 1] float32, 1 where the projection is inside the
      source image and in front of its camera (no gradient).
  """
  image: tf.Tensor
  valid: tf.Tensor


def warp_image(source_image, depth_mm, intrinsics, source_intrinsics,
               rotation, translation, name: str = "warp_image") -> WarpedView:
  """Eq. 11's w: the source view re-drawn in the target view.

  Inverse warping needs the depth of the view being synthesised, so this is
  f's depth of view 1 (the target) where the paper writes f(I^2); that is
  how view-synthesis losses with a bilinear sampler work (SfM-Net, Zhou et
  al.). Differentiable in the image, the depth and the pose.

  Args:
    source_image: [B, H_s, W_s, C] I^2.
    depth_mm: [B, H, W, 1] depth of the target view, mm (positive).
    intrinsics, source_intrinsics: [B, 3, 3] K_1 and K_2.
    rotation, translation: [B, 3, 3], [B, 3] target -> source, mm.
    name: name scope.

  Returns:
    `WarpedView`.
  """
  with tf.name_scope(name):
    depth_mm = _map(depth_mm, "depth_mm")
    source_image = _map(source_image, "source_image", channels=None)
    # The source depth only feeds outputs we do not use here.
    placeholder = tf.zeros_like(source_image[..., :1])
    synth = view_synthesis.synthesize_view(
        source_image, placeholder, depth_mm, intrinsics, source_intrinsics,
        rotation, translation)
    return WarpedView(image=synth.image, valid=synth.valid)


def photo_consistency(image, warped_image, mask, suitability=None,
                      name: str = "photo_consistency") -> tf.Tensor:
  """Eqs. 11, 12 and 14: suitability-weighted masked photometric error.

    E = sum_p C(p) M(p) ||I^1(p) - I^(2->1)(p)||_2 / sum_p M(p)

  The denominator counts M only, not C: dividing by sum C M would make the
  term blind to the scale of C, and then eq. 15 alone would set C. As in
  the paper, C = 0 everywhere is the trivial minimum that eq. 15 prevents.

  Args:
    image: [B, H, W, C] I^1 (in [0, 1]).
    warped_image: [B, H, W, C] I^(2->1).
    mask: [B, H, W, 1] M^o (times the warp's valid map), no gradient.
    suitability: [B, H, W, 1] C = h(I^1) in [0, 1]; None: 1 (eq. 12).
    name: name scope.

  Returns:
    [B] float32, image units.
  """
  with tf.name_scope(name):
    image = _map(image, "image", channels=None)
    warped_image = _map(warped_image, "warped_image", channels=None)
    mask = tf.stop_gradient(_map(mask, "mask"))
    error = photometric.safe_norm(image - warped_image)[..., None]
    if suitability is not None:
      error = error * _map(suitability, "suitability")
    return _masked_mean(error, mask)


def suitability_regularizer(suitability,
                            name: str = "suitability_regularizer"
                            ) -> tf.Tensor:
  """Eq. 15: mean |C - 1| over the map.

  Args:
    suitability: [B, H, W, 1] C in [0, 1].
    name: name scope.

  Returns:
    [B] float32 in [0, 1].
  """
  with tf.name_scope(name):
    suitability = _map(suitability, "suitability")
    return tf.reduce_mean(tf.abs(suitability - 1.0), [1, 2, 3])
