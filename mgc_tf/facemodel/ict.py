"""ICT-FaceKit Light (the `FaceXModel/` folder) as a `FaceModel`.

ICT-FaceKit is (c) 2020 USC Institute for Creative Technologies and released
under the MIT licence (https://github.com/ICT-VGL/ICT-FaceKit, LICENSE); the
facts below come from its README and files. Models converted from it keep
that notice in their name.

The folder, as released (git clone https://github.com/ICT-VGL/ICT-FaceKit):
  generic_neutral_mesh.obj   26,719 vertices, 26,384 polygons (25,836 quads;
                             548 triangles in the gums, teeth and irises),
                             centimetres, +y up, +z out of the face, +x to
                             the viewer's right; `vt` texture coordinates
                             and `usemtl` groups, no normals.
  identity000..099.obj       the neutral mesh moved by +1 of each of 100
                             PCA identity modes: ICT's own sampler draws
                             the coefficients from N(0, 1) (Scripts/
                             ict_face_model.py `randomize_identity`), so
                             identityNNN - neutral is one standard deviation.
  <name>.obj                 53 expression blendshapes with ARKit names
                             ("_L"/"_R" for left/right), the neutral mesh at
                             weight 1, weights meant for [0, 1]. (The folder
                             also holds cheekRaiser_L/R and PupilDilate_L/R,
                             which the model's expression list leaves out.)
  vertex_indices.json        "expressions" (the 53 names, in model order),
                             "idx_to_landmark_verts" (the 68 Multi-PIE /
                             iBUG landmark vertex ids, 0-based, the README's
                             list), rigid and fitting vertex sets.
All OBJ files share the neutral mesh's polygons and vertex order.

Vertex ranges (README, 0-based, contiguous): face area 0..9408 (polygons
0..9229, with ears and the front of the neck), narrow face area 0..6705
(polygons 0..6559, the face mask), eyeballs 21451..24590 (sclera and iris,
left then right). The expression shapes do not move the eyeballs.

What the loader makes of it: quads split into two triangles along the
shorter diagonal (winding kept; counter-clockwise seen from outside, checked
with `orient_triangles_to_front`), centimetres -> millimetres, the chosen
region cut out and re-indexed, identity deltas as a std-scaled basis,
expression deltas as a "blendshape" basis per unit weight, the 68 landmarks,
the embedded model's camera (focal 1015 px, the mean face's eyes, nose tip
and mouth corners on the 224 alignment template), a skin mask that is 0 on
eyeballs, lids, brows and lips (from landmark polygons), and a front mask on
the narrow face area. ICT Light has no albedo: the loader carries another
model's albedo onto the ICT vertices (`albedo_from`, by default the embedded
SYNTHETIC model: "synthetic albedo on real shape").
"""

import json
import os
from typing import Optional, Sequence, Tuple, Union

from absl import logging
import numpy as np

from mgc_tf.facemodel import crop
from mgc_tf.facemodel import expressions
from mgc_tf.facemodel import obj
from mgc_tf.facemodel import transfer
from mgc_tf.facemodel.face_model import FaceModel
from mgc_tf.facemodel.face_model import FaceModelError
from mgc_tf.facemodel.loaders import orient_triangles_to_front

ICT_URL = "https://github.com/ICT-VGL/ICT-FaceKit"
LICENCE_NOTICE = ("ICT-FaceKit: MIT licence, (c) 2020 USC Institute for "
                  "Creative Technologies")
CONVERT_COMMAND = ("python -m mgc_tf.convert_face_model "
                   "--input=ICT-FaceKit/FaceXModel --output=ict.npz")

NEUTRAL_OBJ = "generic_neutral_mesh.obj"
CONFIG_JSON = "vertex_indices.json"
IDENTITY_OBJ = "identity{:03d}.obj"
NUM_IDENTITIES = 100
CM_TO_MM = 10.0

#: Vertex ranges [start, stop) of the README's geometry tables.
REGIONS = {
    "face": ((0, 9409),),
    "narrow": ((0, 6706),),
    "eyeballs": ((21451, 24591),),
}
DEFAULT_REGION = "face+eyeballs"

#: The README's "Multi-PIE 68 point facial landmarks indices" (0-based, iBUG
#: order); vertex_indices.json's idx_to_landmark_verts holds the same list.
LANDMARKS_68 = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927,
    3924, 2608, 3272, 4088, 3443, 268, 493, 1914, 2044, 1401, 3615, 4240,
    4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147, 4269, 3360,
    1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732,
    5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841,
    5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966)

