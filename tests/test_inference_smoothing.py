"""Tests for temporal smoothing (inference.smoothing, video.smooth_track).

References are written independently of the implementation: the EMA as its
closed-form weighted sum and as scipy's IIR filter, the centred average as
a loop of nanmeans.
"""

import numpy as np
import pytest
from scipy import signal

from mgc_tf.facemodel.coefficients import CoefficientLayout
from mgc_tf.inference import smoothing
from mgc_tf.inference import video

# Frames 3, 4 and 8 have no face.
VALID = np.array([1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1], bool)


def values_with_gaps(seed=0, dims=3):
  rng = np.random.default_rng(seed)
  values = rng.normal(size=[len(VALID), dims])
  values[~VALID] = np.nan
  return values


def ema_closed_form(values, valid, a):
  """s_n = a^(t_n - t_0) x_0
         + sum_k (1 - a^(t_k - t_(k-1))) a^(t_n - t_k) x_k."""
  times = np.flatnonzero(valid)
  out = np.full(values.shape, np.nan)
  for n, t_n in enumerate(times):
    total = a ** (t_n - times[0]) * values[times[0]]
    for k in range(1, n + 1):
      total = total + ((1 - a ** (times[k] - times[k - 1])) *
                       a ** (t_n - times[k]) * values[times[k]])
    out[t_n] = total
  return out


def centred_reference(values, valid, window):
  half = window // 2
  masked = np.where(valid[:, None], values, np.nan)
  out = np.full(values.shape, np.nan)
  for t in np.flatnonzero(valid):
    out[t] = np.nanmean(masked[max(0, t - half):t + half + 1], axis=0)
  return out


@pytest.mark.parametrize("strength", [0.0, 0.3, 0.8])
def test_ema_matches_closed_form_with_gaps(strength):
  values = values_with_gaps()
  got = smoothing.ema(values, VALID, strength)
  np.testing.assert_allclose(got[VALID],
                             ema_closed_form(values, VALID, strength)[VALID],
                             rtol=1e-12, atol=1e-12)
  assert np.all(np.isnan(got[~VALID]))


def test_ema_without_gaps_is_an_iir_filter():
  rng = np.random.default_rng(1)
  values = rng.normal(size=[40, 2])
  a = 0.7
  # y_t = a y_(t-1) + (1 - a) x_t, started at y_0 = x_0.
  reference, _ = signal.lfilter([1 - a], [1, -a], values, axis=0,
                                zi=a * values[:1])
  np.testing.assert_allclose(
      smoothing.ema(values, np.ones(40, bool), a), reference, atol=1e-12)


def test_ema_forgets_across_a_gap_as_over_the_same_frames():
  # A step from 0 to 1: after a gap of 3 frames the state decays as if 3
  # frames had passed: s = 1 - a^3.
  values = np.array([[0.0], [np.nan], [np.nan], [1.0]])
  valid = np.array([True, False, False, True])
  np.testing.assert_allclose(smoothing.ema(values, valid, 0.5)[3],
                             [1 - 0.5 ** 3])


@pytest.mark.parametrize("window", [1, 3, 5])
def test_centred_mean_matches_reference_with_gaps(window):
  values = values_with_gaps(seed=2)
  got = smoothing.centred_mean(values, VALID, window)
  np.testing.assert_allclose(got[VALID],
                             centred_reference(values, VALID, window)[VALID],
                             atol=1e-12)
  assert np.all(np.isnan(got[~VALID]))


def test_centred_mean_keeps_a_line_inside_the_video():
  t = np.arange(12, dtype=np.float64)[:, None]
  line = 2.0 * t - 3.0
  got = smoothing.centred_mean(line, np.ones(12, bool), 5)
  np.testing.assert_allclose(got[2:-2], line[2:-2], atol=1e-12)
  # At the ends the window shrinks to the frames that exist.
  np.testing.assert_allclose(got[0], line[:3].mean(0))


def test_none_only_blanks_frames_without_a_face():
  values = values_with_gaps(seed=3)
  got = smoothing.smooth(values, VALID,
                         smoothing.SmoothingConfig(method="none"))
  np.testing.assert_array_equal(got[VALID], values[VALID])
  assert np.all(np.isnan(got[~VALID]))


def test_smoothing_leaves_its_input_unchanged():
  values = values_with_gaps(seed=4)
  before = values.copy()
  for method in ("none", "ema", "window"):
    smoothing.smooth(values, VALID, smoothing.SmoothingConfig(method=method))
  np.testing.assert_array_equal(values, before)


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "gaussian"}, "Unknown smoothing method"),
    ({"strength": 1.0}, "strength"),
    ({"strength": -0.1}, "strength"),
    ({"window": 4}, "odd"),
    ({"window": 0}, "odd"),
])
def test_config_rejects_bad_values(kwargs, message):
  with pytest.raises(ValueError, match=message):
    smoothing.SmoothingConfig(**kwargs)


def test_smoothing_rejects_non_finite_valid_frames():
  values = values_with_gaps()
  values[0, 0] = np.nan
  with pytest.raises(ValueError, match="non-finite"):
    smoothing.ema(values, VALID, 0.5)


def test_smooth_track_smooths_pose_expression_and_transforms_only():
  layout = CoefficientLayout(id_rank=2, albedo_rank=3, exp_rank=4)
  rng = np.random.default_rng(5)
  coefficients = rng.normal(size=[len(VALID), layout.size])
  coefficients[~VALID] = np.nan
  transforms = rng.normal(size=[len(VALID), 2, 3])
  transforms[~VALID] = np.nan
  raw_coefficients, raw_transforms = coefficients.copy(), transforms.copy()
  config = smoothing.SmoothingConfig(method="window", window=3)

  smoothed, smoothed_transforms = video.smooth_track(
      coefficients, transforms, VALID, layout, config)

  np.testing.assert_array_equal(coefficients, raw_coefficients)
  np.testing.assert_array_equal(transforms, raw_transforms)
  slices = layout.slices()
  for group in ("pose", "expression"):
    np.testing.assert_allclose(
        smoothed[VALID][:, slices[group]],
        centred_reference(raw_coefficients[:, slices[group]], VALID,
                          3)[VALID], atol=1e-12)
  for group in ("identity", "albedo", "lighting"):
    np.testing.assert_array_equal(smoothed[VALID][:, slices[group]],
                                  raw_coefficients[VALID][:, slices[group]])
  np.testing.assert_allclose(
      smoothed_transforms[VALID].reshape(-1, 6),
      centred_reference(raw_transforms.reshape(-1, 6), VALID, 3)[VALID],
      atol=1e-12)
  assert np.all(np.isnan(smoothed[~VALID]))
