"""The trainer: loss goes down, resume, SIGTERM, Mirrored on 2 logical CPUs,
two workers on loopback, the original MGCNet flag names, and what bad data,
signals, a second trainer, a full disk and other model flags cannot break.

Runs on synthetic_multiview/tiny (3 train / 3 test examples at 64 px) with
the ResNet18-style backbone; each subprocess run takes ~15-30 s.
"""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import methods
from mgc_tf.data import pipeline
from mgc_tf.data import prepare

# Every test here runs the training CLI in a subprocess.
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "synthetic_multiview/tiny"

# Small, fast runs: 64 px, ResNet18-style, batch 2.
COMMON = ["--dataset=" + TINY, "--eval_dataset=" + TINY, "--backbone=resnet18",
          "--image_size=64", "--batch_size=2", "--shuffle_buffer=4",
          "--log_every=1", "--summary_every=1", "--image_summary_every=0",
          "--eval_every=0", "--build_data_if_missing=false"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("tfds"))
  prepare.ensure_synthetic(TINY, directory)
  return directory


def _train_command(model_dir, data_dir, *extra):
  return [sys.executable, "-m", "mgc_tf.train", f"--model_dir={model_dir}",
          f"--data_dir={data_dir}", *COMMON, *extra]


def _env(**extra):
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
  env.update(extra)
  return env


def _run(command, timeout=600, **env):
  result = subprocess.run(command, capture_output=True, text=True,
                          timeout=timeout, env=_env(**env), cwd=REPO)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return result.stdout


def _model_variables(checkpoint_prefix):
  reader = tf.train.load_checkpoint(checkpoint_prefix)
  # Keras 3 saves the trainable weights under optimizer/_trainable_variables
  # and only the non-trainable ones (BN statistics) under model/: keep both.
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name.startswith(("model/", "optimizer/_trainable_variables/"))
          and "OPTIMIZER_SLOT" not in name}


