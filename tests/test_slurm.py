"""The Slurm launcher on a one-node Slurm cluster (launch/slurm/local_cluster.sh).

Fast: TF_CONFIG from SLURM_* variables (mgc_tf.training.slurm).
Slow: `launch/slurm_multi_worker.sbatch` as 2 tasks on the local cluster
trains a few steps on synthetic_multiview/tiny (64 px, ResNet18-style, batch
2), both workers end bit-identical, the chief alone writes checkpoints and
the export; a job sent SIGTERM mid-run leaves a checkpoint and, requeued,
resumes from it and finishes. Where the cluster cannot be started (not root,
slurm-wlm/munge not installed: `launch/slurm/local_cluster.sh install`, which
.ci/run calls where it can) the slow tests skip with the reason.
"""

import os
import re
import subprocess
import time

import numpy as np
import pytest

from mgc_tf.training import slurm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(REPO, "launch", "slurm", "local_cluster.sh")
SBATCH = os.path.join(REPO, "launch", "slurm_multi_worker.sbatch")
TINY = "synthetic_multiview/tiny"
COMMON = ["--dataset=" + TINY, "--eval_dataset=", "--backbone=resnet18",
          "--image_size=64", "--batch_size=2", "--shuffle_buffer=4",
          "--log_every=1", "--summary_every=1", "--image_summary_every=0",
          "--eval_every=0", "--build_data_if_missing=false"]


# ------------------------------------------------------------ fast tier

def test_tasks_per_node_expand_like_slurm():
  assert slurm.expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
  assert slurm.expand_tasks_per_node("4") == [4]
  with pytest.raises(ValueError):
    slurm.expand_tasks_per_node("2(3)")


def test_tf_config_from_slurm_variables():
  environ = {"SLURM_STEP_NODELIST": "n[1-2]", "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
             "SLURM_JOB_ID": "1251", "SLURM_PROCID": "3"}
  config = slurm.tf_config(environ, hosts=["n1", "n2"])
  assert config == {"cluster": {"worker": ["n1:12016", "n1:12017",
                                           "n2:12016", "n2:12017"]},
                    "task": {"type": "worker", "index": 3}}
  with pytest.raises(ValueError, match="SLURM_PROCID"):
    slurm.tf_config({k: v for k, v in environ.items() if k != "SLURM_PROCID"},
                    hosts=["n1", "n2"])


def test_two_jobs_on_one_node_get_different_ports():
  first = slurm.workers(["vm"], [2], job_id=41)
  second = slurm.workers(["vm"], [2], job_id=42)
  assert len(set(first) | set(second)) == 4
  ports = [int(w.split(":")[1]) for w in first + second]
  assert all(12000 <= p < 32000 for p in ports)


def test_a_fixed_port_needs_one_task_per_node():
  assert slurm.workers(["a", "b"], [1, 1], 7, fixed_port=5000) == [
      "a:5000", "b:5000"]
  with pytest.raises(ValueError, match="one task per node"):
    slurm.workers(["a"], [2], 7, fixed_port=5000)


# ------------------------------------------------------------ slow tier

@pytest.fixture(scope="module")
def cluster():
  """SLURM_CONF of a running one-node cluster; stops it afterwards if this
  fixture started it."""
  directory = os.environ.get("MGC_SLURM_DIR", "/tmp/mgc-slurm")
  conf = os.path.join(directory, "slurm.conf")
  pid_file = os.path.join(directory, "slurmctld.pid")
  was_running = os.path.exists(pid_file) and subprocess.run(
      ["kill", "-0", open(pid_file).read().strip()],
      capture_output=True, check=False).returncode == 0
  result = subprocess.run([CLUSTER, "start", f"--dir={directory}"],
                          capture_output=True, text=True, timeout=180,
                          check=False)
  if result.returncode:
    pytest.skip("no one-node Slurm cluster here: "
                + (result.stderr.strip() or result.stdout.strip()))
  yield conf
  if not was_running:
    subprocess.run([CLUSTER, "stop", f"--dir={directory}"], check=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  from mgc_tf.data import prepare  # pylint: disable=g-import-not-at-top
  directory = str(tmp_path_factory.mktemp("tfds"))
  prepare.ensure_synthetic(TINY, directory)
  return directory


def _env(conf, **extra):
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2",
             SLURM_CONF=conf)
  env.update(extra)
  return env


def _sbatch(conf, tmp_path, *args, **env):
  output = subprocess.run(
      ["sbatch", "--parsable", "--nodes=1", "--ntasks=2", "--overcommit",
       f"--output={tmp_path}/job-%j.log", SBATCH, *args],
      capture_output=True, text=True, check=True, timeout=60,
      env=_env(conf, **env), cwd=str(tmp_path)).stdout
  job = output.strip().split(";")[0]
  return job, os.path.join(str(tmp_path), f"job-{job}.log")


def _job(conf, job):
  text = subprocess.run(["scontrol", "show", "job", job], capture_output=True,
                        text=True, check=True, env=_env(conf)).stdout
  return dict(re.findall(r"(\w+)=(\S+)", text))


def _wait(conf, job, until, timeout=900):
  deadline = time.time() + timeout
  while time.time() < deadline:
    info = _job(conf, job)
    if until(info):
      return info
    time.sleep(1)
  subprocess.run(["scancel", job], env=_env(conf), check=False)
  raise AssertionError(f"job {job} did not get there in {timeout} s: {info}")


def _finished(info):
  return info["JobState"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                              "NODE_FAIL", "OUT_OF_MEMORY")


def _read(log):
  return open(log).read() if os.path.exists(log) else ""


