"""Carrying per-vertex data from one face model's topology onto another's.

Used to give a shape-only model (ICT-FaceKit Light has no albedo) the albedo
of another model: the two meshes are aligned by a similarity transform that
maps the source's 68 landmarks onto the target's (least squares, Umeyama
1991), and each target vertex takes the values of the nearest aligned source
vertex. NumPy and SciPy only.
"""

from typing import NamedTuple, Optional, Sequence

import numpy as np

from mgc_tf.geometry import similarity


class Similarity(NamedTuple):
  """x -> scale * rotation @ x + translation.

  Attributes:
    scale: float.
    rotation: [3, 3] proper rotation.
    translation: [3].
  """
  scale: float
  rotation: np.ndarray
  translation: np.ndarray

  def apply(self, points: np.ndarray) -> np.ndarray:
    """[..., 3] -> [..., 3] transformed points."""
    return (self.scale * np.asarray(points, np.float64) @ self.rotation.T +
            self.translation)


def similarity_3d(source: np.ndarray, target: np.ndarray) -> Similarity:
  """Least-squares similarity mapping `source` points onto `target` points.

  Minimises sum_i |s R p_i + t - q_i|^2 over proper rotations (no
  reflection) in closed form (Umeyama 1991).

  Args:
    source: [P, 3] points p_i, P >= 3 and not all on one line.
    target: [P, 3] points q_i.

  Returns:
    The `Similarity`.

  Raises:
    ValueError: mismatched shapes or degenerate source points.
  """
  source = np.asarray(source, np.float64)
  target = np.asarray(target, np.float64)
  if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
    raise ValueError(f"source {source.shape} and target {target.shape} must "
                     "both be [P, 3]")
  scale, rotation, translation = similarity.umeyama(source, target)
  return Similarity(scale, rotation, translation)


class VertexMap(NamedTuple):
  """Where each target vertex takes its values from.

  Attributes:
    source_ids: [V_target] int64 nearest source vertex of each target vertex.
    distances: [V_target] mm between each target vertex and that source
      vertex after the alignment.
    alignment: the `Similarity` applied to the source.
    landmark_rms: root-mean-square landmark distance after the alignment, mm.
  """
  source_ids: np.ndarray
  distances: np.ndarray
  alignment: Similarity
  landmark_rms: float


def nearest_vertex_map(source_points: np.ndarray,
                       source_landmarks: np.ndarray,
                       target_points: np.ndarray,
                       target_landmarks: np.ndarray,
                       use: Optional[Sequence[int]] = None) -> VertexMap:
  """Maps target vertices to the nearest source vertices after alignment.

  Args:
    source_points: [V_s, 3] source mean shape.
    source_landmarks: [68] source landmark vertex ids.
    target_points: [V_t, 3] target mean shape (same units).
    target_landmarks: [68] target landmark vertex ids (same order).
    use: which of the 68 landmarks drive the alignment (default all).

  Returns:
    The `VertexMap`.
  """
  from scipy import spatial  # pylint: disable=g-import-not-at-top
  use = np.arange(len(target_landmarks)) if use is None else np.asarray(use)
  source_lm = np.asarray(source_points, np.float64)[
      np.asarray(source_landmarks)[use]]
  target_lm = np.asarray(target_points, np.float64)[
      np.asarray(target_landmarks)[use]]
  alignment = similarity_3d(source_lm, target_lm)
  residual = alignment.apply(source_lm) - target_lm
  aligned = alignment.apply(source_points)
  distances, ids = spatial.cKDTree(aligned).query(
      np.asarray(target_points, np.float64))
  return VertexMap(source_ids=ids.astype(np.int64), distances=distances,
                   alignment=alignment,
                   landmark_rms=float(np.sqrt(np.mean(np.sum(residual**2,
                                                             -1)))))
