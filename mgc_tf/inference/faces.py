"""Face crops for inference: detected and aligned, or taken as given.

Two modes:

  detect   dlib finds the faces and their 68 landmarks, and each face is
           aligned to the 224 template exactly as `mgc_tf.preprocess` does
           for training (`mgc_tf.faces2d.preprocessing`). Needs the
           `preprocess` extra.
  aligned  the whole image is one face crop already aligned to the template
           (the output of `mgc_tf.preprocess`); it must be square and is
           resized to 224. Used with --aligned, and when dlib is missing.

Every crop keeps the [2, 3] transform from original to crop pixels, so
results map back into the original image (OpenCV pixel convention, see
`mgc_tf.faces2d.alignment`).
"""

import dataclasses
from typing import Callable, List, Optional

import numpy as np

from mgc_tf.faces2d import alignment
from mgc_tf.faces2d import preprocessing
from mgc_tf.io.bad_input import BadExampleError

# Side of the crops faces are aligned to, rendered at and written in.
CROP_SIZE = alignment.TEMPLATE_SIZE

NO_DLIB_MESSAGE = (
    "Face detection is unavailable ({error}); every input is taken as a face "
    "crop already aligned to the 224 template (as mgc_tf.preprocess writes "
    "them). To detect and align faces in ordinary photos and videos, "
    f"install the preprocessing extra: {preprocessing.INSTALL_COMMAND}")


@dataclasses.dataclass(frozen=True)
class FaceCrop:
  """One face, cropped and aligned to the template.

  Attributes:
    image: [224, 224, 3] uint8 RGB crop.
    transform: [2, 3] float64 affine map from original to crop pixels.
    landmarks: [68, 2] float32 detected landmarks in crop pixels, or None in
      aligned mode (nothing was detected).
    box: [4] float32 (x0, y0, x1, y1) face box in original pixels (the whole
      image in aligned mode).
  """
  image: np.ndarray
  transform: np.ndarray
  landmarks: Optional[np.ndarray]
  box: np.ndarray


def aligned_crop(image_rgb: np.ndarray) -> FaceCrop:
  """Takes a square image as an aligned crop, resized to 224.

  Args:
    image_rgb: [H, H, 3] uint8 RGB, a face aligned to the template.

  Raises:
    BadExampleError: "not a square crop" for a non-square image.
  """
  height, width = image_rgb.shape[:2]
  if height != width:
    raise BadExampleError(
        "not a square crop",
        f"{width}x{height} image: aligned mode (--aligned, or no dlib) "
        "takes square face crops aligned to the 224 template")
  # Scaling about the continuous corner (-0.5, -0.5), as the template does.
  scale = CROP_SIZE / width
  transform = np.array([[scale, 0.0, 0.5 * scale - 0.5],
                        [0.0, scale, 0.5 * scale - 0.5]])
  if width == CROP_SIZE:
    crop = np.ascontiguousarray(image_rgb)
  else:
    import cv2  # pylint: disable=g-import-not-at-top
    # cv2.resize maps pixel centres exactly as `transform` does.
    crop = cv2.resize(image_rgb, (CROP_SIZE, CROP_SIZE),
                      interpolation=cv2.INTER_AREA if width > CROP_SIZE
                      else cv2.INTER_LINEAR)
  box = np.array([-0.5, -0.5, width - 0.5, height - 0.5], np.float32)
  return FaceCrop(image=crop, transform=transform, landmarks=None, box=box)


class FaceFinder:
  """Image -> face crops, by detection or as given (module docstring).

  Args:
    landmarker: a `preprocessing.FaceLandmarker`; None selects aligned mode.
  """

  def __init__(self, landmarker: Optional[preprocessing.FaceLandmarker]):
    self.landmarker = landmarker

  @property
  def aligned(self) -> bool:
    return self.landmarker is None

  def describe(self) -> str:
    if self.aligned:
      return "inputs taken as aligned 224 crops (no detection)"
    return "dlib detection + 68 landmarks + 5-point alignment to 224"

  def find(self, image_rgb: np.ndarray, all_faces: bool = True
           ) -> List[FaceCrop]:
    """The faces in an image, largest first.

    Args:
      image_rgb: [H, W, 3] uint8 RGB.
      all_faces: every detected face, or only the largest.

    Returns:
      list of FaceCrop, at least one.

    Raises:
      BadExampleError: "no face found", bad landmarks, or (aligned mode)
        "not a square crop".
    """
    if self.aligned:
      return [aligned_crop(image_rgb)]
    faces = preprocessing.preprocess_image(
        image_rgb, self.landmarker, CROP_SIZE, all_faces=all_faces)
    return [FaceCrop(image=face.image, transform=face.transform,
                     landmarks=face.landmarks, box=face.box)
            for face in faces]


def make_face_finder(aligned: bool = False,
                     upsample_times: Optional[int] = None,
                     min_score: float = 0.0,
                     log: Callable[[str], None] = print) -> FaceFinder:
  """A detecting FaceFinder, or an aligned-mode one when asked or needed.

  When dlib or its landmark model is missing, says so once through `log`
  and falls back to aligned mode.

  Args:
    aligned: force aligned mode (no detection).
    upsample_times: dlib upsamplings (None: automatic per image).
    min_score: drop detections scoring below this.
    log: where the fallback message goes.
  """
  if aligned:
    return FaceFinder(None)
  try:
    landmarker = preprocessing.FaceLandmarker(upsample_times=upsample_times,
                                              min_score=min_score)
  except ImportError as error:  # PreprocessDependencyError is one.
    log(NO_DLIB_MESSAGE.format(error=error))
    return FaceFinder(None)
  return FaceFinder(landmarker)
