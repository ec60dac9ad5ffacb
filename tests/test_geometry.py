"""Tests for mgc_tf.geometry against independent NumPy references.

References are written here from first principles (explicit cos/sin
matrices, plain NumPy projection, lines through two projected points), never
by calling the function under test a second time.
"""

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import geometry

# --- NumPy references -------------------------------------------------------


def np_rx(a):
  c, s = np.cos(a), np.sin(a)
  return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def np_ry(a):
  c, s = np.cos(a), np.sin(a)
  return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def np_rz(a):
  c, s = np.cos(a), np.sin(a)
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def np_rotation(rz, ry, rx):
  """MGCNet order: R = Rx(rx) Ry(ry) Rz(rz)."""
  return np_rx(rx) @ np_ry(ry) @ np_rz(rz)


def np_intrinsics(f, cx, cy):
  return np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])


def np_project(points, k):
  """points [V, 3] camera frame -> [V, 2] pixels."""
  x = points[:, 0] / points[:, 2]
  y = points[:, 1] / points[:, 2]
  return np.stack([k[0, 0] * x + k[0, 2], k[1, 1] * y + k[1, 2]], axis=-1)


def np_point_line_distance(p, a, b):
  """Distance of 2D point p to the line through 2D points a and b."""
  d = b - a
  cross = d[0] * (p[1] - a[1]) - d[1] * (p[0] - a[0])
  return abs(cross) / np.hypot(d[0], d[1])


def random_angles(rng, size=(), margin=0.05):
  """(rz, ry, rx) inside the principal range, `margin` from its ends."""
  rz = rng.uniform(-np.pi + margin, np.pi - margin, size)
  ry = rng.uniform(-np.pi / 2 + margin, np.pi / 2 - margin, size)
  rx = rng.uniform(-np.pi + margin, np.pi - margin, size)
  return np.stack([rz, ry, rx], axis=-1)


def random_view(rng):
  """A camera looking at the origin from ~600 mm: angles (3,), t (3,)."""
  angles = rng.uniform(-0.4, 0.4, 3)
  t = np.array([rng.uniform(-20, 20), rng.uniform(-20, 20),
                rng.uniform(500, 800)])
  return angles, t


def two_view_setup(rng, num_points=20):
  """Random face-sized points seen by two random cameras (float64)."""
  angles_t, t_t = random_view(rng)
  angles_s, t_s = random_view(rng)
  r_t = np_rotation(*angles_t)
  r_s = np_rotation(*angles_s)
  k_t = np_intrinsics(rng.uniform(800, 1500), 112.0, 112.0)
  k_s = np_intrinsics(rng.uniform(800, 1500), 110.0, 115.0)
  points = rng.uniform(-80, 80, (num_points, 3))
  x_t = points @ r_t.T + t_t
  x_s = points @ r_s.T + t_s
  assert np.all(x_t[:, 2] > 0) and np.all(x_s[:, 2] > 0)
  return dict(angles_t=angles_t, t_t=t_t, angles_s=angles_s, t_s=t_s,
              r_t=r_t, r_s=r_s, k_t=k_t, k_s=k_s, points=points,
              x_t=x_t, x_s=x_s, p_t=np_project(x_t, k_t),
              p_s=np_project(x_s, k_s))


def np_relative(r_t, t_t, r_s, t_s):
  r_rel = r_s @ r_t.T
  return r_rel, t_s - r_rel @ t_t


def np_symmetric_distance_geometric(setup, p_t, p_s):
  """Epipolar distances from lines through projected ray points (no F).

  The epipolar line of p_t in the source image is the image of the target
  ray through p_t; we project two points of that ray and measure the
  distance of p_s to the line through them, and symmetrically.
  """
  r_rel, t_rel = np_relative(setup["r_t"], setup["t_t"], setup["r_s"],
                             setup["t_s"])
  k_t, k_s = setup["k_t"], setup["k_s"]
  out = []
  for q_t, q_s in zip(p_t, p_s):
    ray_t = np.linalg.solve(k_t, np.array([q_t[0], q_t[1], 1.0]))
    a, b = [np_project((r_rel @ (d * ray_t) + t_rel)[None], k_s)[0]
            for d in (400.0, 900.0)]
    d_source = np_point_line_distance(q_s, a, b)
    ray_s = np.linalg.solve(k_s, np.array([q_s[0], q_s[1], 1.0]))
    a, b = [np_project((r_rel.T @ (d * ray_s - t_rel))[None], k_t)[0]
            for d in (400.0, 900.0)]
    d_target = np_point_line_distance(q_t, a, b)
    out.append(0.5 * (d_source + d_target))
  return np.array(out)


