"""Rendered faces composited back into the original image, landmarks drawn.

Each face is rendered in its 224 crop; the render and its mask are warped
back to the original image with the inverse of the crop's similarity
transform (bilinear) and composited with alpha = the warped mask:

  out = alpha * render + (1 - alpha) * original.

Pixels the warped crop does not cover (alpha = 0) keep the original exactly.
"""

from typing import Optional, Sequence

import numpy as np

from mgc_tf.faces2d import alignment
from mgc_tf.faces2d.drawing import draw_points
from mgc_tf.faces2d.drawing import landmark_radius

# RGB colours of the drawn landmarks.
PREDICTED_COLOR = (0, 255, 0)
DETECTED_COLOR = (255, 0, 0)


def warp_to_original(crop: np.ndarray, transform: np.ndarray,
                     height: int, width: int) -> np.ndarray:
  """Warps a crop [S, S, C] back into an [H, W, C] original frame.

  Args:
    crop: [S, S, C] float32 array in crop pixels.
    transform: [2, 3] map from original to crop pixels (the crop's).
    height: H of the original image.
    width: W of the original image.

  Returns:
    [H, W, C] float32, 0 where the crop does not reach.
  """
  import cv2  # pylint: disable=g-import-not-at-top
  warped = cv2.warpAffine(
      np.ascontiguousarray(crop, np.float32),
      alignment.invert_affine(transform).astype(np.float64), (width, height),
      flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  if warped.ndim == 2:
    warped = warped[..., None]
  return warped


def composite_face(image: np.ndarray, rendered: np.ndarray, mask: np.ndarray,
                   transform: np.ndarray) -> np.ndarray:
  """Composites one rendered face over the original image.

  Args:
    image: [H, W, 3] float32 RGB in [0, 1], the original.
    rendered: [S, S, 3] float32 render in crop pixels, 0 off the face
      (premultiplied by the mask).
    mask: [S, S, 1] float32 coverage in [0, 1].
    transform: [2, 3] original -> crop pixels.

  Returns:
    [H, W, 3] float32 RGB.
  """
  height, width = image.shape[:2]
  both = warp_to_original(np.concatenate([rendered, mask], -1), transform,
                          height, width)
  color, alpha = both[..., :3], np.clip(both[..., 3:4], 0.0, 1.0)
  # The render is premultiplied by its mask, and stays so through the
  # (linear) warp: over-compositing is color + (1 - alpha) * image.
  return np.clip(color + (1.0 - alpha) * image, 0.0, 1.0)


def overlay_faces(image_rgb: np.ndarray,
                  rendered: Sequence[np.ndarray],
                  masks: Sequence[np.ndarray],
                  transforms: Sequence[np.ndarray],
                  predicted_landmarks: Sequence[np.ndarray],
                  detected_landmarks: Optional[Sequence[Optional[np.ndarray]]]
                  = None) -> np.ndarray:
  """The original image with every face's render composited and landmarks.

  Args:
    image_rgb: [H, W, 3] uint8 RGB original.
    rendered: per face, [224, 224, 3] float32 premultiplied render.
    masks: per face, [224, 224, 1] float32 mask.
    transforms: per face, [2, 3] original -> crop pixels.
    predicted_landmarks: per face, [68, 2] model landmarks in ORIGINAL
      pixels (drawn green).
    detected_landmarks: per face, [68, 2] detected landmarks in original
      pixels or None (drawn red).

  Returns:
    [H, W, 3] uint8 RGB.
  """
  canvas = image_rgb.astype(np.float32) / 255.0
  for face_render, face_mask, transform in zip(rendered, masks, transforms):
    canvas = composite_face(canvas, face_render, face_mask, transform)
  # x / 255 * 255 rounds back to x, so pixels with alpha = 0 keep their
  # bytes exactly.
  out = np.round(canvas * 255.0).astype(np.uint8)
  radius = landmark_radius(*out.shape[:2])
  for points in detected_landmarks or ():
    if points is not None:
      draw_points(out, points, DETECTED_COLOR, radius)
  for points in predicted_landmarks:
    draw_points(out, points, PREDICTED_COLOR, radius)
  return out
