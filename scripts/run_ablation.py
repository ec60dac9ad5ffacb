"""Trains and evaluates the rows x seeds of an ablation, resumably.

  python scripts/run_ablation.py [--configs=configs/ablation_v2]
      [--runs=runs/ablation_v2] [--records=results/ablation_v2]
      [--plan=baseline:3,full:3,full_no_covisible:3,pixel:1,depth:1,epipolar:1,
              sir:3,depthnet:1,pgn:1,robust:1]
      [--dry_run]

For each row and seed (seeds 0 .. n-1 of the row's count), in order:
`python -m mgc_tf.train --flagfile=<configs>/<row>.flags --seed=S
--model_dir=<runs>/<row>/seed<S>` (resumes from the run's last checkpoint),
then `python -m mgc_tf.evaluate` on the test split of the row's eval
dataset (its own protocol, then `--protocol=verification`), and copies the
evaluation JSONs and the progress lines of the log to
<records>/<row>_seed<S>_eval.json, <row>_seed<S>_verification.json and
<row>_seed<S>_train.log. A (row, seed) whose record exists is skipped (a
missing verification record is made from the run's last checkpoint if that
is still on this machine), so the script can be started
again on a new machine (the records are kept in the repository; the
checkpoints are not). Same seed = same initialisation and data order in
every row (the configs set --deterministic). A method's row is one more
flagfile in the configs folder and one more entry in --plan.

Several runners may work through the same plan at once (one per free core):
each claims a (row, seed) before training it (`<run>/runner.claim`, made
atomically, holding its pid) and skips those another live runner holds; a
claim whose runner is gone is taken over (the run resumes from its
checkpoint).
"""

import os
import shutil
import subprocess
import sys
import time

from absl import app
from absl import flags

_CONFIGS = flags.DEFINE_string("configs", "configs/ablation_v2",
                               "Folder of <row>.flags files.")
_RUNS = flags.DEFINE_string("runs", "runs/ablation_v2",
                            "Folder of the training runs (checkpoints).")
_RECORDS = flags.DEFINE_string("records", "results/ablation_v2",
                               "Folder of the kept evaluation records.")
DEFAULT_PLAN = ("baseline:3", "full:3", "full_no_covisible:3", "pixel:1",
                "depth:1", "epipolar:1", "sir:3", "depthnet:1", "pgn:1",
                "robust:1")
_PLAN = flags.DEFINE_list(
    "plan", list(DEFAULT_PLAN),
    "row:seeds pairs, run in this order seed by seed (all rows' seed 0 "
    "first, so that a partial run still fills every row).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands only.")

_LOG_PREFIXES = ("Training ", "Method ", "step ", "eval ", "Saved ",
                 "Rejected ", "synthetic_multiview")


def parse_plan(plan):
  """["row:n", ...] -> [(row, n)]."""
  parsed = []
  for entry in plan:
    row, _, count = entry.partition(":")
    if not row or not count.isdigit() or int(count) < 1:
      raise app.UsageError(f"--plan entry {entry!r} is not row:seeds "
                           "(e.g. full:3)")
    parsed.append((row, int(count)))
  return parsed


def schedule(plan):
  """(row, seed) in run order: every row's seed 0, then seed 1, ..."""
  most = max(count for _, count in plan)
  return [(row, seed) for seed in range(most) for row, count in plan
          if seed < count]


def flag_value(flagfile: str, name: str) -> str:
  """The last value of --name in a flagfile and the flagfiles it includes."""
  value = None
  with open(flagfile) as f:
    for line in f:
      line = line.strip()
      if line.startswith("--flagfile="):
        included = flag_value(line.split("=", 1)[1], name)
        value = included if included is not None else value
      elif line.startswith(f"--{name}="):
        value = line.split("=", 1)[1]
  return value


def eval_json_name(dataset: str, protocol: str = "") -> str:
  """The JSON `mgc_tf.evaluate` writes for the test split of `dataset`."""
  infix = f"_{protocol}" if protocol else ""
  return f"eval_{dataset.replace('/', '-')}{infix}_test.json"


def run(command, log_path=None) -> None:
  print("+ " + " ".join(command), flush=True)
  if _DRY_RUN.value:
    return
  if log_path is None:
    subprocess.run(command, check=True)
    return
  with open(log_path, "a") as log:
    subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)


