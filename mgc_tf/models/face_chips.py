"""Differentiable face chips for dlib's network, cut from our aligned crops.

dlib's face-recognition ResNet (`mgc_tf.models.dlib_resnet`) takes a 150 x
150 chip cut as `dlib.get_face_chip(image, shape, size=150, padding=0.25)`
cuts it. Our crops (and our renders of them) are aligned to the 5-point
template of `mgc_tf.facemodel.crop` instead (eye centres, nose tip, mouth
corners in a 224 x 224 crop). `cut_chips` warps such a crop into dlib's chip
geometry by one FIXED similarity transform, bilinearly, in TensorFlow, so
gradients flow from the descriptor back to the crop (and to a render).

The transform (`CROP_TO_CHIP_224_150`) is derived, not fitted to photos:
dlib's 5-point predictor finds the outer and inner eye corners and the nose
base (iBUG points 45, 42, 36, 39, 33), and `get_face_chip_details` (size 150,
padding 0.25) fits its 5-point template to them; with padding p and size S a
template point u in [0, 1]^2 sits at S (p + u) / (1 + 2 p) in the chip
(`dlib_chip_points`). Our embedded face model's mean face, rendered at its
default pose and aligned to our 5-point template as a crop would be, has
those five points too; the least-squares similarity from them to dlib's chip
points is the transform: scale 0.8576, rotation -0.03 degrees
(`tests/test_face_chips.py` derives it again and compares). It maps our
template's eye centres, nose tip and mouth corners to dlib's chip at (48.2,
45.5), (99.8, 45.5), (74.2, 83.6), (53.1, 101.3), (94.8, 101.3).

Since dlib places each chip by that face's own landmarks and we by our
template, a chip cut this way differs from dlib's own slightly, face by face.
`cut_chips(crops, landmarks=...)` places each chip by the face's own 68
landmarks instead, as dlib does: their iBUG points 45, 42, 36, 39, 33, moved
by the mean offset from those points to where dlib's 5-point predictor puts
its own five (`LANDMARK_TO_DLIB_5PT_OFFSETS_224`, measured on upscaled LFW
faces by `scripts/derive_chip_landmark_offsets.py`), give the similarity to
dlib's chip points per face. See docs/face_embedding.md for the measured
descriptor agreement of both placements.

Pixel convention (OpenCV, as everywhere in mgc_tf): (x, y) = (column, row),
the centre of pixel [i, j] is at (j, i).
"""

import enum

import numpy as np
import tensorflow as tf

from mgc_tf.facemodel import crop
from mgc_tf.render import sampling

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# dlib's 5-point chip template (dlib/image_transforms/interpolation.h,
# get_face_chip_details), unit square, padding 0, in the predictor's order:
# iBUG points 45, 42, 36, 39 (eye corners, the image's right eye first), 33.
DLIB_5PT_TEMPLATE = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])
DLIB_5PT_IBUG_INDICES = (45, 42, 36, 39, 33)
# Our 224 aligned crop -> dlib's 150 chip (pixels), derived as the module
# docstring says. One fitted to lfw_subset faces instead
# (scripts/derive_chip_transform.py) is better on held-out LFW but worse on
# the test's photos; see docs/face_embedding.md.
CROP_TO_CHIP_224_150 = np.array([
    [0.85756209, 0.00044826, -21.9072778],
    [-0.00044826, 0.85756209, -30.32373676],
])

# Mean of (dlib 5-point predictor's point - the 68-point predictor's iBUG
# point) in our 224 crop, in DLIB_5PT_IBUG_INDICES order, over 93 upscaled
# faces of skimage's lfw_subset (scripts/derive_chip_landmark_offsets.py; the
# two predictors place "the same" point up to ~1.5 px apart, with a small
# mean shift). Never measured on the photos the chip test checks.
LANDMARK_TO_DLIB_5PT_OFFSETS_224 = np.array([
    [0.5159, -0.2953],
    [0.6496, -0.7512],
    [-0.3775, -0.3727],
    [-0.2496, -0.7778],
    [0.4648, -0.2500],
])


class ChipPlacement(str, enum.Enum):
  """How a chip is placed in the crop: one fixed transform for every face,
  or by each face's own landmarks (as dlib places its chips)."""
  FIXED = "fixed"
  LANDMARKS = "landmarks"


