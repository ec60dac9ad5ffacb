"""ICT-FaceKit Light as a face model, and blendshape expressions end to end.

Every file is written here in the real FaceXModel format (OBJ files in
centimetres with comments, `mtllib`/`usemtl`, `vt` lines and `f v/vt`
quads; vertex_indices.json with "expressions" and "idx_to_landmark_verts")
for a tiny mesh: a 7 x 6 vertex face sheet bulging towards +z, followed by
four "head" vertices whose polygons touch the face (dropped by the face
selection). One test reads the real folder when MGC_TF_ICT_FACEKIT points at
it (`git clone https://github.com/ICT-VGL/ICT-FaceKit`, then
MGC_TF_ICT_FACEKIT=ICT-FaceKit/FaceXModel); it is skipped otherwise.
"""

import json
import os
import subprocess
import sys

import numpy as np
from scipy import spatial
import pytest

from mgc_tf.facemodel import expressions
from mgc_tf.facemodel import FaceModel
from mgc_tf.facemodel import FaceModelError
from mgc_tf.facemodel import ict
from mgc_tf.facemodel import load_face_model
from mgc_tf.facemodel import mesh
from mgc_tf.facemodel import obj
from mgc_tf.facemodel import transfer
from mgc_tf.facemodel.face_model import compute_vertex_triangles

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_FOLDER = os.environ.get("MGC_TF_ICT_FACEKIT", "")

COLS, ROWS = 7, 6
NUM_FACE = COLS * ROWS           # 42 "face area" vertices (9,409 real)
NUM_NARROW = 4 * COLS            # the top 4 rows: "narrow" area (6,706)
NUM_ALL = NUM_FACE + 4           # + 4 "head and neck" vertices (26,719)
FACE_QUADS = (COLS - 1) * (ROWS - 1)
EXPRESSIONS = ("jawOpen", "mouthClose", "eyeBlink_L")
NUM_IDS = 3


# --- the tiny FaceXModel folder --------------------------------------------------
def face_points_cm():
  """[42, 3] cm: a dome towards +z, 12 cm wide and 15 cm tall, row by row
  from the top (y = 7.5) down, x growing to the viewer's right."""
  x, y = np.meshgrid(np.linspace(-6.0, 6.0, COLS), np.linspace(7.5, -7.5, ROWS))
  z = 9.0 - 0.04 * (x**2 + y**2)
  return np.stack([x, y, z], -1).reshape([-1, 3])


def all_points_cm():
  """[46, 3]: the face, then four head vertices behind its right edge."""
  head = np.array([[8.0, 4.0, 2.0], [8.0, -4.0, 2.0], [7.0, -4.0, -3.0],
                   [7.0, 4.0, -3.0]])
  return np.concatenate([face_points_cm(), head])


def vid(row, col):
  return row * COLS + col


def polygons():
  """Face quads counter-clockwise seen from +z (a, below a, below right,
  right), then a head quad and a head triangle that touch the face."""
  quads = [(vid(r, c), vid(r + 1, c), vid(r + 1, c + 1), vid(r, c + 1))
           for r in range(ROWS - 1) for c in range(COLS - 1)]
  head = [(vid(1, COLS - 1), vid(3, COLS - 1), NUM_FACE + 1, NUM_FACE),
          (NUM_FACE + 1, NUM_FACE + 2, NUM_FACE + 3)]
  return quads + head


def landmark_table():
  """68 ids on the face sheet: eyes on row 1, nose tip row 2, mouth row 4."""
  ids = np.arange(68) % NUM_FACE
  ids[36:42] = [vid(1, 1), vid(1, 2), vid(1, 2), vid(2, 2), vid(2, 1),
                vid(2, 1)]
  ids[42:48] = [vid(1, 4), vid(1, 4), vid(1, 5), vid(2, 5), vid(2, 5),
                vid(2, 4)]
  ids[30] = vid(2, 3)
  ids[48:60] = [vid(4, 1), vid(3, 2), vid(3, 3), vid(3, 3), vid(3, 3),
                vid(3, 4), vid(4, 5), vid(5, 4), vid(5, 3), vid(5, 3),
                vid(5, 3), vid(5, 2)]
  return ids


def write_obj(path, points_cm):
  """An OBJ as ICT writes it: header comments, mtllib, v, vt, usemtl, f v/vt."""
  lines = ["#" * 40, "# ICT FaceKit (test copy)", "#" * 40, "",
           "mtllib ICTFaceModelMaterial.mtl"]
  lines += [f"v {x:g} {y:g} {z:g}" for x, y, z in points_cm]
  polys = polygons()
  lines += [f"vt {0.01 * k:g} {0.02 * k:g}" for k in range(
      sum(len(p) for p in polys))]
  lines.append("usemtl M_Face")
  corner = 0
  for p, poly in enumerate(polys):
    if p == FACE_QUADS:
      lines.append("usemtl M_BackHead")
    lines.append("f " + " ".join(f"{v + 1}/{corner + k + 1}"
                                 for k, v in enumerate(poly)))
    corner += len(poly)
  with open(path, "w", encoding="ascii") as f:
    f.write("\n".join(lines) + "\n")


def identity_delta_cm(k):
  """[46, 3] cm: smooth identity mode k (one standard deviation)."""
  p = all_points_cm()
  return 0.05 * (k + 1) * np.stack(
      [np.sin(p[:, 1] + k), np.cos(p[:, 0] - k), 0.5 * np.sin(p[:, 0] * k)],
      -1)