def keep_records(run_dir: str, eval_json: str, prefix: str) -> None:
  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  with open(os.path.join(run_dir, "train.log")) as f:
    lines = [line for line in f if line.startswith(_LOG_PREFIXES)]
  with open(prefix + "_train.log", "w") as f:
    f.writelines(lines)
  # The JSON last: its presence marks the (row, seed) as done.
  shutil.copyfile(os.path.join(run_dir, eval_json), prefix + "_eval.json")


def evaluate(run_dir: str, dataset: str, protocol: str = "") -> None:
  command = [sys.executable, "-m", "mgc_tf.evaluate", f"--model_dir={run_dir}",
             f"--dataset={dataset}"]
  if protocol:
    command.append(f"--protocol={protocol}")
  run(command)


def keep_verification(run_dir: str, dataset: str, prefix: str) -> None:
  """Face verification of the run (identity coefficients, aligned vertices,
  render embeddings; docs/evaluation.md), kept as <prefix>_verification.json."""
  evaluate(run_dir, dataset, "verification")
  if not _DRY_RUN.value:
    shutil.copyfile(
        os.path.join(run_dir, eval_json_name(dataset, "verification")),
        prefix + "_verification.json")


CLAIM_FILE = "runner.claim"


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def claim(run_dir: str) -> bool:
  """Claims `run_dir` for this process; False if another live runner has it.

  The claim file is created with O_EXCL; one left by a dead runner is
  replaced (at most one of several runners replacing it wins).
  """
  os.makedirs(run_dir, exist_ok=True)
  path = os.path.join(run_dir, CLAIM_FILE)
  for _ in range(2):
    try:
      descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
      try:
        with open(path) as f:
          holder = int(f.read().strip() or 0)
      except (OSError, ValueError):
        holder = 0
      if holder == os.getpid():
        return True
      if holder and _alive(holder):
        return False
      # A dead runner's claim: move it aside atomically, then try again.
      try:
        os.replace(path, f"{path}.stale.{os.getpid()}")
        os.remove(f"{path}.stale.{os.getpid()}")
      except FileNotFoundError:
        pass
      continue
    with os.fdopen(descriptor, "w") as f:
      f.write(str(os.getpid()))
    return True
  return False


def release(run_dir: str) -> None:
  """Removes this process's claim on `run_dir` (if it holds it)."""
  path = os.path.join(run_dir, CLAIM_FILE)
  try:
    with open(path) as f:
      if f.read().strip() == str(os.getpid()):
        os.remove(path)
  except FileNotFoundError:
    pass


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  plan = parse_plan(_PLAN.value)
  for row, _ in plan:
    flagfile = os.path.join(_CONFIGS.value, f"{row}.flags")
    if not os.path.isfile(flagfile):
      raise app.UsageError(f"no flagfile {flagfile} for row {row!r}")
  for row, seed in schedule(plan):
    prefix = os.path.join(_RECORDS.value, f"{row}_seed{seed}")
    flagfile = os.path.join(_CONFIGS.value, f"{row}.flags")
    dataset = flag_value(flagfile, "eval_dataset")
    run_dir = os.path.join(_RUNS.value, row, f"seed{seed}")
    if os.path.exists(prefix + "_eval.json"):
      print(f"{row} seed {seed}: done ({prefix}_eval.json)", flush=True)
      if (not os.path.exists(prefix + "_verification.json")
          and os.path.exists(os.path.join(run_dir, "checkpoint"))):
        keep_verification(run_dir, dataset, prefix)
      continue
    if not _DRY_RUN.value and not claim(run_dir):
      print(f"{row} seed {seed}: another runner has it; skipped", flush=True)
      continue
    try:
      started = time.time()
      run([sys.executable, "-m", "mgc_tf.train", f"--flagfile={flagfile}",
           f"--seed={seed}", f"--model_dir={run_dir}", "--export_dir="],
          os.path.join(run_dir, "train.log"))
      evaluate(run_dir, dataset)
      keep_verification(run_dir, dataset, prefix)
      if _DRY_RUN.value:
        continue
      keep_records(run_dir, eval_json_name(dataset), prefix)
      print(f"{row} seed {seed}: finished in "
            f"{(time.time() - started) / 60:.1f} min", flush=True)
    finally:
      if not _DRY_RUN.value:
        release(run_dir)


if __name__ == "__main__":
  app.run(main)
