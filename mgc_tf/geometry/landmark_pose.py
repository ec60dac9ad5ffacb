"""Pose from 3D landmarks in closed form (PGN, Liu et al. eqs. 2-4).

The Pose Guidance Network predicts 68 landmarks X_UV in *weak-perspective
crop coordinates*: (x, y) in crop pixels (OpenCV axes, as `landmarks`) and
z in the same pixel units along the camera's forward axis, relative to the
face. Eq. 4 fits the affine T = [A | t] (3 x 4) from the face model's
landmark vertices X (model space, mm) to X_UV by least squares:

    T = X_UV Xh^T (Xh Xh^T)^-1,   Xh = [X; 1]  (4 x L),

which is differentiable in both point sets (a 4 x 4 solve). Eq. 2's scaled
orthographic camera reads A = f R; `similarity_from_affine` takes R as the
closest rotation to A (the orthogonal polar factor, by Newton's iteration,
which stays differentiable where the singular values coincide - exactly the
case of a true similarity, where an SVD's gradient is undefined) and
f = trace(R^T A) / 3, the least-squares scale given R.

Our camera is a pinhole (`mgc_tf.geometry.camera`): x = F X_c / Z_c + c with
X_c = R X + t_c. Linearising about the depth Z_ref of the landmarks'
centroid X_bar (Z_ref = (R X_bar)_z + t_z) gives the scaled orthographic
camera with f = F / Z_ref and t_xy = f t_c,xy + c, so
`weak_perspective_to_camera` converts (f, R, t) to

    t_x = (t_ox - c_x) / f,   t_y = (t_oy - c_y) / f,
    t_z = F / f - (R X_bar)_z,

keeping R (both cameras use the same axes). The z label that matches this
camera is `weak_perspective_depth`: (Z_c - Z_ref) F / Z_ref, in pixels. The
approximation error is of the order of the face's depth relief over its
distance (about 40 mm / 1100 mm for our models' default pose), which is what
a scaled orthographic model assumes.

Shapes: B batch, L landmarks (68). Units: model points in mm, crop points
in pixels, f in pixels per mm, angles in radians.
"""

from typing import Tuple

import tensorflow as tf

from mgc_tf.geometry import _checks
from mgc_tf.geometry import rotation as rotation_lib

#: Newton steps of the polar decomposition; quadratic convergence makes 12
#: more than enough for any A with a condition number below ~1e3.
POLAR_ITERATIONS = 12


def affine_from_landmarks(model_points, target_points,
                          name: str = "affine_from_landmarks") -> tf.Tensor:
  """Eq. 4: the least-squares affine T with T [X; 1] ~ X_UV.

  Args:
    model_points: [B, L, 3] X, the face model's landmark vertices, model
      space (mm). L >= 4, not coplanar.
    target_points: [B, L, 3] X_UV, the predicted landmarks (crop pixels and
      depth in pixels).
    name: name scope of the ops.

  Returns:
    [B, 3, 4] T = [A | t], mapping mm to pixels; differentiable in both
    inputs.

  Raises:
    ValueError: the shapes are not [B, L, 3].
  """
  with tf.name_scope(name):
    inputs = _checks.convert_inputs({"model_points": model_points,
                                     "target_points": target_points})
    x, y = inputs["model_points"], inputs["target_points"]
    for key, value in inputs.items():
      _checks.check_shape(value, key, (3,), "[B, L, 3]", min_rank=3)
    if x.shape[1] is not None and x.shape[1] < 4:
      raise ValueError("affine_from_landmarks needs at least 4 points. "
                       f"Received: model_points.shape={x.shape}")
    # Centre and scale the model points so the normal equations are well
    # conditioned in float32 (mm coordinates of ~100 against a 1).
    mean = tf.reduce_mean(x, axis=1, keepdims=True)
    spread = tf.sqrt(tf.reduce_mean(tf.square(x - mean), axis=[1, 2]))
    spread = spread[:, None, None]
    normalized = (x - mean) / spread
    ones = tf.ones_like(x[..., :1])
    xh = tf.concat([normalized, ones], axis=-1)  # [B, L, 4]
    gram = tf.matmul(xh, xh, transpose_a=True)  # [B, 4, 4]
    cross = tf.matmul(xh, y, transpose_a=True)  # [B, 4, 3]
    t_normalized = tf.transpose(tf.linalg.solve(gram, cross), [0, 2, 1])
    # Undo the normalisation: A n + t with n = (x - mean) / spread.
    a = t_normalized[..., :3] / spread
    t = t_normalized[..., 3] - tf.linalg.matvec(a, mean[:, 0])
    return tf.concat([a, t[..., None]], axis=-1)


