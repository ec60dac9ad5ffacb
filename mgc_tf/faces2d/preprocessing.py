"""Face preprocessing: detect, 68 landmarks, align to the template, skin map.

One photograph in, training-ready crops out:

  1. dlib's HOG frontal face detector finds the faces (`FaceLandmarker`);
  2. dlib's 68-point shape predictor (iBUG order; the model file ships with the
     `face-recognition-models` package) places the landmarks;
  3. the eye centres, nose tip and mouth corners are aligned to the 224
     template with a similarity transform (`mgc_tf.faces2d.alignment`), the
     image is warped with a replicated border and the landmarks go through the
     same transform;
  4. the crop gets a per-pixel skin probability (`mgc_tf.faces2d.skin`).

dlib is an optional dependency (`pip install "mgc-tf[preprocess]"`); it is
imported when a `FaceLandmarker` is made, and its absence raises
`PreprocessDependencyError`. Aligning faces whose landmarks are already known
does not need it.

Pixel convention (OpenCV, as everywhere in mgc_tf): (x, y) = (column, row),
the centre of pixel [i, j] is at (j, i). dlib reports landmarks as integer
pixel indices (x = column, y = row), which is this convention unchanged.
"""

import dataclasses
import functools
import os
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from mgc_tf.faces2d import alignment
from mgc_tf.faces2d import drawing
from mgc_tf.faces2d.skin import skin_probability
from mgc_tf.io import images
from mgc_tf.io.bad_input import BadExampleError
from mgc_tf.io.bad_input import check_landmarks
from mgc_tf.io.bad_input import read_image_rgb
from mgc_tf.io.bad_input import SkipCounter
from mgc_tf.models import dlib_models

INSTALL_COMMAND = dlib_models.INSTALL_COMMAND
PREDICTOR_FILENAME = "shape_predictor_68_face_landmarks.dat"

# dlib's HOG detector scans an 80 x 80 window, so without upsampling it finds
# faces whose box is about 80 px or more; each upsampling halves that.
DETECTOR_WINDOW_PX = 80
# Automatic upsampling aims to find faces down to this fraction of the image's
# shorter side (a face-dataset photo shows one main face, rarely smaller).
AUTO_MIN_FACE_FRACTION = 0.25
MAX_AUTO_UPSAMPLE = 2

# Five-point spread (RMS distance from their mean) below which landmarks are
# treated as collapsed: the template's is about 40 px.
MIN_FIVE_POINT_SPREAD_PX = 1.0


class PreprocessDependencyError(ImportError):
  """dlib or its 68-point landmark model is not installed."""


@dataclasses.dataclass(frozen=True)
class Detection:
  """One detected face in an image.

  Attributes:
    box: [4] float32 (x0, y0, x1, y1), the detector's box in image pixels, as
      the continuous extent of the pixels it covers (dlib's inclusive
      left/top/right/bottom indices -/+ 0.5), so width = x1 - x0. It may reach
      past the image border.
    landmarks: [68, 2] float32 (x, y) image pixels, iBUG order.
    score: detector confidence (dlib's SVM margin; larger is surer).
  """
  box: np.ndarray
  landmarks: np.ndarray
  score: float

  @property
  def area(self) -> float:
    """Box area in square pixels."""
    return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


@dataclasses.dataclass(frozen=True)
class PreprocessedFace:
  """An aligned face crop with what training needs from it.

  Attributes:
    image: [S, S, 3] uint8 RGB crop aligned to the template.
    landmarks: [68, 2] float32 (x, y) in crop pixels.
    skin: [S, S, 1] uint8 skin probability * 255 (rounded).
    transform: [2, 3] float64 affine map from original to crop pixels.
    box: [4] float32 (x0, y0, x1, y1) face box in original pixels: the
      detector's box, or the landmarks' extent when landmarks were given.
  """
  image: np.ndarray
  landmarks: np.ndarray
  skin: np.ndarray
  transform: np.ndarray
  box: np.ndarray

  def landmarks_in_original(self) -> np.ndarray:
    """[68, 2] float64 landmarks mapped back to original image pixels."""
    return alignment.transform_points(alignment.invert_affine(self.transform),
                                      self.landmarks)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
  """Grey [H, W] or [H, W, 1], RGB or RGBA uint8 -> contiguous [H, W, 3] RGB.

  Raises:
    ValueError: for another dtype or channel count.
  """
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"expected a uint8 image; Received: dtype={image.dtype}")
  if image.ndim == 3 and image.shape[2] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=2)
  if image.ndim != 3 or image.shape[2] not in (3, 4):
    raise ValueError("expected an [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] "
                     f"image; Received: shape={image.shape}")
  return np.ascontiguousarray(image[..., :3])


