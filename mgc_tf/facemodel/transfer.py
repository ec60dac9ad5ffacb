"""Carrying per-vertex data from one face model's topology onto another's.

Used to give a shape-only model (ICT-FaceKit Light has no albedo) the albedo
of another model: the two meshes are aligned by a similarity transform that
maps the source's 68 landmarks onto the target's (least squares, Umeyama
1991), and each target vertex takes the values of the source surface at its
nearest point: the closest point on any aligned source triangle, with the
values interpolated barycentrically (`nearest_surface_map`), or, coarser,
of the nearest aligned source vertex (`nearest_vertex_map`). NumPy and
SciPy only.
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


class SurfaceMap(NamedTuple):
  """Where on the source surface each target vertex takes its values from.

  Attributes:
    vertex_ids: [V_target, 3] int64 source vertices of the triangle holding
      the nearest surface point of each target vertex.
    weights: [V_target, 3] float64 barycentric weights of that point (>= 0,
      summing to 1).
    distances: [V_target] mm from each target vertex to that point after the
      alignment.
    alignment: the `Similarity` applied to the source.
    landmark_rms: root-mean-square landmark distance after the alignment, mm.
  """
  vertex_ids: np.ndarray
  weights: np.ndarray
  distances: np.ndarray
  alignment: Similarity
  landmark_rms: float

  def apply(self, values: np.ndarray) -> np.ndarray:
    """[V_source, ...] per-vertex values -> [V_target, ...] interpolated."""
    return interpolate(values, self.vertex_ids, self.weights)


def interpolate(values: np.ndarray, vertex_ids: np.ndarray,
                weights: np.ndarray) -> np.ndarray:
  """Barycentric interpolation of per-vertex values.

  Args:
    values: [V_source, ...] per-vertex values.
    vertex_ids: [V_target, 3] source vertex ids per target vertex.
    weights: [V_target, 3] their weights (renormalised to sum 1, so that
      weights stored at low precision interpolate without a bias).

  Returns:
    [V_target, ...] values, dtype of `values`.
  """
  values = np.asarray(values)
  weights = np.asarray(weights, np.float64)
  weights = weights / np.sum(weights, axis=1, keepdims=True)
  gathered = values[np.asarray(vertex_ids)]  # [V_t, 3, ...]
  weights = weights.reshape(weights.shape + (1,) * (values.ndim - 1))
  return np.sum(gathered * weights, axis=1).astype(values.dtype)


def closest_points_on_triangles(points: np.ndarray, corners: np.ndarray
                                ) -> np.ndarray:
  """Barycentric weights of the closest point of each triangle to a point.

  Region by region (the triangle's inside, its three edges, its three
  corners), in closed form; degenerate triangles fall back to their closest
  corner or edge.

  Args:
    points: [..., 3] query points.
    corners: [..., 3, 3] triangles (corner, xyz), broadcast with `points`.

  Returns:
    [..., 3] float64 barycentric weights (>= 0, summing to 1) of the point
    of each triangle nearest to the query point.
  """
  p = np.asarray(points, np.float64)
  corners = np.asarray(corners, np.float64)
  a, b, c = corners[..., 0, :], corners[..., 1, :], corners[..., 2, :]
  p, a, b, c = np.broadcast_arrays(p, a, b, c)
  shape = p.shape[:-1]

  def dot(u, v):
    return np.sum(u * v, axis=-1)

  # The candidates: the three corners, the three edges' nearest points and
  # the plane's projection (if inside); the nearest of them is the answer.
  candidates = [np.stack([np.ones(shape), np.zeros(shape), np.zeros(shape)],
                         -1),
                np.stack([np.zeros(shape), np.ones(shape), np.zeros(shape)],
                         -1),
                np.stack([np.zeros(shape), np.zeros(shape), np.ones(shape)],
                         -1)]
  for i, j in ((0, 1), (1, 2), (2, 0)):
    start, end = (a, b, c)[i], (a, b, c)[j]
    edge = end - start
    length2 = dot(edge, edge)
    t = np.clip(np.divide(dot(p - start, edge), length2,
                          out=np.zeros(shape), where=length2 > 0), 0.0, 1.0)
    weights = np.zeros(shape + (3,))
    weights[..., i] = 1.0 - t
    weights[..., j] = t
    candidates.append(weights)
  # Projection onto the plane, in barycentric coordinates.
  e0, e1, v = b - a, c - a, p - a
  d00, d01, d11 = dot(e0, e0), dot(e0, e1), dot(e1, e1)
  d20, d21 = dot(v, e0), dot(v, e1)
  denominator = d00 * d11 - d01 * d01
  safe = np.where(np.abs(denominator) > 1e-12, denominator, 1.0)
  w1 = (d11 * d20 - d01 * d21) / safe
  w2 = (d00 * d21 - d01 * d20) / safe
  inside = ((np.abs(denominator) > 1e-12) & (w1 >= 0) & (w2 >= 0) &
            (w1 + w2 <= 1))
  projection = np.stack([1.0 - w1 - w2, w1, w2], -1)
  # Outside the triangle the projection is no candidate: move it to a corner.
  candidates.append(np.where(inside[..., None], projection, candidates[0]))
  stacked = np.stack(candidates, axis=-2)  # [..., 7, 3]
  positions = (stacked[..., 0:1] * a[..., None, :] +
               stacked[..., 1:2] * b[..., None, :] +
               stacked[..., 2:3] * c[..., None, :])
  distances = np.sum((positions - p[..., None, :]) ** 2, axis=-1)
  best = np.argmin(distances, axis=-1)
  return np.take_along_axis(stacked, best[..., None, None], axis=-2)[..., 0, :]


def nearest_surface_map(source_points: np.ndarray,
                        source_triangles: np.ndarray,
                        source_landmarks: np.ndarray,
                        target_points: np.ndarray,
                        target_landmarks: np.ndarray,
                        use: Optional[Sequence[int]] = None,
                        candidates: int = 24) -> SurfaceMap:
  """Maps target vertices to their nearest points on the source surface.

  After the landmark alignment of `nearest_vertex_map`, each target vertex
  is compared with the `candidates` source triangles whose centroids are
  nearest to it; the closest point over them, and its barycentric weights,
  are kept. (A triangle whose centroid is farther can only hold the nearest
  point if it is large; the face meshes here have triangles of a few mm.)

  Args:
    source_points: [V_s, 3] source mean shape.
    source_triangles: [F_s, 3] source triangles (vertex ids).
    source_landmarks: [68] source landmark vertex ids.
    target_points: [V_t, 3] target mean shape (same units).
    target_landmarks: [68] target landmark vertex ids (same order).
    use: which of the 68 landmarks drive the alignment (default all).
    candidates: source triangles tried per target vertex.

  Returns:
    The `SurfaceMap`.
  """
  from scipy import spatial  # pylint: disable=g-import-not-at-top
  nearest = nearest_vertex_map(source_points, source_landmarks, target_points,
                               target_landmarks, use=use)
  aligned = nearest.alignment.apply(source_points)
  triangles = np.asarray(source_triangles, np.int64)
  corners = aligned[triangles]  # [F, 3, 3]
  target = np.asarray(target_points, np.float64)
  count = min(int(candidates), len(triangles))
  _, tried = spatial.cKDTree(corners.mean(axis=1)).query(target, k=count)
  tried = tried.reshape(len(target), count)
  weights = closest_points_on_triangles(target[:, None, :], corners[tried])
  positions = np.einsum("vkc,vkcx->vkx", weights, corners[tried])
  distances = np.linalg.norm(positions - target[:, None, :], axis=-1)
  best = np.argmin(distances, axis=1)
  rows = np.arange(len(target))
  return SurfaceMap(vertex_ids=triangles[tried[rows, best]],
                    weights=weights[rows, best],
                    distances=distances[rows, best],
                    alignment=nearest.alignment,
                    landmark_rms=nearest.landmark_rms)
