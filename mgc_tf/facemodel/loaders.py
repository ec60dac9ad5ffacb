"""Readers for the real (licensed, hand-downloaded) face-model files.

Every reader returns a `FaceModel` in our units and conventions (see
face_model.py): millimetres, albedo in [0, 1], bases pre-multiplied by their
standard deviations, 0-based triangles counter-clockwise seen from +z.

Formats, as read and written by the public code of each project:

Deep3DFaceReconstruction `BFM_model_front.mat` (written by `transferBFM09` in
microsoft/Deep3DFaceReconstruction `utils.py`, read by `BFM` in its
`face_decoder.py` and by sicxu/Deep3DFaceRecon_pytorch `models/bfm.py`).
V = 35709 vertices, F = 70789 triangles:
  meanshape [1, 3V] decimetres, (x, y, z) of vertex 0 first.
  idBase [3V, 80], exBase [3V, 64] decimetres per standard deviation.
  meantex [1, 3V] RGB in 0..255; texBase [3V, 80] 0..255 per std.
  tri [F, 3] 1-based vertex ids.
  keypoints [1, 68] 1-based vertex ids of the iBUG landmarks.
  frontmask2_idx [27660, 1] 1-based ids of the region used by the
    photometric loss; skinmask [1, V] 0/1 skin region.
  point_buf [V, 8] 1-based triangle ids around each vertex padded with F + 1;
    tri_mask2 [54681, 3] 1-based ids into frontmask2_idx (both unused here:
    `vertex_triangles` is recomputed from `tri`, which gives the same sets).
  Indices are stored as float32. Deep3D re-centres the shape on the mean
  shape's vertex centroid and looks at it from a camera at z = 10 dm with a
  1015 px focal length on a 224 crop: our default pose (0, 0, pi, 0, 0, 1000).

MGCNet `bfm09_trim_exp_uv_presplit.h5` (read by `BFM_singleTopo` in
jiaxiangshang/MGCNet `src_common/geometry/gpmm/bfm09_tf_uv.py`; groups
`shape`, `color`, `expression`, plus `*_fore` / `*_full` variants that MGCNet
reads for its front and full topologies; we read the plain ones):
  shape/model/mean [3V] micrometres; shape/model/pcaBasis [3V, K]
  micrometres; shape/model/pcaVariance [K] holds standard deviations (MGCNet
  squares it and takes the square root again).
  color/model/mean [3V], pcaBasis [3V, K] in 0..255, pcaVariance [K] std;
  color/model/uv [2V] (unused).
  expression/model/pcaBasis [3V, K_exp] micrometres, pcaVariance [K_exp] std.
  shape/representer/tri: 1-based, read as [-1, 3].
  shape/representer/idx_lm68 [68]: 0-based vertex ids.
  shape/representer/idx_sub: 0-based ids of the front ("fore") vertices.
  MGCNet's camera: focal 4700 px on a 224 crop, default pose
  (0, 0, pi, 0.17440447, 9.1053238, 4994.3359) (`build_graph.py`).

BFM 2009 + Guo et al. expressions, combined as `transferBFM09` does:
  01_MorphableModel.mat: shapeMU [3*53490, 1] micrometres, shapePC
  [3*53490, 199], shapeEV [199, 1] (standard deviations), texMU / texPC /
  texEV likewise in 0..255.
  Exp_Pca.bin (little-endian): int32 K (79), float32 mean [3 * 53215]
  (unused), float32 basis [K, 3 * 53215] (component-major).
  std_exp.txt: K standard deviations for Exp_Pca.bin (basis times std is
  in micrometres, like the BFM: transferBFM09 divides both by 1e5).
  BFM_exp_idx.mat: trimIndex [53215, 1] 1-based BFM vertex of each
  expression vertex. BFM_front_idx.mat: idx [35709, 1] 1-based expression
  vertex of each front vertex. facemodel_info.mat: tri, keypoints,
  frontmask2_idx, skinmask, point_buf, tri_mask2 as in BFM_model_front.mat.
"""

import os
from typing import Dict, Optional, Sequence, Tuple

from absl import logging
import numpy as np

from mgc_tf.facemodel import crop
from mgc_tf.facemodel import mesh
from mgc_tf.facemodel.face_model import FaceModel
from mgc_tf.facemodel.face_model import FaceModelError

# --- camera setups of the original projects ----------------------------------
#: Deep3DFaceReconstruction: camera at 10 dm on +z, focal 1015 px, 224 crop.
DEEP3D_FOCAL_LENGTH = crop.DEFAULT_FOCAL_LENGTH
DEEP3D_DEFAULT_POSE = np.array([0.0, 0.0, np.pi, 0.0, 0.0, 1000.0], np.float32)
#: MGCNet (`defined_pose_main` and `intrinsics_single` in build_graph.py).
MGCNET_FOCAL_LENGTH = 4700.0
MGCNET_DEFAULT_POSE = np.array(
    [0.0, 0.0, np.pi, 0.17440447, 9.1053238, 4994.3359], np.float32)
IMAGE_SIZE = crop.CROP_SIZE

