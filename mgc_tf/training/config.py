"""The trainer's configuration: one dataclass, validated, saved as JSON.

Entry points fill it from flags (`mgc_tf/train.py`); library code takes it
as an explicit argument.
"""

import dataclasses
import json
from typing import Optional

from mgc_tf.losses.mgc_loss import MGCLossWeights
from mgc_tf.training import distribution

LR_SCHEDULES = ("constant", "cosine", "step")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run needs.

  Attributes:
    model_dir: checkpoints, summaries and the resolved config go here.
    dataset: training sources, `mgc_tf.data.pipeline.parse_sources` syntax.
    data_dir: TFDS data dir (None: TFDS' default).
    build_data_if_missing: build `synthetic_multiview` configs that are not
      prepared (the embedded default needs no download).
    eval_dataset: TFDS name whose `eval_split` the periodic evaluation uses
      ("" turns it off).
    eval_split: split of eval_dataset.
    face_model: face-model file; None uses the embedded synthetic model.
    identity_model: face-recognition network (.keras / SavedModel) for the
      identity loss; None turns the term off.
    backbone, backbone_weights, image_size: the reconstructor.
    num_views: N views per sample (the middle one is the target).
    batch_size: global batch (samples, each of N views) over all replicas.
    learning_rate: Adam's peak learning rate (paper: 1e-4).
    lr_schedule: "constant", "cosine" (to 0 at max_steps) or "step" (x0.1 at
      60% and 85% of max_steps); warmup_steps of linear warm-up first.
    clip_grad_norm: clip the global gradient norm (0: off).
    max_steps: the run stops at this global step.
    mixed_precision: mixed_float16 for the backbone (GPU); the head,
      rendering and losses stay float32.
    strategy, num_cpu_devices: see `mgc_tf.training.distribution`.
    weights: loss weights (`MGCLossWeights`; defaults are the paper's).
    use_covisible_map, depth_reference: see `MGCLoss`.
    augment: landmark-consistent augmentation on/off.
    seed: seed of the model init and the data order.
    deterministic: deterministic input pipeline (tests, debugging).
    log_every: console progress line every this many steps.
    summary_every: scalar summaries every this many steps.
    image_summary_every: image summaries every this many steps (0: off).
    checkpoint_every: checkpoint every this many steps (and at the end).
    keep_checkpoints: checkpoints kept in model_dir.
    eval_every: periodic evaluation every this many steps (0: only at end).
    eval_batches: batches per evaluation (0: the whole split).
    max_consecutive_nonfinite: stop after this many non-finite steps in a
      row (the last good checkpoint stays).
    shuffle_buffer: input pipeline shuffle buffer (encoded samples).
  """
  model_dir: str
  dataset: str = "synthetic_multiview/small"
  data_dir: Optional[str] = None
  build_data_if_missing: bool = True
  eval_dataset: str = "synthetic_multiview/small"
  eval_split: str = "test"
  face_model: Optional[str] = None
  identity_model: Optional[str] = None
  backbone: str = "resnet50"
  backbone_weights: str = "none"
  image_size: int = 224
  num_views: int = 3
  batch_size: int = 5
  learning_rate: float = 1e-4
  lr_schedule: str = "constant"
  warmup_steps: int = 0
  clip_grad_norm: float = 0.0
  max_steps: int = 400_000
  mixed_precision: bool = False
  strategy: str = "default"
  num_cpu_devices: int = 1
  weights: MGCLossWeights = MGCLossWeights()
  use_covisible_map: bool = True
  depth_reference: str = "warped"
  augment: bool = True
  seed: int = 0
  deterministic: bool = False
  log_every: int = 10
  summary_every: int = 10
  image_summary_every: int = 500
  checkpoint_every: int = 1000
  keep_checkpoints: int = 5
  eval_every: int = 5000
  eval_batches: int = 0
  max_consecutive_nonfinite: int = 5
  shuffle_buffer: int = 256

  def validate(self) -> "TrainConfig":
    """Returns self, or raises ValueError naming the bad setting."""
    problems = []
    if not self.model_dir:
      problems.append("--model_dir is required")
    if self.strategy not in distribution.STRATEGIES:
      problems.append(f"--strategy={self.strategy!r} is not one of "
                      f"{distribution.STRATEGIES}")
    if self.lr_schedule not in LR_SCHEDULES:
      problems.append(f"--lr_schedule={self.lr_schedule!r} is not one of "
                      f"{LR_SCHEDULES}")
    for name in ("batch_size", "max_steps", "image_size", "log_every",
                 "summary_every", "checkpoint_every", "keep_checkpoints",
                 "max_consecutive_nonfinite", "num_cpu_devices"):
      if getattr(self, name) < 1:
        problems.append(f"--{name} must be >= 1, got {getattr(self, name)}")
    if self.num_views < 2:
      problems.append(f"--num_views must be >= 2 (target + sources), got "
                      f"{self.num_views}")
    if self.num_views % 2 == 0:
      problems.append(f"--num_views must be odd so the target is the middle "
                      f"view, got {self.num_views}")
    if self.learning_rate <= 0:
      problems.append(f"--learning_rate must be > 0, got {self.learning_rate}")
    for name in ("warmup_steps", "clip_grad_norm", "image_summary_every",
                 "eval_every", "eval_batches"):
      if getattr(self, name) < 0:
        problems.append(f"--{name} must be >= 0, got {getattr(self, name)}")
    if self.depth_reference not in ("warped", "target"):
      problems.append(f"--depth_reference must be 'warped' or 'target', got "
                      f"{self.depth_reference!r}")
    if problems:
      raise ValueError("Invalid training configuration:\n  " +
                       "\n  ".join(problems))
    return self

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> "TrainConfig":
    values = json.loads(text)
    values["weights"] = MGCLossWeights(**values.get("weights", {}))
    return cls(**values)