def _import_dlib():
  try:
    import dlib  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise PreprocessDependencyError(
        f"Face detection needs dlib, which is not installed ({error}). "
        f"Install the preprocessing extra: {INSTALL_COMMAND}") from error
  return dlib


def find_predictor_path() -> str:
  """Path of dlib's 68-point predictor inside `face_recognition_models`.

  Raises:
    PreprocessDependencyError: package or model file missing.
  """
  return dlib_models.model_file(PREDICTOR_FILENAME,
                                "The 68-point landmark model",
                                PreprocessDependencyError)


def auto_upsample_times(height: int, width: int) -> int:
  """Upsamplings for dlib to find faces >= a quarter of the shorter side.

  The smallest k in [0, 2] with 80 / 2^k <= min(height, width) / 4: 0 for a
  512 px photo, 1 for CelebA's 178 x 218 images. Upsampling more than needed
  costs 4x time per step and adds false detections.
  """
  smallest_face = AUTO_MIN_FACE_FRACTION * min(height, width)
  for times in range(MAX_AUTO_UPSAMPLE + 1):
    if DETECTOR_WINDOW_PX / 2 ** times <= smallest_face:
      return times
  return MAX_AUTO_UPSAMPLE


class FaceLandmarker:
  """dlib HOG frontal face detector + 68-point shape predictor.

  Args:
    upsample_times: how often dlib doubles the image before detecting (each
      doubling finds faces half as large, at 4x the time); None chooses per
      image with `auto_upsample_times`.
    min_score: detections scoring below this are dropped. dlib's default
      is 0; in our checks real faces scored 0.3-1.5, and with upsampling
      round patterns (a badge) scored up to about 0.46.
    predictor_path: a dlib 68-point `.dat` model; default: the one in
      face_recognition_models.

  Attributes:
    dlib_version: the version of the dlib in use (for datasets' metadata).

  `detect` runs both stages; `detect_boxes` (the detector alone) and
  `landmarks_in_box` (the predictor in a given box) run one each.

  Raises:
    PreprocessDependencyError: dlib or the model package is missing.
    FileNotFoundError: `predictor_path` given but not a file.
  """

  def __init__(self, upsample_times: Optional[int] = None,
               min_score: float = 0.0,
               predictor_path: Optional[str] = None):
    if upsample_times is not None and upsample_times < 0:
      raise ValueError(
          f"upsample_times must be >= 0 or None; Received: {upsample_times}")
    dlib = _import_dlib()
    if predictor_path is None:
      predictor_path = find_predictor_path()
    elif not os.path.isfile(predictor_path):
      raise FileNotFoundError(
          f"dlib landmark model {predictor_path} not found (expected a "
          f"68-point {PREDICTOR_FILENAME})")
    self.upsample_times = upsample_times
    self.min_score = float(min_score)
    self.predictor_path = predictor_path
    self._dlib = dlib
    self.dlib_version = str(getattr(dlib, "__version__", "unknown"))
    self._detector = dlib.get_frontal_face_detector()
    self._predictor = dlib.shape_predictor(predictor_path)

  def detect(self, image: np.ndarray) -> List[Detection]:
    """Faces in `image`, largest box first (ties: higher score first).

    Args:
      image: uint8 grey [H, W] / [H, W, 1], RGB [H, W, 3] or RGBA [H, W, 4].

    Returns:
      list of Detection, empty when no face is found.
    """
    rgb = to_rgb_uint8(image)
    boxes, scores = self.detect_boxes(rgb)
    detections = [
        Detection(box=box, landmarks=self.landmarks_in_box(rgb, box),
                  score=float(score))
        for box, score in zip(boxes, scores)]
    detections.sort(key=lambda d: (-d.area, -d.score))
    return detections

  def detect_boxes(self, image: np.ndarray,
                   upsample_times: Optional[int] = None
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """The HOG detector alone: face boxes and scores, no landmarks.

    Args:
      image: uint8 grey, RGB or RGBA (see `detect`).
      upsample_times: overrides the landmarker's own setting for this call
        (0: the image as it is); None: the landmarker's setting.

    Returns:
      boxes: [F, 4] float32 (x0, y0, x1, y1) image pixels, the convention of
        `Detection.box`, in dlib's order.
      scores: [F] float32 detector scores (>= `min_score`).
    """
    rgb = to_rgb_uint8(image)
    times = self.upsample_times if upsample_times is None else upsample_times
    if times is None:
      times = auto_upsample_times(*rgb.shape[:2])
    if times < 0:
      raise ValueError(f"upsample_times must be >= 0; Received: {times}")
    rectangles, scores, _ = self._detector.run(rgb, int(times),
                                               self.min_score)
    boxes = np.array([[r.left() - 0.5, r.top() - 0.5, r.right() + 0.5,
                       r.bottom() + 0.5] for r in rectangles],
                     np.float32).reshape([-1, 4])
    return boxes, np.asarray(scores, np.float32).reshape([-1])

  def landmarks_in_box(self, image: np.ndarray,
                       box: Sequence[float]) -> np.ndarray:
    """The 68-point shape predictor run in a given face box.

    Args:
      image: uint8 grey, RGB or RGBA (see `detect`).
      box: [4] (x0, y0, x1, y1) image pixels, the convention of
        `Detection.box` (a detector's box, or one built otherwise); dlib
        takes it rounded to whole pixels.

    Returns:
      [68, 2] float32 (x, y) image pixels, iBUG order (whole pixels: dlib
      rounds its points).
    """
    rgb = to_rgb_uint8(image)
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box).reshape(4))
    if not all(np.isfinite([x0, y0, x1, y1])) or x1 <= x0 or y1 <= y0:
      raise ValueError(f"expected a box (x0, y0, x1, y1) with x1 > x0, "
                       f"y1 > y0; Received: box={box}")
    rectangle = self._dlib.rectangle(
        int(round(x0 + 0.5)), int(round(y0 + 0.5)),
        int(round(x1 - 0.5)), int(round(y1 - 0.5)))
    shape = self._predictor(rgb, rectangle)
    return np.array([[point.x, point.y] for point in shape.parts()],
                    dtype=np.float32)