def test_the_face_model_is_the_flag_the_resumed_run_the_data_or_the_default(
    data_dir, tmp_path):
  """`face_model_choice`: from the prepared data's metadata and
  model.json (the trainer prepares missing data before it asks)."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import loaders
  from mgc_tf.inference import reconstructor as reconstructor_lib
  from mgc_tf.models import reconstructor as head_lib
  from mgc_tf.facemodel import decoder as decoder_lib
  from mgc_tf.models import registry
  from mgc_tf.training import config as config_lib
  from mgc_tf.training import trainer as trainer_lib

  def choice(dataset, **kwargs):
    return trainer_lib.face_model_choice(config_lib.TrainConfig(
        model_dir=str(tmp_path / "run"), dataset=dataset,
        data_dir=data_dir, **kwargs))

  synthetic, ict = "embedded-synthetic-v1", "embedded-ict-light-v1"
  assert loaders.DEFAULT_FACE_MODEL == ict
  # Not prepared: no record, so the default.
  assert choice("synthetic_multiview/ict_tiny") == (ict, False)
  assert choice("synthetic_multiview/persons_tiny") == (ict, False)
  for name in ("synthetic_multiview/ict_tiny",
               "synthetic_multiview/persons_tiny"):
    prepare.ensure_synthetic(name, data_dir)
  assert choice("synthetic_multiview/tiny") == (synthetic, False)
  assert choice("synthetic_multiview/ict_tiny") == (ict, False)
  assert choice("synthetic_multiview/persons_tiny:0.5,celeba:0.5") == (
      synthetic, False)
  # Real photos record no model: the default (and so does data that is
  # not prepared; the trainer says how to build it).
  assert choice("celeba", build_data_if_missing=False) == (ict, False)
  assert choice("synthetic_multiview/tiny", face_model=ict) == (ict, False)
  with pytest.raises(ValueError, match="different face models"):
    choice("synthetic_multiview/tiny,synthetic_multiview/ict_tiny")
  # A run being resumed keeps its own model, even on the other data (which
  # the trainer then refuses, saying why).
  face_model = loaders.load_face_model(synthetic)
  layout = decoder_lib.FaceDecoder(face_model).layout
  spec = head_lib.reconstructor_spec(layout, backbone="resnet18",
                                     image_size=32)
  networks = {"reconstructor": registry.build(spec)}
  reconstructor_lib.save_run(str(tmp_path / "run"), networks,
                             {"reconstructor": spec}, face_model, 32)
  assert choice("synthetic_multiview/ict_tiny") == (synthetic, True)


def test_a_few_steps_lower_the_loss(data_dir, tmp_path):
  from mgc_tf.training import config as config_lib  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.TrainConfig(
      model_dir=str(tmp_path / "run"), dataset=TINY, data_dir=data_dir,
      eval_dataset="", build_data_if_missing=False, backbone="resnet18",
      image_size=64, batch_size=3, num_views=3, learning_rate=1e-3,
      max_steps=12, augment=False, deterministic=True, shuffle_buffer=1,
      log_every=4, summary_every=1, image_summary_every=6,
      checkpoint_every=12,
      method_config=methods.get("mgcnet").config_class()).validate()
  trainer = trainer_lib.Trainer(config, methods.get("mgcnet"))
  losses = []
  original_step = trainer._make_train_step  # pylint: disable=protected-access

  def recording_step(stage):
    step_fn = original_step(stage)

    def wrapped(batch):
      out = step_fn(batch)
      losses.append(float(out["total"].numpy()))
      return out
    return wrapped

  trainer._make_train_step = recording_step  # pylint: disable=protected-access
  last = trainer.train()
  # batch 3 = the whole tiny train split, so every step sees the same data.
  assert len(losses) == 12
  assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
  assert set(last) >= {"loss/total", "loss/render", "loss/landmark",
                       "loss/pixel", "loss/epipolar", "learning_rate"}
  assert os.path.exists(os.path.join(config.model_dir, "config.json"))
  assert os.path.exists(os.path.join(config.model_dir, "model.json"))
  assert tf.train.latest_checkpoint(config.model_dir).endswith("ckpt-12")
  events = os.listdir(os.path.join(config.model_dir, "train"))
  assert any(name.startswith("events.out.tfevents") for name in events)


def test_kill_and_restart_resumes_at_the_saved_step(data_dir, tmp_path):
  model_dir = str(tmp_path / "run")
  command = _train_command(model_dir, data_dir, "--max_steps=1000",
                           "--checkpoint_every=2")
  process = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=_env(),
                             cwd=REPO)
  saved = None
  deadline = time.time() + 300
  for line in process.stdout:
    if "Saved checkpoint" in line and line.strip().endswith("ckpt-4"):
      saved = 4
      process.kill()  # no chance to save anything more
      break
    assert time.time() < deadline, "no checkpoint within 300 s"
  process.wait(timeout=60)
  assert saved == 4
  latest = tf.train.latest_checkpoint(model_dir)
  step = int(latest.rsplit("-", 1)[1])
  assert step >= 4
  output = _run(_train_command(model_dir, data_dir, f"--max_steps={step + 2}",
                               "--checkpoint_every=100"))
  assert f"Resumed from {latest} at step {step}" in output
  assert f"step {step + 1}/{step + 2}" in output
  assert tf.train.latest_checkpoint(model_dir).endswith(f"ckpt-{step + 2}")


def test_sigterm_saves_a_checkpoint_and_stops(data_dir, tmp_path):
  model_dir = str(tmp_path / "run")
  process = subprocess.Popen(
      _train_command(model_dir, data_dir, "--max_steps=1000",
                     "--checkpoint_every=1000"),
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
      cwd=REPO)
  for line in process.stdout:
    if line.startswith("step 2/1000"):
      process.send_signal(signal.SIGTERM)
      break
  rest = process.communicate(timeout=120)[0]
  assert process.returncode == 0, rest
  assert "Received SIGTERM" in rest
  latest = tf.train.latest_checkpoint(model_dir)
  assert latest is not None and int(latest.rsplit("-", 1)[1]) >= 2


def test_mirrored_on_two_logical_cpus_then_export(data_dir, tmp_path):
  model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
  command = _train_command(model_dir, data_dir, "--strategy=mirrored",
                           "--num_cpu_devices=2", "--max_steps=2",
                           "--checkpoint_every=2", f"--export_dir={export_dir}")
  output = _run(command)
  assert "MirroredStrategy: 2 replica(s)" in output
  assert "step 2/2" in output
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-2")
  # --export_dir: the final step is exported for TF Serving.
  assert f"Exported {os.path.join(export_dir, 'mgc', '2')}" in output
  assert os.path.exists(os.path.join(export_dir, "mgc", "2", "saved_model.pb"))
  # Running the finished job again trains nothing and keeps the export.
  again = _run(command)
  assert "nothing to do" in again and "Not exported" in again


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_two_workers_on_loopback_end_with_identical_weights(data_dir, tmp_path):
  model_dir = str(tmp_path / "run")
  workers = [f"localhost:{port}" for port in _free_ports(2)]
  processes = []
  for index in range(2):
    tf_config = json.dumps({"cluster": {"worker": workers},
                            "task": {"type": "worker", "index": index}})
    processes.append(subprocess.Popen(
        _train_command(model_dir, data_dir, "--strategy=multi_worker",
                       "--max_steps=3", "--checkpoint_every=3"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_env(TF_CONFIG=tf_config, TMPDIR=str(tmp_path)), cwd=REPO))
  outputs = [p.communicate(timeout=600)[0] for p in processes]
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-4000:]
  assert "2 replica(s), 2 worker(s)" in outputs[0]
  chief = _model_variables(os.path.join(model_dir, "ckpt-3"))
  other = _model_variables(os.path.join(str(tmp_path), "mgc_tf_workers",
                                        "worker_1", "ckpt-3"))
  assert chief.keys() == other.keys() and len(chief) > 10
  for name, value in chief.items():
    np.testing.assert_array_equal(value, other[name], err_msg=name)


def test_sigterm_to_one_worker_stops_both_at_the_same_step(data_dir, tmp_path):
  """Only the non-chief gets SIGTERM: the workers share the stop flag after
  every step, so both save at the same step and exit 0 (a worker stopping
  alone would leave the other waiting in a collective), and a restart
  resumes every worker from the chief's checkpoint."""
  model_dir = str(tmp_path / "run")
  workers = [f"localhost:{port}" for port in _free_ports(2)]

  def start(max_steps):
    processes = []
    for index in range(2):
      tf_config = json.dumps({"cluster": {"worker": workers},
                              "task": {"type": "worker", "index": index}})
      processes.append(subprocess.Popen(
          _train_command(model_dir, data_dir, "--strategy=multi_worker",
                         f"--max_steps={max_steps}", "--checkpoint_every=1000"),
          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
          env=_env(TF_CONFIG=tf_config, TMPDIR=str(tmp_path)), cwd=REPO))
    return processes

  processes = start(1000)
  head = []
  for line in processes[0].stdout:
    head.append(line)
    if line.startswith("step 2/1000"):
      processes[1].send_signal(signal.SIGTERM)
      break
  outputs = [p.communicate(timeout=300)[0] for p in processes]
  outputs[0] = "".join(head) + outputs[0]
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-4000:]
  assert "Received SIGTERM" in outputs[1]
  assert "Another worker received a stop signal" in outputs[0], outputs[0][-3000:]
  latest = tf.train.latest_checkpoint(model_dir)
  step = int(latest.rsplit("-", 1)[1])
  scratch = os.path.join(str(tmp_path), "mgc_tf_workers", "worker_1")
  assert tf.train.latest_checkpoint(scratch).endswith(f"ckpt-{step}")
  processes = start(step + 1)
  outputs = [p.communicate(timeout=300)[0] for p in processes]
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-4000:]
    assert f"Resumed from {latest} at step {step}" in output


