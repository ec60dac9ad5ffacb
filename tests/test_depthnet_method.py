"""The `depthnet` method (Shu et al.): its stages freeze what they say, and
a short run on one batch lowers every term a stage has on."""

import os
import types

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import methods
from mgc_tf.data import pipeline
from mgc_tf.data import prepare
from mgc_tf.evaluation import metrics
from mgc_tf.evaluation.protocols import multiview as multiview_protocol
from mgc_tf.facemodel import decoder as decoder_lib
from mgc_tf.facemodel import loaders
from mgc_tf.geometry import depth_map as depth_map_lib
from mgc_tf.inference import outputs
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.methods import base
from mgc_tf.methods import depthnet
from mgc_tf.models import registry
from mgc_tf.serving import export_lib
from mgc_tf.training import config as config_lib
from mgc_tf.training import trainer as trainer_lib

TINY = "synthetic_multiview/tiny"
SIZE = 64
_TOTAL = "_total"
SMALL_NETS = dict(depthnet_filters=4, depthnet_levels=2,
                  suitability_filters=4, suitability_levels=2)


def test_config_validates_and_stages_follow_it():
  with pytest.raises(ValueError, match="photo_weight must be >= 0"):
    depthnet.DepthNetConfig(photo_weight=-1.0).validate()
  with pytest.raises(ValueError, match="joint_stage needs"):
    depthnet.DepthNetConfig(joint_stage=True, stage_depth_steps=0).validate()
  decoder = decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  setup = dict(decoder=decoder, backbone="resnet18", backbone_weights="none",
               image_size=SIZE, num_views=3, global_batch_size=2)
  method = depthnet.DepthNetMethod(depthnet.DepthNetConfig(
      stage_3dmm_steps=5, **SMALL_NETS), **setup)
  stages = method.stages()
  assert [(s.name, s.steps, s.networks) for s in stages] == [
      ("3dmm", 5, ("reconstructor",)), ("depth", 0, ("depthnet",
                                                     "suitability"))]
  assert set(stages[0].terms) == set(depthnet.G_TERMS)
  assert set(stages[1].terms) == set(depthnet.F_TERMS)
  joint = depthnet.DepthNetMethod(depthnet.DepthNetConfig(
      stage_3dmm_steps=0, stage_depth_steps=4, joint_stage=True), **setup)
  assert [(s.name, s.steps) for s in joint.stages()] == [("depth", 4),
                                                         ("joint", 0)]
  assert joint.stages()[1].networks is None
  assert methods.get("depthnet") is depthnet.DepthNetMethod
  assert set(method.network_specs()) == {"reconstructor", "depthnet",
                                         "suitability"}
  assert set(method.outputs()) == {"depth_normalized", "suitability"}


def test_aligned_depth_error_removes_scale_and_shift_only():
  rng = np.random.default_rng(0)
  truth = np.zeros([2, 6, 6])
  truth[:, 1:5, 1:5] = 1000.0 + rng.uniform(-30, 30, [2, 4, 4])
  predicted = np.where(truth > 0, 0.5 * truth + 40.0, 0.0)
  np.testing.assert_allclose(metrics.aligned_depth_error(predicted, truth),
                             [0.0, 0.0], atol=1e-6)
  assert (metrics.depth_error(predicted, truth) > 400).all()
  # A shape error survives the alignment: one pixel of 16 off by 16 mm
  # (1 mm on average; the least-squares fit spreads part of it over the
  # other pixels, so a little more).
  bumped = predicted.copy()
  bumped[0, 2, 2] += 8.0  # 16 mm at the truth's scale
  error = metrics.aligned_depth_error(bumped, truth)
  assert 0.5 < error[0] < 3.0 and error[1] < 1e-6
  assert np.isnan(metrics.aligned_depth_error(np.zeros([1, 3, 3]),
                                              np.ones([1, 3, 3]))).all()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("tfds"))
  prepare.ensure_synthetic(TINY, directory)
  return directory


def _config(model_dir, data_dir, max_steps, **method):
  return config_lib.TrainConfig(
      model_dir=model_dir, method="depthnet", dataset=TINY,
      data_dir=data_dir, eval_dataset="", build_data_if_missing=False,
      backbone="resnet18", image_size=SIZE, batch_size=2, num_views=3,
      learning_rate=1e-3, max_steps=max_steps, augment=False,
      shuffle_buffer=1, log_every=1, summary_every=1,
      image_summary_every=0, checkpoint_every=1, keep_checkpoints=10,
      method_config=depthnet.DepthNetConfig(**{**SMALL_NETS, **method})
  ).validate()