# --- units -------------------------------------------------------------------
DECIMETRE_TO_MM = 100.0
MICROMETRE_TO_MM = 1e-3
COLOUR_SCALE = 1.0 / 255.0

# --- where the files come from, and the commands that convert them ----------
BFM2009_URL = "https://faces.dmi.unibas.ch/bfm/"
GUO_URL = "https://github.com/Juyong/3DFace"
DEEP3D_URL = "https://github.com/microsoft/Deep3DFaceReconstruction"
MGCNET_URL = "https://github.com/jiaxiangshang/MGCNet"

CONVERT_BFM2009_COMMAND = (
    "python -m mgc_tf.convert_face_model --input=BFM/01_MorphableModel.mat "
    "--exp_pca=BFM/Exp_Pca.bin --front_idx=BFM/BFM_front_idx.mat "
    "--exp_idx=BFM/BFM_exp_idx.mat --info=BFM/facemodel_info.mat "
    "--std_exp=BFM/std_exp.txt --output=bfm09_front.npz")

_BFM2009_SOURCE = (
    "01_MorphableModel.mat is the Basel Face Model 2009; it cannot be "
    f"redistributed: register for it at {BFM2009_URL}")
_EXP_PCA_SOURCE = (
    "Exp_Pca.bin is the expression basis of Guo et al. (the 'CoarseData' "
    f"link of {GUO_URL}, Coarse_Dataset.zip)")
_DEEP3D_INDEX_SOURCE = (
    "BFM_front_idx.mat, BFM_exp_idx.mat, facemodel_info.mat and std_exp.txt "
    f"come from the BFM/ folder of Deep3DFaceReconstruction ({DEEP3D_URL}, "
    "see its README)")

#: Kinds of input file -> (where it comes from, how to convert).
_HINTS = {
    "bfm2009": _BFM2009_SOURCE,
    "exp_pca": _EXP_PCA_SOURCE,
    "deep3d_index": _DEEP3D_INDEX_SOURCE,
    "deep3d_front": (
        "BFM_model_front.mat is written by Deep3DFaceReconstruction's "
        f"transferBFM09 ({DEEP3D_URL}, README 'Testing with pre-trained "
        "network', steps 1-2) "
        f"from the Basel Face Model 2009 ({BFM2009_URL}) and Guo et al.'s "
        f"Exp_Pca.bin ({GUO_URL})"),
    "mgcnet_h5": (
        "bfm09_trim_exp_uv_presplit.h5 is MGCNet's face model: download it "
        f"from the link in MGCNet's README ({MGCNET_URL}, section 'Model')"),
}


def source_hint(kind: str, path: str = "") -> str:
  """Says where a file of `kind` comes from and which command converts it.

  Args:
    kind: one of "bfm2009", "exp_pca", "deep3d_index", "deep3d_front",
      "mgcnet_h5".
    path: the file the user gave, used in the suggested command.

  Returns:
    One or two sentences for an error message.
  """
  if kind in ("deep3d_front", "mgcnet_h5"):
    command = (f"python -m mgc_tf.convert_face_model --input={path or '<file>'}"
               " --output=face_model.npz")
    if kind == "deep3d_front":
      command += (" (or build it from the original files: "
                  f"{CONVERT_BFM2009_COMMAND})")
  else:
    command = CONVERT_BFM2009_COMMAND
  return f"{_HINTS[kind]}. Convert with: {command}"


def _fail(path: str, kind: str, problem: str) -> FaceModelError:
  """Builds the FaceModelError for `problem` in `path`."""
  return FaceModelError(f"{path}: {problem}. {source_hint(kind, path)}")


def _require_file(path: str, kind: str) -> None:
  """Raises FaceModelError if `path` is not an existing file."""
  if not path or not os.path.isfile(path):
    raise _fail(path, kind, "face-model file not found")


# --- small array helpers -----------------------------------------------------
def _read_mat(path: str, kind: str) -> Dict[str, np.ndarray]:
  """Reads a MATLAB (v4-v7.2) .mat file into a dict of arrays."""
  _require_file(path, kind)
  import scipy.io  # pylint: disable=g-import-not-at-top
  try:
    data = scipy.io.loadmat(path)
  except NotImplementedError as e:  # MATLAB v7.3 (HDF5-based).
    raise _fail(path, kind, "is a MATLAB v7.3 file; re-save it with "
                "`save(..., '-v7')` or use the original file") from e
  except Exception as e:  # pylint: disable=broad-except
    raise _fail(path, kind, f"is not a readable MATLAB .mat file ({e})") from e
  return {k: v for k, v in data.items() if not k.startswith("__")}


def _get(arrays, key: str, path: str, kind: str) -> np.ndarray:
  """Returns `arrays[key]` as an ndarray, or raises naming the missing key."""
  if key not in arrays:
    found = sorted(arrays.keys())
    raise _fail(path, kind, f"missing the array '{key}' (found {found})")
  return np.asarray(arrays[key])


