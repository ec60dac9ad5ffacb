"""Face and vertex normals of triangle meshes, in NumPy (host arrays).

The one NumPy home of mesh normals (the face model loaders, the synthetic
face model, the synthetic scenes and the tests use it). It lives in
facemodel, not geometry, because facemodel's NumPy side must not load
TensorFlow (importing `mgc_tf.geometry` does). The TensorFlow normals of the
decoder are `mgc_tf.facemodel.shading.vertex_normals`; the scan metrics use
trimesh's angle-weighted normals, which differ.
"""

import numpy as np


def face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  """Unnormalised face normals (v1 - v0) x (v2 - v0).

  Args:
    vertices: [V, 3] positions (any unit).
    triangles: [F, 3] 0-based vertex ids.

  Returns:
    [F, 3] float64 normals, length twice the triangle area; they point to the
    side from which the triangle is seen counter-clockwise.
  """
  v = np.asarray(vertices, np.float64)[np.asarray(triangles)]
  return np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  """Unit vertex normals: the normalised sum of the adjacent face normals.

  Each face counts with its area (its normal is not normalised first).

  Args:
    vertices: [V, 3] positions (any unit).
    triangles: [F, 3] 0-based vertex ids.

  Returns:
    [V, 3] float64 unit normals; zero for a vertex of no (or only degenerate)
    triangles.
  """
  triangles = np.asarray(triangles)
  normals_of_faces = face_normals(vertices, triangles)
  normals = np.zeros([np.shape(vertices)[0], 3])
  for k in range(3):
    np.add.at(normals, triangles[:, k], normals_of_faces)
  return normals / np.maximum(
      np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def flipped_triangles(reference: np.ndarray, deformed: np.ndarray,
                      triangles: np.ndarray) -> np.ndarray:
  """[F] bool: triangles whose normal turned by 90 degrees or more.

  A triangle counts as folded over when its normal in `deformed` has a
  non-positive dot product with its normal in `reference` (the criterion the
  synthetic model's bases are shrunk by, and the face-model tests use).

  Args:
    reference: [V, 3] positions the orientation is judged against.
    deformed: [V, 3] positions of the same vertices.
    triangles: [F, 3] 0-based vertex ids.
  """
  return np.sum(face_normals(reference, triangles) *
                face_normals(deformed, triangles), axis=-1) <= 0.0