def tf_fundamental(angles_t, t_t, angles_s, t_s, k_t, k_s):
  r_t = geometry.euler_to_rotation(angles_t)
  r_s = geometry.euler_to_rotation(angles_s)
  r_rel, t_rel = geometry.relative_pose(r_t, t_t, r_s, t_s)
  e = geometry.essential_matrix(r_rel, t_rel)
  return geometry.fundamental_matrix(e, k_t, k_s)


# --- intrinsics -------------------------------------------------------------


def test_intrinsics_scalar_and_default_principal_point():
  k = geometry.intrinsics(4700.0)
  assert k.dtype == tf.float32
  np.testing.assert_allclose(k.numpy(), np_intrinsics(4700.0, 112.0, 112.0))
  k = geometry.intrinsics(500, image_size=128)
  np.testing.assert_allclose(k.numpy(), np_intrinsics(500.0, 64.0, 64.0))
  k = geometry.intrinsics(1000.0, principal_point=[100.0, 90.0])
  np.testing.assert_allclose(k.numpy(), np_intrinsics(1000.0, 100.0, 90.0))


def test_intrinsics_batched():
  f = np.array([[1000.0, 1100.0, 1200.0], [1300.0, 1400.0, 1500.0]])
  pp = np.array([[100.0, 110.0], [120.0, 130.0]])[:, None, :]  # [2, 1, 2]
  k = geometry.intrinsics(f, pp)
  assert k.shape == (2, 3, 3, 3)
  for i in range(2):
    for j in range(3):
      np.testing.assert_allclose(
          k[i, j].numpy(), np_intrinsics(f[i, j], *pp[i, 0]), rtol=1e-6)


def test_invert_intrinsics_matches_numpy_inverse_with_skew():
  k = np.array([[900.0, 3.0, 100.0], [0.0, 950.0, 120.0], [0.0, 0.0, 1.0]])
  np.testing.assert_allclose(
      geometry.invert_intrinsics(tf.constant(k)).numpy(), np.linalg.inv(k),
      rtol=1e-12, atol=1e-15)


# --- rotation ---------------------------------------------------------------


def test_rz_90_maps_x_to_y_and_elementary_rotations():
  quarter = np.pi / 2
  r = geometry.euler_to_rotation([quarter, 0.0, 0.0]).numpy()  # Rz(90)
  np.testing.assert_allclose(r @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-6)
  r = geometry.euler_to_rotation([0.0, 0.0, quarter]).numpy()  # Rx(90)
  np.testing.assert_allclose(r @ [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], atol=1e-6)
  r = geometry.euler_to_rotation([0.0, quarter, 0.0]).numpy()  # Ry(90)
  np.testing.assert_allclose(r @ [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], atol=1e-6)


def test_euler_to_rotation_matches_numpy_and_is_orthonormal():
  rng = np.random.default_rng(0)
  angles = random_angles(rng, (4, 5))
  r = geometry.euler_to_rotation(angles).numpy()
  assert r.shape == (4, 5, 3, 3) and r.dtype == np.float32
  for i in range(4):
    for j in range(5):
      np.testing.assert_allclose(r[i, j], np_rotation(*angles[i, j]),
                                 atol=1e-6)
  np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2),
                             np.broadcast_to(np.eye(3), r.shape), atol=1e-6)
  np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-6)


def test_rotation_order_matters():
  angles = np.array([0.3, -0.5, 0.7])  # (rz, ry, rx)
  r = geometry.euler_to_rotation(angles).numpy()
  rz, ry, rx = angles
  np.testing.assert_allclose(r, np_rx(rx) @ np_ry(ry) @ np_rz(rz), atol=1e-6)
  assert not np.allclose(r, np_rz(rz) @ np_ry(ry) @ np_rx(rx), atol=1e-2)