#: Skin mask: landmark polygons (iBUG ids) and how far they are grown, and
#: the brow band's half width, mm.
_LIP_OUTLINE = tuple(range(48, 60))
_EYE_OUTLINES = (tuple(range(36, 42)), tuple(range(42, 48)))
_BROWS = (tuple(range(17, 22)), tuple(range(22, 27)))
_EYE_GROWTH = 1.3
_BROW_HALF_WIDTH_MM = 6.0

#: Landmarks that align another model onto ICT to carry its albedo: the 51
#: inner ones (brows, eyes, nose, mouth). The 17 contour points sit where
#: each model puts its jaw line (the embedded model: the frontal outline,
#: ICT: the jaw bone), which would pull the alignment off (real data, the
#: embedded model: RMS 4.3 mm over the inner 51, 8.0 mm with all 68).
ALIGNMENT_LANDMARKS = tuple(range(17, 68))

RegionSpec = Union[str, Sequence[Tuple[int, int]]]


def _hint() -> str:
  return (f"ICT-FaceKit Light's FaceXModel folder comes from {ICT_URL} (git "
          "clone it; MIT licence). Convert with: " + CONVERT_COMMAND)


def _fail(path: str, problem: str) -> FaceModelError:
  return FaceModelError(f"{path}: {problem}. {_hint()}")


def is_ict_folder(path: str) -> bool:
  """True if `path` is a folder that is (or is meant to be) ICT's FaceXModel."""
  if not path or not os.path.isdir(path):
    return False
  names = set(os.listdir(path))
  return NEUTRAL_OBJ in names or CONFIG_JSON in names


def _read_config(folder: str) -> dict:
  path = os.path.join(folder, CONFIG_JSON)
  if not os.path.isfile(path):
    raise _fail(path, "missing (it lists the expression names)")
  try:
    with open(path, encoding="utf-8") as f:
      config = json.load(f)
  except (OSError, ValueError) as e:
    raise _fail(path, f"is not readable JSON ({e})") from e
  if not isinstance(config, dict):
    raise _fail(path, "must hold a JSON object")
  return config


def _read(path: str, **kwargs) -> obj.ObjMesh:
  if not os.path.isfile(path):
    raise _fail(path, "file not found")
  try:
    return obj.read_obj(path, **kwargs)
  except obj.ObjError as e:
    raise _fail(path, str(e).split(": ", 1)[-1]) from e


def region_vertices(region: RegionSpec, num_vertices: int) -> np.ndarray:
  """Sorted 0-based ids of a region: names joined by "+", or ranges.

  Args:
    region: "face", "narrow", "eyeballs" or a "+"-joined list of them (see
      `REGIONS`), or a sequence of (start, stop) vertex ranges.
    num_vertices: vertices of the mesh (ranges are cut to it).

  Returns:
    [V_region] int64 ids.

  Raises:
    FaceModelError: an unknown region name, or an empty region.
  """
  if isinstance(region, str):
    ranges = []
    for part in region.split("+"):
      if part.strip() not in REGIONS:
        raise FaceModelError(
            f"unknown ICT-FaceKit region {part.strip()!r} in {region!r}; "
            f"use {sorted(REGIONS)} joined by '+', e.g. {DEFAULT_REGION!r}")
      ranges += REGIONS[part.strip()]
  else:
    ranges = [tuple(int(x) for x in r) for r in region]
  mask = np.zeros([num_vertices], bool)
  for start, stop in ranges:
    mask[max(start, 0):min(stop, num_vertices)] = True
  if not mask.any():
    raise FaceModelError(f"ICT-FaceKit region {region!r} selects no vertex of "
                         f"a {num_vertices}-vertex mesh")
  return np.flatnonzero(mask)


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
  """[N] bool: 2D points inside a closed polygon (even-odd rule)."""
  x, y = points[:, 0:1], points[:, 1:2]
  x0, y0 = polygon[:, 0], polygon[:, 1]
  x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
  crosses = (y0 > y) != (y1 > y)
  with np.errstate(divide="ignore", invalid="ignore"):
    x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
  return np.count_nonzero(crosses & (x < x_at), axis=1) % 2 == 1


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
  """[N] 2D distance of points to an open polyline."""
  a, b = line[:-1], line[1:]
  ab = b - a
  t = np.clip(np.einsum("nsk,sk->ns", points[:, None] - a, ab) /
              np.maximum(np.sum(ab * ab, -1), 1e-12), 0.0, 1.0)
  nearest = a + t[..., None] * ab
  return np.linalg.norm(points[:, None] - nearest, axis=-1).min(axis=1)


