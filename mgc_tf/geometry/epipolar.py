"""Two-view geometry: relative pose, essential and fundamental matrices, and the
symmetric epipolar distance used by MGCNet's epipolar loss.

Conventions (DESIGN.md sections 4 and 5): each view v has a model -> camera
pose (R_v, t_v), X_v = R_v X + t_v (millimetres, OpenCV camera axes). For a
target view t and a source view s:

  R_rel = R_s R_t^T,   t_rel = t_s - R_rel t_t  (X_s = R_rel X_t + t_rel),
  E = [t_rel]_x R_rel                    (x_s^T E x_t = 0 with x = K^-1 p),
  F = K_s^-T E K_t^-1                    (p_s^T F p_t = 0),

with p homogeneous pixel coordinates (x, y, 1). E and F carry the scale of
t_rel (millimetres); the distances below do not depend on it.

Batch convention: `[A1, ..., An]` are leading batch dimensions that broadcast
between arguments with NumPy rules (for example a target of shape [B, 1, ...]
against sources of shape [B, N, ...]). L is a number of point pairs.
"""

from typing import Tuple

import tensorflow as tf

from mgc_tf.geometry import _checks
from mgc_tf.geometry import camera

#: Default epsilon added to squared epipolar-line norms, in the units of
#: (F p)_{1,2} squared (pixels^-2 times the squared scale of F).
DEFAULT_LINE_EPSILON = 1e-12


def relative_pose(rotation_target,
                  translation_target,
                  rotation_source,
                  translation_source,
                  name: str = "relative_pose") -> Tuple[tf.Tensor, tf.Tensor]:
  """Relative pose from the target camera frame to the source camera frame.

  R_rel = R_s R_t^T and t_rel = t_s - R_rel t_t, so that a point seen at X_t
  in the target camera frame is at X_s = R_rel X_t + t_rel in the source
  camera frame.

  Args:
    rotation_target: `[A1, ..., An, 3, 3]` model -> target-camera rotation.
    translation_target: `[A1, ..., An, 3]` model -> target-camera translation,
      millimetres.
    rotation_source: `[A1, ..., An, 3, 3]` model -> source-camera rotation.
    translation_source: `[A1, ..., An, 3]` model -> source-camera
      translation, millimetres.
    name: name scope of the ops.

  Returns:
    A tuple (R_rel, t_rel) of shapes `[A1, ..., An, 3, 3]` and
    `[A1, ..., An, 3]` (millimetres), the batch dimensions of all four inputs
    broadcast together.

  Raises:
    ValueError: on bad static shapes or non-broadcasting batch dimensions.
  """
  with tf.name_scope(name):
    inputs = _checks.convert_inputs({
        "rotation_target": rotation_target,
        "translation_target": translation_target,
        "rotation_source": rotation_source,
        "translation_source": translation_source,
    })
    r_t = inputs["rotation_target"]
    t_t = inputs["translation_target"]
    r_s = inputs["rotation_source"]
    t_s = inputs["translation_source"]
    for key in ("rotation_target", "rotation_source"):
      _checks.check_shape(inputs[key], key, (3, 3), "[A1, ..., An, 3, 3]")
    for key in ("translation_target", "translation_source"):
      _checks.check_shape(inputs[key], key, (3,), "[A1, ..., An, 3]")
    _checks.check_broadcastable({
        "rotation_target": _checks.batch_shape(r_t, 2),
        "translation_target": _checks.batch_shape(t_t, 1),
        "rotation_source": _checks.batch_shape(r_s, 2),
        "translation_source": _checks.batch_shape(t_s, 1),
    })

    r_rel = tf.linalg.matmul(r_s, r_t, transpose_b=True)
    t_rel = t_s - tf.linalg.matvec(r_rel, t_t)
    # Broadcast R_rel to the full batch shape too (t_rel already has it).
    batch = tf.shape(t_rel)[:-1]
    r_rel = tf.broadcast_to(r_rel, tf.concat([batch, [3, 3]], axis=0))
    return r_rel, t_rel