def test_rotation_to_euler_round_trip_principal_range():
  rng = np.random.default_rng(1)
  angles = random_angles(rng, (200,))
  recovered = geometry.rotation_to_euler(
      geometry.euler_to_rotation(angles)).numpy()
  np.testing.assert_allclose(recovered, angles, atol=2e-4)
  # Float64 is exact to rounding.
  recovered = geometry.rotation_to_euler(
      geometry.euler_to_rotation(tf.constant(angles))).numpy()
  np.testing.assert_allclose(recovered, angles, atol=1e-10)
  # From matrices built by NumPy, not by the function under test.
  mats = np.stack([np_rotation(*a) for a in angles[:20]])
  np.testing.assert_allclose(
      geometry.rotation_to_euler(tf.constant(mats)).numpy(), angles[:20],
      atol=1e-10)


@pytest.mark.parametrize("ry", [np.pi / 2, -np.pi / 2])
def test_rotation_to_euler_gimbal_lock_reproduces_matrix(ry):
  mat = tf.constant(np_rotation(0.4, ry, -1.1))
  with tf.GradientTape() as tape:
    tape.watch(mat)
    angles = geometry.rotation_to_euler(mat)
  grad = tape.gradient(angles, mat)
  assert np.all(np.isfinite(grad.numpy()))
  rz, ry_out, rx = angles.numpy()
  assert rz == 0.0
  np.testing.assert_allclose(ry_out, ry, atol=1e-7)
  np.testing.assert_allclose(np_rotation(rz, ry_out, rx), mat.numpy(),
                             atol=1e-7)


def test_pose_to_rotation_translation():
  pose = np.array([[0.1, -0.2, 0.3, 5.0, -6.0, 700.0]])
  r, t = geometry.pose_to_rotation_translation(pose)
  assert r.shape == (1, 3, 3) and t.shape == (1, 3)
  np.testing.assert_allclose(r[0].numpy(), np_rotation(0.1, -0.2, 0.3),
                             atol=1e-6)
  np.testing.assert_allclose(t[0].numpy(), [5.0, -6.0, 700.0])


# --- camera -----------------------------------------------------------------


def test_project_known_point():
  k = geometry.intrinsics(1000.0)  # c = (112, 112)
  p = geometry.project([[10.0, -20.0, 500.0]], k).numpy()
  # x = 1000 * 10 / 500 + 112, y = 1000 * -20 / 500 + 112.
  np.testing.assert_allclose(p, [[132.0, 72.0]], rtol=1e-6)


def test_project_matches_numpy_batched():
  rng = np.random.default_rng(2)
  points = np.concatenate(
      [rng.uniform(-100, 100, (3, 7, 2)), rng.uniform(300, 900, (3, 7, 1))],
      axis=-1)
  ks = np.stack([np_intrinsics(f, 112.0, 100.0) for f in (500.0, 1e3, 4700.)])
  p = geometry.project(points, ks).numpy()
  assert p.shape == (3, 7, 2)
  for b in range(3):
    np.testing.assert_allclose(p[b], np_project(points[b], ks[b]), rtol=1e-5)


def test_project_min_depth_keeps_behind_camera_points_finite():
  k = geometry.intrinsics(1000.0)
  points = tf.constant([[1.0, 2.0, 0.0], [1.0, 2.0, -5.0]])
  with tf.GradientTape() as tape:
    tape.watch(points)
    p = geometry.project(points, k, min_depth=1.0)
  assert np.all(np.isfinite(p.numpy()))
  assert np.all(np.isfinite(tape.gradient(p, points).numpy()))


def test_unproject_then_project_is_identity():
  rng = np.random.default_rng(3)
  pixels = rng.uniform(0, 224, (2, 3, 50, 2))
  depth = rng.uniform(300, 900, (2, 3, 50))
  k = geometry.intrinsics([[800.0], [1200.0]], [[[100.0, 120.0]]] * 2)
  assert k.shape == (2, 1, 3, 3)
  points = geometry.unproject(pixels, depth, k)
  assert points.shape == (2, 3, 50, 3)
  np.testing.assert_allclose(points[..., 2].numpy(), depth, rtol=1e-6)
  np.testing.assert_allclose(geometry.project(points, k).numpy(), pixels,
                             atol=1e-3)
  # Independent reference for one point: X = d ((u - cx) / f, (v - cy) / f, 1).
  u, v = pixels[1, 2, 7]
  d = depth[1, 2, 7]
  np.testing.assert_allclose(
      points[1, 2, 7].numpy(),
      [d * (u - 100.0) / 1200.0, d * (v - 120.0) / 1200.0, d], rtol=1e-5)


