"""The `pgn` method (Liu et al.): config errors, the stage schedule, the
networks rebuilt from their specs, what each stage trains and freezes, a
short run lowering the terms a stage has on, and the exported
reconstructor giving the pose the objective solved for."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import methods
from mgc_tf.facemodel import decoder as decoder_lib
from mgc_tf.facemodel import loaders
from mgc_tf.methods import base
from mgc_tf.methods import pgn
from mgc_tf.models import registry
from mgc_tf.training import trainer as trainer_lib

SIZE = 64
SMALL = dict(pgn_uv_size=16, pgn_decoder_filters=16, pgn_flow_levels=2,
             pgn_flow_iterations=2)


@pytest.fixture(scope="module")
def decoder():
  return decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))


def _method(decoder, num_views=2, **config):
  return pgn.PGNMethod(
      pgn.PGNConfig(**{**SMALL, **config}), decoder=decoder,
      backbone="resnet18", backbone_weights="none", image_size=SIZE,
      num_views=num_views, global_batch_size=2)


def _batch(method, decoder, num_views=2, seed=0):
  rng = np.random.default_rng(seed)
  template = method.template()
  landmarks = np.tile(template[None, None, :, :2], [2, num_views, 1, 1])
  landmarks = landmarks + rng.normal(0, 1.0, landmarks.shape)
  ys, xs = np.mgrid[0:SIZE, 0:SIZE] / SIZE
  images = np.stack([0.5 + 0.3 * np.sin(6 * xs + 2 * ys),
                     0.4 + 0.2 * np.cos(5 * ys), 0.3 + 0 * xs], -1)
  images = np.tile(images[None, None], [2, num_views, 1, 1, 1])
  images = images + rng.normal(0, 0.02, images.shape)
  return {"images": tf.constant(images, tf.float32),
          "landmarks": tf.constant(landmarks, tf.float32),
          "flag": tf.constant([1, 1]),
          "coefficients": tf.zeros([2, num_views, decoder.layout.size]),
          "has_coefficients": tf.constant([True, False])}


def test_config_errors_and_stages(decoder):
  with pytest.raises(ValueError, match="pgn_flow_weight must be >= 0"):
    pgn.PGNConfig(pgn_flow_weight=-1.0).validate()
  with pytest.raises(ValueError, match="pgn_census_window must be odd"):
    pgn.PGNConfig(pgn_census_window=6).validate()
  with pytest.raises(ValueError, match="pgn_uv_size must be a power of two"):
    pgn.PGNConfig(pgn_uv_size=20).validate()
  paper = pgn.PGNConfig()
  assert (paper.pgn_landmark_weight, paper.pgn_photometric_weight,
          paper.pgn_flow_weight, paper.pgn_semantic_weight,
          paper.pgn_regularization_weight) == (1.0, 0.2, 0.2, 10.0, 1.0)
  assert methods.get("pgn") is pgn.PGNMethod
  method = _method(decoder, stage_pgn_steps=3, stage_single_steps=4)
  stages = method.stages()
  frozen = ("reconstructor/resnet18_backbone",)
  assert [(s.name, s.steps, s.networks, s.frozen) for s in stages] == [
      ("pgn", 3, ("reconstructor", "pgn"), ()),
      ("single", 4, ("reconstructor",), frozen),
      ("multi", 0, ("reconstructor",), frozen)]
  assert stages[0].terms == pgn.PGN_TERMS
  assert set(stages[1].terms) == set(pgn.SINGLE_TERMS)
  assert set(stages[2].terms) == set(pgn.SINGLE_TERMS + pgn.MULTI_VIEW_TERMS)
  only_multi = _method(decoder, stage_pgn_steps=0, stage_single_steps=0)
  assert [s.name for s in only_multi.stages()] == ["multi"]


def test_networks_rebuild_and_pgn_starts_at_the_template(decoder):
  method = _method(decoder)
  specs = method.network_specs()
  assert set(specs) == {"reconstructor", "pgn"}
  rebuilt = registry.build(registry.NetworkSpec.from_dict(
      specs["pgn"].to_dict()))
  out = rebuilt(tf.zeros([1, 512])).numpy()[0]
  np.testing.assert_allclose(out, method.template(), atol=0.05)
  # The template's x, y are the mean face's projected landmarks.
  face = decoder.decode(tf.zeros([1, decoder.layout.size]), image_size=SIZE)
  np.testing.assert_allclose(method.template()[:, :2],
                             face.landmarks_2d.numpy()[0], atol=1e-4)


def _grads(method, networks, batch, stage):
  with tf.GradientTape() as tape:
    out = method.objective(networks, batch, stage)
  names = {}
  for net_name, net in networks.items():
    for v in net.trainable_variables:
      names[id(v)] = net_name
  encoder = networks["reconstructor"].get_layer("resnet18_backbone")
  for v in encoder.trainable_variables:
    names[id(v)] = "encoder"
  variables = [v for net in networks.values() for v in net.trainable_variables]
  grads = tape.gradient(out.total, variables)
  moved = {}
  for v, g in zip(variables, grads):
    key = names[id(v)]
    key = "head" if key == "reconstructor" else key
    moved[key] = moved.get(key, False) or (
        g is not None and float(tf.reduce_sum(tf.abs(g))) > 0)
  return out, moved


def _three_stages(decoder):
  """(method with stages pgn/single/multi, its networks, a batch)."""
  method = _method(decoder, stage_pgn_steps=1, stage_single_steps=1)
  # Seeded: the single stage's total falls by 3 to 10 over its 6 steps
  # (seeds 0-5), a margin the initialisation moves.
  keras.utils.set_random_seed(0)
  networks = {n: registry.build(s) for n, s in method.network_specs().items()}
  return method, networks, _batch(method, decoder)


def test_each_stage_reaches_its_networks_and_terms(decoder):
  method, networks, batch = _three_stages(decoder)
  pgn_stage, single, multi = method.stages()
  out, moved = _grads(method, networks, batch, pgn_stage)
  assert set(out.terms) == {"pgn_landmarks"}
  assert moved == {"encoder": True, "pgn": True, "head": False}
  out, moved = _grads(method, networks, batch, single)
  assert set(out.terms) == set(pgn.SINGLE_TERMS)
  # The encoder and the PGN get no gradient from the landmark terms.
  assert moved == {"encoder": False, "pgn": False, "head": True}
  out, moved = _grads(method, networks, batch, multi)
  assert set(out.terms) == set(pgn.SINGLE_TERMS + pgn.MULTI_VIEW_TERMS)
  assert all(np.isfinite(float(v)) for v in out.terms.values())
  assert float(out.terms["photometric"]) > 0 and float(out.terms["flow"]) > 0
  assert out.coefficients.shape == (2, 2, decoder.layout.size)
  # One view per sample: the multi-view terms are 0, the rest still runs.
  one = _method(decoder, num_views=1, stage_pgn_steps=0, stage_single_steps=0)
  out = one.objective(networks, _batch(one, decoder, num_views=1),
                      one.stages()[0])
  assert float(out.terms["photometric"]) == 0.0
  assert np.isfinite(float(out.terms["landmarks"]))


def test_multi_stage_fuses_identity_over_views(decoder):
  method, networks, batch = _three_stages(decoder)
  # Make the head's identity output depend on the features.
  head = networks["reconstructor"].get_layer("head")
  kernel = head.kernel.numpy()
  kernel[:] = np.random.default_rng(0).normal(0, 0.05, kernel.shape)
  head.kernel.assign(kernel)
  batch["images"] = tf.concat([batch["images"][:, :1],
                               1.0 - batch["images"][:, 1:]], axis=1)
  _, single, multi = method.stages()
  identity = decoder.layout.slices()["identity"]
  fused = method.objective(networks, batch, multi).coefficients
  alone = method.objective(networks, batch, single).coefficients
  np.testing.assert_allclose(fused[:, 0, identity], fused[:, 1, identity],
                             atol=1e-6)
  assert not np.allclose(alone[:, 0, identity], alone[:, 1, identity])
  np.testing.assert_allclose(
      fused[:, 0, identity], 0.5 * (alone[:, 0, identity] +
                                    alone[:, 1, identity]), atol=1e-4)


def _steps(method, networks, batch, stage, steps, learning_rate):
  """Trains the stage's variables (less the frozen layers) with Adam."""
  frozen = {id(v) for path in stage.frozen
            for v in trainer_lib._nested_layer(networks, path).trainable_variables}  # pylint: disable=protected-access
  variables = [v for name in stage.networks
               for v in networks[name].trainable_variables
               if id(v) not in frozen]
  optimizer = tf.keras.optimizers.Adam(learning_rate)
  first = None
  for _ in range(steps):
    with tf.GradientTape() as tape:
      out = method.objective(networks, batch, stage)
    grads = tape.gradient(out.total, variables)
    optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables)
                               if g is not None])
    first = first or {k: float(v) for k, v in out.terms.items()}
  last = {k: float(v) for k, v in
          method.objective(networks, batch, stage).terms.items()}
  return first, last


