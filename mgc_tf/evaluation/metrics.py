"""Metrics with known answers, in NumPy (evaluation runs on host arrays).

Conventions: landmarks in pixels (OpenCV), vertices in mm, angles in degrees
unless stated. Poses are the decoder's [..., 6] vectors (rz, ry, rx) radians,
(tx, ty, tz) mm, model -> camera (DESIGN.md section 4). The formulas, units
and the papers' protocols are in docs/evaluation.md; scan metrics are in
`scan_metrics`, render PSNR/SSIM in `render_quality`.
"""

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mgc_tf import geometry
from mgc_tf.losses import epipolar as epipolar_loss_lib

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


def aligned_vertex_error(predicted: np.ndarray, truth: np.ndarray,
                         region: Optional[np.ndarray] = None) -> float:
  """Mean per-vertex distance after rigid alignment, in the input units.

  Args:
    predicted, truth: [V, 3] the same mesh's vertices.
    region: optional [V] bool, the vertices aligned and measured (the face
      model's `front_mask`: the face, not the back of a full head).
  """
  if region is not None:
    region = np.asarray(region, bool)
    predicted, truth = np.asarray(predicted)[region], np.asarray(truth)[region]
  moved = rigid_align(predicted, truth)
  return float(np.linalg.norm(moved - truth, axis=-1).mean())


def angle_error_degrees(predicted: np.ndarray, truth: np.ndarray
                        ) -> np.ndarray:
  """Absolute angle differences wrapped to [0, 180], degrees."""
  difference = (np.asarray(predicted) - np.asarray(truth) + 180.0) % 360.0
  return np.abs(difference - 180.0)


def box_size_from_corners(box: np.ndarray) -> np.ndarray:
  """sqrt(w h) of boxes given as corners.

  Args:
    box: [..., 4] (x0, y0, x1, y1) pixels (AFLW2000-3D's `box` feature).

  Returns:
    [...] pixels.
  """
  box = np.asarray(box, np.float64)
  return np.sqrt((box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1]))


def nme_per_yaw_bin(predicted: np.ndarray, truth: np.ndarray,
                    yaw_degrees: np.ndarray, normaliser: np.ndarray = None
                    ) -> Dict[str, float]:
  """Landmark NME in percent per |yaw| bin, and the mean of the bins.

  Args:
    predicted: [B, L, 2] pixels.
    truth: [B, L, 2] pixels.
    yaw_degrees: [B] yaw of each image, degrees (the sign is ignored).
    normaliser: [B] pixels; default the ground-truth box size sqrt(w h).

  Returns:
    {"nme/0-30", "nme/30-60", "nme/60-90", "nme/mean"}: percent (see
    `per_yaw_bin_mean` for empty bins).
  """
  nme = landmark_nme(np.asarray(predicted, np.float64),
                     np.asarray(truth, np.float64), normaliser) * 100.0
  return {f"nme/{name}": value
          for name, value in per_yaw_bin_mean(nme, yaw_degrees).items()}


def pose_angle_errors(predicted_pose: np.ndarray, true_pose: np.ndarray
                      ) -> Dict[str, np.ndarray]:
  """Absolute per-angle errors of [B, 6] poses, degrees, wrapped to [0, 180].

  Returns:
    {"roll_error_deg", "yaw_error_deg", "pitch_error_deg"}: [B] each (the
    pose angles are (rz, ry, rx) = (roll, yaw, pitch)).
  """
  errors = angle_error_degrees(np.degrees(np.asarray(predicted_pose)[:, :3]),
                               np.degrees(np.asarray(true_pose)[:, :3]))
  return {"roll_error_deg": errors[:, 0], "yaw_error_deg": errors[:, 1],
          "pitch_error_deg": errors[:, 2]}


def rotations_of(pose: np.ndarray) -> np.ndarray:
  """[..., 6] poses -> [..., 3, 3] rotations R = Rx Ry Rz, float64."""
  rotation, _ = geometry.pose_to_rotation_translation(
      tf.constant(np.asarray(pose, np.float64)))
  return rotation.numpy()


def rotation_angle_degrees(rotation_a: np.ndarray,
                           rotation_b: np.ndarray) -> np.ndarray:
  """Geodesic angle between rotations: the angle of R_a R_b^T.

  Args:
    rotation_a: [..., 3, 3].
    rotation_b: [..., 3, 3].

  Returns:
    [...] degrees in [0, 180].
  """
  product = np.asarray(rotation_a, np.float64) @ np.swapaxes(
      np.asarray(rotation_b, np.float64), -1, -2)
  cosine = (np.trace(product, axis1=-2, axis2=-1) - 1.0) / 2.0
  return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def relative_rotation_error_degrees(predicted_target: np.ndarray,
                                    predicted_source: np.ndarray,
                                    true_target: np.ndarray,
                                    true_source: np.ndarray) -> np.ndarray:
  """Angle between predicted and true relative rotations R_rel = R_s R_t^T.

  Args:
    predicted_target, predicted_source, true_target, true_source: [A, 6]
      poses of the target and source views.

  Returns:
    [A] degrees.
  """
  def relative(target, source):
    r_t, r_s = rotations_of(target), rotations_of(source)
    return r_s @ np.swapaxes(r_t, -1, -2)
  return rotation_angle_degrees(relative(predicted_target, predicted_source),
                                relative(true_target, true_source))


