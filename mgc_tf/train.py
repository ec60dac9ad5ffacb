r"""Trains the MGCNet reconstructor.

  python -m mgc_tf.train --flagfile=configs/mgc.flags --model_dir=runs/mgc
  python -m mgc_tf.train --flagfile=configs/quickstart.flags

Flags -> `TrainConfig` -> `Trainer`; see docs/training.md. The original
MGCNet flag names are accepted (`--MULTIVIEW_weight`, `--photom_weight`,
`--gpmm_pixel_loss_weight`, `--seq_length`, `--checkpoint_dir`, ...), so a
command line from the original README runs; original flags that have no
meaning here are accepted, reported and ignored.
"""

import sys

from absl import app
from absl import flags

from mgc_tf.training import config as config_lib
from mgc_tf.training import distribution
from mgc_tf.losses.mgc_loss import MGCLossWeights

FLAGS = flags.FLAGS
_DEFAULTS = MGCLossWeights()

# Run.
flags.DEFINE_string("model_dir", None, "Checkpoints, summaries, config.json.")
flags.DEFINE_string("dataset", "synthetic_multiview/small",
                    "Training sources: 'name[:weight],...' (docs/data.md).")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default ~/tensorflow_datasets).")
flags.DEFINE_boolean("build_data_if_missing", True,
                     "Build synthetic_multiview configs that are missing.")
flags.DEFINE_string("eval_dataset", "synthetic_multiview/small",
                    "Periodic evaluation set ('' turns it off).")
flags.DEFINE_string("eval_split", "test", "Split of --eval_dataset.")
flags.DEFINE_string("face_model", None,
                    "Face-model file (.npz/.mat/.h5); default: embedded.")
flags.DEFINE_string("identity_model", None,
                    "Face-recognition network (.keras/SavedModel) for the "
                    "identity loss; unset turns the term off.")
# Model.
flags.DEFINE_enum("backbone", "resnet50", ["resnet50", "resnet18", "mobilenet_v2"],
                  "Encoder backbone.")
flags.DEFINE_string("backbone_weights", "none", "imagenet | none | PATH.")
flags.DEFINE_integer("image_size", 224, "Training crop side, pixels.")
flags.DEFINE_integer("num_views", 3, "Views per sample (odd; middle = target).")
# Optimisation.
flags.DEFINE_integer("batch_size", 5, "Global batch (samples of N views).")
flags.DEFINE_float("learning_rate", 1e-4, "Adam's peak learning rate.")
flags.DEFINE_enum("lr_schedule", "constant", list(config_lib.LR_SCHEDULES),
                  "After warm-up: constant, cosine or step.")
flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps.")
flags.DEFINE_float("clip_grad_norm", 0.0, "Global-norm clipping (0: off).")
flags.DEFINE_integer("max_steps", 400_000, "Stop at this global step.")
flags.DEFINE_boolean("mixed_precision", False,
                     "mixed_float16 backbone (GPU); losses stay float32.")
flags.DEFINE_enum("strategy", "default", list(distribution.STRATEGIES),
                  "tf.distribute strategy.")
flags.DEFINE_integer("num_cpu_devices", 1,
                     "Split the CPU into this many logical devices (to run "
                     "--strategy=mirrored replicas on a CPU).")
flags.DEFINE_integer("seed", 0, "Seed of the init and the data order.")
flags.DEFINE_boolean("deterministic", False, "Deterministic input pipeline.")
flags.DEFINE_boolean("augment", True, "Landmark-consistent augmentation.")
flags.DEFINE_integer("shuffle_buffer", 256, "Shuffle buffer (samples).")
# Loss weights (paper defaults).
flags.DEFINE_float("render_weight", _DEFAULTS.render, "Render (photometric) loss.")
flags.DEFINE_float("landmark_weight", _DEFAULTS.landmark, "Landmark loss.")
flags.DEFINE_float("landmark_nose_mouth_weight", _DEFAULTS.landmark_nose_mouth,
                   "Landmark weight on nose and inner mouth (paper 10, code 5).")
flags.DEFINE_float("identity_weight", _DEFAULTS.identity, "Identity loss.")
flags.DEFINE_float("regularization_weight", _DEFAULTS.regularization,
                   "Weight of the shape regularization 1.0|alpha|^2 + "
                   "0.8|beta|^2 (+ the albedo part, see below).")
flags.DEFINE_float("albedo_regularization_weight",
                   _DEFAULTS.regularization * _DEFAULTS.reg_albedo,
                   "Effective weight of |delta|^2 in the total loss.")
flags.DEFINE_float("pixel_weight", _DEFAULTS.pixel, "Pixel consistency.")
flags.DEFINE_float("depth_weight", _DEFAULTS.depth, "Depth consistency.")
flags.DEFINE_float("epipolar_weight", _DEFAULTS.epipolar, "Epipolar loss.")
flags.DEFINE_float("ssim_weight", _DEFAULTS.ssim, "SSIM consistency.")
flags.DEFINE_float("two_d_weight", _DEFAULTS.two_d, "Scale of all 2D terms.")
flags.DEFINE_float("multiview_weight", _DEFAULTS.multiview,
                   "Scale of all multi-view terms (0: the 2D-only baseline).")
