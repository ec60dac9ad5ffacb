"""The MGCNet loss combinator: gating, identical views, scaling, graph mode."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_with_two_logical_cpus
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.losses import mgc_loss
from mgc_tf.render import renderer

SIZE = 64


@pytest.fixture(scope="module")
def decoder(tiny_face_model):
  return face_decoder.FaceDecoder(tiny_face_model)


def views_of_one_face(decoder, yaws_degrees, batch=1, seed=0):
  """Coefficients [B, N, K] of one face per sample seen at several yaws."""
  layout = decoder.layout
  rng = np.random.default_rng(seed)
  coeffs = np.zeros([batch, len(yaws_degrees), layout.size], np.float32)
  coeffs[..., layout.slices()["identity"]] = rng.normal(
      0, 0.5, [batch, 1, layout.id_rank])
  coeffs[..., layout.slices()["albedo"]] = rng.normal(
      0, 0.5, [batch, 1, layout.albedo_rank])
  for n, yaw in enumerate(yaws_degrees):
    coeffs[:, n, layout.slices()["pose"].start + 1] = np.deg2rad(yaw)
  return coeffs


def rendered_views(decoder, coeffs):
  """Renders [B, N, K] coefficients as the 'input' images and landmarks."""
  b, n, k = coeffs.shape
  textured = np.random.default_rng(1).uniform(0.2, 0.8, [b * n, SIZE, SIZE, 3])
  face, out = renderer.render_face(decoder, tf.reshape(coeffs, [b * n, k]),
                                   background=tf.constant(textured, tf.float32))
  images = tf.reshape(out.image, [b, n, SIZE, SIZE, 3])
  landmarks = tf.reshape(face.landmarks_2d, [b, n, 68, 2])
  return images, landmarks


def test_identical_views_give_zero_multiview_terms(decoder):
  coeffs = views_of_one_face(decoder, [10, 10, 10])
  images, landmarks = rendered_views(decoder, coeffs)
  loss = mgc_loss.MGCLoss(decoder)
  out = loss(coeffs, images, landmarks, flags=tf.constant([2]))
  assert float(out.terms["pixel"]) == pytest.approx(0.0, abs=1e-5)
  assert float(out.terms["depth"]) == pytest.approx(0.0, abs=1e-3)
  assert float(out.terms["epipolar"]) == pytest.approx(0.0, abs=1e-6)
  assert float(out.terms["render"]) == pytest.approx(0.0, abs=1e-5)
  assert float(out.terms["landmark"]) == pytest.approx(0.0, abs=1e-6)
  assert float(tf.reduce_sum(out.covisible)) > 100


def test_true_poses_beat_perturbed_poses(decoder):
  coeffs = views_of_one_face(decoder, [-15, 0, 15])
  images, landmarks = rendered_views(decoder, coeffs)
  loss = mgc_loss.MGCLoss(decoder)
  true = loss(coeffs, images, landmarks, flags=tf.constant([2]))
  perturbed = coeffs.copy()
  perturbed[:, 0, decoder.layout.slices()["pose"].start + 1] += np.deg2rad(4)
  perturbed[:, 2, decoder.layout.slices()["pose"].start + 3] += 8.0  # tx mm
  worse = loss(perturbed, images, landmarks, flags=tf.constant([2]))
  assert float(true.terms["epipolar"]) < 1e-3
  assert float(worse.terms["epipolar"]) > 100 * float(true.terms["epipolar"])
  assert float(worse.terms["pixel"]) > 1.5 * float(true.terms["pixel"])


def test_flags_gate_multiview_terms_per_sample(decoder):
  coeffs = views_of_one_face(decoder, [-15, 0, 15], batch=2)
  coeffs[:, 0, decoder.layout.slices()["pose"].start + 3] += 6.0
  images, landmarks = rendered_views(decoder, coeffs)
  loss = mgc_loss.MGCLoss(decoder)
  both = loss(coeffs, images, landmarks, flags=tf.constant([0, 2]))
  only_second = loss(coeffs[1:], images[1:], landmarks[1:],
                     flags=tf.constant([2]))
  # Batch of 2: the flag-0 sample adds nothing to the multi-view terms, the
  # flag-2 sample adds its own (the mean over 2 halves them).
  for key in ("pixel", "depth", "epipolar"):
    assert float(only_second.terms[key]) > 0
    assert float(both.terms[key]) == pytest.approx(
        0.5 * float(only_second.terms[key]), rel=1e-4)
  one = loss(coeffs, images, landmarks, flags=tf.constant([1, 1]))
  assert float(one.terms["epipolar"]) == 0.0
  assert float(one.terms["pixel"]) > 0


def test_total_is_the_weighted_sum_scaled_by_the_global_batch(decoder):
  coeffs = views_of_one_face(decoder, [-10, 0, 10], batch=2)
  coeffs[:, 1, decoder.layout.slices()["pose"].start + 4] += 3.0
  images, landmarks = rendered_views(decoder, coeffs)
  weights = mgc_loss.MGCLossWeights(ssim=0.5)
  local = mgc_loss.MGCLoss(decoder, weights)(coeffs, images, landmarks,
                                              tf.constant([2, 2]))
  w = weights
  expected = (w.render * local.terms["render"] +
              w.landmark * local.terms["landmark"] +
              w.identity * local.terms["identity"] +
              w.regularization * local.terms["regularization"] +
              w.pixel * local.terms["pixel"] + w.depth * local.terms["depth"] +
              w.epipolar * local.terms["epipolar"] +
              w.ssim * local.terms["ssim"])
  assert float(local.total) == pytest.approx(float(expected), rel=1e-5)
  assert float(local.terms["ssim"]) > 0
  scaled = mgc_loss.MGCLoss(decoder, weights, global_batch_size=8)(
      coeffs, images, landmarks, tf.constant([2, 2]))
  assert float(scaled.total) == pytest.approx(float(local.total) / 4, rel=1e-5)


def test_graph_mode_batch_one_and_finite_gradients_on_empty_maps(decoder):
  coeffs = views_of_one_face(decoder, [0, 0, 0])
  images, landmarks = rendered_views(decoder, coeffs)
  # Sources pushed behind their cameras: nothing is covisible.
  broken = coeffs.copy()
  broken[:, [0, 2], decoder.layout.slices()["pose"].start + 5] -= 5000.0
  variable = tf.Variable(broken)
  loss = mgc_loss.MGCLoss(decoder)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      out = loss(variable, images, landmarks, tf.constant([2]))
    return out, tape.gradient(out.total, variable)

  out, grad = step()
  assert float(tf.reduce_sum(out.covisible)) == 0.0
  assert float(out.terms["pixel"]) == 0.0 and float(out.terms["depth"]) == 0.0
  assert np.all(np.isfinite(grad.numpy()))
  assert np.isfinite(float(out.total))


def test_without_covisible_map_uses_more_pixels(decoder):
  coeffs = views_of_one_face(decoder, [-75, 0, 75])
  images, landmarks = rendered_views(decoder, coeffs)
  with_map = mgc_loss.MGCLoss(decoder)(coeffs, images, landmarks,
                                       tf.constant([1]))
  without = mgc_loss.MGCLoss(decoder, use_covisible_map=False)(
      coeffs, images, landmarks, tf.constant([1]))
  assert float(tf.reduce_sum(without.covisible)) > float(
      tf.reduce_sum(with_map.covisible))
  with pytest.raises(ValueError, match="depth_reference"):
    mgc_loss.MGCLoss(decoder, depth_reference="bogus")


MIRRORED_SCRIPT = """
import numpy as np
from conftest import make_tiny_face_model
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.losses import mgc_loss
from mgc_tf.render import renderer

