"""The identity loss on by default: dlib's network on chips cut from the crops."""

import numpy as np
import pytest
import tensorflow as tf
from skimage import data

from mgc_tf.faces2d import alignment
from mgc_tf.faces2d import preprocessing
from mgc_tf.losses import identity as identity_lib
from mgc_tf.models import dlib_resnet


@pytest.fixture(scope="module")
def dlib_loss():
  return identity_lib.IdentityLoss.from_spec("dlib")


@pytest.fixture(scope="module")
def astronaut_crop():
  """The astronaut aligned to our 224 template, [0, 1] float32."""
  face = preprocessing.default_landmarker().detect(data.astronaut())[0]
  aligned = alignment.align_face(data.astronaut(), face.landmarks)
  return aligned.image.astype(np.float32) / 255.0


def test_dlib_is_the_default_and_says_so(dlib_loss):
  assert dlib_loss.enabled
  assert "dlib" in dlib_loss.describe()
  assert dlib_loss.embedding.trainable_variables == []
  off = identity_lib.IdentityLoss.from_spec("none")
  assert not off.enabled and "off" in off.describe()


def test_same_face_is_near_zero_and_another_is_not(dlib_loss, astronaut_crop):
  crops = tf.constant(astronaut_crop[None])
  same = dlib_loss(crops, crops)
  assert float(same[0]) == pytest.approx(0.0, abs=1e-5)
  flipped = crops[:, :, ::-1]   # a mirrored face is still close
  noise = tf.constant(np.random.default_rng(0).uniform(
      0, 1, crops.shape).astype(np.float32))
  assert float(dlib_loss(crops, flipped)[0]) < float(
      dlib_loss(crops, noise)[0])
  assert float(dlib_loss(crops, noise)[0]) > 0.05


def test_gradients_reach_the_render_at_training_sizes(dlib_loss,
                                                      astronaut_crop):
  for size in (224, 112):
    crop = tf.image.resize(astronaut_crop[None], [size, size])
    rendered = tf.Variable(tf.clip_by_value(crop + 0.05, 0.0, 1.0))
    with tf.GradientTape() as tape:
      value = dlib_loss(crop, rendered)
    gradient = tape.gradient(value, rendered)
    assert gradient is not None
    assert np.isfinite(gradient.numpy()).all()
    assert float(tf.reduce_max(tf.abs(gradient))) > 0


def test_without_the_extra_the_term_is_off_with_one_warning(monkeypatch):

  def missing(*args, **kwargs):
    raise dlib_resnet.FaceEmbeddingDependencyError("install the extra")

  monkeypatch.setattr(dlib_resnet, "load_dlib_resnet", missing)
  loss = identity_lib.IdentityLoss.from_spec("dlib")
  assert not loss.enabled
  assert float(tf.reduce_sum(loss(tf.zeros([1, 64, 64, 3]),
                                  tf.ones([1, 64, 64, 3])))) == 0.0


@pytest.fixture(scope="module")
def astronaut_landmarks():
  face = preprocessing.default_landmarker().detect(data.astronaut())[0]
  return alignment.align_face(data.astronaut(), face.landmarks).landmarks


def test_chips_placed_by_landmarks_use_each_views_landmarks(
    astronaut_crop, astronaut_landmarks):
  by_landmarks = identity_lib.IdentityLoss.from_spec(
      "dlib", chip_placement="landmarks")
  assert "placed by landmarks" in by_landmarks.describe()
  crops = tf.constant(astronaut_crop[None])
  landmarks = tf.constant(astronaut_landmarks[None])
  shifted = tf.roll(crops, shift=6, axis=2)  # the face moved 6 px right
  fixed = identity_lib.IdentityLoss.from_spec("dlib")
  # The same image: 0 with either placement.
  assert float(by_landmarks(crops, crops, landmarks)[0]) == pytest.approx(
      0.0, abs=1e-5)
  # Both chips follow the landmarks given, so a copy moved by 6 px (with
  # the landmarks moved too) embeds as the original; the fixed chip
  # cannot follow it.
  moved = by_landmarks.embedding(shifted, landmarks=landmarks + [6.0, 0.0])
  still = by_landmarks.embedding(crops, landmarks=landmarks)
  moved_distance = float(identity_lib.cosine_distance(moved, still)[0])
  fixed_distance = float(fixed(crops, shifted)[0])
  assert moved_distance < 0.2 * fixed_distance, (moved_distance,
                                                 fixed_distance)
  with pytest.raises(ValueError, match="landmarks"):
    identity_lib.IdentityLoss.from_spec("dlib", chip_placement="eyes")


def test_fixed_images_loss_equals_the_full_one(dlib_loss, astronaut_crop,
                                               astronaut_landmarks):
  crops = tf.constant(np.stack([astronaut_crop, astronaut_crop[:, ::-1]]))
  landmarks = tf.constant(np.stack([astronaut_landmarks] * 2))
  rendered = tf.Variable(tf.clip_by_value(crops * 0.9 + 0.05, 0.0, 1.0))
  for loss in (dlib_loss, identity_lib.IdentityLoss.from_spec(
      "dlib", chip_placement="landmarks")):
    fixed = loss.for_fixed_images(crops, landmarks)
    values, gradients = [], []
    for each in (loss, fixed):
      with tf.GradientTape() as tape:
        value = each(crops, rendered, landmarks)
      values.append(value.numpy())
      gradients.append(tape.gradient(value, rendered).numpy())
    np.testing.assert_allclose(values[1], values[0], atol=1e-6)
    np.testing.assert_allclose(gradients[1], gradients[0], atol=1e-6)
    assert np.abs(gradients[0]).max() > 0
  with pytest.raises(ValueError, match="2 fixed images"):
    dlib_loss.for_fixed_images(crops)(crops[:1], rendered[:1])
  off = identity_lib.IdentityLoss.from_spec("none")
  assert off.for_fixed_images(crops) is off


def test_identity_and_attribute_slopes_match_finite_differences(
    dlib_loss, astronaut_crop):
  """The gradient of both dlib terms with respect to the rendered image is
  their slope (central differences along a random direction), at 32 px
  where the robust method's short test runs: the jumps that test sees come
  from the rasteriser, not from these terms."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.losses import attribute as attribute_lib
  attribute = attribute_lib.AttributeLoss.from_spec("dlib")
  crop = tf.image.resize(astronaut_crop[None], [32, 32])
  rng = np.random.default_rng(0)
  rendered = tf.clip_by_value(
      crop + rng.normal(0, 0.05, crop.shape).astype(np.float32), 0.05, 0.95)
  direction = rng.normal(0, 1, crop.shape).astype(np.float32)
  direction /= np.linalg.norm(direction)
  eps = 1e-2
  for loss in (dlib_loss, attribute):
    value = lambda image, loss=loss: float(tf.reduce_sum(loss(crop, image)))
    with tf.GradientTape() as tape:
      tape.watch(rendered)
      total = tf.reduce_sum(loss(crop, rendered))
    slope = float(tf.reduce_sum(tape.gradient(total, rendered) * direction))
    numeric = (value(rendered + eps * direction) -
               value(rendered - eps * direction)) / (2 * eps)
    assert abs(slope) > 1e-4
    assert slope == pytest.approx(numeric, rel=0.1), loss
