"""mgc_tf.training.run_dir: the lock, atomic small files, orphans, free
space and model-description comparison (no TensorFlow; fast)."""

import errno
import json
import os
import socket
import subprocess

import pytest

from mgc_tf.training import run_dir


def _dead_pid():
  process = subprocess.Popen(["true"])
  process.wait()
  return process.pid


def _write_lock(directory, pid, host, **extra):
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, run_dir.LOCK_NAME), "w") as f:
    json.dump({"pid": pid, "host": host, "started": "earlier", **extra}, f)


def test_a_held_lock_refuses_naming_pid_and_host(tmp_path):
  directory = str(tmp_path / "run")
  _write_lock(directory, os.getppid(), socket.gethostname())
  with pytest.raises(run_dir.RunLockedError) as error:
    run_dir.RunLock(directory).acquire()
  message = str(error.value)
  assert f"pid {os.getppid()} on host {socket.gethostname()}" in message
  assert "\n" not in message


def test_a_lock_from_another_host_is_never_guessed_dead(tmp_path):
  directory = str(tmp_path / "run")
  _write_lock(directory, _dead_pid(), "some-other-host")
  with pytest.raises(run_dir.RunLockedError, match="some-other-host"):
    run_dir.RunLock(directory).acquire()


def test_a_stale_lock_is_taken_over_with_a_message_and_released(tmp_path):
  directory = str(tmp_path / "run")
  dead = _dead_pid()
  _write_lock(directory, dead, socket.gethostname())
  messages = []
  lock = run_dir.RunLock(directory, log=messages.append)
  lock.acquire()
  assert len(messages) == 1 and f"pid {dead}" in messages[0]
  with open(lock.path) as f:
    assert json.load(f)["pid"] == os.getpid()
  lock.release()
  assert not os.path.exists(lock.path)


@pytest.mark.skipif(run_dir.process_start_ticks(os.getpid()) is None,
                    reason="needs /proc")
def test_a_pid_reused_by_another_process_does_not_hold_the_lock(tmp_path):
  """The holder died and its pid now belongs to a process that started
  later (here: our parent, with another start time recorded)."""
  directory = str(tmp_path / "run")
  reused = os.getppid()
  _write_lock(directory, reused, socket.gethostname(),
              pid_start_ticks=run_dir.process_start_ticks(reused) + 1)
  messages = []
  lock = run_dir.RunLock(directory, log=messages.append)
  lock.acquire()
  assert len(messages) == 1 and f"pid {reused}" in messages[0]
  with open(lock.path) as f:
    written = json.load(f)
  assert written["pid_start_ticks"] == run_dir.process_start_ticks(
      os.getpid())
  lock.release()
  # The same pid with its own start time is the running holder.
  _write_lock(directory, reused, socket.gethostname(),
              pid_start_ticks=run_dir.process_start_ticks(reused))
  with pytest.raises(run_dir.RunLockedError, match=f"pid {reused}"):
    run_dir.RunLock(directory).acquire()


def test_process_start_ticks_orders_processes_and_misses_the_dead():
  process = subprocess.Popen(["sleep", "5"])
  try:
    ticks = run_dir.process_start_ticks(process.pid)
    if ticks is None:
      pytest.skip("needs /proc")
    assert ticks >= run_dir.process_start_ticks(os.getpid())
  finally:
    process.kill()
    process.wait()
  assert run_dir.process_start_ticks(_dead_pid()) is None


def test_atomic_write_keeps_the_old_file_when_the_write_fails(
    tmp_path, monkeypatch):
  path = str(tmp_path / "config.json")
  run_dir.atomic_write(path, '{"a": 1}')

  def full(*unused):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(run_dir.os, "replace", full)
  with pytest.raises(run_dir.ModelDirWriteError) as error:
    run_dir.atomic_write(path, '{"a": 2}')
  assert "No space left on device" in str(error.value)
  assert str(tmp_path) in str(error.value) and "\n" not in str(error.value)
  with open(path) as f:
    assert json.load(f) == {"a": 1}
  assert os.listdir(tmp_path) == ["config.json"]


def test_clean_orphans_removes_partial_saves_only(tmp_path):
  names = ["ckpt-2.index", "ckpt-2.data-00000-of-00001", "checkpoint",
           "ckpt-4.index", "config.json", "config.json.tmp-12",
           "model.json"]
  for name in names:
    (tmp_path / name).write_text("x")
  (tmp_path / "ckpt-4_temp").mkdir()
  (tmp_path / "ckpt-4_temp" / "part-00000-of-00001.index").write_text("x")
  removed = run_dir.clean_orphans(str(tmp_path), latest_step=2)
  assert sorted(os.path.basename(p) for p in removed) == [
      "ckpt-4.index", "ckpt-4_temp", "config.json.tmp-12"]
  assert sorted(os.listdir(tmp_path)) == [
      "checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index",
      "config.json", "model.json"]


def test_check_free_space(tmp_path, monkeypatch):
  run_dir.check_free_space(str(tmp_path), 1000)
  usage = run_dir.shutil.disk_usage(str(tmp_path))
  monkeypatch.setattr(run_dir.shutil, "disk_usage",
                      lambda path: usage._replace(free=1000))
  with pytest.raises(run_dir.ModelDirWriteError, match="not enough free"):
    run_dir.check_free_space(str(tmp_path), 2 ** 20)


def test_compare_descriptions_lists_the_differing_fields():
  run = json.dumps({"method": "mgcnet", "image_size": 64,
                    "face_model": {"path": "/a", "name": "bfm",
                                   "fingerprint": "f1"},
                    "networks": {"reconstructor": {"kwargs": {
                        "backbone": "resnet18"}}},
                    "mgc_tf_version": "0.1"})
  same_elsewhere = run.replace('"/a"', '"/b"').replace('"0.1"', '"0.2"')
  assert not run_dir.compare_descriptions(run, same_elsewhere)
  other = run.replace("resnet18", "mobilenet_v2").replace("64", "96")
  assert run_dir.compare_descriptions(run, other) == [
      "image_size: 64 in the run, 96 now",
      "networks.reconstructor.kwargs.backbone: 'resnet18' in the run, "
      "'mobilenet_v2' now"]