def _xyz(array: np.ndarray, field: str, path: str, kind: str,
         num_vertices: Optional[int] = None) -> np.ndarray:
  """[3V] (any layout) -> [V, 3] float64, checking the size."""
  flat = np.asarray(array, np.float64).reshape([-1])
  if flat.size == 0 or flat.size % 3:
    raise _fail(path, kind, f"'{field}' must hold 3 values per vertex, got "
                f"shape {np.shape(array)}")
  if num_vertices is not None and flat.size != 3 * num_vertices:
    raise _fail(path, kind, f"'{field}' must hold 3V = {3 * num_vertices} "
                f"values, got shape {np.shape(array)}")
  return flat.reshape([-1, 3])


def _basis(array: np.ndarray, num_vertices: int, rank: Optional[int],
           field: str, path: str, kind: str) -> np.ndarray:
  """[3V, K] -> [V, 3, rank] float64 (first `rank` columns, all if None)."""
  array = np.asarray(array)
  if array.ndim != 2 or array.shape[0] != 3 * num_vertices:
    raise _fail(path, kind, f"'{field}' must be [3V = {3 * num_vertices}, K], "
                f"got shape {array.shape}")
  if rank is not None and array.shape[1] < rank:
    raise _fail(path, kind, f"'{field}' has {array.shape[1]} components, "
                f"{rank} are needed")
  columns = array[:, :rank] if rank is not None else array
  return columns.astype(np.float64).reshape([num_vertices, 3, -1])


def _stddevs(array: np.ndarray, rank: int, field: str, path: str,
             kind: str) -> np.ndarray:
  """[K] (any layout) -> first `rank` standard deviations, float64."""
  flat = np.abs(np.asarray(array, np.float64).reshape([-1]))
  if flat.size < rank:
    raise _fail(path, kind, f"'{field}' holds {flat.size} standard "
                f"deviations, {rank} are needed")
  return flat[:rank]


def _indices(array: np.ndarray, upper: int, base: int, field: str, path: str,
             kind: str) -> np.ndarray:
  """Flattened `base`-based integer ids in [base, upper + base) -> 0-based."""
  values = np.asarray(array).reshape([-1])
  if values.size == 0:
    raise _fail(path, kind, f"'{field}' is empty")
  if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
    raise _fail(path, kind, f"'{field}' must hold integer indices")
  values = values.astype(np.int64)
  lo, hi = int(values.min()), int(values.max())
  if lo < base or hi >= upper + base:
    raise _fail(path, kind, f"'{field}' must hold {base}-based indices in "
                f"[{base}, {upper + base - 1}], got range [{lo}, {hi}]")
  return values - base


def _triangles(array: np.ndarray, num_vertices: int, base: int, field: str,
               path: str, kind: str) -> np.ndarray:
  """[F, 3] (or any size divisible by 3) `base`-based ids -> [F, 3] 0-based."""
  if np.size(array) == 0 or np.size(array) % 3:
    raise _fail(path, kind, f"'{field}' must be [F, 3], got shape "
                f"{np.shape(array)}")
  ids = _indices(array, num_vertices, base, field, path, kind)
  return ids.reshape([-1, 3])


def _landmarks(array: np.ndarray, num_vertices: int, base: int, field: str,
               path: str, kind: str) -> np.ndarray:
  """68 `base`-based vertex ids -> [68] 0-based."""
  if np.size(array) != 68:
    raise _fail(path, kind, f"'{field}' must hold 68 landmark ids, got shape "
                f"{np.shape(array)}")
  return _indices(array, num_vertices, base, field, path, kind)


def _mask_from_ids(ids: np.ndarray, num_vertices: int) -> np.ndarray:
  """[V] bool, True at the 0-based `ids`."""
  mask = np.zeros([num_vertices], bool)
  mask[ids] = True
  return mask


# --- triangle orientation ----------------------------------------------------
def orient_triangles_to_front(
    vertices: np.ndarray,
    triangles: np.ndarray,
    front_mask: Optional[np.ndarray] = None) -> Tuple[np.ndarray, bool]:
  """Makes the winding counter-clockwise seen from the front (+z).

  Counts the triangles of the front region whose normal points to +z and
  those pointing to -z; if the latter are the majority, every triangle's
  winding is reversed (columns 1 and 2 swapped). The winding of the mesh is
  assumed consistent; only its global sense is decided here.

  Args:
    vertices: [V, 3] mean-shape positions, model axes (z towards the viewer).
    triangles: [F, 3] 0-based vertex ids.
    front_mask: optional [V] bool; only triangles whose three vertices are in
      it vote. All triangles vote if it is None or selects no triangle.

  Returns:
    ([F, 3] int32 triangles counter-clockwise from +z, whether they were
    flipped).
  """
  triangles = np.asarray(triangles, np.int32)
  normal_z = mesh.face_normals(vertices, triangles)[:, 2]
  if front_mask is not None:
    in_front = np.all(np.asarray(front_mask, bool)[triangles], axis=1)
    if np.any(in_front):
      normal_z = normal_z[in_front]
  flip = np.count_nonzero(normal_z < 0) > np.count_nonzero(normal_z > 0)
  if flip:
    triangles = triangles[:, [0, 2, 1]]
  return triangles, bool(flip)


