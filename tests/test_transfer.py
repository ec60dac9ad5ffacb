"""Carrying per-vertex values between topologies (mgc_tf/facemodel/transfer.py):
closest points on triangles against brute force, and the surface map on
meshes whose answer is known."""

import numpy as np

from mgc_tf.facemodel import transfer


def _brute_force_distance(point, triangle, steps=300):
  """Smallest distance from `point` to a dense barycentric sampling."""
  u, v = np.meshgrid(np.linspace(0, 1, steps + 1), np.linspace(0, 1, steps + 1))
  keep = u + v <= 1 + 1e-12
  weights = np.stack([1 - u[keep] - v[keep], u[keep], v[keep]], -1)
  samples = weights @ triangle
  return np.min(np.linalg.norm(samples - point, axis=-1))


def test_closest_points_match_brute_force():
  rng = np.random.default_rng(0)
  triangles = rng.normal(0, 1, [60, 3, 3])
  points = rng.normal(0, 1.5, [60, 3])
  weights = transfer.closest_points_on_triangles(points, triangles)
  assert weights.shape == (60, 3)
  assert (weights >= -1e-12).all()
  np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-12)
  for point, triangle, w in zip(points, triangles, weights):
    ours = np.linalg.norm(w @ triangle - point)
    brute = _brute_force_distance(point, triangle)
    # Never farther than any sample; the sampling is within ~1 % of a side.
    assert ours <= brute + 1e-9
    assert ours >= brute - 0.02 * np.ptp(triangle, axis=0).max()


def test_closest_point_regions_in_closed_form():
  triangle = np.array([[0.0, 0, 0], [2, 0, 0], [0, 2, 0]])
  cases = {
      (0.5, 0.5, 3.0): (0.5, 0.25, 0.25),   # above the inside: projection
      (-1.0, -1.0, 0.0): (1.0, 0.0, 0.0),   # beyond corner a
      (1.0, -2.0, 1.0): (0.5, 0.5, 0.0),    # beside edge ab
      (2.0, 2.0, 0.0): (0.0, 0.5, 0.5),     # beyond the hypotenuse
  }
  for point, expected in cases.items():
    got = transfer.closest_points_on_triangles(np.array(point), triangle)
    np.testing.assert_allclose(got, expected, atol=1e-12)
  # A degenerate (collinear) triangle gives its nearest segment point.
  line = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]])
  got = transfer.closest_points_on_triangles(np.array([1.5, 1.0, 0.0]), line)
  np.testing.assert_allclose(got @ line, [1.5, 0, 0], atol=1e-12)


def _grid_mesh(n=12, size=100.0):
  """A bumpy [n x n] sheet: points [n*n, 3] and triangles [2(n-1)^2, 3]."""
  xs, ys = np.meshgrid(np.linspace(-size / 2, size / 2, n),
                       np.linspace(-size / 2, size / 2, n))
  zs = 5 * np.sin(xs / 15) * np.cos(ys / 20)
  points = np.stack([xs, ys, zs], -1).reshape(-1, 3)
  triangles = []
  for i in range(n - 1):
    for j in range(n - 1):
      k = i * n + j
      triangles += [[k, k + 1, k + n], [k + 1, k + n + 1, k + n]]
  return points, np.array(triangles)


def test_surface_map_reproduces_linear_values_on_the_surface():
  points, triangles = _grid_mesh()
  rng = np.random.default_rng(1)
  # Target vertices: random points on random source triangles, so the map's
  # answer is known; the source is moved by a similarity the landmarks undo.
  chosen = rng.integers(0, len(triangles), 200)
  bary = rng.dirichlet([1, 1, 1], 200)
  target = np.einsum("vk,vkx->vx", bary, points[triangles[chosen]])
  landmarks = np.arange(0, len(points), 2)[:68]
  target_all = np.concatenate([points[landmarks], target])
  angle = 0.3
  rotation = np.array([[np.cos(angle), -np.sin(angle), 0],
                       [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
  source = 1.3 * points @ rotation.T + [4.0, -2.0, 7.0]
  surface_map = transfer.nearest_surface_map(
      source, triangles, landmarks, target_all, np.arange(68))
  assert surface_map.landmark_rms < 1e-9
  np.testing.assert_allclose(surface_map.distances, 0.0, atol=1e-7)
  # Per-vertex values linear in position are reproduced exactly in between
  # vertices; the nearest vertex only approximates them.
  values = np.stack([points[:, 0], 2 * points[:, 1] - points[:, 2]], -1)
  expected = np.stack([target_all[:, 0],
                       2 * target_all[:, 1] - target_all[:, 2]], -1)
  np.testing.assert_allclose(surface_map.apply(values), expected, atol=1e-6)
  vertex_map = transfer.nearest_vertex_map(source, landmarks, target_all,
                                           np.arange(68))
  assert np.abs(values[vertex_map.source_ids] - expected).max() > 1.0
  # Off the surface (the landmarks stay, so the alignment does): the distance
  # is at most the lift, and near it where the sheet is flat enough.
  lifted = target_all.copy()
  lifted[68:, 2] += 0.5
  lifted_map = transfer.nearest_surface_map(source, triangles, landmarks,
                                            lifted, np.arange(68))
  assert lifted_map.distances.max() <= 0.5 + 1e-9
  assert np.median(lifted_map.distances[68:]) > 0.4