def dlib_chip_points(size: int = CHIP_SIZE,
                     padding: float = CHIP_PADDING) -> np.ndarray:
  """[5, 2] where dlib's chip of `size`, `padding` puts its 5 template points."""
  return (padding + DLIB_5PT_TEMPLATE) / (1 + 2 * padding) * size


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Least-squares similarity source -> target as a [2, 3] matrix.

  With points as complex numbers, q = a p + b: a = sum (q - q0) conj(p - p0)
  / sum |p - p0|^2, b = q0 - a p0 (a rotation with uniform scale).
  """
  p = source[:, 0] + 1j * source[:, 1]
  q = target[:, 0] + 1j * target[:, 1]
  p0, q0 = p.mean(), q.mean()
  a = np.sum((q - q0) * np.conj(p - p0)) / np.sum(np.abs(p - p0) ** 2)
  b = q0 - a * p0
  return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def crop_to_chip_transform(crop_size: int = crop.CROP_SIZE,
                           chip_size: int = CHIP_SIZE) -> np.ndarray:
  """[2, 3] float64 matrix: our aligned crop's pixels -> dlib chip pixels.

  Args:
    crop_size: side of our square aligned crop (the template is scaled from
      224 about the image corner, as `faces2d.alignment.template_points`).
    chip_size: side of the chip (dlib's network takes 150).
  """
  # Rescale both sides about the image corner (-0.5, -0.5), as
  # `faces2d.alignment.template_points` scales the template.
  to_224 = _rescale_about_corner(crop.CROP_SIZE / crop_size)
  from_150 = _rescale_about_corner(chip_size / CHIP_SIZE)
  fixed = np.vstack([CROP_TO_CHIP_224_150, [0, 0, 1]])
  return (from_150 @ fixed @ to_224)[:2]


def chip_sampling_grid(crop_size: int = crop.CROP_SIZE,
                       chip_size: int = CHIP_SIZE) -> np.ndarray:
  """[chip, chip, 2] float64 crop coordinates (x, y) of each chip pixel."""
  forward = crop_to_chip_transform(crop_size, chip_size)
  linear_inverse = np.linalg.inv(forward[:, :2])
  offset = -linear_inverse @ forward[:, 2]
  xs, ys = np.meshgrid(np.arange(chip_size, dtype=np.float64),
                       np.arange(chip_size, dtype=np.float64))
  chip_points = np.stack([xs, ys], axis=-1)
  return chip_points @ linear_inverse.T + offset


def _rescale_about_corner(scale: float) -> np.ndarray:
  """[3, 3]: pixel coordinates of an image resized by `scale` (corner fixed)."""
  return np.array([[scale, 0, 0.5 * scale - 0.5],
                   [0, scale, 0.5 * scale - 0.5], [0, 0, 1]])


def landmark_chip_transforms(landmarks: tf.Tensor,
                             crop_size: int = crop.CROP_SIZE,
                             chip_size: int = CHIP_SIZE) -> tf.Tensor:
  """Each face's crop -> chip similarity, placed by its own landmarks.

  As `similarity` (least squares, closed form), batched in TensorFlow: from
  the landmarks' iBUG points 45, 42, 36, 39, 33 plus
  `LANDMARK_TO_DLIB_5PT_OFFSETS_224` to `dlib_chip_points()`.

  Args:
    landmarks: [B, 68, 2] float landmarks in the crop's pixels (x, y).
    crop_size: side S of the crops the landmarks are in.
    chip_size: side of the chips.

  Returns:
    [B, 3, 3] float32 matrices (last row 0, 0, 1): crop pixels -> chip
    pixels. A face whose five points (nearly) coincide, e.g. all-zero
    landmarks of a sample that has none, gets the fixed transform
    (`crop_to_chip_transform`) instead.
  """
  landmarks = tf.cast(tf.convert_to_tensor(landmarks), tf.float32)
  if landmarks.shape.rank != 3 or landmarks.shape[1:] != (68, 2):
    raise ValueError("`landmarks` must have shape [B, 68, 2]. Received: "
                     f"landmarks.shape={tuple(landmarks.shape)}")
  to_224 = _rescale_about_corner(crop.CROP_SIZE / crop_size)
  from_150 = _rescale_about_corner(chip_size / CHIP_SIZE)
  points = tf.gather(landmarks, DLIB_5PT_IBUG_INDICES, axis=1)
  points = points * to_224[0, 0] + to_224[0, 2] + tf.constant(
      LANDMARK_TO_DLIB_5PT_OFFSETS_224, tf.float32)
  target = tf.constant(dlib_chip_points(), tf.float32)
  source_mean = tf.reduce_mean(points, axis=1, keepdims=True)  # [B, 1, 2]
  target_mean = tf.reduce_mean(target, axis=0)  # [2]
  p = points - source_mean
  q = target - target_mean
  norm = tf.reduce_sum(p ** 2, axis=[1, 2])
  # A real face's five points spread over thousands of px^2 (eyes ~50 px
  # apart); below 100 there is no face to place by (e.g. zeros).
  valid = norm > 100.0
  norm = tf.where(valid, norm, tf.ones_like(norm))
  # a = sum q conj(p) / sum |p|^2 with points as complex numbers.
  a_re = tf.reduce_sum(q[:, 0] * p[..., 0] + q[:, 1] * p[..., 1], 1) / norm
  a_im = tf.reduce_sum(q[:, 1] * p[..., 0] - q[:, 0] * p[..., 1], 1) / norm
  mx, my = source_mean[:, 0, 0], source_mean[:, 0, 1]
  b_x = target_mean[0] - (a_re * mx - a_im * my)
  b_y = target_mean[1] - (a_im * mx + a_re * my)
  zeros, ones = tf.zeros_like(a_re), tf.ones_like(a_re)
  per_face = tf.stack([tf.stack([a_re, -a_im, b_x], -1),
                       tf.stack([a_im, a_re, b_y], -1),
                       tf.stack([zeros, zeros, ones], -1)], axis=1)
  placed = (tf.constant(from_150, tf.float32) @ per_face @
            tf.constant(to_224, tf.float32))
  fixed = tf.constant(np.vstack([crop_to_chip_transform(crop_size,
                                                        chip_size),
                                 [0, 0, 1]]), tf.float32)
  return tf.where(valid[:, None, None], placed, fixed[None])


def cut_chips(crops: tf.Tensor, chip_size: int = CHIP_SIZE,
              landmarks: tf.Tensor = None,
              name: str = "cut_face_chips") -> tf.Tensor:
  """Warps aligned crops into dlib's chip geometry, differentiably.

  Args:
    crops: [B, S, S, C] float images aligned to our 5-point template (S = 224
      for the standard crop; any value range).
    chip_size: side of the chips.
    landmarks: optional [B, 68, 2] landmarks in the crops' pixels: each chip
      is then placed by its face's landmarks (`landmark_chip_transforms`)
      instead of the fixed transform. They are data: no gradient flows to
      them.
    name: name scope of the ops.

  Returns:
    [B, chip_size, chip_size, C] chips, bilinear samples of `crops`, same
    dtype and value range; samples outside the crop are 0 (dlib's chips are
    black outside the image too). Differentiable with respect to `crops`.
  """
  with tf.name_scope(name):
    crops = tf.convert_to_tensor(crops)
    if crops.shape.rank != 4 or crops.shape[1] != crops.shape[2]:
      raise ValueError("`crops` must have shape [B, S, S, C]. Received: "
                       f"crops.shape={tuple(crops.shape)}")
    if crops.shape[1] is None:
      raise ValueError("`crops` must have a static size S.")
    batch = tf.shape(crops)[0]
    if landmarks is None:
      grid = tf.constant(chip_sampling_grid(int(crops.shape[1]), chip_size),
                         crops.dtype)
      grid = tf.tile(grid[tf.newaxis], [batch, 1, 1, 1])
    else:
      forward = landmark_chip_transforms(tf.stop_gradient(landmarks),
                                         int(crops.shape[1]), chip_size)
      inverse = tf.linalg.inv(forward)[:, :2]  # [B, 2, 3]
      xs, ys = np.meshgrid(np.arange(chip_size, dtype=np.float32),
                           np.arange(chip_size, dtype=np.float32))
      chip_points = tf.constant(np.stack([xs, ys, np.ones_like(xs)], -1))
      grid = tf.einsum("bij,hwj->bhwi", inverse, chip_points)
      grid = tf.cast(grid, crops.dtype)
    values, _ = sampling.bilinear_sample(crops, grid)
    return values