# --- shared assembly ---------------------------------------------------------
def _create(path: str, kind: str, triangles: np.ndarray,
            front_mask: Optional[np.ndarray], **kwargs) -> FaceModel:
  """Orients the triangles and builds the model; errors name `path`.

  Args:
    path: the file the model comes from (named in errors and logs).
    kind: its kind, for the hint in errors.
    triangles: [F, 3] 0-based vertex ids, either winding.
    front_mask: [V] bool or None (all vertices).
    **kwargs: the other arguments of `FaceModel.create`.
  """
  triangles, flipped = orient_triangles_to_front(kwargs["mean_shape"],
                                                 triangles, front_mask)
  if flipped:
    logging.info("%s: triangles were clockwise seen from +z; winding flipped.",
                 path)
  try:
    return FaceModel.create(triangles=triangles, front_mask=front_mask,
                            **kwargs)
  except FaceModelError as e:
    raise _fail(path, kind, str(e)) from e


def _deep3d_front_model(arrays: Dict[str, np.ndarray],
                        info: Dict[str, np.ndarray], info_path: str,
                        info_kind: str, name: str) -> FaceModel:
  """Builds the model from Deep3D-layout arrays already in our units.

  Args:
    arrays: mean_shape [V, 3] mm, id_basis / exp_basis [V, 3, K] mm per std,
      mean_albedo [V, 3] and albedo_basis [V, 3, K] in [0, 1] units.
    info: the topology arrays of facemodel_info.mat / BFM_model_front.mat:
      tri, keypoints and optionally frontmask2_idx, skinmask (1-based).
    info_path: file the `info` arrays come from (for errors).
    info_kind: its kind, for the hint in errors.
    name: model name.

  Returns:
    The FaceModel, re-centred on the mean shape's vertex centroid (as Deep3D
    does) and seen from Deep3D's default camera.
  """
  mean_shape = arrays["mean_shape"]
  num_vertices = mean_shape.shape[0]
  mean_shape = mean_shape - mean_shape.mean(axis=0, keepdims=True)
  args = (info_path, info_kind)
  triangles = _triangles(_get(info, "tri", *args), num_vertices, 1, "tri",
                         *args)
  landmarks = _landmarks(_get(info, "keypoints", *args), num_vertices, 1,
                         "keypoints", *args)
  front_mask = None
  if "frontmask2_idx" in info:
    front_mask = _mask_from_ids(
        _indices(info["frontmask2_idx"], num_vertices, 1, "frontmask2_idx",
                 *args), num_vertices)
  skin_mask = None
  if "skinmask" in info:
    skin_mask = np.asarray(info["skinmask"], np.float32).reshape([-1])
    if skin_mask.size != num_vertices:
      raise _fail(info_path, info_kind, f"'skinmask' must hold V = "
                  f"{num_vertices} values, got shape "
                  f"{np.shape(info['skinmask'])}")
  return _create(info_path, info_kind, triangles, front_mask,
                 mean_shape=mean_shape, id_basis=arrays["id_basis"],
                 exp_basis=arrays["exp_basis"],
                 mean_albedo=arrays["mean_albedo"],
                 albedo_basis=arrays["albedo_basis"],
                 landmark_indices=landmarks, skin_mask=skin_mask,
                 default_pose=DEEP3D_DEFAULT_POSE,
                 focal_length=DEEP3D_FOCAL_LENGTH, image_size=IMAGE_SIZE,
                 name=name)


# --- Deep3DFaceReconstruction BFM_model_front.mat -------------------------
def load_deep3d_bfm_front(path: str) -> FaceModel:
  """Reads Deep3DFaceReconstruction's `BFM_model_front.mat`.

  Shapes are converted from decimetres to millimetres, colours from 0..255 to
  [0, 1], 1-based ids to 0-based; the shape is re-centred on its vertex
  centroid as Deep3D does. The default pose is Deep3D's camera: focal 1015 px
  on a 224 crop, 1000 mm in front of the face.

  Args:
    path: the .mat file (layout in this module's docstring).

  Returns:
    The FaceModel (V = 35709 for the real file, ranks 80 / 64 / 80).

  Raises:
    FaceModelError: the file is missing, unreadable or malformed.
  """
  kind = "deep3d_front"
  data = _read_mat(path, kind)
  if "shapeMU" in data and "meanshape" not in data:
    raise _fail(path, "bfm2009", "is the original BFM 2009 model, not "
                "Deep3D's BFM_model_front.mat; convert it first")
  mean_shape = _xyz(_get(data, "meanshape", path, kind), "meanshape", path,
                    kind) * DECIMETRE_TO_MM
  num_vertices = mean_shape.shape[0]

  def basis(key, scale):
    return _basis(_get(data, key, path, kind), num_vertices, None, key, path,
                  kind) * scale

  arrays = {
      "mean_shape": mean_shape,
      "id_basis": basis("idBase", DECIMETRE_TO_MM),
      "exp_basis": basis("exBase", DECIMETRE_TO_MM),
      "mean_albedo": _xyz(_get(data, "meantex", path, kind), "meantex", path,
                          kind, num_vertices) * COLOUR_SCALE,
      "albedo_basis": basis("texBase", COLOUR_SCALE),
  }
  name = f"Deep3DFaceReconstruction BFM_model_front ({os.path.basename(path)})"
  return _deep3d_front_model(arrays, data, path, kind, name)


