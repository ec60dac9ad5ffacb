"""Landmarks drawn on images: the dots of every overlay mgc_tf writes.

The preprocessing overlay (`preprocessing.draw_overlay`) and the inference
overlay (`mgc_tf.inference.overlay.overlay_faces`) both draw with these.
"""

import numpy as np


def landmark_radius(height: int, width: int) -> int:
  """Dot radius for drawn landmarks: 1 px per 300 px of the shorter side."""
  return max(1, int(round(min(height, width) / 300)))


def draw_points(image_uint8: np.ndarray, points: np.ndarray,
                color, radius: int, antialiased: bool = True) -> None:
  """Draws [L, 2] (x, y) pixel points as filled dots, in place.

  Points that are not finite, or farther than `radius` outside the image,
  are left out.

  Args:
    image_uint8: [H, W, 3] uint8 image, drawn on.
    points: [L, 2] pixels.
    color: (r, g, b) for an RGB image.
    radius: dot radius, pixels.
    antialiased: smooth dot edges (cv2.LINE_AA) or hard ones (cv2.LINE_8).
  """
  import cv2  # pylint: disable=g-import-not-at-top
  line_type = cv2.LINE_AA if antialiased else cv2.LINE_8
  height, width = image_uint8.shape[:2]
  for x, y in np.asarray(points, np.float64):
    if not (np.isfinite(x) and np.isfinite(y)):
      continue
    if -radius <= x < width + radius and -radius <= y < height + radius:
      cv2.circle(image_uint8, (int(round(x)), int(round(y))), radius, color,
                 -1, lineType=line_type)