flags.DEFINE_boolean("use_covisible_map", True,
                     "False: the 'without covisible map' ablation.")
flags.DEFINE_enum("depth_reference", "warped", ["warped", "target"],
                  "Depth consistency reference (docs/losses.md).")
# Bookkeeping.
flags.DEFINE_integer("log_every", 10, "Console progress every N steps.")
flags.DEFINE_integer("summary_every", 10, "Scalar summaries every N steps.")
flags.DEFINE_integer("image_summary_every", 500, "Image summaries every N steps (0: off).")
flags.DEFINE_integer("checkpoint_every", 1000, "Checkpoint every N steps.")
flags.DEFINE_integer("keep_checkpoints", 5, "Checkpoints kept.")
flags.DEFINE_integer("eval_every", 5000, "Evaluate every N steps (0: only at the end).")
flags.DEFINE_integer("eval_batches", 0, "Batches per evaluation (0: all).")
flags.DEFINE_string("export_dir", None,
                    "After training, export a SavedModel for TF Serving to "
                    "EXPORT_DIR/<export_model_name>/<step> (python -m "
                    "mgc_tf.export does the same for any run).")
flags.DEFINE_string("export_model_name", "mgc", "Model name of --export_dir.")
flags.DEFINE_integer("max_consecutive_nonfinite", 5,
                     "Stop after this many non-finite steps in a row.")

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
  """The TrainConfig the parsed flags describe (validated)."""
  f = flag_values
  if f.img_height is not None and f.img_width is not None and (
      f.img_height != f.img_width):
    raise ValueError(f"--img_height={f.img_height} and --img_width="
                     f"{f.img_width}: crops are square; use --image_size")
  shape_weight = f.regularization_weight
  weights = MGCLossWeights(
      render=f.render_weight, landmark=f.landmark_weight,
      identity=f.identity_weight,
      # The regularization term is 1.0|a|^2 + 0.8|b|^2 + r|d|^2 scaled by
      # shape_weight; r carries the separate albedo weight.
      regularization=shape_weight,
      reg_albedo=(f.albedo_regularization_weight / shape_weight
                  if shape_weight > 0 else 0.0),
      pixel=f.pixel_weight, depth=f.depth_weight, epipolar=f.epipolar_weight,
      ssim=f.ssim_weight, two_d=f.two_d_weight, multiview=f.multiview_weight,
      landmark_nose_mouth=f.landmark_nose_mouth_weight)
  image_size = f.image_size
  if f.img_height is not None and not f["image_size"].present:
    image_size = int(f.img_height)
  return config_lib.TrainConfig(
      model_dir=f.model_dir, dataset=f.dataset, data_dir=f.data_dir,
      build_data_if_missing=f.build_data_if_missing,
      eval_dataset=f.eval_dataset, eval_split=f.eval_split,
      face_model=f.face_model, identity_model=f.identity_model,
      backbone=f.backbone, backbone_weights=f.backbone_weights,
      image_size=image_size, num_views=f.num_views, batch_size=f.batch_size,
      learning_rate=f.learning_rate, lr_schedule=f.lr_schedule,
      warmup_steps=f.warmup_steps, clip_grad_norm=f.clip_grad_norm,
      max_steps=f.max_steps, mixed_precision=f.mixed_precision,
      strategy=f.strategy, num_cpu_devices=f.num_cpu_devices,
      weights=weights, use_covisible_map=f.use_covisible_map,
      depth_reference=f.depth_reference, augment=f.augment, seed=f.seed,
      deterministic=f.deterministic, log_every=f.log_every,
      summary_every=f.summary_every,
      image_summary_every=f.image_summary_every,
      checkpoint_every=f.checkpoint_every,
      keep_checkpoints=f.keep_checkpoints, eval_every=f.eval_every,
      eval_batches=f.eval_batches,
      max_consecutive_nonfinite=f.max_consecutive_nonfinite,
      shuffle_buffer=f.shuffle_buffer).validate()


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
  # Imported here: building the strategy must come before other TF work.
  from mgc_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  from mgc_tf.evaluation import periodic  # pylint: disable=g-import-not-at-top
  trainer = trainer_lib.Trainer(config)
  evaluate_fn = (periodic.make_evaluate_fn(config)
                 if config.eval_dataset else None)
  try:
    trainer.train(evaluate_fn=evaluate_fn)
  except trainer_lib.NonFiniteLossError as error:
    print(error, file=sys.stderr)
    return 3
  if FLAGS.export_dir and trainer.is_chief and not trainer.stopped_by_signal:
    return export_after_training(config.model_dir, FLAGS.export_dir,
                                 FLAGS.export_model_name)
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
