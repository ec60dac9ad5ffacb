"""Pinhole camera: intrinsics, projection, unprojection, rigid transforms.

Conventions (DESIGN.md section 4):
  * Camera frame: OpenCV axes, x right, y down, z forward (into the scene).
    Units are millimetres.
  * Pixel coordinates are continuous (x, y) = (column, row) in pixels, with
    the origin at the top-left corner of the crop; the principal point of the
    MGCNet camera is the crop centre (112, 112) for a 224 x 224 crop.
  * Intrinsics K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]; `intrinsics` builds
    K with fx = fy = f and s = 0. Functions that invert K assume this upper
    triangular form with K[2, 2] = 1 and zeros below the diagonal.

Batch convention: `[A1, ..., An]` are leading batch dimensions (for example
[B] or [B, N] for B samples and N views); they broadcast between arguments
with NumPy rules. V is a number of points (vertices, landmarks or pixels).
All functions accept float32 (default) or float64 and are differentiable.
"""

from typing import Optional

import tensorflow as tf

from mgc_tf.geometry import _checks

#: Side of the square crop the MGCNet camera is defined for, pixels.
DEFAULT_IMAGE_SIZE = 224


def intrinsics(focal_length,
               principal_point=None,
               image_size: float = DEFAULT_IMAGE_SIZE,
               name: str = "intrinsics") -> tf.Tensor:
  """Builds pinhole intrinsic matrices K = [[f, 0, cx], [0, f, cy], [0, 0, 1]].

  Args:
    focal_length: scalar or `[A1, ..., An]` tensor, pixels.
    principal_point: `[A1, ..., An, 2]` tensor of (cx, cy) in pixels, or a
      scalar c meaning (c, c), or None for the centre of a square crop,
      (image_size / 2, image_size / 2).
    image_size: side of the square crop, pixels; only used when
      `principal_point` is None.
    name: name scope of the ops.

  Returns:
    `[A1, ..., An, 3, 3]` tensor K, the batch dimensions being those of
    `focal_length` and `principal_point` broadcast together. float32 unless a
    float64 tensor is given.

  Raises:
    ValueError: if `principal_point` is not a scalar or of shape [..., 2], or
      the batch dimensions do not broadcast.
  """
  with tf.name_scope(name):
    if principal_point is None:
      principal_point = float(image_size) / 2.0
    inputs = _checks.convert_inputs({
        "focal_length": focal_length,
        "principal_point": principal_point,
    })
    focal_length = inputs["focal_length"]
    principal_point = inputs["principal_point"]
    if principal_point.shape.rank == 0:
      principal_point = tf.stack([principal_point, principal_point], axis=-1)
    _checks.check_shape(principal_point, "principal_point", (2,),
                        "[A1, ..., An, 2] or a scalar")
    _checks.check_broadcastable({
        "focal_length": focal_length.shape,
        "principal_point": _checks.batch_shape(principal_point, 1),
    })

    batch = tf.broadcast_dynamic_shape(
        tf.shape(focal_length), tf.shape(principal_point)[:-1])
    f = tf.broadcast_to(focal_length, batch)
    cx, cy = _checks.split_last(
        tf.broadcast_to(principal_point, tf.concat([batch, [2]], axis=0)), 2)
    zero = tf.zeros_like(f)
    one = tf.ones_like(f)
    rows = [
        tf.stack([f, zero, cx], axis=-1),
        tf.stack([zero, f, cy], axis=-1),
        tf.stack([zero, zero, one], axis=-1),
    ]
    return tf.stack(rows, axis=-2)


def invert_intrinsics(intrinsic_matrix, name: str = "invert_intrinsics"
                      ) -> tf.Tensor:
  """Inverts pinhole intrinsic matrices in closed form.

  For K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]],
  K^-1 = [[1/fx, -s/(fx fy), (s cy - cx fy)/(fx fy)], [0, 1/fy, -cy/fy],
  [0, 0, 1]]. The entries below the diagonal of K and K[2, 2] are not read
  (they are assumed to be 0 and 1).

  Args:
    intrinsic_matrix: `[A1, ..., An, 3, 3]` tensor K (pixels).
    name: name scope of the ops.

  Returns:
    `[A1, ..., An, 3, 3]` tensor K^-1, same dtype.

  Raises:
    ValueError: if `intrinsic_matrix` is not of shape [..., 3, 3].
  """
  with tf.name_scope(name):
    k = _checks.convert_inputs({"intrinsic_matrix": intrinsic_matrix})[
        "intrinsic_matrix"]
    _checks.check_shape(k, "intrinsic_matrix", (3, 3), "[A1, ..., An, 3, 3]")
    fx = k[..., 0, 0]
    s = k[..., 0, 1]
    cx = k[..., 0, 2]
    fy = k[..., 1, 1]
    cy = k[..., 1, 2]
    zero = tf.zeros_like(fx)
    one = tf.ones_like(fx)
    rows = [
        tf.stack([1.0 / fx, -s / (fx * fy), (s * cy - cx * fy) / (fx * fy)],
                 axis=-1),
        tf.stack([zero, 1.0 / fy, -cy / fy], axis=-1),
        tf.stack([zero, zero, one], axis=-1),
    ]
    return tf.stack(rows, axis=-2)


