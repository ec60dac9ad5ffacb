"""68 landmarks "as a real detector gives them" for crops with known truth.

A rendered view comes with exact landmarks; a real pipeline would have had
dlib's HOG frontal face detector and 68-point shape predictor instead (the
`preprocess` extra, `mgc_tf.faces2d.preprocessing.FaceLandmarker`). Given a
crop and its true landmarks, this module gives what that pipeline gives, and
a status per view:

  * the shape predictor runs in `detector_box(true_landmarks)`, the box the
    HOG detector puts around such a face (calibrated, see below), so the
    result does not depend on the detector's occasional false or misplaced
    boxes;
  * the HOG detector runs too, to record whether a real pipeline would have
    found this face at all;
  * the crop is resized to WORK_SIZE (224) px for both: dlib's HOG window is
    80 px, and a 112 px crop shows a face about 75 px wide. Measured on the
    synthetic test renders, detecting in the crop resized to 224 px finds as
    many faces as 3x or 4x resizing or padding the crop by a quarter of its
    side (92-95 % at |yaw| < 10 degrees, for each of them), with HOG taking
    5 ms per view instead of 11-46 ms, and S = 64, 112 and 224 crops give
    the same rates and errors at that size. `detect_landmarks` takes about
    7 ms per view on one core of the 2-core machine (HOG 5 ms, predictor
    ~3 ms on the views HOG finds).

Status per view (`LandmarkStatus`):

  0 DETECTED   the HOG detector found the face and the predictor's landmarks
               are within DRIFT_NME of the truth: the predictor's output.
  1 DRIFTED    the HOG detector found the face but the predictor's NME
               exceeds DRIFT_NME (a failed fit at large yaw): the
               predictor's output, kept as it is, and flagged.
  2 NOT_FOUND  the HOG detector finds no face here: a real pipeline would
               have no landmarks, so the view gets truth + modelled noise
               (`modelled_landmarks`), like MODELLED.
  3 MODELLED   no detector was run (dlib is not installed): truth +
               modelled noise.

Why NOT_FOUND views get modelled noise rather than the predictor's output in
the true box (scripts/measure_landmark_detector.py measures both): beyond
60 degrees the detector finds (almost) no face and the predictor, placed in
the true box anyway, fails outright (NME 13.5, 17.6 and 22.9 % at 60-70,
70-80 and 80-90 degrees: the far eye and the jaw drawn across the cheek or
onto the background). Below 50 degrees its output on the views HOG misses
is nearly as good as on those it finds (0.3-1.0 points of NME worse), but a
real pipeline would not have it, and choosing per view by the error against
the truth would make the kept landmarks better than a detector's. So the
reading of the issue ("where no detection exists, ground truth plus noise")
holds; the NOT_FOUND status still tells these views from MODELLED ones.

Errors and sizes are in units of the face size `face_size` = sqrt(w h) of
the true landmarks' bounding box: the normaliser of `mgc_tf.evaluation.
metrics.landmark_nme` (the tests check they agree), so `landmark_nme` here
is the evaluation's NME.

The true landmarks of the synthetic renders are projections of fixed mesh
vertices ("3D" landmarks: at large yaw the far jaw contour is drawn through
the head), while dlib places the contour on the visible silhouette ("2D"
landmarks), and its jaw line is not the face model's even at frontal
views. Part of the measured error is that convention, not noise.
"""

import dataclasses
import enum
import os
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from mgc_tf.faces2d import preprocessing

#: Side, pixels, the crop is resized to before detecting (see module doc).
WORK_SIZE = 224

# --- Detector box calibration -------------------------------------------------
# The box dlib's HOG frontal detector draws around a face, as a function of
# its true landmarks: a square of side BOX_SCALE * m, centred at the centre
# of the inner landmarks' bounding box (points 17-67: brows, nose, eyes,
# mouth) + BOX_OFFSET * m, where m = the larger side of that bounding box.
# The inner points are used because they stay on the face at every yaw (the
# far jaw contour of the true landmarks does not), and the larger side
# because it is the face's height once the head turns.
# Fitted by scripts/measure_landmark_detector.py as the means over the 303
# frontal views (|yaw| < 20 degrees) of 480 synthetic test examples at
# S = 112 where the detector fired (crop resized to 224 px):
#   side / m = 1.396 (sd 0.11: dlib's boxes are squares whose side steps
#   through a 6/5 image pyramid, 63, 75 or 90 px at S = 112, so the ratio
#   is quantised to about +/-10 %), centre offset / m = (+0.006, +0.018)
#   (sd 0.046, 0.057). IoU of this box with the real ones: median 0.85 at
#   |yaw| < 20 (min 0.63), 0.80 at 30-70 degrees, 0.71 at 70-80 (the real
#   box moves towards the nose as the head turns, by roughly 0.0015 m per
#   degree of yaw; not modelled).
INNER_LANDMARKS = slice(17, 68)
BOX_SCALE = 1.396
BOX_OFFSET = (0.006, 0.018)