# --- MGCNet bfm09_trim_exp_uv_presplit.h5 ---------------------------------
def _h5_array(h5file, key: str, path: str) -> np.ndarray:
  """Reads dataset `key` of an open h5py file, or raises naming it."""
  item = h5file.get(key)
  if item is None or not hasattr(item, "shape"):
    groups = sorted(h5file.keys())
    raise _fail(path, "mgcnet_h5", f"missing the dataset '{key}' (top-level "
                f"groups: {groups})")
  return np.asarray(item[()])


def _read_h5(path: str, optional=("shape/representer/idx_sub",)
            ) -> Dict[str, np.ndarray]:
  """Reads the datasets MGCNet uses from its .h5 face model."""
  _require_file(path, "mgcnet_h5")
  import h5py  # pylint: disable=g-import-not-at-top
  keys = ["shape/model/mean", "shape/model/pcaBasis",
          "shape/model/pcaVariance", "color/model/mean",
          "color/model/pcaBasis", "color/model/pcaVariance",
          "expression/model/pcaBasis", "expression/model/pcaVariance",
          "shape/representer/tri", "shape/representer/idx_lm68"]
  try:
    h5file = h5py.File(path, "r")
  except Exception as e:  # pylint: disable=broad-except
    raise _fail(path, "mgcnet_h5", f"is not a readable HDF5 file ({e})") from e
  with h5file:
    arrays = {k: _h5_array(h5file, k, path) for k in keys}
    arrays.update({k: _h5_array(h5file, k, path) for k in optional
                   if k in h5file})
  return arrays


def load_mgcnet_h5(path: str, id_rank: int = 80, exp_rank: int = 64,
                   albedo_rank: int = 80) -> FaceModel:
  """Reads MGCNet's `bfm09_trim_exp_uv_presplit.h5`.

  Shapes go from micrometres to millimetres, colours from 0..255 to [0, 1];
  each basis is multiplied by its `pcaVariance`, which holds standard
  deviations (MGCNet scales coefficients by sqrt(square(pcaVariance))).
  Triangles are 1-based in the file, landmark and front ids 0-based. The
  default pose and focal length (4700 px) are MGCNet's; the skin mask is all
  ones (MGCNet weights by per-image skin maps instead).

  Args:
    path: the .h5 file (layout in this module's docstring).
    id_rank: identity components kept (MGCNet's `gpmm_rank`).
    exp_rank: expression components kept (`gpmm_exp_rank`).
    albedo_rank: albedo components kept (MGCNet uses `gpmm_rank`).

  Returns:
    The FaceModel.

  Raises:
    FaceModelError: the file is missing, unreadable or malformed.
  """
  kind = "mgcnet_h5"
  data = _read_h5(path)
  args = (path, kind)
  mean_shape = _xyz(data["shape/model/mean"], "shape/model/mean",
                    *args) * MICROMETRE_TO_MM
  num_vertices = mean_shape.shape[0]

  def basis(group, rank, scale):
    pcs = _basis(data[f"{group}/model/pcaBasis"], num_vertices, rank,
                 f"{group}/model/pcaBasis", *args)
    std = _stddevs(data[f"{group}/model/pcaVariance"], rank,
                   f"{group}/model/pcaVariance", *args)
    return pcs * std * scale

  front_mask = None
  if "shape/representer/idx_sub" in data:
    front_mask = _mask_from_ids(
        _indices(data["shape/representer/idx_sub"], num_vertices, 0,
                 "shape/representer/idx_sub", *args), num_vertices)
  return _create(
      path, kind,
      _triangles(data["shape/representer/tri"], num_vertices, 1,
                 "shape/representer/tri", *args), front_mask,
      mean_shape=mean_shape,
      id_basis=basis("shape", id_rank, MICROMETRE_TO_MM),
      exp_basis=basis("expression", exp_rank, MICROMETRE_TO_MM),
      mean_albedo=_xyz(data["color/model/mean"], "color/model/mean", *args,
                       num_vertices=num_vertices) * COLOUR_SCALE,
      albedo_basis=basis("color", albedo_rank, COLOUR_SCALE),
      landmark_indices=_landmarks(data["shape/representer/idx_lm68"],
                                  num_vertices, 0,
                                  "shape/representer/idx_lm68", *args),
      default_pose=MGCNET_DEFAULT_POSE, focal_length=MGCNET_FOCAL_LENGTH,
      image_size=IMAGE_SIZE,
      name=f"MGCNet BFM09 ({os.path.basename(path)})")


