"""The SIR method and add-on (mgc_tf/methods/sir.py, addons.py).

Labels switch the terms per sample; the add-on composes with any method and
is absent when off; a short run through the trainer lowers every active
term and checkpoints the add-on's networks.
"""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import methods
from mgc_tf.data import pipeline
from mgc_tf.facemodel import decoder as decoder_lib
from mgc_tf.facemodel import loaders
from mgc_tf.methods import addons
from mgc_tf.methods import base
from mgc_tf.methods import mgcnet
from mgc_tf.methods import sir
from mgc_tf.models import registry

SIZE = 64
SIR_ON = sir.SIRConfig(sir_weight=1.0, sir_num_classes=16)


@pytest.fixture(scope="module")
def decoder():
  return decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))


def _setup(decoder, batch_size=2):
  return dict(decoder=decoder, backbone="resnet18", backbone_weights="none",
              image_size=SIZE, num_views=3, global_batch_size=batch_size)


def _batch(seed=0, has_identity=(True, False)):
  rng = np.random.default_rng(seed)
  b = len(has_identity)
  landmarks = SIZE / 2 + rng.normal(0, 8, [b, 3, 68, 2])
  return {
      "images": tf.constant(rng.uniform(0, 1, [b, 3, SIZE, SIZE, 3]),
                            tf.float32),
      "landmarks": tf.constant(landmarks, tf.float32),
      "flag": tf.zeros([b], tf.int32),
      "identity": tf.constant([f"person-{i}" for i in range(b)]),
      "has_identity": tf.constant(has_identity),
  }


def _with(batch, key, index, value):
  values = batch[key].numpy().copy()
  values[index] = value
  return {**batch, key: tf.constant(values)}


@pytest.fixture(scope="module")
def composed(decoder):
  tf.keras.utils.set_random_seed(0)
  setup = _setup(decoder)
  method = addons.WithAddOns(
      sir.SIR(sir.SIRMethodConfig(landmark_warmup_steps=5), **setup),
      [sir.SIRAddOn(SIR_ON, **setup)])
  networks = {name: registry.build(spec)
              for name, spec in method.network_specs().items()}
  return method, networks


def _terms(method, networks, batch, stage=base.Stage("mixed")):
  out = method.objective(networks, batch, stage, training=False)
  return {name: float(value) for name, value in out.terms.items()}


def test_labels_switch_the_terms_per_sample(composed):
  method, networks = composed
  batch = _batch()  # sample 0 identity-labelled, sample 1 landmark-labelled
  base_terms = _terms(method, networks, batch)
  assert set(base_terms) == {"landmark", "pixel", "perceptual",
                             "regularization", "sir_cosface", "sir_center",
                             "sir_kl"}
  # Sample 0's landmarks do not count; sample 1's do.
  moved_0 = _terms(method, networks,
                   _with(batch, "landmarks", 0, np.zeros([3, 68, 2])))
  moved_1 = _terms(method, networks,
                   _with(batch, "landmarks", 1, np.zeros([3, 68, 2])))
  assert moved_0["landmark"] == pytest.approx(base_terms["landmark"])
  assert moved_1["landmark"] != pytest.approx(base_terms["landmark"])
  assert base_terms["sir_cosface"] > 0 and base_terms["pixel"] != 0
  # Without identity labels: no SIR, and the landmark term on both samples.
  unlabelled = _terms(method, networks, _batch(has_identity=(False, False)))
  for name in sir.SIR_TERMS:
    assert unlabelled[name] == 0.0
  assert unlabelled["landmark"] > base_terms["landmark"]
  assert unlabelled["pixel"] == pytest.approx(base_terms["pixel"])
  # An empty identity string is not a label either.
  empty = _terms(method, networks, _with(batch, "identity", 0, ""))
  assert empty["sir_cosface"] == 0.0


def test_the_kl_term_sees_one_row_per_identity_labelled_sample(composed,
                                                                decoder):
  method, networks = composed
  batch = _batch(has_identity=(True, True))
  out = method.objective(networks, batch, base.Stage("mixed"),
                         training=False)
  shape = decoder.layout.split(out.coefficients)["identity"]  # [B, N, D]
  want = sir.sir_lib.kl_to_standard_normal(tf.reduce_mean(shape, axis=1))
  # The local batch is the global one here (factor B / B = 1).
  assert float(out.terms["sir_kl"]) == pytest.approx(float(want), rel=1e-5)
  assert float(want) > 0