@functools.lru_cache(maxsize=1)
def default_landmarker() -> FaceLandmarker:
  """A shared FaceLandmarker with default options (loading it takes ~1 s).

  Raises:
    PreprocessDependencyError: dlib or the model package is missing (not
      cached: a later call after installing works).
  """
  return FaceLandmarker()


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
  """[4] float32 (x0, y0, x1, y1): the extent of [L, 2] landmarks."""
  landmarks = np.asarray(landmarks, np.float32)
  return np.concatenate([landmarks.min(0), landmarks.max(0)]).astype(
      np.float32)


def crop_face(image_rgb: np.ndarray, landmarks: np.ndarray, box: np.ndarray,
              image_size: int = alignment.TEMPLATE_SIZE) -> PreprocessedFace:
  """Aligns one face with known landmarks and computes its skin map.

  Args:
    image_rgb: [H, W, 3] uint8 RGB.
    landmarks: [68, 2] (x, y) image pixels.
    box: [4] (x0, y0, x1, y1) face box in image pixels, passed through.
    image_size: side S of the crop.

  Returns:
    PreprocessedFace.

  Raises:
    BadExampleError: "wrong landmark count", "non-finite landmarks",
      "degenerate landmarks" (the five points collapse) or "landmarks outside
      image" (the five points' centre is off the image).
  """
  if image_size < 1:
    raise ValueError(f"image_size must be >= 1; Received: {image_size}")
  landmarks = check_landmarks(landmarks, source="landmarks")
  five = alignment.five_points_from_68(landmarks)
  centre = five.mean(axis=0)
  spread = np.sqrt(np.mean(np.sum((five - centre) ** 2, axis=1)))
  if spread < MIN_FIVE_POINT_SPREAD_PX:
    raise BadExampleError(
        "degenerate landmarks",
        f"eyes, nose and mouth within {spread:.2g} px of each other")
  height, width = image_rgb.shape[:2]
  if not (-0.5 <= centre[0] <= width - 0.5 and
          -0.5 <= centre[1] <= height - 0.5):
    raise BadExampleError(
        "landmarks outside image",
        f"face centre ({centre[0]:.1f}, {centre[1]:.1f}) is outside the "
        f"{width}x{height} image")
  aligned = alignment.align_face(image_rgb, landmarks, image_size)
  skin = np.round(skin_probability(aligned.image) * 255.0).astype(np.uint8)
  return PreprocessedFace(
      image=aligned.image, landmarks=aligned.landmarks,
      skin=skin[..., None], transform=aligned.transform,
      box=np.asarray(box, np.float32).reshape(4))


