"""5-point similarity alignment of a face to the 224 x 224 crop template.

Pixel convention (OpenCV, as everywhere in mgc_tf): (x, y) = (column, row),
the centre of pixel [i, j] is at (j, i). Landmarks are in this convention, so
they map through the same 2 x 3 matrix that `cv2.warpAffine` applies.
"""

import dataclasses

import numpy as np

from mgc_tf.facemodel import crop
from mgc_tf.geometry import similarity

TEMPLATE_SIZE = crop.CROP_SIZE

# Eye centres, nose tip, mouth corners in a 224 x 224 crop (DESIGN.md section 6);
# defined once in `mgc_tf.facemodel.crop`, where the face models' camera is.
TEMPLATE_5PT_224 = crop.TEMPLATE_5PT_224


def template_points(image_size: int = TEMPLATE_SIZE) -> np.ndarray:
  """[5, 2] template points for a square crop of `image_size` pixels."""
  # Scale about the continuous image corner (-0.5, -0.5) so the template keeps
  # its place relative to the crop borders at every size.
  return (TEMPLATE_5PT_224 + 0.5) * (image_size / TEMPLATE_SIZE) - 0.5


def five_points_from_68(landmarks: np.ndarray) -> np.ndarray:
  """Eye centres, nose tip and mouth corners from 68 iBUG landmarks.

  Args:
    landmarks: [68, 2] (or [..., 68, 2]) pixel coordinates.

  Returns:
    [5, 2] (or [..., 5, 2]): left eye centre (mean of 36-41), right eye centre
    (mean of 42-47), nose tip (30), mouth corners (48, 54), in image order
    (the subject's right eye, on the image's left, first).
  """
  landmarks = np.asarray(landmarks, dtype=np.float64)
  return np.stack([
      landmarks[..., 36:42, :].mean(axis=-2),
      landmarks[..., 42:48, :].mean(axis=-2),
      landmarks[..., 30, :],
      landmarks[..., 48, :],
      landmarks[..., 54, :],
  ], axis=-2)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Least-squares similarity (rotation, uniform scale, shift) source->target.

  Minimises sum_i |s R p_i + t - q_i|^2 over proper rotations (no reflection),
  in closed form (Umeyama 1991).

  Args:
    source: [P, 2] points p_i, P >= 2 and not all equal.
    target: [P, 2] points q_i.

  Returns:
    [2, 3] float64 matrix M = [s R | t].

  Raises:
    ValueError: on mismatched shapes or degenerate (coincident) source points.
  """
  source = np.asarray(source, dtype=np.float64)
  target = np.asarray(target, dtype=np.float64)
  if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2:
    raise ValueError(f"source {source.shape} and target {target.shape} must "
                     "both be [P, 2]")
  scale, rotation, translation = similarity.umeyama(source, target)
  return np.concatenate([scale * rotation, translation[:, None]], axis=1)


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
  """Applies a [2, 3] affine transform to [..., 2] points."""
  points = np.asarray(points, dtype=np.float64)
  return points @ transform[:, :2].T + transform[:, 2]


def invert_affine(transform: np.ndarray) -> np.ndarray:
  """Inverse of a [2, 3] affine transform, as [2, 3]."""
  linear = np.linalg.inv(transform[:, :2])
  return np.concatenate([linear, -linear @ transform[:, 2:]], axis=1)


@dataclasses.dataclass(frozen=True)
class AlignedFace:
  """A face cropped to the template.

  Attributes:
    image: [S, S, C] crop, dtype of the input image.
    landmarks: [68, 2] float32 landmarks in crop pixels.
    transform: [2, 3] float64 map from original to crop pixel coordinates.
  """
  image: np.ndarray
  landmarks: np.ndarray
  transform: np.ndarray


def warp_to_crop(image: np.ndarray, transform: np.ndarray,
                 image_size: int) -> np.ndarray:
  """Warps `image` [H, W, C] by `transform` into an [S, S, C] crop.

  Bilinear, with the border replicated (no black corners on faces near the
  image edge).
  """
  import cv2  # pylint: disable=g-import-not-at-top
  crop = cv2.warpAffine(image, transform.astype(np.float64),
                        (image_size, image_size), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
  if crop.ndim == 2 and image.ndim == 3:
    crop = crop[..., None]
  return crop


def align_face(image: np.ndarray, landmarks: np.ndarray,
               image_size: int = TEMPLATE_SIZE) -> AlignedFace:
  """Crops the face with 68 `landmarks` to the 5-point template.

  Args:
    image: [H, W, C] image (uint8 or float).
    landmarks: [68, 2] pixel coordinates in `image`.
    image_size: side S of the square crop; the template is scaled from 224.

  Returns:
    AlignedFace with the crop, the landmarks carried through the warp and
    the transform.
  """
  landmarks = np.asarray(landmarks, dtype=np.float64)
  transform = similarity_transform(five_points_from_68(landmarks),
                                   template_points(image_size))
  crop = warp_to_crop(image, transform, image_size)
  return AlignedFace(
      image=crop,
      landmarks=transform_points(transform, landmarks).astype(np.float32),
      transform=transform)
