"""Evaluation metrics on cases with known answers."""

import numpy as np
import pytest

from mgc_tf.evaluation import metrics
from mgc_tf.geometry import euler_to_rotation


def test_box_size_and_nme():
  truth = np.array([[0.0, 0.0], [40.0, 0.0], [40.0, 10.0], [0.0, 10.0]])
  assert metrics.box_size(truth) == pytest.approx(20.0)  # sqrt(40 * 10)
  predicted = truth + np.array([3.0, 4.0])  # every point 5 px off
  assert metrics.landmark_nme(predicted, truth) == pytest.approx(0.25)
  assert metrics.landmark_nme(predicted, truth,
                              normaliser=np.array(10.0)) == pytest.approx(0.5)


def test_yaw_bins_and_their_means():
  yaws = np.array([5.0, -29.9, 30.0, -45.0, 60.0, -90.0, 95.0])
  np.testing.assert_array_equal(metrics.yaw_bin_index(yaws),
                                [0, 0, 1, 1, 2, 2, 2])
  values = np.array([1.0, 3.0, 10.0, 20.0, 100.0, 200.0, 300.0])
  result = metrics.per_yaw_bin_mean(values, yaws)
  assert result["0-30"] == 2.0 and result["30-60"] == 15.0
  assert result["60-90"] == 200.0
  assert result["mean"] == pytest.approx((2.0 + 15.0 + 200.0) / 3)
  empty = metrics.per_yaw_bin_mean(np.array([1.0]), np.array([10.0]))
  assert np.isnan(empty["60-90"]) and empty["mean"] == 1.0


def test_rigid_alignment_undoes_a_known_motion():
  rng = np.random.default_rng(0)
  points = rng.normal(0, 50, (200, 3))
  rotation = euler_to_rotation(np.array([[0.3, -0.5, 0.2]])).numpy()[0]
  moved = points @ rotation.T + np.array([10.0, -20.0, 300.0])
  np.testing.assert_allclose(metrics.rigid_align(moved, points), points,
                             atol=1e-4)  # R is float32
  assert metrics.aligned_vertex_error(moved, points) < 1e-4
  # A reflection cannot be undone by a rotation: the error stays large.
  mirrored = points * np.array([-1.0, 1.0, 1.0])
  assert metrics.aligned_vertex_error(mirrored, points) > 10.0


def test_vertex_error_on_a_region_ignores_the_rest():
  rng = np.random.default_rng(1)
  points = rng.normal(0, 50, (100, 3))
  region = np.arange(100) < 60
  changed = points.copy()
  changed[~region] += rng.normal(0, 30, (40, 3))  # the back of the head
  assert metrics.aligned_vertex_error(changed, points) > 5.0
  assert metrics.aligned_vertex_error(changed, points, region) < 1e-6
  # On the region, the same as measuring the region's vertices alone.
  changed[region] += 2.0 * rng.normal(size=(60, 3))
  assert metrics.aligned_vertex_error(changed, points, region) == (
      pytest.approx(metrics.aligned_vertex_error(changed[:60], points[:60])))


def test_angle_error_wraps():
  np.testing.assert_allclose(
      metrics.angle_error_degrees(np.array([179.0, -10.0, 350.0]),
                                  np.array([-179.0, 10.0, 10.0])),
      [2.0, 20.0, 20.0])


def test_box_from_corners_and_nme_per_yaw_bin():
  np.testing.assert_allclose(
      metrics.box_size_from_corners(np.array([[10.0, 20.0, 50.0, 30.0]])),
      [20.0])  # sqrt(40 * 10)
  truth = np.tile(np.array([[0.0, 0.0], [40.0, 0.0], [40.0, 10.0],
                            [0.0, 10.0]]), [3, 1, 1])
  shifts = np.array([1.0, 2.0, 4.0])  # 1, 2, 4 px off: 5, 10, 20 percent
  predicted = truth + shifts[:, None, None] * np.array([0.6, 0.8])
  result = metrics.nme_per_yaw_bin(predicted, truth,
                                   np.array([-10.0, 45.0, 80.0]))
  assert result["nme/0-30"] == pytest.approx(5.0)
  assert result["nme/30-60"] == pytest.approx(10.0)
  assert result["nme/60-90"] == pytest.approx(20.0)
  assert result["nme/mean"] == pytest.approx(35.0 / 3)
  halved = metrics.nme_per_yaw_bin(predicted, truth, np.zeros(3),
                                   normaliser=np.full(3, 40.0))
  assert halved["nme/0-30"] == pytest.approx(100 * 7.0 / 3 / 40.0)


def test_pose_angle_errors_name_the_angles():
  true_pose = np.zeros([1, 6])
  predicted = np.radians(np.array([[1.0, 2.0, 3.0, 0.0, 0.0, 0.0]]))
  errors = metrics.pose_angle_errors(predicted, true_pose)
  # (rz, ry, rx) = (roll, yaw, pitch).
  assert errors["roll_error_deg"][0] == pytest.approx(1.0)
  assert errors["yaw_error_deg"][0] == pytest.approx(2.0)
  assert errors["pitch_error_deg"][0] == pytest.approx(3.0)


def _rotation(rz, ry, rx):
  return euler_to_rotation(np.radians([[rz, ry, rx]])).numpy()[0].astype(
      np.float64)


