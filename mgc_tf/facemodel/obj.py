"""A small, fast Wavefront OBJ reader for face-model meshes (NumPy only).

Reads what face-model releases write: `v x y z` lines (extra values such as
vertex colours are ignored) and `f` lines with triangles, quads or larger
polygons whose corners are `v`, `v/vt`, `v/vt/vn` or `v//vn` (1-based;
OBJ's relative, negative ids are not supported and raise). Everything else
(`vt`, `vn`, `usemtl`, comments, groups) is skipped. Quads and larger polygons become triangles with the winding of
the polygon kept (`triangulate`).

The OBJ reader of `mgc_tf.io.scans` (trimesh) serves scans; this one lives in
`facemodel` because loaders must not import the layers above (DESIGN
section 3), and it reads only what a morph target needs.
"""

import dataclasses
from typing import Optional, Tuple

import numpy as np


class ObjError(ValueError):
  """An OBJ file cannot be read; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class ObjMesh:
  """A polygon mesh as read from an OBJ file.

  Attributes:
    vertices: [V, 3] float64 positions, in the file's units.
    polygon_sizes: [P] int64 corner count of each `f` line (3, 4, ...), in
      file order; empty when faces were not read.
    polygon_corners: [sum(polygon_sizes)] int64 0-based vertex ids of the
      corners, polygon after polygon.
  """
  vertices: np.ndarray
  polygon_sizes: np.ndarray
  polygon_corners: np.ndarray

  @property
  def num_polygons(self) -> int:
    return int(self.polygon_sizes.shape[0])


def _numbers(lines, path: str, what: str) -> np.ndarray:
  """Whitespace-separated numbers of `lines` (bytes, prefix stripped)."""
  text = b" ".join(lines).decode("ascii", errors="replace")
  values = np.array(text.split(), dtype=object)
  try:
    return values.astype(np.float64)
  except ValueError as e:
    raise ObjError(f"{path}: a '{what}' line holds a value that is not a "
                   f"number ({e})") from e


def read_obj(path: str, faces: bool = True,
             num_vertices: Optional[int] = None) -> ObjMesh:
  """Reads the vertices (and polygons) of an OBJ file.

  Args:
    path: the .obj file.
    faces: also read the `f` lines (False reads only vertices, for morph
      targets that share a base mesh's polygons).
    num_vertices: the vertex count the file must have, if known.

  Returns:
    The `ObjMesh` (polygon arrays empty when `faces` is False).

  Raises:
    ObjError: missing or unreadable file, no vertices, a vertex with fewer
      than 3 coordinates, a count other than `num_vertices`, or a polygon
      with fewer than 3 corners or a vertex id out of range.
  """
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise ObjError(f"{path}: cannot read the OBJ file ({e.strerror})") from e
  lines = data.splitlines()
  vertex_lines = [line[2:] for line in lines if line.startswith(b"v ")]
  if not vertex_lines:
    raise ObjError(f"{path}: no 'v x y z' vertex lines; is it an OBJ mesh?")
  widths = {len(line.split()) for line in vertex_lines}
  if min(widths) < 3:
    raise ObjError(f"{path}: a 'v' line has fewer than 3 coordinates")
  if len(widths) == 1:
    vertices = _numbers(vertex_lines, path, "v").reshape(
        [len(vertex_lines), -1])[:, :3]
  else:  # Mixed `v x y z` and `v x y z r g b`: keep the first three.
    vertices = _numbers([b" ".join(line.split()[:3]) for line in vertex_lines],
                        path, "v").reshape([-1, 3])
  if num_vertices is not None and vertices.shape[0] != num_vertices:
    raise ObjError(f"{path}: has {vertices.shape[0]} vertices, expected "
                   f"{num_vertices} (the base mesh's count)")
  if not np.all(np.isfinite(vertices)):
    raise ObjError(f"{path}: a vertex coordinate is NaN or infinite")
  sizes = np.zeros([0], np.int64)
  corners = np.zeros([0], np.int64)
  if faces:
    sizes, corners = _polygons(lines, vertices.shape[0], path)
  return ObjMesh(vertices=vertices, polygon_sizes=sizes,
                 polygon_corners=corners)


def _polygons(lines, num_vertices: int, path: str
             ) -> Tuple[np.ndarray, np.ndarray]:
  """[P] corner counts and the flat 0-based corner ids of the `f` lines."""
  face_lines = [line[2:].split() for line in lines if line.startswith(b"f ")]
  if not face_lines:
    raise ObjError(f"{path}: no 'f' polygon lines")
  sizes = np.array([len(corners) for corners in face_lines], np.int64)
  if sizes.min() < 3:
    raise ObjError(f"{path}: a polygon has fewer than 3 corners")
  # 'v', 'v/vt', 'v/vt/vn', 'v//vn': the vertex id comes before the first '/'.
  first = [corner.split(b"/", 1)[0] for corners in face_lines
           for corner in corners]
  try:
    ids = np.array(first, dtype=object).astype(np.int64)
  except ValueError as e:
    raise ObjError(f"{path}: an 'f' line holds a vertex id that is not an "
                   f"integer ({e})") from e
  if ids.min() < 1 or ids.max() > num_vertices:
    raise ObjError(f"{path}: polygon vertex ids must be in [1, "
                   f"{num_vertices}] (1-based, no negative ids), got "
                   f"[{ids.min()}, {ids.max()}]")
  return sizes, ids - 1


def triangulate(mesh: ObjMesh) -> Tuple[np.ndarray, np.ndarray]:
  """Splits every polygon into triangles, keeping its winding.

  A quad (a, b, c, d) is split along its shorter diagonal: (a, b, c) +
  (a, c, d) if |ac| <= |bd|, else (a, b, d) + (b, c, d); both pairs turn the
  same way as the quad. Larger polygons are fanned from their first corner.

  Args:
    mesh: an `ObjMesh` with polygons.

  Returns:
    ([F, 3] int64 0-based triangles, [F] int64 id of the polygon each came
    from).
  """
  sizes, corners, points = (mesh.polygon_sizes, mesh.polygon_corners,
                            mesh.vertices)
  starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
  triangles, origins = [], []
  polygon_ids = np.arange(sizes.shape[0])
  tri = polygon_ids[sizes == 3]
  if tri.size:
    triangles.append(corners[starts[tri, None] + np.arange(3)])
    origins.append(tri)
  quad = polygon_ids[sizes == 4]
  if quad.size:
    a, b, c, d = (corners[starts[quad] + k] for k in range(4))
    ac = np.linalg.norm(points[a] - points[c], axis=-1)
    bd = np.linalg.norm(points[b] - points[d], axis=-1)
    on_ac = ac <= bd
    first = np.where(on_ac[:, None], np.stack([a, b, c], -1),
                     np.stack([a, b, d], -1))
    second = np.where(on_ac[:, None], np.stack([a, c, d], -1),
                      np.stack([b, c, d], -1))
    triangles += [first, second]
    origins += [quad, quad]
  for polygon in polygon_ids[sizes > 4]:  # Rare: fan them one by one.
    ring = corners[starts[polygon]:starts[polygon] + sizes[polygon]]
    fan = np.stack([np.full(ring.size - 2, ring[0]), ring[1:-1], ring[2:]], -1)
    triangles.append(fan)
    origins.append(np.full(ring.size - 2, polygon))
  triangles = np.concatenate(triangles).astype(np.int64)
  origins = np.concatenate(origins).astype(np.int64)
  order = np.lexsort((np.arange(origins.size), origins))  # polygon order
  return triangles[order], origins[order]
