r"""Kill -9 a small training run N times at random moments; check what is left.

  python scripts/chaos.py --kills=20 --workdir=/tmp/chaos

Each round starts `python -m mgc_tf.train` on synthetic_multiview/tiny (64 px,
ResNet18-style, batch 2, a checkpoint every --checkpoint_every steps) in the
same model_dir and kills it with SIGKILL at a random moment: during start-up,
between steps, or just after a checkpoint step's line (while that checkpoint
is being written). After every kill, with nothing running, it checks that
every checkpoint the `checkpoint` file lists loads and holds only finite
tensors, that config.json and model.json parse, and how many steps were
lost (the last step printed minus the latest checkpoint). A last run resumes
and finishes; then no partial file (`ckpt-N_temp*`, unrecorded `ckpt-N.*`,
`*.tmp*`) and no lock may remain. One line sums it up:

  chaos: kills 20, resumes 12/12, corrupt 0, orphans left by kills 5,
    half-swept 1, remaining 0, max steps lost 2 (checkpoint every 2),
    final ckpt-31, 612 s: OK

Exit status 0 when nothing is corrupt, no orphan or lock remains, every
restart that got past its restore resumed at the latest checkpoint, and
no kill lost more than one checkpoint interval; 1 otherwise. Each run's
output is kept in WORKDIR/logs/run-<i>.txt.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "synthetic_multiview/tiny"


def _train_command(model_dir, data_dir, checkpoint_every, max_steps):
  return [sys.executable, "-m", "mgc_tf.train", f"--model_dir={model_dir}",
          f"--data_dir={data_dir}", f"--dataset={TINY}", "--eval_dataset=",
          "--backbone=resnet18", "--image_size=64", "--batch_size=2",
          "--shuffle_buffer=4", "--log_every=1", "--summary_every=1",
          "--image_summary_every=0", "--eval_every=0",
          "--build_data_if_missing=false", "--keep_checkpoints=3",
          f"--checkpoint_every={checkpoint_every}",
          f"--max_steps={max_steps}"]


def _env():
  return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")


class Run:
  """A training subprocess whose stdout is read by a thread."""

  def __init__(self, command):
    self.process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_env(), cwd=REPO)
    self.lines = []
    self.last_step = None
    self.step_seen = threading.Condition()
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.process.stdout:
      match = re.match(r"step (\d+)/", line)
      with self.step_seen:
        self.lines.append(line)
        if match:
          self.last_step = int(match.group(1))
        self.step_seen.notify_all()
    with self.step_seen:
      self.step_seen.notify_all()

  def wait_for_step(self, predicate, timeout):
    """Waits until a printed step satisfies predicate; returns it or None."""
    deadline = time.time() + timeout
    with self.step_seen:
      while True:
        if self.last_step is not None and predicate(self.last_step):
          return self.last_step
        if self.process.poll() is not None or time.time() > deadline:
          return None
        self.step_seen.wait(timeout=1.0)

  def kill(self):
    if self.process.poll() is None:
      self.process.kill()
    self.process.wait()
    self._reader.join(timeout=30)

  def output(self):
    return "".join(self.lines)


def latest_step(model_dir):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = tf.train.latest_checkpoint(model_dir)
  return int(path.rsplit("-", 1)[1]) if path else None


def check_dir(model_dir):
  """(corrupt problems, orphan names, half-swept names) of a quiet model_dir.

  tf.train.CheckpointManager records a new checkpoint in the `checkpoint`
  file before it deletes the oldest one (and records again after), so a
  kill in between leaves an older entry whose files are partly gone; the
  next save deletes the rest. Those are counted as half-swept, not corrupt;
  the latest checkpoint and every complete one must load.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  problems = []
  for name in ("config.json", "model.json"):
    path = os.path.join(model_dir, name)
    if os.path.exists(path):
      try:
        with open(path) as f:
          json.load(f)
      except ValueError as error:
        problems.append(f"{name}: {error}")
  state = tf.train.get_checkpoint_state(model_dir)
  listed = list(state.all_model_checkpoint_paths) if state else []
  latest_prefix = tf.train.latest_checkpoint(model_dir)
  half_swept = []
  for prefix in listed:
    if not os.path.isabs(prefix):
      prefix = os.path.join(model_dir, prefix)
    complete = os.path.exists(prefix + ".index") and os.path.exists(
        prefix + ".data-00000-of-00001")
    if not complete and prefix != latest_prefix:
      half_swept.append(os.path.basename(prefix))
      continue
    try:
      reader = tf.train.load_checkpoint(prefix)
      for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if (isinstance(value, np.ndarray) and value.dtype.kind == "f"
            and not np.all(np.isfinite(value))):
          problems.append(f"{os.path.basename(prefix)}: {name} not finite")
    except Exception as error:  # pylint: disable=broad-except
      problems.append(f"{os.path.basename(prefix)}: {error!r}"[:200])
  latest = latest_step(model_dir)
  names = os.listdir(model_dir) if os.path.isdir(model_dir) else []
  orphans = []
  for name in names:
    match = re.match(r"^ckpt-(\d+)\.", name)
    if (re.match(r"^ckpt-\d+_temp", name) or ".tmp" in name
        or (match and (latest is None or int(match.group(1)) > latest))):
      orphans.append(name)
  return problems, orphans, half_swept


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--kills", type=int, default=20)
  parser.add_argument("--workdir", required=True,
                      help="model_dir and data go here (emptied first)")
  parser.add_argument("--data_dir", default=None,
                      help="TFDS data dir (default: WORKDIR/tfds)")
  parser.add_argument("--checkpoint_every", type=int, default=2)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--startup_kill_s", type=float, default=25.0,
                      help="kills during start-up land in [0, this] s")
  args = parser.parse_args(argv)
  sys.path.insert(0, REPO)
  from mgc_tf.data import prepare  # pylint: disable=g-import-not-at-top
  rng = random.Random(args.seed)
  model_dir = os.path.join(args.workdir, "run")
  data_dir = args.data_dir or os.path.join(args.workdir, "tfds")
  if os.path.exists(model_dir):
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(model_dir)
  prepare.ensure_synthetic(TINY, data_dir)
  every = args.checkpoint_every
  command = _train_command(model_dir, data_dir, every, 10 ** 6)
  started = time.time()
  kills = resumes = expected_resumes = orphans_left = 0
  corrupt, max_lost, failures, half_swept = [], 0, [], 0
  logs = os.path.join(args.workdir, "logs")
  os.makedirs(logs, exist_ok=True)
  for index in range(args.kills):
    before = latest_step(model_dir)
    run = Run(command)
    mode = rng.choice(["startup", "step", "save"])
    if mode == "startup":
      time.sleep(rng.uniform(0, args.startup_kill_s))
    else:
      first = run.wait_for_step(lambda s: True, timeout=600)
      if first is not None:
        target = first + rng.randint(0, 2 * every)
        if mode == "save":  # just after a checkpoint step: the save runs
          target += (-target) % every
        run.wait_for_step(lambda s, t=target: s >= t, timeout=600)
        time.sleep(rng.uniform(0, 0.3 if mode == "save" else 1.5))
    reached = run.last_step
    run.kill()
    kills += 1
    output = run.output()
    with open(os.path.join(logs, f"run-{index + 1}.txt"), "w") as f:
      f.write(output)
    resumed = re.search(r"^Resumed from .* at step (\d+)$", output, re.M)
    if before is not None and (resumed or reached is not None):
      # It got past the restore: it must have resumed at the latest step.
      expected_resumes += 1
      resumes += bool(resumed and int(resumed.group(1)) == before)
    if "Traceback" in output or re.search(r"^error:", output, re.M):
      failures.append(f"kill {index + 1}: the run failed: " +
                      output.strip().splitlines()[-1][:200])
    problems, orphans, swept = check_dir(model_dir)
    half_swept += len(swept)
    corrupt.extend(f"kill {index + 1}: {p}" for p in problems)
    orphans_left += len(orphans)
    latest = latest_step(model_dir)
    if reached is not None:
      lost = reached - (latest or 0)
      max_lost = max(max_lost, lost)
    print(f"kill {index + 1}/{args.kills} ({mode}): step reached {reached}, "
          f"latest checkpoint {latest}, orphans {orphans or 0}", flush=True)
  # A last run resumes and finishes; it must clean every orphan.
  final_steps = (latest_step(model_dir) or 0) + 1
  had_checkpoint = latest_step(model_dir) is not None
  result = subprocess.run(
      _train_command(model_dir, data_dir, every, final_steps),
      capture_output=True, text=True, env=_env(), cwd=REPO, check=False)
  if result.returncode:
    failures.append(f"final run exited {result.returncode}: "
                    + result.stderr.strip().splitlines()[-1][:200])
  if had_checkpoint:
    expected_resumes += 1
    resumes += "Resumed from" in result.stdout
  problems, remaining, swept = check_dir(model_dir)
  remaining.extend(swept)
  corrupt.extend(f"final: {p}" for p in problems)
  if os.path.exists(os.path.join(model_dir, "train.lock")):
    remaining.append("train.lock")
  ok = (not corrupt and not remaining and not failures
        and resumes == expected_resumes and max_lost <= every)
  for line in corrupt + failures + [f"remaining: {n}" for n in remaining]:
    print(line, flush=True)
  print(f"chaos: kills {kills}, resumes {resumes}/{expected_resumes}, "
        f"corrupt {len(corrupt)}, orphans left by kills {orphans_left}, "
        f"half-swept {half_swept}, "
        f"remaining {len(remaining)}, max steps lost {max_lost} (checkpoint "
        f"every {every}), final ckpt-{latest_step(model_dir)}, "
        f"{time.time() - started:.0f} s: {'OK' if ok else 'FAILED'}",
        flush=True)
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