def test_transform_matches_numpy():
  rng = np.random.default_rng(4)
  points = rng.normal(size=(2, 9, 3))
  r = np.stack([np_rotation(*a) for a in random_angles(rng, (2,))])
  t = rng.normal(size=(2, 3))
  out = geometry.transform(points, r, t).numpy()
  for b in range(2):
    np.testing.assert_allclose(out[b], points[b] @ r[b].T + t[b], atol=1e-5)


# --- epipolar ---------------------------------------------------------------


def test_skew_is_cross_product():
  rng = np.random.default_rng(5)
  a, b = rng.normal(size=(2, 4, 3))
  out = tf.linalg.matvec(geometry.skew(tf.constant(a)), b).numpy()
  np.testing.assert_allclose(out, np.cross(a, b), atol=1e-12)


def test_relative_pose_maps_target_camera_to_source_camera():
  rng = np.random.default_rng(6)
  for _ in range(5):
    setup = two_view_setup(rng)
    r_rel, t_rel = geometry.relative_pose(
        *[tf.constant(setup[k]) for k in ("r_t", "t_t", "r_s", "t_s")])
    mapped = setup["x_t"] @ r_rel.numpy().T + t_rel.numpy()
    np.testing.assert_allclose(mapped, setup["x_s"], atol=1e-10)


def test_fundamental_matrix_zero_on_correspondences():
  rng = np.random.default_rng(7)
  for dtype, tol in ((np.float32, 2e-3), (np.float64, 1e-9)):
    setup = two_view_setup(rng)
    args = [tf.constant(setup[k], dtype) for k in
            ("angles_t", "t_t", "angles_s", "t_s", "k_t", "k_s")]
    f = tf_fundamental(*args).numpy()
    # Independent F.
    r_rel, t_rel = np_relative(setup["r_t"], setup["t_t"], setup["r_s"],
                               setup["t_s"])
    t_cross = np.array([[0, -t_rel[2], t_rel[1]], [t_rel[2], 0, -t_rel[0]],
                        [-t_rel[1], t_rel[0], 0]])
    f_ref = (np.linalg.inv(setup["k_s"]).T @ t_cross @ r_rel @
             np.linalg.inv(setup["k_t"]))
    np.testing.assert_allclose(f, f_ref, rtol=tol * 10,
                               atol=tol * np.abs(f_ref).max())
    h_t = np.concatenate([setup["p_t"], np.ones((20, 1))], axis=-1)
    h_s = np.concatenate([setup["p_s"], np.ones((20, 1))], axis=-1)
    algebraic = np.einsum("li,ij,lj->l", h_s, f.astype(np.float64), h_t)
    line_norm = np.linalg.norm(h_t @ f.astype(np.float64).T, axis=-1)
    np.testing.assert_allclose(algebraic / line_norm, 0.0, atol=tol)
    d = geometry.symmetric_epipolar_distance(
        tf.constant(f), setup["p_t"], setup["p_s"]).numpy()
    assert d.shape == (20,) and d.dtype == dtype
    np.testing.assert_allclose(d, 0.0, atol=tol)


def test_symmetric_distance_of_perturbed_points_matches_geometry():
  rng = np.random.default_rng(8)
  for dtype, rtol in ((np.float32, 2e-3), (np.float64, 1e-7)):
    setup = two_view_setup(rng)
    p_s = setup["p_s"] + rng.uniform(-3.0, 3.0, setup["p_s"].shape)
    p_t = setup["p_t"] + rng.uniform(-3.0, 3.0, setup["p_t"].shape)
    expected = np_symmetric_distance_geometric(setup, p_t, p_s)
    assert np.all(expected > 1e-2)
    args = [tf.constant(setup[k], dtype) for k in
            ("angles_t", "t_t", "angles_s", "t_s", "k_t", "k_s")]
    f = tf_fundamental(*args)
    d = geometry.symmetric_epipolar_distance(f, p_t, p_s).numpy()
    assert d.dtype == dtype
    np.testing.assert_allclose(d, expected, rtol=rtol, atol=rtol)