def _all_variables(checkpoint_prefix):
  """Every saved tensor: the trainable weights (Keras 3 saves them under
  optimizer/_trainable_variables), the BN statistics (model/...), the Adam
  slots and the counters."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(checkpoint_prefix)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


@pytest.mark.slow
def test_two_tasks_train_identically_and_only_the_chief_writes(
    cluster, data_dir, tmp_path):
  model_dir, export_dir = tmp_path / "run", tmp_path / "export"
  job, log = _sbatch(cluster, tmp_path, f"--model_dir={model_dir}",
                     f"--data_dir={data_dir}", *COMMON, "--max_steps=3",
                     "--checkpoint_every=3", f"--export_dir={export_dir}",
                     TMPDIR=str(tmp_path))
  info = _wait(cluster, job, _finished)
  output = _read(log)
  assert info["JobState"] == "COMPLETED", output[-4000:]
  assert "2 task(s)" in output
  for task in "01":
    assert f"{task}: Training resnet18" in output
    assert f"2 replica(s), 2 worker(s)" in output
  assert "0: step 3/3" in output
  # The chief alone saves into model_dir and exports.
  assert re.findall(r"^(\d): Saved checkpoint", output, re.M) == ["0"]
  assert re.findall(r"^(\d): Exported", output, re.M) == ["0"], output[-3000:]
  assert os.path.exists(export_dir / "mgc" / "3" / "saved_model.pb")
  assert os.listdir(export_dir / "mgc") == ["3"]
  scratch = tmp_path / f"mgc-tf-job{job}" / "mgc_tf_workers" / "worker_1"
  # The other worker's scratch folder: its checkpoint (saving is collective)
  # and its lock guard, no summaries, config.json, model.json or export.
  assert all(name.startswith("ckpt-3.") or name in ("checkpoint", "train.lock.guard")
             for name in os.listdir(scratch)), os.listdir(scratch)
  chief = _all_variables(str(model_dir / "ckpt-3"))
  other = _all_variables(str(scratch / "ckpt-3"))
  assert chief.keys() == other.keys()
  assert sum(name.startswith("optimizer/_trainable_variables/")
             for name in chief) > 10  # the weights
  assert sum("moving_mean" in name or "moving_variance" in name
             for name in chief) > 10  # the BN statistics
  for name, value in chief.items():
    np.testing.assert_array_equal(value, other[name], err_msg=name)


@pytest.mark.slow
def test_term_mid_run_saves_and_the_requeued_job_resumes_and_finishes(
    cluster, data_dir, tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model_dir = tmp_path / "run"
  job, log = _sbatch(cluster, tmp_path, f"--model_dir={model_dir}",
                     f"--data_dir={data_dir}", *COMMON, "--max_steps=8",
                     "--checkpoint_every=100", TMPDIR=str(tmp_path))
  _wait(cluster, job, lambda info: "0: step 2/8" in _read(log)
        or _finished(info))
  subprocess.run(["scancel", "--signal=TERM", job], env=_env(cluster),
                 check=True)
  info = _wait(cluster, job, _finished)
  output = _read(log)
  assert info["JobState"] == "COMPLETED", output[-4000:]
  for task in "01":
    assert f"{task}: Received SIGTERM" in output, output[-4000:]
  latest = tf.train.latest_checkpoint(str(model_dir))
  assert latest is not None, output[-4000:]
  stopped = int(latest.rsplit("-", 1)[1])
  assert 2 <= stopped < 8
  # Both workers stopped at the same step: the saved one.
  assert f"0: step {stopped + 1}/8" not in output

  subprocess.run(["scontrol", "requeue", job], env=_env(cluster), check=True)
  info = _wait(cluster, job, lambda info: info["JobState"] == "COMPLETED"
               and info.get("Restarts") == "1")
  output = _read(log)
  assert "(restart 1)" in output
  assert f"0: Resumed from {latest} at step {stopped}" in output
  assert f"1: Resumed from {latest} at step {stopped}" in output
  assert "0: step 8/8" in output
  assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-8")


@pytest.mark.slow
def test_the_time_limit_warning_to_the_batch_shell_saves_and_requeues(
    cluster, data_dir, tmp_path):
  """`--signal=B:TERM@60` signals the batch shell only: its trap forwards
  TERM to the workers and requeues the job, which resumes and finishes.
  `scancel --batch --signal=TERM` sends what the time limit would."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model_dir = tmp_path / "run"
  job, log = _sbatch(cluster, tmp_path, f"--model_dir={model_dir}",
                     f"--data_dir={data_dir}", *COMMON, "--max_steps=8",
                     "--checkpoint_every=100", TMPDIR=str(tmp_path))
  _wait(cluster, job, lambda info: "0: step 2/8" in _read(log)
        or _finished(info))
  subprocess.run(["scancel", "--batch", "--signal=TERM", job],
                 env=_env(cluster), check=True)
  info = _wait(cluster, job, lambda info: info["JobState"] == "COMPLETED"
               and info.get("Restarts") == "1")
  output = _read(log)
  assert "batch shell: SIGTERM" in output, output[-4000:]
  assert "requeueing job" in output
  stopped = re.search(r"^0: Saved checkpoint .*ckpt-(\d+)$", output, re.M)
  assert stopped and 2 <= int(stopped.group(1)) < 8, output[-4000:]
  step = int(stopped.group(1))
  for task in "01":
    assert re.search(rf"^{task}: Resumed from .*ckpt-{step} at step {step}$",
                     output, re.M), output[-4000:]
  assert "0: step 8/8" in output
  assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-8")
