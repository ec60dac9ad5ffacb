"""Ground-truth face scans: triangle meshes read from .obj, .ply and VRML .wrl.

Evaluation sets such as MICC Florence ship 3D scans as Wavefront .obj and as
VRML 2.0 (.wrl) files. trimesh reads .obj/.ply/.off/.stl but has no VRML
loader, so VRML 2.0 `IndexedFaceSet` geometry is parsed here: the point
lists of `Coordinate` nodes and the `coordIndex` polygon lists, with the
`Transform` nodes above them applied, `DEF`/`USE` resolved, and
`ROUTE`/`PROTO` statements skipped. Polygons are fan-triangulated (scans are
triangle meshes already; fans are exact for convex polygons).

Every reader returns `ScanMesh(vertices float32 [P, 3] in mm, faces int32
[F, 3])` or raises `BadExampleError` for a file that cannot become one, so a
dataset build skips and counts a broken scan instead of dying.
"""

import dataclasses
import gzip
import os
import re
import warnings
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from mgc_tf.io.bad_input import BadExampleError

TRIMESH_EXTENSIONS = (".obj", ".ply", ".off", ".stl")
VRML_EXTENSIONS = (".wrl", ".vrml", ".wrz", ".wrl.gz")
SCAN_EXTENSIONS = TRIMESH_EXTENSIONS + VRML_EXTENSIONS

UNREADABLE = "unreadable scan"


@dataclasses.dataclass(frozen=True)
class ScanMesh:
  """A triangle mesh.

  Attributes:
    vertices: float32 [P, 3], millimetres.
    faces: int32 [F, 3] vertex indices, every one in [0, P).
  """
  vertices: np.ndarray
  faces: np.ndarray


def read_scan(path: str, scale_to_mm: float = 1.0) -> ScanMesh:
  """Reads a scan mesh from .obj, .ply, .off, .stl or VRML (.wrl, .wrz).

  Args:
    path: the mesh file; the format is chosen by its extension.
    scale_to_mm: factor from the file's units to millimetres (1 for scans
      stored in mm, such as MICC Florence's; 1000 for metres).

  Returns:
    ScanMesh with float32 vertices in mm and int32 triangle faces.

  Raises:
    BadExampleError: "unreadable scan" for a missing, empty, malformed or
      unsupported file, or one with no triangles, non-finite coordinates or
      face indices out of range.
  """
  lower = path.lower()
  if not os.path.isfile(path):
    raise BadExampleError(UNREADABLE, f"{path} does not exist")
  if lower.endswith(VRML_EXTENSIONS):
    vertices, faces = _read_vrml_file(path)
  elif lower.endswith(TRIMESH_EXTENSIONS):
    vertices, faces = _read_with_trimesh(path)
  else:
    raise BadExampleError(
        UNREADABLE, f"{path}: unsupported extension (expected one of "
        f"{', '.join(SCAN_EXTENSIONS)})")
  return _checked_mesh(vertices * scale_to_mm, faces, path)


def parse_vrml(text: str) -> Tuple[np.ndarray, np.ndarray]:
  """Triangle geometry of every IndexedFaceSet in a VRML 2.0 document.

  Args:
    text: the file's contents (UTF-8 decoded).

  Returns:
    vertices float64 [P, 3] (in the file's units, Transform nodes applied) and
    faces int64 [F, 3]; several IndexedFaceSets are concatenated.

  Raises:
    BadExampleError: "unreadable scan" for VRML 1.0, syntax errors, a missing
      USE target, a face set without coordinates, indices out of range, or a
      document without any IndexedFaceSet triangle.
  """
  header = text.lstrip()[:32]
  if header.startswith("#VRML V1.0"):
    raise BadExampleError(UNREADABLE,
                          "VRML 1.0 is not supported; convert the scan to .obj")
  try:
    scene = _VrmlParser(text).parse_scene()
  except _VrmlSyntaxError as error:
    raise BadExampleError(UNREADABLE, f"VRML syntax: {error}") from error
  vertex_blocks: List[np.ndarray] = []
  face_blocks: List[np.ndarray] = []
  for node in scene:
    _collect_face_sets(node, np.eye(4), vertex_blocks, face_blocks)
  if not face_blocks:
    raise BadExampleError(UNREADABLE, "no IndexedFaceSet with triangles")
  offsets = np.cumsum([0] + [len(block) for block in vertex_blocks[:-1]])
  faces = np.concatenate([block + offset
                          for block, offset in zip(face_blocks, offsets)])
  return np.concatenate(vertex_blocks), faces


