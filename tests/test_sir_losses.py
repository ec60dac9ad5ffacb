"""SIR's losses (mgc_tf/losses/sir.py, confidence.py) against NumPy and closed forms."""

import math

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf.losses import confidence
from mgc_tf.losses import sir


def _cosface_numpy(x, w, y, m, s):
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  wn = w / np.linalg.norm(w, axis=0, keepdims=True)
  cos = xn @ wn
  logits = s * cos
  logits[np.arange(len(y)), y] -= s * m
  logits -= logits.max(axis=1, keepdims=True)
  log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  return -log_p[np.arange(len(y)), y]


def test_cosface_matches_numpy_with_the_stated_margin():
  rng = np.random.default_rng(0)
  x = rng.normal(size=[6, 5]).astype(np.float32)
  w = rng.normal(size=[5, 4]).astype(np.float32)
  y = np.array([0, 1, 2, 3, 0, 2])
  got = sir.cosface_loss(x, w, y).numpy()
  want = _cosface_numpy(x.astype(np.float64), w.astype(np.float64), y,
                        sir.COSFACE_MARGIN, sir.COSFACE_SCALE)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  assert sir.COSFACE_MARGIN == 0.35 and sir.COSFACE_SCALE == 64.0


def test_cosface_margin_is_what_separates_it_from_a_cosine_softmax():
  # Two classes, the sample on class 0's direction: cos = (1, 0).
  x = np.array([[1.0, 0.0]], np.float32)
  w = np.eye(2, dtype=np.float32)
  m, s = 0.25, 4.0
  got = sir.cosface_loss(x, w, [0], margin=m, scale=s).numpy()[0]
  want = -math.log(math.exp(s * (1 - m)) / (math.exp(s * (1 - m)) + 1.0))
  assert got == pytest.approx(want, rel=1e-5)
  without = sir.cosface_loss(x, w, [0], margin=0.0, scale=s).numpy()[0]
  assert got > without


def test_frontal_neutral_weight_is_eq_19():
  angles = np.array([[0, 0, 0], [0, np.pi / 2, 0], [0, 0, 0],
                     [0.3, -0.2, 0.1]], np.float32)
  expression = np.zeros([4, 3], np.float32)
  expression[2] = [1.0, 0.0, 0.0]
  expression[3] = [0.0, 0.6, 0.8]
  got = sir.frontal_neutral_weight(angles, expression, falloff=0.7).numpy()
  want = (np.prod(np.cos(angles) + 1, axis=1) / 8 *
          np.exp(-0.7 * np.linalg.norm(expression, axis=1)))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert got[0] == pytest.approx(1.0)
  assert got[1] == pytest.approx(0.5)
  # The default falloff halves the weight at |beta| = 1.
  assert sir.frontal_neutral_weight(angles[2:3], expression[2:3]).numpy()[0] \
      == pytest.approx(0.5, rel=1e-5)


def test_center_update_moves_the_centre_towards_the_frontal_sample():
  center = np.zeros([1, 2], np.float32)
  frontal = np.array([1.0, 0.0], np.float32)
  profile = np.array([0.0, 1.0], np.float32)
  features = np.stack([frontal, profile])
  weights = sir.frontal_neutral_weight(
      np.array([[0, 0, 0], [0, np.pi * 0.45, 0]], np.float32),
      np.zeros([2, 4], np.float32)).numpy()
  new = sir.center_update(center, features, [0, 0], weights,
                          rate=1.0).numpy()[0]
  # eq. 20: c - (f1 (c - x1) + f2 (c - x2)) / (1 + 2)
  np.testing.assert_allclose(new, (weights[0] * frontal +
                                   weights[1] * profile) / 3, rtol=1e-5)
  # Towards the frontal sample, in the ratio of the weights (1 : 0.58).
  assert new[0] / new[1] == pytest.approx(weights[0] / weights[1], rel=1e-5)
  assert new[0] > 1.5 * new[1] > 0
  # Equal weights would pull it to the middle direction.
  even = sir.center_update(center, features, [0, 0], [1.0, 1.0],
                           rate=1.0).numpy()[0]
  np.testing.assert_allclose(even, [1 / 3, 1 / 3], rtol=1e-6)


def test_center_update_respects_classes_mask_and_rate():
  centers = np.array([[0.0, 0.0], [5.0, 5.0], [1.0, 1.0]], np.float32)
  features = np.array([[2.0, 0.0], [4.0, 4.0], [9.0, 9.0]], np.float32)
  labels = [0, 1, 1]
  new = sir.center_update(centers, features, labels, [1.0, 1.0, 1.0],
                          mask=[1.0, 1.0, 0.0], rate=0.5).numpy()
  np.testing.assert_allclose(new[0], [0.5, 0.0])  # 0 - .5 * (0-2)/2
  np.testing.assert_allclose(new[1], [4.75, 4.75])  # 5 - .5 * (5-4)/2
  np.testing.assert_allclose(new[2], [1.0, 1.0])  # no sample: unchanged


