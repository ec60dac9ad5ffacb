"""Scan errors (MICC protocol): crop, ICP, point-to-plane / point-to-point."""

import os

import numpy as np
import pytest

from mgc_tf.evaluation import scan_metrics
from mgc_tf.facemodel import loaders
from mgc_tf.geometry import euler_to_rotation
from mgc_tf.io import scans

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def face():
  """The embedded model's mean face: vertices [V, 3] mm, triangles, nose."""
  model = loaders.load_face_model("embedded-synthetic-v1")
  vertices = model.mean_shape.astype(np.float64)
  nose = vertices[model.landmark_indices[scan_metrics.NOSE_TIP_LANDMARK]]
  return vertices, model.triangles, nose


def _rotation(degrees):
  return euler_to_rotation(np.radians([degrees])).numpy()[0].astype(
      np.float64)


def test_icp_recovers_a_known_rigid_motion(face):
  vertices, _, _ = face
  rotation = _rotation([3.0, -4.0, 2.0])
  translation = np.array([4.0, -3.0, 5.0])
  moved = vertices @ rotation.T + translation
  result = scan_metrics.rigid_icp(moved, vertices)
  # The transform that moves the scan back: x -> R^T (x - t).
  np.testing.assert_allclose(result.matrix[:3, :3], rotation.T, atol=1e-6)
  np.testing.assert_allclose(result.matrix[:3, 3], -rotation.T @ translation,
                             atol=1e-4)
  np.testing.assert_allclose(result.moved, vertices, atol=1e-4)
  assert result.cost < 1e-8


def test_scan_error_of_a_moved_copy_is_zero(face):
  vertices, triangles, nose = face
  rotation = _rotation([6.0, -10.0, 8.0])
  translation = np.array([30.0, -12.0, 250.0])
  scan = vertices @ rotation.T + translation
  # Given nose tip, and found as the most forward point: both align it.
  for scan_nose in (nose @ rotation.T + translation, None):
    error = scan_metrics.scan_error(vertices, triangles, nose, scan,
                                    scan_nose_tip=scan_nose)
    assert error.point_to_plane_rmse_mm < 1e-6
    assert error.point_to_point_mm < 1e-6
    np.testing.assert_allclose(error.transform[:3, :3], rotation.T,
                               atol=1e-6)
    np.testing.assert_allclose(error.transform[:3, 3],
                               -rotation.T @ translation, atol=1e-4)
  # The 95 mm crop keeps the points near the nose tip only.
  inside = np.linalg.norm(vertices - nose, axis=-1) <= 95.0
  error = scan_metrics.scan_error(vertices, triangles, nose, scan,
                                  scan_nose_tip=nose @ rotation.T +
                                  translation)
  assert error.num_points == inside.sum() < len(vertices)


def test_points_far_from_the_nose_are_cropped_away(face):
  vertices, triangles, nose = face
  # A wall 200 mm behind the face would ruin ICP and the error if kept.
  grid = np.stack(np.meshgrid(np.linspace(-150, 150, 40),
                              np.linspace(-150, 150, 40)), -1).reshape(-1, 2)
  wall = np.concatenate([grid, np.full([len(grid), 1], nose[2] - 200.0)], -1)
  scan = np.concatenate([vertices + np.array([5.0, 0.0, 0.0]), wall])
  error = scan_metrics.scan_error(vertices, triangles, nose, scan)
  assert error.point_to_plane_rmse_mm < 1e-6
  np.testing.assert_allclose(error.scan_nose_tip, nose + [5.0, 0.0, 0.0])


def test_point_to_plane_and_point_to_point_distances():
  # A flat grid (normal +z), 10 mm spacing.
  xy = np.stack(np.meshgrid(np.arange(5.0) * 10, np.arange(5.0) * 10),
                -1).reshape(-1, 2)
  vertices = np.concatenate([xy, np.zeros([25, 1])], -1)
  normals = np.tile([0.0, 0.0, 1.0], [25, 1])
  # 2 mm above a vertex: 2 and 2; 3 mm beside it in the plane: 3 and 0.
  points = np.array([[20.0, 20.0, 2.0], [23.0, 20.0, 0.0]])
  point_to_point, point_to_plane = scan_metrics.nearest_vertex_distances(
      points, vertices, normals)
  np.testing.assert_allclose(point_to_point, [2.0, 3.0])
  np.testing.assert_allclose(point_to_plane, [2.0, 0.0])


def test_shape_differences_show_in_the_error(face):
  vertices, triangles, nose = face
  # A face 5 % wider than the prediction cannot be aligned rigidly.
  scan = vertices * np.array([1.05, 1.0, 1.0])
  error = scan_metrics.scan_error(vertices, triangles, nose, scan)
  assert 0.2 < error.point_to_plane_rmse_mm < 0.05 * np.abs(
      vertices[:, 0]).max()


def test_mean_shape_forward_point_and_errors(face):
  vertices, triangles, nose = face
  shapes = np.stack([vertices - 1.0, vertices + 1.0])
  np.testing.assert_allclose(scan_metrics.mean_shape(shapes), vertices)
  np.testing.assert_allclose(scan_metrics.most_forward_point(vertices), nose)
  with pytest.raises(ValueError, match="T > 0"):
    scan_metrics.mean_shape(np.zeros([0, 4, 3]))
  # A scan in micrometres: almost nothing within 95 "mm" of the nose.
  with pytest.raises(ValueError, match="in mm"):
    scan_metrics.scan_error(vertices, triangles, nose, vertices * 1000.0)


def test_point_to_plane_stage_slides_off_the_vertex_grid(face):
  vertices, triangles, nose = face
  # A coarse scan of the same face (the MICC dummy scan: every few rows and
  # columns of the mean face's vertex grid), cropped around its most forward
  # point, which is not quite the nose tip: ICP starts ~1.8 mm off.
  scan = scans.read_scan(os.path.join(
      REPO, "tfds_builders/micc_florence/dummy_data/subject_01/Model/"
      "frontal1/obj/110920150452.obj")).vertices.astype(np.float64)
  forward = scan_metrics.most_forward_point(scan)
  scan = scan_metrics.crop_sphere(scan, forward)
  initial = np.eye(4)
  initial[:3, 3] = nose - forward
  assert np.linalg.norm(initial[:3, 3]) > 1.5
  normals = scan_metrics.vertex_normals(vertices, triangles)
  matched = scan_metrics.rigid_icp(scan, vertices, initial=initial)
  refined = scan_metrics.rigid_icp(scan, vertices, initial=initial,
                                   target_normals=normals)
  # Point-to-point matching of vertices stops a grid step away ...
  assert abs(matched.matrix[1, 3]) > 0.5
  # ... the point-to-plane stage settles on the surface.
  np.testing.assert_allclose(refined.matrix[:3, 3], 0.0, atol=0.01)
  np.testing.assert_allclose(refined.matrix[:3, :3], np.eye(3), atol=1e-4)