def triangulate_polygons(coord_index: np.ndarray,
                         num_vertices: int) -> np.ndarray:
  """Fan-triangulates a VRML coordIndex list.

  Args:
    coord_index: 1-D integers, polygons separated by -1 (the final -1 may be
      missing), e.g. [0, 1, 2, 3, -1, 2, 3, 4] -> a quad and a triangle.
    num_vertices: P; every index must lie in [0, P).

  Returns:
    int64 [F, 3]: polygon (v0, v1, ..., vn) becomes (v0, vi, vi+1) for
    i = 1..n-2; polygons with fewer than 3 vertices are dropped.

  Raises:
    BadExampleError: "unreadable scan" for non-integer indices or indices out
      of range.
  """
  values = np.asarray(coord_index, dtype=np.float64).reshape(-1)
  if values.size and not np.all(values == np.round(values)):
    raise BadExampleError(UNREADABLE, "coordIndex holds non-integers")
  index = values.astype(np.int64)
  if index.size == 0 or index[-1] != -1:
    index = np.append(index, -1)
  corners = index[index != -1]
  # -1 separates polygons; any other negative index is an error.
  if corners.size and (corners.min() < 0 or corners.max() >= num_vertices):
    raise BadExampleError(
        UNREADABLE, f"coordIndex in [{index.min()}, {index.max()}] but the "
        f"face set has {num_vertices} points")
  separators = np.flatnonzero(index == -1)
  starts = np.concatenate([[0], separators[:-1] + 1])
  lengths = separators - starts
  triangles_per_polygon = np.maximum(lengths - 2, 0)
  total = int(triangles_per_polygon.sum())
  if total == 0:
    return np.zeros((0, 3), np.int64)
  polygon_start = np.repeat(starts, triangles_per_polygon)
  # Position of each triangle within its polygon's fan: 1, 2, ..., n - 2.
  first_of_polygon = np.cumsum(triangles_per_polygon) - triangles_per_polygon
  fan_step = (np.arange(total)
              - np.repeat(first_of_polygon, triangles_per_polygon) + 1)
  return np.stack([index[polygon_start],
                   index[polygon_start + fan_step],
                   index[polygon_start + fan_step + 1]], axis=1)


def _read_with_trimesh(path: str) -> Tuple[np.ndarray, np.ndarray]:
  import trimesh  # pylint: disable=g-import-not-at-top
  try:
    # process=False: keep the file's vertices (no merging); materials and
    # textures are irrelevant to geometry and may be missing beside the file
    # (trimesh then warns about NaNs while it handles the texture coordinates).
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)
      mesh = trimesh.load(path, force="mesh", process=False,
                          maintain_order=True, skip_materials=True)
  except Exception as error:  # pylint: disable=broad-except
    # A malformed file can raise anything from trimesh's parsers.
    raise BadExampleError(UNREADABLE,
                          f"{path}: {type(error).__name__}: {error}") from error
  vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))))
  faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))))
  return vertices, faces


def _read_vrml_file(path: str) -> Tuple[np.ndarray, np.ndarray]:
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as error:
    raise BadExampleError(UNREADABLE, f"{path}: {error}") from error
  if data[:2] == b"\x1f\x8b":  # VRML files are often gzip-compressed.
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError) as error:
      raise BadExampleError(UNREADABLE, f"{path}: bad gzip: {error}") from error
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError:
    text = data.decode("latin-1")
  try:
    return parse_vrml(text)
  except BadExampleError as error:
    raise BadExampleError(error.reason, f"{path}: {error.detail}") from error


