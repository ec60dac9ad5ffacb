"""Writes celeba's dummy data in the real CelebA format (run from the
repository root):

    python3 tfds_builders/celeba/dummy_data/make_dummy_data.py

Real layout (the files of CelebA's "Align&Cropped Images" and "Anno"/"Eval"
folders):

  img_align_celeba/000001.jpg ...      178 x 218 aligned JPEGs
  identity_CelebA.txt                  "000001.jpg 2880" per line
  list_eval_partition.txt              "000001.jpg 0" (0 train, 1 val, 2 test)
  list_landmarks_align_celeba.txt      count line, header line, then
                                       "000001.jpg 69 109 106 113 77 142 73 152 108 154"

Faces are skimage's astronaut photograph warped to CelebA's alignment (eyes
at about (69, 111) and (108, 111)) with a small rotation, scale, shift and
colour change per image (mirrored for the second "person"); landmarks are
dlib's, rounded, as CelebA's annotation is in whole pixels.

  file        identity  split  content
  000001-04   10        train  faces (4 images -> groups of 3 + 1)
  000005      20        train  face
  000006      20        train  random bytes (unreadable, skipped)
  000007-08   30        val    faces (one group of 2)
  000009      40        test   face
  000010      40        test   a cat (no face found, skipped)
  000011      50        test   face, but annotated 40 px off (the annotated
                               face is not the detected one, skipped)
"""

import os

import cv2
import numpy as np
import skimage.data

from mgc_tf.faces2d import alignment
from mgc_tf.faces2d.preprocessing import default_landmarker

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE_DIR = os.path.join(HERE, "img_align_celeba")
WIDTH, HEIGHT = 178, 218
# Typical 5 points of CelebA's aligned images (image-left eye first).
CELEBA_FIVE_POINTS = np.array(
    [[69.0, 111.0], [108.0, 111.0], [88.0, 134.0], [72.0, 152.0],
     [104.0, 152.0]])

# file number -> (identity, split, kind); kind: face / broken / cat / offset.
FILES = {
    1: (10, 0, "face"), 2: (10, 0, "face"), 3: (10, 0, "face"),
    4: (10, 0, "face"), 5: (20, 0, "face"), 6: (20, 0, "broken"),
    7: (30, 1, "face"), 8: (30, 1, "face"), 9: (40, 2, "face"),
    10: (40, 2, "cat"), 11: (50, 2, "offset"),
}
MIRRORED_IDENTITIES = (20, 40)


def celeba_face(mirrored: bool, rng) -> np.ndarray:
  """The astronaut aligned like CelebA, jittered: RGB [218, 178, 3]."""
  photo = skimage.data.astronaut()
  if mirrored:
    photo = np.ascontiguousarray(photo[:, ::-1])
  five = alignment.five_points_from_68(
      default_landmarker().detect(photo)[0].landmarks)
  angle = np.radians(rng.uniform(-6, 6))
  scale = rng.uniform(0.95, 1.05)
  jitter = np.array([[np.cos(angle), -np.sin(angle)],
                     [np.sin(angle), np.cos(angle)]]) * scale
  centre = CELEBA_FIVE_POINTS.mean(0)
  target = (CELEBA_FIVE_POINTS - centre) @ jitter.T + centre + rng.uniform(
      -3, 3, 2)
  transform = alignment.similarity_transform(five, target)
  image = cv2.warpAffine(photo, transform, (WIDTH, HEIGHT),
                         flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
  tint = rng.uniform(0.9, 1.1, 3)  # per-channel gain: a colour cast
  return np.clip(image * tint, 0, 255).astype(np.uint8)


def write_jpeg(path: str, image_rgb: np.ndarray) -> None:
  if not cv2.imwrite(path, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_JPEG_QUALITY, 85]):
    raise OSError(f"could not write {path}")


def annotated_five_points(path: str) -> np.ndarray:
  """CelebA-style whole-pixel 5 points from dlib on the written JPEG."""
  image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
  detections = default_landmarker().detect(image)
  if not detections:
    raise RuntimeError(f"dlib found no face in {path}")
  return np.round(alignment.five_points_from_68(detections[0].landmarks))


def main() -> None:
  os.makedirs(IMAGE_DIR, exist_ok=True)
  rng = np.random.default_rng(2024)
  landmark_rows = []
  for number, (identity, _, kind) in FILES.items():
    name = f"{number:06d}.jpg"
    path = os.path.join(IMAGE_DIR, name)
    five = CELEBA_FIVE_POINTS.copy()  # for images without a detectable face
    if kind == "broken":
      with open(path, "wb") as f:
        f.write(rng.bytes(600))
    elif kind == "cat":
      cat = cv2.resize(skimage.data.chelsea(), (WIDTH, HEIGHT),
                       interpolation=cv2.INTER_AREA)
      write_jpeg(path, cat)
    else:
      write_jpeg(path, celeba_face(identity in MIRRORED_IDENTITIES, rng))
      five = annotated_five_points(path)
      if kind == "offset":
        five += (40.0, 0.0)
    landmark_rows.append(
        f"{name} " + " ".join(f"{int(v):4d}" for v in five.reshape(-1)))

  with open(os.path.join(HERE, "identity_CelebA.txt"), "w") as f:
    f.writelines(f"{n:06d}.jpg {identity}\n"
                 for n, (identity, _, _) in FILES.items())
  with open(os.path.join(HERE, "list_eval_partition.txt"), "w") as f:
    f.writelines(f"{n:06d}.jpg {split}\n"
                 for n, (_, split, _) in FILES.items())
  with open(os.path.join(HERE, "list_landmarks_align_celeba.txt"), "w") as f:
    f.write(f"{len(FILES)}\n")
    f.write("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
            "leftmouth_x leftmouth_y rightmouth_x rightmouth_y \n")
    f.writelines(row + "\n" for row in landmark_rows)


if __name__ == "__main__":
  main()
