"""The ablation table and training curves of docs/results.md, from the runs.

  python scripts/ablation_report.py [--runs=runs/ablation]
      [--png=docs/images/ablation_curves.png] [--rows=baseline,full,...]

For each row (a run directory under --runs) it reads the metrics that
`python -m mgc_tf.evaluate --model_dir=<run> --dataset=synthetic_multiview/small`
wrote (eval_synthetic_multiview-small_test.json); a run without that file
falls back to its last periodic evaluation in TensorBoard (the same protocol
code), marked "(periodic)". Prints a Markdown table and writes the curves
(training landmark term, NME 60-90, vertex error, yaw error against the
step) as a PNG.
"""

import json
import os
import shutil

from absl import app
from absl import flags
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
from tensorboard.backend.event_processing import event_accumulator
import tensorflow as tf

from ablation_rows import ROWS  # beside this script

COLUMNS = (
    ("vertex_error_mm", "vertex mm (aligned)"),
    ("depth_error_mm", "depth mm"),
    ("yaw_error_deg", "yaw deg"),
    ("pitch_error_deg", "pitch deg"),
    ("roll_error_deg", "roll deg"),
    ("nme/0-30", "NME 0-30"),
    ("nme/30-60", "NME 30-60"),
    ("nme/60-90", "NME 60-90"),
    ("nme/mean", "NME mean"),
    ("epipolar_error_px", "epipolar px"),
)
EVAL_JSON = "eval_synthetic_multiview-small_test.json"

_RUNS = flags.DEFINE_string("runs", "runs/ablation", "Folder of the runs.")
_PNG = flags.DEFINE_string("png", "docs/images/ablation_curves.png",
                           "Where the curves go ('' for none).")
_ROWS = flags.DEFINE_list("rows", list(ROWS), "Rows, in table order.")
_KEEP = flags.DEFINE_string(
    "keep", "", "If set, copy each row's evaluation JSON and the progress and "
    "eval lines of its train.log into this folder (kept in the repository).")


def keep_record(run_dir: str, row: str, folder: str) -> None:
  """Copies a run's evaluation JSON and its console progress lines."""
  os.makedirs(folder, exist_ok=True)
  source = os.path.join(run_dir, EVAL_JSON)
  if os.path.exists(source):
    shutil.copyfile(source, os.path.join(folder, f"{row}_eval.json"))
  log = os.path.join(run_dir, "train.log")
  if os.path.exists(log):
    with open(log) as f:
      lines = [line for line in f
               if line.startswith(("Training ", "step ", "eval ", "Saved "))]
    with open(os.path.join(folder, f"{row}_train.log"), "w") as f:
      f.writelines(lines)


def scalars(run_dir: str):
  """{tag: (steps [T], values [T])} from the run's TensorBoard events."""
  path = os.path.join(run_dir, "train")
  accumulator = event_accumulator.EventAccumulator(
      path, size_guidance={event_accumulator.TENSORS: 0})
  accumulator.Reload()
  out = {}
  for tag in accumulator.Tags()["tensors"]:
    events = accumulator.Tensors(tag)
    out[tag] = (np.array([e.step for e in events]),
                np.array([float(tf.make_ndarray(e.tensor_proto))
                          for e in events]))
  return out


def final_metrics(run_dir: str, curves) -> tuple:
  """(metrics dict, source) for a run: the evaluate JSON, else periodic."""
  path = os.path.join(run_dir, EVAL_JSON)
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)["metrics"], "evaluate"
  metrics = {tag[len("eval/"):]: values[-1]
             for tag, (_, values) in curves.items() if tag.startswith("eval/")}
  return metrics, "periodic"


def markdown_table(rows) -> str:
  header = "| row | " + " | ".join(label for _, label in COLUMNS) + " |"
  lines = [header, "|---|" + "---:|" * len(COLUMNS)]
  for label, metrics, source in rows:
    cells = []
    for key, _ in COLUMNS:
      value = metrics.get(key)
      cells.append("-" if value is None else f"{value:.2f}")
    note = "" if source == "evaluate" else " (periodic)"
    lines.append(f"| {label}{note} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def smooth(values: np.ndarray, window: int = 10) -> np.ndarray:
  if len(values) < window:
    return values
  kernel = np.ones(window) / window
  return np.convolve(values, kernel, mode="valid")


def plot(curves_by_row, path: str) -> None:
  # The landmark term, not the total: totals of rows with different terms
  # are not comparable.
  panels = (("loss/landmark",
             "training landmark term, 224-px^2 (moving mean of 10 logs)", True),
            ("eval/nme/60-90", "NME 60-90 deg (%)", False),
            ("eval/vertex_error_mm", "vertex error after alignment (mm)", False),
            ("eval/yaw_error_deg", "yaw error (deg)", False))
  figure, axes = plt.subplots(2, 2, figsize=(11, 7.5))
  for axis, (tag, title, smoothed) in zip(axes.flat, panels):
    for row, curves in curves_by_row.items():
      if tag not in curves:
        continue
      steps, values = curves[tag]
      if smoothed:
        values = smooth(values)
        steps = steps[len(steps) - len(values):]
      axis.plot(steps, values, label=ROWS.get(row, row),
                marker=None if smoothed else "o")
    axis.set_title(title)
    axis.set_xlabel("step")
    axis.grid(alpha=0.3)
  axes.flat[0].legend(fontsize=8)
  figure.tight_layout()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  figure.savefig(path, dpi=90)
  print(f"wrote {path}")


def main(argv):
  del argv
  rows, curves_by_row = [], {}
  for row in _ROWS.value:
    run_dir = os.path.join(_RUNS.value, row)
    if not os.path.isdir(os.path.join(run_dir, "train")):
      print(f"skipping {row}: no run in {run_dir}")
      continue
    curves = scalars(run_dir)
    curves_by_row[row] = curves
    metrics, source = final_metrics(run_dir, curves)
    if _KEEP.value:
      keep_record(run_dir, row, _KEEP.value)
    rows.append((ROWS.get(row, row), metrics, source))
  if not rows:
    raise app.UsageError(f"No runs under {_RUNS.value}; train them first "
                         "(docs/results.md).")
  print(markdown_table(rows))
  if _PNG.value:
    plot(curves_by_row, _PNG.value)


if __name__ == "__main__":
  app.run(main)