def _checked_mesh(vertices: np.ndarray, faces: np.ndarray,
                  path: str) -> ScanMesh:
  vertices = np.asarray(vertices, dtype=np.float64)
  faces = np.asarray(faces)
  if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) < 3:
    raise BadExampleError(UNREADABLE,
                          f"{path}: no mesh (vertices of shape "
                          f"{vertices.shape})")
  if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
    raise BadExampleError(UNREADABLE, f"{path}: no triangles "
                          f"(faces of shape {faces.shape})")
  if not np.all(np.isfinite(vertices)):
    raise BadExampleError(UNREADABLE, f"{path}: non-finite vertex coordinates")
  if faces.min() < 0 or faces.max() >= len(vertices):
    raise BadExampleError(UNREADABLE, f"{path}: face index out of range")
  return ScanMesh(vertices=vertices.astype(np.float32),
                  faces=faces.astype(np.int32))


# ---------------------------------------------------------------------------
# VRML 2.0 (VRML97) classic encoding: a small recursive-descent parser.


class _VrmlSyntaxError(ValueError):
  pass


class _Node:
  """A parsed VRML node: its type name and field values."""

  def __init__(self, type_name: str):
    self.type_name = type_name
    self.fields: Dict[str, object] = {}


# Strings are kept whole (they may hold '#', brackets or braces); comments run
# from '#' to the end of the line.
_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\]|\\.)*"|#[^\n]*')
# Commas are whitespace in VRML 2.0.
_TOKEN = re.compile(r'[\s,]*("(?:[^"\\]|\\.)*"|[{}\[\]]|[^\s,{}\[\]"]+)')
_TRAILING_SPACE = re.compile(r"[\s,]*\Z")
_BOOLEANS = {"TRUE": True, "FALSE": False}

_Value = Union[None, _Node, np.ndarray, list]


def _strip_comments(text: str) -> str:
  return _STRING_OR_COMMENT.sub(
      lambda m: m.group(0) if m.group(0).startswith('"') else " ", text)


def _is_number(token: str) -> bool:
  try:
    float(token)
  except ValueError:
    return False
  return True


