"""3D shape error against a ground-truth scan (MICC Florence, MGCNet Table 1b).

The protocol of Genova et al. 2018, used by Deep3DFaceReconstruction and
MGCNet:

  1. average the shapes predicted for the frames of one video (`mean_shape`),
  2. crop the scan to the points within 95 mm of its nose tip,
  3. align the cropped scan rigidly to the predicted shape by ICP (rotation
     and translation, no scale, no reflection; point-to-point, then
     point-to-plane, see `rigid_icp`),
  4. for each scan point q, find the nearest predicted vertex p with unit
     normal n: point-to-plane distance |n . (q - p)|, point-to-point
     distance ||q - p||; report the RMSE of the first and the mean of the
     second, in mm.

Nose tips: the predicted shape's is its landmark 30 (iBUG 68, 0-based: the
tip of the nose). The scan's is given, or found as the scan's most forward
point along `forward` (default +z: the face looks along +z in both the
scanner's frame and the face model's, y up), which is the nose tip for a
roughly frontal scan. ICP starts from the translation that puts the scan's
nose tip on the predicted one (rotation identity, since both frames face
+z), so the two surfaces start close enough for nearest-neighbour matching.

Everything is in the scan's units (mm for MICC, whose scans are in mm).
Nearest neighbours: scipy.spatial.cKDTree; ICP: trimesh.registration.icp.
"""

import dataclasses
from typing import Optional, Sequence

import numpy as np
from scipy import spatial
import trimesh

#: Crop radius around the scan's nose tip, mm.
CROP_RADIUS_MM = 95.0
#: iBUG-68 index (0-based) of the nose tip.
NOSE_TIP_LANDMARK = 30
#: The direction the face looks in the scan's and the face model's frames.
DEFAULT_FORWARD = (0.0, 0.0, 1.0)
ICP_MAX_ITERATIONS = 100
#: ICP stops when the mean squared distance drops by less than this, mm^2.
ICP_THRESHOLD = 1e-8


@dataclasses.dataclass(frozen=True)
class IcpResult:
  """A rigid alignment found by ICP.

  Attributes:
    matrix: [4, 4] homogeneous transform moving the source onto the target.
    moved: [P, 3] the source points after the transform.
    cost: mean squared distance to the matched target points, squared units.
  """
  matrix: np.ndarray
  moved: np.ndarray
  cost: float


@dataclasses.dataclass(frozen=True)
class ScanError:
  """The error of one predicted shape against one scan.

  Attributes:
    point_to_plane_rmse_mm: sqrt(mean_q (n_p . (q - p))^2) over the cropped,
      aligned scan points q and their nearest predicted vertices p.
    point_to_point_mm: mean_q ||q - p||.
    num_points: scan points inside the crop.
    transform: [4, 4] the rigid transform moving the scan onto the
      prediction (ICP result, initial nose-tip translation included).
    scan_nose_tip: [3] the scan's nose tip used for the crop, scan frame.
  """
  point_to_plane_rmse_mm: float
  point_to_point_mm: float
  num_points: int
  transform: np.ndarray
  scan_nose_tip: np.ndarray


def mean_shape(shapes: np.ndarray) -> np.ndarray:
  """[T, V, 3] shapes of one video's frames -> [V, 3] their mean (video
  protocol: one shape per video)."""
  shapes = np.asarray(shapes, np.float64)
  if shapes.ndim != 3 or shapes.shape[0] == 0:
    raise ValueError(f"Expected [T, V, 3] shapes with T > 0. Received: "
                     f"{shapes.shape}")
  return shapes.mean(axis=0)


def most_forward_point(vertices: np.ndarray,
                       forward: Sequence[float] = DEFAULT_FORWARD
                       ) -> np.ndarray:
  """The vertex furthest along `forward` ([3]) of [P, 3] vertices."""
  vertices = np.asarray(vertices, np.float64)
  direction = np.asarray(forward, np.float64)
  return vertices[np.argmax(vertices @ direction)]


def crop_sphere(points: np.ndarray, center: np.ndarray,
                radius: float = CROP_RADIUS_MM) -> np.ndarray:
  """The rows of [P, 3] `points` within `radius` of `center` [3]."""
  points = np.asarray(points, np.float64)
  inside = np.linalg.norm(points - np.asarray(center, np.float64),
                          axis=-1) <= radius
  return points[inside]


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  """[V, 3] unit vertex normals of a mesh (area-weighted, trimesh)."""
  mesh = trimesh.Trimesh(vertices=np.asarray(vertices, np.float64),
                         faces=np.asarray(triangles, np.int64), process=False)
  return np.asarray(mesh.vertex_normals, np.float64)


