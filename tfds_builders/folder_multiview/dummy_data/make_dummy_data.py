"""Writes the folder_multiview dummy data (run from anywhere; needs dlib).

Views are warps of the face in skimage's astronaut photo (small rotations,
horizontal squeezes that mimic yaw, shifts), 128 x 128 JPEGs. dlib
landmarks the photo once; each view's landmarks are that set carried through
the view's warp. Layout (this folder is the manual_dir):

  alice/a_0.jpg + a_0.pts       iBUG .pts, 1-based
  alice/a_1.jpg + a_1.txt       68 lines "x y", 0-based
  alice/a_2.jpg                 no landmarks: the builder detects them
  alice/broken.jpg              not an image       -> view dropped
  bob/session1/b_0.jpg + .npy   [68, 2] float32, 0-based
  bob/session1/b_1.jpg + .npy
  bob/session2/c_0.jpg + .npy
  bob/session2/c_1.jpg + .txt   5 lines only       -> view dropped, and the
                                                      group has 1 view left:
                                                      "too few views"

Expected build: 2 examples (alice, bob/session1).
"""

import os

import cv2
import numpy as np
import skimage.data

from mgc_tf.faces2d import preprocessing

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 128
# Centre of the astronaut's face in the 512 x 512 photo, pixels.
FACE_CENTRE = (222.0, 128.0)
# Photo pixels per output pixel at squeeze 1.
PHOTO_SCALE = 1.25


def view_warp(rotation_deg: float, squeeze: float, shift=(0.0, 0.0)):
  """[2, 3] photo -> view map: rotate, squeeze x (fake yaw), scale, centre."""
  angle = np.deg2rad(rotation_deg)
  rotation = np.array([[np.cos(angle), -np.sin(angle)],
                       [np.sin(angle), np.cos(angle)]])
  linear = np.diag([squeeze, 1.0]) @ rotation / PHOTO_SCALE
  centre = np.array([SIZE / 2 + shift[0], SIZE / 2 + shift[1]])
  offset = centre - linear @ np.array(FACE_CENTRE)
  return np.concatenate([linear, offset[:, None]], axis=1)


def make_view(photo, photo_landmarks, rotation_deg, squeeze, shift=(0, 0)):
  warp = view_warp(rotation_deg, squeeze, shift)
  image = cv2.warpAffine(photo, warp, (SIZE, SIZE), flags=cv2.INTER_AREA,
                         borderMode=cv2.BORDER_REPLICATE)
  landmarks = photo_landmarks @ warp[:, :2].T + warp[:, 2]
  return image, landmarks.astype(np.float32)


def write_jpeg(path, image_rgb):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  ok = cv2.imwrite(path, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                   [cv2.IMWRITE_JPEG_QUALITY, 85])
  assert ok, path


def write_pts(path, landmarks):
  with open(path, "w") as f:
    f.write("version: 1\nn_points:  68\n{\n")
    for x, y in landmarks + 1.0:  # iBUG files are 1-based
      f.write(f"{x:.3f} {y:.3f}\n")
    f.write("}\n")


def main():
  photo = skimage.data.astronaut()
  photo_landmarks = preprocessing.default_landmarker().detect(
      photo)[0].landmarks.astype(np.float64)

  def path(*parts):
    return os.path.join(HERE, *parts)

  image, landmarks = make_view(photo, photo_landmarks, 0, 1.0)
  write_jpeg(path("alice", "a_0.jpg"), image)
  write_pts(path("alice", "a_0.pts"), landmarks)
  image, landmarks = make_view(photo, photo_landmarks, 8, 0.85, (3, 0))
  write_jpeg(path("alice", "a_1.jpg"), image)
  np.savetxt(path("alice", "a_1.txt"), landmarks, fmt="%.3f")
  image, _ = make_view(photo, photo_landmarks, -6, 0.9, (-3, 2))
  write_jpeg(path("alice", "a_2.jpg"), image)
  with open(path("alice", "broken.jpg"), "wb") as f:
    f.write(b"this is not a JPEG file\n")

  for folder, stem, rotation, squeeze in [("session1", "b_0", 4, 0.95),
                                          ("session1", "b_1", -4, 0.8),
                                          ("session2", "c_0", 0, 0.9),
                                          ("session2", "c_1", 10, 0.9)]:
    image, landmarks = make_view(photo, photo_landmarks, rotation, squeeze)
    write_jpeg(path("bob", folder, stem + ".jpg"), image)
    if stem == "c_1":
      np.savetxt(path("bob", folder, stem + ".txt"), landmarks[:5],
                 fmt="%.3f")
    else:
      np.save(path("bob", folder, stem + ".npy"), landmarks)


if __name__ == "__main__":
  main()
