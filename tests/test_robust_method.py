"""The robust method (mgc_tf/methods/robust.py): refiners, objective, flags,
and a short run that lowers every active term."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import methods
from mgc_tf.facemodel import decoder as decoder_lib
from mgc_tf.facemodel import loaders
from mgc_tf.losses import photometric
from mgc_tf.methods import base
from mgc_tf.methods import robust
from mgc_tf.methods import self_augmentation as sa
from mgc_tf.models import registry

SIZE = 32
SMALL = dict(gcn_channels=8, gcn_order=2, gcn_blocks=4)


@pytest.fixture(scope="module")
def decoder():
  return decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))


@pytest.fixture(scope="module")
def feature_net(tmp_path_factory):
  """A small user network (by path): [B, 24, 24, 3] -> [B, 6]."""
  keras.utils.set_random_seed(1)
  inputs = keras.Input((24, 24, 3))
  x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
  x = keras.layers.GlobalAveragePooling2D()(x)
  outputs = keras.layers.Dense(6)(x)
  path = str(tmp_path_factory.mktemp("nets") / "features.keras")
  keras.Model(inputs, outputs).save(path)
  return path


def _setup(decoder, batch_size=2):
  return dict(decoder=decoder, backbone="resnet18", backbone_weights="none",
              image_size=SIZE, num_views=3, global_batch_size=batch_size)


def _batch(seed=0, b=2):
  rng = np.random.default_rng(seed)
  return {
      "images": tf.constant(rng.uniform(0, 1, [b, 3, SIZE, SIZE, 3]),
                            tf.float32),
      "landmarks": tf.constant(SIZE / 2 + rng.normal(0, 4, [b, 3, 68, 2]),
                               tf.float32),
      "skin": tf.constant(rng.uniform(0, 1, [b, 3, SIZE, SIZE, 1]),
                          tf.float32),
      "flag": tf.zeros([b], tf.int32),
  }


@pytest.fixture(scope="module")
def built(decoder, feature_net):
  tf.keras.utils.set_random_seed(0)
  method = robust.Robust(robust.RobustConfig(
      identity_model=feature_net, attribute_model=feature_net, **SMALL),
                         **_setup(decoder))
  networks = {name: registry.build(spec)
              for name, spec in method.network_specs().items()}
  return method, networks


def test_networks_and_their_specs(built, decoder):
  method, networks = built
  assert set(networks) == {base.RECONSTRUCTOR, robust.MESH_REFINER,
                           robust.FAID_REFINER}
  faid = method.network_specs()[robust.FAID_REFINER]
  # Identity then attribute features, 6 each from the user's network.
  assert faid.kwargs["feature_dim"] == 12
  assert faid.kwargs["num_vertices"] == decoder.num_vertices
  # model.json round trip: plain JSON rebuilds the same architecture.
  spec = registry.NetworkSpec.from_dict(json.loads(json.dumps(
      faid.to_dict())))
  rebuilt = registry.build(spec)
  assert [v.shape for v in rebuilt.weights] == [
      v.shape for v in networks[robust.FAID_REFINER].weights]


def test_fine_albedo_is_the_average_of_the_refiners(built):
  method, networks = built
  rng = np.random.default_rng(1)
  v = method.decoder.num_vertices
  coarse = tf.constant(rng.uniform(0.2, 0.8, [2, v, 3]), tf.float32)
  images = tf.constant(rng.uniform(0, 1, [2, SIZE, SIZE, 3]), tf.float32)
  fine = method.fine_albedo(networks, coarse, images, training=False)
  mesh = networks[robust.MESH_REFINER](coarse, method.laplacian)
  faid = networks[robust.FAID_REFINER](method.face_features(images),
                                       method.laplacian)
  np.testing.assert_allclose(
      fine.numpy(), np.clip((mesh.numpy() + faid.numpy()) / 2, 0, 1),
      atol=1e-6)


def test_objective_terms_and_face_mask(built, decoder, feature_net):
  method, networks = built
  batch = _batch()
  out = method.objective(networks, batch, base.Stage("train"),
                         training=False)
  assert set(out.terms) == {"photo", "identity", "attribute", "landmark",
                            "regularization"}
  for name, value in out.terms.items():
    assert np.isfinite(float(value)), name
  assert float(out.terms["identity"]) > 0 and float(out.terms["attribute"]) > 0
  expected = sum(float(out.terms[n]) * w for n, w in method.weights().items())
  assert float(out.total) == pytest.approx(expected, rel=1e-5)
  panels = method.summary_images(out, batch)
  assert {name: tuple(p.shape) for name, p in panels.items()} == {
      "inputs": (2, SIZE, 3 * SIZE, 3), "render_overlay": (2, SIZE, 3 * SIZE,
                                                          3)}
  np.testing.assert_allclose(panels["inputs"][0, :, SIZE:2 * SIZE].numpy(),
                             batch["images"][0, 1].numpy())
  # eq. 6 with M = rendered mask x skin: the per-view loss, by hand.
  render = out.details["render"]
  flat = tf.reshape(batch["images"], [6, SIZE, SIZE, 3])
  skin = tf.reshape(batch["skin"], [6, SIZE, SIZE, 1])
  by_hand = photometric.render_loss(flat, render.image, render.mask, skin)
  assert float(out.terms["photo"]) == pytest.approx(
      float(tf.reduce_sum(by_hand)) / 3 / 2, rel=1e-5)
  # --face_mask=rendered: the rendered mask alone, by hand.
  rendered_only = robust.Robust(dataclasses.replace(
      method.config, face_mask=robust.FaceMask.RENDERED), **_setup(decoder))
  other = rendered_only.objective(networks, batch, base.Stage("train"),
                                  training=False)
  by_hand = photometric.render_loss(flat, render.image, render.mask)
  assert float(other.terms["photo"]) == pytest.approx(
      float(tf.reduce_sum(by_hand)) / 3 / 2, rel=1e-5)


def test_flags_are_checked(decoder):
  with pytest.raises(ValueError, match="--gcn_order must be >= 1"):
    robust.RobustConfig(gcn_order=0).validate()
  with pytest.raises(ValueError, match="--attribute_weight must be >= 0"):
    robust.RobustConfig(attribute_weight=-1).validate()
  with pytest.raises(ValueError, match="--faid_refiner needs"):
    robust.Robust(robust.RobustConfig(identity_model="none",
                                      attribute_model="none", **SMALL),
                  **_setup(decoder))
  # Without the FAID refiner no feature network is needed.
  method = robust.Robust(robust.RobustConfig(
      identity_model="none", attribute_model="none", faid_refiner=False,
      **SMALL), **_setup(decoder))
  assert robust.FAID_REFINER not in method.network_specs()


def test_refined_texture_is_an_output_of_runs_exports_and_evaluation(
    built, decoder, tmp_path):
  """The refined albedo the objective renders is an extra output: from a
  run directory, from its SavedModel, and scored by the evaluation."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.evaluation.protocols import common
  from mgc_tf.inference import reconstructor as reconstructor_lib
  from mgc_tf.serving import export_lib
  method, networks = built
  outputs = method.outputs()
  assert set(outputs) == {robust.ALBEDO_OUTPUT}
  images = tf.reshape(_batch(5)["images"], [6, SIZE, SIZE, 3])[:2]
  face = decoder.decode(networks[base.RECONSTRUCTOR](images, training=False),
                        image_size=SIZE)
  expected = method.fine_albedo(networks, face.albedo, images, False).numpy()
  assert not np.allclose(expected, np.clip(face.albedo.numpy(), 0, 1))

  run = str(tmp_path / "run")
  reconstructor_lib.save_run(
      run, networks, method.network_specs(), decoder.face_model, SIZE,
      method="robust",
      outputs={name: spec.to_dict() for name, spec in outputs.items()})
  restored = reconstructor_lib.Reconstructor.from_run(run)
  assert restored.outputs == (robust.ALBEDO_OUTPUT,)
  np.testing.assert_allclose(
      restored.predict(images.numpy())[robust.ALBEDO_OUTPUT], expected,
      atol=1e-5)
  exported = export_lib.export_saved_model(run, str(tmp_path / "export"))
  served = reconstructor_lib.Reconstructor.from_saved_model(exported.path)
  np.testing.assert_allclose(
      served.predict(images.numpy())[robust.ALBEDO_OUTPUT], expected,
      atol=1e-5)

  values = common.Accumulator()
  crops = (images.numpy() * 255).astype(np.uint8)
  common.predict_render_and_score(restored, decoder, crops, values)
  refined, coarse = (values.values("render_refined_psnr_db"),
                     values.values("render_psnr_db"))
  assert refined.shape == coarse.shape == (2,)
  assert np.all(np.isfinite(refined)) and not np.allclose(refined, coarse)
  # The refined score by hand: the coarse face shaded with the refined
  # albedo, rendered over the same crops, scored on its own mask.
  # pylint: disable=g-import-not-at-top
  from mgc_tf.evaluation import render_quality
  from mgc_tf.facemodel import shading
  from mgc_tf.render import renderer
  inputs = crops.astype(np.float32) / 255.0
  face = decoder.decode(restored.predict(inputs)["coefficients"],
                        image_size=SIZE)
  render = renderer.render_mesh(
      face.vertices, shading.sh_shade(tf.constant(expected), face.normals,
                                      face.lighting),
      decoder.triangles, face.intrinsics, (SIZE, SIZE), background=inputs)
  np.testing.assert_allclose(refined, render_quality.masked_psnr(
      np.clip(render.image.numpy(), 0, 1), inputs, render.mask.numpy()),
      rtol=1e-4)

  # infer's meshes and overlays carry the refined texture.
  from mgc_tf.inference import reconstruct  # pylint: disable=g-import-not-at-top
  predicted = restored.predict(inputs)
  recon = reconstruct.reconstruct(
      decoder, predicted.pop("coefficients"), extras=predicted)
  face = decoder.decode(recon.coefficients, image_size=224)
  np.testing.assert_allclose(recon.colors, np.clip(shading.sh_shade(
      tf.constant(expected), face.normals, face.lighting).numpy(), 0, 1),
                             atol=1e-5)
  assert not np.allclose(recon.colors, np.clip(face.colors.numpy(), 0, 1),
                         atol=1e-3)


