"""Writes the AFLW2000-3D dummy data: .jpg/.mat pairs in the real format.

Run from the repository root (needs the preprocess extra for dlib):
  python3 tfds_builders/aflw2000_3d/dummy_data/make_dummy_data.py

Images are crops of skimage's astronaut photograph (a real face); pt3d_68 is
dlib's 68 landmarks on each crop plus a made-up depth row, and Pose_Para a
made-up pose, stored with the real variable names and shapes. Three pairs are
good; three are broken on purpose and must be skipped by the build:
  image00008.jpg  truncated JPEG (the .mat is fine)  -> "unreadable image"
  image00010.mat  pt3d_68 holds NaN                  -> "non-finite landmarks"
  image00013.jpg  has no .mat file                   -> "unreadable mat file"
"""

import os

import cv2
import numpy as np
import scipy.io
import skimage.data

from mgc_tf.faces2d import preprocessing

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDER = os.path.join(HERE, "AFLW2000")

# (file stem, crop rows, crop columns, mirror, pitch/yaw/roll in radians)
GOOD = [
    ("image00002", (10, 230), (110, 330), False, (0.05, -0.35, 0.02)),
    ("image00004", (30, 220), (140, 330), True, (-0.10, 0.62, -0.05)),
    ("image00006", (0, 260), (90, 350), False, (0.20, 1.20, 0.10)),
]
BROKEN_IMAGE = ("image00008", (20, 220), (120, 320), False, (0.0, 0.1, 0.0))
NAN_LANDMARKS = ("image00010", (20, 220), (120, 320), False, (0.0, -0.1, 0.0))
MISSING_MAT = ("image00013", (20, 220), (120, 320), False, (0.0, 0.0, 0.0))


def crop(rows, cols, mirror):
  image = skimage.data.astronaut()[rows[0]:rows[1], cols[0]:cols[1]]
  return np.ascontiguousarray(image[:, ::-1] if mirror else image)


def write_jpeg(path, image):
  ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                          [cv2.IMWRITE_JPEG_QUALITY, 80])
  assert ok
  with open(path, "wb") as f:
    f.write(data.tobytes())


def write_mat(path, landmarks, angles):
  depth = np.linspace(-20.0, 20.0, 68)[None, :]
  pose = np.array([[*angles, 100.0, 110.0, 0.0, 0.0015]])
  scipy.io.savemat(path, {
      "pt3d_68": np.concatenate([landmarks.T.astype(np.float64), depth]),
      "Pose_Para": pose,
      "pt2d": np.full((2, 21), -1.0),
      "Shape_Para": np.zeros((199, 1)),
      "Exp_Para": np.zeros((29, 1)),
      "Illum_Para": np.zeros((1, 10)),
      "Color_Para": np.zeros((1, 7)),
      "Tex_Para": np.zeros((199, 1)),
      "roi": np.array([[0.0, 0.0, 200.0, 200.0]]),
  }, do_compression=True)


def main():
  os.makedirs(FOLDER, exist_ok=True)
  landmarker = preprocessing.FaceLandmarker(upsample_times=1)
  for stem, rows, cols, mirror, angles in (GOOD + [BROKEN_IMAGE, NAN_LANDMARKS,
                                                    MISSING_MAT]):
    image = crop(rows, cols, mirror)
    landmarks = landmarker.detect(image)[0].landmarks
    jpg = os.path.join(FOLDER, stem + ".jpg")
    write_jpeg(jpg, image)
    if stem == MISSING_MAT[0]:
      continue
    if stem == NAN_LANDMARKS[0]:
      landmarks = landmarks.copy()
      landmarks[30] = np.nan
    write_mat(os.path.join(FOLDER, stem + ".mat"), landmarks, angles)
    if stem == BROKEN_IMAGE[0]:
      with open(jpg, "rb") as f:
        head = f.read(300)
      with open(jpg, "wb") as f:
        f.write(head)


if __name__ == "__main__":
  main()