def test_center_loss_is_half_the_squared_distance_without_centre_gradient():
  centers = tf.Variable([[1.0, 2.0], [0.0, 0.0]])
  x = tf.Variable([[2.0, 4.0]])
  with tf.GradientTape() as tape:
    loss = sir.center_loss(x, centers, [0])
  assert loss.numpy()[0] == pytest.approx(0.5 * (1 + 4))
  grad_x, grad_c = tape.gradient(loss, [x, centers])
  np.testing.assert_allclose(grad_x.numpy(), [[1.0, 2.0]])
  assert grad_c is None


def test_kl_matches_the_closed_form():
  rng = np.random.default_rng(1)
  x = rng.normal(0.3, 2.0, size=[50, 4]).astype(np.float32)
  got = sir.kl_to_standard_normal(x).numpy()
  mu, var = x.astype(np.float64).mean(0), x.astype(np.float64).var(0)
  want = 0.5 * np.sum(var + mu**2 - 1 - np.log(var))
  assert got == pytest.approx(want, rel=1e-4)
  # Scaling by sigma: x / sigma ~ N(0, 1) gives about 0.
  sigma = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
  z = rng.normal(size=[20000, 4]).astype(np.float32) * sigma
  assert sir.kl_to_standard_normal(z, stddev=sigma).numpy() < 1e-3


def test_kl_uses_only_masked_rows_and_needs_two():
  x = np.array([[0.0], [2.0], [100.0]], np.float32)
  got = sir.kl_to_standard_normal(x, mask=[1.0, 1.0, 0.0]).numpy()
  assert got == pytest.approx(0.5 * (1.0 + 1.0 - 1.0 - 0.0), rel=1e-5)
  assert sir.kl_to_standard_normal(x, mask=[1.0, 0.0, 0.0]).numpy() == 0.0


def test_identity_classes_are_stable_and_in_range():
  ids = tf.constant(["a", "b", "a", ""])
  classes = sir.identity_classes(ids, 7).numpy()
  assert classes[0] == classes[2]
  assert all(0 <= c < 7 for c in classes)
  with pytest.raises(ValueError, match="num_classes"):
    sir.identity_classes(ids, 0)


def test_confidence_l1_at_sigma_one_is_l1_plus_a_constant():
  rng = np.random.default_rng(2)
  a = rng.uniform(size=[2, 4, 4, 3]).astype(np.float32)
  b = rng.uniform(size=[2, 4, 4, 3]).astype(np.float32)
  mask = np.ones([2, 4, 4, 1], np.float32)
  mask[1, :2] = 0
  got = confidence.confidence_l1_loss(a, b, np.ones([2, 4, 4, 1]),
                                      mask).numpy()
  l1 = np.abs(a - b).mean(-1, keepdims=True)
  plain = (l1 * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3))
  np.testing.assert_allclose(got, math.sqrt(2) * plain + 0.5 * math.log(2),
                             rtol=1e-5)


def test_confidence_l1_matches_the_laplace_likelihood():
  a = np.full([1, 2, 2, 1], 0.5, np.float32)
  b = np.zeros([1, 2, 2, 1], np.float32)
  sigma = np.array([0.5, 1.0, 2.0, 4.0], np.float32).reshape([1, 2, 2, 1])
  got = confidence.confidence_l1_loss(a, b, sigma).numpy()[0]
  density = (1 / (math.sqrt(2) * sigma)) * np.exp(-math.sqrt(2) * 0.5 / sigma)
  assert got == pytest.approx(float(np.mean(-np.log(density))), rel=1e-5)


def test_confidence_perceptual_matches_the_gaussian_likelihood():
  rng = np.random.default_rng(3)
  fa = rng.normal(size=[1, 2, 2, 5]).astype(np.float32)
  fb = rng.normal(size=[1, 2, 2, 5]).astype(np.float32)
  sigma = np.full([1, 8, 8, 1], 0.7, np.float32)
  got = confidence.confidence_perceptual_loss(fa, fb, sigma).numpy()[0]
  distance = np.abs(fa - fb).mean(-1)
  nll = -np.log(np.exp(-distance**2 / (2 * 0.7**2)) /
                (math.sqrt(2 * math.pi) * 0.7))
  assert got == pytest.approx(float(nll.mean()), rel=1e-5)


def test_perceptual_encoder_is_off_without_a_network():
  encoder = confidence.PerceptualEncoder("none")
  assert not encoder.enabled and "off" in encoder.describe()
  with pytest.raises(ValueError, match="does not exist"):
    confidence.PerceptualEncoder("/no/such/encoder.keras")
  on = confidence.PerceptualEncoder(lambda images: images[:, ::2, ::2])
  assert on.enabled
  assert on(tf.zeros([1, 4, 4, 3])).shape == (1, 2, 2, 3)