def test_the_warmup_stage_trains_on_landmark_samples_without_sir(composed):
  method, networks = composed
  stages = method.stages()
  assert [s.name for s in stages] == [sir.WARMUP_STAGE, "mixed"]
  warmup = stages[0]
  batch = _batch()
  out = method.objective(networks, batch, warmup, training=False)
  other = method.objective(
      networks, _with(batch, "images", 0, np.zeros([3, SIZE, SIZE, 3])),
      warmup, training=False)
  # The identity-labelled sample 0 adds nothing in the warm-up.
  np.testing.assert_allclose(float(out.total), float(other.total), rtol=1e-6)
  weights = {**method.method.weights(), **method.addons[0].weights()}
  want = sum(weights[name] * float(out.terms[name])
             for name in warmup.terms)
  assert float(out.total) == pytest.approx(want, rel=1e-5)


def test_centres_move_only_when_training(composed):
  method, networks = composed
  head = networks[sir.IDENTITY_CLASSES]
  before = head.centers.numpy().copy()
  method.objective(networks, _batch(), base.Stage("mixed"), training=False)
  np.testing.assert_array_equal(head.centers.numpy(), before)
  method.objective(networks, _batch(), base.Stage("mixed"), training=True)
  moved = np.flatnonzero(np.any(head.centers.numpy() != before, axis=1))
  label = sir.sir_lib.identity_classes(tf.constant("person-0"), 16).numpy()
  assert list(moved) == [label]  # only the identity-labelled sample's class


def test_sir_off_leaves_the_method_as_it_is():
  off = {"sir": sir.SIRConfig()}
  assert methods.composed("mgcnet", off) is mgcnet.MGCNet
  assert methods.composed("mgcnet", None) is mgcnet.MGCNet
  assert methods.composed("mgcnet", {"sir": SIR_ON}) is not mgcnet.MGCNet


def test_sir_adds_to_mgcnet(decoder):
  tf.keras.utils.set_random_seed(0)
  config = mgcnet.MGCNetConfig(identity_model="none")
  build = methods.composed("mgcnet", {"sir": SIR_ON})
  method = build(config, **_setup(decoder))
  assert method.name == "mgcnet" and method.extra_features == ("identity",)
  specs = method.network_specs()
  assert set(specs) == {"reconstructor", sir.IDENTITY_CLASSES}
  networks = {name: registry.build(spec) for name, spec in specs.items()}
  batch = {**_batch(), "skin": tf.ones([2, 3, SIZE, SIZE, 1])}
  out = method.objective(networks, batch, base.Stage("train"), training=False)
  plain = mgcnet.MGCNet(config, **_setup(decoder)).objective(
      networks, batch, base.Stage("train"), training=False)
  added = sum(SIR_ON.sir_weight * w * float(out.terms[name]) for name, w in
              (("sir_cosface", 1.0),
               ("sir_center", SIR_ON.sir_center_weight),
               ("sir_kl", SIR_ON.sir_kl_weight)))
  assert float(out.total) == pytest.approx(float(plain.total) + added,
                                           rel=1e-5)
  for name, value in plain.terms.items():
    assert float(out.terms[name]) == pytest.approx(float(value), rel=1e-6)


def test_bad_settings_are_one_clear_error():
  with pytest.raises(ValueError, match="--sir_weight must be >= 0"):
    sir.SIRConfig(sir_weight=-1.0).validate()
  with pytest.raises(ValueError, match="--sir_num_classes"):
    sir.SIRConfig(sir_num_classes=1).validate()
  with pytest.raises(ValueError, match="Unknown extra batch feature"):
    pipeline.parse_sources("celeba[without=identiti]")
  spec, = pipeline.parse_sources("w300_lp[without=identity+depth]:0.5")
  assert spec.without == ("identity", "depth") and spec.weight == 0.5


def test_batch_counts_realise_the_weights_exactly():
  assert pipeline.batch_counts([0.5, 0.5], 4) == [2, 2]
  assert pipeline.batch_counts([1.0, 2.0], 4) == [1, 3]
  assert pipeline.batch_counts([1.0, 1.0, 1.0], 4) == [2, 1, 1]
  with pytest.raises(ValueError, match="gives a source no sample"):
    pipeline.batch_counts([0.9, 0.1], 4)