#: A HOG box counts as finding this face when its IoU with `detector_box`
#: reaches this (the calibrated box overlaps the real ones with IoU >= 0.63
#: on every frontal view; the few small boxes, 36-53 px at S = 112, that
#: the detector puts on part of a face stay below it).
FOUND_MIN_IOU = 0.5

#: NME (fraction of `face_size`) above which a found face's predicted
#: landmarks count as drifted. Measured: on the 431 found views at |yaw| <
#: 30 degrees, where the fits are visibly right, the predictor's NME never
#: exceeds 6.6 % (99th percentile 5.8 %; the error there is mostly the jaw
#: line convention); looking at the found views between 7 and 12 %, visible
#: failures (the far eye and brow pushed past the nose onto the background)
#: start at about 9 %, while the views below it have their error on the jaw
#: contour. (Landmark papers count failures at 8 % or 10 % NME, mostly
#: with other normalisers.)
DRIFT_NME = 0.09

# --- Noise model --------------------------------------------------------------
# modelled = truth + face_size * (shared + independent). Per coordinate c in
# (x, y) the std is sigma_c(|yaw|) (`noise_std`): piecewise linear through
# NOISE_STD_XY[:, c] at NOISE_KNOTS_DEGREES, constant below the first knot,
# and beyond the last knot rising with NOISE_SLOPE_BEYOND[c] per degree
# (|yaw| clipped to 90). Of its variance, the fraction NOISE_SHARED_FRACTION
# is one offset shared by the 68 points of a view (the detector's errors are
# correlated: the whole set slides), the rest is independent per point.
# Fitted by scripts/measure_landmark_detector.py where the detector works,
# i.e. on the views the HOG detector finds (drifted ones included): the
# knots are the mean |yaw| of the 10-degree bins with >= 20 such views, the
# values their RMS error per coordinate (in face sizes); the slope beyond is
# that of the least-squares line through those bins (weighted by views), so
# the model does not follow the failed fits of 60-70 degrees (11 views, RMS
# x 19.1 %); the shared fraction is sum over those views of (per-view mean
# error)^2 / sum of (mean squared error): 0.134 (x 0.118, y 0.157).
# Measured on 480 test examples (1440 views) at S = 112 (docs/datasets/
# landmark_detector_measurement.md, results/landmark_detector/
# measurement.json); NOISE_STD_XY's rows are the bins' RMS errors x, y.
# The model is zero-mean: the detector's error also has a systematic part
# per landmark (its jaw line is not the face model's: RMS over landmarks of
# the mean error 2.6 % at 0-10 degrees, 4.5 % at 40-50), which the model
# folds into its spread instead of copying. With matched RMS, its NME is
# 0.7-2.2 points above the detector's below 60 degrees (Gaussian errors
# have a larger mean distance than the detector's heavy-tailed ones for the
# same RMS).
NOISE_KNOTS_DEGREES = (5.0, 14.8, 24.8, 34.5, 44.9, 54.2)
NOISE_STD_XY = ((0.0287, 0.0381),   #  0-10 degrees, 152 found views
                (0.0345, 0.0377),   # 10-20, 151
                (0.0419, 0.0384),   # 20-30, 128
                (0.0535, 0.0456),   # 30-40, 100
                (0.0796, 0.0554),   # 40-50,  69
                (0.1155, 0.0576))   # 50-60,  27
NOISE_SLOPE_BEYOND = (0.00135, 0.00040)
NOISE_SHARED_FRACTION = 0.134
MAX_YAW_DEGREES = 90.0


class LandmarkStatus(enum.IntEnum):
  """Where a view's landmarks come from (see the module docstring)."""
  DETECTED = 0
  DRIFTED = 1
  NOT_FOUND = 2
  MODELLED = 3


