"""What a training run keeps safe in its model_dir.

- `RunLock`: one trainer per directory. A lock file (`train.lock`, JSON
  with pid, host and start time) is created under a short `filelock` guard
  and removed when the run ends; a second trainer refuses with one line
  naming the holder. A lock left by a dead process on this host is taken
  over with a message; one from another host is never guessed dead.
- `atomic_write`: small files (config.json) are written to a temporary
  file in the same directory and renamed over the old one, so a kill or a
  full disk leaves the old file or the new one, never half of one.
- `clean_orphans`: partial checkpoint files that a kill or a full disk left
  (`ckpt-N_temp*` directories, `ckpt-N.*` files newer than the latest
  checkpoint the `checkpoint` state file names, `*.tmp*` files of our small
  files), removed at start, after the lock is held.
- `check_free_space`: before a save, the free space against the size of
  the last checkpoint.
- `compare_descriptions`: the fields in which two model descriptions
  differ, for a resume with other model flags.

Every refusal is a `RunDirError` (a ValueError) whose message is one line
saying what is wrong and what to do; entry points print it and exit 2.
"""

import json
import os
import re
import shutil
import socket
import time
from typing import Any, Dict, List, Optional

import filelock

LOCK_NAME = "train.lock"
# Checkpoint temporaries of tf.train.CheckpointManager ("ckpt-12_temp",
# "ckpt-12_temp_<uuid>/part-...").
_TEMP_CHECKPOINT = re.compile(r"^ckpt-\d+_temp")
_CHECKPOINT_FILE = re.compile(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$")
# Margin over the last checkpoint's size that a save needs free.
FREE_SPACE_MARGIN = 1.1


class RunDirError(ValueError):
  """A model_dir problem; the message is one line saying what to do."""


class RunLockedError(RunDirError):
  """Another trainer holds the model_dir's lock."""


class RunMismatchError(RunDirError):
  """The model flags differ from the run already in model_dir."""


class ModelDirWriteError(RunDirError):
  """model_dir cannot be written (full, no permission, I/O error)."""


def is_local(path: str) -> bool:
  return "://" not in path


# ------------------------------------------------------------------ lock


def process_start_ticks(pid: int) -> Optional[int]:
  """When `pid` started, in clock ticks since boot (Linux /proc), or None
  where that cannot be read (another OS, no such process)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      stat = f.read()
  except OSError:
    return None
  # Field 22; the command name (field 2) may hold spaces, so count from
  # its closing parenthesis.
  fields = stat[stat.rfind(")") + 2:].split()
  try:
    return int(fields[19])
  except (IndexError, ValueError):
    return None


def _holder_running(pid: int, start_ticks: Optional[int]) -> bool:
  """Whether the lock's holder still runs: its pid is alive and, where the
  lock recorded it, started when the holder did (a pid reused by another
  process after a crash or a container restart is not the holder)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # someone else's live process
    pass
  if start_ticks is None:
    return True
  now = process_start_ticks(pid)
  return now is None or now == start_ticks


class RunLock:
  """One trainer per directory: `train.lock` with the holder's pid, host and
  process start time (so a reused pid does not keep a stale lock alive).

    lock = RunLock(model_dir)
    lock.acquire()     # RunLockedError naming the holder
    ...
    lock.release()

  Args:
    directory: the directory to lock (created if missing).
    log: callable(str) for the stale-lock message (default: print).
  """

  def __init__(self, directory: str, log=None):
    self.directory = directory
    self.path = os.path.join(directory, LOCK_NAME)
    self._log = log or (lambda text: print(text, flush=True))
    self._held = False

  def _read(self) -> Optional[Dict[str, Any]]:
    try:
      with open(self.path) as f:
        return json.load(f)
    except FileNotFoundError:
      return None
    except (OSError, ValueError):
      return {}  # unreadable: treated as stale below

  def acquire(self) -> None:
    """Takes the lock, or raises RunLockedError naming who holds it."""
    os.makedirs(self.directory, exist_ok=True)
    host = socket.gethostname()
    pid = os.getpid()
    # The guard (an flock, released by the kernel if we die) makes the
    # check-and-take below atomic between trainers that start together.
    with filelock.FileLock(self.path + ".guard", timeout=60):
      holder = self._read()
      if holder is not None:
        holder_pid = holder.get("pid")
        holder_host = holder.get("host")
        ours = holder_pid == pid and holder_host == host
        if not ours and holder_host != host and holder_host is not None:
          raise RunLockedError(
              f"{self.directory} is in use by pid {holder_pid} on host "
              f"{holder_host} (started {holder.get('started', '?')}); one "
              "trainer per --model_dir. If that trainer is gone, delete "
              f"{self.path}; else choose another --model_dir.")
        start_ticks = holder.get("pid_start_ticks")
        if (not ours and isinstance(holder_pid, int) and _holder_running(
            holder_pid,
            start_ticks if isinstance(start_ticks, int) else None)):
          raise RunLockedError(
              f"{self.directory} is in use by pid {holder_pid} on host "
              f"{holder_host} (started {holder.get('started', '?')}); one "
              "trainer per --model_dir: stop it or choose another "
              "--model_dir.")
        if not ours:
          self._log(f"Taking over a stale lock in {self.directory} (pid "
                    f"{holder_pid} on {holder_host or '?'} is not running).")
      atomic_write(self.path, json.dumps(
          {"pid": pid, "host": host,
           "pid_start_ticks": process_start_ticks(pid),
           "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
    self._held = True

  def release(self) -> None:
    """Removes the lock file if this process holds it."""
    if not self._held:
      return
    self._held = False
    holder = self._read()
    if holder and holder.get("pid") == os.getpid() and (
        holder.get("host") == socket.gethostname()):
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass

  def __enter__(self):
    self.acquire()
    return self

  def __exit__(self, *unused):
    self.release()


# ----------------------------------------------------------- small files


def atomic_write(path: str, text: str) -> None:
  """Writes `text` to `path` via a temporary file and a rename.

  Raises:
    ModelDirWriteError: the directory is full, read-only or failing; the
      old file (if any) is left as it was.
  """
  if not is_local(path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
      with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(text)
      tf.io.gfile.rename(temporary, path, overwrite=True)
    except tf.errors.OpError as error:
      raise write_error(path, error) from error
    return
  temporary = f"{path}.tmp-{os.getpid()}"
  try:
    with open(temporary, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temporary, path)
  except OSError as error:
    _remove_quietly(temporary)
    raise write_error(path, error) from error


def write_error(path: str, error: BaseException) -> ModelDirWriteError:
  """One line for a failed write under model_dir."""
  reason = getattr(error, "strerror", None) or getattr(error, "message",
                                                        None) or str(error)
  reason = " ".join(str(reason).split())
  for known in ("No space left on device", "Permission denied",
                "Read-only file system", "Disk quota exceeded"):
    if known.lower() in reason.lower():
      reason = known
      break
  else:  # TensorFlow's op decorations
    reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", reason)
  return ModelDirWriteError(
      f"cannot write {path}: {reason}. Free space on that disk, fix its "
      "permissions, or choose another --model_dir; earlier checkpoints are "
      "intact.")


def _remove_quietly(path: str) -> None:
  try:
    if os.path.isdir(path):
      shutil.rmtree(path, ignore_errors=True)
    else:
      os.remove(path)
  except OSError:
    pass


# ------------------------------------------------------------- orphans


def checkpoint_files(directory: str, step: int) -> List[str]:
  """The files of checkpoint `ckpt-<step>` in `directory`."""
  try:
    names = os.listdir(directory)
  except OSError:
    return []
  return [os.path.join(directory, name) for name in names
          if (m := _CHECKPOINT_FILE.match(name)) and int(m.group(1)) == step]


def clean_orphans(directory: str, latest_step: Optional[int]) -> List[str]:
  """Removes what interrupted saves and writes left; returns the paths.

  Args:
    directory: the run's (or this worker's) checkpoint directory; the
      caller holds its lock, so no save of another trainer is under way.
    latest_step: the step of the latest checkpoint the `checkpoint` state
      file names (None: none). Checkpoint files of later steps were never
      recorded (a kill between writing them and updating the state) and
      are removed; the resumed run writes those steps again.
  """
  if not is_local(directory) or not os.path.isdir(directory):
    return []
  removed = []
  for name in sorted(os.listdir(directory)):
    path = os.path.join(directory, name)
    match = _CHECKPOINT_FILE.match(name)
    orphan = (
        _TEMP_CHECKPOINT.match(name)
        or re.match(r"^(config|model)\.json\.tmp", name)
        or re.match(r"^checkpoint\.tmp", name)
        or (match and (latest_step is None
                       or int(match.group(1)) > latest_step)))
    if orphan:
      _remove_quietly(path)
      removed.append(path)
  return removed


def temporaries(directory: str) -> List[str]:
  """Checkpoint temporaries now in `directory` (after a failed save)."""
  try:
    return [os.path.join(directory, n) for n in os.listdir(directory)
            if _TEMP_CHECKPOINT.match(n)]
  except OSError:
    return []


# ---------------------------------------------------------- free space


def directory_size(paths: List[str]) -> int:
  total = 0
  for path in paths:
    try:
      total += os.path.getsize(path)
    except OSError:
      pass
  return total


def check_free_space(directory: str, needed_bytes: int,
                     what: str = "a checkpoint") -> None:
  """Raises ModelDirWriteError if `directory` has < needed * margin free."""
  if not is_local(directory) or needed_bytes <= 0:
    return
  free = shutil.disk_usage(directory).free
  needed = int(needed_bytes * FREE_SPACE_MARGIN)
  if free < needed:
    raise ModelDirWriteError(
        f"not enough free space in {directory} to save {what}: it needs "
        f"about {needed / 2**20:.1f} MiB (the size of the last checkpoint "
        f"plus {int(round((FREE_SPACE_MARGIN - 1) * 100))}%), "
        f"{free / 2**20:.1f} MiB are free. Free space or choose another "
        "--model_dir; earlier checkpoints are intact.")


# ------------------------------------------------------- descriptions


def _flatten(value, prefix: str = "") -> Dict[str, Any]:
  if isinstance(value, dict):
    flat = {}
    for key, inner in value.items():
      flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else key))
    return flat
  return {prefix: value}


# Fields of model.json that do not make a model different.
IGNORED_FIELDS = ("mgc_tf_version", "face_model.path")


def compare_descriptions(run_json: str, new_json: str) -> List[str]:
  """'field: X in the run, Y now' for each field of model.json that differs.

  Both arguments are `ModelDescription.to_json()` texts. The face model is
  compared by name and fingerprint, not by where its file lies.
  """
  run = _flatten(json.loads(run_json))
  new = _flatten(json.loads(new_json))
  differences = []
  for key in sorted(set(run) | set(new)):
    if key in IGNORED_FIELDS:
      continue
    if run.get(key) != new.get(key):
      differences.append(f"{key}: {run.get(key)!r} in the run, "
                         f"{new.get(key)!r} now")
  return differences
