r"""Trains a reconstructor with one of the methods (default: MGCNet).

  python -m mgc_tf.train --flagfile=configs/mgc.flags --model_dir=runs/mgc
  python -m mgc_tf.train --flagfile=configs/quickstart.flags

Parse, resolve, log, run: the flags are derived from the config dataclasses
(`TrainConfig` and each method's section), resolved into a validated
`TrainConfig`, and handed with the method to `Trainer`; see
docs/training.md and docs/methods.md. The original
MGCNet flag names are accepted (`--MULTIVIEW_weight`, `--photom_weight`,
`--gpmm_pixel_loss_weight`, `--seq_length`, `--checkpoint_dir`, ...), so a
command line from the original README runs; original flags that have no
meaning here are accepted, reported and ignored.
"""

from mgc_tf import _signals  # pylint: disable=g-bad-import-order
# A stop signal before training starts (while TensorFlow loads, the data is
# built, the model is made) exits 0 with one line; once training runs, the
# trainer's own handler saves a checkpoint first.
_STOPPED_NOTE = ("the checkpoints in --model_dir are kept; run the same "
                 "command again to resume")
_signals.exit_cleanly_on_stop("mgc_tf.train", _STOPPED_NOTE)
from mgc_tf import _quiet  # pylint: disable=g-bad-import-order,g-import-not-at-top,wrong-import-position
_quiet.quiet_start()  # before anything imports TensorFlow

import sys  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app
from absl import flags

from mgc_tf import methods
from mgc_tf.training import config as config_lib

FLAGS = flags.FLAGS

# Every flag comes from a config dataclass: the run's TrainConfig and the
# section of every registered method (mgc_tf.methods); their defaults live
# there and nowhere else.
config_lib.define_flags(config_lib.TrainConfig, FLAGS)
flags.DEFINE_enum("method", config_lib.TrainConfig.method, methods.names(),
                  "Training method (docs/methods.md).")
for _name in methods.names():
  config_lib.define_flags(methods.get(_name).config_class, FLAGS)
# Add-ons (terms any method can add, e.g. --sir_weight): their sections'
# flags exist for every method.
for _addon in methods.addon_classes().values():
  config_lib.define_flags(_addon.config_class, FLAGS)

# The original MGCNet (TF 1.13) flag names.
ORIGINAL_ALIASES = {
    "MULTIVIEW_weight": "multiview_weight",
    "photom_weight": "pixel_weight",
    "gpmm_lm_loss_weight": "landmark_weight",
    "lm_detail_weight": "landmark_nose_mouth_weight",
    "gpmm_pixel_loss_weight": "render_weight",
    "gpmm_id_loss_weight": "identity_weight",
    "gpmm_regular_shape_loss_weight": "regularization_weight",
    "gpmm_regular_color_loss_weight": "albedo_regularization_weight",
    "seq_length": "num_views",
    "checkpoint_dir": "model_dir",
    "save_freq": "checkpoint_every",
    "summary_freq": "summary_every",
}
for _original, _ours in ORIGINAL_ALIASES.items():
  flags.DEFINE_alias(_original, _ours)
# (--ssim_weight, --depth_weight, --epipolar_weight, --batch_size,
#  --learning_rate and --max_steps have the same names as in the original.)

# Original flags with no counterpart here: accepted so an original command
# line runs, reported, ignored.
ORIGINAL_IGNORED = {
    "dataset_name_list": "datasets are TFDS names: use --dataset",
    "dataset_loader": "the input pipeline is mgc_tf.data.pipeline",
    "dataset_dir": "use --data_dir (TFDS) and --dataset",
    "flag_fore": "occlusion handling is the covisible map",
    "num_scales": "one scale",
    "min_steps": "use --max_steps",
    "num_source": "sources = --num_views - 1",
    "match_num": "the 68 landmarks are the epipolar matches",
    "net": "use --backbone",
    "net_id": "use --identity_model",
    "ckpt_face_pretrain": ("TF 1 checkpoints cannot be loaded; use "
                           "--backbone_weights=imagenet|PATH"),
    "ckpt_face_id_pretrain": ("TF 1 checkpoints cannot be loaded; use "
                              "--identity_model=PATH (.keras/SavedModel)"),
    "path_gpmm": "use --face_model (python -m mgc_tf.convert_face_model)",
    "img_height": "use --image_size",
    "img_width": "use --image_size",
    "debug": "",
    "debug_dump_root": "",
}
for _name in ORIGINAL_IGNORED:
  flags.DEFINE_string(_name, None, f"Original MGCNet flag, ignored: "
                      f"{ORIGINAL_IGNORED[_name] or 'no effect here'}.")