def expression_delta_cm(name):
  """[46, 3] cm at weight 1: small, smooth, regional (no folding to 1)."""
  p = all_points_cm()
  delta = np.zeros_like(p)
  if name == "jawOpen":      # the bottom rows move down
    delta[:, 1] = -0.4 * np.clip(-p[:, 1] / 7.5, 0.0, 1.0)
  elif name == "mouthClose":  # pulls the bottom rows up again
    delta[:, 1] = 0.3 * np.clip(-p[:, 1] / 7.5, 0.0, 1.0)
  elif name == "eyeBlink_L":  # the upper right rows move down, forwards
    delta[:, 1] = -0.3 * np.clip(p[:, 1] / 7.5, 0.0, 1.0) * (p[:, 0] > 0)
    delta[:, 2] = 0.1 * np.clip(p[:, 1] / 7.5, 0.0, 1.0) * (p[:, 0] > 0)
  else:
    delta[:, 2] = 0.2
  return delta


@pytest.fixture(name="folder")
def fixture_folder(tmp_path):
  """A tiny FaceXModel folder."""
  root = tmp_path / "FaceXModel"
  root.mkdir()
  neutral = all_points_cm()
  write_obj(root / ict.NEUTRAL_OBJ, neutral)
  for k in range(NUM_IDS):
    write_obj(root / ict.IDENTITY_OBJ.format(k), neutral + identity_delta_cm(k))
  for name in EXPRESSIONS + ("PupilDilate_L",):  # the last is not listed
    write_obj(root / f"{name}.obj", neutral + expression_delta_cm(name))
  config = {"expressions": list(EXPRESSIONS),
            "fitting_expressions": list(EXPRESSIONS),
            "idx_to_landmark_verts": landmark_table().tolist(),
            "idx_to_rigid_verts": [0, 1, 2]}
  (root / ict.CONFIG_JSON).write_text(json.dumps(config))
  return root


def albedo_source(model_points_mm, landmarks, seed=0):
  """A FaceModel holding the tiny ICT mesh shuffled, rotated, scaled and
  moved, with random albedo: carried back, every vertex finds itself."""
  rng = np.random.default_rng(seed)
  order = rng.permutation(model_points_mm.shape[0])
  angle = 0.3
  rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                       [-np.sin(angle), 0, np.cos(angle)]])
  points = 0.8 * model_points_mm[order] @ rotation.T + [5.0, -3.0, 40.0]
  inverse = np.argsort(order)
  v = points.shape[0]
  # A mesh over those points (front view), so that each ICT vertex's nearest
  # surface point is its own copy.
  triangles = spatial.Delaunay(model_points_mm[order][:, :2]).simplices
  return FaceModel.create(
      mean_shape=points, id_basis=np.zeros([v, 3, 1]),
      exp_basis=np.zeros([v, 3, 1]),
      mean_albedo=rng.uniform(0.2, 0.9, [v, 3]),
      albedo_basis=rng.normal(0, 0.05, [v, 3, 4]), triangles=triangles,
      landmark_indices=inverse[landmarks], name="albedo source"), order


def load_tiny(folder, **kwargs):
  kwargs.setdefault("id_rank", NUM_IDS)
  kwargs.setdefault("region", [(0, NUM_FACE)])
  kwargs.setdefault("front_region", [(0, NUM_NARROW)])
  if "albedo_from" not in kwargs:
    points_mm = face_points_cm() * 10.0
    kwargs["albedo_from"], _ = albedo_source(points_mm, landmark_table())
  return ict.load_ict_facekit(str(folder), **kwargs)


# --- the OBJ reader -------------------------------------------------------------
def test_read_obj_reads_every_corner_form(tmp_path):
  path = tmp_path / "forms.obj"
  path.write_text("# comment\nv 0 0 0\nv 1 0 0 0.5 0.5 0.5\nv 1 1 0\n"
                  "v 0 1 0\nv 2 0 0\nvt 0 0\nvn 0 0 1\n"
                  "f 1 2 3\nf 1/1 3/1 4/1\nf 2/1/1 5/1/1 3/1/1\n"
                  "f 1//1 2//1 3//1 4//1\ng group\ns off\n")
  mesh_read = obj.read_obj(str(path))
  np.testing.assert_array_equal(mesh_read.vertices[1], [1, 0, 0])
  np.testing.assert_array_equal(mesh_read.polygon_sizes, [3, 3, 3, 4])
  np.testing.assert_array_equal(mesh_read.polygon_corners,
                                [0, 1, 2, 0, 2, 3, 1, 4, 2, 0, 1, 2, 3])
  only_vertices = obj.read_obj(str(path), faces=False)
  assert only_vertices.num_polygons == 0
  assert only_vertices.vertices.shape == (5, 3)