def test_original_flag_names_parse_to_the_same_config():
  original = [
      "train", "--checkpoint_dir=/tmp/x", "--learning_rate=0.0001",
      "--MULTIVIEW_weight=1.0", "--photom_weight=0.15", "--ssim_weight=0.0",
      "--epipolar_weight=0.0015", "--depth_weight=0.0001",
      "--gpmm_lm_loss_weight=0.001", "--gpmm_pixel_loss_weight=1.9",
      "--gpmm_id_loss_weight=0.2", "--gpmm_regular_shape_loss_weight=0.0001",
      "--gpmm_regular_color_loss_weight=0.0003", "--batch_size=2",
      "--img_height=224", "--img_width=224", "--max_steps=20001",
      "--seq_length=3", "--lm_detail_weight=5.0",
      # Original flags without a counterpart: accepted and ignored.
      "--dataset_dir=./data/eccv2020_MGCNet_data", "--flag_fore=1",
      "--dataset_loader=data_loader_semi_unsupervised_skin",
      "--num_scales=1", "--min_steps=2000", "--save_freq=20000",
      "--summary_freq=100", "--num_source=2", "--match_num=68", "--net=resnet",
      "--net_id=facenet", "--path_gpmm=/x/bfm09_trim_exp_uv_presplit.h5"]
  ours = [
      "train", "--model_dir=/tmp/x", "--learning_rate=0.0001",
      "--multiview_weight=1.0", "--pixel_weight=0.15", "--ssim_weight=0.0",
      "--epipolar_weight=0.0015", "--depth_weight=0.0001",
      "--landmark_weight=0.001", "--render_weight=1.9",
      "--identity_weight=0.2", "--regularization_weight=0.0001",
      "--albedo_regularization_weight=0.0003", "--batch_size=2",
      "--image_size=224", "--max_steps=20001", "--num_views=3",
      "--landmark_nose_mouth_weight=5.0", "--checkpoint_every=20000",
      "--summary_every=100"]
  # In a fresh process: other entry points (render_demo) define flags of
  # the same names in the global FLAGS when the suite imports them.
  script = (
      "import json, sys\n"
      "from mgc_tf import train\n"
      "configs = []\n"
      "for argv in json.loads(sys.argv[1]):\n"
      "  train.FLAGS.unparse_flags()\n"
      "  train.FLAGS(argv)\n"
      "  configs.append(train.config_from_flags())\n"
      "  train.report_ignored()\n"
      "assert configs[0] == configs[1], (configs[0], configs[1])\n"
      "print('reg_albedo', round(configs[0].method_config.loss_weights().reg_albedo, 9))\n"
      "print('views', configs[0].num_views, 'model_dir', configs[0].model_dir)\n")
  output = _run([sys.executable, "-c", script, json.dumps([original, ours])])
  assert "reg_albedo 3.0" in output
  assert "views 3 model_dir /tmp/x" in output
  assert "--net has no effect here (use --backbone)" in output