def config_from_flags(flag_values=FLAGS) -> config_lib.TrainConfig:
  """The TrainConfig the parsed flags describe (validated).

  defaults (the dataclasses) -> flagfiles -> command line -> validate; the
  method's section is built from the flags of its own config class.
  """
  f = flag_values
  if f.img_height is not None and f.img_width is not None and (
      f.img_height != f.img_width):
    raise ValueError(f"--img_height={f.img_height} and --img_width="
                     f"{f.img_width}: crops are square; use --image_size")
  overrides = {}
  if f.img_height is not None and not f["image_size"].present:
    overrides["image_size"] = int(f.img_height)
  method_class = methods.get(f.method)
  addon_configs = {name: config_lib.from_flags(addon.config_class, f)
                   for name, addon in methods.addon_classes().items()}
  return config_lib.from_flags(
      config_lib.TrainConfig, f, method=f.method,
      method_config=config_lib.from_flags(method_class.config_class, f),
      addon_configs=addon_configs, **overrides).validate()


def report_ignored(flag_values=FLAGS) -> None:
  for name, advice in ORIGINAL_IGNORED.items():
    if flag_values[name].present:
      note = f" ({advice})" if advice else ""
      print(f"Note: original MGCNet flag --{name} has no effect here{note}.",
            flush=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    config = config_from_flags()
  except ValueError as error:
    print(error, file=sys.stderr)
    return 2
  report_ignored()
  print(f"Method {config.method}: " + ", ".join(
      f"{k}={v}" for k, v in config_lib.to_dict(config.method_config).items()),
        flush=True)
  addon_classes = methods.addon_classes()
  for name, section in (config.addon_configs or {}).items():
    if addon_classes[name].enabled(section):
      print(f"Add-on {name}: " + ", ".join(
          f"{k}={v}" for k, v in config_lib.to_dict(section).items()),
            flush=True)
  # Imported here: building the strategy must come before other TF work.
  from mgc_tf.training import run_dir  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  from mgc_tf.evaluation import periodic  # pylint: disable=g-import-not-at-top
  evaluate_fn = (periodic.make_evaluate_fn(
      config.eval_dataset, config.eval_split, config.data_dir,
      config.eval_batches) if config.eval_dataset else None)
  try:
    trainer = trainer_lib.Trainer(
        config, methods.composed(config.method, config.addon_configs))
    trainer.train(evaluate_fn=evaluate_fn)
  except trainer_lib.NonFiniteLossError as error:
    print(error, file=sys.stderr)
    return 3
  except run_dir.RunDirError as error:
    # Another trainer holds model_dir, other model flags than the run's,
    # or model_dir cannot be written: one line, earlier checkpoints intact.
    print(f"error: {error}", file=sys.stderr)
    return 2
  except ValueError as error:
    # Settings that only the built run can check (stages, the batch
    # features a method needs, a batch the replicas cannot split, a
    # dataset that is not prepared): one line, nothing half-done.
    print(f"error: {error}", file=sys.stderr)
    return 2
  if config.export_dir and trainer.is_chief and not trainer.stopped_by_signal:
    return export_after_training(config.model_dir, config.export_dir,
                                 config.export_model_name)
  return 0


def export_after_training(model_dir: str, export_dir: str,
                          model_name: str) -> int:
  """Exports the run's latest checkpoint; an existing version is kept."""
  from mgc_tf.serving import export_lib  # pylint: disable=g-import-not-at-top
  try:
    result = export_lib.export_saved_model(model_dir, export_dir, model_name)
  except export_lib.ExportError as error:
    # A re-run of a finished job: its step is exported already.
    print(f"Not exported: {error}", flush=True)
    return 0
  print(result.summary(), flush=True)
  return 0


def run():
  """Console-script entry point (mgc-train)."""
  flags.mark_flag_as_required("model_dir")
  app.run(main)


if __name__ == "__main__":
  run()
