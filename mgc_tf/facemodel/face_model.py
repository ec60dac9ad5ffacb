"""The `FaceModel`: a linear 3D morphable model in our units and conventions.

Shape glossary used across mgc_tf docstrings:
  B batch, N views, V vertices, F triangles, H/W image height/width,
  K_id / K_exp / K_alb identity / expression / albedo ranks.

Conventions (see ../shared/DESIGN.md section 4):
  * Model space is right-handed, as in the Basel Face Model: +x to the
    viewer's right when the face looks at the viewer, +y up, +z out of the
    face (towards the viewer).
  * Units are millimetres. Albedo is linear RGB in [0, 1].
  * Bases are pre-multiplied by their standard deviations, so a coefficient of
    1.0 means one standard deviation. The exception is a "blendshape"
    expression basis (`expression_kind`): deltas per unit weight, weights
    meant for [0, 1] (see `mgc_tf.facemodel.expressions`).
  * Triangles are 0-based and counter-clockwise when seen from +z (the front).
  * `vertex_triangles` is [V, M] with padding value F: gather from a per-
    triangle array with one extra zero row appended. It stays in the format
    (and the fingerprint); the decoder's vertex normals sum over `triangles`
    instead (`shading.vertex_normals`), which costs less where M is large.
"""

import dataclasses
import hashlib
import os
from typing import Tuple

import numpy as np

from mgc_tf.facemodel import crop
from mgc_tf.facemodel import expressions

#: Version of the native `.npz` layout written by `FaceModel.save`. Version 2
#: adds `expression_kind` and `expression_names`; a model with PCA
#: expressions is still written as version 1, byte for byte as before, so
#: older mgc_tf reads it, while a blendshape model (version 2) is refused by
#: them instead of being decoded as PCA.
NPZ_FORMAT_VERSION = 2
NPZ_READABLE_VERSIONS = (1, 2)
#: Fields that version 1 files lack, with the values they imply.
_VERSION_2_DEFAULTS = {"expression_kind": expressions.PCA,
                       "expression_names": ()}


class FaceModelError(ValueError):
  """A face-model file is missing or malformed; the message says how to fix it."""