def skin_mask(points: np.ndarray, landmarks: np.ndarray,
              not_skin: Optional[np.ndarray] = None) -> np.ndarray:
  """[V] 1 on skin, 0 on lips, eye openings and lids, brows (frontal view).

  Lips: inside the outer lip outline (landmarks 48-59). Eyes: inside each eye
  outline (36-41, 42-47) grown by 30 % about its centre (the lid margins).
  Brows: within 6 mm of the brow polylines (17-21, 22-26). All in the (x, y)
  plane of the model (the face looks along +z).

  Args:
    points: [V, 3] mean shape, mm.
    landmarks: [68] vertex ids.
    not_skin: optional [V] bool of vertices that are 0 anyway (eyeballs).
  """
  xy = np.asarray(points, np.float64)[:, :2]
  lm = xy[np.asarray(landmarks)]
  off = _inside(xy, lm[list(_LIP_OUTLINE)])
  for outline in _EYE_OUTLINES:
    ring = lm[list(outline)]
    centre = ring.mean(0)
    off |= _inside(xy, centre + _EYE_GROWTH * (ring - centre))
  for brow in _BROWS:
    off |= _distance_to_polyline(xy, lm[list(brow)]) < _BROW_HALF_WIDTH_MM
  if not_skin is not None:
    off |= np.asarray(not_skin, bool)
  return (~off).astype(np.float32)


def _target_deltas(folder: str, names: Sequence[str], neutral: np.ndarray,
                   keep: np.ndarray) -> np.ndarray:
  """[V_keep, 3, K] mm: each named OBJ's vertices minus the neutral's."""
  deltas = np.empty([keep.size, 3, len(names)], np.float32)
  for k, name in enumerate(names):
    mesh = _read(os.path.join(folder, name + ".obj"), faces=False,
                 num_vertices=neutral.shape[0])
    deltas[:, :, k] = (mesh.vertices[keep] - neutral[keep]) * CM_TO_MM
  return deltas


def _expression_names(folder: str, config: dict,
                      exp_names: Optional[Sequence[str]]) -> Tuple[str, ...]:
  config_path = os.path.join(folder, CONFIG_JSON)
  if exp_names is None:
    exp_names = config.get("expressions")
    if (not isinstance(exp_names, list) or not exp_names or
        not all(isinstance(n, str) for n in exp_names)):
      raise _fail(config_path, "lacks the 'expressions' list of blendshape "
                  "names")
  names = tuple(str(n) for n in exp_names)
  if not names or len(set(names)) != len(names):
    raise FaceModelError(f"expression names must be distinct and not empty, "
                         f"got {list(names)}")
  return names


def _landmarks(config: dict, landmark_indices) -> np.ndarray:
  if landmark_indices is None:
    landmark_indices = config.get("idx_to_landmark_verts", LANDMARKS_68)
  ids = np.asarray(landmark_indices).reshape([-1])
  if ids.size != 68 or not np.issubdtype(ids.dtype, np.integer):
    raise FaceModelError(f"ICT landmarks must be 68 integer vertex ids, got "
                         f"{ids.size} of type {ids.dtype}")
  return ids.astype(np.int64)


def albedo_surface_map(albedo_from: FaceModel, points: np.ndarray,
                       landmarks: np.ndarray) -> transfer.SurfaceMap:
  """Where on `albedo_from`'s surface each ICT vertex takes its albedo.

  Args:
    albedo_from: the model whose albedo is carried over.
    points: [V, 3] ICT mean shape, mm.
    landmarks: [68] ICT landmark vertex ids.

  Returns:
    The `transfer.SurfaceMap` after the alignment of the inner 51
    landmarks (`ALIGNMENT_LANDMARKS`).
  """
  return transfer.nearest_surface_map(
      albedo_from.mean_shape, albedo_from.triangles,
      albedo_from.landmark_indices, points, landmarks,
      use=ALIGNMENT_LANDMARKS)


