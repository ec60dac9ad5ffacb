"""Depth maps of a face: the normalised representation and normals.

DepthNet (Shu et al., eq. 7) predicts a normalised depth map

  D' = a (D - xi_V) + c        on face pixels,   D' = 0 off the face,

with D the camera z in mm, xi_V the camera-face distance of the view
V = (R, t) along the optical axis, i.e. xi_V = t_z, the z of the face
model's origin in the camera frame (mm). For our camera and face model
(DESIGN section 4: the embedded model's default pose puts the origin at
t_z = 1108.6 mm, its mean face spans model z in [-31, 124] mm, nose tip at
124 and facing the camera after the default rotation) a face pixel lies
between about xi_V - 150 mm (the nose tip at yaw 0 is xi_V - 124 mm) and
xi_V + 90 mm (the back of the cheeks and, at +/- 45 degrees of yaw, the far
side of the head). We take

  a = 1/300 mm^-1 (`DEPTH_SCALE`),  c = 0.6 (`DEPTH_OFFSET`),

which maps [xi_V - 150, xi_V + 90] mm to [0.1, 0.9]: every face pixel is
well above 0, so the background value 0 (what the 3DMM regulariser of
eq. 10 teaches the network off the face) is told apart from the face by
`FACE_THRESHOLD` = 0.05. One unit of D' is 300 mm, so the occlusion
threshold 0.05 of eq. 13 is 15 mm.

Shapes: B batch, H x W the map.
"""

from typing import Tuple

import tensorflow as tf

from mgc_tf.geometry import camera

#: a of eq. 7, per mm.
DEPTH_SCALE = 1.0 / 300.0
#: c of eq. 7.
DEPTH_OFFSET = 0.6
#: D' above this is face; 0 is the background value.
FACE_THRESHOLD = 0.05
#: Names of a depth method's extra inference outputs (D' and C).
NORMALIZED_OUTPUT = "depth_normalized"
SUITABILITY_OUTPUT = "suitability"
#: 16-bit depth PNGs store round(depth in mm * this): 0.1 mm steps, up to
#: 6.5 m; 0 is background.
PNG_UNITS_PER_MM = 10.0


def _as_map(value, key: str) -> tf.Tensor:
  tensor = tf.convert_to_tensor(value, tf.float32)
  if tensor.shape.rank is not None and (
      tensor.shape.rank != 4 or tensor.shape[-1] not in (None, 1)):
    raise ValueError(f"`{key}` must have shape [B, H, W, 1]. Received: "
                     f"{key}.shape={tensor.shape}")
  return tensor


def _as_xi(xi) -> tf.Tensor:
  """[B] or [B, 1, 1, 1] camera-face distances -> [B, 1, 1, 1]."""
  xi = tf.convert_to_tensor(xi, tf.float32)
  return tf.reshape(xi, [-1, 1, 1, 1])


def normalize_depth(depth_mm, xi_mm, scale: float = DEPTH_SCALE,
                    offset: float = DEPTH_OFFSET,
                    name: str = "normalize_depth") -> tf.Tensor:
  """Depth in mm -> D' = a (D - xi) + c on the face (D > 0), 0 off it.

  Args:
    depth_mm: [B, H, W, 1] camera z, mm; 0 off the face.
    xi_mm: [B] camera-face distance t_z of each view, mm.
    scale, offset: a (per mm) and c.
    name: name scope.

  Returns:
    [B, H, W, 1] float32, dimensionless.
  """
  with tf.name_scope(name):
    depth_mm = _as_map(depth_mm, "depth_mm")
    face = tf.cast(depth_mm > 0.0, tf.float32)
    return (scale * (depth_mm - _as_xi(xi_mm)) + offset) * face


