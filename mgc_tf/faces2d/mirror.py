"""Horizontal mirroring of iBUG 68-point landmarks.

A flipped image's landmarks are the original ones moved to x' = W - 1 - x and
renumbered (left <-> right), so that each index names the same part of the
face again; `has_mirrored_numbering` tells whether that renumbering is missing.
"""

import numpy as np

# iBUG 68-point index of each point's mirror image (left <-> right), used when
# an image is flipped horizontally: point k of the flipped face is point
# MIRROR_68[k] of the original, moved to x' = width - 1 - x.
MIRROR_68 = np.array(
    list(range(16, -1, -1))                      # jaw 0..16
    + list(range(26, 21, -1))                    # right brow 17..21 <- 26..22
    + list(range(21, 16, -1))                    # left brow 22..26 <- 21..17
    + [27, 28, 29, 30]                           # nose bridge
    + [35, 34, 33, 32, 31]                       # nostrils
    + [45, 44, 43, 42, 47, 46]                   # right eye <- left eye
    + [39, 38, 37, 36, 41, 40]                   # left eye <- right eye
    + [54, 53, 52, 51, 50, 49, 48]               # outer lip, top
    + [59, 58, 57, 56, 55]                       # outer lip, bottom
    + [64, 63, 62, 61, 60]                       # inner lip, top
    + [67, 66, 65],                              # inner lip, bottom
    dtype=np.int64)


def mirror_landmarks_68(landmarks: np.ndarray, image_width: int) -> np.ndarray:
  """Landmarks of the horizontally flipped image.

  Args:
    landmarks: [68, 2] 0-based pixels in the original image.
    image_width: width W of the image, pixels.

  Returns:
    float32 [68, 2]: x' = W - 1 - x, and points renumbered with MIRROR_68 so
    that index 36 is again the outer corner of the eye on the image's left.
  """
  landmarks = np.asarray(landmarks, np.float64)
  mirrored = landmarks[MIRROR_68].copy()
  mirrored[:, 0] = (image_width - 1) - mirrored[:, 0]
  return mirrored.astype(np.float32)


def has_mirrored_numbering(landmarks: np.ndarray) -> bool:
  """True when 68 landmarks are numbered as on a mirrored face.

  In iBUG numbering point 36 (outer corner of the eye on the image's left),
  point 45 (the other outer eye corner) and point 8 (chin) run clockwise on
  screen (y down) for any upright face up to 90 degrees of yaw or roll.
  Flipping an image without renumbering its points reverses that turn.

  Args:
    landmarks: [68, 2] pixels.
  """
  points = np.asarray(landmarks, np.float64)
  eye_axis = points[45] - points[36]
  to_chin = points[8] - points[36]
  return float(eye_axis[0] * to_chin[1] - eye_axis[1] * to_chin[0]) < 0.0