def affine_from_2d_landmarks(model_points, image_points,
                             name: str = "affine_from_2d_landmarks"
                             ) -> tf.Tensor:
  """Eq. 4 with 2D targets (detected landmarks): [B, 3, 4] T = [A | t].

  The least squares of eq. 4 fits each output coordinate on its own, so the
  x and y rows are those of `affine_from_landmarks`. 2D points say nothing
  of the third row; it completes a scaled rotation: a3 = (a1 x a2) /
  sqrt(|a1| |a2|) (for A = f R, a1 x a2 = f^2 r3), t_z = 0. Then
  `similarity_from_affine` and `pose_from_similarity` give the pose.

  Args:
    model_points: [B, L, 3] model-space landmark vertices, mm.
    image_points: [B, L, 2] their positions in the crop, pixels.
    name: name scope of the ops.
  """
  with tf.name_scope(name):
    xy = tf.convert_to_tensor(image_points, tf.float32)
    _checks.check_shape(xy, "image_points", (2,), "[B, L, 2]", min_rank=3)
    affine = affine_from_landmarks(
        model_points, tf.concat([xy, tf.zeros_like(xy[..., :1])], -1))
    a1, a2 = affine[:, 0, :3], affine[:, 1, :3]
    scale = tf.sqrt(tf.norm(a1, axis=-1) * tf.norm(a2, axis=-1))
    a3 = tf.linalg.cross(a1, a2) / scale[:, None]
    third = tf.concat([a3, tf.zeros_like(a3[:, :1])], -1)[:, None]
    return tf.concat([affine[:, :2], third], axis=1)