class _VrmlParser:
  """Parses nodes and their fields; keeps no semantics beyond DEF/USE."""

  def __init__(self, text: str):
    self._text = _strip_comments(text)
    self._pos = 0
    self._defs: Dict[str, _Node] = {}

  def parse_scene(self) -> List[_Node]:
    nodes = []
    while self._peek() is not None:
      if self._skip_statement():
        continue
      nodes.append(self._parse_node())
    if not _TRAILING_SPACE.match(self._text, self._pos):
      raise _VrmlSyntaxError(f"unexpected text at offset {self._pos}")
    return nodes

  # Tokens --------------------------------------------------------------

  def _match(self, pos: int):
    return _TOKEN.match(self._text, pos)

  def _peek(self, ahead: int = 0) -> Optional[str]:
    pos = self._pos
    match = None
    for _ in range(ahead + 1):
      match = self._match(pos)
      if match is None:
        return None
      pos = match.end()
    return match.group(1)

  def _next(self) -> str:
    match = self._match(self._pos)
    if match is None:
      raise _VrmlSyntaxError("unexpected end of file")
    self._pos = match.end()
    return match.group(1)

  def _expect(self, token: str) -> None:
    found = self._next()
    if found != token:
      raise _VrmlSyntaxError(f"expected {token!r}, found {found!r} before "
                             f"offset {self._pos}")

  def _skip_balanced(self, opening: str, closing: str) -> None:
    self._expect(opening)
    depth = 1
    while depth:
      token = self._next()
      depth += (token == opening) - (token == closing)

  # Statements ----------------------------------------------------------

  def _skip_statement(self) -> bool:
    """Skips a ROUTE/PROTO/EXTERNPROTO statement; False if none is next."""
    token = self._peek()
    if token == "ROUTE":  # ROUTE node.eventOut TO node.eventIn
      for _ in range(4):
        self._next()
    elif token == "PROTO":  # PROTO name [ interface ] { body }
      self._next()
      self._next()
      self._skip_balanced("[", "]")
      self._skip_balanced("{", "}")
    elif token == "EXTERNPROTO":  # EXTERNPROTO name [ interface ] url(s)
      self._next()
      self._next()
      self._skip_balanced("[", "]")
      if self._peek() == "[":
        self._skip_balanced("[", "]")
      else:
        self._next()
    else:
      return False
    return True

  def _is_node_start(self) -> bool:
    token = self._peek()
    if token in ("DEF", "USE"):
      return True
    return (token is not None and (token[0].isalpha() or token[0] == "_")
            and self._peek(1) == "{")

  def _parse_node(self) -> _Node:
    token = self._next()
    if token == "USE":
      name = self._next()
      if name not in self._defs:
        raise _VrmlSyntaxError(f"USE {name} before DEF {name}")
      return self._defs[name]
    if token == "DEF":
      name = self._next()
      node = self._parse_node()
      self._defs[name] = node
      return node
    if not (token[0].isalpha() or token[0] == "_"):
      raise _VrmlSyntaxError(f"expected a node, found {token!r}")
    node = _Node(token)
    self._expect("{")
    while self._peek() != "}":
      if self._peek() is None:
        raise _VrmlSyntaxError(f"unclosed {token} node")
      if self._skip_statement():
        continue
      field_name = self._next()
      if field_name in ("eventIn", "eventOut"):  # Script interface: type, name
        self._next()
        self._next()
        continue
      if field_name in ("field", "exposedField"):  # type, name, value
        self._next()
        field_name = self._next()
      if self._peek() == "IS":  # PROTO body: field IS interfaceField
        self._next()
        self._next()
        continue
      node.fields[field_name] = self._parse_value()
    self._next()
    return node

  # Values --------------------------------------------------------------

  def _parse_value(self) -> _Value:
    token = self._peek()
    if token is None or token in ("{", "}", "]"):
      raise _VrmlSyntaxError(f"expected a field value, found {token!r}")
    if token == "[":
      return self._parse_list()
    if token == "NULL":
      self._next()
      return None
    if self._is_node_start():
      return self._parse_node()
    scalars = self._parse_scalars()
    if not scalars:
      raise _VrmlSyntaxError(f"expected a field value, found {token!r}")
    return scalars

  def _parse_scalars(self) -> list:
    """Numbers, TRUE/FALSE and strings up to the next field name or bracket."""
    scalars = []
    while True:
      token = self._peek()
      if token is None or token in ("{", "}", "[", "]"):
        return scalars
      if token.startswith('"'):
        scalars.append(token[1:-1])
      elif token in _BOOLEANS:
        scalars.append(_BOOLEANS[token])
      elif _is_number(token):
        scalars.append(float(token))
      else:
        return scalars
      self._next()

  def _parse_list(self) -> _Value:
    self._expect("[")
    # Fast path for the large numeric lists (point, coordIndex, texCoord):
    # one numpy conversion instead of a Python loop over tokens.
    end = self._text.find("]", self._pos)
    if end < 0:
      raise _VrmlSyntaxError("unclosed '['")
    segment = self._text[self._pos:end]
    if "{" not in segment and '"' not in segment:
      try:
        numbers = np.asarray(segment.replace(",", " ").split(),
                             dtype=np.float64)
      except ValueError:
        pass  # TRUE/FALSE or malformed: the token loop decides below.
      else:
        self._pos = end + 1
        return numbers
    items: list = []
    while self._peek() != "]":
      if self._peek() is None:
        raise _VrmlSyntaxError("unclosed '['")
      if self._skip_statement():
        continue
      if self._is_node_start():
        items.append(self._parse_node())
        continue
      scalars = self._parse_scalars()
      if not scalars:
        raise _VrmlSyntaxError(f"unexpected {self._peek()!r} in a list")
      items.extend(scalars)
    self._next()
    return items