def test_perturbed_source_point_along_line_normal_has_that_distance():
  """Moving p_s by delta px normal to its epipolar line: source term = delta."""
  rng = np.random.default_rng(9)
  setup = two_view_setup(rng, num_points=1)
  f = tf_fundamental(*[tf.constant(setup[k]) for k in
                       ("angles_t", "t_t", "angles_s", "t_s", "k_t", "k_s")])
  r_rel, t_rel = np_relative(setup["r_t"], setup["t_t"], setup["r_s"],
                             setup["t_s"])
  # Direction of the epipolar line of p_t in the source image (no F used).
  ray = np.linalg.solve(setup["k_t"], np.append(setup["p_t"][0], 1.0))
  a, b = [np_project((r_rel @ (d * ray) + t_rel)[None], setup["k_s"])[0]
          for d in (400.0, 900.0)]
  direction = (b - a) / np.linalg.norm(b - a)
  normal = np.array([-direction[1], direction[0]])
  p_s = setup["p_s"] + 2.5 * normal
  expected = np_symmetric_distance_geometric(setup, setup["p_t"], p_s)
  d = geometry.symmetric_epipolar_distance(f, setup["p_t"], p_s).numpy()
  np.testing.assert_allclose(d, expected, rtol=1e-8)
  # The source half is exactly the 2.5 px displacement.
  line = f.numpy() @ np.append(setup["p_t"][0], 1.0)
  np.testing.assert_allclose(
      abs(line @ np.append(p_s[0], 1.0)) / np.hypot(*line[:2]), 2.5,
      rtol=1e-8)


def test_symmetric_distance_degenerate_line_is_finite():
  """F = 0 (no translation): distance 0, finite gradient, thanks to epsilon."""
  r_rel = geometry.euler_to_rotation([0.1, 0.2, 0.3])
  t_rel = tf.zeros([3])
  k = geometry.intrinsics(1000.0)
  p_t = tf.constant([[100.0, 120.0], [50.0, 60.0]])
  p_s = tf.constant([[101.0, 118.0], [40.0, 70.0]])
  with tf.GradientTape() as tape:
    tape.watch([t_rel, p_t])
    f = geometry.fundamental_matrix(geometry.essential_matrix(r_rel, t_rel),
                                    k, k)
    d = geometry.symmetric_epipolar_distance(f, p_t, p_s)
  np.testing.assert_allclose(d.numpy(), 0.0)
  grads = tape.gradient(d, [t_rel, p_t])
  for g in grads:
    assert np.all(np.isfinite(g.numpy()))
  # Without epsilon the same case is 0 / 0.
  d = geometry.symmetric_epipolar_distance(f, p_t, p_s, epsilon=0.0)
  assert np.all(np.isnan(d.numpy()))


# --- batching, tf.function, gradients ----------------------------------------


def test_batch_and_view_broadcasting():
  """Target [B, 1, ...] against sources [B, N, ...], one shared K [3, 3]."""
  rng = np.random.default_rng(10)
  batch, views, num = 2, 3, 6
  angles = rng.uniform(-0.4, 0.4, (batch, views + 1, 3))
  trans = np.concatenate([rng.uniform(-20, 20, (batch, views + 1, 2)),
                          rng.uniform(500, 800, (batch, views + 1, 1))], -1)
  p_t = rng.uniform(0, 224, (batch, 1, num, 2))
  p_s = rng.uniform(0, 224, (batch, views, num, 2))
  k = geometry.intrinsics(1000.0)
  r_all = geometry.euler_to_rotation(angles)
  r_rel, t_rel = geometry.relative_pose(
      r_all[:, :1], trans[:, :1], r_all[:, 1:], trans[:, 1:])
  assert r_rel.shape == (batch, views, 3, 3)
  assert t_rel.shape == (batch, views, 3)
  f = geometry.fundamental_matrix(
      geometry.essential_matrix(r_rel, t_rel), k, k)
  d = geometry.symmetric_epipolar_distance(f, p_t, p_s).numpy()
  assert d.shape == (batch, views, num)
  k_np = np_intrinsics(1000.0, 112.0, 112.0)
  for b in range(batch):
    for v in range(views):
      setup = dict(r_t=np_rotation(*angles[b, 0]), t_t=trans[b, 0],
                   r_s=np_rotation(*angles[b, v + 1]), t_s=trans[b, v + 1],
                   k_t=k_np, k_s=k_np)
      expected = np_symmetric_distance_geometric(setup, p_t[b, 0], p_s[b, v])
      np.testing.assert_allclose(d[b, v], expected, rtol=5e-3, atol=1e-3)
  # Projection: points [B, N, V, 3] with K [3, 3] and K [B, 1, 3, 3].
  points = np.concatenate([rng.uniform(-50, 50, (batch, views, num, 2)),
                           rng.uniform(400, 800, (batch, views, num, 1))], -1)
  p = geometry.project(points, k).numpy()
  assert p.shape == (batch, views, num, 2)
  k_b = geometry.intrinsics([[900.0], [1100.0]])
  p_b = geometry.project(points, k_b).numpy()
  for b in range(batch):
    for v in range(views):
      np.testing.assert_allclose(p[b, v], np_project(points[b, v], k_np),
                                 rtol=1e-5)
      np.testing.assert_allclose(p_b[b, v],
                                 np_project(points[b, v], k_b[b, 0].numpy()),
                                 rtol=1e-5)


