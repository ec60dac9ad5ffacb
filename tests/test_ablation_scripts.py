"""scripts/run_ablation.py (plan, order, flag lookup, resumability) and
scripts/ablation_seeds_report.py (mean +/- std, the verdict against 2 std)."""

import importlib.util
import json
import math
import os
import subprocess
import sys

# app (and the logging it imports) defines absl's own flags: import it
# before the scripts, so that only the scripts' flags are taken away below.
from absl import app  # pylint: disable=unused-import
from absl import flags
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The scripts import their neighbours, as they do when run from scripts/.
sys.path.insert(0, os.path.join(REPO, "scripts"))


def _script(name):
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(REPO, "scripts", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  defined_before = set(flags.FLAGS)
  spec.loader.exec_module(module)
  # Both scripts define --records: take away the flags the script defined.
  for flag in set(flags.FLAGS) - defined_before:
    delattr(flags.FLAGS, flag)
  return module


run_ablation = _script("run_ablation")
report = _script("ablation_seeds_report")


def test_schedule_runs_every_rows_seed_0_first():
  plan = run_ablation.parse_plan(["baseline:3", "pixel:1", "full:2"])
  assert run_ablation.schedule(plan) == [
      ("baseline", 0), ("pixel", 0), ("full", 0), ("baseline", 1),
      ("full", 1), ("baseline", 2)]


@pytest.mark.parametrize("entry", ["full", "full:0", ":2", "full:x"])
def test_bad_plan_entries_are_refused(entry):
  with pytest.raises(run_ablation.app.UsageError, match="row:seeds"):
    run_ablation.parse_plan([entry])


def test_flag_value_follows_included_flagfiles(tmp_path):
  (tmp_path / "common.flags").write_text(
      "--eval_dataset=synthetic_multiview/v2_small\n--seed=0\n")
  (tmp_path / "row.flags").write_text(
      f"# a row\n--flagfile={tmp_path / 'common.flags'}\n--seed=4\n")
  row = str(tmp_path / "row.flags")
  assert run_ablation.flag_value(row, "eval_dataset") == (
      "synthetic_multiview/v2_small")
  assert run_ablation.flag_value(row, "seed") == "4"
  assert run_ablation.flag_value(row, "max_steps") is None
  assert run_ablation.eval_json_name("synthetic_multiview/v2_small") == (
      "eval_synthetic_multiview-v2_small_test.json")


def test_every_v2_row_config_exists_and_evaluates_on_v2():
  plan = run_ablation.parse_plan(run_ablation.DEFAULT_PLAN)
  for row, _ in plan:
    path = os.path.join(REPO, "configs", "ablation_v2", f"{row}.flags")
    assert os.path.isfile(path), path
    cwd = os.getcwd()
    os.chdir(REPO)  # the flagfiles name each other from the repo root
    try:
      assert run_ablation.flag_value(path, "eval_dataset") == (
          "synthetic_multiview/v2_small")
    finally:
      os.chdir(cwd)


def test_done_seeds_are_skipped(tmp_path):
  records = tmp_path / "records"
  records.mkdir()
  (records / "baseline_seed0_eval.json").write_text("{}")
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "scripts", "run_ablation.py"),
       f"--records={records}", f"--runs={tmp_path / 'runs'}",
       "--plan=baseline:2", "--dry_run"],
      capture_output=True, text=True, cwd=REPO, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "baseline seed 0: done" in result.stdout
  assert "--seed=1" in result.stdout and "--seed=0" not in result.stdout


def _write(folder, row, seed, kind="eval", **metrics):
  with open(os.path.join(folder, f"{row}_seed{seed}_{kind}.json"), "w") as f:
    json.dump({"metrics": metrics}, f)


