r"""Reconstructs faces in images, folders of images and videos.

  python -m mgc_tf.infer --input=photo.jpg --output_dir=out/ \
      --model_dir=runs/mgc
  python -m mgc_tf.infer --input=photos/ --output_dir=out/ \
      --saved_model=export/mgc/1
  python -m mgc_tf.infer --input=clip.mp4 --output_dir=out/ \
      --model_dir=runs/mgc --smoothing=window --smoothing_window=5 \
      [--video_meshes=10]
  python -m mgc_tf.infer --input=crops/ --aligned ...  # aligned 224 crops
  python -m mgc_tf.infer ... --refine_steps=50  # refine by fitting (images)

Per face of an image: `<stem>_face<k>.obj` (coloured mesh, camera mm),
`.npz` / `.json` (coefficients by group, pose, landmarks) and
`_landmarks.txt`; per image `<stem>_overlay.png`; per video `<stem>.npz`,
`<stem>.json` and `<stem>_overlay.mp4`. See docs/inference.md.
Faces are found with dlib (`pip install "mgc-tf[preprocess]"`); without it,
or with --aligned, inputs are taken as aligned 224 crops. Exit status 2 with
one line "error: ..." for bad input (a missing or unusable --input, a video
that decodes nothing, a bad model or --checkpoint, an unwritable
--output_dir, checked before anything runs); 1 when the input was read but
no face at all was reconstructed. SIGTERM: exit 0 with one line.
"""

from mgc_tf import _signals  # pylint: disable=g-bad-import-order
_STOPPED_NOTE = "the files of the inputs finished so far are complete"
if __name__ == "__main__":  # (the console script installs it in run())
  _signals.exit_cleanly_on_stop("mgc_tf.infer", _STOPPED_NOTE)
from mgc_tf import _quiet  # pylint: disable=g-bad-import-order
_quiet.quiet_start()  # before anything imports TensorFlow

import sys

from absl import app
from absl import flags

from mgc_tf.inference import faces
from mgc_tf.inference import smoothing
from mgc_tf.inference import sources
from mgc_tf.io import output_paths
from mgc_tf.io.bad_input import BadExampleError

_INPUT = flags.DEFINE_string(
    "input", None, "An image, a folder of images (not recursive) or a video.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Folder for the results (created).")
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "A training run (model.json + checkpoints).")
_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None,
    "An exported version directory (python -m mgc_tf.export).")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "With --model_dir: a checkpoint prefix instead of "
    "the latest (e.g. runs/mgc/ckpt-300).")
_FACE_MODEL = flags.DEFINE_string(
    "face_model", None, "With --saved_model: the face-model file, when not "
    "the one recorded at export.")
_ALIGNED = flags.DEFINE_boolean(
    "aligned", False, "Take every input as a face crop already aligned to "
    "the 224 template (no detection).")
_ALL_FACES = flags.DEFINE_boolean(
    "all_faces", True, "Images: every detected face (<stem>_face<k>, k = 0 "
    "the largest); false: the largest only. Videos always track the largest.")
_MESHES = flags.DEFINE_boolean("meshes", True,
                               "Images: write the .obj meshes.")
_SMOOTHING = flags.DEFINE_enum(
    "smoothing", smoothing.SmoothingMethod.WINDOW.value,
    [m.value for m in smoothing.SmoothingMethod],
    "Videos: temporal smoothing of pose and expression: none, ema (causal "
    "exponential moving average) or window (centred moving average).")
_SMOOTHING_STRENGTH = flags.DEFINE_float(
    "smoothing_strength", smoothing.SmoothingConfig.strength,
    "--smoothing=ema: weight of the past per frame, in [0, 1).")
_SMOOTHING_WINDOW = flags.DEFINE_integer(
    "smoothing_window", smoothing.SmoothingConfig.window,
    "--smoothing=window: odd number of frames averaged.")
_VIDEO_MESHES = flags.DEFINE_integer(
    "video_meshes", 0, "Videos: write the mesh of every N-th frame (0: none).",
    lower_bound=0)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 8, "Faces per model call.", lower_bound=1)
_UPSAMPLE_TIMES = flags.DEFINE_integer(
    "upsample_times", None, "dlib image doublings before detection; "
    "default: enough to find faces a quarter of the shorter side.",
    lower_bound=0)
_MIN_SCORE = flags.DEFINE_float(
    "min_score", 0.0, "Drop detections with a dlib score below this.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Draw progress bars.")