# Geometry extraction --------------------------------------------------------


def _numbers(value: _Value, field: str, count: Optional[int] = None
             ) -> np.ndarray:
  if value is None or isinstance(value, _Node):
    raise BadExampleError(UNREADABLE, f"{field} is not a list of numbers")
  try:
    array = np.asarray(value, dtype=np.float64).reshape(-1)
  except (TypeError, ValueError) as error:
    raise BadExampleError(UNREADABLE,
                          f"{field} is not a list of numbers") from error
  if count is not None and array.size != count:
    raise BadExampleError(UNREADABLE,
                          f"{field} has {array.size} numbers, expected {count}")
  return array


def _axis_angle_matrix(rotation: np.ndarray) -> np.ndarray:
  """4x4 rotation from VRML's (x, y, z, angle in radians), Rodrigues."""
  axis, angle = rotation[:3], rotation[3]
  norm = np.linalg.norm(axis)
  matrix = np.eye(4)
  if norm == 0.0 or angle == 0.0:
    return matrix
  x, y, z = axis / norm
  cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
  matrix[:3, :3] = (np.eye(3) + np.sin(angle) * cross
                    + (1.0 - np.cos(angle)) * cross @ cross)
  return matrix


def _transform_matrix(node: _Node) -> np.ndarray:
  """4x4 matrix of a Transform node: T C R SR S -SR -C (VRML97 6.52)."""
  def field(name, default):
    value = node.fields.get(name)
    return default if value is None else _numbers(value, f"Transform.{name}",
                                                  len(default))
  translation = field("translation", np.zeros(3))
  center = field("center", np.zeros(3))
  rotation = field("rotation", np.array([0.0, 0.0, 1.0, 0.0]))
  scale = field("scale", np.ones(3))
  scale_orientation = field("scaleOrientation", np.array([0.0, 0.0, 1.0, 0.0]))

  def shift(offset):
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix
  orient = _axis_angle_matrix(scale_orientation)
  return (shift(translation) @ shift(center) @ _axis_angle_matrix(rotation)
          @ orient @ np.diag(np.append(scale, 1.0)) @ orient.T
          @ shift(-center))


def _collect_face_sets(node: _Value, matrix: np.ndarray,
                       vertex_blocks: List[np.ndarray],
                       face_blocks: List[np.ndarray]) -> None:
  """Appends the triangles of every IndexedFaceSet under `node`."""
  if isinstance(node, list):
    for item in node:
      _collect_face_sets(item, matrix, vertex_blocks, face_blocks)
    return
  if not isinstance(node, _Node):
    return
  if node.type_name == "Transform":
    matrix = matrix @ _transform_matrix(node)
  if node.type_name == "IndexedFaceSet":
    coordinate = node.fields.get("coord")
    if not isinstance(coordinate, _Node) or "point" not in coordinate.fields:
      raise BadExampleError(UNREADABLE, "IndexedFaceSet without coord points")
    points = _numbers(coordinate.fields["point"], "Coordinate.point")
    if points.size % 3:
      raise BadExampleError(UNREADABLE, f"Coordinate.point has {points.size} "
                            "numbers, not a multiple of 3")
    points = points.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
    coord_index = node.fields.get("coordIndex")
    faces = triangulate_polygons(
        _numbers([] if coord_index is None else coord_index,
                 "IndexedFaceSet.coordIndex"), len(points))
    ccw = node.fields.get("ccw")
    if isinstance(ccw, list) and ccw and ccw[0] is False:
      faces = faces[:, ::-1]  # Keep counter-clockwise front faces.
    if len(faces):
      vertex_blocks.append(points)
      face_blocks.append(faces)
    return
  for value in node.fields.values():
    if isinstance(value, (list, _Node)):
      _collect_face_sets(value, matrix, vertex_blocks, face_blocks)