@dataclasses.dataclass(frozen=True, eq=False)
class FaceModel:
  """A linear morphable face model.

  Attributes:
    mean_shape: [V, 3] float32, millimetres, model space.
    id_basis: [V, 3, K_id] float32, millimetres per standard deviation.
    exp_basis: [V, 3, K_exp] float32, millimetres per standard deviation
      ("pca" kind) or per unit blendshape weight ("blendshape" kind).
    mean_albedo: [V, 3] float32, linear RGB in [0, 1].
    albedo_basis: [V, 3, K_alb] float32, albedo units per standard deviation.
    triangles: [F, 3] int32, 0-based, counter-clockwise seen from the front.
    landmark_indices: [68] int32, vertex ids of the 68 iBUG landmarks, in order.
    skin_mask: [V] float32 in [0, 1], 1 on skin (used to weight photometric
      losses; eyes, brows and lips are 0).
    front_mask: [V] bool, True on the front face region (the part that is
      rendered and used by multi-view losses).
    vertex_triangles: [V, M] int32, ids of the triangles around each vertex,
      padded with F.
    default_pose: [6] float32, (rz, ry, rx) radians then (tx, ty, tz) mm: the
      pose that puts the mean face frontal and centred in the crop. Predicted
      poses are added to it.
    focal_length: pixels, for a square crop of `image_size` pixels with the
      principal point at its centre.
    image_size: side of the square crop the camera is defined for, pixels.
    name: where the model came from (shown in logs).
    expression_kind: "pca" (coefficients ~ N(0, 1)) or "blendshape"
      (weights meant for [0, 1]); `mgc_tf.facemodel.expressions` says how
      the decoder and the regulariser treat each.
    expression_names: [K_exp] names of the blendshapes (ARKit names for
      ICT-FaceKit), empty for PCA models.
  """
  mean_shape: np.ndarray
  id_basis: np.ndarray
  exp_basis: np.ndarray
  mean_albedo: np.ndarray
  albedo_basis: np.ndarray
  triangles: np.ndarray
  landmark_indices: np.ndarray
  skin_mask: np.ndarray
  front_mask: np.ndarray
  vertex_triangles: np.ndarray
  default_pose: np.ndarray
  focal_length: float
  image_size: int = crop.CROP_SIZE
  name: str = "unnamed"
  expression_kind: str = expressions.PCA
  expression_names: Tuple[str, ...] = ()

  # --- derived sizes --------------------------------------------------------
  def fingerprint(self) -> str:
    """sha256 (hex, 16 digits) of every array and number of the model.

    Two models with the same fingerprint decode coefficients identically;
    `model.json` records it so a run is restored with its own face model.
    """
    digest = hashlib.sha256()
    for f in dataclasses.fields(self):
      if f.name == "name":
        continue
      if (f.name in _VERSION_2_DEFAULTS and
          self.expression_kind == expressions.PCA):
        continue  # PCA models keep the fingerprints they had before.
      value = np.ascontiguousarray(getattr(self, f.name))
      digest.update(f.name.encode())
      digest.update(str(value.dtype).encode() + str(value.shape).encode())
      digest.update(value.tobytes())
    return digest.hexdigest()[:16]

  @property
  def num_vertices(self) -> int:
    return int(self.mean_shape.shape[0])

  @property
  def num_triangles(self) -> int:
    return int(self.triangles.shape[0])

  @property
  def id_rank(self) -> int:
    return int(self.id_basis.shape[-1])

  @property
  def exp_rank(self) -> int:
    return int(self.exp_basis.shape[-1])

  @property
  def albedo_rank(self) -> int:
    return int(self.albedo_basis.shape[-1])

  @property
  def is_blendshape(self) -> bool:
    """True if expressions are blendshape weights rather than PCA."""
    return self.expression_kind == expressions.BLENDSHAPE

  # --- construction -----------------------------------------------------------
  @classmethod
  def create(cls,
             mean_shape,
             id_basis,
             exp_basis,
             mean_albedo,
             albedo_basis,
             triangles,
             landmark_indices,
             skin_mask=None,
             front_mask=None,
             vertex_triangles=None,
             default_pose=None,
             focal_length: float = crop.DEFAULT_FOCAL_LENGTH,
             image_size: int = crop.CROP_SIZE,
             name: str = "unnamed",
             expression_kind: str = expressions.PCA,
             expression_names=()) -> "FaceModel":
    """Builds a validated model, casting dtypes and deriving optional fields.

    `skin_mask` defaults to all ones, `front_mask` to all True,
    `vertex_triangles` is computed from `triangles`, and `default_pose` puts
    the model frontal (rx = pi turns model +y up / +z out into camera y down /
    z forward) at a distance that fits the face in the crop.
    """
    mean_shape = np.asarray(mean_shape, np.float32)
    triangles = np.asarray(triangles, np.int32)
    num_vertices = mean_shape.shape[0] if mean_shape.ndim == 2 else 0
    if skin_mask is None:
      skin_mask = np.ones([num_vertices], np.float32)
    if front_mask is None:
      front_mask = np.ones([num_vertices], bool)
    if vertex_triangles is None:
      vertex_triangles = compute_vertex_triangles(triangles, num_vertices)
    if default_pose is None:
      default_pose = frontal_default_pose(mean_shape, focal_length, image_size)
    model = cls(
        mean_shape=mean_shape,
        id_basis=np.asarray(id_basis, np.float32),
        exp_basis=np.asarray(exp_basis, np.float32),
        mean_albedo=np.asarray(mean_albedo, np.float32),
        albedo_basis=np.asarray(albedo_basis, np.float32),
        triangles=triangles,
        landmark_indices=np.asarray(landmark_indices, np.int32).reshape([-1]),
        skin_mask=np.asarray(skin_mask, np.float32).reshape([-1]),
        front_mask=np.asarray(front_mask, bool).reshape([-1]),
        vertex_triangles=np.asarray(vertex_triangles, np.int32),
        default_pose=np.asarray(default_pose, np.float32).reshape([6]),
        focal_length=float(focal_length),
        image_size=int(image_size),
        name=str(name),
        expression_kind=str(expression_kind),
        expression_names=tuple(str(n) for n in expression_names))
    model.validate()
    return model

  def validate(self, source: str = "") -> None:
    """Raises FaceModelError if any array has the wrong shape or values."""
    where = f" in {source}" if source else ""
    v = self.mean_shape.shape[0] if self.mean_shape.ndim == 2 else -1

    def fail(msg):
      raise FaceModelError(f"Malformed face model{where}: {msg}")

    if self.mean_shape.ndim != 2 or self.mean_shape.shape[1] != 3:
      fail(f"mean_shape must be [V, 3], got {self.mean_shape.shape}.")
    for field, arr in (("id_basis", self.id_basis),
                       ("exp_basis", self.exp_basis),
                       ("albedo_basis", self.albedo_basis)):
      if arr.ndim != 3 or arr.shape[:2] != (v, 3):
        fail(f"{field} must be [V={v}, 3, K], got {arr.shape}.")
    if self.mean_albedo.shape != (v, 3):
      fail(f"mean_albedo must be [V={v}, 3], got {self.mean_albedo.shape}.")
    if self.triangles.ndim != 2 or self.triangles.shape[1] != 3:
      fail(f"triangles must be [F, 3], got {self.triangles.shape}.")
    if self.triangles.size and (self.triangles.min() < 0 or
                                self.triangles.max() >= v):
      fail(f"triangle indices must be in [0, {v}), got range "
           f"[{self.triangles.min()}, {self.triangles.max()}] (1-based "
           "indices not converted?).")
    if self.landmark_indices.shape != (68,):
      fail(f"landmark_indices must hold 68 ids, got "
           f"{self.landmark_indices.shape}.")
    if self.landmark_indices.min() < 0 or self.landmark_indices.max() >= v:
      fail(f"landmark indices must be in [0, {v}).")
    if self.skin_mask.shape != (v,):
      fail(f"skin_mask must be [V={v}], got {self.skin_mask.shape}.")
    if self.front_mask.shape != (v,):
      fail(f"front_mask must be [V={v}], got {self.front_mask.shape}.")
    if self.vertex_triangles.ndim != 2 or self.vertex_triangles.shape[0] != v:
      fail(f"vertex_triangles must be [V={v}, M], got "
           f"{self.vertex_triangles.shape}.")
    if (self.vertex_triangles.min() < 0 or
        self.vertex_triangles.max() > self.num_triangles):
      fail(f"vertex_triangles must be in [0, F={self.num_triangles}] "
           "(F is the padding value).")
    for field in ("mean_shape", "id_basis", "exp_basis", "mean_albedo",
                  "albedo_basis", "default_pose"):
      if not np.all(np.isfinite(getattr(self, field))):
        fail(f"{field} holds NaN or Inf.")
    if not self.focal_length > 0 or not self.image_size > 0:
      fail("focal_length and image_size must be positive.")
    problem = expressions.check_kind(self.expression_kind,
                                     self.expression_names, self.exp_rank)
    if problem:
      fail(problem + ".")

  # --- native format ----------------------------------------------------------
  def save(self, path: str) -> None:
    """Writes the model as a native `.npz` file (see `load`)."""
    arrays = {f.name: getattr(self, f.name)
              for f in dataclasses.fields(self)}
    version = NPZ_FORMAT_VERSION
    if self.expression_kind == expressions.PCA:
      version = 1  # The version 1 layout, readable by older mgc_tf.
      for field in _VERSION_2_DEFAULTS:
        del arrays[field]
    else:
      arrays["expression_names"] = np.array(self.expression_names, dtype=str)
    arrays["format_version"] = np.int32(version)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
      np.savez_compressed(f, **arrays)

  @classmethod
  def load(cls, path: str) -> "FaceModel":
    """Reads a native `.npz` written by `save` (or the converter command)."""
    if not os.path.exists(path):
      raise FaceModelError(
          f"Face model file not found: {path}. Write one with "
          "`python -m mgc_tf.convert_face_model --input=<BFM file> "
          f"--output={path}`, or leave the face-model flag empty to use the "
          "embedded synthetic model.")
    try:
      with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    except Exception as e:  # zipfile / pickle errors carry no path.
      raise FaceModelError(
          f"Cannot read {path} as a native mgc_tf face model (.npz): {e}. "
          "Re-create it with `python -m mgc_tf.convert_face_model`.") from e
    version = int(arrays.pop("format_version", -1))
    if version not in NPZ_READABLE_VERSIONS:
      raise FaceModelError(
          f"{path} has face-model format version {version}, this mgc_tf "
          f"reads {NPZ_READABLE_VERSIONS}. Re-create it with "
          "`python -m mgc_tf.convert_face_model` (or update mgc_tf).")
    if version == 1:
      for field, default in _VERSION_2_DEFAULTS.items():
        arrays.setdefault(field, default)
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in arrays]
    if missing:
      raise FaceModelError(f"{path} lacks the arrays {missing}; re-create it "
                           "with `python -m mgc_tf.convert_face_model`.")
    kwargs = {f.name: arrays[f.name] for f in dataclasses.fields(cls)}
    kwargs["focal_length"] = float(kwargs["focal_length"])
    kwargs["image_size"] = int(kwargs["image_size"])
    kwargs["name"] = str(kwargs["name"])
    kwargs["expression_kind"] = str(kwargs["expression_kind"])
    kwargs["expression_names"] = tuple(
        str(n) for n in np.asarray(kwargs["expression_names"]).reshape([-1]))
    model = cls(**kwargs)
    model.validate(source=path)
    return model

  # --- NumPy evaluation (reference for tests and tools) -------------------------
  def shape_np(self, id_coeffs=None, exp_coeffs=None) -> np.ndarray:
    """[V, 3] mm: S_mean + A_id alpha + B_exp beta for one face (NumPy).

    For a blendshape model beta are the weights the decoder makes of the raw
    `exp_coeffs` (`expressions.blendshape_weights_np`), as in `FaceDecoder`.
    """
    shape = self.mean_shape.astype(np.float64)
    if id_coeffs is not None:
      shape = shape + self.id_basis @ np.asarray(id_coeffs, np.float64)
    if exp_coeffs is not None:
      exp_coeffs = np.asarray(exp_coeffs, np.float64)
      if self.is_blendshape:
        exp_coeffs = expressions.blendshape_weights_np(exp_coeffs,
                                                       self.expression_names)
      shape = shape + self.exp_basis @ exp_coeffs
    return shape.astype(np.float32)

  def albedo_np(self, albedo_coeffs=None) -> np.ndarray:
    """[V, 3] in [0, 1]: clip(T_mean + T_alb delta) for one face (NumPy)."""
    albedo = self.mean_albedo.astype(np.float64)
    if albedo_coeffs is not None:
      albedo = albedo + self.albedo_basis @ np.asarray(albedo_coeffs,
                                                       np.float64)
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)