def test_short_run_lowers_the_active_terms_and_freezes_the_rest(decoder):
  method, networks, batch = _three_stages(decoder)
  pgn_stage, single, _ = method.stages()
  first, last = _steps(method, networks, batch, pgn_stage, 6, 1e-3)
  assert last["pgn_landmarks"] < first["pgn_landmarks"], (first, last)
  encoder = networks["reconstructor"].get_layer("resnet18_backbone")
  before = {"encoder": [v.numpy() for v in encoder.variables],
            "pgn": [v.numpy() for v in networks["pgn"].variables]}
  first, last = _steps(method, networks, batch, single, 6, 1e-3)
  # Eq. 8 (by far the largest term at the start) and the weighted total.
  weights = method.config.weights()
  total = lambda terms: sum(weights[k] * v for k, v in terms.items())
  assert last["landmarks"] < first["landmarks"], (first, last)
  assert total(last) < total(first), (first, last)
  after = {"encoder": [v.numpy() for v in encoder.variables],
           "pgn": [v.numpy() for v in networks["pgn"].variables]}
  for name in before:
    for a, b in zip(before[name], after[name]):
      np.testing.assert_array_equal(a, b)


def test_similarity_fit_charges_what_the_affine_fit_absorbs(decoder):
  """Eq. 8 with the paper's affine T is blind to an affine deformation of
  the face (a face squeezed to a fifth of its width fits exactly); the
  similarity fit (our default) charges it, and both are ~0 on the face's
  own landmarks."""
  from mgc_tf.models import pgn as pgn_models  # pylint: disable=g-import-not-at-top
  method = _method(decoder)
  groups = decoder.layout.split(tf.zeros([1, decoder.layout.size]))
  template = tf.constant(method.template()[None], tf.float32)
  squeezed = template * tf.constant([0.2, 1.0, 1.0]) + tf.constant(
      [0.8 * SIZE / 2, 0.0, 0.0])

  def residual(target, fit):
    solve = pgn_models.solve_pose(groups, target, decoder, method.focal,
                                  SIZE / 2.0, fit=fit)
    return float(tf.reduce_mean(tf.abs(solve.fitted - target)))

  for fit in pgn_models.LANDMARK_FITS:
    assert residual(template, fit) < 0.3, fit  # perspective, not affine
  assert residual(squeezed, "affine") < 0.3
  assert residual(squeezed, "similarity") > 1.0
  with pytest.raises(ValueError, match="pgn_landmark_fit must be one of"):
    pgn.PGNConfig(pgn_landmark_fit="rigid").validate()