def test_non_finite_steps_are_skipped_and_stop_the_run(data_dir, tmp_path):
  from mgc_tf.training import config as config_lib  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.TrainConfig(
      model_dir=str(tmp_path / "run"), dataset=TINY, data_dir=data_dir,
      eval_dataset="", build_data_if_missing=False, backbone="resnet18",
      image_size=64, batch_size=2, max_steps=50, augment=False,
      shuffle_buffer=1, checkpoint_every=2, image_summary_every=0,
      max_consecutive_nonfinite=2,
      method_config=methods.get("mgcnet").config_class()).validate()
  trainer = trainer_lib.Trainer(config, methods.get("mgcnet"))
  poison = tf.Variable(0.0, trainable=False)
  loss = trainer.method.loss

  class PoisonedLoss:
    """The real loss, with a NaN total while `poison` is set."""

    def __call__(self, *args, **kwargs):
      out = loss(*args, **kwargs)
      total = tf.where(poison > 0, tf.constant(float("nan")), out.total)
      return out._replace(total=total)

    def __getattr__(self, name):  # identity_loss, weights, ...
      return getattr(loss, name)

  trainer.method.loss = PoisonedLoss()
  # Two clean steps first (checkpoint at step 2), then poisoned ones.
  trainer.config = dataclasses.replace(config, max_steps=2)
  trainer.train()
  weights_at_2 = [w.numpy() for w in trainer.model.trainable_variables]
  poison.assign(1.0)
  trainer.config = config
  with pytest.raises(trainer_lib.NonFiniteLossError, match="2 non-finite"):
    trainer.train()
  assert int(trainer.skipped_steps.numpy()) == 2
  for before, after in zip(weights_at_2, trainer.model.trainable_variables):
    np.testing.assert_array_equal(before, after.numpy())
  # Nothing was saved after the bad steps: the last good checkpoint stays.
  assert tf.train.latest_checkpoint(config.model_dir).endswith("ckpt-2")


# ------------------------------------------------ reliability (issue 13)


def _small_config(tmp_path, data_dir, **overrides):
  from mgc_tf.training import config as config_lib  # pylint: disable=g-import-not-at-top
  values = dict(
      model_dir=str(tmp_path / "run") if tmp_path else None,
      dataset=TINY, data_dir=data_dir,
      eval_dataset="", build_data_if_missing=False, backbone="resnet18",
      image_size=64, batch_size=2, max_steps=2, augment=False,
      shuffle_buffer=1, checkpoint_every=1000, image_summary_every=0,
      method_config=methods.get("mgcnet").config_class())
  values.update(overrides)
  return config_lib.TrainConfig(**values).validate()