@dataclasses.dataclass(frozen=True)
class DetectedLandmarks:
  """One view's landmarks as a real pipeline gives them.

  Attributes:
    landmarks: [68, 2] float32 (x, y) crop pixels, iBUG order.
    status: LandmarkStatus.
  """
  landmarks: np.ndarray
  status: LandmarkStatus


@dataclasses.dataclass(frozen=True)
class DetectorRun:
  """Everything the detector does on one view (for measuring it).

  Attributes:
    predicted: [68, 2] float32 crop pixels: the shape predictor in `box`.
    box: [4] float32 (x0, y0, x1, y1) crop pixels, `detector_box` of the
      truth.
    hog_boxes: [F, 4] float32 crop pixels, every HOG detection.
    hog_scores: [F] float32.
    found: whether a HOG box has IoU >= FOUND_MIN_IOU with `box`.
    nme: NME of `predicted` against the truth (fraction of `face_size`).
    predicted_in_hog_box: [68, 2] float32 crop pixels, the predictor in the
      found HOG box that overlaps `box` most (what a plain pipeline does),
      or None when not found.
  """
  predicted: np.ndarray
  box: np.ndarray
  hog_boxes: np.ndarray
  hog_scores: np.ndarray
  found: bool
  nme: float
  predicted_in_hog_box: Optional[np.ndarray] = None


def _check_landmarks(landmarks) -> np.ndarray:
  landmarks = np.asarray(landmarks, np.float64)
  if landmarks.shape != (68, 2):
    raise ValueError(f"expected [68, 2] landmarks; Received: shape="
                     f"{landmarks.shape}")
  if not np.all(np.isfinite(landmarks)):
    raise ValueError("landmarks must be finite")
  return landmarks


def face_size(landmarks: np.ndarray) -> np.ndarray:
  """sqrt(w h) of the landmarks' bounding box (metrics.box_size).

  Args:
    landmarks: [..., L, 2] pixels.

  Returns:
    [...] pixels.
  """
  landmarks = np.asarray(landmarks, np.float64)
  extent = landmarks.max(axis=-2) - landmarks.min(axis=-2)
  return np.sqrt(extent[..., 0] * extent[..., 1])