def skew(vector, name: str = "skew") -> tf.Tensor:
  """Cross-product matrix [v]_x, such that [v]_x w = v x w.

  [v]_x = [[0, -v3, v2], [v3, 0, -v1], [-v2, v1, 0]].

  Args:
    vector: `[A1, ..., An, 3]` tensor v.
    name: name scope of the ops.

  Returns:
    `[A1, ..., An, 3, 3]` skew-symmetric tensor.

  Raises:
    ValueError: if `vector` is not of shape [..., 3].
  """
  with tf.name_scope(name):
    v = _checks.convert_inputs({"vector": vector})["vector"]
    _checks.check_shape(v, "vector", (3,), "[A1, ..., An, 3]")
    v1, v2, v3 = _checks.split_last(v, 3)
    zero = tf.zeros_like(v1)
    rows = [
        tf.stack([zero, -v3, v2], axis=-1),
        tf.stack([v3, zero, -v1], axis=-1),
        tf.stack([-v2, v1, zero], axis=-1),
    ]
    return tf.stack(rows, axis=-2)


def essential_matrix(rotation_relative,
                     translation_relative,
                     name: str = "essential_matrix") -> tf.Tensor:
  """Essential matrix E = [t_rel]_x R_rel of a target -> source relative pose.

  For a point with normalised target coordinates x_t = K_t^-1 p_t and source
  coordinates x_s = K_s^-1 p_s, x_s^T E x_t = 0.

  Args:
    rotation_relative: `[A1, ..., An, 3, 3]` tensor R_rel (see
      `relative_pose`).
    translation_relative: `[A1, ..., An, 3]` tensor t_rel, millimetres.
    name: name scope of the ops.

  Returns:
    `[A1, ..., An, 3, 3]` tensor E (scaled by |t_rel|, millimetres).

  Raises:
    ValueError: on bad static shapes or non-broadcasting batch dimensions.
  """
  with tf.name_scope(name):
    inputs = _checks.convert_inputs({
        "rotation_relative": rotation_relative,
        "translation_relative": translation_relative,
    })
    r = inputs["rotation_relative"]
    t = inputs["translation_relative"]
    _checks.check_shape(r, "rotation_relative", (3, 3), "[A1, ..., An, 3, 3]")
    _checks.check_shape(t, "translation_relative", (3,), "[A1, ..., An, 3]")
    _checks.check_broadcastable({
        "rotation_relative": _checks.batch_shape(r, 2),
        "translation_relative": _checks.batch_shape(t, 1),
    })
    return tf.linalg.matmul(skew(t), r)


def fundamental_matrix(essential,
                       intrinsics_target,
                       intrinsics_source,
                       name: str = "fundamental_matrix") -> tf.Tensor:
  """Fundamental matrix F = K_s^-T E K_t^-1, so that p_s^T F p_t = 0.

  Args:
    essential: `[A1, ..., An, 3, 3]` essential matrix E (target -> source).
    intrinsics_target: `[A1, ..., An, 3, 3]` target intrinsics K_t, pixels
      (upper triangular, K[2, 2] = 1; see `camera.invert_intrinsics`).
    intrinsics_source: `[A1, ..., An, 3, 3]` source intrinsics K_s, pixels.
    name: name scope of the ops.

  Returns:
    `[A1, ..., An, 3, 3]` tensor F acting on homogeneous pixel coordinates
    (x, y, 1): F p_t is the epipolar line of p_t in the source image.

  Raises:
    ValueError: on bad static shapes or non-broadcasting batch dimensions.
  """
  with tf.name_scope(name):
    inputs = _checks.convert_inputs({
        "essential": essential,
        "intrinsics_target": intrinsics_target,
        "intrinsics_source": intrinsics_source,
    })
    for key, value in inputs.items():
      _checks.check_shape(value, key, (3, 3), "[A1, ..., An, 3, 3]")
    _checks.check_broadcastable(
        {key: _checks.batch_shape(value, 2) for key, value in inputs.items()})
    k_t_inv = camera.invert_intrinsics(inputs["intrinsics_target"])
    k_s_inv = camera.invert_intrinsics(inputs["intrinsics_source"])
    return tf.linalg.matmul(
        tf.linalg.matmul(k_s_inv, inputs["essential"], transpose_a=True),
        k_t_inv)