def test_works_in_tf_function_with_unknown_dims():
  spec = tf.TensorSpec

  @tf.function(input_signature=[
      spec([None, 6]), spec([None, 6]), spec([None, None, 2]),
      spec([None, None, 2]), spec([None, None, 3])])
  def fn(pose_t, pose_s, p_t, p_s, points):
    r_t, t_t = geometry.pose_to_rotation_translation(pose_t)
    r_s, t_s = geometry.pose_to_rotation_translation(pose_s)
    r_rel, t_rel = geometry.relative_pose(r_t, t_t, r_s, t_s)
    k = geometry.intrinsics(tf.fill(tf.shape(pose_t)[:1], 1000.0))
    f = geometry.fundamental_matrix(
        geometry.essential_matrix(r_rel, t_rel), k, k)
    pixels = geometry.project(geometry.transform(points, r_t, t_t), k)
    depth = geometry.transform(points, r_t, t_t)[..., 2]
    back = geometry.unproject(pixels, depth, k)
    return (geometry.symmetric_epipolar_distance(f, p_t, p_s), back,
            geometry.rotation_to_euler(r_t))

  rng = np.random.default_rng(11)
  pose_t = np.concatenate([rng.uniform(-0.3, 0.3, (2, 3)),
                           [[0, 0, 600.0], [5, -5, 650.0]]], -1)
  pose_s = np.concatenate([rng.uniform(-0.3, 0.3, (2, 3)),
                           [[10, 0, 600.0], [-5, 5, 700.0]]], -1)
  p_t = rng.uniform(0, 224, (2, 5, 2))
  p_s = rng.uniform(0, 224, (2, 5, 2))
  points = rng.uniform(-50, 50, (2, 4, 3))
  args = [tf.constant(a, tf.float32) for a in
          (pose_t, pose_s, p_t, p_s, points)]
  d_graph, back_graph, euler_graph = fn(*args)
  assert d_graph.shape == (2, 5)

  r_t, t_t = geometry.pose_to_rotation_translation(args[0])
  r_s, t_s = geometry.pose_to_rotation_translation(args[1])
  k = geometry.intrinsics(1000.0)
  f = geometry.fundamental_matrix(
      geometry.essential_matrix(*geometry.relative_pose(r_t, t_t, r_s, t_s)),
      k, k)
  np.testing.assert_allclose(
      d_graph.numpy(),
      geometry.symmetric_epipolar_distance(f, args[2], args[3]).numpy(),
      rtol=1e-5)
  expected_back = np.stack([
      points[b] @ np_rotation(*pose_t[b, :3]).T + pose_t[b, 3:]
      for b in range(2)])
  np.testing.assert_allclose(back_graph.numpy(), expected_back, atol=1e-2)
  np.testing.assert_allclose(euler_graph.numpy(), pose_t[:, :3], atol=1e-5)