def test_report_means_stds_and_verdicts(tmp_path):
  folder = str(tmp_path)
  for seed, value in enumerate([5.0, 5.2, 5.4]):
    _write(folder, "baseline", seed, vertex_error_mm=value)
  for seed, value in enumerate([4.0, 4.1, 4.2]):
    _write(folder, "full", seed, vertex_error_mm=value)
  _write(folder, "pixel", 0, vertex_error_mm=4.5)
  _write(folder, "my_method", 0, vertex_error_mm=3.9)
  records = report.read_records(folder)
  assert sorted(records["baseline"]) == [0, 1, 2]
  text = report.table(records, report.OVERALL)
  assert "| 2D losses only (baseline) | 3 | 5.20 +/- 0.20 |" in text
  assert "| + pixel consistency | 1 | 4.50 |" in text
  assert text.splitlines()[-1].startswith("| my_method | 1 | 3.90 |")
  line = report.verdict(records, "3D", "vertex_error_mm", "full", "baseline")
  two_std = 2 * math.sqrt(0.2 ** 2 / 3 + 0.1 ** 2 / 3)
  assert f"2 std of the difference = {two_std:.2f}: shows." in line
  assert ": better by 1.10 (" in line
  line = report.verdict(records, "x", "vertex_error_mm", "pixel", "baseline")
  assert line.endswith("one seed in a row, so no std to judge it against.")
  assert "not run yet" in report.verdict(records, "y", "vertex_error_mm",
                                         "full", "full_no_covisible")


def test_report_compares_two_outputs_of_the_same_runs(tmp_path):
  folder = str(tmp_path)
  for seed, (net, render) in enumerate([(9.0, 10.0), (9.2, 10.4)]):
    _write(folder, "depthnet", seed, depthnet_depth_error_aligned_mm=net,
           depth_error_aligned_mm=render)
  records = report.read_records(folder)
  line = report.verdict(records, "DepthNet", (
      "depthnet_depth_error_aligned_mm", "depth_error_aligned_mm"),
                        "depthnet", "depthnet")
  assert ("(depthnet): depth_error_aligned_mm 10.20 -> "
          "depthnet_depth_error_aligned_mm 9.10: better by 1.10 (10.8%)") in line
  assert ": shows." in line


def test_report_reads_verification_records_and_higher_is_better(tmp_path):
  folder = str(tmp_path)
  accuracy = "verification/vertices/accuracy"
  for seed, (full, sir) in enumerate([(0.60, 0.70), (0.62, 0.71),
                                      (0.58, 0.72)]):
    _write(folder, "full", seed, vertex_error_mm=5.0)
    _write(folder, "full", seed, "verification", **{
        accuracy: full, "verification/pairs": 360})
    _write(folder, "sir", seed, vertex_error_mm=5.1)
    _write(folder, "sir", seed, "verification", **{accuracy: sir})
  records = report.read_records(folder)
  assert records["sir"][1][accuracy] == 0.71
  assert ("| full MGCNet + SIR (--sir_weight) | 3 | - | - | 0.710 +/- 0.010 |"
          in report.table(records, report.VERIFICATION))
  line = report.verdict(records, "SIR", accuracy, "sir", "full")
  assert "0.600 (full) -> 0.710 (sir): better by 0.110 (18.3%)" in line
  assert line.endswith(": shows.")
  # A drop in accuracy is the opposite of the claim.
  line = report.verdict(records, "x", accuracy, "full", "sir")
  assert ": worse by 0.110 (" in line and "the opposite shows" in line


def test_runner_also_keeps_face_verification(tmp_path):
  records = tmp_path / "records"
  records.mkdir()
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "scripts", "run_ablation.py"),
       f"--records={records}", f"--runs={tmp_path / 'runs'}",
       "--plan=baseline:1", "--dry_run"],
      capture_output=True, text=True, cwd=REPO, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  evaluations = [line for line in result.stdout.splitlines()
                 if "mgc_tf.evaluate" in line]
  assert len(evaluations) == 2
  assert "--protocol=verification" in evaluations[1]
  assert run_ablation.eval_json_name("synthetic_multiview/v2_small",
                                     "verification") == (
      "eval_synthetic_multiview-v2_small_verification_test.json")


def test_runners_claim_runs_and_take_over_a_dead_runners(tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  run_dir = str(tmp_path / "full" / "seed1")
  assert run_ablation.claim(run_dir)
  assert run_ablation.claim(run_dir)  # its own claim
  path = os.path.join(run_dir, run_ablation.CLAIM_FILE)
  # A live other runner's claim is respected.
  other = subprocess.Popen(["sleep", "30"])
  try:
    with open(path, "w") as f:
      f.write(str(other.pid))
    assert not run_ablation.claim(run_dir)
    run_ablation.release(run_dir)  # not ours: left alone
    assert os.path.exists(path)
  finally:
    other.kill()
    other.wait()
  # Once that runner is gone, its claim is taken over.
  assert run_ablation.claim(run_dir)
  with open(path) as f:
    assert f.read() == str(os.getpid())
  run_ablation.release(run_dir)
  assert not os.path.exists(path)
