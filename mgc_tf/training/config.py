"""The trainer's configuration: dataclasses are the one source of defaults.

Layers, in order: the dataclass defaults -> flagfiles -> the command line
-> `validate()` -> a frozen `TrainConfig` -> `model_dir/config.json`.
`define_flags(cls)` derives one absl flag per field (name, default, help
from the field's metadata, enum choices), and `from_flags(cls)` reads them
back, so no default is written twice. The method's own section (e.g.
`mgc_tf.methods.mgcnet.MGCNetConfig`) is a second dataclass held in
`TrainConfig.method_config`, with flags derived the same way.

Library code takes a `TrainConfig` as an explicit argument; only entry
points read flags.
"""

import dataclasses
import enum
import json
import typing
from typing import Any, Dict, Optional, Type

from mgc_tf.models import backbones
from mgc_tf.render import rasterizer as rasterizer_lib
from mgc_tf.training import distribution


class LrSchedule(str, enum.Enum):
  """After warm-up: constant, cosine to 0 at max_steps, or x0.1 steps."""
  CONSTANT = "constant"
  COSINE = "cosine"
  STEP = "step"


Strategy = enum.Enum("Strategy", {name.upper(): name
                                  for name in distribution.STRATEGIES},
                     type=str)
Strategy.__doc__ = "tf.distribute strategy (mgc_tf.training.distribution)."
Backbone = enum.Enum("Backbone", {name.upper(): name
                                  for name in backbones.BACKBONES}, type=str)
Backbone.__doc__ = "Encoder backbone (mgc_tf.models.backbones)."
Rasterizer = rasterizer_lib.Backend