decoder = face_decoder.FaceDecoder(make_tiny_face_model())
k = decoder.layout.size
coeffs = np.zeros([2, 3, k], np.float32)
coeffs[:, :, decoder.layout.slices()["pose"].start + 1] = np.deg2rad(
    [[-15, 0, 15], [-10, 0, 20]])
face, out = renderer.render_face(decoder, coeffs.reshape([6, k]),
                                 background=tf.fill([6, 64, 64, 3], 0.4))
images = tf.reshape(out.image, [2, 3, 64, 64, 3])
landmarks = tf.reshape(face.landmarks_2d, [2, 3, 68, 2]) + 1.5
predicted = coeffs + 0.02
flags = np.array([2, 1], np.int32)

single = mgc_loss.MGCLoss(decoder)(predicted, images, landmarks, flags).total

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
loss = mgc_loss.MGCLoss(decoder, global_batch_size=2)
dataset = tf.data.Dataset.from_tensor_slices(
    (predicted, images, landmarks, flags)).batch(2)
batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

@tf.function
def step(inputs):
  def replica_fn(c, i, l, f):
    return loss(c, i, l, f).total
  per_replica = strategy.run(replica_fn, args=inputs)
  return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

distributed = step(batch)
np.testing.assert_allclose(float(distributed), float(single), rtol=1e-5)
print("MIRRORED_OK", float(distributed), float(single))
"""


@pytest.mark.slow
def test_replica_sums_equal_the_single_device_mean():
  run_with_two_logical_cpus(MIRRORED_SCRIPT, "MIRRORED_OK")


def test_pixel_terms_are_in_reference_crop_pixels(decoder):
  """The same scene at two crop sizes gives the same landmark and epipolar
  terms: both are measured in pixels of the decoder's reference crop."""
  coeffs = views_of_one_face(decoder, [-15, 0, 15])
  perturbed = coeffs.copy()
  perturbed[:, 0, decoder.layout.slices()["pose"].start + 1] += np.deg2rad(4)
  loss = mgc_loss.MGCLoss(decoder)
  reference = decoder.image_size
  terms = {}
  for size in (reference // 4, reference // 2):
    b, n, k = coeffs.shape
    face = decoder.decode(tf.reshape(coeffs, [b * n, k]), image_size=size)
    # Ground truth = true projections shifted by (3, 4) reference pixels.
    truth = (tf.reshape(face.landmarks_2d, [b, n, 68, 2])
             + tf.constant([3.0, 4.0]) * size / reference)
    images = tf.fill([b, n, size, size, 3], 0.5)
    terms[size] = {
        "landmark": float(loss(coeffs, images, truth,
                               flags=tf.constant([2])).terms["landmark"]),
        "epipolar": float(loss(perturbed, images, truth,
                               flags=tf.constant([2])).terms["epipolar"])}
  small, large = terms[reference // 4], terms[reference // 2]
  assert large["epipolar"] > 0.05
  assert small["epipolar"] == pytest.approx(large["epipolar"], rel=1e-3)
  # Every landmark is 5 reference pixels off: (1/L) sum_k c_k 25.
  expected = 25.0 * float(np.mean(loss.landmark_weights))
  assert small["landmark"] == pytest.approx(expected, rel=1e-3)
  assert large["landmark"] == pytest.approx(expected, rel=1e-3)
