"""Facial epipolar loss on ground-truth landmarks (symmetric epipolar distance).

For a (target, source) view pair with predicted model -> camera poses
(R_t, t_t) and (R_s, t_s):

  R_rel = R_s R_t^T,  t_rel = t_s - R_rel t_t,
  E = [t_rel]_x R_rel,  F = K_s^-T E K_t^-1,
  d_k = 0.5 (|p_s^T F p_t| / ||(F p_t)_{1,2}||
             + |p_t^T F^T p_s| / ||(F^T p_s)_{1,2}||),
  L_epi = mean_k d_k,

with (p_t, p_s) the k-th ground-truth landmark in the two crops (MGCNet
paper section 3.7, DESIGN.md section 5). The distances are in pixels and do
not depend on the scale of t_rel. The default weight w_epi = 1e-3 and the
per-sample gating (flag 2) are applied by the combinator.

Batch convention: `[A1, ..., An]` leading dimensions (e.g. [B] or [B, P]
pairs), L landmarks.
"""

import tensorflow as tf

from mgc_tf import geometry


def epipolar_loss(rotation_target,
                  translation_target,
                  rotation_source,
                  translation_source,
                  intrinsics_target,
                  intrinsics_source,
                  landmarks_target,
                  landmarks_source,
                  weights=None,
                  epsilon: float = geometry.DEFAULT_LINE_EPSILON,
                  name: str = "epipolar_loss") -> tf.Tensor:
  """Per-sample mean symmetric epipolar distance of landmark pairs.

  Gradients flow to the poses (and intrinsics); the landmarks are data. A
  pair with no relative translation has F = 0 and loss 0 with finite
  gradients (see `geometry.symmetric_epipolar_distance`).

  Args:
    rotation_target: `[A1, ..., An, 3, 3]` model -> target-camera R_t.
    translation_target: `[A1, ..., An, 3]` model -> target-camera t_t, mm.
    rotation_source: `[A1, ..., An, 3, 3]` model -> source-camera R_s.
    translation_source: `[A1, ..., An, 3]` model -> source-camera t_s, mm.
    intrinsics_target: `[A1, ..., An, 3, 3]` K_t, pixels.
    intrinsics_source: `[A1, ..., An, 3, 3]` K_s, pixels.
    landmarks_target: `[A1, ..., An, L, 2]` ground-truth target landmarks
      p_t, (x, y) crop pixels.
    landmarks_source: `[A1, ..., An, L, 2]` the same landmarks in the source
      crop, p_s.
    weights: optional `[L]` or `[A1, ..., An, L]` non-negative landmark
      weights (e.g. visibility); the result is then sum_k w_k d_k /
      sum_k w_k, and 0 where the weights sum to 0. None averages uniformly.
    epsilon: added to each squared epipolar-line norm (see
      `geometry.symmetric_epipolar_distance`).
    name: name scope of the ops.

  Returns:
    `[A1, ..., An]` tensor of mean distances, pixels; float32 unless float64
    tensors are given.

  Raises:
    ValueError: on bad static shapes, mixed tensor dtypes or non-broadcasting
      batch dimensions.
  """
  with tf.name_scope(name):
    r_rel, t_rel = geometry.relative_pose(rotation_target, translation_target,
                                          rotation_source, translation_source)
    essential = geometry.essential_matrix(r_rel, t_rel)
    fundamental = geometry.fundamental_matrix(essential, intrinsics_target,
                                              intrinsics_source)
    distances = geometry.symmetric_epipolar_distance(
        fundamental, landmarks_target, landmarks_source, epsilon=epsilon)
    if weights is None:
      return tf.reduce_mean(distances, axis=-1)
    weights = tf.convert_to_tensor(weights, dtype=distances.dtype,
                                   name="weights")
    weights = tf.broadcast_to(weights, tf.shape(distances))
    return tf.math.divide_no_nan(
        tf.reduce_sum(weights * distances, axis=-1),
        tf.reduce_sum(weights, axis=-1))


def epipolar_loss_from_poses(pose_target,
                             pose_source,
                             intrinsics_target,
                             intrinsics_source,
                             landmarks_target,
                             landmarks_source,
                             weights=None,
                             epsilon: float = geometry.DEFAULT_LINE_EPSILON,
                             name: str = "epipolar_loss_from_poses"
                             ) -> tf.Tensor:
  """`epipolar_loss` with poses given as `[A1, ..., An, 6]` vectors.

  Args:
    pose_target: `[A1, ..., An, 6]` full target pose (rz, ry, rx) radians,
      (tx, ty, tz) mm (`DecodedFace.pose`).
    pose_source: `[A1, ..., An, 6]` full source pose.
    intrinsics_target, intrinsics_source, landmarks_target, landmarks_source,
    weights, epsilon: as in `epipolar_loss`.
    name: name scope of the ops.

  Returns:
    `[A1, ..., An]` tensor of mean distances, pixels.
  """
  with tf.name_scope(name):
    r_t, t_t = geometry.pose_to_rotation_translation(pose_target)
    r_s, t_s = geometry.pose_to_rotation_translation(pose_source)
    return epipolar_loss(r_t, t_t, r_s, t_s, intrinsics_target,
                         intrinsics_source, landmarks_target,
                         landmarks_source, weights=weights, epsilon=epsilon)