def _field(default, help_text: str, **metadata):
  return dataclasses.field(default=default,
                           metadata={"help": help_text, **metadata})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run needs but the method's own section.

  `method` names the method (`mgc_tf.methods`), `method_config` holds its
  section (the method's `config_class`); the trainer never looks inside it.
  """
  model_dir: Optional[str] = _field(None, "Checkpoints, summaries, "
                                    "config.json and model.json.")
  # The entry point defines --method over the registered methods.
  method: str = _field("mgcnet", "Training method (docs/methods.md).",
                       flag=False)
  dataset: str = _field("synthetic_multiview/ict_small",
                        "Training sources: 'name[:weight],...' "
                        "(docs/data.md).")
  data_dir: Optional[str] = _field(None, "TFDS data dir (default "
                                   "~/tensorflow_datasets).")
  exact_mix: bool = _field(
      False, "With several --dataset sources: every batch holds each "
      "source's share of the weights exactly (rounded), instead of drawing "
      "each sample's source at random by weight.")
  build_data_if_missing: bool = _field(
      True, "Build synthetic_multiview configs that are missing.")
  eval_dataset: str = _field("synthetic_multiview/ict_small",
                             "Periodic evaluation set ('' turns it off).")
  eval_split: str = _field("test", "Split of --eval_dataset.")
  face_model: Optional[str] = _field(
      None, "Face-model file (.npz/.mat/.h5), ICT-FaceKit FaceXModel folder, "
      "or a packaged model's name: embedded-ict-light-v1 (ICT-FaceKit "
      "Light, docs/face_models.md) or embedded-synthetic-v1. Unset: the "
      "model of the run being resumed, else the one the synthetic training "
      "data is rendered from, else embedded-ict-light-v1.")
  backbone: Backbone = _field(Backbone.RESNET50, "Encoder backbone.")
  backbone_weights: str = _field("none", "imagenet | none | PATH.")
  image_size: int = _field(224, "Training crop side, pixels.")
  num_views: int = _field(3, "Views per sample (odd; middle = target).")
  batch_size: int = _field(5, "Global batch (samples of N views).")
  learning_rate: float = _field(1e-4, "Adam's peak learning rate.")
  lr_schedule: LrSchedule = _field(LrSchedule.CONSTANT,
                                   "After warm-up: constant, cosine or step.")
  warmup_steps: int = _field(0, "Linear warm-up steps.")
  clip_grad_norm: float = _field(0.0, "Global-norm clipping (0: off).")
  max_steps: int = _field(400_000, "Stop at this global step.")
  mixed_precision: bool = _field(
      False, "mixed_float16 backbone (GPU); losses stay float32.")
  strategy: Strategy = _field(Strategy.DEFAULT, "tf.distribute strategy.")
  rasterizer: Rasterizer = _field(
      Rasterizer.AUTO, "Visibility backend: kernel (C++ CPU op, built on "
      "first use), xla (core TF ops: XLA-compilable, GPU/TPU, no compiler "
      "needed) or auto (xla on GPU/TPU; on CPU the faster kernel, or xla "
      "when it cannot be built). Same pixels either way.")
  jit_compile: bool = _field(
      False, "Compile each replica's forward+loss+backward with XLA "
      "(needs --rasterizer=xla, or auto on a GPU/TPU).")
  num_cpu_devices: int = _field(
      1, "Split the CPU into this many logical devices (to run "
      "--strategy=mirrored replicas on a CPU).")
  augment: bool = _field(True, "Landmark-consistent augmentation.")
  seed: int = _field(0, "Seed of the init and the data order.")
  deterministic: bool = _field(False, "Deterministic input pipeline.")
  log_every: int = _field(10, "Console progress every N steps.")
  summary_every: int = _field(10, "Scalar summaries every N steps.")
  image_summary_every: int = _field(
      500, "Image summaries every N steps (0: off).")
  checkpoint_every: int = _field(1000, "Checkpoint every N steps.")
  keep_checkpoints: int = _field(5, "Checkpoints kept.")
  eval_every: int = _field(5000,
                           "Evaluate every N steps (0: only at the end).")
  eval_batches: int = _field(0, "Batches per evaluation (0: all).")
  max_consecutive_nonfinite: int = _field(
      5, "Stop after this many non-finite steps in a row.")
  shuffle_buffer: int = _field(256, "Shuffle buffer (samples).")
  export_dir: Optional[str] = _field(
      None, "After training, export a SavedModel for TF Serving to "
      "EXPORT_DIR/<export_model_name>/<step> (python -m mgc_tf.export does "
      "the same for any run).")
  export_model_name: str = _field("mgc", "Model name of --export_dir.")
  method_config: Any = _field(None, "The method's section.", flag=False)
  # name -> config of each add-on (mgc_tf.methods.addons); an add-on whose
  # config turns it off adds nothing.
  addon_configs: Any = _field(None, "The add-ons' sections.", flag=False)

  def validate(self) -> "TrainConfig":
    """Returns self, or raises ValueError naming every bad setting."""
    problems = []
    if not self.model_dir:
      problems.append("--model_dir is required")
    for name, kind in (("strategy", Strategy), ("lr_schedule", LrSchedule),
                       ("backbone", Backbone), ("rasterizer", Rasterizer)):
      value = getattr(self, name)
      if value not in {m.value for m in kind}:
        problems.append(f"--{name}={value!r} is not one of "
                        f"{[m.value for m in kind]}")
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
    if self.jit_compile and self.rasterizer == Rasterizer.KERNEL:
      problems.append("--jit_compile needs --rasterizer=xla or auto: XLA "
                      "cannot compile the C++ kernel op")
    if self.learning_rate <= 0:
      problems.append(f"--learning_rate must be > 0, got {self.learning_rate}")
    for name in ("warmup_steps", "clip_grad_norm", "image_summary_every",
                 "eval_every", "eval_batches"):
      if getattr(self, name) < 0:
        problems.append(f"--{name} must be >= 0, got {getattr(self, name)}")
    if self.method_config is not None and hasattr(self.method_config,
                                                  "validate"):
      try:
        self.method_config.validate()
      except ValueError as error:
        problems.append(str(error))
    for section in (self.addon_configs or {}).values():
      if hasattr(section, "validate"):
        try:
          section.validate()
        except ValueError as error:
          problems.append(str(error))
    if problems:
      raise ValueError("Invalid training configuration:\n  " +
                       "\n  ".join(problems))
    return self

  def to_json(self) -> str:
    return json.dumps(to_dict(self), indent=2, sort_keys=True)

  @classmethod
  def from_json(cls, text: str,
                method_config_class: Optional[type] = None,
                addon_config_classes: Optional[Dict[str, type]] = None
                ) -> "TrainConfig":
    """Reads `to_json` output; the method and add-on sections need their
    classes (without them they stay None)."""
    values = json.loads(text)
    section = values.pop("method_config", None)
    addon_sections = values.pop("addon_configs", None)
    config = from_dict(cls, values)
    if section is not None and method_config_class is not None:
      config = dataclasses.replace(
          config, method_config=from_dict(method_config_class, section))
    if addon_sections and addon_config_classes is not None:
      config = dataclasses.replace(config, addon_configs={
          name: from_dict(addon_config_classes[name], values)
          for name, values in addon_sections.items()})
    return config


# ------------------------------------------------------ dataclass <-> JSON


def to_dict(instance) -> Dict[str, Any]:
  """A config dataclass as JSON values (enums as their values)."""
  out = {}
  for f in dataclasses.fields(instance):
    value = getattr(instance, f.name)
    if dataclasses.is_dataclass(value):
      value = to_dict(value)
    elif isinstance(value, dict):
      value = {key: to_dict(item) if dataclasses.is_dataclass(item) else item
               for key, item in value.items()}
    elif isinstance(value, enum.Enum):
      value = value.value
    out[f.name] = value
  return out


def from_dict(cls: Type, values: Dict[str, Any]):
  """The `cls` instance of `to_dict` output (unknown keys are an error)."""
  hints = typing.get_type_hints(cls)
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = set(values) - names
  if unknown:
    raise ValueError(f"Unknown {cls.__name__} settings: {sorted(unknown)}")
  kwargs = {}
  for name, value in values.items():
    kind = _enum_type(hints.get(name))
    kwargs[name] = kind(value) if kind is not None and value is not None \
        else value
  return cls(**kwargs)


def _enum_type(hint) -> Optional[Type[enum.Enum]]:
  if isinstance(hint, type) and issubclass(hint, enum.Enum):
    return hint
  return None


# ----------------------------------------------------------------- flags


def flag_fields(cls: Type):
  """The fields of `cls` that are flags, with their resolved type hints."""
  hints = typing.get_type_hints(cls)
  for f in dataclasses.fields(cls):
    if f.metadata.get("flag", True):
      yield f, hints[f.name]


def define_flags(cls: Type, flag_values) -> None:
  """Defines one absl flag per field of `cls` (default, help, choices).

  A flag of the same name defined already (by another method's section) is
  shared when its kind and default agree, and is an error otherwise.
  """
  # pylint: disable=g-import-not-at-top
  from absl import flags
  for f, hint in flag_fields(cls):
    default = f.default
    help_text = f.metadata.get("help", f.name)
    base_hint = _optional_inner(hint)
    if f.name in flag_values:
      existing = flag_values[f.name].default
      want = default.value if isinstance(default, enum.Enum) else default
      if existing != want:
        raise ValueError(f"Flag --{f.name} of {cls.__name__} has default "
                         f"{want!r} but is defined already with "
                         f"{existing!r}; rename one of them.")
      continue
    kind = _enum_type(base_hint)
    if kind is not None:
      flags.DEFINE_enum(f.name, default.value if default is not None else None,
                        [m.value for m in kind], help_text,
                        flag_values=flag_values)
    elif base_hint is bool:
      flags.DEFINE_boolean(f.name, default, help_text, flag_values=flag_values)
    elif base_hint is int:
      flags.DEFINE_integer(f.name, default, help_text, flag_values=flag_values)
    elif base_hint is float:
      flags.DEFINE_float(f.name, default, help_text, flag_values=flag_values)
    elif base_hint is str:
      flags.DEFINE_string(f.name, default, help_text, flag_values=flag_values)
    else:
      raise TypeError(f"{cls.__name__}.{f.name}: no flag kind for {hint}")


def from_flags(cls: Type, flag_values, **overrides):
  """The `cls` instance the parsed flags describe (enums converted)."""
  values = {}
  for f, hint in flag_fields(cls):
    value = flag_values[f.name].value
    kind = _enum_type(_optional_inner(hint))
    values[f.name] = kind(value) if kind is not None and value is not None \
        else value
  values.update(overrides)
  return cls(**values)


def _optional_inner(hint):
  """T for Optional[T], else the hint itself."""
  args = typing.get_args(hint)
  if typing.get_origin(hint) is typing.Union and type(None) in args:
    inner = [a for a in args if a is not type(None)]
    if len(inner) == 1:
      return inner[0]
  return hint