def symmetric_epipolar_distance(fundamental,
                                points_target,
                                points_source,
                                epsilon: float = DEFAULT_LINE_EPSILON,
                                name: str = "symmetric_epipolar_distance"
                                ) -> tf.Tensor:
  """Mean of the two point-to-epipolar-line distances of each point pair.

  With l_s = F p_t (the line of p_t in the source image) and l_t = F^T p_s,

    d = 0.5 * (|p_s^T F p_t| / ||(l_s)_{1,2}||
               + |p_t^T F^T p_s| / ||(l_t)_{1,2}||),

  i.e. the mean of the distance of p_s to l_s and of p_t to l_t, in pixels.
  Each norm is computed as sqrt(a^2 + b^2 + epsilon), so the value and its
  gradient stay finite when a line has a zero normal (F = 0, i.e. no
  translation between the views, or a point at an epipole: then the
  numerator is 0 too and the distance is 0). `epsilon` is in the squared
  units of (F p)_{1,2}; the default is far below their size for the MGCNet
  camera (|t_rel| of millimetres to metres, f of hundreds to thousands of
  pixels), so it does not bias the distance there.

  Args:
    fundamental: `[A1, ..., An, 3, 3]` fundamental matrix F (target ->
      source, see `fundamental_matrix`).
    points_target: `[A1, ..., An, L, 2]` target pixels p_t, (x, y).
    points_source: `[A1, ..., An, L, 2]` corresponding source pixels p_s.
    epsilon: non-negative number added to each squared line norm; 0 gives
      the exact formula, which is NaN (0 / 0) for a zero line.
    name: name scope of the ops.

  Returns:
    `[A1, ..., An, L]` tensor of distances, pixels.

  Raises:
    ValueError: on bad static shapes, non-broadcasting batch dimensions or a
      negative epsilon.
  """
  with tf.name_scope(name):
    if epsilon < 0:
      raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon}")
    inputs = _checks.convert_inputs({
        "fundamental": fundamental,
        "points_target": points_target,
        "points_source": points_source,
    })
    f = inputs["fundamental"]
    p_t = inputs["points_target"]
    p_s = inputs["points_source"]
    _checks.check_shape(f, "fundamental", (3, 3), "[A1, ..., An, 3, 3]")
    _checks.check_shape(p_t, "points_target", (None, 2), "[A1, ..., An, L, 2]")
    _checks.check_shape(p_s, "points_source", (None, 2), "[A1, ..., An, L, 2]")
    _checks.check_broadcastable({
        "points_target": _checks.batch_shape(p_t, 1),
        "points_source": _checks.batch_shape(p_s, 1),
    })
    _checks.check_broadcastable({
        "fundamental": _checks.batch_shape(f, 2),
        "points_target": _checks.batch_shape(p_t, 2),
        "points_source": _checks.batch_shape(p_s, 2),
    })

    f = f[..., tf.newaxis, :, :]
    h_t = tf.concat([p_t, tf.ones_like(p_t[..., :1])], axis=-1)
    h_s = tf.concat([p_s, tf.ones_like(p_s[..., :1])], axis=-1)
    line_source = tf.linalg.matvec(f, h_t)  # F p_t, [..., L, 3]
    line_target = tf.linalg.matvec(f, h_s, transpose_a=True)  # F^T p_s
    residual = tf.abs(tf.reduce_sum(h_s * line_source, axis=-1))
    eps = tf.cast(epsilon, residual.dtype)
    norm_source = tf.sqrt(
        tf.reduce_sum(tf.square(line_source[..., :2]), axis=-1) + eps)
    norm_target = tf.sqrt(
        tf.reduce_sum(tf.square(line_target[..., :2]), axis=-1) + eps)
    return 0.5 * (residual / norm_source + residual / norm_target)
