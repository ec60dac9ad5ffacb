"""Mean +/- std tables and the verdict on the paper's claims, from the kept
records of a multi-seed ablation (scripts/run_ablation.py).

  python scripts/ablation_seeds_report.py [--records=results/ablation_v2]

Reads <records>/<row>_seed<S>_eval.json (and the run's
<row>_seed<S>_verification.json where kept) for every row it finds (the rows
of ROWS first, in that order, then any other row, e.g. a method's, by name)
and prints, in Markdown: the overall table, the clean / occluded table, the
face-verification table, and one line per claim (MGCNet, ECCV 2020; SIR): the difference of the row means, the 2
std it is judged against (std of the difference of two means over their
seeds; with one seed per row there is no std and the line says so), and
whether the difference exceeds it.
"""

import collections
import glob
import json
import math
import os
import re

from absl import app
from absl import flags

from ablation_rows import ROWS  # beside this script

_RECORDS = flags.DEFINE_string("records", "results/ablation_v2",
                               "Folder of <row>_seed<S>_eval.json records.")

OVERALL = (("vertex_error_mm", "vertex mm"), ("depth_error_mm", "depth mm"),
           ("yaw_error_deg", "yaw deg"), ("pitch_error_deg", "pitch deg"),
           ("roll_error_deg", "roll deg"),
           ("nme/0-30", "NME 0-30"), ("nme/30-60", "NME 30-60"),
           ("nme/60-90", "NME 60-90"), ("nme/mean", "NME mean"),
           ("epipolar_error_px", "epipolar px"))
SUBSETS = (("clean/vertex_error_mm", "clean vertex mm"),
           ("occluded/vertex_error_mm", "occl. vertex mm"),
           ("clean/depth_error_mm", "clean depth mm"),
           ("occluded/depth_error_mm", "occl. depth mm"),
           ("clean/nme/mean", "clean NME"), ("occluded/nme/mean", "occl. NME"),
           ("clean/nme/60-90", "clean NME 60-90"),
           ("occluded/nme/60-90", "occl. NME 60-90"))
VERIFICATION = (
    ("verification/coefficients_euclidean/accuracy", "id. coeff. acc."),
    ("verification/coefficients_euclidean/auc", "id. coeff. AUC"),
    ("verification/vertices/accuracy", "vertices acc."),
    ("verification/vertices/auc", "vertices AUC"),
    ("verification/render_embedding/accuracy", "render emb. acc."))
# (what the paper claims, metric, row expected better, row compared with);
# better is lower, except for metrics in HIGHER_IS_BETTER.
CLAIMS = (
    ("NME at 60-90 degrees improves with the multi-view losses",
     "nme/60-90", "full", "baseline"),
    ("the 3D error improves with the multi-view losses", "vertex_error_mm",
     "full", "baseline"),
    ("the covisible map helps under occlusion (occluded views' vertex error)",
     "occluded/vertex_error_mm", "full", "full_no_covisible"),
    ("the covisible map helps under occlusion (occluded views' NME)",
     "occluded/nme/mean", "full", "full_no_covisible"),
    ("SIR makes identity coefficients more recognisable (verification)",
     "verification/coefficients_euclidean/accuracy", "sir", "full"),
    ("SIR makes shapes more recognisable (verification of aligned vertices)",
     "verification/vertices/accuracy", "sir", "full"),
    ("SIR keeps the 3D error", "vertex_error_mm", "sir", "full"),
    ("pose from PGN landmarks beats regressed pose (yaw error)",
     "yaw_error_deg", "pgn", "full"),
    ("pose from PGN landmarks helps most at large yaw (NME 60-90)",
     "nme/60-90", "pgn", "full"),
    ("DepthNet's per-pixel depth beats the 3DMM render's (aligned depth "
     "error, same runs)", ("depthnet_depth_error_aligned_mm",
                           "depth_error_aligned_mm"), "depthnet", "depthnet"),
    ("depthnet's 3DMM network g against MGCNet (vertex error)",
     "vertex_error_mm", "depthnet", "full"),
    ("depthnet's 3DMM network g against MGCNet (NME)", "nme/mean",
     "depthnet", "full"),
    ("self-augmentation makes occluded views' 3D error lower",
     "occluded/vertex_error_mm", "robust", "full"),
    ("self-augmentation makes occluded views' NME lower",
     "occluded/nme/mean", "robust", "full"),
)
HIGHER_IS_BETTER = ("/accuracy", "/auc")
_RECORD = re.compile(r"^(?P<row>.+)_seed(?P<seed>\d+)_eval\.json$")