# --- BFM 2009 + Exp_Pca.bin -> Deep3D's front model ---------------------
def read_exp_pca_bin(path: str, num_vertices: Optional[int] = None
                    ) -> Tuple[np.ndarray, np.ndarray]:
  """Reads Guo et al.'s `Exp_Pca.bin`.

  Layout (little-endian): int32 K, float32 mean [3N], float32 basis [K, 3N]
  with each component's (x, y, z) per vertex contiguous. N is 53215 for the
  real file; here it is taken from the file size.

  Args:
    path: the file.
    num_vertices: expected N; checked when given.

  Returns:
    (mean [N, 3] float32 micrometres, basis [K, N, 3] float32). The basis
    is not scaled: times the std_exp.txt values it is in micrometres.

  Raises:
    FaceModelError: missing file, or a size that fits no N (or not the
      expected one).
  """
  _require_file(path, "exp_pca")
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    header = np.fromfile(f, "<i4", count=1)
    rank = int(header[0]) if header.size else 0
    floats_per_vertex = 3 * (1 + rank)
    body = size - 4
    if rank <= 0 or body <= 0 or body % (4 * floats_per_vertex):
      raise _fail(path, "exp_pca", f"size {size} bytes does not match the "
                  "Exp_Pca.bin layout (int32 K, float32 mean [3N], float32 "
                  f"basis [K, 3N]) for K = {rank}")
    count = body // (4 * floats_per_vertex)
    if num_vertices is not None and count != num_vertices:
      raise _fail(path, "exp_pca", f"holds {count} vertices, but "
                  f"BFM_exp_idx.mat lists {num_vertices} (expected 53215 for "
                  "the real files)")
    mean = np.fromfile(f, "<f4", count=3 * count).reshape([count, 3])
    basis = np.fromfile(f, "<f4", count=3 * count * rank)
  return mean, basis.reshape([rank, count, 3])


def _read_std_exp(path: str, rank: int) -> np.ndarray:
  """Reads std_exp.txt: one standard deviation per Exp_Pca.bin component."""
  _require_file(path, "deep3d_index")
  try:
    std = np.loadtxt(path, dtype=np.float64).reshape([-1])
  except ValueError as e:
    raise _fail(path, "deep3d_index", f"is not a list of numbers ({e})") from e
  if std.size != rank:
    raise _fail(path, "deep3d_index", f"holds {std.size} standard deviations, "
                f"but Exp_Pca.bin has {rank} components")
  return std


def _find_std_exp(std_exp_txt: Optional[str], *near: str) -> str:
  """`std_exp_txt`, or std_exp.txt next to one of the files `near`."""
  if std_exp_txt:
    return std_exp_txt
  candidates = [os.path.join(os.path.dirname(p), "std_exp.txt") for p in near]
  for candidate in candidates:
    if os.path.isfile(candidate):
      return candidate
  return candidates[0]


def _front_vertex_ids(front_idx_mat: str, exp_idx_mat: str, num_bfm: int
                     ) -> Tuple[np.ndarray, np.ndarray, int]:
  """Maps the front vertices to expression and BFM vertices (0-based).

  Returns:
    (expression-vertex id [Vf], BFM-vertex id [Vf], number of expression
    vertices N).
  """
  trim = _get(_read_mat(exp_idx_mat, "deep3d_index"), "trimIndex",
              exp_idx_mat, "deep3d_index")
  exp_to_bfm = _indices(trim, num_bfm, 1, "trimIndex", exp_idx_mat,
                        "deep3d_index")
  idx = _get(_read_mat(front_idx_mat, "deep3d_index"), "idx", front_idx_mat,
             "deep3d_index")
  front_to_exp = _indices(idx, exp_to_bfm.size, 1, "idx", front_idx_mat,
                          "deep3d_index")
  return front_to_exp, exp_to_bfm[front_to_exp], exp_to_bfm.size


