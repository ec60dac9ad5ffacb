"""Writes the multipie dummy data in the real Multi-PIE layout (needs dlib).

A fake camera rig: 96 x 96 PNG warps of the face in skimage's astronaut
photo, squeezed horizontally by cos(yaw) of the camera and rolled a little.
Some views get landmark files (dlib landmarks of the photo carried through
the warp); the others have none, so the builder detects their faces.

This folder is the manual_dir; files sit in Multi-Pie/data/session0<s>/
multiview/<subject>/<recording>/<camera>/<...>.png. Default config
(illumination 07, cameras within +/-60 degrees, windows of 3, stride 1):

  001, session 01, recording 01, illumination 07:
    13_0 (detect), 14_0 (.pts), 05_1 (detect), 05_0 (not a PNG), 04_1 (.npy),
    11_0 (-90 degrees: outside the default range), 19_1 (elevated: unused)
    windows 08_0-13_0-14_0, 13_0-14_0-05_1, 14_0-05_1-05_0, 05_1-05_0-04_1
    are kept; 05_0-04_1-19_0 keeps only 04_1: "too few views"
  002, session 02, recording 01, illumination 07:
    05_1 grey image (no face), 05_0 (detect): both windows "too few views"
  001, session 01, recording 01, illumination 00 (all_illuminations only):
    14_0 (.txt), 05_1 (detect): 2 windows

Expected: 4 examples (default), 6 (all_illuminations).
"""

import os

import cv2
import numpy as np
import skimage.data

from mgc_tf.faces2d import preprocessing

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "Multi-Pie", "data")
SIZE = 96
FACE_CENTRE = (222.0, 128.0)  # in the 512 x 512 astronaut photo
PHOTO_SCALE = 1.6  # photo pixels per view pixel
CAMERA_YAW = {"11_0": -90, "13_0": -30, "14_0": -15, "05_1": 0, "05_0": 15,
              "04_1": 30, "19_1": 45}


def view_warp(yaw_deg, roll_deg):
  """[2, 3] photo -> view: roll, squeeze x by cos(yaw), scale, centre."""
  roll = np.deg2rad(roll_deg)
  rotation = np.array([[np.cos(roll), -np.sin(roll)],
                       [np.sin(roll), np.cos(roll)]])
  squeeze = max(np.cos(np.deg2rad(yaw_deg)), 0.3)
  linear = np.diag([squeeze, 1.0]) @ rotation / PHOTO_SCALE
  centre = np.array([SIZE / 2 + yaw_deg / 15.0, SIZE / 2])
  return np.concatenate([linear, (centre - linear @ FACE_CENTRE)[:, None]],
                        axis=1)


def image_path(subject, session, recording, camera, illumination):
  folder = os.path.join(DATA, f"session{session}", "multiview", subject,
                        recording, camera)
  os.makedirs(folder, exist_ok=True)
  code = camera.replace("_", "")
  return os.path.join(
      folder, f"{subject}_{session}_{recording}_{code}_{illumination}.png")


def write_view(photo, photo_landmarks, path, camera, roll_deg=0.0,
               landmark_format=None):
  """Writes the PNG and, if asked, its landmark file (.pts/.npy/.txt)."""
  warp = view_warp(CAMERA_YAW[camera], roll_deg)
  image = cv2.warpAffine(photo, warp, (SIZE, SIZE), flags=cv2.INTER_AREA,
                         borderMode=cv2.BORDER_REPLICATE)
  assert cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_PNG_COMPRESSION, 9]), path
  landmarks = (photo_landmarks @ warp[:, :2].T + warp[:, 2]).astype(
      np.float32)
  stem = os.path.splitext(path)[0]
  if landmark_format == "pts":
    with open(stem + ".pts", "w") as f:
      f.write("version: 1\nn_points:  68\n{\n")
      for x, y in landmarks + 1.0:  # iBUG files are 1-based
        f.write(f"{x:.3f} {y:.3f}\n")
      f.write("}\n")
  elif landmark_format == "npy":
    np.save(stem + ".npy", landmarks)
  elif landmark_format == "txt":
    np.savetxt(stem + ".txt", landmarks, fmt="%.3f")


def main():
  photo = skimage.data.astronaut()
  photo_landmarks = preprocessing.default_landmarker().detect(
      photo)[0].landmarks.astype(np.float64)

  first = ("001", "01", "01")
  for camera, roll, landmark_format in [("13_0", -4, None),
                                        ("14_0", 2, "pts"),
                                        ("05_1", 0, None),
                                        ("04_1", 3, "npy"),
                                        ("11_0", 0, None),
                                        ("19_1", 0, None)]:
    write_view(photo, photo_landmarks, image_path(*first, camera, "07"),
               camera, roll, landmark_format)
  with open(image_path(*first, "05_0", "07"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n truncated")

  second = ("002", "02", "01")
  grey = np.full([SIZE, SIZE, 3], 128, np.uint8)
  assert cv2.imwrite(image_path(*second, "05_1", "07"), grey)
  write_view(photo, photo_landmarks, image_path(*second, "05_0", "07"),
             "05_0", -2)

  for camera, landmark_format in [("14_0", "txt"), ("05_1", None)]:
    write_view(photo, photo_landmarks, image_path(*first, camera, "00"),
               camera, 1, landmark_format)


if __name__ == "__main__":
  main()