def preprocess_face(image: np.ndarray,
                    landmarks: Optional[np.ndarray] = None,
                    landmarker: Optional[FaceLandmarker] = None,
                    image_size: int = alignment.TEMPLATE_SIZE
                    ) -> PreprocessedFace:
  """Aligned crop, landmarks and skin map of one face (the largest).

  Args:
    image: uint8 image, RGB [H, W, 3] (grey and RGBA are converted).
    landmarks: [68, 2] (x, y) image pixels when already known (from a
      dataset's annotation); None detects them.
    landmarker: detector used when `landmarks` is None; default:
      `default_landmarker()`.
    image_size: side S of the crop; the template is scaled from 224.

  Returns:
    PreprocessedFace.

  Raises:
    BadExampleError: "no face found", or bad landmarks (see `crop_face`).
    PreprocessDependencyError: detection needed and dlib is missing.
  """
  rgb = to_rgb_uint8(image)
  if landmarks is not None:
    landmarks = check_landmarks(landmarks, source="landmarks")
    return crop_face(rgb, landmarks, landmark_box(landmarks), image_size)
  detections = (landmarker or default_landmarker()).detect(rgb)
  if not detections:
    raise BadExampleError(
        "no face found", f"{rgb.shape[1]}x{rgb.shape[0]} image")
  return crop_face(rgb, detections[0].landmarks, detections[0].box,
                   image_size)


def preprocess_image(image: np.ndarray,
                     landmarker: Optional[FaceLandmarker] = None,
                     image_size: int = alignment.TEMPLATE_SIZE,
                     all_faces: bool = False) -> List[PreprocessedFace]:
  """Detects and preprocesses the largest face, or every face.

  Args:
    image: uint8 image (grey, RGB or RGBA).
    landmarker: default `default_landmarker()`.
    image_size: side S of the crops.
    all_faces: every detected face (largest first) instead of the largest.
      A face whose landmarks cannot be aligned is left out when others can.

  Returns:
    list of PreprocessedFace, at least one.

  Raises:
    BadExampleError: "no face found", or the largest (only) face's landmarks
      are bad.
  """
  rgb = to_rgb_uint8(image)
  detections = (landmarker or default_landmarker()).detect(rgb)
  if not detections:
    raise BadExampleError(
        "no face found", f"{rgb.shape[1]}x{rgb.shape[0]} image")
  faces, first_error = [], None
  for detection in detections if all_faces else detections[:1]:
    try:
      faces.append(crop_face(rgb, detection.landmarks, detection.box,
                             image_size))
    except BadExampleError as error:
      first_error = first_error or error
  if not faces:
    raise first_error
  return faces


def preprocess_image_file(path: str,
                          landmarker: Optional[FaceLandmarker] = None,
                          image_size: int = alignment.TEMPLATE_SIZE,
                          all_faces: bool = False) -> List[PreprocessedFace]:
  """`preprocess_image` on an image file.

  Raises:
    BadExampleError: "unreadable image", "no face found", bad landmarks.
  """
  return preprocess_image(read_image_rgb(path), landmarker, image_size,
                          all_faces)


# ---------------------------------------------------------------- files ----


def list_image_files(path: str) -> List[str]:
  """[path] for a file; the sorted image files directly inside a folder.

  Image files are recognised by extension (`mgc_tf.io.images.
  IMAGE_EXTENSIONS`, any case);
  sub-folders are not searched.

  Raises:
    FileNotFoundError: `path` does not exist.
  """
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path}: no such file or folder")
  return sorted(
      os.path.join(path, name) for name in os.listdir(path)
      if name.lower().endswith(images.IMAGE_EXTENSIONS)
      and os.path.isfile(os.path.join(path, name)))