def project(points_camera,
            intrinsic_matrix,
            min_depth: Optional[float] = None,
            name: str = "project") -> tf.Tensor:
  """Projects camera-frame points to pixels: p = (K X)_{x,y} / (K X)_z.

  Args:
    points_camera: `[A1, ..., An, V, 3]` tensor, points in the camera frame,
      millimetres (OpenCV axes, z forward). Points should have z > 0.
    intrinsic_matrix: `[A1, ..., An, 3, 3]` tensor K, pixels.
    min_depth: if given (millimetres), the depth divided by is clamped to at
      least this value, so that points on or behind the camera plane give
      finite pixels and gradients (their pixels are meaningless; mask them
      out). None divides by the depth as it is.
    name: name scope of the ops.

  Returns:
    `[A1, ..., An, V, 2]` tensor of (x, y) pixel coordinates.

  Raises:
    ValueError: on bad static shapes or non-broadcasting batch dimensions.
  """
  with tf.name_scope(name):
    inputs = _checks.convert_inputs({
        "points_camera": points_camera,
        "intrinsic_matrix": intrinsic_matrix,
    })
    points = inputs["points_camera"]
    k = inputs["intrinsic_matrix"]
    _checks.check_shape(points, "points_camera", (None, 3),
                        "[A1, ..., An, V, 3]")
    _checks.check_shape(k, "intrinsic_matrix", (3, 3), "[A1, ..., An, 3, 3]")
    _checks.check_broadcastable({
        "points_camera": _checks.batch_shape(points, 2),
        "intrinsic_matrix": _checks.batch_shape(k, 2),
    })

    homogeneous = tf.linalg.matvec(k[..., tf.newaxis, :, :], points)
    depth = homogeneous[..., 2:3]
    if min_depth is not None:
      depth = tf.maximum(depth, tf.cast(min_depth, depth.dtype))
    return homogeneous[..., :2] / depth


def unproject(pixels,
              depth,
              intrinsic_matrix,
              name: str = "unproject") -> tf.Tensor:
  """Lifts pixels with known depth to camera-frame points: X = d K^-1 [p, 1].

  `depth` is the z coordinate in the camera frame (as in a depth map), not
  the distance along the ray, so `project(unproject(p, d, K), K) == p` and
  `unproject(p, d, K)[..., 2] == d`.

  Args:
    pixels: `[A1, ..., An, V, 2]` tensor of (x, y) pixel coordinates.
    depth: `[A1, ..., An, V]` tensor, camera z in millimetres.
    intrinsic_matrix: `[A1, ..., An, 3, 3]` tensor K, upper triangular with
      K[2, 2] = 1 (see `invert_intrinsics`).
    name: name scope of the ops.

  Returns:
    `[A1, ..., An, V, 3]` tensor of points in the camera frame, millimetres.

  Raises:
    ValueError: on bad static shapes or non-broadcasting batch dimensions.
  """
  with tf.name_scope(name):
    inputs = _checks.convert_inputs({
        "pixels": pixels,
        "depth": depth,
        "intrinsic_matrix": intrinsic_matrix,
    })
    pixels = inputs["pixels"]
    depth = inputs["depth"]
    k = inputs["intrinsic_matrix"]
    _checks.check_shape(pixels, "pixels", (None, 2), "[A1, ..., An, V, 2]")
    _checks.check_shape(depth, "depth", (None,), "[A1, ..., An, V]")
    _checks.check_shape(k, "intrinsic_matrix", (3, 3), "[A1, ..., An, 3, 3]")
    _checks.check_broadcastable({
        "pixels": _checks.batch_shape(pixels, 1),
        "depth": depth.shape,
    })
    _checks.check_broadcastable({
        "pixels": _checks.batch_shape(pixels, 2),
        "depth": _checks.batch_shape(depth, 1),
        "intrinsic_matrix": _checks.batch_shape(k, 2),
    })

    k_inv = invert_intrinsics(k)
    homogeneous = tf.concat(
        [pixels, tf.ones_like(pixels[..., :1])], axis=-1)
    rays = tf.linalg.matvec(k_inv[..., tf.newaxis, :, :], homogeneous)
    return rays * depth[..., tf.newaxis]


def transform(points,
              rotation_matrix,
              translation,
              name: str = "transform") -> tf.Tensor:
  """Applies a rigid transform X' = R X + t (e.g. model frame -> camera frame).

  Args:
    points: `[A1, ..., An, V, 3]` tensor of points, millimetres.
    rotation_matrix: `[A1, ..., An, 3, 3]` tensor R.
    translation: `[A1, ..., An, 3]` tensor t, millimetres.
    name: name scope of the ops.

  Returns:
    `[A1, ..., An, V, 3]` tensor of transformed points, millimetres.

  Raises:
    ValueError: on bad static shapes or non-broadcasting batch dimensions.
  """
  with tf.name_scope(name):
    inputs = _checks.convert_inputs({
        "points": points,
        "rotation_matrix": rotation_matrix,
        "translation": translation,
    })
    points = inputs["points"]
    r = inputs["rotation_matrix"]
    t = inputs["translation"]
    _checks.check_shape(points, "points", (None, 3), "[A1, ..., An, V, 3]")
    _checks.check_shape(r, "rotation_matrix", (3, 3), "[A1, ..., An, 3, 3]")
    _checks.check_shape(t, "translation", (3,), "[A1, ..., An, 3]")
    _checks.check_broadcastable({
        "points": _checks.batch_shape(points, 2),
        "rotation_matrix": _checks.batch_shape(r, 2),
        "translation": _checks.batch_shape(t, 1),
    })

    return (tf.linalg.matvec(r[..., tf.newaxis, :, :], points) +
            t[..., tf.newaxis, :])
