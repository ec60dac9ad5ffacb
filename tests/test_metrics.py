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


def test_angle_error_wraps():
  np.testing.assert_allclose(
      metrics.angle_error_degrees(np.array([179.0, -10.0, 350.0]),
                                  np.array([-179.0, 10.0, 10.0])),
      [2.0, 20.0, 20.0])
