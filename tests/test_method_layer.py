"""The method layer's seam: a second method that exists only in this file.

`LandmarkOnly` trains the reconstructor with the landmark loss alone and an
extra network (a landmark head: image -> 68 points) in two stages: first the
head alone, then both. It needed no change outside this file: it registers
its network builder and itself, and the trainer, `model.json`, the
checkpoints, the `Reconstructor` and the export handle it like MGCNet.
"""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import methods
from mgc_tf.data import prepare
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.losses import landmark as landmark_lib
from mgc_tf.methods import base
from mgc_tf.models import registry
from mgc_tf.serving import export_lib
from mgc_tf.training import config as config_lib
from mgc_tf.training import trainer as trainer_lib

pytestmark = pytest.mark.slow

TINY = "synthetic_multiview/tiny"
SIZE = 64
HEAD_STEPS = 3


@registry.register("test_landmark_head")
def build_landmark_head(image_size: int, width: int = 8) -> keras.Model:
  """[N, S, S, 3] -> [N, 68, 2] landmarks in crop pixels (a tiny conv net)."""
  images = keras.Input((image_size, image_size, 3))
  x = keras.layers.Conv2D(width, 3, strides=4, activation="relu")(images)
  x = keras.layers.GlobalAveragePooling2D()(x)
  x = keras.layers.Dense(136, kernel_initializer="zeros",
                         bias_initializer=keras.initializers.Constant(
                             image_size / 2))(x)
  return keras.Model(images, keras.layers.Reshape((68, 2))(x),
                     name="landmark_head")


@dataclasses.dataclass(frozen=True)
class LandmarkOnlyConfig:
  landmark_weight: float = 1e-3
  head_weight: float = 1e-3


@methods.register
class LandmarkOnly(base.Method):
  """Landmark loss on the reconstructor plus a landmark head; two stages."""
  name = "test_landmark_only"
  config_class = LandmarkOnlyConfig
  required_features = ("images", "landmarks")

  def network_specs(self):
    return {**super().network_specs(),
            "landmark_head": registry.NetworkSpec(
                "test_landmark_head", {"image_size": self.setup.image_size})}

  def stages(self):
    return (base.Stage("head", steps=HEAD_STEPS, networks=("landmark_head",),
                       terms=("head",)),
            base.Stage("joint"))

  def outputs(self):
    return {"landmarks_head": base.OutputSpec(
        "landmark_head", "[N, 68, 2] landmarks of the head, crop pixels")}

  def objective(self, networks, batch, stage, training=True):
    images, landmarks = batch["images"], batch["landmarks"]
    b, n, s = images.shape[0], images.shape[1], images.shape[2]
    flat = tf.reshape(images, [b * n, s, s, 3])
    flat_landmarks = tf.reshape(tf.cast(landmarks, tf.float32), [b * n, 68, 2])
    per_sample = lambda v: tf.reduce_mean(tf.reshape(v, [b, n]), axis=1)
    scale = 1.0 / self.setup.global_batch_size
    terms = {"head": tf.reduce_sum(per_sample(landmark_lib.landmark_loss(
        networks["landmark_head"](flat, training=training),
        flat_landmarks))) * scale}
    if stage.term_on("landmark"):
      coefficients = networks[base.RECONSTRUCTOR](flat, training=training)
      face = self.decoder.decode(coefficients, image_size=s)
      terms["landmark"] = tf.reduce_sum(per_sample(landmark_lib.landmark_loss(
          face.landmarks_2d, flat_landmarks))) * scale
    weights = {"head": self.config.head_weight,
               "landmark": self.config.landmark_weight}
    return base.Objective(base.weighted_total(terms, weights, stage), terms)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("tfds"))
  prepare.ensure_synthetic(TINY, directory)
  return directory


def _config(model_dir, data_dir, max_steps):
  return config_lib.TrainConfig(
      model_dir=model_dir, method=LandmarkOnly.name, dataset=TINY,
      data_dir=data_dir, eval_dataset="", build_data_if_missing=False,
      backbone="resnet18", image_size=SIZE, batch_size=2, num_views=3,
      learning_rate=1e-3, max_steps=max_steps, augment=False,
      shuffle_buffer=1, log_every=1, summary_every=1,
      image_summary_every=0, checkpoint_every=1, keep_checkpoints=10,
      method_config=LandmarkOnlyConfig()).validate()


def _weights_at(model_dir, step):
  """{network: [arrays]} of every network at checkpoint ckpt-<step>."""
  restored = reconstructor_lib.Reconstructor.from_run(
      model_dir, checkpoint=os.path.join(model_dir, f"ckpt-{step}"))
  return {name: [v.numpy() for v in net.variables]
          for name, net in restored.networks.items()}