def test_rotation_angles_and_relative_rotation_error():
  assert metrics.rotation_angle_degrees(_rotation(30.0, 0, 0),
                                        np.eye(3)) == pytest.approx(30.0)
  assert metrics.rotation_angle_degrees(
      _rotation(0, 20.0, 0), _rotation(0, -15.0, 0)) == pytest.approx(
          35.0, abs=1e-4)
  rng = np.random.default_rng(1)
  true_target = np.concatenate([rng.uniform(-0.5, 0.5, [4, 3]),
                                rng.uniform(-50, 50, [4, 3])], -1)
  true_source = true_target + np.concatenate(
      [rng.uniform(-0.3, 0.3, [4, 3]), np.zeros([4, 3])], -1)
  np.testing.assert_allclose(metrics.relative_rotation_error_degrees(
      true_target, true_source, true_target, true_source), 0.0, atol=1e-5)
  # Target at zero angles (R_t = I): R_rel = R_s. A source rolled by 35
  # instead of 20 degrees is 15 degrees off; a target turned by 10 degrees
  # of yaw with the source kept is 10 degrees off.
  zero = np.zeros([1, 6])
  source = np.array([[np.radians(20.0), 0, 0, 0, 0, 0]])
  rolled = np.array([[np.radians(35.0), 0, 0, 0, 0, 0]])
  turned = np.array([[0, np.radians(10.0), 0, 0, 0, 0]])
  assert metrics.relative_rotation_error_degrees(
      zero, rolled, zero, source)[0] == pytest.approx(15.0)
  assert metrics.relative_rotation_error_degrees(
      turned, zero, zero, zero)[0] == pytest.approx(10.0)


def _numpy_epipolar(pose_t, pose_s, k_t, k_s, p_t, p_s):
  """Independent reference: F from the DESIGN formulas, symmetric distance."""
  r_t, r_s = metrics.rotations_of(pose_t), metrics.rotations_of(pose_s)
  r_rel = r_s @ np.swapaxes(r_t, -1, -2)
  t_rel = pose_s[:, 3:] - np.einsum("aij,aj->ai", r_rel, pose_t[:, 3:])
  result = []
  for a in range(len(pose_t)):
    x, y, z = t_rel[a]
    e = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]]) @ r_rel[a]
    f = np.linalg.inv(k_s[a]).T @ e @ np.linalg.inv(k_t[a])
    h_t = np.concatenate([p_t[a], np.ones([len(p_t[a]), 1])], -1)
    h_s = np.concatenate([p_s[a], np.ones([len(p_s[a]), 1])], -1)
    line_s, line_t = h_t @ f.T, h_s @ f
    residual = np.abs(np.sum(h_s * line_s, -1))
    d = 0.5 * (residual / np.linalg.norm(line_s[:, :2], axis=-1) +
               residual / np.linalg.norm(line_t[:, :2], axis=-1))
    result.append(d.mean())
  return np.array(result)


def test_epipolar_error_matches_numpy_and_vanishes_for_true_poses():
  rng = np.random.default_rng(2)
  k = np.tile(np.array([[300.0, 0, 32], [0, 300.0, 32], [0, 0, 1]]), [2, 1, 1])
  pose_t = np.array([[0.05, 0.3, np.pi, 1.0, -2.0, 600.0],
                     [0.0, -0.4, np.pi + 0.1, 5.0, 0.0, 650.0]])
  pose_s = pose_t + np.array([[0.02, 0.4, 0.05, 10.0, 3.0, 20.0],
                              [-0.03, -0.35, 0.0, -8.0, 1.0, -15.0]])
  points = rng.uniform(-60, 60, [2, 68, 3])

  def project(pose):
    r = metrics.rotations_of(pose)
    camera = np.einsum("aij,alj->ali", r, points) + pose[:, None, 3:]
    pixels = np.einsum("aij,alj->ali", k, camera)
    return pixels[..., :2] / pixels[..., 2:]
  p_t, p_s = project(pose_t), project(pose_s)
  np.testing.assert_allclose(
      metrics.epipolar_error(pose_t, pose_s, k, k, p_t, p_s), 0.0, atol=1e-6)
  noisy = p_s + rng.normal(0, 2.0, p_s.shape)
  wrong = pose_s + np.array([0.0, 0.1, 0.0, 20.0, 0.0, 0.0])
  for source_pose, source_points in ((pose_s, noisy), (wrong, p_s)):
    got = metrics.epipolar_error(pose_t, source_pose, k, k, p_t,
                                 source_points)
    np.testing.assert_allclose(
        got, _numpy_epipolar(pose_t, source_pose, k, k, p_t, source_points),
        rtol=1e-6)
    assert np.all(got > 0.1)


def test_depth_error_on_shared_pixels_only():
  truth = np.zeros([2, 4, 4])
  predicted = np.zeros([2, 4, 4])
  truth[0, :2] = 500.0          # rows 0-1 covered
  predicted[0, 1:3] = 503.0     # rows 1-2 covered: only row 1 is shared
  predicted[0, 1, 0] = 490.0    # one shared pixel 10 mm off, three 3 mm off
  truth[1, 0, 0] = 500.0
  predicted[1, 3, 3] = 500.0    # nothing shared
  errors = metrics.depth_error(predicted, truth[..., None])
  assert errors[0] == pytest.approx((10.0 + 3 * 3.0) / 4)
  assert np.isnan(errors[1])
  assert metrics.finite_mean(errors) == pytest.approx(errors[0])
  assert np.isnan(metrics.finite_mean([np.nan]))
  with pytest.raises(ValueError, match="same size"):
    metrics.depth_error(np.zeros([1, 4, 4]), np.zeros([1, 5, 5]))