def load_ict_facekit(folder: str,
                     id_rank: int = NUM_IDENTITIES,
                     exp_names: Optional[Sequence[str]] = None,
                     region: RegionSpec = DEFAULT_REGION,
                     front_region: RegionSpec = "narrow",
                     landmark_indices: Optional[Sequence[int]] = None,
                     albedo_from: Optional[FaceModel] = None) -> FaceModel:
  """Reads ICT-FaceKit Light's FaceXModel folder (module docstring).

  Args:
    folder: the FaceXModel folder.
    id_rank: identity modes kept (identity000.obj onwards; at most 100).
    exp_names: blendshapes kept, in order (default: vertex_indices.json's
      "expressions", the 53 ARKit shapes). Any `<name>.obj` of the folder.
    region: the vertices kept: "face" (face area with ears and neck front),
      "narrow" (face mask), "eyeballs", joined by "+" (default
      "face+eyeballs": the eyeballs fill the eye openings of the render), or
      explicit (start, stop) vertex ranges. Polygons with a corner outside
      are dropped.
    front_region: the vertices of `front_mask` (same forms; default the
      narrow face area).
    landmark_indices: 68 vertex ids of the full mesh (default:
      vertex_indices.json's idx_to_landmark_verts, else the README's list).
    albedo_from: the model whose albedo (mean and basis) is carried over by
      `transfer.nearest_surface_map` after a similarity alignment of the
      inner landmarks (`ALIGNMENT_LANDMARKS`); default the embedded
      synthetic model.

  Returns:
    The FaceModel, with expression_kind "blendshape" and the shape names.

  Raises:
    FaceModelError: a missing or malformed file, an unknown region, or
      landmarks outside the region; the message names the file and the fix.
  """
  config = _read_config(folder)
  neutral_path = os.path.join(folder, NEUTRAL_OBJ)
  neutral = _read(neutral_path)
  num_all = neutral.vertices.shape[0]
  names = _expression_names(folder, config, exp_names)
  if not 0 <= id_rank <= NUM_IDENTITIES:
    raise FaceModelError(f"id_rank must be in [0, {NUM_IDENTITIES}], got "
                         f"{id_rank}")
  landmarks_all = _landmarks(config, landmark_indices)
  keep = region_vertices(region, num_all)
  new_id = np.full([num_all], -1, np.int64)
  new_id[keep] = np.arange(keep.size)
  if np.any(landmarks_all >= num_all) or np.any(new_id[landmarks_all] < 0):
    outside = sorted(set(landmarks_all[(landmarks_all >= num_all) |
                                       (new_id[np.minimum(landmarks_all,
                                                          num_all - 1)] < 0)]))
    raise _fail(neutral_path, f"landmark vertices {outside[:5]} are not in "
                f"the region {region!r}")

  triangles_all, _ = obj.triangulate(neutral)
  kept = np.all(new_id[triangles_all] >= 0, axis=1)
  triangles = new_id[triangles_all[kept]]
  points = neutral.vertices[keep] * CM_TO_MM
  front = np.zeros([num_all], bool)
  front[region_vertices(front_region, num_all)] = True
  front_mask = front[keep]
  eyeballs = np.zeros([num_all], bool)
  for start, stop in REGIONS["eyeballs"]:
    eyeballs[start:stop] = True
  triangles, flipped = orient_triangles_to_front(points, triangles,
                                                 front_mask)
  if flipped:
    logging.info("%s: polygons were clockwise seen from +z; winding flipped.",
                 neutral_path)

  id_basis = _target_deltas(folder, [IDENTITY_OBJ.format(k)[:-4]
                                     for k in range(id_rank)],
                            neutral.vertices, keep)
  exp_basis = _target_deltas(folder, names, neutral.vertices, keep)
  landmarks = new_id[landmarks_all]

  if albedo_from is None:
    # Imported here: building the synthetic model is only needed now.
    from mgc_tf.facemodel import synthetic  # pylint: disable=g-import-not-at-top
    albedo_from = synthetic.embedded_face_model()
  surface_map = albedo_surface_map(albedo_from, points, landmarks)
  logging.info("ICT albedo from %s: landmark RMS %.1f mm after alignment, "
               "median distance to its surface %.1f mm.", albedo_from.name,
               surface_map.landmark_rms, np.median(surface_map.distances))

  # The embedded model's camera: the 5 alignment points on the template.
  from mgc_tf.facemodel.synthetic.landmarks import template_pose  # pylint: disable=g-import-not-at-top
  region_name = region if isinstance(region, str) else "vertex ranges"
  try:
    return FaceModel.create(
        mean_shape=points,
        id_basis=id_basis,
        exp_basis=exp_basis,
        mean_albedo=surface_map.apply(albedo_from.mean_albedo),
        albedo_basis=surface_map.apply(albedo_from.albedo_basis),
        triangles=triangles,
        landmark_indices=landmarks,
        skin_mask=skin_mask(points, landmarks, eyeballs[keep]),
        front_mask=front_mask,
        default_pose=template_pose(points, landmarks),
        focal_length=crop.DEFAULT_FOCAL_LENGTH,
        image_size=crop.CROP_SIZE,
        name=(f"ICT-FaceKit Light {region_name} ({LICENCE_NOTICE}); albedo "
              f"of {albedo_from.name}"),
        expression_kind=expressions.BLENDSHAPE,
        expression_names=names)
  except FaceModelError as e:
    raise _fail(folder, str(e)) from e
