"""Image files: which names are images, and writing PNGs.

Reading is `mgc_tf.io.bad_input.read_image_rgb`, which reports an unreadable
file as a `BadExampleError` so that a dataset build can skip and count it.
"""

import os

import numpy as np

#: Extensions (lower case) of the image files that mgc_tf reads: those both
#: OpenCV and PIL decode. Used by the folder dataset builders, inference,
#: preprocessing and the MICC Florence builder.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: str) -> bool:
  """True when `path` has one of IMAGE_EXTENSIONS (case-insensitive)."""
  return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def write_png(path: str, image: np.ndarray) -> None:
  """Writes a uint8 RGB [H, W, 3] or grey [H, W] image as PNG.

  Raises:
    OSError: it could not be written.
  """
  import cv2  # pylint: disable=g-import-not-at-top
  if image.ndim == 3:
    image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
  if not cv2.imwrite(path, image):
    raise OSError(f"could not write {path}")