_REFINE_STEPS = flags.DEFINE_integer(
    "refine_steps", 0, "Images: refine each face's prediction by this many "
    "fitting steps (mgc_tf.fit's objective on that face alone; 0: off). "
    "Videos: use python -m mgc_tf.fit.", lower_bound=0)
_REFINE_IDENTITY_NETWORK = flags.DEFINE_string(
    "refine_identity_network", "dlib", "--refine_steps: face-embedding "
    "network of the identity term: dlib, none, or a model's path.")


def _log(line: str) -> None:
  print(line, flush=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not _OUTPUT_DIR.value:
    raise app.UsageError("--output_dir is required.")
  try:
    config = smoothing.SmoothingConfig(
        method=_SMOOTHING.value, strength=_SMOOTHING_STRENGTH.value,
        window=_SMOOTHING_WINDOW.value)
    inputs = sources.resolve_input(_INPUT.value)
    output_paths.check_output_dir(_OUTPUT_DIR.value, "--output_dir")
  except ValueError as error:  # OutputPathError is one.
    print(f"error: {error}", file=sys.stderr)
    return 2
  # TensorFlow is imported once the input is known to be usable, so a wrong
  # path fails in a moment.
  # pylint: disable=g-import-not-at-top
  from mgc_tf.inference import images
  from mgc_tf.inference import reconstructor as reconstructor_lib
  from mgc_tf.inference import video
  # pylint: enable=g-import-not-at-top
  try:
    predictor = reconstructor_lib.Reconstructor.from_args(
        model_dir=_MODEL_DIR.value, saved_model=_SAVED_MODEL.value,
        checkpoint=_CHECKPOINT.value, face_model=_FACE_MODEL.value)
  except ValueError as error:  # TrainedModelError is one.
    print(f"error: {error}", file=sys.stderr)
    return 2
  finder = faces.make_face_finder(
      aligned=_ALIGNED.value, upsample_times=_UPSAMPLE_TIMES.value,
      min_score=_MIN_SCORE.value, log=_log)
  _log(f"Model: {predictor.description} ({predictor.image_size} px)")
  _log(f"Faces: {finder.describe()}")
  if inputs.kind == sources.InputKind.VIDEO:
    if _REFINE_STEPS.value:
      _log("--refine_steps applies to images; for a video, python -m "
           "mgc_tf.fit fits the frames jointly")
    _log(f"Video {inputs.paths[0]} -> {_OUTPUT_DIR.value} "
         f"(smoothing: {config.describe()})")
    try:
      result = video.infer_video(
          inputs.paths[0], _OUTPUT_DIR.value, predictor, finder,
          smoothing_config=config, batch_size=_BATCH_SIZE.value,
          mesh_every=_VIDEO_MESHES.value, show_progress=_PROGRESS.value,
          log=_log)
    except BadExampleError as error:  # Opens, but no frame decodes.
      print(f"error: {error}; --input takes {sources.ACCEPTED}.",
            file=sys.stderr)
      return 2
    return 0 if result.frames_with_face else 1
  refine = None
  if _REFINE_STEPS.value:
    # pylint: disable=g-import-not-at-top
    from mgc_tf import fitting
    from mgc_tf.inference import fit_files
    from mgc_tf.losses import identity as identity_lib
    # pylint: enable=g-import-not-at-top
    try:
      identity_loss = identity_lib.IdentityLoss.from_spec(
          _REFINE_IDENTITY_NETWORK.value)
    except (ValueError, OSError) as error:
      print(f"error: {error}", file=sys.stderr)
      return 2
    refine = fit_files.refiner(fitting.Fitter(
        predictor.decoder, fitting.FitConfig(steps=_REFINE_STEPS.value),
        identity_loss), show_progress=_PROGRESS.value)
    _log(f"Refining each face by {_REFINE_STEPS.value} fitting steps "
         f"({identity_loss.describe()})")
  count = len(inputs.paths)
  _log(f"{count} image{'s' if count > 1 else ''} -> {_OUTPUT_DIR.value}")
  result = images.infer_images(
      inputs.paths, _OUTPUT_DIR.value, predictor, finder,
      batch_size=_BATCH_SIZE.value, all_faces=_ALL_FACES.value,
      write_meshes=_MESHES.value, show_progress=_PROGRESS.value, log=_log,
      refine=refine)
  return 0 if result.faces else 1


def run():
  _signals.exit_cleanly_on_stop("mgc_tf.infer", _STOPPED_NOTE)
  app.run(main)


if __name__ == "__main__":
  run()