def face_output_name(image_path: str, face_index: int, all_faces: bool) -> str:
  """`<stem>` for the largest face, `<stem>_face<k>` with all_faces."""
  stem = os.path.splitext(os.path.basename(image_path))[0]
  return f"{stem}_face{face_index}" if all_faces else stem


def save_preprocessed_face(face: PreprocessedFace, output_dir: str,
                           name: str) -> List[str]:
  """Writes one face's files; returns their paths.

  Files: `<name>.png` (RGB crop), `<name>_skin.png` (8-bit grey, probability
  * 255), `<name>_landmarks.txt` (68 lines "x y", crop pixels) and
  `<name>_landmarks.npy` (float32 [68, 2], the same numbers unrounded).

  Raises:
    OSError: a file could not be written.
  """
  os.makedirs(output_dir, exist_ok=True)
  base = os.path.join(output_dir, name)
  paths = [base + ".png", base + "_skin.png", base + "_landmarks.txt",
           base + "_landmarks.npy"]
  images.write_png(paths[0], face.image)
  images.write_png(paths[1], face.skin[..., 0])
  np.savetxt(paths[2], face.landmarks, fmt="%.3f")
  np.save(paths[3], face.landmarks.astype(np.float32))
  return paths


def draw_overlay(image_rgb: np.ndarray,
                 faces: Sequence[PreprocessedFace]) -> np.ndarray:
  """Original image with each face's box (green) and landmarks (red).

  Returns:
    [H, W, 3] uint8 RGB copy of `image_rgb` with the drawing.
  """
  import cv2  # pylint: disable=g-import-not-at-top
  canvas = to_rgb_uint8(image_rgb).copy()
  radius = drawing.landmark_radius(*canvas.shape[:2])
  for face in faces:
    x0, y0, x1, y1 = np.round(face.box).astype(int)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 255, 0), radius)
    # Rounded first: dots centred within `radius` outside the image still
    # show their part inside it.
    drawing.draw_points(canvas, np.round(face.landmarks_in_original()),
                        (255, 0, 0), radius, antialiased=False)
  return canvas


def preprocess_files(paths: Sequence[str], output_dir: str,
                     landmarker: FaceLandmarker,
                     image_size: int = alignment.TEMPLATE_SIZE,
                     all_faces: bool = False, save_overlay: bool = False,
                     log: Callable[[str], None] = print) -> SkipCounter:
  """Preprocesses image files into `output_dir`, skipping bad ones.

  For each image: the largest face (or every face) is written with
  `save_preprocessed_face`, plus `<stem>_overlay.png` with `save_overlay`.
  Unreadable images and images without a face are skipped and counted; the
  counts are reported at the end.

  Args:
    paths: image files.
    output_dir: created if missing.
    landmarker: the detector.
    image_size: side S of the crops.
    all_faces: write every face, named `<stem>_face<k>`.
    save_overlay: also write the original with boxes and landmarks drawn.
    log: where the per-image progress lines go.

  Returns:
    the SkipCounter: `kept` images with at least one face written, `skipped`
    by reason.
  """
  counter = SkipCounter("preprocess", unit="images")
  total = len(paths)
  for number, path in enumerate(paths, start=1):
    prefix = f"[{number}/{total}] {path}"
    try:
      image = read_image_rgb(path)
      faces = preprocess_image(image, landmarker, image_size, all_faces)
    except BadExampleError as error:
      counter.skip(path, error)
      log(f"{prefix}: skipped ({error})")
      continue
    for index, face in enumerate(faces):
      save_preprocessed_face(face, output_dir,
                             face_output_name(path, index, all_faces))
    if save_overlay:
      stem = os.path.splitext(os.path.basename(path))[0]
      images.write_png(os.path.join(output_dir, f"{stem}_overlay.png"),
                       draw_overlay(image, faces))
    counter.keep()
    log(f"{prefix}: {len(faces)} face{'s' if len(faces) > 1 else ''}")
  counter.report()
  return counter