def landmark_nme(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
  """Mean point distance / `face_size(truth)` (metrics.landmark_nme).

  Args:
    predicted, truth: [..., L, 2] pixels.

  Returns:
    [...] a fraction.
  """
  predicted = np.asarray(predicted, np.float64)
  truth = np.asarray(truth, np.float64)
  distance = np.linalg.norm(predicted - truth, axis=-1).mean(axis=-1)
  return distance / face_size(truth)


def detector_box(true_landmarks: np.ndarray) -> np.ndarray:
  """The box dlib's HOG detector would put around a face (calibrated).

  Args:
    true_landmarks: [68, 2] (x, y) pixels, iBUG order.

  Returns:
    [4] float32 (x0, y0, x1, y1) pixels, a square (the convention of
    `preprocessing.Detection.box`). See BOX_SCALE for the fit.
  """
  inner = _check_landmarks(true_landmarks)[INNER_LANDMARKS]
  low, high = inner.min(axis=0), inner.max(axis=0)
  size = float(np.max(high - low))
  centre = 0.5 * (low + high) + np.asarray(BOX_OFFSET) * size
  half = 0.5 * BOX_SCALE * size
  return np.concatenate([centre - half, centre + half]).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
  """Intersection over union of two (x0, y0, x1, y1) boxes."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  width = min(a[2], b[2]) - max(a[0], b[0])
  height = min(a[3], b[3]) - max(a[1], b[1])
  inter = max(width, 0.0) * max(height, 0.0)
  union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) -
           inter)
  return float(inter / union) if union > 0 else 0.0


def noise_std(yaw_degrees: float) -> np.ndarray:
  """[2] per-coordinate (x, y) std of the modelled noise, in face sizes.

  Piecewise linear in |yaw| (see NOISE_STD_XY).
  """
  yaw = min(abs(float(yaw_degrees)), MAX_YAW_DEGREES)
  knots = np.asarray(NOISE_KNOTS_DEGREES, np.float64)
  values = np.asarray(NOISE_STD_XY, np.float64)
  std = np.array([np.interp(yaw, knots, values[:, c]) for c in range(2)])
  if yaw > knots[-1]:
    std += np.asarray(NOISE_SLOPE_BEYOND, np.float64) * (yaw - knots[-1])
  return std


def modelled_landmarks(rng: np.random.Generator, true_landmarks: np.ndarray,
                       yaw_degrees: float) -> np.ndarray:
  """Truth plus noise the size of the detector's error at this |yaw|.

  Per coordinate the noise has std `noise_std(yaw) * face_size(truth)`; a
  share NOISE_SHARED_FRACTION of its variance is one offset of the whole
  set, the rest independent per point. Zero mean.

  Args:
    rng: where the noise comes from; each call draws 2 + 136 normals, so a
      caller's stream does not depend on anything but the call count.
    true_landmarks: [68, 2] (x, y) pixels.
    yaw_degrees: the view's head yaw, degrees (the sign is ignored).

  Returns:
    [68, 2] float32 pixels.
  """
  truth = _check_landmarks(true_landmarks)
  sigma = noise_std(yaw_degrees) * face_size(truth)
  shared = rng.standard_normal(2) * np.sqrt(NOISE_SHARED_FRACTION) * sigma
  independent = (rng.standard_normal(truth.shape) *
                 np.sqrt(1.0 - NOISE_SHARED_FRACTION) * sigma)
  return (truth + shared + independent).astype(np.float32)


def _to_work(image: np.ndarray) -> Tuple[np.ndarray, float]:
  """The crop resized to WORK_SIZE and the scale crop -> work pixels."""
  rgb = preprocessing.to_rgb_uint8(image)
  height, width = rgb.shape[:2]
  if height != width:
    raise ValueError(f"expected a square crop; Received: shape={rgb.shape}")
  if height == WORK_SIZE:
    return rgb, 1.0
  interpolation = cv2.INTER_LINEAR if height < WORK_SIZE else cv2.INTER_AREA
  return (cv2.resize(rgb, (WORK_SIZE, WORK_SIZE),
                     interpolation=interpolation), WORK_SIZE / height)


def _crop_to_work(points: np.ndarray, scale: float) -> np.ndarray:
  # Pixel centres map as cv2.resize maps them: (p + 0.5) * scale - 0.5.
  return (np.asarray(points, np.float64) + 0.5) * scale - 0.5


def _work_to_crop(points: np.ndarray, scale: float) -> np.ndarray:
  return (np.asarray(points, np.float64) + 0.5) / scale - 0.5


def _hog_found(landmarker, work: np.ndarray, scale: float,
               box: np.ndarray) -> Tuple[np.ndarray, np.ndarray, bool]:
  hog_boxes, scores = landmarker.detect_boxes(work, upsample_times=0)
  hog_boxes = _work_to_crop(hog_boxes, scale).astype(np.float32)
  found = any(box_iou(hog, box) >= FOUND_MIN_IOU for hog in hog_boxes)
  return hog_boxes, scores, found


def _predict(landmarker, work: np.ndarray, scale: float,
             box: np.ndarray) -> np.ndarray:
  """The shape predictor in a crop-pixel box, on the work image."""
  work_box = _crop_to_work(np.reshape(box, [2, 2]), scale).reshape(4)
  return _work_to_crop(landmarker.landmarks_in_box(work, work_box), scale)


def run_detector(landmarker: "preprocessing.FaceLandmarker",
                 image: np.ndarray, true_landmarks: np.ndarray
                 ) -> DetectorRun:
  """The HOG detector and the shape predictor (always) on one crop.

  Args:
    landmarker: a `preprocessing.FaceLandmarker` (its min_score applies;
      its upsampling does not: the crop is resized to WORK_SIZE instead).
    image: [S, S, 3] uint8 RGB crop.
    true_landmarks: [68, 2] crop pixels.

  Returns:
    DetectorRun.
  """
  truth = _check_landmarks(true_landmarks)
  work, scale = _to_work(image)
  box = detector_box(truth)
  hog_boxes, scores, found = _hog_found(landmarker, work, scale, box)
  predicted = _predict(landmarker, work, scale, box)
  in_hog_box = None
  if found:
    best = max(hog_boxes, key=lambda hog: box_iou(hog, box))
    in_hog_box = _predict(landmarker, work, scale, best).astype(np.float32)
  return DetectorRun(predicted=predicted.astype(np.float32), box=box,
                     hog_boxes=hog_boxes, hog_scores=scores, found=found,
                     nme=float(landmark_nme(predicted, truth)),
                     predicted_in_hog_box=in_hog_box)


def detect_landmarks(landmarker: Optional["preprocessing.FaceLandmarker"],
                     image: np.ndarray, true_landmarks: np.ndarray,
                     yaw_degrees: float,
                     rng: np.random.Generator) -> DetectedLandmarks:
  """One view's landmarks as a real pipeline gives them, and their status.

  Args:
    landmarker: a `preprocessing.FaceLandmarker`, or None for no detector
      (every view MODELLED).
    image: [S, S, 3] uint8 RGB crop.
    true_landmarks: [68, 2] crop pixels.
    yaw_degrees: the view's head yaw (for the noise of modelled views).
    rng: the noise's generator. The noise is drawn for every view, also
      when it is not used, so that a view's modelled landmarks are the same
      with and without dlib and the stream does not depend on detection.

  Returns:
    DetectedLandmarks.
  """
  truth = _check_landmarks(true_landmarks)
  modelled = modelled_landmarks(rng, truth, yaw_degrees)
  if landmarker is None:
    return DetectedLandmarks(modelled, LandmarkStatus.MODELLED)
  work, scale = _to_work(image)
  box = detector_box(truth)
  _, _, found = _hog_found(landmarker, work, scale, box)
  if not found:
    return DetectedLandmarks(modelled, LandmarkStatus.NOT_FOUND)
  predicted = _predict(landmarker, work, scale, box)
  status = (LandmarkStatus.DRIFTED
            if landmark_nme(predicted, truth) > DRIFT_NME
            else LandmarkStatus.DETECTED)
  return DetectedLandmarks(predicted.astype(np.float32), status)


class LandmarkSource:
  """Detected (or modelled) landmarks for the views of a dataset.

  Make one with `landmark_source()`.

  Attributes:
    landmarker: the FaceLandmarker, or None (every view MODELLED).
    name: "dlib" or "modelled", for a dataset's metadata.
    description: one sentence saying what produced the landmarks (and, for
      "modelled", why no detector was used).
  """

  def __init__(self, landmarker: Optional["preprocessing.FaceLandmarker"],
               description: str):
    self.landmarker = landmarker
    self.name = "modelled" if landmarker is None else "dlib"
    self.description = description

  def __call__(self, image: np.ndarray, true_landmarks: np.ndarray,
               yaw_degrees: float,
               rng: np.random.Generator) -> DetectedLandmarks:
    """`detect_landmarks` with this source's landmarker."""
    return detect_landmarks(self.landmarker, image, true_landmarks,
                            yaw_degrees, rng)

  def views(self, images: np.ndarray, true_landmarks: np.ndarray,
            yaw_degrees: Sequence[float], rng: np.random.Generator
            ) -> Tuple[np.ndarray, np.ndarray]:
    """All views of one example.

    Args:
      images: [V, S, S, 3] uint8.
      true_landmarks: [V, 68, 2] crop pixels.
      yaw_degrees: [V].
      rng: the example's noise generator (views draw in order).

    Returns:
      landmarks [V, 68, 2] float32, status [V] int32 (LandmarkStatus).
    """
    results = [self(image, truth, yaw, rng) for image, truth, yaw in
               zip(images, true_landmarks, yaw_degrees)]
    return (np.stack([r.landmarks for r in results]).astype(np.float32),
            np.array([int(r.status) for r in results], np.int32))


def landmark_source(use_detector: bool = True,
                    landmarker: Optional["preprocessing.FaceLandmarker"] = None
                    ) -> LandmarkSource:
  """The detector when dlib is there, the noise model otherwise.

  Args:
    use_detector: False: the noise model even when dlib is installed.
    landmarker: the detector to use; default `preprocessing.
      default_landmarker()`.

  Returns:
    LandmarkSource; its `name` is "dlib" or "modelled".
  """
  if not use_detector:
    return LandmarkSource(None, "truth + modelled detector noise (detector "
                          "not requested)")
  if landmarker is None:
    try:
      landmarker = preprocessing.default_landmarker()
    except preprocessing.PreprocessDependencyError as error:
      return LandmarkSource(None, "truth + modelled detector noise (no "
                            f"detector: {error})")
  return LandmarkSource(
      landmarker, f"dlib {landmarker.dlib_version} HOG frontal face "
      "detector + 68-point shape predictor "
      f"({os.path.basename(landmarker.predictor_path)}) on the crop resized "
      f"to {WORK_SIZE} px, in the box calibrated from the true landmarks")
