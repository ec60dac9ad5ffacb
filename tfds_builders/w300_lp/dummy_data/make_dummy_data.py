"""Writes the w300_lp dummy data in the real 300W-LP layout (needs dlib).

The images are 128 x 128 warps of the face in skimage's astronaut photo
(horizontal squeezes stand in for 300W-LP's profiling; the real images are
450 x 450). dlib landmarks the photo once; each view's landmarks are those
carried through its warp, stored 1-based as in MATLAB. The `.mat` files are
MATLAB v5 files written by scipy with the real variables, shapes and dtypes
(float64):

  <set>/<stem>.mat               pt2d [2, 68], Pose_Para [1, 7] (pitch, yaw,
                                 roll, tx, ty, tz, scale), Shape_Para [199, 1],
                                 Exp_Para [29, 1], Illum_Para [1, 10],
                                 Color_Para [1, 7], Tex_Para [199, 1],
                                 roi [1, 4]
  landmarks/<subset>/<stem>_pts.mat   pts_2d [68, 2], pts_3d [68, 2]

pts_2d / pt2d have their jaw line moved 2 px right (standing in for the
visible-contour 2D annotation), so tests can tell which set was used.

Groups (this folder is the manual_dir; the data sit in 300W_LP/):
  AFW/AFW_111_1_{0,1,2}          3 views, landmark files       -> kept
  AFW_Flip/AFW_111_1_{0,1,2}     mirrors of AFW; pt2d mirrored without
                                 renumbering                   -> kept (flips)
  HELEN/HELEN_222_1_{0,1}        HELEN_222_1_1.mat truncated   -> view dropped,
                                                                  too few views
  IBUG/IBUG_image_003_1_{0,1}    no landmark files: pt2d       -> kept
  LFPW/LFPW_image_train_0001_{0,1,2}  _2.jpg is not a JPEG     -> kept, 2 views

Expected: 3 examples (default config), 4 (with_flips).
"""

import os

import cv2
import numpy as np
import scipy.io
import skimage.data

from mgc_tf.faces2d import preprocessing

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "300W_LP")
SIZE = 128
FACE_CENTRE = (222.0, 128.0)  # in the 512 x 512 astronaut photo
PHOTO_SCALE = 1.25  # photo pixels per view pixel
JAW = slice(0, 17)


def view_warp(yaw_deg, roll_deg, shift):
  """[2, 3] photo -> view: roll, squeeze x by cos(yaw), scale, centre."""
  roll = np.deg2rad(roll_deg)
  rotation = np.array([[np.cos(roll), -np.sin(roll)],
                       [np.sin(roll), np.cos(roll)]])
  squeeze = np.cos(np.deg2rad(yaw_deg))
  linear = np.diag([squeeze, 1.0]) @ rotation / PHOTO_SCALE
  centre = np.array([SIZE / 2 + shift[0], SIZE / 2 + shift[1]])
  return np.concatenate([linear, (centre - linear @ FACE_CENTRE)[:, None]],
                        axis=1)


def write_jpeg(path, image_rgb):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  assert cv2.imwrite(path, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_JPEG_QUALITY, 85]), path


def image_mat(pt2d_one_based, pose_para, seed):
  """The variables of a 300W-LP image .mat (float64, real shapes)."""
  rng = np.random.default_rng(seed)
  return {
      "pt2d": pt2d_one_based.T.astype(np.float64),
      "Pose_Para": np.asarray(pose_para, np.float64).reshape(1, 7),
      "Shape_Para": rng.normal(0, 1e5, [199, 1]),
      "Exp_Para": rng.normal(0, 1, [29, 1]),
      "Illum_Para": rng.uniform(0, 1, [1, 10]),
      "Color_Para": np.array([[1, 1, 1, 0, 0, 0, 1]], np.float64),
      "Tex_Para": rng.normal(0, 10, [199, 1]),
      "roi": np.array([[1, 1, SIZE, SIZE]], np.float64),
  }


