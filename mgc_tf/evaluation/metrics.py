"""Metrics with known answers, in NumPy (evaluation runs on host arrays).

Conventions: landmarks in pixels (OpenCV), vertices in mm, angles in degrees
unless stated.
"""

from typing import Dict, Sequence, Tuple

import numpy as np

# |yaw| bins of the AFLW2000-3D protocol (MGCNet Table 1a), degrees.
YAW_BINS: Tuple[Tuple[float, float], ...] = ((0.0, 30.0), (30.0, 60.0),
                                             (60.0, 90.0))


def box_size(landmarks: np.ndarray) -> np.ndarray:
  """sqrt(w h) of the landmarks' bounding box.

  Args:
    landmarks: [..., L, 2] pixels.

  Returns:
    [...] pixels.
  """
  extent = landmarks.max(axis=-2) - landmarks.min(axis=-2)
  return np.sqrt(extent[..., 0] * extent[..., 1])


def landmark_nme(predicted: np.ndarray, truth: np.ndarray,
                 normaliser: np.ndarray = None) -> np.ndarray:
  """Mean point-to-point distance over landmarks divided by a size.

  Args:
    predicted: [..., L, 2] pixels.
    truth: [..., L, 2] pixels.
    normaliser: [...] pixels; default the ground-truth box size sqrt(w h).

  Returns:
    [...] NME (a fraction; x100 for the percentages papers print).
  """
  if normaliser is None:
    normaliser = box_size(truth)
  distance = np.linalg.norm(predicted - truth, axis=-1).mean(axis=-1)
  return distance / normaliser


def yaw_bin_index(yaw_degrees: np.ndarray) -> np.ndarray:
  """Index of the |yaw| bin [0,30), [30,60), [60,90] (90 included; beyond: 2)."""
  magnitude = np.abs(np.asarray(yaw_degrees, np.float64))
  return np.minimum((magnitude // 30.0).astype(np.int64), 2)


def per_yaw_bin_mean(values: np.ndarray, yaw_degrees: np.ndarray
                     ) -> Dict[str, float]:
  """Means of `values` per |yaw| bin and the mean of the bin means.

  Returns:
    {"0-30": m0, "30-60": m1, "60-90": m2, "mean": mean of the non-empty
    bins' means}; an empty bin is NaN and left out of "mean".
  """
  values = np.asarray(values, np.float64)
  bins = yaw_bin_index(yaw_degrees)
  result = {}
  means = []
  for index, (low, high) in enumerate(YAW_BINS):
    selected = values[bins == index]
    mean = float(selected.mean()) if selected.size else float("nan")
    result[f"{low:.0f}-{high:.0f}"] = mean
    if selected.size:
      means.append(mean)
  result["mean"] = float(np.mean(means)) if means else float("nan")
  return result


def rigid_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Rotates and translates `source` onto `target` (least squares, Kabsch).

  Args:
    source: [P, 3] points.
    target: [P, 3] corresponding points.

  Returns:
    [P, 3] the moved source points (no scaling, no reflection).
  """
  source = np.asarray(source, np.float64)
  target = np.asarray(target, np.float64)
  mean_s, mean_t = source.mean(0), target.mean(0)
  covariance = (target - mean_t).T @ (source - mean_s)
  u, _, vt = np.linalg.svd(covariance)
  sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
  rotation = u @ sign @ vt
  return (source - mean_s) @ rotation.T + mean_t


def aligned_vertex_error(predicted: np.ndarray, truth: np.ndarray) -> float:
  """Mean per-vertex distance after rigid alignment, in the input units."""
  moved = rigid_align(predicted, truth)
  return float(np.linalg.norm(moved - truth, axis=-1).mean())


def angle_error_degrees(predicted: np.ndarray, truth: np.ndarray
                        ) -> np.ndarray:
  """Absolute angle differences wrapped to [0, 180], degrees."""
  difference = (np.asarray(predicted) - np.asarray(truth) + 180.0) % 360.0
  return np.abs(difference - 180.0)


def summarise(named_values: Dict[str, Sequence[float]]) -> Dict[str, float]:
  """Mean of each list of per-example values."""
  return {name: float(np.mean(values)) for name, values in named_values.items()
          if len(values)}