def test_predict_runs_the_reconstructor_once_for_the_refined_texture(
    built, decoder):
  """The refined-albedo output reuses the predicted coefficients
  (`registry.call_output`) rather than running the reconstructor again."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.inference import reconstructor as reconstructor_lib
  method, networks = built

  class Counted(keras.Model):
    def __init__(self, inner):
      super().__init__()
      self.inner, self.calls = inner, 0

    def call(self, images, training=False):
      self.calls += 1  # Python side: once per trace
      return self.inner(images, training=training)

  images = tf.reshape(_batch(6)["images"], [6, SIZE, SIZE, 3])[:2].numpy()
  calls = {}
  for with_outputs in (False, True):
    counted = Counted(networks[base.RECONSTRUCTOR])
    counted(images)  # built (Keras may trace call once to build)
    counted.calls = 0
    restored = reconstructor_lib.Reconstructor.from_networks(
        {**networks, base.RECONSTRUCTOR: counted}, decoder, SIZE,
        outputs=(method.outputs() and {
            name: spec.source() for name, spec in method.outputs().items()}
                 if with_outputs else None))
    predicted = restored.predict(images)
    calls[with_outputs] = counted.calls
  assert calls[True] == calls[False] >= 1, calls
  coefficients = networks[base.RECONSTRUCTOR](images, training=False)
  face = decoder.decode(coefficients, image_size=SIZE)
  np.testing.assert_allclose(
      predicted[robust.ALBEDO_OUTPUT],
      method.fine_albedo(networks, face.albedo, tf.constant(images),
                         False).numpy(), atol=1e-5)


# ------------------------------------------------------------------- slow

TINY = "synthetic_multiview/tiny"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  # pylint: disable=g-import-not-at-top
  from mgc_tf.data import prepare
  directory = str(tmp_path_factory.mktemp("tfds"))
  prepare.ensure_synthetic(TINY, directory)
  return directory


@pytest.mark.slow
def test_twenty_steps_lower_the_total_and_each_term_alone(data_dir, tmp_path):
  """20 steps through the trainer on one fixed batch, with dlib's features
  and the self-augmentation add-on, lower the weighted total, the photo and
  the landmark term; then, from the trained state, every active term has a
  finite, nonzero gradient on the networks, and for landmark (the one
  term that does not go through the rasteriser) that gradient is the slope
  (a step of 1e-5 along its own normalised gradient lowers it by 0.5 to 2
  times eps x |grad|).

  What this test asked before, and why it no longer does: every term over
  the joint steps, then each term falling over two steps of 1e-3 alone.
  Measured: over the joint steps identity rose (0.074 -> 0.093) and
  rob_photo rose (0.10 -> 0.36) while photo (0.32 -> 0.18) and landmark
  (1396 -> 509) fell; alone, identity, attribute and rob_photo rose at eps
  1e-3, and a fresh-clone CI run raised attribute. The terms through
  dlib's features and the self-augmentation re-renders are not smooth in
  the weights at 32 px: the rasteriser jumps where a pixel changes
  triangle and dlib's features magnify one pixel of a 32 px render.
  Measured from the trained state, rob_perceptual changed by -2.9 times
  its first order at eps 1e-5 and 3e-6, attribute by 0.2 and -2.9 times,
  and photo by 0.99 in one run and -0.68 in another (runs of this test
  reach slightly different trained states: `deterministic` fixes the input
  pipeline, not the order of multi-threaded float reductions). The dlib
  terms' own gradients are checked by finite differences on images in
  tests/test_identity_dlib.py; docs/robust.md, Limits. The regularisation
  term is left out: its minimum is the mean face, which fitting the batch
  moves away from."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import config as config_lib
  from mgc_tf.training import trainer as trainer_lib
  config = config_lib.TrainConfig(
      model_dir=str(tmp_path / "run"), method="robust", dataset=TINY,
      data_dir=data_dir, eval_dataset="", build_data_if_missing=False,
      backbone="resnet18", image_size=SIZE, batch_size=2, num_views=3,
      learning_rate=1e-3, max_steps=20, augment=False, shuffle_buffer=1,
      log_every=1, summary_every=1, image_summary_every=0,
      checkpoint_every=20, deterministic=True, seed=3,
      method_config=robust.RobustConfig(**SMALL),
      addon_configs={"self_augmentation": sa.SelfAugmentationConfig(
          self_augmentation_weight=0.001,
          self_augmentation_occluders=4)}).validate()
  trainer = trainer_lib.Trainer(
      config, methods.composed("robust", config.addon_configs))
  method, networks = trainer.method, trainer.networks
  batch = next(iter(trainer.distributed_dataset(0)))
  weights = {**method.method.weights(), **method.addons[0].weights()}
  active = ["photo", "identity", "attribute", "landmark", "rob_photo",
            "rob_perceptual"]
  assert all(weights[name] > 0 for name in active)

  def objective():  # training mode, fixed augmentations
    tf.random.set_seed(11)
    return method.objective(networks, batch, base.Stage("train"),
                            training=True)

  before = objective()
  for _ in range(20):
    out = trainer._train_step_of(0)(batch)  # pylint: disable=protected-access
    assert bool(out["applied"])
  after = objective()
  assert float(after.total) < float(before.total)
  for name in ("photo", "landmark"):
    assert float(after.terms[name]) < float(before.terms[name]), name

  variables = [v for net in networks.values()
               for v in net.trainable_variables]
  trained = [v.numpy() for v in variables]
  slopes = {}
  for name in active:
    for variable, value in zip(variables, trained):
      variable.assign(value)
    with tf.GradientTape() as tape:
      start = objective().terms[name]
    grads = tape.gradient(start, variables)
    norm = float(tf.linalg.global_norm([g for g in grads if g is not None]))
    assert np.isfinite(norm) and norm > 0, name
    if name == "landmark":
      eps = 1e-5
      for variable, value, g in zip(variables, trained, grads):
        variable.assign(value if g is None else value - eps * g / norm)
      change = float(objective().terms[name]) - float(start)
      slopes[name] = change / (-eps * norm)  # 1: exactly its first order
  assert all(0.5 <= r <= 2.0 for r in slopes.values()), slopes