def write_view(image_set, stem, photo, photo_landmarks, yaw_deg, roll_deg,
               shift, with_landmark_file=True):
  """Writes <set>/<stem>.jpg, .mat and landmarks/<set>/<stem>_pts.mat."""
  warp = view_warp(yaw_deg, roll_deg, shift)
  image = cv2.warpAffine(photo, warp, (SIZE, SIZE), flags=cv2.INTER_AREA,
                         borderMode=cv2.BORDER_REPLICATE)
  pts_3d = photo_landmarks @ warp[:, :2].T + warp[:, 2] + 1.0  # 1-based
  pts_2d = pts_3d.copy()
  pts_2d[JAW, 0] += 2.0
  pose_para = [0.02, np.deg2rad(yaw_deg), np.deg2rad(roll_deg),
               SIZE / 2 + shift[0], SIZE / 2 + shift[1], 0.0, 1.0e-3]
  write_jpeg(os.path.join(ROOT, image_set, stem + ".jpg"), image)
  scipy.io.savemat(os.path.join(ROOT, image_set, stem + ".mat"),
                   image_mat(pts_2d, pose_para, seed=len(stem)),
                   do_compression=True)
  if with_landmark_file:
    folder = os.path.join(ROOT, "landmarks", image_set)
    os.makedirs(folder, exist_ok=True)
    scipy.io.savemat(os.path.join(folder, stem + "_pts.mat"),
                     {"pts_2d": pts_2d, "pts_3d": pts_3d},
                     do_compression=True)
  return image, pts_2d, pose_para


def write_flipped(stem, image, pts_2d, pose_para):
  """AFW_Flip/<stem>: the mirrored image; pt2d mirrored, not renumbered."""
  flipped_pts = pts_2d.copy()
  flipped_pts[:, 0] = SIZE + 1.0 - pts_2d[:, 0]  # 1-based mirror
  pitch, yaw, roll, tx, ty, tz, scale = pose_para
  flipped_pose = [pitch, -yaw, -roll, SIZE + 1.0 - tx, ty, tz, scale]
  write_jpeg(os.path.join(ROOT, "AFW_Flip", stem + ".jpg"),
             np.ascontiguousarray(image[:, ::-1]))
  scipy.io.savemat(os.path.join(ROOT, "AFW_Flip", stem + ".mat"),
                   image_mat(flipped_pts, flipped_pose, seed=len(stem)),
                   do_compression=True)


def main():
  photo = skimage.data.astronaut()
  photo_landmarks = preprocessing.default_landmarker().detect(
      photo)[0].landmarks.astype(np.float64)

  for k, (yaw, roll) in enumerate([(0, 0), (25, 3), (45, -3)]):
    stem = f"AFW_111_1_{k}"
    image, pts_2d, pose = write_view("AFW", stem, photo, photo_landmarks,
                                     yaw, roll, (0, 0))
    write_flipped(stem, image, pts_2d, pose)

  for k, yaw in enumerate([0, 20]):
    write_view("HELEN", f"HELEN_222_1_{k}", photo, photo_landmarks, yaw, 5,
               (4, -2))
  broken = os.path.join(ROOT, "HELEN", "HELEN_222_1_1.mat")
  with open(broken, "rb") as f:
    data = f.read()
  with open(broken, "wb") as f:
    f.write(data[:len(data) // 3])  # truncated download

  for k, yaw in enumerate([0, 30]):
    write_view("IBUG", f"IBUG_image_003_1_{k}", photo, photo_landmarks, yaw,
               -6, (-3, 3), with_landmark_file=False)

  for k, yaw in enumerate([0, 15, 35]):
    write_view("LFPW", f"LFPW_image_train_0001_{k}", photo, photo_landmarks,
               yaw, 0, (2, 2))
  with open(os.path.join(ROOT, "LFPW", "LFPW_image_train_0001_2.jpg"),
            "wb") as f:
    f.write(b"<html>404 Not Found</html>\n")


if __name__ == "__main__":
  main()
