"""Euler angles <-> rotation matrices in MGCNet's convention, and pose vectors.

Convention (DESIGN.md section 4): angles are stored in the order
(rz, ry, rx), radians, and the rotation is

  R = Rx(rx) @ Ry(ry) @ Rz(rz),

with the right-handed elementary rotations

  Rx(a) = [[1, 0, 0], [0, cos a, -sin a], [0, sin a, cos a]],
  Ry(a) = [[cos a, 0, sin a], [0, 1, 0], [-sin a, 0, cos a]],
  Rz(a) = [[cos a, -sin a, 0], [sin a, cos a, 0], [0, 0, 1]].

A model-frame point X goes to the camera frame as X_c = R X + t. This is the
rotation of MGCNet / Deep3DFaceReconstruction (which build the transposed
matrix and multiply row vectors from the right, the same map).

A pose vector is `[A1, ..., An, 6]` = (rz, ry, rx) radians then (tx, ty, tz)
millimetres.
"""

from typing import Tuple

import tensorflow as tf

from mgc_tf.geometry import _checks


def euler_to_rotation(angles, name: str = "euler_to_rotation") -> tf.Tensor:
  """Builds R = Rx(rx) @ Ry(ry) @ Rz(rz) from angles in (rz, ry, rx) order.

  Args:
    angles: `[A1, ..., An, 3]` tensor of (rz, ry, rx), radians.
    name: name scope of the ops.

  Returns:
    `[A1, ..., An, 3, 3]` tensor of rotation matrices (orthonormal, det 1),
    same dtype as `angles` (float32 by default).

  Raises:
    ValueError: if `angles` is not of shape [..., 3].
  """
  with tf.name_scope(name):
    angles = _checks.convert_inputs({"angles": angles})["angles"]
    _checks.check_shape(angles, "angles", (3,), "[A1, ..., An, 3]")

    rz, ry, rx = _checks.split_last(angles, 3)
    cz, sz = tf.cos(rz), tf.sin(rz)
    cy, sy = tf.cos(ry), tf.sin(ry)
    cx, sx = tf.cos(rx), tf.sin(rx)
    # Product Rx @ Ry @ Rz written out.
    rows = [
        tf.stack([cy * cz, -cy * sz, sy], axis=-1),
        tf.stack([cx * sz + sx * sy * cz, cx * cz - sx * sy * sz, -sx * cy],
                 axis=-1),
        tf.stack([sx * sz - cx * sy * cz, sx * cz + cx * sy * sz, cx * cy],
                 axis=-1),
    ]
    return tf.stack(rows, axis=-2)


def rotation_to_euler(rotation_matrix,
                      gimbal_epsilon: float = 1e-6,
                      name: str = "rotation_to_euler") -> tf.Tensor:
  """Recovers (rz, ry, rx) from R = Rx(rx) @ Ry(ry) @ Rz(rz).

  Inverse of `euler_to_rotation` on the principal range

    rz in (-pi, pi],  ry in [-pi/2, pi/2],  rx in (-pi, pi],

  away from gimbal lock. Since R[0, 2] = sin(ry), R[0, :2] = cos(ry) *
  (cos rz, -sin rz) and R[1:, 2] = cos(ry) * (-sin rx, cos rx):

    ry = atan2(R02, sqrt(R00^2 + R01^2)),
    rz = atan2(-R01, R00),
    rx = atan2(-R12, R22).

  At gimbal lock (cos(ry) < `gimbal_epsilon`) only rx + rz (ry = pi/2) or
  rx - rz (ry = -pi/2) is defined; this function then returns rz = 0 and
  rx = atan2(sin(ry) R10, R11), which still reproduces R. Gradients there are
  not meaningful, but are kept finite.

  Args:
    rotation_matrix: `[A1, ..., An, 3, 3]` tensor R (orthonormal, det 1).
    gimbal_epsilon: threshold on cos(ry) below which the gimbal-lock branch
      is used.
    name: name scope of the ops.

  Returns:
    `[A1, ..., An, 3]` tensor of (rz, ry, rx), radians.

  Raises:
    ValueError: if `rotation_matrix` is not of shape [..., 3, 3].
  """
  with tf.name_scope(name):
    r = _checks.convert_inputs({"rotation_matrix": rotation_matrix})[
        "rotation_matrix"]
    _checks.check_shape(r, "rotation_matrix", (3, 3), "[A1, ..., An, 3, 3]")

    r00, r01, r02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    r10, r11, r12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    r22 = r[..., 2, 2]
    cos_y_squared = r00 * r00 + r01 * r01
    locked = cos_y_squared < gimbal_epsilon**2
    one = tf.ones_like(r00)
    zero = tf.zeros_like(r00)
    # Double-where: feed the unused branch safe values so that its gradient
    # (0/0 in atan2 and sqrt at 0) does not turn into NaN.
    cos_y = tf.sqrt(tf.where(locked, one, cos_y_squared))
    cos_y = tf.where(locked, zero, cos_y)
    ry = tf.atan2(r02, cos_y)

    rz_regular = tf.atan2(tf.where(locked, zero, -r01),
                          tf.where(locked, one, r00))
    rx_regular = tf.atan2(tf.where(locked, zero, -r12),
                          tf.where(locked, one, r22))
    sign_y = tf.where(r02 >= 0.0, one, -one)
    rx_locked = tf.atan2(tf.where(locked, sign_y * r10, zero),
                         tf.where(locked, r11, one))
    rz = tf.where(locked, zero, rz_regular)
    rx = tf.where(locked, rx_locked, rx_regular)
    return tf.stack([rz, ry, rx], axis=-1)


def pose_to_rotation_translation(
    pose, name: str = "pose_to_rotation_translation"
) -> Tuple[tf.Tensor, tf.Tensor]:
  """Splits a pose vector into a rotation matrix and a translation.

  Args:
    pose: `[A1, ..., An, 6]` tensor of (rz, ry, rx) radians then (tx, ty, tz)
      millimetres.
    name: name scope of the ops.

  Returns:
    A tuple (R, t): `[A1, ..., An, 3, 3]` rotation R = Rx Ry Rz and
    `[A1, ..., An, 3]` translation t in millimetres, such that a model point
    X goes to the camera frame as R X + t.

  Raises:
    ValueError: if `pose` is not of shape [..., 6].
  """
  with tf.name_scope(name):
    pose = _checks.convert_inputs({"pose": pose})["pose"]
    _checks.check_shape(pose, "pose", (6,), "[A1, ..., An, 6]")
    return euler_to_rotation(pose[..., :3]), pose[..., 3:]
