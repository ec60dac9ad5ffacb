r"""Exports a trained reconstructor as a SavedModel for TF Serving.

  python -m mgc_tf.export --model_dir=runs/mgc --export_dir=export
  python -m mgc_tf.export --model_dir=runs/mgc --export_dir=export \
      --model_name=mgc --version=3 --checkpoint=runs/mgc/ckpt-300 --overwrite

Writes EXPORT_DIR/MODEL_NAME/VERSION/ (VERSION defaults to the checkpoint's
training step) with the signatures serving_default (image_bytes),
predict_images and predict_vertices; see docs/serving.md. An existing version
is only replaced with --overwrite. Exit status 2 with one line "error: ..."
for a missing run or --checkpoint, an unwritable --export_dir (checked first)
or an existing version; SIGTERM: exit 0, one line, no version written.
"""

from mgc_tf import _signals  # pylint: disable=g-bad-import-order
_STOPPED_NOTE = "no version was written"
if __name__ == "__main__":  # (the console script installs it in run())
  _signals.exit_cleanly_on_stop("mgc_tf.export", _STOPPED_NOTE)
from mgc_tf import _quiet  # pylint: disable=g-bad-import-order
_quiet.quiet_start()  # before anything imports TensorFlow

import sys

from absl import app
from absl import flags

from mgc_tf import _flags

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None,
                    "Training run directory (model.json + checkpoints).")
flags.DEFINE_string("export_dir", None,
                    "Parent of the model base path: writes "
                    "EXPORT_DIR/MODEL_NAME/VERSION.")
flags.DEFINE_string("model_name", "mgc", "TF Serving model name.")
flags.DEFINE_integer("version", None,
                     "Version number (>= 0); default: the checkpoint's "
                     "training step.", lower_bound=0)
flags.DEFINE_string("checkpoint", None,
                    "Checkpoint prefix (e.g. RUN/ckpt-300); default: latest.")
flags.DEFINE_boolean("overwrite", False,
                     "Replace EXPORT_DIR/MODEL_NAME/VERSION if it exists.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # Imported here so --help does not wait for TensorFlow.
  from mgc_tf.serving import export_lib  # pylint: disable=g-import-not-at-top
  from mgc_tf.inference import reconstructor as reconstructor_lib  # pylint: disable=g-import-not-at-top
  from mgc_tf.io import output_paths  # pylint: disable=g-import-not-at-top
  try:
    output_paths.check_output_dir(FLAGS.export_dir, "--export_dir")
    result = export_lib.export_saved_model(
        FLAGS.model_dir, FLAGS.export_dir, model_name=FLAGS.model_name,
        version=FLAGS.version, checkpoint=FLAGS.checkpoint,
        overwrite=FLAGS.overwrite)
  except (export_lib.ExportError, reconstructor_lib.TrainedModelError,
          output_paths.OutputPathError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(result.summary(), flush=True)
  return 0


def run():
  """Console-script entry point (mgc-export)."""
  flags.mark_flags_as_required(["model_dir", "export_dir"])
  _signals.exit_cleanly_on_stop("mgc_tf.export", _STOPPED_NOTE)
  _flags.run(main)


if __name__ == "__main__":
  run()