def epipolar_error(pose_target: np.ndarray, pose_source: np.ndarray,
                   intrinsics_target: np.ndarray,
                   intrinsics_source: np.ndarray,
                   landmarks_target: np.ndarray,
                   landmarks_source: np.ndarray) -> np.ndarray:
  """Mean symmetric epipolar distance of landmark pairs under the poses' F.

  The relative pose target -> source (R_rel = R_s R_t^T, t_rel = t_s -
  R_rel t_t) gives E = [t_rel]_x R_rel and F = K_s^-T E K_t^-1; each pair
  (p_t, p_s) contributes the mean of its two point-to-epipolar-line
  distances (the training loss's formula, `losses.epipolar`), in float64.

  Args:
    pose_target: [A, 6] predicted target pose.
    pose_source: [A, 6] predicted source pose.
    intrinsics_target: [A, 3, 3] K_t, pixels.
    intrinsics_source: [A, 3, 3] K_s, pixels.
    landmarks_target: [A, L, 2] ground-truth landmarks in the target, pixels.
    landmarks_source: [A, L, 2] the same landmarks in the source, pixels.

  Returns:
    [A] mean distance over the L pairs, pixels.
  """
  def f64(value):
    return tf.constant(np.asarray(value, np.float64))
  return epipolar_loss_lib.epipolar_loss_from_poses(
      f64(pose_target), f64(pose_source), f64(intrinsics_target),
      f64(intrinsics_source), f64(landmarks_target),
      f64(landmarks_source)).numpy()


def depth_error(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
  """Mean absolute depth difference on pixels that both depth maps cover.

  No alignment: both maps are camera z of the same camera, so a wrong pose,
  scale or distance counts.

  Args:
    predicted: [B, H, W] (or [B, H, W, 1]) depth, mm, 0 where not covered.
    truth: [B, H, W] (or [B, H, W, 1]) depth, mm, 0 where not covered.

  Returns:
    [B] mm; NaN for an image where the two maps share no pixel.
  """
  predicted = np.asarray(predicted, np.float64).reshape(len(predicted), -1)
  truth = np.asarray(truth, np.float64).reshape(len(truth), -1)
  if predicted.shape != truth.shape:
    raise ValueError("Depth maps must have the same size. Received: "
                     f"{predicted.shape} and {truth.shape}")
  both = (predicted > 0) & (truth > 0)
  count = both.sum(-1)
  total = np.where(both, np.abs(predicted - truth), 0.0).sum(-1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def aligned_depth_error(predicted: np.ndarray, truth: np.ndarray
                        ) -> np.ndarray:
  """Mean absolute depth difference after a per-image scale-shift alignment.

  On the pixels both maps cover, s and b minimise sum (s D + b - D^)^2
  (least squares), then the error is the mean |s D + b - D^|. This measures
  the shape of the depth map apart from its distance and scale, the part a
  monocular network can know best (compare `depth_error`).

  Args:
    predicted: [B, H, W] (or [B, H, W, 1]) depth, mm, 0 where not covered.
    truth: [B, H, W] (or [B, H, W, 1]) depth, mm, 0 where not covered.

  Returns:
    [B] mm; NaN for an image where the maps share fewer than 2 pixels.
  """
  predicted = np.asarray(predicted, np.float64).reshape(len(predicted), -1)
  truth = np.asarray(truth, np.float64).reshape(len(truth), -1)
  if predicted.shape != truth.shape:
    raise ValueError("Depth maps must have the same size. Received: "
                     f"{predicted.shape} and {truth.shape}")
  out = np.full([len(predicted)], np.nan)
  for i, (p, t) in enumerate(zip(predicted, truth)):
    both = (p > 0) & (t > 0)
    if both.sum() < 2:
      continue
    design = np.stack([p[both], np.ones(both.sum())], -1)
    (scale, shift), *_ = np.linalg.lstsq(design, t[both], rcond=None)
    out[i] = np.abs(scale * p[both] + shift - t[both]).mean()
  return out


def finite_mean(values: Sequence[float]) -> float:
  """Mean of the non-NaN values (NaN when there are none)."""
  values = np.asarray(values, np.float64).reshape(-1)
  values = values[~np.isnan(values)]
  return float(values.mean()) if values.size else float("nan")
