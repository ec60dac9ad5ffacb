"""The face mesh as a graph: normalised Laplacian, scaled for Chebyshev filters.

For a mesh of V vertices whose edges are the triangles' sides, with
adjacency A in {0, 1}^{V x V} and degrees D_ii = sum_j A_ij,

  L = I - D^{-1/2} A D^{-1/2}          (normalised Laplacian; eigenvalues in
                                        [0, 2])
  L~ = 2 L / lambda_max - I             (scaled; eigenvalues in [-1, 1])

(Mohaghegh et al. section 3.2.1; Defferrard et al. 2016). An isolated
vertex (degree 0) has L_ii = 1 and no off-diagonal entry. The matrices are
sparse (about 7 entries a row for a triangle mesh); `scaled_laplacian_of`
computes one per face model once per process and caches it by the model's
fingerprint.
"""

import threading
from typing import Dict, NamedTuple

import numpy as np
import scipy.sparse
import scipy.sparse.linalg


class SparseMatrix(NamedTuple):
  """A sparse [V, V] float32 matrix in coordinate form, rows sorted.

  Attributes:
    indices: [E, 2] int64 (row, column) pairs, row-major order.
    values: [E] float32.
    size: V.
  """
  indices: np.ndarray
  values: np.ndarray
  size: int

  def to_dense(self) -> np.ndarray:
    dense = np.zeros([self.size, self.size], np.float64)
    dense[self.indices[:, 0], self.indices[:, 1]] = self.values
    return dense


def adjacency(triangles: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
  """[F, 3] int triangles -> [V, V] symmetric 0/1 adjacency (no self loops)."""
  triangles = np.asarray(triangles, np.int64)
  if triangles.ndim != 2 or triangles.shape[1] != 3:
    raise ValueError(f"triangles must be [F, 3]. Received: "
                     f"triangles.shape={triangles.shape}")
  if triangles.size and (triangles.min() < 0 or
                         triangles.max() >= num_vertices):
    raise ValueError(f"triangle indices must be in [0, {num_vertices}). "
                     f"Received: [{triangles.min()}, {triangles.max()}]")
  rows = np.concatenate([triangles[:, 0], triangles[:, 1], triangles[:, 2]])
  cols = np.concatenate([triangles[:, 1], triangles[:, 2], triangles[:, 0]])
  a = scipy.sparse.coo_matrix(
      (np.ones(rows.size), (rows, cols)), shape=(num_vertices, num_vertices))
  a = ((a + a.T) > 0).astype(np.float64).tocsr()
  a.setdiag(0)
  a.eliminate_zeros()
  return a


def normalized_laplacian(triangles: np.ndarray,
                         num_vertices: int) -> scipy.sparse.csr_matrix:
  """L = I - D^{-1/2} A D^{-1/2} of the mesh, [V, V] float64 sparse."""
  a = adjacency(triangles, num_vertices)
  degree = np.asarray(a.sum(axis=1)).ravel()
  inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)),
                      0.0)
  d = scipy.sparse.diags(inv_sqrt)
  return (scipy.sparse.identity(num_vertices) - d @ a @ d).tocsr()


def largest_eigenvalue(laplacian: scipy.sparse.spmatrix) -> float:
  """lambda_max of a symmetric sparse matrix (dense for V <= 64)."""
  v = laplacian.shape[0]
  if v <= 64:
    return float(np.linalg.eigvalsh(laplacian.toarray())[-1])
  value = scipy.sparse.linalg.eigsh(laplacian, k=1, which="LA",
                                    return_eigenvectors=False, tol=1e-6)
  return float(value[0])


def scaled_laplacian(triangles: np.ndarray, num_vertices: int) -> SparseMatrix:
  """L~ = 2 L / lambda_max - I of the mesh (see the module docstring).

  Args:
    triangles: [F, 3] int vertex ids.
    num_vertices: V.

  Returns:
    A `SparseMatrix` [V, V], float32 values, eigenvalues in [-1, 1].
  """
  lap = normalized_laplacian(triangles, num_vertices)
  lam = largest_eigenvalue(lap)
  if lam <= 0:
    raise ValueError("The mesh has no edges, so its Laplacian is 0 and "
                     "cannot be scaled by its largest eigenvalue.")
  scaled = (2.0 / lam) * lap - scipy.sparse.identity(num_vertices)
  scaled = scipy.sparse.coo_matrix(scaled)
  order = np.lexsort((scaled.col, scaled.row))
  indices = np.stack([scaled.row[order], scaled.col[order]],
                     axis=1).astype(np.int64)
  return SparseMatrix(indices=indices,
                      values=scaled.data[order].astype(np.float32),
                      size=int(num_vertices))


_CACHE: Dict[str, SparseMatrix] = {}
_CACHE_LOCK = threading.Lock()


def scaled_laplacian_of(face_model) -> SparseMatrix:
  """`scaled_laplacian` of a `FaceModel`'s mesh, computed once per process
  for each model (keyed by `face_model.fingerprint()`)."""
  key = face_model.fingerprint()
  with _CACHE_LOCK:
    if key not in _CACHE:
      _CACHE[key] = scaled_laplacian(face_model.triangles,
                                     face_model.num_vertices)
    return _CACHE[key]