# ------------------------------------------------------------------- slow


TINY = "synthetic_multiview/tiny"
# The landmark-labelled half hides its identities (section D's S_recon).
MIXED = f"{TINY}[without=identity]:0.5,{TINY}:0.5"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  # pylint: disable=g-import-not-at-top
  from mgc_tf.data import prepare
  directory = str(tmp_path_factory.mktemp("tfds"))
  prepare.ensure_synthetic(TINY, directory)
  return directory


def _train_config(model_dir, data_dir, max_steps, learning_rate=1e-3,
                  addon=SIR_ON, **method_kwargs):
  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import config as config_lib
  return config_lib.TrainConfig(
      model_dir=model_dir, method="sir", dataset=MIXED, data_dir=data_dir,
      eval_dataset="", build_data_if_missing=False, backbone="resnet18",
      image_size=SIZE, batch_size=4, num_views=3,
      learning_rate=learning_rate,
      max_steps=max_steps, augment=False, shuffle_buffer=1, log_every=1,
      summary_every=1, image_summary_every=0, checkpoint_every=2,
      deterministic=True, seed=3, exact_mix=True,
      method_config=sir.SIRMethodConfig(**method_kwargs),
      addon_configs={"sir": addon}).validate()


@pytest.mark.slow
def test_an_exact_mix_gives_every_batch_the_same_ratio(data_dir):
  config = pipeline.PipelineConfig(
      num_views=3, image_size=SIZE, batch_size=4, shuffle_buffer=4,
      seed=1, data_dir=data_dir, extra_features=("identity",),
      exact_mix=True)
  sources = pipeline.parse_sources(MIXED, data_dir=data_dir)
  counts = [int(tf.reduce_sum(tf.cast(batch["has_identity"], tf.int32)))
            for batch in pipeline.training_dataset(sources, config).take(6)]
  assert counts == [2] * 6
  # Drawn at random by weight, batches vary around the ratio.
  random_mix = dataclasses.replace(config, exact_mix=False)
  counts = [int(tf.reduce_sum(tf.cast(batch["has_identity"], tf.int32)))
            for batch in pipeline.training_dataset(sources,
                                                   random_mix).take(12)]
  assert len(set(counts)) > 1


@pytest.mark.slow
def test_twenty_steps_lower_every_active_term(data_dir, tmp_path):
  """The paper's schedule on one fixed batch: a landmark warm-up (10 steps),
  then 20 steps of the mix with SIR, which lower every active term.

  (Without the warm-up the identity coefficients start at exactly 0, the
  zero-initialised head's output, where the centres also start: the
  centre term is then 0 and first grows while the KL term spreads the
  coefficients; the warm-up is what the paper adds for such a start.)

  The regularisation term is left out on purpose: its minimum, all
  coefficients 0, is what the KL term moves away from (at the prior
  N(0, I), |alpha|^2 averages the identity rank), so it may rise while the
  others fall. The centre term gets weight 1 here: at the default 0.01 it
  hardly pulls the coefficients, and over 20 steps it measured only how far
  the centres (moved by eq. 20, not by gradients) lag coefficients that
  CosFace and the KL term move (it rose from 4.7 to 25.7).
  """
  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import trainer as trainer_lib
  warmup = 10
  # The configs' learning rate (configs/sir.flags).
  config = _train_config(str(tmp_path / "fixed"), data_dir, warmup + 20,
                         learning_rate=3e-4, landmark_warmup_steps=warmup,
                         addon=dataclasses.replace(SIR_ON,
                                                   sir_center_weight=1.0))
  trainer = trainer_lib.Trainer(
      config, methods.composed("sir", config.addon_configs))
  # One batch (2 identity-labelled + 2 landmark-labelled samples: an exact
  # mix), trained on 30 times.
  batch = next(iter(trainer.distributed_dataset(0)))
  assert int(tf.reduce_sum(tf.cast(batch["has_identity"], tf.int32))) == 2
  history = []
  for index in range(warmup + 20):
    out = trainer._train_step_of(  # pylint: disable=protected-access
        0 if index < warmup else 1)(batch)
    assert bool(out["applied"])
    history.append({name: float(v) for name, v in out["terms"].items()})
  assert all(history[i]["sir_cosface"] == 0.0 for i in range(warmup))
  active = ["landmark", "pixel", "sir_cosface", "sir_center", "sir_kl"]
  for name in active:
    first, last = history[warmup][name], history[-1][name]
    assert last < first, (name, [round(h[name], 3) for h in history])
  assert history[warmup]["sir_cosface"] > 0