def similarity_from_affine(affine, iterations: int = POLAR_ITERATIONS,
                           name: str = "similarity_from_affine"
                           ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Splits T = [A | t] into eq. 2's (f, R, t), with A ~ f R.

  R is the orthogonal polar factor of A (the rotation closest to A in the
  Frobenius norm when det A > 0), found by Newton's iteration
  R <- (R + R^-T) / 2 from A / ||A||; f = trace(R^T A) / 3.

  Args:
    affine: [B, 3, 4] T from `affine_from_landmarks`.
    iterations: Newton steps.
    name: name scope of the ops.

  Returns:
    (f [B] pixels per mm, R [B, 3, 3], t [B, 3] pixels). If det A < 0 (a
    mirrored prediction) R has det -1; callers that need a rotation check.
  """
  with tf.name_scope(name):
    affine = _checks.convert_inputs({"affine": affine})["affine"]
    _checks.check_shape(affine, "affine", (3, 4), "[B, 3, 4]", min_rank=3)
    a = affine[..., :3]
    norm = tf.sqrt(tf.reduce_sum(tf.square(a), axis=[-2, -1]) / 3.0)
    r = a / norm[..., None, None]
    for _ in range(iterations):
      r = 0.5 * (r + tf.linalg.matrix_transpose(tf.linalg.inv(r)))
    scale = tf.linalg.trace(tf.matmul(r, a, transpose_a=True)) / 3.0
    return scale, r, affine[..., 3]


def weak_perspective_to_camera(scale, rotation, translation, focal_length,
                               principal_point, reference_point,
                               name: str = "weak_perspective_to_camera"
                               ) -> Tuple[tf.Tensor, tf.Tensor]:
  """Eq. 2's (f, R, t) -> our pinhole camera's (R, t_c) (module docstring).

  Args:
    scale: [B] f, pixels per mm (> 0).
    rotation: [B, 3, 3] R.
    translation: [B, 3] t in crop pixels (its z is not used).
    focal_length: F of the crop's camera, pixels (scalar).
    principal_point: (c_x, c_y) of the crop's camera, pixels, or a scalar c.
    reference_point: [B, 3] X_bar, the model-space point (mm) about whose
      depth the camera was linearised: the landmarks' centroid.

  Returns:
    (R [B, 3, 3], t_c [B, 3] mm) with X_c = R X + t_c.
  """
  with tf.name_scope(name):
    inputs = _checks.convert_inputs({"scale": scale, "rotation": rotation,
                                     "translation": translation,
                                     "reference_point": reference_point})
    f, t, r = inputs["scale"], inputs["translation"], inputs["rotation"]
    c = tf.broadcast_to(tf.cast(principal_point, f.dtype), [2])
    focal = tf.cast(focal_length, f.dtype)
    t_xy = (t[..., :2] - c) / f[..., None]
    t_z = focal / f - tf.linalg.matvec(r, inputs["reference_point"])[..., 2]
    return r, tf.concat([t_xy, t_z[..., None]], axis=-1)


def weak_perspective_depth(points_camera, focal_length,
                           name: str = "weak_perspective_depth") -> tf.Tensor:
  """The z of X_UV for camera-space points: (Z_c - Z_ref) F / Z_ref, pixels.

  Args:
    points_camera: [B, L, 3] camera-space landmarks, mm; Z_ref is their
      mean depth.
    focal_length: F, pixels (scalar).

  Returns:
    [B, L] depth relative to the landmarks' mean depth, crop pixels.
  """
  with tf.name_scope(name):
    p = _checks.convert_inputs({"points_camera": points_camera})[
        "points_camera"]
    z_ref = tf.reduce_mean(p[..., 2], axis=-1, keepdims=True)
    return (p[..., 2] - z_ref) * tf.cast(focal_length, p.dtype) / z_ref


def pose_from_landmarks(model_points, target_points, focal_length,
                        principal_point,
                        name: str = "pose_from_landmarks") -> tf.Tensor:
  """Eqs. 3-4 then the camera conversion: [B, 6] (rz, ry, rx, tx, ty, tz).

  The full pose (radians, mm) in `mgc_tf.geometry.rotation`'s convention;
  subtract the face model's default pose for the coefficient layout's pose.

  Args:
    model_points: [B, L, 3] model-space landmark vertices, mm.
    target_points: [B, L, 3] X_UV, crop pixels (z as
      `weak_perspective_depth`).
    focal_length: F of the crop's camera, pixels.
    principal_point: (c_x, c_y) or c, pixels.
  """
  with tf.name_scope(name):
    return pose_from_similarity(
        similarity_from_affine(affine_from_landmarks(model_points,
                                                     target_points)),
        model_points, focal_length, principal_point)


def pose_from_similarity(similarity, model_points, focal_length,
                         principal_point) -> tf.Tensor:
  """The camera conversion of a fitted similarity: [B, 6] pose as
  `pose_from_landmarks` gives it.

  Args:
    similarity: (scale [B], rotation [B, 3, 3], translation [B, 3]) from
      `similarity_from_affine`, for callers that already hold the fit.
    model_points: [B, L, 3] the fit's model-space landmarks, mm.
    focal_length, principal_point: as `pose_from_landmarks`.
  """
  scale, rotation, translation = similarity
  rotation, translation_c = weak_perspective_to_camera(
      scale, rotation, translation, focal_length, principal_point,
      tf.reduce_mean(tf.convert_to_tensor(model_points, scale.dtype),
                     axis=1))
  return tf.concat([rotation_lib.rotation_to_euler(rotation),
                    translation_c], axis=-1)
