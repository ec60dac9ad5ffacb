"""Least-squares similarity between point sets, in NumPy (any dimension).

Minimises sum_i |s R p_i + t - q_i|^2 over proper rotations R (no
reflection), uniform scale s and shift t, in closed form (Umeyama 1991).
Used for 2D face alignment (`faces2d.alignment`) and for aligning two face
models' 3D landmarks (`facemodel.transfer`).
"""

from typing import Tuple

import numpy as np


def umeyama(source: np.ndarray, target: np.ndarray
            ) -> Tuple[float, np.ndarray, np.ndarray]:
  """(s, R [D, D], t [D]) of the least-squares similarity source -> target.

  Args:
    source: [P, D] float points p_i, not all equal.
    target: [P, D] float points q_i (same shape; callers check it).

  Raises:
    ValueError: the source points coincide.
  """
  source = np.asarray(source, np.float64)
  target = np.asarray(target, np.float64)
  mean_s, mean_t = source.mean(0), target.mean(0)
  centred_s, centred_t = source - mean_s, target - mean_t
  variance_s = np.sum(centred_s ** 2) / len(source)
  if not np.isfinite(variance_s) or variance_s <= 1e-12:
    raise ValueError("source points coincide; no similarity transform")
  covariance = centred_t.T @ centred_s / len(source)
  u, singular, vt = np.linalg.svd(covariance)
  sign = np.ones(source.shape[1])
  if np.linalg.det(u) * np.linalg.det(vt) < 0:
    sign[-1] = -1.0
  rotation = u @ np.diag(sign) @ vt
  scale = float(np.sum(singular * sign) / variance_s)
  translation = mean_t - scale * rotation @ mean_s
  return scale, rotation, translation
