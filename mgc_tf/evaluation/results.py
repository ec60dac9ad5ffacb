"""What an evaluation produced, and how it is shown and stored.

`EvaluationResult` (metrics, counts, per-item details), the text table the
CLI prints, and the JSON it writes (and where).
"""

import dataclasses
import json
import os
import re
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class EvaluationResult:
  """What a protocol measured.

  Attributes:
    dataset: TFDS name (with config) of the evaluated set.
    split: the split.
    metrics: metric name -> value (docs/evaluation.md lists them).
    counts: what was evaluated, e.g. {"examples": 60, "images": 180}.
    details: per-item records (MICC: one per video), for the JSON.
  """
  dataset: str
  split: str
  metrics: Dict[str, float]
  counts: Dict[str, int]
  details: List[dict] = dataclasses.field(default_factory=list)

  def to_json(self, model: str = "") -> str:
    """The JSON that `python -m mgc_tf.evaluate` writes (NaN/inf -> null)."""
    def clean(value):
      return value if np.isfinite(value) else None
    return json.dumps({
        "dataset": self.dataset, "split": self.split, "model": model,
        "counts": self.counts,
        "metrics": {k: clean(v) for k, v in self.metrics.items()},
        "details": self.details,
    }, indent=2, sort_keys=False)


def format_table(result: EvaluationResult, model: str = "") -> str:
  """A two-column text table of the metrics, with a header line."""
  counts = ", ".join(f"{v} {k}" for k, v in result.counts.items()
                     if "/" not in k)
  lines = [f"{result.dataset} [{result.split}]: {counts}"]
  if model:
    lines.append(f"model: {model}")
  width = max([len("metric")] + [len(name) for name in result.metrics])
  lines.append(f"{'metric':<{width}}  value")
  lines.append(f"{'-' * width}  {'-' * 10}")
  for name, value in result.metrics.items():
    lines.append(f"{name:<{width}}  {value:.4f}")
  return "\n".join(lines)


def default_output_path(dataset: str, split: str,
                        model_dir: Optional[str] = None,
                        saved_model: Optional[str] = None) -> str:
  """Where the CLI writes its JSON when --output_json is not given.

  Inside the training run: <model_dir>/eval_<dataset>_<split>.json; for a
  SavedModel, next to its version directory (never inside it, which TF
  Serving loads): <saved_model>_eval_<dataset>_<split>.json. Characters
  other than letters, digits, ".", "_" and "-" become "-" (so
  "synthetic_multiview/small" -> "synthetic_multiview-small").
  """
  tag = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{dataset}_{split}").strip("-")
  if model_dir:
    return os.path.join(model_dir, f"eval_{tag}.json")
  if saved_model:
    return f"{saved_model.rstrip('/')}_eval_{tag}.json"
  raise ValueError("Pass model_dir or saved_model.")


def write_json(result: EvaluationResult, path: str, model: str = "") -> None:
  """Writes `result.to_json(model)` to `path` (parent folders created).

  Atomically: a temporary file beside it, renamed over `path`, so a reader
  (or a stop signal) never sees half a file.
  """
  folder = os.path.dirname(path)
  if folder:
    tf.io.gfile.makedirs(folder)
  temporary = f"{path}.tmp-{os.getpid()}"
  try:
    with tf.io.gfile.GFile(temporary, "w") as f:
      f.write(result.to_json(model) + "\n")
    tf.io.gfile.rename(temporary, path, overwrite=True)
  finally:
    if tf.io.gfile.exists(temporary):
      tf.io.gfile.remove(temporary)
