r"""Evaluates a trained model on a benchmark: prints a table, writes JSON.

  python -m mgc_tf.evaluate --model_dir=runs/quickstart \
      --dataset=synthetic_multiview/small
  python -m mgc_tf.evaluate --saved_model=export/mgc/1 \
      --dataset=aflw2000_3d --data_dir=~/tensorflow_datasets
  python -m mgc_tf.evaluate --model_dir=runs/mgc --dataset=micc_florence \
      --output_json=results/micc.json [--max_examples=10]
  python -m mgc_tf.evaluate --model_dir=runs/mgc \
      --dataset=synthetic_multiview/small --protocol=verification
  python -m mgc_tf.evaluate --model_dir=runs/mgc --protocol=verification \
      --pairs_file=lfw/pairs.txt --images_dir=lfw/aligned

--dataset: synthetic_multiview[/config] (built on demand, no download),
aflw2000_3d or micc_florence (built with `tfds build`, docs/datasets/), or
another multi-view set. Metrics, protocols and the JSON keys:
docs/evaluation.md. Without --output_json the JSON goes to
<model_dir>/eval_<dataset>_<split>.json, or for --saved_model next to the
version directory: <saved_model>_eval_<dataset>_<split>.json.
--protocol=verification scores face verification (docs/evaluation.md, "Face
verification") on pairs of the dataset's identities, or of an LFW-style
--pairs_file over aligned crops in --images_dir; its JSON is named
eval_<dataset>_verification_<split>.json (for a pairs file, <dataset> is
the file's name and <split> "pairs"). Exit status 2, with one line
"error: ..." and nothing written, for a bad model or checkpoint, an unknown
dataset or config (with "did you mean"), a dataset that is not prepared
(the line says how to build it), a bad pairs file or an unwritable
--output_json (checked before the evaluation). SIGTERM: exit 0, one line,
no JSON.
"""

from mgc_tf import _signals  # pylint: disable=g-bad-import-order
if __name__ == "__main__":  # (the console script installs it in run())
  _signals.exit_cleanly_on_stop("mgc_tf.evaluate", "no JSON was written")
from mgc_tf import _quiet  # pylint: disable=g-bad-import-order
_quiet.quiet_start()  # before anything imports TensorFlow

import enum
import os
import sys

from absl import app
from absl import flags

from mgc_tf import _flags
from mgc_tf.evaluation import protocols
from mgc_tf.evaluation import results
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.io import output_paths

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "A training run (model.json + checkpoints).")
_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None,
    "An exported SavedModel version directory (python -m mgc_tf.export).")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "With --model_dir: this checkpoint, not the latest.")
_FACE_MODEL = flags.DEFINE_string(
    "face_model", None,
    "With --saved_model: the face-model file it decodes with (default: the "
    "one its export metadata names).")
_DATASET = flags.DEFINE_string(
    "dataset", None,
    "synthetic_multiview[/config] | aflw2000_3d | micc_florence | another "
    "multi-view TFDS set.")
_SPLIT = flags.DEFINE_string("split", "test", "TFDS split.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data dir (default ~/tensorflow_datasets).")
_OUTPUT_JSON = flags.DEFINE_string(
    "output_json", None,
    "Where the JSON goes (default: in --model_dir, or next to "
    "--saved_model).")
_MAX_EXAMPLES = flags.DEFINE_integer(
    "max_examples", 0,
    "Evaluate at most this many examples (multi-view groups, images or "
    "videos); 0: the whole split.", lower_bound=0)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", protocols.DEFAULT_BATCH_SIZE,
    "Images per model/render call.", lower_bound=1)


class Protocol(enum.Enum):
  AUTO = "auto"  # the dataset's own protocol
  VERIFICATION = "verification"


_PROTOCOL = flags.DEFINE_enum_class(
    "protocol", Protocol.AUTO, Protocol,
    "auto: the dataset's protocol; verification: face verification "
    "accuracy and ROC AUC (identity coefficients, neutral shapes, "
    "embeddings of the render) on pairs of the dataset's identities or of "
    "--pairs_file.", case_sensitive=False)
_PAIRS_FILE = flags.DEFINE_string(
    "pairs_file", None,
    "With --protocol=verification: an LFW-style pairs.txt (instead of "
    "--dataset); its images are --images_dir/name/name_%04d.jpg, aligned "
    "square crops.")
_IMAGES_DIR = flags.DEFINE_string(
    "images_dir", None, "With --pairs_file: the folder of the images.")
_BUILD_DATA_IF_MISSING = flags.DEFINE_boolean(
    "build_data_if_missing", True,
    "Build a missing synthetic_multiview config first (no download).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  verifying = _PROTOCOL.value == Protocol.VERIFICATION
  if _PAIRS_FILE.value and not verifying:
    raise app.UsageError("--pairs_file needs --protocol=verification")
  if _PAIRS_FILE.value and not _IMAGES_DIR.value:
    raise app.UsageError("--pairs_file needs --images_dir")
  if not _DATASET.value and not _PAIRS_FILE.value:
    raise app.UsageError("--dataset is required, e.g. "
                         "--dataset=synthetic_multiview/small")
  if _PAIRS_FILE.value:
    name, split = os.path.splitext(os.path.basename(_PAIRS_FILE.value))[0], \
        "pairs"
  else:
    name, split = _DATASET.value, _SPLIT.value
  if verifying:
    name = f"{name}_verification"
  path = _OUTPUT_JSON.value or results.default_output_path(
      name, split, model_dir=_MODEL_DIR.value,
      saved_model=_SAVED_MODEL.value)
  try:
    # Outputs first: an unwritable path fails now, not after the evaluation.
    output_paths.check_output_file(path, "--output_json")
    predictor = reconstructor_lib.Reconstructor.from_args(
        model_dir=_MODEL_DIR.value, saved_model=_SAVED_MODEL.value,
        checkpoint=_CHECKPOINT.value, face_model=_FACE_MODEL.value)
    if _PAIRS_FILE.value:
      source = protocols.pairs_from_file(_PAIRS_FILE.value,
                                         _IMAGES_DIR.value)
    else:
      source = protocols.load_dataset_builder(
          _DATASET.value, _DATA_DIR.value, split=_SPLIT.value,
          build_if_missing=_BUILD_DATA_IF_MISSING.value)
  except (OSError, ValueError) as error:
    # TrainedModelError, pipeline.DatasetError (unknown name or config, not
    # prepared), OutputPathError and a bad pairs file: one-line messages.
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(f"Evaluating {predictor.description} on {name} [{split}]",
        flush=True)
  try:
    if verifying:
      result = protocols.evaluate_verification(
          predictor, source, split if not _PAIRS_FILE.value else source.split,
          batch_size=_BATCH_SIZE.value, max_examples=_MAX_EXAMPLES.value)
    else:
      result = protocols.evaluate_builder(
          predictor, source, split, batch_size=_BATCH_SIZE.value,
          max_examples=_MAX_EXAMPLES.value)
  except ValueError as error:  # No protocol for the dataset, empty split.
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(results.format_table(result, predictor.description))
  results.write_json(result, path, predictor.description)
  print(f"Wrote {path}", flush=True)
  return 0


def run():
  """Console-script entry point (mgc-evaluate)."""
  _signals.exit_cleanly_on_stop("mgc_tf.evaluate", "no JSON was written")
  _flags.run(main)


if __name__ == "__main__":
  run()