def compute_vertex_triangles(triangles: np.ndarray,
                             num_vertices: int) -> np.ndarray:
  """[V, M] int32 ids of the triangles touching each vertex, padded with F.

  M is the largest vertex degree. Isolated vertices get only padding.
  """
  triangles = np.asarray(triangles, np.int64)
  num_triangles = triangles.shape[0]
  vertex_ids = triangles.reshape([-1])
  triangle_ids = np.repeat(np.arange(num_triangles), 3)
  order = np.argsort(vertex_ids, kind="stable")
  vertex_ids, triangle_ids = vertex_ids[order], triangle_ids[order]
  counts = np.bincount(vertex_ids, minlength=num_vertices)
  width = max(int(counts.max()) if counts.size else 0, 1)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  slot = np.arange(vertex_ids.size) - starts[vertex_ids]
  table = np.full([num_vertices, width], num_triangles, np.int32)
  table[vertex_ids, slot] = triangle_ids
  return table


def frontal_default_pose(mean_shape: np.ndarray, focal_length: float,
                         image_size: int, fill: float = 0.75) -> np.ndarray:
  """[6] pose that shows the mean face frontally, filling `fill` of the crop.

  rx = pi maps model axes (y up, z towards the viewer) to OpenCV camera axes
  (y down, z forward). The translation centres the bounding box and sets the
  distance so that the face height covers `fill` of the image.
  """
  mean_shape = np.asarray(mean_shape, np.float64)
  lo, hi = mean_shape.min(0), mean_shape.max(0)
  centre = 0.5 * (lo + hi)
  height = max(hi[1] - lo[1], 1e-6)
  distance = focal_length * height / (fill * image_size)
  # Camera point = Rx(pi) X + t = (x, -y, -z) + t; centre it on the optical axis.
  tx, ty = -centre[0], centre[1]
  tz = distance + centre[2]
  return np.array([0.0, 0.0, np.pi, tx, ty, tz], np.float32)
