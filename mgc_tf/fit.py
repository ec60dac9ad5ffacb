r"""Fits 3DMM coefficients to one person's photo, photo set or video.

  python -m mgc_tf.fit --input=photo.jpg --output_dir=out/
  python -m mgc_tf.fit --input=person/ --output_dir=out/    # one person's set
  python -m mgc_tf.fit --input=clip.mp4 --output_dir=out/ --max_frames=60
  python -m mgc_tf.fit --input=photo.jpg --output_dir=out/ \
      --model_dir=runs/mgc          # start from a trained model's prediction

An image is fitted alone; a folder is taken as ONE person's photo set (shared
identity and albedo, multi-view terms; faces of other people are skipped and
counted when dlib's face-recognition network is installed); a video's frames
are fitted as a set plus temporal smoothness. Outputs as `mgc_tf.infer` writes
them (per image `<stem>_face0.obj/.npz/.json/_landmarks.txt`,
`<stem>_overlay.png`) plus `fit_loss.json` / `fit_loss.png` and
`summary.json`. See docs/fitting.md. Exit status 2 with one line "error: ..."
for unusable arguments or input; 1 when no face at all was fitted.
"""

from mgc_tf import _signals  # pylint: disable=g-bad-import-order
_STOPPED_NOTE = "no fit was written (a fit writes its files at the end)"
if __name__ == "__main__":
  _signals.exit_cleanly_on_stop("mgc_tf.fit", _STOPPED_NOTE)
from mgc_tf import _quiet  # pylint: disable=g-bad-import-order
_quiet.quiet_start()  # before anything imports TensorFlow

import dataclasses
import sys

from absl import app
from absl import flags

from mgc_tf import _flags
from mgc_tf.inference import faces
from mgc_tf.inference import sources
from mgc_tf.io import output_paths
from mgc_tf.io.bad_input import BadExampleError

_INPUT = flags.DEFINE_string(
    "input", None, "An image, a folder of one person's images (not "
    "recursive) or a video.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Folder for the results (created).")
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Start from this training run's prediction (default: "
    "the mean face).")
_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None, "Start from this exported model's prediction.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "With --model_dir: a checkpoint prefix.")
_FACE_MODEL = flags.DEFINE_string(
    "face_model", None, "The face-model file or packaged name (default: "
    "ICT-FaceKit Light, embedded-ict-light-v1; with --model_dir / "
    "--saved_model, the model's own).")
_INDEPENDENT = flags.DEFINE_boolean(
    "independent", False, "Folders: fit every image alone instead of as one "
    "person's set.")
_STEPS = flags.DEFINE_integer("steps", 100, "Optimiser iterations.",
                              lower_bound=0)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 0.02,
                                    "Adam's learning rate.")
_REGULARIZATION = flags.DEFINE_float(
    "regularization_weight", 1e-4,
    "Weight of the coefficient prior when fitting from the mean face (the "
    "paper's training weight).")
_PREDICTION_REGULARIZATION = flags.DEFINE_float(
    "prediction_regularization_weight", 1e-2,
    "Weight of the coefficient prior when fitting from a model's prediction "
    "(--model_dir / --saved_model; docs/fitting.md says why it differs).")
_START_POSE = flags.DEFINE_string(
    "start_pose", "landmarks",
    "Pose a fit from the mean face starts at: 'landmarks' (solved in closed "
    "form from the detected landmarks) or 'default' (frontal). A fit from a "
    "model's prediction starts at its pose.")
_IDENTITY_NETWORK = flags.DEFINE_string(
    "identity_network", "dlib", "Face-embedding network of the identity "
    "term and of the same-person check: dlib, none, or a model's path.")
_POSE_SMOOTHNESS = flags.DEFINE_float(
    "pose_smoothness", 1.0, "Videos: weight of the temporal smoothness of "
    "the pose.")
_EXPRESSION_SMOOTHNESS = flags.DEFINE_float(
    "expression_smoothness", 0.1, "Videos: weight of the temporal "
    "smoothness of the expression.")
_FRAME_STRIDE = flags.DEFINE_integer(
    "frame_stride", 1, "Videos: fit every N-th frame.", lower_bound=1)