def denormalize_depth(depth_normalized, xi_mm, scale: float = DEPTH_SCALE,
                      offset: float = DEPTH_OFFSET,
                      face_threshold: float = FACE_THRESHOLD,
                      name: str = "denormalize_depth") -> tf.Tensor:
  """D' -> depth in mm, D = (D' - c) / a + xi.

  Args:
    depth_normalized: [B, H, W, 1] D'.
    xi_mm: [B] camera-face distance t_z of each view, mm.
    scale, offset: a (per mm) and c.
    face_threshold: pixels with D' at or below it are background and get 0;
      None converts every pixel (what the warping of eq. 11 needs: smooth in
      D' everywhere).
    name: name scope.

  Returns:
    [B, H, W, 1] float32 camera z, mm (0 on background unless
    `face_threshold` is None).
  """
  with tf.name_scope(name):
    depth_normalized = _as_map(depth_normalized, "depth_normalized")
    depth = (depth_normalized - offset) / scale + _as_xi(xi_mm)
    if face_threshold is None:
      return depth
    return depth * tf.cast(depth_normalized > face_threshold, tf.float32)


def depth_points(depth_mm, intrinsics, name: str = "depth_points"
                 ) -> tf.Tensor:
  """[B, H, W, 1] depth, [B, 3, 3] K -> [B, H, W, 3] camera points, mm.

  X(p) = D(p) K^-1 [p, 1] with pixel centres at integers (OpenCV).
  """
  with tf.name_scope(name):
    depth_mm = _as_map(depth_mm, "depth_mm")
    shape = tf.shape(depth_mm)
    batch, height, width = shape[0], shape[1], shape[2]
    xs, ys = tf.meshgrid(tf.range(width, dtype=tf.float32),
                         tf.range(height, dtype=tf.float32))
    grid = tf.reshape(tf.stack([xs, ys], -1), [1, -1, 2])
    grid = tf.broadcast_to(grid, tf.stack([batch, height * width, 2]))
    points = camera.unproject(grid, tf.reshape(depth_mm, [batch, -1]),
                              intrinsics)
    return tf.reshape(points, tf.stack([batch, height, width, 3]))


def depth_normals(depth_mm, intrinsics, name: str = "depth_normals"
                  ) -> Tuple[tf.Tensor, tf.Tensor]:
  """Unit normals of a depth map by forward finite differences.

  With X the camera points (`depth_points`), the normal at p is
  normalise((X(p + y) - X(p)) x (X(p + x) - X(p))), which for OpenCV axes
  (x right, y down, z forward) points towards the camera (negative z) on a
  surface that faces it. The last row and column have no forward
  neighbour: their normal is 0 and invalid.

  Args:
    depth_mm: [B, H, W, 1] camera z, mm; 0 off the face.
    intrinsics: [B, 3, 3] K, pixels.
    name: name scope.

  Returns:
    (normals [B, H, W, 3] float32 unit vectors, 0 where invalid;
     valid [B, H, W, 1] float32, 1 where the pixel and its right and lower
     neighbours are all on the face (D > 0); no gradient).
  """
  with tf.name_scope(name):
    depth_mm = _as_map(depth_mm, "depth_mm")
    points = depth_points(depth_mm, intrinsics)
    dx = points[:, :-1, 1:, :] - points[:, :-1, :-1, :]
    dy = points[:, 1:, :-1, :] - points[:, :-1, :-1, :]
    cross = tf.linalg.cross(dy, dx)
    face = depth_mm > 0.0
    valid = tf.logical_and(
        tf.logical_and(face[:, :-1, :-1], face[:, :-1, 1:]), face[:, 1:, :-1])
    squared = tf.reduce_sum(tf.square(cross), -1, keepdims=True)
    valid = tf.logical_and(valid, squared > 0.0)
    # Double where: no 0/0 in the value or the gradient where invalid.
    safe = tf.where(valid, cross, tf.ones_like(cross))
    normals = tf.where(valid, safe * tf.math.rsqrt(
        tf.reduce_sum(tf.square(safe), -1, keepdims=True)),
                       tf.zeros_like(cross))
    paddings = [[0, 0], [0, 1], [0, 1], [0, 0]]
    return (tf.pad(normals, paddings),
            tf.stop_gradient(tf.pad(tf.cast(valid, tf.float32), paddings)))