@pytest.mark.parametrize("text,needle", [
    ("f 1 2 3\n", "no 'v x y z' vertex lines"),
    ("v 0 0\nf 1 1 1\n", "fewer than 3 coordinates"),
    ("v 0 0 x\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "not a number"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n", "must be in [1, 3]"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\n", "no negative ids"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2\n", "fewer than 3 corners"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no 'f' polygon lines"),
])
def test_read_obj_rejects_malformed_files(tmp_path, text, needle):
  path = tmp_path / "bad.obj"
  path.write_text(text)
  with pytest.raises(obj.ObjError) as error:
    obj.read_obj(str(path))
  assert needle in str(error.value) and str(path) in str(error.value)


def test_read_obj_checks_the_vertex_count(tmp_path):
  path = tmp_path / "target.obj"
  path.write_text("v 0 0 0\nv 1 0 0\n")
  with pytest.raises(obj.ObjError, match="has 2 vertices, expected 3"):
    obj.read_obj(str(path), faces=False, num_vertices=3)


def test_triangulate_keeps_winding_and_takes_the_shorter_diagonal():
  # A front-facing quad, counter-clockwise seen from +z, shorter along a-c.
  points = np.array([[0, 0, 0], [3, -1, 0], [3, 2, 0], [1, 3, 0],
                     [0, -3, 0], [1, -4, 0], [2, -4, 0], [3, -3, 0],
                     [2, -2, 0]], np.float64)
  polygon_mesh = obj.ObjMesh(
      vertices=points, polygon_sizes=np.array([4, 3, 5]),
      polygon_corners=np.array([0, 1, 2, 3, 0, 1, 3, 4, 5, 6, 7, 8]))
  triangles, origins = obj.triangulate(polygon_mesh)
  np.testing.assert_array_equal(origins, [0, 0, 1, 2, 2, 2])
  # |ac| = 3.6 < |bd| = 4.5: split along a-c; every triangle faces +z.
  assert np.all(mesh.face_normals(points, triangles)[:, 2] > 0)
  assert set(map(tuple, triangles[:2])) == {(0, 1, 2), (0, 2, 3)}
  np.testing.assert_array_equal(triangles[2], [0, 1, 3])
  np.testing.assert_array_equal(triangles[3:], [[4, 5, 6], [4, 6, 7],
                                                [4, 7, 8]])
  # Move c out so that b-d is shorter: the split follows it.
  points[2] = [6, 3, 0]
  triangles, _ = obj.triangulate(polygon_mesh)
  assert set(map(tuple, triangles[:2])) == {(0, 1, 3), (1, 2, 3)}
  assert np.all(mesh.face_normals(points, triangles)[:, 2] > 0)


# --- the loader ---------------------------------------------------------------
def test_quads_become_front_facing_triangles_in_millimetres(folder):
  model = load_tiny(folder)
  assert model.num_vertices == NUM_FACE
  assert model.num_triangles == 2 * FACE_QUADS   # the head polygons dropped
  np.testing.assert_allclose(model.mean_shape, face_points_cm() * 10.0,
                             rtol=1e-6)
  normals = mesh.face_normals(model.mean_shape, model.triangles)
  assert np.all(normals[:, 2] > 0)  # counter-clockwise seen from +z
  # Two triangles per quad, covering the quad's area exactly.
  quad_area = 2.0 * 10.0 * 3.0 * 10.0  # 20 mm x 30 mm in the x-y plane
  projected = 0.5 * np.abs(normals[:, 2])
  np.testing.assert_allclose(projected.sum(), FACE_QUADS * quad_area,
                             rtol=1e-5)
  np.testing.assert_array_equal(
      model.vertex_triangles,
      compute_vertex_triangles(model.triangles, NUM_FACE))


def test_selection_reindexes_and_keeps_only_inner_polygons(folder):
  # Keep the face rows 1..4 and the head: vertex ids shift by COLS.
  model = load_tiny(folder, region=[(COLS, 5 * COLS), (NUM_FACE, NUM_ALL)],
                    landmark_indices=np.full([68], vid(2, 3)),
                    front_region=[(0, NUM_ALL)])
  kept = np.r_[COLS:5 * COLS, NUM_FACE:NUM_ALL]
  np.testing.assert_allclose(model.mean_shape, all_points_cm()[kept] * 10.0,
                             rtol=1e-6)
  # 3 rows of face quads, the head quad and the head triangle: all of their
  # corners are kept; rows 0 and 4 to 5 lost theirs.
  assert model.num_triangles == 2 * 3 * (COLS - 1) + 2 + 1
  assert np.all(model.landmark_indices == vid(2, 3) - COLS)
  used = np.unique(model.triangles)
  assert used.min() == 0 and used.max() == kept.size - 1


def test_named_regions_and_errors(folder, monkeypatch):
  monkeypatch.setitem(ict.REGIONS, "face", ((0, NUM_FACE),))
  monkeypatch.setitem(ict.REGIONS, "narrow", ((0, NUM_NARROW),))
  model = load_tiny(folder, region="face", front_region="narrow")
  assert model.num_vertices == NUM_FACE
  np.testing.assert_array_equal(np.flatnonzero(model.front_mask),
                                np.arange(NUM_NARROW))
  with pytest.raises(FaceModelError, match="unknown ICT-FaceKit region"):
    load_tiny(folder, region="face+ears")
  with pytest.raises(FaceModelError, match="are not in the region"):
    load_tiny(folder, region=[(0, NUM_NARROW)])  # the mouth landmarks


def test_identity_modes_are_one_standard_deviation_in_mm(folder):
  model = load_tiny(folder)
  assert model.id_rank == NUM_IDS
  for k in range(NUM_IDS):
    np.testing.assert_allclose(model.id_basis[:, :, k],
                               identity_delta_cm(k)[:NUM_FACE] * 10.0,
                               atol=1e-4)
    # Coefficient 1 (one standard deviation) gives identityNNN.obj in mm.
    coefficients = np.eye(NUM_IDS)[k]
    np.testing.assert_allclose(
        model.shape_np(id_coeffs=coefficients),
        (all_points_cm() + identity_delta_cm(k))[:NUM_FACE] * 10.0,
        atol=1e-3)
  assert load_tiny(folder, id_rank=2).id_rank == 2


def test_blendshape_deltas_names_and_kind(folder):
  model = load_tiny(folder)
  assert model.expression_kind == expressions.BLENDSHAPE
  assert model.is_blendshape
  assert model.expression_names == EXPRESSIONS  # the json's order
  for k, name in enumerate(EXPRESSIONS):
    np.testing.assert_allclose(model.exp_basis[:, :, k],
                               expression_delta_cm(name)[:NUM_FACE] * 10.0,
                               atol=1e-5)
  chosen = load_tiny(folder, exp_names=["eyeBlink_L", "PupilDilate_L"])
  assert chosen.expression_names == ("eyeBlink_L", "PupilDilate_L")
  np.testing.assert_allclose(chosen.exp_basis[:, 2, 1], 2.0, atol=1e-5)


def test_landmarks_come_from_the_json_or_the_readme(folder):
  model = load_tiny(folder)
  np.testing.assert_array_equal(model.landmark_indices, landmark_table())
  config = json.loads((folder / ict.CONFIG_JSON).read_text())
  del config["idx_to_landmark_verts"]
  (folder / ict.CONFIG_JSON).write_text(json.dumps(config))
  # Without them the README's ids are used: they do not fit a tiny mesh.
  with pytest.raises(FaceModelError, match="landmark vertices"):
    load_tiny(folder)
  assert len(ict.LANDMARKS_68) == 68 and len(set(ict.LANDMARKS_68)) == 68
  assert max(ict.LANDMARKS_68) < ict.REGIONS["narrow"][0][1]


def test_masks_camera_and_albedo(folder):
  points_mm = face_points_cm() * 10.0
  source, order = albedo_source(points_mm, landmark_table())
  model = load_tiny(folder, albedo_from=source)
  # Every vertex found its shuffled, similarity-moved copy.
  inverse = np.argsort(order)
  np.testing.assert_allclose(model.mean_albedo, source.mean_albedo[inverse],
                             rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(model.albedo_basis, source.albedo_basis[inverse],
                             rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(np.flatnonzero(model.front_mask),
                                np.arange(NUM_NARROW))
  lips = np.zeros(NUM_FACE, bool)
  lips[[vid(4, 2), vid(4, 3), vid(4, 4)]] = True  # inside 48..59
  assert np.all(model.skin_mask[lips] == 0)
  assert model.skin_mask[vid(5, 0)] == 1 and model.skin_mask[vid(0, 0)] == 1
  from mgc_tf.facemodel.synthetic.landmarks import template_pose  # pylint: disable=g-import-not-at-top
  np.testing.assert_allclose(model.default_pose,
                             template_pose(points_mm, landmark_table()),
                             rtol=1e-6)
  assert model.focal_length == 1015.0 and model.image_size == 224
  assert "MIT" in model.name and "albedo source" in model.name


def test_default_albedo_is_the_embedded_synthetic_models(folder):
  model = ict.load_ict_facekit(str(folder), id_rank=1,
                               region=[(0, NUM_FACE)],
                               front_region=[(0, NUM_FACE)])
  assert "embedded-synthetic" in model.name
  assert model.albedo_rank == 80
  assert np.all((model.mean_albedo > 0.0) & (model.mean_albedo < 1.0))


def test_similarity_3d_recovers_a_known_transform():
  rng = np.random.default_rng(3)
  source = rng.normal(size=[20, 3])
  angle = 0.7
  rotation = np.array([[np.cos(angle), -np.sin(angle), 0],
                       [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
  target = 1.7 * source @ rotation.T + [1.0, 2.0, 3.0]
  found = transfer.similarity_3d(source, target)
  assert found.scale == pytest.approx(1.7)
  np.testing.assert_allclose(found.rotation, rotation, atol=1e-10)
  np.testing.assert_allclose(found.apply(source), target, atol=1e-10)
  with pytest.raises(ValueError, match="coincide"):
    transfer.similarity_3d(np.ones([4, 3]), target[:4])


@pytest.mark.parametrize("breakage,needle", [
    ("no_neutral", "generic_neutral_mesh.obj: file not found"),
    ("no_identity", "identity002.obj: file not found"),
    ("no_expression", "mouthClose.obj: file not found"),
    ("short_target", "has 45 vertices, expected 46"),
    ("bad_json", "vertex_indices.json: is not readable JSON"),
    ("no_names", "lacks the 'expressions' list"),
])
def test_bad_folders_name_the_file_and_the_fix(folder, breakage, needle):
  if breakage == "no_neutral":
    os.remove(folder / ict.NEUTRAL_OBJ)
  elif breakage == "no_identity":
    os.remove(folder / "identity002.obj")
  elif breakage == "no_expression":
    os.remove(folder / "mouthClose.obj")
  elif breakage == "short_target":
    write_obj(folder / "eyeBlink_L.obj", all_points_cm()[:-1])
  elif breakage == "bad_json":
    (folder / ict.CONFIG_JSON).write_text("{not json")
  elif breakage == "no_names":
    (folder / ict.CONFIG_JSON).write_text("{}")
  with pytest.raises(FaceModelError) as error:
    load_tiny(folder)
  message = str(error.value)
  assert needle in message
  assert "git clone" in message and ict.ICT_URL in message
  assert "\n" not in message


# --- expression kind in the FaceModel and its native format -----------------
def test_blendshape_model_round_trips_through_npz(folder, tmp_path):
  model = load_tiny(folder)
  path = str(tmp_path / "ict.npz")
  model.save(path)
  with np.load(path) as data:
    assert int(data["format_version"]) == 2
    assert data["expression_names"].tolist() == list(EXPRESSIONS)
  again = load_face_model(path)
  assert again.expression_kind == expressions.BLENDSHAPE
  assert again.expression_names == EXPRESSIONS
  assert again.fingerprint() == model.fingerprint()
  for name in ("mean_shape", "id_basis", "exp_basis", "triangles",
               "skin_mask", "front_mask", "default_pose", "albedo_basis"):
    np.testing.assert_array_equal(getattr(again, name), getattr(model, name))


def _old_fingerprint(model):
  """FaceModel.fingerprint as it was before the expression fields."""
  import hashlib  # pylint: disable=g-import-not-at-top
  digest = hashlib.sha256()
  for name in ("mean_shape", "id_basis", "exp_basis", "mean_albedo",
               "albedo_basis", "triangles", "landmark_indices", "skin_mask",
               "front_mask", "vertex_triangles", "default_pose",
               "focal_length", "image_size"):
    value = np.ascontiguousarray(getattr(model, name))
    digest.update(name.encode())
    digest.update(str(value.dtype).encode() + str(value.shape).encode())
    digest.update(value.tobytes())
  return digest.hexdigest()[:16]


def test_pca_models_keep_the_version_1_file_and_fingerprint(tiny_face_model,
                                                            tmp_path):
  assert tiny_face_model.expression_kind == expressions.PCA
  assert tiny_face_model.fingerprint() == _old_fingerprint(tiny_face_model)
  path = str(tmp_path / "pca.npz")
  tiny_face_model.save(path)
  with np.load(path) as data:
    assert int(data["format_version"]) == 1
    assert "expression_kind" not in data.files
  again = FaceModel.load(path)  # a version 1 file (as older mgc_tf wrote)
  assert again.expression_kind == expressions.PCA
  assert again.expression_names == ()
  assert again.fingerprint() == tiny_face_model.fingerprint()


def test_future_versions_are_refused(tiny_face_model, tmp_path):
  path = tmp_path / "future.npz"
  tiny_face_model.save(str(path))
  with np.load(path) as data:
    arrays = dict(data)
  arrays["format_version"] = np.int32(3)
  np.savez(path, **arrays)
  with pytest.raises(FaceModelError, match="version 3, this mgc_tf reads"):
    FaceModel.load(str(path))


@pytest.mark.parametrize("kind,names,needle", [
    ("gaussian", (), "expression_kind must be one of"),
    ("blendshape", ("a", "b"), "holds 2 names for 4"),
    ("pca", ("a", "b", "c", "d"), "for blendshape models only"),
    ("blendshape", ("a", "a", "b", "c"), "distinct"),
])
def test_expression_fields_are_validated(tiny_face_model, kind, names, needle):
  arrays = {name: getattr(tiny_face_model, name) for name in (
      "mean_shape", "id_basis", "exp_basis", "mean_albedo", "albedo_basis",
      "triangles", "landmark_indices")}
  with pytest.raises(FaceModelError, match=needle):
    FaceModel.create(**arrays, expression_kind=kind, expression_names=names)


# --- decoder: raw outputs -> weights ------------------------------------------------
def _decoder_shape(decoder, raw, identity=None):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  raw = np.atleast_2d(np.asarray(raw, np.float32))
  identity = (np.zeros([raw.shape[0], decoder.layout.id_rank], np.float32)
              if identity is None else np.atleast_2d(identity))
  return decoder.shape(tf.constant(identity, tf.float32),
                       tf.constant(raw)).numpy()


def test_decoder_blendshape_weights(folder):
  from mgc_tf.facemodel.decoder import FaceDecoder  # pylint: disable=g-import-not-at-top
  model = load_tiny(folder)
  decoder = FaceDecoder(model)
  jaw, close, blink = range(3)
  identity = np.array([0.7, -1.2, 0.4], np.float32)
  with_identity = model.shape_np(id_coeffs=identity)
  # Weights 0: the neutral (or the identity's) shape.
  np.testing.assert_allclose(_decoder_shape(decoder, np.zeros(3))[0],
                             model.mean_shape, atol=1e-5)
  np.testing.assert_allclose(
      _decoder_shape(decoder, np.zeros(3), identity)[0], with_identity,
      atol=1e-4)
  # Weight 1 on one shape adds exactly its delta, on any identity.
  for k in (jaw, blink):
    np.testing.assert_allclose(
        _decoder_shape(decoder, np.eye(3)[k], identity)[0],
        with_identity + model.exp_basis[:, :, k], atol=1e-4)
  # Beyond [0, 1]: the bound.
  np.testing.assert_allclose(_decoder_shape(decoder, [5.0, 0, -3.0])[0],
                             model.mean_shape + model.exp_basis[:, :, jaw],
                             atol=1e-4)
  # mouthClose never exceeds jawOpen.
  np.testing.assert_allclose(_decoder_shape(decoder, [0.3, 0.9, 0])[0],
                             model.mean_shape + 0.3 * (
                                 model.exp_basis[:, :, jaw] +
                                 model.exp_basis[:, :, close]), atol=1e-4)
  # The NumPy reference agrees.
  raw = np.array([[0.3, 0.9, 2.0], [-1.0, 0.5, 0.25]])
  for row in raw:
    np.testing.assert_allclose(_decoder_shape(decoder, row)[0],
                               model.shape_np(exp_coeffs=row), atol=1e-4)
  np.testing.assert_allclose(
      expressions.blendshape_weights_np(raw, EXPRESSIONS),
      [[0.3, 0.3, 1.0], [0.0, 0.0, 0.25]])


def test_decoder_leaves_pca_expressions_alone(tiny_face_model):
  from mgc_tf.facemodel.decoder import FaceDecoder  # pylint: disable=g-import-not-at-top
  decoder = FaceDecoder(tiny_face_model)
  raw = np.array([-2.5, 3.0, 0.5, -0.1], np.float32)
  np.testing.assert_allclose(_decoder_shape(decoder, raw)[0],
                             tiny_face_model.shape_np(exp_coeffs=raw),
                             atol=1e-4)


def test_clipped_weights_pass_only_inward_gradients():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel.decoder import clip_blendshape_weights  # pylint: disable=g-import-not-at-top
  raw = tf.constant([[-0.5, -0.5, 0.4, 1.5, 1.5]])
  # Loss = sum(c * w): descent moves raw by -c.
  c = tf.constant([[-1.0, 1.0, 2.0, 1.0, -1.0]])
  with tf.GradientTape() as tape:
    tape.watch(raw)
    weights = clip_blendshape_weights(raw)
    loss = tf.reduce_sum(c * weights)
  np.testing.assert_allclose(weights.numpy(), [[0, 0, 0.4, 1, 1]])
  # Below 0: the gradient that raises raw passes, the one that lowers it
  # is blocked; inside: exact; above 1: the mirror image.
  np.testing.assert_allclose(tape.gradient(loss, raw).numpy(),
                             [[-1.0, 0.0, 2.0, 1.0, 0.0]])


def test_no_folding_at_zero_one_and_beyond_on_the_tiny_mesh(folder):
  model = load_tiny(folder)
  for raw in ([0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1],
              [3, 3, 3], [1e3, -1e3, 1e3], [-5, -5, -5]):
    shape = model.shape_np(exp_coeffs=np.asarray(raw, np.float64))
    assert not np.any(mesh.flipped_triangles(model.mean_shape, shape,
                                             model.triangles)), raw
    assert np.all(np.isfinite(shape))


# --- the blendshape prior -------------------------------------------------------
def test_blendshape_prior():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel.coefficients import CoefficientLayout  # pylint: disable=g-import-not-at-top
  from mgc_tf.losses import regularization  # pylint: disable=g-import-not-at-top
  layout = CoefficientLayout(id_rank=2, albedo_rank=2, exp_rank=3)
  values = [[0.0, 0.5, 1.0], [-0.5, 0.2, 1.5], [0.0, 0.0, 0.0]]

  def loss(exp, kind, **kwargs):
    coefficients = tf.Variable(layout.join(
        {"expression": tf.constant(exp, tf.float32)}))
    with tf.GradientTape() as tape:
      value = regularization.regularization_loss(
          coefficients, layout, expression_kind=kind, **kwargs)
    grad = tape.gradient(value, coefficients)
    return value.numpy(), grad.numpy()[:, layout.slices()["expression"]]

  gaussian, _ = loss(values, "pca")
  blend, grad = loss(values, "blendshape")
  box_only, _ = loss(values, "blendshape", expression_weight=0.0)
  # Inside [0, 1]: only the pull towards 0, as for PCA; the box part is 0.
  np.testing.assert_allclose(blend[[0, 2]], gaussian[[0, 2]], rtol=1e-6)
  np.testing.assert_allclose(box_only[[0, 2]], 0.0)
  # Outside: 10 * squared distance to [0, 1] on top.
  np.testing.assert_allclose(box_only[1], 10.0 * (0.25 + 0.25), rtol=1e-6)
  assert blend[1] > gaussian[1]
  # Gradients point back into [0, 1] (descent raises -0.5, lowers 1.5).
  assert grad[1, 0] < 0 and grad[1, 2] > 0
  np.testing.assert_allclose(grad[1], [2 * 0.8 * -0.5 + 2 * 10 * -0.5,
                                       2 * 0.8 * 0.2,
                                       2 * 0.8 * 1.5 + 2 * 10 * 0.5],
                             rtol=1e-5)
  with pytest.raises(ValueError, match="expression_kind"):
    regularization.regularization_loss(tf.zeros([1, layout.size]), layout,
                                       expression_kind="gaussian")


# --- the converter command -------------------------------------------------------
def run_command(*args):
  return subprocess.run(
      [sys.executable, "-m", "mgc_tf.convert_face_model", *args],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.mark.slow
def test_command_converts_an_ict_folder(folder, tmp_path, monkeypatch):
  out = tmp_path / "ict.npz"
  result = run_command(f"--input={folder}", f"--output={out}", "--id_rank=2",
                       "--expressions=jawOpen,eyeBlink_L")
  assert result.returncode == 0, result.stderr
  assert "identity 2, expression 2 (blendshapes), albedo 80" in result.stdout
  model = FaceModel.load(str(out))
  assert model.expression_names == ("jawOpen", "eyeBlink_L")
  # The default region ("face+eyeballs") holds all 46 tiny vertices.
  assert model.num_vertices == NUM_ALL
  assert model.num_triangles == 2 * FACE_QUADS + 2 + 1


@pytest.mark.slow
@pytest.mark.parametrize("breakage,needle", [
    ("no_neutral", "generic_neutral_mesh.obj: file not found"),
    ("not_obj", "no 'v x y z' vertex lines"),
    ("not_ict", "a folder, but not ICT-FaceKit's FaceXModel"),
])
def test_command_reports_a_bad_folder_in_one_line(folder, tmp_path, breakage,
                                                  needle):
  if breakage == "no_neutral":
    os.remove(folder / ict.NEUTRAL_OBJ)
  elif breakage == "not_obj":
    (folder / "identity001.obj").write_text("this is not a mesh\n")
  else:
    folder = tmp_path / "empty"
    folder.mkdir()
  out = tmp_path / "out.npz"
  result = run_command(f"--input={folder}", f"--output={out}", "--id_rank=2")
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
  assert needle in lines[0]
  assert "python -m mgc_tf.convert_face_model --input=" in lines[0]
  assert not out.exists()


# --- the real folder ---------------------------------------------------------------
@pytest.fixture(name="real", scope="module")
def fixture_real():
  if not REAL_FOLDER:
    pytest.skip("set MGC_TF_ICT_FACEKIT to ICT-FaceKit's FaceXModel folder")
  return ict.load_ict_facekit(REAL_FOLDER)


def _zones(model, lip_growth=1.25, eye_growth=1.4):
  """[F] bool: triangles touching the lips or the lid margins (landmark
  outlines grown about their centres), where lips and lids meet."""
  xy, lm = model.mean_shape[:, :2], model.landmark_indices

  def grown(ids, growth):
    ring = xy[lm[list(ids)]]
    centre = ring.mean(0)
    return ict._inside(xy, centre + growth * (ring - centre))  # pylint: disable=protected-access

  near = (grown(range(48, 60), lip_growth) | grown(range(36, 42), eye_growth) |
          grown(range(42, 48), eye_growth))
  return near[model.triangles].any(axis=1)


def test_real_ict_facekit(real):
  # Counts: the face area (9,409 vertices, 9,230 quads) and the eyeballs
  # (3,140 vertices, 3,068 quads and 128 triangles).
  assert real.num_vertices == 9409 + 3140
  assert real.num_triangles == 2 * 9230 + 2 * 3068 + 128
  assert real.id_rank == 100 and real.exp_rank == 53
  with open(os.path.join(REAL_FOLDER, ict.CONFIG_JSON), encoding="utf-8") as f:
    config = json.load(f)
  assert real.expression_names == tuple(config["expressions"])
  # The README's landmark list is the json's, and the region keeps ids.
  assert tuple(config["idx_to_landmark_verts"]) == ict.LANDMARKS_68
  np.testing.assert_array_equal(real.landmark_indices, ict.LANDMARKS_68)
  # Millimetres: a face area about 18 cm wide, eyes 6 cm apart.
  extent = real.mean_shape.max(0) - real.mean_shape.min(0)
  assert 150 < extent[0] < 220 and 200 < extent[1] < 320
  lm = real.mean_shape[real.landmark_indices]
  eye_distance = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
  assert 55 < eye_distance < 75
  # iBUG order: the jaw from the image's left (x < 0) to its right, the chin
  # lowest, left-right pairs mirrored, nose tip in front, brows over eyes
  # over nose over mouth.
  assert np.all(np.diff(lm[0:9, 0]) > 0) and np.all(np.diff(lm[8:17, 0]) > 0)
  assert np.argmin(lm[:17, 1]) == 8
  for left, right in ((0, 16), (36, 45), (39, 42), (48, 54), (31, 35)):
    np.testing.assert_allclose(lm[left] * [-1, 1, 1], lm[right], atol=0.5)
  assert np.argmax(lm[:, 2]) == 30
  assert (lm[17:27, 1].min() > lm[36:48, 1].max() > lm[30, 1] >
          lm[48:68, 1].max())
  eyeballs = np.arange(9409, real.num_vertices)
  assert np.all(real.skin_mask[eyeballs] == 0)
  assert np.all(real.skin_mask[real.landmark_indices[60:68]] == 0)
  assert np.all(real.skin_mask[real.landmark_indices[27:31]] == 1)
  # The camera puts the eyes, nose tip and mouth corners near the template.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import crop  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel.decoder import FaceDecoder  # pylint: disable=g-import-not-at-top
  decoder = FaceDecoder(real)
  face = decoder.decode(tf.zeros([1, decoder.layout.size]))
  q = face.landmarks_2d.numpy()[0]
  five = np.stack([q[36:42].mean(0), q[42:48].mean(0), q[30], q[48], q[54]])
  assert np.abs(five - crop.TEMPLATE_5PT_224).max() < 15.0
  assert np.all(face.vertices.numpy()[0, :, 2] > 0)


def test_real_ict_facekit_does_not_fold(real):
  """Raw 0, 1 and beyond, on every shape and on whole expressions.

  ICT's own shapes at weight 1 crease a few tiny triangles where the lips
  meet and where the lids close (up to 78 of them, 26 mm^2 in all, for
  mouthRollUpper); elsewhere nothing may turn over, and raw values beyond
  [0, 1] decode to the mesh of the bound.
  """
  names = list(real.expression_names)
  zones = _zones(real)
  rest = real.mean_shape

  def check(raw):
    shape = real.shape_np(exp_coeffs=raw)
    flipped = mesh.flipped_triangles(rest, shape, real.triangles)
    assert not np.any(flipped & ~zones), (raw, np.count_nonzero(
        flipped & ~zones))
    area = 0.5 * np.linalg.norm(mesh.face_normals(shape, real.triangles),
                                axis=-1)
    assert area[flipped].sum() < 30.0
    return shape

  assert not np.any(mesh.flipped_triangles(rest, real.shape_np(
      exp_coeffs=np.zeros(53)), real.triangles))
  for k in range(53):
    at_one = check(np.eye(53)[k])
    for beyond in (1.5, 10.0, 1e4):
      np.testing.assert_array_equal(check(beyond * np.eye(53)[k]), at_one)
    check(-3.0 * np.eye(53)[k])
  whole = {
      "smile": ("mouthSmile_L", "mouthSmile_R", "cheekSquint_L",
                "cheekSquint_R"),
      "surprise": ("browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
                   "browOuterUp_R", "eyeWide_L", "eyeWide_R", "jawOpen"),
      "blink": ("eyeBlink_L", "eyeBlink_R"),
      "open jaw, closed lips": ("jawOpen", "mouthClose"),
  }
  for shapes in whole.values():
    raw = np.zeros(53)
    raw[[names.index(n) for n in shapes]] = 1.0
    check(raw)
    check(5.0 * raw)
  # mouthClose alone would push the lips through each other: it is capped.
  alone = np.zeros(53)
  alone[names.index("mouthClose")] = 1.0
  np.testing.assert_array_equal(real.shape_np(exp_coeffs=alone), rest)


def test_a_blendshape_decoder_saves_and_loads_as_a_saved_model(folder,
                                                               tmp_path):
  # The clip's custom gradient must not stop `tf.saved_model.save` (the
  # serving graph decodes coefficients).
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel.decoder import FaceDecoder  # pylint: disable=g-import-not-at-top
  decoder = FaceDecoder(load_tiny(folder))
  module = tf.Module()
  module.shape = tf.function(
      lambda raw: decoder.shape(tf.zeros([1, NUM_IDS]), raw),
      input_signature=[tf.TensorSpec([1, 3], tf.float32)])
  tf.saved_model.save(module, str(tmp_path / "decoder"))
  loaded = tf.saved_model.load(str(tmp_path / "decoder"))
  raw = tf.constant([[0.4, 2.0, -1.0]])
  np.testing.assert_allclose(loaded.shape(raw).numpy(),
                             decoder.shape(tf.zeros([1, NUM_IDS]), raw).numpy(),
                             atol=1e-5)


def test_the_repository_folder_is_found_too(folder):
  from mgc_tf.facemodel import loaders  # pylint: disable=g-import-not-at-top
  model = loaders.load_face_model_file(str(folder.parent), id_rank=1,
                                       ict_region="face")
  assert model.is_blendshape and model.id_rank == 1
  assert model.num_vertices == NUM_ALL  # the tiny mesh is all "face area"


# --- the packaged model (embedded-ict-light-v1) ---------------------------------


def test_packaged_model_loads_by_name_with_its_notice():
  from mgc_tf.facemodel import embedded_ict  # pylint: disable=g-import-not-at-top
  assert os.path.getsize(embedded_ict.ASSET_PATH) <= 10 * 2**20
  with open(embedded_ict.NOTICE_PATH) as f:
    notice = f.read()
  assert "MIT License" in notice and "Institute for Creative" in notice
  model = load_face_model(embedded_ict.MODEL_NAME)
  assert model is load_face_model("embedded-ict-light-v1")  # cached
  assert model.name.startswith("embedded-ict-light-v1: ICT-FaceKit Light")
  assert (model.num_vertices, model.id_rank, model.exp_rank,
          model.albedo_rank) == (12549, 100, 53, 80)
  assert model.is_blendshape and model.expression_names[0] == "browDown_L"
  assert np.all((model.mean_albedo > 0.0) & (model.mean_albedo < 1.0))
  # The mean face is a face: nose tip in front, chin below the mouth.
  landmarks = model.mean_shape[model.landmark_indices]
  assert np.argmax(landmarks[:, 2]) == 30
  assert landmarks[8, 1] < landmarks[57, 1] < landmarks[33, 1]
  # It is the default; the other packaged name is the synthetic model.
  assert model is load_face_model(None) is load_face_model("")
  assert load_face_model("embedded-synthetic-v1").name == (
      "embedded-synthetic-v1")


def test_packaged_file_round_trip_and_albedo_source_check(folder, tmp_path):
  from mgc_tf.facemodel import embedded_ict  # pylint: disable=g-import-not-at-top
  points_mm = face_points_cm() * 10.0
  source, _ = albedo_source(points_mm, landmark_table())
  model = load_tiny(folder, albedo_from=source)
  surface_map = ict.albedo_surface_map(source, model.mean_shape,
                                       model.landmark_indices)
  path = str(tmp_path / "ict.npz")
  embedded_ict.write_embedded_ict(model, surface_map, source, path)
  with open(path, "rb") as f:
    first = f.read()
  embedded_ict.write_embedded_ict(model, surface_map, source, path)
  with open(path, "rb") as f:
    assert f.read() == first  # the same input gives the same bytes
  read = embedded_ict.read_embedded_ict(path, albedo_from=source)
  # float16 bases: within half a unit in the last place of their values.
  for name in ("id_basis", "exp_basis"):
    stored, exact = getattr(read, name), getattr(model, name)
    np.testing.assert_allclose(stored, exact,
                               atol=np.abs(exact).max() * 2.0**-11)
  np.testing.assert_allclose(read.mean_albedo, model.mean_albedo, atol=1e-6)
  np.testing.assert_allclose(read.albedo_basis, model.albedo_basis,
                             atol=1e-6)
  for name in ("mean_shape", "triangles", "landmark_indices", "front_mask",
               "default_pose"):
    np.testing.assert_array_equal(getattr(read, name), getattr(model, name))
  assert read.expression_names == model.expression_names
  # Another albedo source (e.g. a changed synthetic model): an error that
  # says how to rebuild, never a silently different albedo.
  other, _ = albedo_source(points_mm, landmark_table(), seed=1)
  with pytest.raises(FaceModelError, match="build_embedded_ict"):
    embedded_ict.read_embedded_ict(path, albedo_from=other)
  with pytest.raises(FaceModelError, match="missing"):
    embedded_ict.read_embedded_ict(str(tmp_path / "absent.npz"))


def test_build_script_errors_are_one_line(tmp_path):
  script = os.path.join(REPO_ROOT, "scripts", "build_embedded_ict.py")
  for args in ([], [f"--input={tmp_path}/nowhere"]):
    result = subprocess.run([sys.executable, script] + args,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:")
    assert "Traceback" not in result.stderr


def test_packaged_file_is_what_the_script_makes_of_the_real_folder(tmp_path):
  if not REAL_FOLDER:
    pytest.skip("set MGC_TF_ICT_FACEKIT to ICT-FaceKit's FaceXModel folder")
  from mgc_tf.facemodel import embedded_ict  # pylint: disable=g-import-not-at-top
  output = tmp_path / "ict_light_v1.npz"
  subprocess.run([sys.executable,
                  os.path.join(REPO_ROOT, "scripts", "build_embedded_ict.py"),
                  f"--input={REAL_FOLDER}", f"--output={output}"],
                 check=True, capture_output=True)
  with open(embedded_ict.ASSET_PATH, "rb") as f:
    assert output.read_bytes() == f.read()


@pytest.mark.slow
def test_a_run_trains_and_evaluates_on_the_ict_dataset(tmp_path):
  """synthetic_multiview/ict_tiny with --face_model=embedded-ict-light-v1:
  two steps, then the evaluation scores meshes against the ICT ground
  truth (vertex error needs the same layout and topology)."""
  result = subprocess.run(
      [sys.executable, "-m", "mgc_tf.train",
       "--dataset=synthetic_multiview/ict_tiny",
       "--eval_dataset=synthetic_multiview/ict_tiny",
       "--face_model=embedded-ict-light-v1", "--image_size=64",
       "--batch_size=1", "--max_steps=2", "--backbone=resnet18",
       "--eval_every=2", "--export_dir=", f"--model_dir={tmp_path / 'run'}",
       f"--data_dir={tmp_path / 'data'}"],
      cwd=REPO_ROOT, capture_output=True, text=True, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  evaluation = [line for line in result.stdout.splitlines()
                if line.startswith("eval ")]
  assert evaluation, result.stdout[-3000:]
  scores = dict(zip(evaluation[-1].split()[1::2],
                    map(float, evaluation[-1].split()[2::2])))
  assert np.isfinite(scores["vertex_error_mm"]), evaluation
  assert np.isfinite(scores["depth_error_mm"]), evaluation