def test_inference_solves_the_pose_as_training_does(decoder, tmp_path):
  """From a run directory and from its SavedModel, the coefficients are
  those the objective decodes (the pose solved from the PGN's landmarks),
  not the head's own pose slot."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.inference import reconstructor as reconstructor_lib
  from mgc_tf.serving import export_lib
  method, networks, batch = _three_stages(decoder)
  rng = np.random.default_rng(0)
  head = networks["reconstructor"].get_layer("head")
  head.kernel.assign(rng.normal(0, 0.02, head.kernel.shape))
  pgn_map = networks["pgn"].get_layer("pgn_map")
  pgn_map.kernel.assign(rng.normal(0, 0.02, pgn_map.kernel.shape))
  single = method.stages()[1]
  k = decoder.layout.size
  solved = method.objective(networks, batch, single, training=False
                            ).coefficients.numpy().reshape([-1, k])
  images = tf.reshape(batch["images"], [-1, SIZE, SIZE, 3]).numpy()
  head_pose = networks["reconstructor"](images, training=False).numpy()[
      :, decoder.layout.slices()["pose"]]
  pose = decoder.layout.slices()["pose"]
  assert np.abs(head_pose - solved[:, pose]).max() > 0.05  # can differ

  run = str(tmp_path / "run")
  reconstructor_lib.save_run(run, networks, method.network_specs(),
                             decoder.face_model, SIZE, method="pgn",
                             inference=method.inference_spec())
  restored = reconstructor_lib.Reconstructor.from_run(run)
  np.testing.assert_allclose(restored.coefficients(images), solved,
                             rtol=1e-4, atol=2e-4)
  result = export_lib.export_saved_model(run, str(tmp_path / "export"))
  served = reconstructor_lib.Reconstructor.from_saved_model(result.path)
  np.testing.assert_allclose(served.coefficients(images), solved,
                             rtol=1e-4, atol=2e-4)


def test_trainer_rejects_unknown_frozen_layers(decoder):
  networks = {n: registry.build(s) for n, s in
              _method(decoder).network_specs().items()}
  with pytest.raises(ValueError, match="has no layer 'nope'"):
    trainer_lib._check_stages(  # pylint: disable=protected-access
        (base.Stage("x", frozen=("reconstructor/nope",)),), networks, 10)
  with pytest.raises(ValueError, match="must be 'network/layer'"):
    trainer_lib._check_stages(  # pylint: disable=protected-access
        (base.Stage("x", frozen=("ghost/layer",)),), networks, 10)


@pytest.mark.slow
def test_trainer_stage_schedule_freezes_what_it_says(tmp_path, capsys):
  """Through the trainer and its checkpoints: 'pgn' moves the encoder and
  the PGN but not the head; 'single' and 'multi' move the head only (the
  encoder's weights and batch-norm statistics and the PGN stay)."""
  # pylint: disable=g-import-not-at-top
  import test_depthnet_method as depthnet_tests
  from mgc_tf.data import prepare
  from mgc_tf.training import config as config_lib
  data_dir = str(tmp_path / "tfds")
  prepare.ensure_synthetic(depthnet_tests.TINY, data_dir)
  model_dir = str(tmp_path / "run")
  config = config_lib.TrainConfig(
      model_dir=model_dir, method="pgn", dataset=depthnet_tests.TINY,
      data_dir=data_dir, eval_dataset="", build_data_if_missing=False,
      backbone="resnet18", image_size=SIZE, batch_size=2, num_views=3,
      learning_rate=1e-3, max_steps=6, augment=False, shuffle_buffer=1,
      log_every=1, summary_every=1, image_summary_every=0,
      checkpoint_every=1, keep_checkpoints=10,
      method_config=pgn.PGNConfig(**SMALL, stage_pgn_steps=2,
                                  stage_single_steps=2)).validate()
  trainer = trainer_lib.Trainer(config, pgn.PGNMethod)
  last = trainer.train()
  out = capsys.readouterr().out
  assert "Stage 1/3 'pgn': steps 0 -> 2" in out
  assert "Stage 3/3 'multi': steps 4 -> 6" in out
  assert all(np.isfinite(last[f"loss/{t}"]) for t in pgn.MULTI_VIEW_TERMS)
  specs = trainer.network_specs
  at = {step: depthnet_tests._weights_at(model_dir, step, specs)  # pylint: disable=protected-access
        for step in range(1, 7)}
  networks = {n: registry.build(s) for n, s in specs.items()}
  encoder = networks["reconstructor"].get_layer("resnet18_backbone")
  encoder_ids = {id(v) for v in encoder.variables}
  in_encoder = [id(v) in encoder_ids
                for v in networks["reconstructor"].variables]

  def part(step, which):
    values = at[step]["reconstructor"]
    return [v for v, e in zip(values, in_encoder) if e == (which == "encoder")]

  changed = depthnet_tests._changed  # pylint: disable=protected-access
  assert changed(part(1, "encoder"), part(2, "encoder"))
  assert changed(at[1]["pgn"], at[2]["pgn"])
  assert not changed(part(1, "head"), part(2, "head"))
  for a, b in ((2, 4), (4, 6)):
    assert not changed(part(a, "encoder"), part(b, "encoder"))
    assert not changed(at[a]["pgn"], at[b]["pgn"])
    assert changed(part(a, "head"), part(b, "head"))


def test_view_pairs():
  assert pgn.view_pairs(1, "next") == [] == pgn.view_pairs(1, "all")
  assert pgn.view_pairs(2, "next") == [(0, 1), (1, 0)] == pgn.view_pairs(
      2, "all")
  assert pgn.view_pairs(3, "next") == [(0, 1), (1, 2), (2, 0)]
  assert sorted(pgn.view_pairs(3, "all")) == [
      (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
  assert len(pgn.view_pairs(5, "all")) == 20
  with pytest.raises(ValueError, match="pgn_view_pairs must be one of"):
    pgn.PGNConfig(pgn_view_pairs="ring").validate()


def test_all_pairs_average_the_next_pairs_of_both_view_orders(decoder):
  """For N = 3 the 6 ordered pairs are the 3 'next' pairs of the views in
  order and the 3 of the views reversed, so each multi-view term over all
  pairs is the mean of the two 'next' terms (fusion pools over views, so
  the order does not change the coefficients)."""
  config = dict(stage_pgn_steps=0, stage_single_steps=0)
  ring = _method(decoder, num_views=3, **config)
  every = _method(decoder, num_views=3, pgn_view_pairs="all", **config)
  keras.utils.set_random_seed(0)
  networks = {n: registry.build(s) for n, s in ring.network_specs().items()}
  batch = _batch(ring, decoder, num_views=3)
  # Three different views, so that the pairs' terms differ.
  images = batch["images"]
  batch["images"] = tf.stack([images[:, 0], tf.roll(images[:, 1], 9, axis=1),
                              tf.reverse(images[:, 2], axis=[-1])], axis=1)
  reverse = lambda t: tf.reverse(t, axis=[1])
  reversed_batch = {**batch, "images": reverse(batch["images"]),
                    "landmarks": reverse(batch["landmarks"]),
                    "coefficients": reverse(batch["coefficients"])}
  stage = ring.stages()[0]
  forward = ring.objective(networks, batch, stage, training=False)
  backward = ring.objective(networks, reversed_batch, stage, training=False)
  both = every.objective(networks, batch, stage, training=False)
  assert both.details["swapped"].shape[1] == 6
  assert forward.details["swapped"].shape[1] == 3
  for term in pgn.MULTI_VIEW_TERMS:
    expected = 0.5 * (float(forward.terms[term]) + float(backward.terms[term]))
    assert float(both.terms[term]) == pytest.approx(expected, rel=1e-4), term
    assert float(both.terms[term]) != pytest.approx(
        float(forward.terms[term]), rel=1e-3), term