def _weights_at(model_dir, step, specs):
  """{network: [arrays, batch-norm statistics included]} at ckpt-<step>."""
  networks = {name: registry.build(spec) for name, spec in specs.items()}
  tracked = {("model" if name == "reconstructor" else "network_" + name): net
             for name, net in networks.items()}
  tf.train.Checkpoint(**tracked).read(
      os.path.join(model_dir, f"ckpt-{step}")).expect_partial()
  return {name: [v.numpy() for v in net.variables]
          for name, net in networks.items()}


def _changed(before, after):
  return any(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.slow
def test_stage_schedule_freezes_what_it_says(data_dir, tmp_path, capsys):
  model_dir = str(tmp_path / "run")
  trainer = trainer_lib.Trainer(
      _config(model_dir, data_dir, 6, stage_3dmm_steps=2, stage_depth_steps=2,
              joint_stage=True), depthnet.DepthNetMethod)
  last = trainer.train()
  out = capsys.readouterr().out
  assert "Stage 1/3 '3dmm': steps 0 -> 2" in out
  assert "Stage 2/3 'depth': steps 2 -> 4" in out
  assert "Stage 3/3 'joint': steps 4 -> 6" in out
  assert np.isfinite(last["loss/photo"]) and np.isfinite(last["loss/depth_l1"])
  at = {step: _weights_at(model_dir, step, trainer.network_specs)
        for step in (1, 2, 3, 4, 5, 6)}
  # 3dmm: g trains; f and h do not.
  assert _changed(at[1]["reconstructor"], at[2]["reconstructor"])
  assert not _changed(at[1]["depthnet"], at[2]["depthnet"])
  assert not _changed(at[1]["suitability"], at[2]["suitability"])
  # depth: f and h train; g (weights and batch-norm statistics) does not.
  assert not _changed(at[2]["reconstructor"], at[4]["reconstructor"])
  assert _changed(at[3]["depthnet"], at[4]["depthnet"])
  assert _changed(at[3]["suitability"], at[4]["suitability"])
  # joint: all three.
  for name in ("reconstructor", "depthnet", "suitability"):
    assert _changed(at[5][name], at[6][name]), name


def _one_batch(data_dir):
  config = pipeline.PipelineConfig(
      num_views=3, image_size=SIZE, batch_size=2, shuffle_buffer=1,
      augment=depthnet_augment_off(), deterministic=True, seed=0,
      data_dir=data_dir, extra_features=depthnet.DepthNetMethod.extra_features)
  sources = pipeline.parse_sources(TINY, data_dir=data_dir)
  return next(iter(pipeline.training_dataset(sources, config)))


def depthnet_augment_off():
  from mgc_tf.data import augment as augment_lib  # pylint: disable=g-import-not-at-top
  return augment_lib.NO_AUGMENTATION


def _train_step(method, networks, batch, stage, variables, optimizer):
  """A compiled step on `stage`'s networks whose term weights are an input
  ([len(stage.terms)] tensor), so one trace serves every weighting."""

  @tf.function
  def step(weights):
    with tf.GradientTape() as tape:
      terms = method.objective(networks, batch, stage).terms
      total = tf.add_n([weights[i] * terms[name]
                        for i, name in enumerate(stage.terms)])
    optimizer.apply(tape.gradient(total, variables), variables)
    return {**terms, _TOTAL: total}

  return step


@pytest.mark.slow
def test_twenty_steps_on_one_batch_lower_every_active_term(data_dir):
  """Each stage: 10 steps on all its terms lower its weighted total; then
  each of its terms alone, 5 steps from there, goes down. (Summed, the
  terms pull against each other over so few steps: the coefficient L1
  moves the landmarks, and the normals outweigh the depth L1 at first.)"""
  batch = _one_batch(data_dir)
  assert batch["has_depth"].numpy().all()
  assert batch["has_coefficients"].numpy().all()
  keras.utils.set_random_seed(0)
  decoder = decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  method = depthnet.DepthNetMethod(
      depthnet.DepthNetConfig(stage_3dmm_steps=10, **SMALL_NETS),
      decoder=decoder, backbone="resnet18", backbone_weights="none",
      image_size=SIZE, num_views=3, global_batch_size=2)
  networks = {name: registry.build(spec)
              for name, spec in method.network_specs().items()}
  lowered = {}
  for stage in method.stages():  # 10 steps of g, then 10 of f and h
    variables = [v for name in stage.networks
                 for v in networks[name].trainable_variables]
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(variables)
    step = _train_step(method, networks, batch, stage, variables, optimizer)
    paper = np.array([method.config.weights()[name] for name in stage.terms],
                     np.float32)

    def run(weights, steps, step=step, optimizer=optimizer):
      for variable in optimizer.variables:  # a fresh Adam (no momentum)
        if "learning_rate" not in variable.path:
          variable.assign(tf.zeros_like(variable))
      first = step(tf.constant(weights))
      for _ in range(steps - 1):
        step(tf.constant(weights))
      return first, method.objective(networks, batch, stage)

    first, last = run(paper, 10)
    assert float(last.total) < float(first[_TOTAL]), stage.name
    for index, name in enumerate(stage.terms):
      first, last = run(paper * np.eye(len(paper), dtype=np.float32)[index], 5)
      lowered[name] = (float(first[name]), float(last.terms[name]))
  print(lowered)
  assert set(lowered) == set(depthnet.G_TERMS + depthnet.F_TERMS)
  for name, (first, last) in lowered.items():
    assert last < first, (name, first, last)


@pytest.mark.slow
def test_export_serves_depth_and_infer_writes_png_and_ply(data_dir, tmp_path):
  """predict_depth (mm + suitability) matches the restored run, and the
  inference outputs write a 16-bit PNG and a .ply of the same depth."""
  model_dir = str(tmp_path / "run")
  trainer_lib.Trainer(_config(model_dir, data_dir, 1, stage_3dmm_steps=0),
                      depthnet.DepthNetMethod).train()
  exported = export_lib.export_saved_model(model_dir, str(tmp_path / "export"))
  assert "predict_depth" in exported.signatures
  loaded = tf.saved_model.load(exported.path)
  crops = np.random.default_rng(0).uniform(
      0, 1, [2, SIZE, SIZE, 3]).astype(np.float32)
  served = loaded.signatures["predict_depth"](images=tf.constant(crops))
  assert served["depth"].shape == (2, SIZE, SIZE, 1)
  assert served["suitability"].shape == (2, SIZE, SIZE, 1)

  model = reconstructor_lib.Reconstructor.from_run(model_dir)
  predicted = model.predict(crops)  # crops at the model's size: no resize
  face = model.decoder.decode(predicted["coefficients"], image_size=SIZE)
  result = types.SimpleNamespace(extras=predicted,
                                 translation=face.translation.numpy())
  arrays = outputs.depth_arrays(result, 0, model.decoder)
  np.testing.assert_allclose(arrays["depth_mm"], served["depth"][0, ..., 0],
                             rtol=1e-5, atol=1e-2)
  files = outputs.write_depth(str(tmp_path / "face"), result, 0,
                              model.decoder)
  png = cv2.imread(files["depth_png"], cv2.IMREAD_UNCHANGED)
  assert png.dtype == np.uint16 and png.shape == (SIZE, SIZE)
  np.testing.assert_allclose(png / depth_map_lib.PNG_UNITS_PER_MM,
                             arrays["depth_mm"], atol=0.051)
  with open(files["depth_ply"], encoding="ascii") as f:
    header = f.read().split("end_header\n")[0]
  assert f"element vertex {(arrays['depth_mm'] > 0).sum()}" in header

  # What `python -m mgc_tf.infer` does on a photo: find the face, write its
  # depth beside the mesh.
  # pylint: disable=g-import-not-at-top
  from skimage import data as skimage_data
  from mgc_tf.inference import faces as faces_lib
  from mgc_tf.inference import images as images_lib
  photo = str(tmp_path / "astronaut.png")
  cv2.imwrite(photo, cv2.cvtColor(skimage_data.astronaut(),
                                  cv2.COLOR_RGB2BGR))
  out = str(tmp_path / "infer")
  written = images_lib.infer_images([photo], out, model,
                                    faces_lib.make_face_finder(),
                                    show_progress=False, log=lambda _: None)
  assert written.faces == 1
  depth_png = [f for f in os.listdir(out) if f.endswith("_depth.png")]
  assert len(depth_png) == 1 and any(f.endswith("_depth.ply")
                                     for f in os.listdir(out))
  png = cv2.imread(os.path.join(out, depth_png[0]), cv2.IMREAD_UNCHANGED)
  assert png.dtype == np.uint16 and png.shape == (SIZE, SIZE)
  assert (png > 0).any()

  # Evaluation: DepthNet's depth error beside the 3DMM render's.
  builder = pipeline.load_builder(pipeline.parse_sources(
      TINY, data_dir=data_dir)[0], data_dir)
  result = multiview_protocol.evaluate_multiview(
      model, builder, max_examples=1, progress=False)
  for name in ("depth_error_mm", "depth_error_aligned_mm",
               "depthnet_depth_error_mm", "depthnet_depth_error_aligned_mm"):
    assert np.isfinite(result.metrics[name]), name
  assert (result.metrics["depthnet_depth_error_aligned_mm"] <=
          result.metrics["depthnet_depth_error_mm"] + 1e-6)
