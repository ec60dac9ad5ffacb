"""Self-augmentation (mgc_tf/methods/self_augmentation.py): an oracle model
scores 0, occluded pixels stay out of the photometric term, gradients flow
through the renders unless stopped, and the add-on joins any method."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import methods
from mgc_tf.facemodel import decoder as decoder_lib
from mgc_tf.facemodel import loaders
from mgc_tf.losses import attribute as attribute_lib
from mgc_tf.losses import identity as identity_lib
from mgc_tf.losses import photometric
from mgc_tf.methods import base
from mgc_tf.methods import self_augmentation as sa
from mgc_tf.models import registry
from mgc_tf.render import renderer

SIZE = 64
B = 2


@pytest.fixture(scope="module")
def decoder():
  return decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))


@pytest.fixture(scope="module")
def perceptual():
  # The default networks: dlib's identity descriptor and its mid-level
  # features (the attribute stand-in).
  return sa.PerceptualDistance(identity_lib.IdentityLoss.from_spec("dlib"),
                               attribute_lib.AttributeLoss.from_spec("dlib"))


@pytest.fixture(scope="module")
def scene(decoder):
  rng = np.random.default_rng(0)
  k = decoder.layout.size
  groups = decoder.layout.slices()
  truth = np.zeros([B, k], np.float32)
  for name in ("identity", "albedo", "expression"):
    s = groups[name]
    truth[:, s] = rng.normal(0, 0.5, [B, s.stop - s.start])
  truth[:, groups["pose"]] = rng.normal(0, 0.05, [B, 6]) * [1, 1, 1, 0, 0, 0]
  truth = tf.constant(truth)
  background = tf.constant(rng.uniform(0, 1, [B, SIZE, SIZE, 3]), tf.float32)
  _, render = renderer.render_face(decoder, truth, background=background)
  offsets = tf.constant([[0.1, 0.6, 0.2, 0, 0, 0], [-0.1, -0.5, 0.1, 0, 0, 0]],
                        tf.float32)
  mean_face = decoder.decode(tf.zeros([1, k]), image_size=SIZE)
  rgb, alpha = sa.occluder_bank(mean_face.landmarks_2d.numpy()[0], SIZE, 4)
  # Opaque occluders, so that covered pixels show none of the face.
  alpha = (alpha > 0).astype(np.float32)

  def occluded(images):
    return sa.apply_occluders(images, tf.constant(rgb), tf.constant(alpha),
                              tf.constant([0, 1]), tf.zeros([B, 2], tf.int32))

  return dict(truth=truth, images=render.image, offsets=offsets,
              occluded=occluded)


def _oracle(decoder, scene):
  """A model that returns the ground truth of whatever image it is shown:
  the coefficients of the nearest of the images it knows (the inputs, their
  renders at the offset pose, their occluded renders)."""
  truth, images = scene["truth"], scene["images"]
  layout = decoder.layout
  pose = layout.slices()["pose"]
  rotated_truth = tf.concat([truth[:, :pose.start],
                             truth[:, pose] + scene["offsets"],
                             truth[:, pose.stop:]], 1)
  _, rot = renderer.render_face(decoder, rotated_truth, image_size=(SIZE,
                                                                     SIZE))
  flat_bg = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
  rotated = rot.rendered + (1 - rot.mask) * flat_bg
  occluded, _ = scene["occluded"](images)
  known = tf.concat([images, rotated, occluded], 0)
  answers = tf.concat([truth, rotated_truth, truth], 0)

  def reconstruct(x):
    d = tf.reduce_sum(tf.square(x[:, None] - known[None]), axis=[2, 3, 4])
    nearest = tf.argmin(d, axis=1)
    # The lookup must be exact: the model is shown what we rendered.
    tf.debugging.assert_less(tf.reduce_min(d, axis=1), 1e-6)
    return tf.gather(answers, nearest)

  return reconstruct


def _terms(decoder, scene, reconstruct, perceptual=None, coefficients=None,
           stop_gradient=False):
  return sa.self_augmentation_terms(
      reconstruct, decoder, scene["images"],
      scene["truth"] if coefficients is None else coefficients,
      scene["offsets"], scene["occluded"], perceptual=perceptual,
      stop_gradient=stop_gradient)


def test_a_model_that_returns_the_truth_scores_zero(decoder, scene, perceptual):
  out = _terms(decoder, scene, _oracle(decoder, scene), perceptual)
  for name in ("photo_rot", "photo_rot_input", "photo_occ",
               "photo_occ_input", "photo"):
    np.testing.assert_allclose(out[name].numpy(), 0.0, atol=1e-5,
                               err_msg=name)
  for name in ("perceptual_rot", "perceptual_rot_input",
               "perceptual_occ_input", "perceptual"):
    np.testing.assert_allclose(out[name].numpy(), 0.0, atol=1e-4,
                               err_msg=name)
  # The random view really is another view.
  assert float(tf.reduce_mean(tf.abs(out["rotated"] - scene["images"]))) > 0.02


def test_a_wrong_model_scores_above_zero(decoder, scene, perceptual):
  albedo = decoder.layout.slices()["albedo"]
  wrong = scene["truth"].numpy().copy()
  wrong[:, albedo] += 2.0
  out = _terms(decoder, scene, lambda x: tf.constant(
      np.concatenate([wrong, wrong])), perceptual)
  for name in ("photo_rot", "photo_rot_input", "photo_occ",
               "photo_occ_input"):
    assert np.all(out[name].numpy() > 0.01), name
  assert np.all(out["perceptual"].numpy() > 1e-3)


def test_occluded_pixels_stay_out_of_the_photometric_term(decoder, scene):
  out = _terms(decoder, scene, _oracle(decoder, scene))
  covered = out["occluder_alpha"]
  _, face = renderer.render_face(decoder, scene["truth"],
                                 image_size=(SIZE, SIZE))
  # The occluders lie on the face...
  assert np.all(tf.reduce_sum(covered * face.mask, [1, 2, 3]).numpy() > 10)
  # ...so comparing the occluded image with the truth's render over the
  # whole face would not be 0, but the term, which leaves them out, is.
  re_render = face.rendered + (1 - face.mask) * out["occluded"]
  unmasked = photometric.render_loss(out["occluded"], re_render, face.mask)
  assert np.all(unmasked.numpy() > 0.01)
  np.testing.assert_allclose(out["photo_occ"].numpy(), 0.0, atol=1e-5)


@pytest.mark.parametrize("stop_gradient", [False, True])
def test_gradients_through_the_renders_unless_stopped(decoder, scene,
                                                      stop_gradient):
  albedo = decoder.layout.slices()["albedo"]
  fixed = tf.constant(np.concatenate([scene["truth"].numpy()] * 2))
  coefficients = tf.Variable(scene["truth"])
  with tf.GradientTape() as tape:
    shifted = coefficients + tf.one_hot(albedo.start, decoder.layout.size)
    out = _terms(decoder, scene, lambda x: fixed, coefficients=shifted,
                 stop_gradient=stop_gradient)
    loss = tf.reduce_sum(out["photo_rot"] + out["photo_occ"])
  grad = tape.gradient(loss, coefficients)
  albedo_grad = np.abs(grad.numpy()[:, albedo]).sum()
  if stop_gradient:
    assert albedo_grad == 0.0
  else:
    assert albedo_grad > 0.0


def test_addon_joins_mgcnet_and_checks_its_flags(decoder):
  config = sa.SelfAugmentationConfig(
      self_augmentation_weight=0.5, self_augmentation_occluders=3,
      self_augmentation_identity_model="none",
      self_augmentation_attribute_model="none")
  factory = methods.composed("mgcnet", {"self_augmentation": config})
  mgc_config = methods.get("mgcnet").config_class(identity_model="none")
  method = factory(mgc_config, decoder=decoder, backbone="resnet18",
                   backbone_weights="none", image_size=SIZE, num_views=3,
                   global_batch_size=B)
  networks = {name: registry.build(spec)
              for name, spec in method.network_specs().items()}
  rng = np.random.default_rng(3)
  batch = {"images": tf.constant(rng.uniform(0, 1, [B, 3, SIZE, SIZE, 3]),
                                 tf.float32),
           "landmarks": tf.constant(rng.uniform(20, 44, [B, 3, 68, 2]),
                                    tf.float32),
           "flag": tf.zeros([B], tf.int32),
           "skin": tf.ones([B, 3, SIZE, SIZE, 1])}
  out = method.objective(networks, batch, base.Stage("train"), training=False)
  assert float(out.terms["rob_photo"]) > 0.0
  assert float(out.terms["rob_perceptual"]) == 0.0  # no networks given
  plain = methods.get("mgcnet")(mgc_config, **method.setup.__dict__)
  alone = plain.objective(networks, batch, base.Stage("train"),
                          training=False)
  np.testing.assert_allclose(
      float(out.total), float(alone.total) + 0.5 * float(
          out.terms["rob_photo"]), rtol=1e-4)
  off = base.Stage("train", terms=("render",))
  assert float(method.objective(networks, batch, off,
                                training=False).terms["rob_photo"]) == 0.0
  with pytest.raises(ValueError, match="--self_augmentation_occluders"):
    dataclasses.replace(config, self_augmentation_occluders=0).validate()
  with pytest.raises(ValueError, match="--self_augmentation_weight"):
    dataclasses.replace(config, self_augmentation_weight=-1.0).validate()