def _nan_pixels_in_batches(monkeypatch, indices):
  """Batches `indices` of each training dataset built from now on hold NaN
  pixels (a user's own tf.data source can)."""
  original = pipeline.training_dataset
  bad = tf.constant(list(indices), tf.int64)

  def poisoned(*args, **kwargs):
    def poison(index, batch):
      images = batch["images"]
      sprinkled = tf.reshape(tf.range(tf.size(images)) % 97 == 0,
                             tf.shape(images))
      hit = tf.reduce_any(tf.equal(index, bad))
      batch = dict(batch)
      batch["images"] = tf.where(hit & sprinkled, float("nan"), images)
      return batch
    return original(*args, **kwargs).enumerate().map(poison)

  monkeypatch.setattr(pipeline, "training_dataset", poisoned)


def _state(trainer):
  """Every variable of every network and of the optimizer, by path."""
  values = {}
  for network in trainer.networks.values():
    values.update({v.path: v.numpy() for v in network.variables})
  values.update({"optimizer/" + v.path: v.numpy()
                 for v in trainer.optimizer.variables})
  return values


def test_nan_pixels_leave_every_weight_and_statistic_untouched(
    data_dir, tmp_path, monkeypatch):
  from mgc_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = _small_config(tmp_path, data_dir, max_steps=2)
  trainer = trainer_lib.Trainer(config, methods.get("mgcnet"))
  trainer.train()  # two clean steps
  before = _state(trainer)
  assert sum("moving" in name for name in before) > 10
  _nan_pixels_in_batches(monkeypatch, [0])
  trainer.config = dataclasses.replace(config, max_steps=3)
  last = trainer.train()  # step 3 has NaN pixels
  after = _state(trainer)
  assert before.keys() == after.keys()
  for name, value in before.items():
    np.testing.assert_array_equal(value, after[name], err_msg=name)
  assert int(trainer.step.numpy()) == 3
  assert int(trainer.skipped_steps.numpy()) == 1
  assert int(trainer.rejected_batches.numpy()) == 1
  assert last["rejected_batches"] == 1.0


def test_sigterm_during_a_non_finite_step_saves_the_last_applied_state(
    data_dir, tmp_path, monkeypatch):
  from mgc_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = _small_config(tmp_path, data_dir, max_steps=50,
                         checkpoint_every=1000, max_consecutive_nonfinite=5)
  _nan_pixels_in_batches(monkeypatch, [3])  # step 4 is not applied
  trainer = trainer_lib.Trainer(config, methods.get("mgcnet"))
  original_step = trainer._make_train_step  # pylint: disable=protected-access
  applied_state = {}

  def signalling_step(stage):
    step_fn = original_step(stage)

    def wrapped(batch):
      if int(trainer.step.numpy()) == 3:  # the 4th step: a real SIGTERM
        applied_state.update(_state(trainer))
        os.kill(os.getpid(), signal.SIGTERM)
      return step_fn(batch)
    return wrapped

  trainer._make_train_step = signalling_step  # pylint: disable=protected-access
  trainer.train()
  assert trainer.stopped_by_signal
  assert int(trainer.skipped_steps.numpy()) == 1
  latest = tf.train.latest_checkpoint(config.model_dir)
  assert latest is not None and latest.endswith("ckpt-4"), latest
  # The checkpoint holds the state of step 3, the last applied one.
  for network in trainer.networks.values():
    for variable in network.variables:
      variable.assign(tf.zeros_like(variable))
  trainer.checkpoint.restore(latest).expect_partial()
  restored = _state(trainer)
  for name, value in applied_state.items():
    np.testing.assert_array_equal(value, restored[name], err_msg=name)


def _error_lines(stderr):
  """The lines of stderr that are not TensorFlow's start-up log."""
  return [line for line in stderr.splitlines() if line.startswith("error:")
          or "Traceback" in line]