def convert_bfm2009(morphable_model_mat: str,
                    exp_pca_bin: str,
                    front_idx_mat: str,
                    exp_idx_mat: str,
                    facemodel_info_mat: str,
                    std_exp_txt: Optional[str] = None,
                    id_rank: int = 80,
                    exp_rank: int = 64,
                    albedo_rank: int = 80) -> FaceModel:
  """Builds Deep3D's front face model from the original files.

  The same selection and scaling as Deep3DFaceReconstruction's
  `transferBFM09`: the first `id_rank` / `albedo_rank` BFM components times
  shapeEV / texEV, the first `exp_rank` expression components times
  std_exp.txt, restricted to the 35709 front vertices (front vertex i is
  expression vertex idx[i], which is BFM vertex trimIndex[idx[i]]). The
  result equals `load_deep3d_bfm_front` of the BFM_model_front.mat that
  `transferBFM09` would write.

  Args:
    morphable_model_mat: BFM 2009 `01_MorphableModel.mat`.
    exp_pca_bin: Guo et al.'s `Exp_Pca.bin`.
    front_idx_mat: Deep3D's `BFM_front_idx.mat`.
    exp_idx_mat: Deep3D's `BFM_exp_idx.mat`.
    facemodel_info_mat: Deep3D's `facemodel_info.mat`.
    std_exp_txt: `std_exp.txt` (expression standard deviations, from
      Deep3D's BFM folder); None looks next to `front_idx_mat`, then
      `exp_pca_bin`.
    id_rank: identity components kept.
    exp_rank: expression components kept.
    albedo_rank: albedo components kept.

  Returns:
    The FaceModel in mm / [0, 1], with Deep3D's camera.

  Raises:
    FaceModelError: a file is missing, unreadable or malformed.
  """
  bfm = _read_mat(morphable_model_mat, "bfm2009")
  args = (morphable_model_mat, "bfm2009")
  shape_mean = _xyz(_get(bfm, "shapeMU", *args), "shapeMU", *args)
  num_bfm = shape_mean.shape[0]
  front_to_exp, front_to_bfm, num_exp = _front_vertex_ids(
      front_idx_mat, exp_idx_mat, num_bfm)

  def bfm_basis(prefix, rank, scale):
    pcs = _basis(_get(bfm, f"{prefix}PC", *args), num_bfm, rank,
                 f"{prefix}PC", *args)[front_to_bfm]
    std = _stddevs(_get(bfm, f"{prefix}EV", *args), rank, f"{prefix}EV", *args)
    return pcs * std * scale

  _, exp_pcs = read_exp_pca_bin(exp_pca_bin, num_exp)
  if exp_pcs.shape[0] < exp_rank:
    raise _fail(exp_pca_bin, "exp_pca", f"has {exp_pcs.shape[0]} components, "
                f"{exp_rank} are needed")
  exp_std = _read_std_exp(_find_std_exp(std_exp_txt, front_idx_mat,
                                        exp_pca_bin), exp_pcs.shape[0])
  exp_basis = np.transpose(exp_pcs[:exp_rank][:, front_to_exp], [1, 2, 0])
  arrays = {
      "mean_shape": shape_mean[front_to_bfm] * MICROMETRE_TO_MM,
      "id_basis": bfm_basis("shape", id_rank, MICROMETRE_TO_MM),
      "exp_basis": exp_basis * exp_std[:exp_rank] * MICROMETRE_TO_MM,
      "mean_albedo": _xyz(_get(bfm, "texMU", *args), "texMU", *args,
                          num_vertices=num_bfm)[front_to_bfm] * COLOUR_SCALE,
      "albedo_basis": bfm_basis("tex", albedo_rank, COLOUR_SCALE),
  }
  info = _read_mat(facemodel_info_mat, "deep3d_index")
  name = (f"BFM 2009 + Guo et al. expressions, Deep3D front region "
          f"({os.path.basename(morphable_model_mat)})")
  return _deep3d_front_model(arrays, info, facemodel_info_mat, "deep3d_index",
                             name)


# --- dispatch ---------------------------------------------------------------
def is_bfm2009_mat(path: str) -> bool:
  """True if `path` is a readable .mat holding BFM 2009's `shapeMU`."""
  import scipy.io  # pylint: disable=g-import-not-at-top
  try:
    names = [entry[0] for entry in scipy.io.whosmat(path)]
  except Exception:  # pylint: disable=broad-except
    return False
  return "shapeMU" in names and "meanshape" not in names


def _looks_like_bfm2009(path: str, companions_given: bool) -> bool:
  """Whether a .mat is (or, if missing, is meant to be) BFM 2009's model."""
  if os.path.isfile(path):
    return is_bfm2009_mat(path)
  return companions_given or "morphablemodel" in os.path.basename(path).lower()


def load_face_model_file(path: str,
                         exp_pca: Optional[str] = None,
                         front_idx: Optional[str] = None,
                         exp_idx: Optional[str] = None,
                         info: Optional[str] = None,
                         std_exp: Optional[str] = None,
                         id_rank: Optional[int] = None,
                         exp_rank: int = 64,
                         albedo_rank: int = 80,
                         ict_region: Optional[str] = None,
                         exp_names: Optional[Sequence[str]] = None,
                         albedo_from: Optional[FaceModel] = None
                         ) -> FaceModel:
  """Reads any supported file, the original BFM 2009 .mat included.

  For BFM 2009's `01_MorphableModel.mat` the companion files default to
  their Deep3D names (Exp_Pca.bin, BFM_front_idx.mat, BFM_exp_idx.mat,
  facemodel_info.mat, std_exp.txt) in the same folder, as in Deep3D's BFM/.
  A folder is read as ICT-FaceKit Light's FaceXModel (`mgc_tf.facemodel.
  ict`). Other files go through `load_face_model` (ranks apply to the .h5
  only).

  Args:
    path: the file (or ICT folder) to read.
    exp_pca, front_idx, exp_idx, info, std_exp: BFM 2009 companion files.
    id_rank: identity components kept (None: 80 for the BFM, all 100 for
      ICT-FaceKit).
    exp_rank, albedo_rank: components kept (BFM files).
    ict_region: vertices kept from ICT-FaceKit (None: its default).
    exp_names: ICT-FaceKit blendshapes kept (None: the 53 of its list).
    albedo_from: the model whose albedo ICT-FaceKit gets (None: the
      embedded synthetic one).

  Returns:
    The FaceModel.

  Raises:
    FaceModelError: a file is missing, unreadable or malformed.
  """
  if os.path.isdir(path):
    from mgc_tf.facemodel import ict  # pylint: disable=g-import-not-at-top
    kwargs = {"exp_names": exp_names, "albedo_from": albedo_from}
    if id_rank is not None:
      kwargs["id_rank"] = id_rank
    if ict_region:
      kwargs["region"] = ict_region
    return ict.load_ict_facekit(_ict_folder(path), **kwargs)
  id_rank = 80 if id_rank is None else id_rank
  extension = os.path.splitext(path)[1].lower()
  companions = (exp_pca, front_idx, exp_idx, info, std_exp)
  if extension == ".mat" and _looks_like_bfm2009(path, any(companions)):
    folder = os.path.dirname(path)

    def near(given, default_name):
      return given or os.path.join(folder, default_name)

    return convert_bfm2009(
        path, near(exp_pca, "Exp_Pca.bin"),
        near(front_idx, "BFM_front_idx.mat"), near(exp_idx, "BFM_exp_idx.mat"),
        near(info, "facemodel_info.mat"), near(std_exp, "std_exp.txt"),
        id_rank=id_rank, exp_rank=exp_rank, albedo_rank=albedo_rank)
  if any(companions):
    logging.warning("%s is not BFM 2009's 01_MorphableModel.mat: the "
                    "expression and index files given are not used.", path)
  if extension in (".h5", ".hdf5"):
    return load_mgcnet_h5(path, id_rank, exp_rank, albedo_rank)
  return load_face_model(path)