def _changed(before, after):
  return any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_a_method_defined_in_a_test_trains_resumes_mid_stage_and_exports(
    data_dir, tmp_path, capsys):
  model_dir = str(tmp_path / "run")
  # Two steps, then a new trainer (as after a restart) goes on to step 6:
  # it resumes inside the head stage and then enters the joint stage.
  first = trainer_lib.Trainer(_config(model_dir, data_dir, 2), LandmarkOnly)
  initial_model = [v.numpy() for v in first.model.variables]
  first.train()
  second = trainer_lib.Trainer(_config(model_dir, data_dir, 6), LandmarkOnly)
  last = second.train()
  out = capsys.readouterr().out
  assert "Resumed from" in out and "at step 2" in out
  assert "Stage 1/2 'head': steps 0 -> 3 (from 2)" in out
  assert "Stage 2/2 'joint': steps 3 -> 6 (from 3)" in out
  assert set(last) >= {"loss/head", "loss/landmark", "stage"}

  # The head stage trained the head and left the reconstructor untouched
  # (weights and batch-norm statistics); the joint stage trained both.
  at = {step: _weights_at(model_dir, step) for step in (1, 3, 4)}
  assert not _changed(initial_model, at[3]["reconstructor"])
  assert _changed(at[1]["landmark_head"], at[3]["landmark_head"])
  assert _changed(at[3]["reconstructor"], at[4]["reconstructor"])
  assert _changed(at[3]["landmark_head"], at[4]["landmark_head"])

  # model.json names the method, both networks and the extra output.
  model = reconstructor_lib.Reconstructor.from_run(model_dir)
  assert model.model_description.method == LandmarkOnly.name
  assert set(model.model_description.networks) == {"reconstructor",
                                                   "landmark_head"}
  assert model.outputs == ("landmarks_head",) and model.step == 6
  crops = np.random.default_rng(0).uniform(0, 1, [2, SIZE, SIZE, 3])
  result = model.reconstruct(crops.astype(np.float32))
  assert result.extras["landmarks_head"].shape == (2, 68, 2)
  assert result.vertices.shape[0] == 2

  # The export serves the extra output beside the coefficients.
  exported = export_lib.export_saved_model(model_dir, str(tmp_path / "export"))
  assert exported.version == 6
  saved = reconstructor_lib.Reconstructor.from_saved_model(exported.path)
  images = crops.astype(np.float32)
  for name in ("coefficients", "landmarks_head"):
    np.testing.assert_allclose(saved.predict(images)[name],
                               model.predict(images)[name], rtol=1e-5,
                               atol=1e-4)


def test_stages_are_checked_against_the_networks(data_dir, tmp_path):

  class BadStages(LandmarkOnly):
    name = "test_bad_stages"

    def stages(self):
      return (base.Stage("a", steps=0), base.Stage("b", steps=2))

  with pytest.raises(ValueError, match="Only the last stage"):
    trainer_lib.Trainer(_config(str(tmp_path / "a"), data_dir, 4), BadStages)


def test_a_method_that_needs_missing_features_is_refused(data_dir, tmp_path):

  class NeedsDepth(LandmarkOnly):
    name = "test_needs_depth"
    required_features = ("images", "depth_gt")

  trainer = trainer_lib.Trainer(_config(str(tmp_path / "b"), data_dir, 4),
                                NeedsDepth)
  with pytest.raises(ValueError, match=r"needs the batch features \['depth_gt'\]"):
    trainer.train()


def test_every_package_builder_is_found_without_importing_the_methods():
  import glob  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  package = os.path.dirname(os.path.dirname(registry.__file__))
  registering = set()
  for path in glob.glob(os.path.join(package, "**", "*.py"), recursive=True):
    with open(path, encoding="utf-8") as f:
      if re.search(r"^@registry\.register\(", f.read(), re.MULTILINE):
        relative = os.path.relpath(path, os.path.dirname(package))
        registering.add(relative[:-3].replace(os.sep, "."))
  assert registering == set(registry.PACKAGE_BUILDER_MODULES)
  # What evaluate/infer/export do: rebuild a run's networks by name in a
  # process that never imported mgc_tf.methods.
  script = ("import sys; from mgc_tf.models import registry; "
            "net = registry.build(registry.NetworkSpec('depth_unet', "
            "{'image_size': 32, 'filters': 4, 'levels': 2})); "
            "assert 'mgc_tf.methods' not in sys.modules; print(net.name)")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, check=False,
                          cwd=os.path.dirname(package))
  assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("name", ["mgcnet", "depthnet", "sir", "pgn",
                                  "robust"])
def test_every_network_of_a_method_saves_every_weight(name, tmp_path):
  """A checkpoint holds every weight of every network a method declares
  (TensorFlow checkpoints follow attributes, and a Keras-tracked list of
  layers escaped them: the robust refiners' residual blocks were never
  saved, so every resume re-initialised them)."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import decoder as decoder_lib
  from mgc_tf.facemodel import loaders
  method_class = methods.get(name)
  method = method_class(
      method_class.config_class(),
      decoder=decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1")),
      backbone="resnet18", backbone_weights="none", image_size=64,
      num_views=2, global_batch_size=2)
  for network_name, spec in method.network_specs().items():
    network = registry.build(spec)
    path = tf.train.Checkpoint(net=network).save(
        str(tmp_path / network_name / "ckpt"))
    saved = [key for key, _ in tf.train.list_variables(path)
             if key.startswith("net/")]
    assert len(saved) == len(network.weights), (name, network_name)