def test_a_second_trainer_on_a_locked_model_dir_exits_2_naming_the_holder(
    data_dir, tmp_path):
  from mgc_tf.training import run_dir  # pylint: disable=g-import-not-at-top
  model_dir = str(tmp_path / "run")
  lock = run_dir.RunLock(model_dir)
  lock.acquire()  # this process is "the running trainer"
  try:
    result = subprocess.run(
        _train_command(model_dir, data_dir, "--max_steps=1"),
        capture_output=True, text=True, timeout=600, env=_env(), cwd=REPO)
  finally:
    lock.release()
  assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
  errors = _error_lines(result.stderr)
  assert len(errors) == 1, result.stderr[-3000:]
  assert f"pid {os.getpid()} on host {socket.gethostname()}" in errors[0]
  assert not os.path.exists(os.path.join(model_dir, "config.json"))
  assert tf.train.latest_checkpoint(model_dir) is None


def test_a_save_on_a_full_disk_fails_with_one_line_and_leaves_no_orphan(
    data_dir, tmp_path, monkeypatch):
  from mgc_tf.training import run_dir  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = _small_config(tmp_path, data_dir, max_steps=1)
  trainer = trainer_lib.Trainer(config, methods.get("mgcnet"))
  trainer.train()  # ckpt-1
  usage = run_dir.shutil.disk_usage(config.model_dir)
  # The disk now has less room than the last checkpoint took.
  monkeypatch.setattr(run_dir.shutil, "disk_usage",
                      lambda path: usage._replace(free=100_000))
  trainer.config = dataclasses.replace(config, max_steps=2)
  with pytest.raises(run_dir.ModelDirWriteError) as error:
    trainer.train()
  message = str(error.value)
  assert "\n" not in message and "not enough free space" in message
  assert config.model_dir in message
  names = os.listdir(config.model_dir)
  assert not [n for n in names if "_temp" in n or ".tmp" in n], names
  assert "train.lock" not in names
  with open(os.path.join(config.model_dir, "config.json")) as f:
    assert json.load(f)["max_steps"] == 2
  assert tf.train.latest_checkpoint(config.model_dir).endswith("ckpt-1")


def test_a_resume_with_other_model_flags_exits_2_and_changes_nothing(
    data_dir, tmp_path):
  from mgc_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = _small_config(tmp_path, data_dir, max_steps=1)
  trainer_lib.Trainer(config, methods.get("mgcnet")).train()
  files = {name: open(os.path.join(config.model_dir, name), "rb").read()
           for name in ("config.json", "model.json", "checkpoint")}
  result = subprocess.run(
      _train_command(config.model_dir, data_dir, "--max_steps=2",
                     "--backbone=mobilenet_v2"),
      capture_output=True, text=True, timeout=600, env=_env(), cwd=REPO)
  assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
  errors = _error_lines(result.stderr)
  assert len(errors) == 1, result.stderr[-3000:]
  assert ("networks.reconstructor.kwargs.backbone: 'resnet18' in the run, "
          "'mobilenet_v2' now") in errors[0]
  for name, content in files.items():
    assert open(os.path.join(config.model_dir, name), "rb").read() == content


def test_a_non_chief_worker_also_refuses_a_resume_of_another_model(
    data_dir, tmp_path):
  """Under MultiWorkerMirrored a non-chief worker saves into a scratch
  folder; it must still compare against the run in model_dir."""
  from mgc_tf.training import config as config_lib  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import run_dir  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = _small_config(tmp_path, data_dir, max_steps=1)
  trainer_lib.Trainer(config, methods.get("mgcnet")).train()
  other = dataclasses.replace(config, max_steps=2, backbone=config_lib.Backbone("mobilenet_v2"))
  worker = trainer_lib.Trainer(other, methods.get("mgcnet"))
  worker.is_chief = False
  worker.manager = tf.train.CheckpointManager(
      worker.checkpoint, str(tmp_path / "worker_scratch"), max_to_keep=1)
  with pytest.raises(run_dir.RunMismatchError, match="mobilenet_v2"):
    worker._check_same_model()  # pylint: disable=protected-access