_MAX_FRAMES = flags.DEFINE_integer(
    "max_frames", 100, "Videos: fit at most this many frames (0: all).",
    lower_bound=0)
_ALIGNED = flags.DEFINE_boolean(
    "aligned", False, "Take every input as an aligned 224 face crop (no "
    "detection, so no landmark term).")
_MESHES = flags.DEFINE_boolean("meshes", True, "Write the .obj meshes.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Draw progress bars.")


def _log(line: str) -> None:
  print(line, flush=True)


def _error(message) -> int:
  print(f"error: {message}", file=sys.stderr)
  return 2


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not _OUTPUT_DIR.value:
    return _error("--output_dir is required.")
  if _MODEL_DIR.value and _SAVED_MODEL.value:
    return _error("pass at most one of --model_dir and --saved_model.")
  try:
    inputs = sources.resolve_input(_INPUT.value)
    output_paths.check_output_dir(_OUTPUT_DIR.value, "--output_dir")
  except ValueError as error:
    return _error(error)
  # pylint: disable=g-import-not-at-top
  from mgc_tf import fitting
  from mgc_tf.facemodel import decoder as decoder_lib
  from mgc_tf.facemodel import loaders
  from mgc_tf.inference import fit_files
  from mgc_tf.inference import reconstructor as reconstructor_lib
  from mgc_tf.losses import identity as identity_lib
  # pylint: enable=g-import-not-at-top
  try:
    config = fitting.FitConfig(
        steps=_STEPS.value, learning_rate=_LEARNING_RATE.value,
        pose_smoothness=_POSE_SMOOTHNESS.value,
        expression_smoothness=_EXPRESSION_SMOOTHNESS.value,
        weights=dataclasses.replace(fitting.FitConfig().weights,
                                    regularization=_REGULARIZATION.value),
        prediction_regularization=_PREDICTION_REGULARIZATION.value,
        start_pose=_START_POSE.value)
    predictor = None
    if _MODEL_DIR.value or _SAVED_MODEL.value:
      predictor = reconstructor_lib.Reconstructor.from_args(
          model_dir=_MODEL_DIR.value, saved_model=_SAVED_MODEL.value,
          checkpoint=_CHECKPOINT.value, face_model=_FACE_MODEL.value)
      decoder = predictor.decoder
    else:
      decoder = decoder_lib.FaceDecoder(
          loaders.load_face_model(_FACE_MODEL.value))
    identity_loss = identity_lib.IdentityLoss.from_spec(
        _IDENTITY_NETWORK.value)
  except (ValueError, OSError) as error:
    return _error(error)
  finder = faces.make_face_finder(aligned=_ALIGNED.value, log=_log)
  if inputs.kind == sources.InputKind.VIDEO:
    mode = fitting.FitMode.VIDEO
    try:
      items = fit_files.video_items(inputs.paths[0], _FRAME_STRIDE.value,
                                 _MAX_FRAMES.value or None)
    except BadExampleError as error:
      return _error(f"{error}; --input takes {sources.ACCEPTED}.")
  else:
    many = len(inputs.paths) > 1
    mode = (fitting.FitMode.SET if many and not _INDEPENDENT.value
            else fitting.FitMode.PHOTOS)
    items = fit_files.image_items(inputs.paths)
  _log(f"Face model: {decoder.face_model.name}; start: "
       f"{predictor.description if predictor else 'the mean face'}")
  _log(f"Faces: {finder.describe()}; {identity_loss.describe()}")
  if mode == fitting.FitMode.SET:
    _log(f"{len(items)} images taken as one person's photo set")
  fitter = fitting.Fitter(decoder, config, identity_loss)
  run = fit_files.fit_files(
      items, _OUTPUT_DIR.value, fitter, finder, mode, predictor=predictor,
      embedding=identity_loss.embedding, write_meshes=_MESHES.value,
      show_progress=_PROGRESS.value, log=_log)
  return 0 if run.result is not None else 1


def run():
  _signals.exit_cleanly_on_stop("mgc_tf.fit", _STOPPED_NOTE)
  _flags.run(main)


if __name__ == "__main__":
  run()