def test_epipolar_chain_gradient_matches_finite_differences():
  """d(distance)/d(pose) through euler -> relative pose -> E -> F, float64."""
  rng = np.random.default_rng(12)
  setup = two_view_setup(rng, num_points=4)
  p_t = tf.constant(setup["p_t"] + rng.uniform(-2, 2, (4, 2)))
  p_s = tf.constant(setup["p_s"] + rng.uniform(-2, 2, (4, 2)))
  pose_t = tf.constant(np.concatenate([setup["angles_t"], setup["t_t"]]))
  k_t = tf.constant(setup["k_t"])
  k_s = tf.constant(setup["k_s"])

  def distance(pose_s):
    r_t, t_t = geometry.pose_to_rotation_translation(pose_t)
    r_s, t_s = geometry.pose_to_rotation_translation(pose_s)
    e = geometry.essential_matrix(*geometry.relative_pose(r_t, t_t, r_s, t_s))
    return geometry.symmetric_epipolar_distance(
        geometry.fundamental_matrix(e, k_t, k_s), p_t, p_s)

  pose_s = tf.constant(np.concatenate([setup["angles_s"], setup["t_s"]]))
  theoretical, numerical = tf.test.compute_gradient(distance, [pose_s],
                                                    delta=1e-6)
  assert np.abs(theoretical[0]).max() > 1e-3
  np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-4,
                             atol=1e-6)


def test_project_and_unproject_gradients_match_finite_differences():
  rng = np.random.default_rng(13)
  points = tf.constant(np.concatenate(
      [rng.uniform(-50, 50, (3, 2)), rng.uniform(400, 800, (3, 1))], -1))
  k = tf.constant(np_intrinsics(1000.0, 112.0, 112.0))
  theoretical, numerical = tf.test.compute_gradient(
      lambda x: geometry.project(x, k), [points], delta=1e-4)
  np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-5,
                             atol=1e-8)
  pixels = tf.constant(rng.uniform(0, 224, (3, 2)))
  depth = tf.constant(rng.uniform(400, 800, (3,)))
  theoretical, numerical = tf.test.compute_gradient(
      lambda p, d: geometry.unproject(p, d, k), [pixels, depth], delta=1e-4)
  for th, nu in zip(theoretical, numerical):
    np.testing.assert_allclose(th, nu, rtol=1e-5, atol=1e-8)


def test_float32_gradients_finite():
  rng = np.random.default_rng(14)
  angles = tf.Variable(random_angles(rng, (8,)).astype(np.float32))
  with tf.GradientTape() as tape:
    euler = geometry.rotation_to_euler(geometry.euler_to_rotation(angles))
    loss = tf.reduce_sum(euler)
  grad = tape.gradient(loss, angles).numpy()
  # d(round trip)/d(angles) = identity.
  np.testing.assert_allclose(grad, np.ones((8, 3)), atol=5e-3)


# --- bad inputs -------------------------------------------------------------


@pytest.mark.parametrize("call, message", [
    (lambda: geometry.project(np.zeros((5, 2)), np.eye(3)), "points_camera"),
    (lambda: geometry.project(np.zeros((5, 3)), np.eye(2)),
     "intrinsic_matrix"),
    (lambda: geometry.project(np.zeros((2, 5, 3)), np.zeros((3, 3, 3))),
     "broadcast"),
    (lambda: geometry.unproject(np.zeros((5, 2)), np.zeros((4,)), np.eye(3)),
     "broadcast"),
    (lambda: geometry.euler_to_rotation(np.zeros((2, 4))), "angles"),
    (lambda: geometry.rotation_to_euler(np.zeros((3,))), "rotation_matrix"),
    (lambda: geometry.pose_to_rotation_translation(np.zeros((7,))), "pose"),
    (lambda: geometry.intrinsics(1000.0, [1.0, 2.0, 3.0]), "principal_point"),
    (lambda: geometry.intrinsics(np.ones(3), np.ones((2, 2))), "broadcast"),
    (lambda: geometry.relative_pose(np.eye(3), np.zeros(2), np.eye(3),
                                    np.zeros(3)), "translation_target"),
    (lambda: geometry.skew(np.zeros((3, 2))), "vector"),
    (lambda: geometry.symmetric_epipolar_distance(
        np.eye(3), np.zeros((4, 2)), np.zeros((5, 2))), "broadcast"),
    (lambda: geometry.symmetric_epipolar_distance(
        np.eye(3), np.zeros((4, 3)), np.zeros((4, 2))), "points_target"),
    (lambda: geometry.symmetric_epipolar_distance(
        np.eye(3), np.zeros((4, 2)), np.zeros((4, 2)), epsilon=-1.0),
     "epsilon"),
    (lambda: geometry.transform(tf.zeros((4, 3)), tf.eye(3, dtype=tf.float64),
                                tf.zeros(3)), "same floating dtype"),
])
def test_bad_inputs_raise_value_error(call, message):
  with pytest.raises(ValueError, match=message):
    call()