@pytest.fixture
def small_tmpfs(tmp_path):
  """A 200 MiB tmpfs (one 64 px ResNet18 checkpoint with Adam is ~136 MB);
  skipped where mounting needs privileges this machine does not give."""
  mount_point = tmp_path / "tmpfs"
  mount_point.mkdir()
  result = subprocess.run(
      ["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(mount_point)],
      capture_output=True, text=True, check=False)
  if result.returncode:
    pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
  try:
    yield str(mount_point)
  finally:
    # Lazily: the trainer of the test may still hold its event file open.
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_save_that_hits_a_really_full_disk_fails_with_one_line(
    data_dir, small_tmpfs, monkeypatch):
  from mgc_tf.training import run_dir  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  model_dir = os.path.join(small_tmpfs, "run")
  config = _small_config(None, data_dir, model_dir=model_dir, max_steps=2,
                         checkpoint_every=1)
  # Without the free-space check, the second save runs into ENOSPC.
  monkeypatch.setattr(run_dir, "check_free_space", lambda *a, **k: None)
  trainer = trainer_lib.Trainer(config, methods.get("mgcnet"))
  with pytest.raises(run_dir.ModelDirWriteError) as error:
    trainer.train()
  message = str(error.value)
  assert message.startswith(f"cannot write {model_dir}/ckpt-2: No space "
                            "left on device. Free space"), message
  assert "\n" not in message
  names = os.listdir(model_dir)
  assert not [n for n in names if "_temp" in n or n.startswith("ckpt-2")], (
      names)
  with open(os.path.join(model_dir, "config.json")) as f:
    assert json.load(f)["max_steps"] == 2
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-1")
  tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))


def test_chaos_three_kills_leave_nothing_corrupt(data_dir, tmp_path):
  """scripts/chaos.py with N=3 (the N=20 run is in the issue's notes)."""
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "scripts", "chaos.py"),
       "--kills=3", f"--workdir={tmp_path}", f"--data_dir={data_dir}",
       "--seed=3", "--startup_kill_s=15"],
      capture_output=True, text=True, timeout=1500, env=_env(), cwd=REPO)
  summary = result.stdout.strip().splitlines()[-1]
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
  assert summary.startswith("chaos: kills 3, ") and summary.endswith(": OK")


_MIRRORED_NAN_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
from mgc_tf import methods
from mgc_tf.data import pipeline
from mgc_tf.training import config as config_lib
from mgc_tf.training import trainer as trainer_lib

model_dir, data_dir = sys.argv[1], sys.argv[2]
config = config_lib.TrainConfig(
    model_dir=model_dir, dataset="synthetic_multiview/tiny", data_dir=data_dir,
    eval_dataset="", build_data_if_missing=False, backbone="resnet18",
    image_size=64, batch_size=2, max_steps=2, augment=False, shuffle_buffer=1,
    checkpoint_every=1000, image_summary_every=0, strategy="mirrored",
    num_cpu_devices=2,
    method_config=methods.get("mgcnet").config_class()).validate()
trainer = trainer_lib.Trainer(config, methods.get("mgcnet"))
trainer.train()

def state():
  values = {}
  for network in trainer.networks.values():
    for v in network.variables:
      copies = trainer.strategy.experimental_local_results(
          getattr(v, "_value", v))
      for index, copy in enumerate(copies):
        values[f"{v.path}@{index}"] = np.array(copy.numpy())
  return values

before = state()
original = pipeline.training_dataset
def poisoned(*args, **kwargs):
  # The input pipeline's first batch (replica 0's half of step 3) only.
  def poison(index, batch):
    batch = dict(batch)
    batch["images"] = tf.where(index == 0, float("nan"), batch["images"])
    return batch
  return original(*args, **kwargs).enumerate().map(poison)
pipeline.training_dataset = poisoned
trainer.config = config_lib.dataclasses.replace(config, max_steps=3)
trainer.train()
after = state()
changed = [k for k in before if not np.array_equal(before[k], after[k])]
print(json.dumps({"copies": len(before), "changed": changed[:5],
                  "replicas": trainer.strategy.num_replicas_in_sync,
                  "skipped": int(trainer.skipped_steps.numpy()),
                  "rejected": int(getattr(trainer, "rejected_batches",
                                          tf.constant(-1)).numpy())}))
"""


def test_nan_pixels_on_one_replica_leave_every_replica_untouched(
    data_dir, tmp_path):
  output = _run([sys.executable, "-c", _MIRRORED_NAN_SCRIPT,
                 str(tmp_path / "run"), data_dir])
  result = json.loads(output.strip().splitlines()[-1])
  assert result["replicas"] == 2 and result["copies"] > 100, result
  assert result["changed"] == [], result
  assert result["skipped"] == 1 and result["rejected"] == 1, result