@pytest.mark.slow
def test_a_run_with_warmup_checkpoints_the_sir_networks(data_dir, tmp_path,
                                                        capsys):
  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import trainer as trainer_lib
  model_dir = str(tmp_path / "run")
  config = _train_config(model_dir, data_dir, 4, landmark_warmup_steps=2)
  trainer = trainer_lib.Trainer(
      config, methods.composed("sir", config.addon_configs))
  last = trainer.train()
  out = capsys.readouterr().out
  assert f"Stage 1/2 '{sir.WARMUP_STAGE}': steps 0 -> 2" in out
  assert "terms landmark, pixel, perceptual, regularization" in out
  assert last["loss/sir_cosface"] > 0
  # The checkpoint holds both SIR networks, centres included.
  fresh = {name: registry.build(spec)
           for name, spec in trainer.network_specs.items()
           if name != base.RECONSTRUCTOR}
  tf.train.Checkpoint(**{f"network_{name}": net
                         for name, net in fresh.items()}).restore(
      os.path.join(model_dir, "ckpt-4")).expect_partial(
      ).assert_existing_objects_matched()
  for name, net in fresh.items():
    for restored, trained in zip(net.variables,
                                 trainer.networks[name].variables):
      np.testing.assert_array_equal(restored.numpy(), trained.numpy())
  assert np.any(fresh[sir.IDENTITY_CLASSES].centers.numpy() != 0)
  with open(os.path.join(model_dir, "config.json")) as f:
    written = json.load(f)
  assert written["addon_configs"]["sir"]["sir_weight"] == 1.0
  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import config as config_lib
  again = config_lib.TrainConfig.from_json(
      json.dumps(written), sir.SIRMethodConfig,
      {"sir": sir.SIRConfig})
  assert again.addon_configs["sir"] == dataclasses.replace(SIR_ON)


@pytest.mark.slow
def test_the_sir_flagfiles_resolve():
  # pylint: disable=g-import-not-at-top
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  script = (
      "import sys\n"
      "from mgc_tf import train\n"
      "from mgc_tf.data import pipeline\n"
      "for path in sys.argv[1:]:\n"
      "  train.FLAGS.unparse_flags()\n"
      "  train.FLAGS(['train', '--flagfile=' + path, '--model_dir=/tmp/x'])\n"
      "  c = train.config_from_flags()\n"
      "  print(path, c.method, c.addon_configs['sir'].sir_weight,\n"
      "        [s.without for s in pipeline.parse_sources(c.dataset)])\n")
  result = subprocess.run(
      [sys.executable, "-c", script, "configs/sir.flags",
       "configs/ablation_v2/sir.flags"],
      capture_output=True, text=True, cwd=repo, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "configs/sir.flags sir 0.05 [('identity',), ()]" in result.stdout
  assert "configs/ablation_v2/sir.flags mgcnet 0.05 [()]" in result.stdout


@pytest.mark.slow
def test_the_persons_config_shows_each_person_several_times(tmp_path):
  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds
  from mgc_tf.data import prepare
  from mgc_tf.evaluation import protocols
  data_dir = str(tmp_path / "tfds")
  name = "synthetic_multiview/persons_tiny"
  prepare.ensure_synthetic(name, data_dir)
  builder = protocols.load_dataset_builder(name, data_dir)
  test = list(tfds.as_numpy(builder.as_dataset(split="test",
                                               shuffle_files=False)))
  labels = sorted(e["identity"].decode() for e in test)
  assert labels == ["synthetic-test-person000000"] * 3 + [
      "synthetic-test-person000001"] * 3
  # Verification pairs: 2 persons x 9 images each.
  pairs = protocols.pairs_from_builder(builder, "test")
  assert len(pairs.images) == 18
  assert pairs.same.sum() == (~pairs.same).sum() > 0