def read_records(folder: str):
  """{row: {seed: metrics}}."""
  records = collections.defaultdict(dict)
  for path in sorted(glob.glob(os.path.join(folder, "*_eval.json"))):
    match = _RECORD.match(os.path.basename(path))
    if match:
      with open(path) as f:
        metrics = dict(json.load(f)["metrics"])
      verification = path[:-len("_eval.json")] + "_verification.json"
      if os.path.exists(verification):
        with open(verification) as f:
          metrics.update(json.load(f)["metrics"])
      records[match["row"]][int(match["seed"])] = metrics
  return records


def mean_std(values):
  """(mean, sample std or None for one value) of finite values."""
  values = [v for v in values if v is not None and math.isfinite(v)]
  if not values:
    return None, None
  mean = sum(values) / len(values)
  if len(values) < 2:
    return mean, None
  variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
  return mean, math.sqrt(variance)


def cell(values, digits: int = 2) -> str:
  mean, std = mean_std(values)
  if mean is None:
    return "-"
  return (f"{mean:.{digits}f}" if std is None
          else f"{mean:.{digits}f} +/- {std:.{digits}f}")


def ordered_rows(records):
  known = [row for row in ROWS if row in records]
  return known + sorted(row for row in records if row not in ROWS)


def table(records, columns) -> str:
  lines = ["| row | seeds | " + " | ".join(l for _, l in columns) + " |",
           "|---|---:|" + "---:|" * len(columns)]
  for row in ordered_rows(records):
    seeds = records[row]
    cells = [cell([m.get(key) for m in seeds.values()],
                  3 if key.endswith(HIGHER_IS_BETTER) else 2)
             for key, _ in columns]
    lines.append(f"| {ROWS.get(row, row)} | {len(seeds)} | "
                 + " | ".join(cells) + " |")
  return "\n".join(lines)


def verdict(records, claim, metric, better, other) -> str:
  """One line: `better` against `other` on `metric` (or, for a pair of
  metrics (m_better, m_other), m_better of `better` against m_other of
  `other`: two outputs of the same runs)."""
  if better not in records or other not in records:
    return f"- {claim}: not run yet ({better} vs {other})."
  metric_a, metric_b = (metric if isinstance(metric, tuple)
                        else (metric, metric))
  a, sa = mean_std([m.get(metric_a) for m in records[better].values()])
  b, sb = mean_std([m.get(metric_b) for m in records[other].values()])
  if a is None or b is None:
    return f"- {claim}: {metric_a} or {metric_b} missing."
  higher = metric_a.endswith(HIGHER_IS_BETTER)
  gain = (a - b) if higher else (b - a)
  digits = 3 if higher else 2
  if metric_a == metric_b:
    text = (f"- {claim}: {metric_a} {b:.{digits}f} ({other}) -> "
            f"{a:.{digits}f} ({better})")
  else:
    text = (f"- {claim} ({better}): {metric_b} {b:.{digits}f} -> "
            f"{metric_a} {a:.{digits}f}")
  # "better"/"worse" in the claim's direction, so a sign cannot mislead.
  text += (f": {'better' if gain > 0 else 'worse'} by {abs(gain):.{digits}f}"
           f" ({100 * abs(gain) / b:.1f}%)")
  if sa is None or sb is None:
    return text + "; one seed in a row, so no std to judge it against."
  na, nb = len(records[better]), len(records[other])
  two_std = 2.0 * math.sqrt(sa ** 2 / na + sb ** 2 / nb)
  shown = "shows" if gain > two_std else (
      "the opposite shows" if gain < -two_std else "does not show")
  return text + (f"; 2 std of the difference = {two_std:.{digits}f}: "
                 f"{shown}.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  records = read_records(_RECORDS.value)
  if not records:
    raise app.UsageError(f"No <row>_seed<S>_eval.json records in "
                         f"{_RECORDS.value}; run scripts/run_ablation.py.")
  print(table(records, OVERALL))
  print()
  print(table(records, SUBSETS))
  print()
  if any("verification/pairs" in m for seeds in records.values()
         for m in seeds.values()):
    print(table(records, VERIFICATION))
    print()
  for claim in CLAIMS:
    print(verdict(records, *claim))


if __name__ == "__main__":
  app.run(main)