def _ict_folder(path: str) -> str:
  """`path` if it is ICT-FaceKit's FaceXModel folder (or the repository
  that holds one), else raises saying what a folder input must be."""
  from mgc_tf.facemodel import ict  # pylint: disable=g-import-not-at-top
  if ict.is_ict_folder(path):
    return path
  inner = os.path.join(path, "FaceXModel")
  if ict.is_ict_folder(inner):
    return inner
  raise FaceModelError(
      f"{path}: a folder, but not ICT-FaceKit's FaceXModel (it holds neither "
      f"{ict.NEUTRAL_OBJ} nor {ict.CONFIG_JSON}). Give a face-model file, or "
      f"the FaceXModel folder of {ict.ICT_URL}: {ict.CONVERT_COMMAND}")


def embedded_model_names() -> Tuple[str, ...]:
  """The names `load_face_model` takes for the models inside the package."""
  from mgc_tf.facemodel import embedded_ict  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import synthetic  # pylint: disable=g-import-not-at-top
  return (synthetic.MODEL_NAME, embedded_ict.MODEL_NAME)


#: The packaged model that `load_face_model(None)` gives: ICT-FaceKit Light
#: (scan-derived shape, MIT). Runs, exports and datasets record which model
#: they used, so those made when the synthetic model was the default still
#: load it (`packaged_name_of`).
DEFAULT_FACE_MODEL = "embedded-ict-light-v1"


def packaged_name_of(model_name: Optional[str]) -> Optional[str]:
  """The packaged model's name ("embedded-...") that a recorded
  `FaceModel.name` belongs to, or None for a model read from a file."""
  for name in embedded_model_names():
    if model_name == name or (model_name or "").startswith(name + ":"):
      return name
  return None


def load_face_model(path: Optional[str]) -> FaceModel:
  """Loads a face model, choosing the reader by file extension.

  Args:
    path: `.npz` (native, written by `FaceModel.save` or the converter),
      `.mat` (Deep3DFaceReconstruction's BFM_model_front.mat), `.h5`/`.hdf5`
      (MGCNet's bfm09_trim_exp_uv_presplit.h5), ICT-FaceKit Light's
      FaceXModel folder (read in about 15 s; convert it once to .npz), or
      the name of a model inside the package: "embedded-synthetic-v1" or
      "embedded-ict-light-v1" (ICT-FaceKit Light, `embedded_ict`). None or
      "" gives DEFAULT_FACE_MODEL, ICT-FaceKit Light; neither packaged
      model needs a download.

  Returns:
    The FaceModel.

  Raises:
    FaceModelError: unknown extension, or a missing or malformed file.
  """
  # Imported here: the embedded models are only needed without a file.
  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import embedded_ict
  from mgc_tf.facemodel import synthetic
  # pylint: enable=g-import-not-at-top
  if not path:
    path = DEFAULT_FACE_MODEL
  if path == synthetic.MODEL_NAME:
    return synthetic.embedded_face_model()
  if path == embedded_ict.MODEL_NAME:
    return embedded_ict.embedded_ict_face_model()
  if os.path.isdir(path):
    from mgc_tf.facemodel import ict  # pylint: disable=g-import-not-at-top
    return ict.load_ict_facekit(_ict_folder(path))
  extension = os.path.splitext(path)[1].lower()
  if extension == ".npz":
    return FaceModel.load(path)
  if extension == ".mat":
    return load_deep3d_bfm_front(path)
  if extension in (".h5", ".hdf5"):
    return load_mgcnet_h5(path)
  raise FaceModelError(
      f"{path}: unknown face-model format '{extension}'. Give a native .npz "
      "(written by `python -m mgc_tf.convert_face_model --input=<file> "
      "--output=model.npz`), Deep3DFaceReconstruction's BFM_model_front.mat, "
      "MGCNet's bfm09_trim_exp_uv_presplit.h5, ICT-FaceKit's FaceXModel "
      "folder, the name of an embedded model "
      f"({', '.join(embedded_model_names())}), or nothing for the embedded "
      f"synthetic model. {CONVERT_BFM2009_COMMAND} converts the original "
      f"BFM 2009 files ({BFM2009_URL}).")