def rigid_icp(source: np.ndarray, target: np.ndarray,
              initial: Optional[np.ndarray] = None,
              target_normals: Optional[np.ndarray] = None,
              max_iterations: int = ICP_MAX_ITERATIONS,
              threshold: float = ICP_THRESHOLD) -> IcpResult:
  """Rigid ICP (rotation + translation) of source points onto target points.

  First point-to-point ICP (trimesh.registration.icp: nearest target
  vertex, Procrustes, repeat). Matching vertices only, it can stop a
  fraction of the vertex spacing away from the best fit (a regular grid
  makes that a local minimum), so with `target_normals` it goes on with
  point-to-plane iterations: each source point is matched to the foot of
  its perpendicular on the tangent plane of its nearest target vertex,
  q' = q - n (n . (q - p)), and Procrustes (trimesh.registration.procrustes)
  aligns the points with those feet -- sliding along the surface costs
  nothing, so the surfaces settle onto each other.

  Args:
    source: [P, 3] points moved.
    target: [Q, 3] points matched.
    initial: [4, 4] starting transform; default identity.
    target_normals: [Q, 3] unit normals of `target` (enables the
      point-to-plane stage).
    max_iterations: iterations at most, per stage.
    threshold: a stage stops when its cost decreases by less than this.

  Returns:
    An `IcpResult` (cost: the last stage's mean squared distance).
  """
  source = np.asarray(source, np.float64)
  target = np.asarray(target, np.float64)
  if len(source) < 3 or len(target) < 3:
    raise ValueError("ICP needs at least 3 points on each side. Received: "
                     f"{len(source)} source and {len(target)} target points")
  matrix, moved, cost = trimesh.registration.icp(
      source, target, initial=initial, threshold=threshold,
      max_iterations=max_iterations, reflection=False, scale=False,
      translation=True)
  matrix, moved = np.asarray(matrix), np.asarray(moved)
  if target_normals is not None:
    normals = np.asarray(target_normals, np.float64)
    tree = spatial.cKDTree(target)
    previous = np.inf
    for _ in range(max_iterations):
      _, nearest = tree.query(moved)
      n = normals[nearest]
      feet = moved - n * np.sum(n * (moved - target[nearest]), axis=-1,
                                keepdims=True)
      step, moved, _ = trimesh.registration.procrustes(
          moved, feet, reflection=False, translation=True, scale=False)
      matrix = step @ matrix
      offsets = moved - target[nearest]
      cost = float(np.mean(np.sum(offsets * n, axis=-1)**2))
      if previous - cost < threshold:
        break
      previous = cost
  return IcpResult(matrix=matrix, moved=moved, cost=float(cost))


def nearest_vertex_distances(points: np.ndarray, vertices: np.ndarray,
                             normals: np.ndarray):
  """Distances of points to their nearest vertices and those vertices' planes.

  Args:
    points: [P, 3].
    vertices: [V, 3].
    normals: [V, 3] unit normals of `vertices`.

  Returns:
    (point_to_point [P], point_to_plane [P]), in the points' units.
  """
  points = np.asarray(points, np.float64)
  _, nearest = spatial.cKDTree(np.asarray(vertices, np.float64)).query(points)
  offset = points - vertices[nearest]
  point_to_point = np.linalg.norm(offset, axis=-1)
  point_to_plane = np.abs(np.sum(offset * normals[nearest], axis=-1))
  return point_to_point, point_to_plane


def scan_error(predicted_vertices: np.ndarray, predicted_triangles: np.ndarray,
               predicted_nose_tip: np.ndarray, scan_vertices: np.ndarray,
               scan_nose_tip: Optional[np.ndarray] = None,
               crop_radius: float = CROP_RADIUS_MM,
               forward: Sequence[float] = DEFAULT_FORWARD,
               max_iterations: int = ICP_MAX_ITERATIONS) -> ScanError:
  """The error of a predicted shape against a scan (module docstring).

  Args:
    predicted_vertices: [V, 3] predicted shape (model space), mm.
    predicted_triangles: [F, 3] its triangles (for the vertex normals).
    predicted_nose_tip: [3] its nose tip, mm.
    scan_vertices: [P, 3] the whole scan, mm.
    scan_nose_tip: [3] the scan's nose tip; default `most_forward_point`.
    crop_radius: crop radius around the scan's nose tip, mm.
    forward: the direction the face looks in the scan's frame.
    max_iterations: ICP iterations at most.

  Returns:
    A `ScanError`.

  Raises:
    ValueError: fewer than 3 scan points inside the crop.
  """
  predicted_vertices = np.asarray(predicted_vertices, np.float64)
  scan_vertices = np.asarray(scan_vertices, np.float64)
  if scan_nose_tip is None:
    scan_nose_tip = most_forward_point(scan_vertices, forward)
  scan_nose_tip = np.asarray(scan_nose_tip, np.float64)
  cropped = crop_sphere(scan_vertices, scan_nose_tip, crop_radius)
  if len(cropped) < 3:
    raise ValueError(
        f"Only {len(cropped)} scan points lie within {crop_radius} mm of the "
        f"nose tip {scan_nose_tip.tolist()}: is the scan in mm, and does the "
        f"face look along {list(forward)}?")
  initial = np.eye(4)
  initial[:3, 3] = np.asarray(predicted_nose_tip, np.float64) - scan_nose_tip
  normals = vertex_normals(predicted_vertices, predicted_triangles)
  icp = rigid_icp(cropped, predicted_vertices, initial=initial,
                  target_normals=normals, max_iterations=max_iterations)
  point_to_point, point_to_plane = nearest_vertex_distances(
      icp.moved, predicted_vertices, normals)
  return ScanError(
      point_to_plane_rmse_mm=float(np.sqrt(np.mean(point_to_plane**2))),
      point_to_point_mm=float(point_to_point.mean()),
      num_points=int(len(cropped)), transform=icp.matrix,
      scan_nose_tip=scan_nose_tip)
