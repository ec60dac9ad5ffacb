"""Tests for mgc_tf.facemodel.loaders and the convert_face_model command.

Every file is written here, in the real format (key names, shapes, dtypes,
1-based indices, units) with a tiny mesh: 30 front vertices on a 6 x 5 grid
bulging towards +z, inside a 40-vertex "BFM" with 36 "expression" vertices.
"""

import os
import subprocess
import sys
import types

import h5py
import numpy as np
import pytest
import scipy.io

import mgc_tf.facemodel as facemodel_pkg
from mgc_tf.facemodel import convert_bfm2009
from mgc_tf.facemodel import FaceModel
from mgc_tf.facemodel import FaceModelError
from mgc_tf.facemodel import load_deep3d_bfm_front
from mgc_tf.facemodel import load_face_model
from mgc_tf.facemodel import load_mgcnet_h5
from mgc_tf.facemodel import loaders
from mgc_tf.facemodel import mesh
from mgc_tf.facemodel import orient_triangles_to_front
from mgc_tf.facemodel import read_exp_pca_bin

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = "python -m mgc_tf.convert_face_model"

NX, NY = 6, 5
NUM_FRONT = NX * NY          # 30 front vertices (35709 in the real files)
NUM_EXP = 36                 # expression vertices (53215)
NUM_BFM = 40                 # BFM 2009 vertices (53490)
BFM_RANK = 199
EXP_RANK = 79


# --- tiny geometry -----------------------------------------------------------
def grid_mesh():
  """[30, 3] mm positions (a dome towards +z), [F, 3] 0-based CCW triangles."""
  xs = np.linspace(-60.0, 60.0, NX)
  ys = np.linspace(-80.0, 80.0, NY)
  x, y = np.meshgrid(xs, ys)               # vertex id = j * NX + i
  z = 40.0 - 0.002 * (x**2 + y**2)
  points = np.stack([x, y, z], -1).reshape([-1, 3])
  points += np.array([3.0, 20.0, 50.0])    # off-centre, like BFM
  triangles = []
  for j in range(NY - 1):
    for i in range(NX - 1):
      a, b = j * NX + i, j * NX + i + 1
      c, d = b + NX, a + NX
      triangles += [(a, b, c), (a, c, d)]  # counter-clockwise seen from +z
  return points, np.array(triangles, np.int64)


def vertex_triangle_sets(triangles, num_vertices):
  sets = [set() for _ in range(num_vertices)]
  for t, tri in enumerate(triangles):
    for v in tri:
      sets[v].add(t)
  return sets


def point_buf_one_based(triangles, num_vertices, width=8):
  """[V, 8] 1-based triangle ids, padded with F + 1 (as facemodel_info.mat)."""
  table = np.full([num_vertices, width], len(triangles) + 1, np.float32)
  for v, ids in enumerate(vertex_triangle_sets(triangles, num_vertices)):
    table[v, :len(ids)] = np.array(sorted(ids)) + 1
  return table


class Files:
  """Paths and raw arrays of one set of tiny files."""


@pytest.fixture(name="raw")
def fixture_raw():
  """Raw arrays in the original files' units and index bases."""
  rng = np.random.default_rng(0)
  r = Files()
  r.front_points_mm, r.triangles = grid_mesh()
  r.exp_to_bfm = rng.choice(NUM_BFM, NUM_EXP, replace=False)
  r.front_to_exp = rng.choice(NUM_EXP, NUM_FRONT, replace=False)
  r.front_to_bfm = r.exp_to_bfm[r.front_to_exp]
  shape_mu = rng.normal(0, 50000, [NUM_BFM, 3])
  shape_mu[r.front_to_bfm] = r.front_points_mm * 1000.0   # micrometres
  r.shapeMU = shape_mu.reshape([-1, 1]).astype(np.float32)
  r.shapePC = (rng.normal(size=[3 * NUM_BFM, BFM_RANK]) / 11).astype(np.float32)
  r.shapeEV = np.linspace(3000, 10, BFM_RANK)[:, None].astype(np.float32)
  r.texMU = rng.uniform(40, 220, [3 * NUM_BFM, 1]).astype(np.float32)
  r.texPC = (rng.normal(size=[3 * NUM_BFM, BFM_RANK]) / 11).astype(np.float32)
  r.texEV = np.linspace(80, 1, BFM_RANK)[:, None].astype(np.float32)
  r.exp_mean = rng.normal(size=[3 * NUM_EXP]).astype(np.float32)
  r.exp_pc = (rng.normal(size=[EXP_RANK, 3 * NUM_EXP]) / 6).astype(np.float32)
  r.std_exp = np.linspace(453980, 276.19, EXP_RANK)
  r.keypoints = rng.integers(0, NUM_FRONT, 68)
  r.front2 = np.sort(rng.choice(NUM_FRONT, 20, replace=False))
  r.skin = (rng.uniform(size=NUM_FRONT) > 0.4).astype(np.float32)
  return r


def write_exp_pca_bin(path, mean, pcs):
  """Guo et al.'s layout: int32 K, float32 mean [3N], float32 basis [K, 3N]."""
  with open(path, "wb") as f:
    np.array([pcs.shape[0]], "<i4").tofile(f)
    np.asarray(mean, "<f4").tofile(f)
    np.asarray(pcs, "<f4").tofile(f)


def facemodel_info(raw, triangles=None):
  """The arrays of Deep3D's facemodel_info.mat (float32, 1-based)."""
  tri = raw.triangles if triangles is None else triangles
  remap = {v: k for k, v in enumerate(raw.front2)}
  tri_mask2 = [[remap[v] for v in t] for t in tri
               if all(v in remap for v in t)]
  frontmask2 = np.zeros([1, NUM_FRONT], np.float32)
  frontmask2[0, raw.front2] = 1
  return {
      "tri": (tri + 1).astype(np.float32),
      "keypoints": (raw.keypoints + 1)[None].astype(np.float32),
      "point_buf": point_buf_one_based(tri, NUM_FRONT),
      "frontmask2": frontmask2,
      "tri_mask2": (np.array(tri_mask2) + 1).astype(np.float32),
      "frontmask2_idx": (raw.front2 + 1)[:, None].astype(np.float32),
      "skinmask": raw.skin[None],
  }


@pytest.fixture(name="bfm_dir")
def fixture_bfm_dir(tmp_path, raw):
  """A Deep3D-style BFM/ folder with the original BFM 2009 inputs."""
  folder = tmp_path / "BFM"
  folder.mkdir()
  scipy.io.savemat(folder / "01_MorphableModel.mat", {
      "shapeMU": raw.shapeMU, "shapePC": raw.shapePC, "shapeEV": raw.shapeEV,
      "texMU": raw.texMU, "texPC": raw.texPC, "texEV": raw.texEV,
      "tl": np.array([[1, 2, 3], [2, 3, 4]], np.float64),
      "segbin": np.zeros([NUM_BFM, 4], np.uint8)})
  write_exp_pca_bin(folder / "Exp_Pca.bin", raw.exp_mean, raw.exp_pc)
  np.savetxt(folder / "std_exp.txt", raw.std_exp[None], fmt="%g")
  trim_index = (raw.exp_to_bfm + 1)[:, None].astype(np.uint16)
  scipy.io.savemat(folder / "BFM_exp_idx.mat", {"trimIndex": trim_index})
  scipy.io.savemat(folder / "BFM_front_idx.mat",
                   {"idx": (raw.front_to_exp + 1)[:, None].astype(np.float32)})
  scipy.io.savemat(folder / "facemodel_info.mat", facemodel_info(raw))
  return folder


def bfm_paths(folder):
  return dict(
      morphable_model_mat=str(folder / "01_MorphableModel.mat"),
      exp_pca_bin=str(folder / "Exp_Pca.bin"),
      front_idx_mat=str(folder / "BFM_front_idx.mat"),
      exp_idx_mat=str(folder / "BFM_exp_idx.mat"),
      facemodel_info_mat=str(folder / "facemodel_info.mat"))


def deep3d_front_arrays(raw, triangles=None):
  """What Deep3D's transferBFM09 saves: decimetres, 0..255, 1-based ids."""
  shape_ids = raw.front_to_bfm
  id_base = raw.shapePC * raw.shapeEV.reshape([1, -1]) / 1e5
  id_base = id_base[:, :80].reshape([-1, 3, 80])[shape_ids].reshape([-1, 80])
  ex_base = raw.exp_pc.T * raw.std_exp.reshape([1, -1]) / 1e5
  ex_base = ex_base[:, :64].reshape([-1, 3, 64])[raw.front_to_exp]
  tex_base = raw.texPC * raw.texEV.reshape([1, -1])
  tex_base = tex_base[:, :80].reshape([-1, 3, 80])[shape_ids].reshape([-1, 80])
  arrays = {
      "meanshape": (raw.shapeMU.reshape([-1, 3]) / 1e5)[shape_ids].reshape(
          [1, -1]),
      "meantex": raw.texMU.reshape([-1, 3])[shape_ids].reshape([1, -1]),
      "idBase": id_base, "exBase": ex_base.reshape([-1, 64]),
      "texBase": tex_base,
  }
  info = facemodel_info(raw, triangles)
  for key in ("tri", "point_buf", "tri_mask2", "keypoints", "frontmask2_idx",
              "skinmask"):
    arrays[key] = info[key]
  return arrays


@pytest.fixture(name="deep3d_mat")
def fixture_deep3d_mat(tmp_path, raw):
  path = tmp_path / "BFM_model_front.mat"
  scipy.io.savemat(path, deep3d_front_arrays(raw))
  return str(path)


def mgcnet_arrays(raw):
  """Datasets of MGCNet's h5 (micrometres, 0..255, std in pcaVariance)."""
  rng = np.random.default_rng(1)
  v = NUM_FRONT
  ring = vertex_triangle_sets(raw.triangles, v)
  return {
      "shape/model/mean": (raw.front_points_mm * 1000).reshape([-1]).astype(
          np.float32),
      "shape/model/pcaBasis": rng.normal(size=[3 * v, 99]).astype(np.float32),
      "shape/model/pcaVariance": np.linspace(4e4, 100, 99).astype(np.float32),
      "shape/representer/tri": (raw.triangles + 1).astype(np.int32),
      "shape/representer/idx_lm68": raw.keypoints.astype(np.int32),
      "shape/representer/idx_sub": raw.front2.astype(np.int32),
      "shape/representer/vertex_ring_face_flat": np.concatenate(
          [sorted(s) for s in ring]).astype(np.int32),
      "shape/representer/vertex_ring_face_num": np.array(
          [len(s) for s in ring], np.int32),
      "color/model/mean": rng.uniform(30, 230, 3 * v).astype(np.float32),
      "color/model/pcaBasis": rng.normal(size=[3 * v, 99]).astype(np.float32),
      "color/model/pcaVariance": np.linspace(60, 1, 99).astype(np.float32),
      "color/model/uv": rng.uniform(size=2 * v).astype(np.float32),
      "expression/model/mean": np.zeros(3 * v, np.float32),
      "expression/model/pcaBasis": rng.normal(size=[3 * v, 79]).astype(
          np.float32),
      "expression/model/pcaVariance": np.linspace(9e3, 10, 79).astype(
          np.float32),
  }


def write_h5(path, arrays):
  with h5py.File(path, "w") as f:
    for key, value in arrays.items():
      f.create_dataset(key, data=value)
    # The real file also holds the front and full topologies MGCNet reads.
    for name in ("_fore", "_full"):
      for key in ("shape/model/mean", "shape/representer/tri"):
        group, rest = key.split("/", 1)
        f.create_dataset(f"{group}{name}/{rest}", data=arrays[key])


@pytest.fixture(name="mgcnet_h5")
def fixture_mgcnet_h5(tmp_path, raw):
  path = tmp_path / "bfm09_trim_exp_uv_presplit.h5"
  write_h5(path, mgcnet_arrays(raw))
  return str(path)


def assert_models_close(a, b, rtol=1e-5, atol=1e-4):
  for field in ("mean_shape", "id_basis", "exp_basis", "mean_albedo",
                "albedo_basis", "default_pose", "skin_mask"):
    np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=rtol,
                               atol=atol, err_msg=field)
  for field in ("triangles", "landmark_indices", "front_mask",
                "vertex_triangles"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field),
                                  err_msg=field)
  assert a.focal_length == b.focal_length and a.image_size == b.image_size


def assert_helpful(error, path, *needles):
  message = str(error.value)
  assert os.path.basename(str(path)) in message, message
  assert COMMAND in message, message
  for needle in needles:
    assert needle in message, message


# --- Exp_Pca.bin -------------------------------------------------------------
def test_read_exp_pca_bin_layout(tmp_path, raw):
  path = tmp_path / "Exp_Pca.bin"
  write_exp_pca_bin(path, raw.exp_mean, raw.exp_pc)
  assert os.path.getsize(path) == 4 + 4 * 3 * NUM_EXP * (1 + EXP_RANK)
  mean, basis = read_exp_pca_bin(str(path), NUM_EXP)
  assert mean.shape == (NUM_EXP, 3) and basis.shape == (EXP_RANK, NUM_EXP, 3)
  np.testing.assert_array_equal(mean.reshape([-1]), raw.exp_mean)
  # Component k, vertex v, axis c sits at float k * 3N + 3v + c.
  k, v, c = 5, 7, 2
  assert basis[k, v, c] == raw.exp_pc[k, 3 * v + c]


def test_read_exp_pca_bin_rejects_bad_size(tmp_path, raw):
  path = tmp_path / "Exp_Pca.bin"
  write_exp_pca_bin(path, raw.exp_mean, raw.exp_pc)
  with open(path, "ab") as f:
    f.write(b"\0\0")
  with pytest.raises(FaceModelError) as error:
    read_exp_pca_bin(str(path))
  assert_helpful(error, path, "3DFace", "size")


# --- Deep3D BFM_model_front.mat ----------------------------------------------
def test_deep3d_units_and_indices(deep3d_mat, raw):
  model = load_deep3d_bfm_front(deep3d_mat)
  ref = deep3d_front_arrays(raw)
  assert (model.num_vertices, model.num_triangles) == (NUM_FRONT, 40)
  assert (model.id_rank, model.exp_rank, model.albedo_rank) == (80, 64, 80)
  mean_mm = ref["meanshape"].reshape([-1, 3]) * 100.0
  np.testing.assert_allclose(model.mean_shape, mean_mm - mean_mm.mean(0),
                             atol=1e-3)
  # decimetres -> mm: the front face is the 120 mm wide grid.
  extent = model.mean_shape.max(0) - model.mean_shape.min(0)
  np.testing.assert_allclose(extent[:2], [120.0, 160.0], atol=1e-3)
  v, c, k = 4, 1, 9
  np.testing.assert_allclose(model.id_basis[v, c, k],
                             100.0 * ref["idBase"][3 * v + c, k], rtol=1e-5)
  np.testing.assert_allclose(model.exp_basis[v, c, k],
                             100.0 * ref["exBase"][3 * v + c, k], rtol=1e-5)
  np.testing.assert_allclose(model.mean_albedo,
                             ref["meantex"].reshape([-1, 3]) / 255.0, rtol=1e-6)
  np.testing.assert_allclose(model.albedo_basis[v, c, k],
                             ref["texBase"][3 * v + c, k] / 255.0, rtol=1e-5)
  np.testing.assert_array_equal(model.triangles, raw.triangles)
  np.testing.assert_array_equal(model.landmark_indices, raw.keypoints)
  np.testing.assert_array_equal(np.flatnonzero(model.front_mask), raw.front2)
  np.testing.assert_array_equal(model.skin_mask, raw.skin)
  np.testing.assert_allclose(model.default_pose, [0, 0, np.pi, 0, 0, 1000],
                             atol=1e-6)
  assert model.focal_length == 1015.0 and model.image_size == 224
  # vertex_triangles holds the same sets as the file's point_buf.
  pad = model.num_triangles
  point_buf = ref["point_buf"].astype(int) - 1
  for vertex in range(NUM_FRONT):
    row = model.vertex_triangles[vertex]
    expected = point_buf[vertex][point_buf[vertex] < pad]
    assert set(row[row < pad]) == set(expected)


def test_deep3d_decodes_like_deep3d(deep3d_mat, raw):
  model = load_deep3d_bfm_front(deep3d_mat)
  ref = deep3d_front_arrays(raw)
  rng = np.random.default_rng(3)
  alpha, beta, delta = rng.normal(size=80), rng.normal(size=64), rng.normal(
      size=80) * 0.1
  # Deep3D: S = idBase a + exBase b + meanshape, minus the mean shape's centroid
  # (decimetres); T = texBase d + meantex (0..255).
  mean_dm = ref["meanshape"].reshape([-1, 3])
  shape_dm = (ref["idBase"] @ alpha + ref["exBase"] @ beta).reshape(
      [-1, 3]) + mean_dm - mean_dm.mean(0)
  np.testing.assert_allclose(model.shape_np(alpha, beta), 100.0 * shape_dm,
                             rtol=1e-4, atol=1e-2)
  tex = (ref["texBase"] @ delta + ref["meantex"].reshape([-1])).reshape([-1, 3])
  np.testing.assert_allclose(model.albedo_np(delta),
                             np.clip(tex / 255.0, 0, 1), atol=1e-5)


def test_deep3d_flips_clockwise_triangles(tmp_path, raw, deep3d_mat):
  clockwise = raw.triangles[:, ::-1]
  path = tmp_path / "clockwise.mat"
  scipy.io.savemat(path, deep3d_front_arrays(raw, triangles=clockwise))
  model = load_deep3d_bfm_front(str(path))
  normals = mesh.face_normals(model.mean_shape, model.triangles)
  assert np.all(normals[:, 2] > 0)
  reference = load_deep3d_bfm_front(deep3d_mat)
  np.testing.assert_array_equal(
      np.sort(model.triangles, axis=1), np.sort(reference.triangles, axis=1))


# --- BFM 2009 conversion ---------------------------------------------------
def test_convert_bfm2009_equals_deep3d_transfer(bfm_dir, deep3d_mat):
  converted = convert_bfm2009(**bfm_paths(bfm_dir),
                              std_exp_txt=str(bfm_dir / "std_exp.txt"))
  assert_models_close(converted, load_deep3d_bfm_front(deep3d_mat))
  assert "BFM 2009" in converted.name


def test_convert_bfm2009_units_and_selection(bfm_dir, raw):
  # std_exp.txt is found next to BFM_front_idx.mat when not given.
  model = convert_bfm2009(**bfm_paths(bfm_dir))
  front, j = 11, 17
  bfm_vertex = raw.front_to_bfm[front]
  exp_vertex = raw.front_to_exp[front]
  # Mean: micrometres -> mm, then re-centred.
  mean_mm = raw.shapeMU.reshape([-1, 3])[raw.front_to_bfm] / 1000.0
  np.testing.assert_allclose(model.mean_shape, mean_mm - mean_mm.mean(0),
                             atol=1e-3)
  np.testing.assert_allclose(model.mean_shape[front] - model.mean_shape[0],
                             raw.front_points_mm[front] -
                             raw.front_points_mm[0], atol=1e-3)
  # Bases are pre-multiplied by their standard deviations.
  np.testing.assert_allclose(
      model.id_basis[front, :, j],
      raw.shapePC[3 * bfm_vertex:3 * bfm_vertex + 3, j] * raw.shapeEV[j, 0] /
      1000.0, rtol=1e-5)
  np.testing.assert_allclose(
      model.exp_basis[front, :, j],
      raw.exp_pc[j, 3 * exp_vertex:3 * exp_vertex + 3] * raw.std_exp[j] /
      1000.0, rtol=1e-5)
  np.testing.assert_allclose(
      model.albedo_basis[front, :, j],
      raw.texPC[3 * bfm_vertex:3 * bfm_vertex + 3, j] * raw.texEV[j, 0] /
      255.0, rtol=1e-5)
  np.testing.assert_allclose(
      model.mean_albedo[front],
      raw.texMU[3 * bfm_vertex:3 * bfm_vertex + 3, 0] / 255.0, rtol=1e-6)


def test_convert_bfm2009_ranks(bfm_dir):
  model = convert_bfm2009(**bfm_paths(bfm_dir), id_rank=10, exp_rank=5,
                          albedo_rank=7)
  assert (model.id_rank, model.exp_rank, model.albedo_rank) == (10, 5, 7)


# --- MGCNet h5 ---------------------------------------------------------------
def test_mgcnet_units_and_indices(mgcnet_h5, raw):
  model = load_mgcnet_h5(mgcnet_h5)
  ref = mgcnet_arrays(raw)
  assert (model.id_rank, model.exp_rank, model.albedo_rank) == (80, 64, 80)
  np.testing.assert_allclose(model.mean_shape, raw.front_points_mm, atol=1e-3)
  np.testing.assert_array_equal(model.triangles, raw.triangles)
  np.testing.assert_array_equal(model.landmark_indices, raw.keypoints)
  np.testing.assert_array_equal(np.flatnonzero(model.front_mask), raw.front2)
  np.testing.assert_array_equal(model.skin_mask, np.ones(NUM_FRONT))
  np.testing.assert_allclose(
      model.default_pose, [0, 0, np.pi, 0.17440447, 9.1053238, 4994.3359],
      rtol=1e-6)
  assert model.focal_length == 4700.0
  # MGCNet: mesh = mean + pcaBasis[:, :80] (c * sqrt(square(pcaVariance))),
  # micrometres -> mm; colour likewise / 255.
  rng = np.random.default_rng(4)
  alpha, beta, delta = rng.normal(size=80), rng.normal(size=64), rng.normal(
      size=80) * 0.01
  std = np.sqrt(np.square(ref["shape/model/pcaVariance"][:80].astype(float)))
  exp_std = np.sqrt(np.square(ref["expression/model/pcaVariance"][:64]
                              .astype(float)))
  mesh = (ref["shape/model/mean"] + ref["shape/model/pcaBasis"][:, :80] @
          (alpha * std) + ref["expression/model/pcaBasis"][:, :64] @
          (beta * exp_std)) / 1000.0
  np.testing.assert_allclose(model.shape_np(alpha, beta),
                             mesh.reshape([-1, 3]), rtol=1e-4, atol=1e-2)
  colour_std = ref["color/model/pcaVariance"][:80].astype(float)
  colour = (ref["color/model/mean"] + ref["color/model/pcaBasis"][:, :80] @
            (delta * colour_std)) / 255.0
  np.testing.assert_allclose(model.albedo_np(delta),
                             np.clip(colour.reshape([-1, 3]), 0, 1), atol=1e-5)


# --- triangle orientation ----------------------------------------------------
def test_orient_keeps_ccw_and_flips_cw():
  points, triangles = grid_mesh()
  kept, flipped = orient_triangles_to_front(points, triangles)
  assert not flipped
  np.testing.assert_array_equal(kept, triangles)
  fixed, flipped = orient_triangles_to_front(points, triangles[:, [0, 2, 1]])
  assert flipped
  np.testing.assert_array_equal(fixed, triangles)


def test_orient_votes_on_front_region_only():
  front_points, front_triangles = grid_mesh()
  # A larger "back of the head" behind the face: the same grid mirrored in x
  # (so its triangles face -z), twice, so that it outvotes the face.
  back_points = front_points * np.array([-1.0, 1.0, 1.0]) - [0, 0, 300.0]
  points = np.concatenate([front_points] + [back_points] * 2)
  triangles = np.concatenate([front_triangles, front_triangles + NUM_FRONT,
                              front_triangles + 2 * NUM_FRONT])
  normal_z = mesh.face_normals(points, triangles)[:, 2]
  assert np.count_nonzero(normal_z < 0) == 2 * np.count_nonzero(normal_z > 0)
  _, flipped_all = orient_triangles_to_front(points, triangles)
  assert flipped_all
  front = np.arange(len(points)) < NUM_FRONT
  kept, flipped_front = orient_triangles_to_front(points, triangles, front)
  assert not flipped_front
  np.testing.assert_array_equal(kept, triangles)


# --- native format and dispatch ----------------------------------------------
def test_native_round_trip(tmp_path, deep3d_mat, mgcnet_h5):
  for model in (load_deep3d_bfm_front(deep3d_mat), load_mgcnet_h5(mgcnet_h5)):
    path = str(tmp_path / "model.npz")
    model.save(path)
    again = load_face_model(path)
    assert_models_close(again, model, rtol=0, atol=0)
    assert again.name == model.name


def test_dispatch_by_extension(deep3d_mat, mgcnet_h5, tmp_path):
  assert load_face_model(deep3d_mat).focal_length == 1015.0
  assert load_face_model(mgcnet_h5).focal_length == 4700.0
  path = str(tmp_path / "x.npz")
  load_face_model(mgcnet_h5).save(path)
  assert load_face_model(path).focal_length == 4700.0
  with pytest.raises(FaceModelError) as error:
    load_face_model(str(tmp_path / "model.obj"))
  assert_helpful(error, "model.obj", "unknown face-model format")


@pytest.mark.parametrize("path", [None, ""])
def test_dispatch_empty_path_uses_the_default_ict_model(monkeypatch, path):
  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import embedded_ict
  from mgc_tf.facemodel import loaders
  sentinel = object()
  monkeypatch.setattr(embedded_ict, "embedded_ict_face_model",
                      lambda: sentinel)
  assert loaders.DEFAULT_FACE_MODEL == embedded_ict.MODEL_NAME
  assert load_face_model(path) is sentinel


def test_recorded_names_map_back_to_packaged_models():
  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import loaders
  assert loaders.packaged_name_of("embedded-synthetic-v1") == (
      "embedded-synthetic-v1")
  assert loaders.packaged_name_of(
      "embedded-ict-light-v1: ICT-FaceKit Light face+eyeballs") == (
          "embedded-ict-light-v1")
  for other in ("bfm_front", "embedded-synthetic-v10", "", None):
    assert loaders.packaged_name_of(other) is None


def test_dispatch_rejects_raw_bfm2009(bfm_dir):
  path = bfm_dir / "01_MorphableModel.mat"
  with pytest.raises(FaceModelError) as error:
    load_face_model(str(path))
  assert_helpful(error, path, "faces.dmi.unibas.ch", "convert")


# --- command line -------------------------------------------------------------
def run_command(*args):
  return subprocess.run(
      [sys.executable, "-m", "mgc_tf.convert_face_model", *args],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_command_converts_bfm2009(bfm_dir, tmp_path):
  out = tmp_path / "out" / "bfm.npz"
  paths = bfm_paths(bfm_dir)
  result = run_command(
      f"--input={paths['morphable_model_mat']}",
      f"--exp_pca={paths['exp_pca_bin']}",
      f"--front_idx={paths['front_idx_mat']}",
      f"--exp_idx={paths['exp_idx_mat']}",
      f"--info={paths['facemodel_info_mat']}",
      f"--std_exp={bfm_dir / 'std_exp.txt'}", f"--output={out}")
  assert result.returncode == 0, result.stderr
  assert "vertices:    30" in result.stdout
  assert "triangles:   40" in result.stdout
  assert "identity 80, expression 64, albedo 80" in result.stdout
  assert_models_close(FaceModel.load(str(out)), convert_bfm2009(**paths),
                      rtol=0, atol=0)


@pytest.mark.slow
def test_command_finds_companions_and_converts_h5(bfm_dir, mgcnet_h5,
                                                  tmp_path):
  out = tmp_path / "bfm.npz"
  result = run_command(f"--input={bfm_dir / '01_MorphableModel.mat'}",
                       f"--output={out}")
  assert result.returncode == 0, result.stderr
  assert FaceModel.load(str(out)).num_vertices == NUM_FRONT
  out_h5 = tmp_path / "mgc.npz"
  result = run_command(f"--input={mgcnet_h5}", f"--output={out_h5}",
                       "--exp_rank=10")
  assert result.returncode == 0, result.stderr
  assert "MGCNet" in result.stdout
  assert FaceModel.load(str(out_h5)).exp_rank == 10


@pytest.mark.slow
def test_command_reports_missing_file(tmp_path):
  missing = tmp_path / "BFM_model_front.mat"
  result = run_command(f"--input={missing}", f"--output={tmp_path / 'o.npz'}")
  assert result.returncode != 0
  assert str(missing) in result.stderr
  assert COMMAND in result.stderr
  assert "Traceback" not in result.stderr


# --- error paths -------------------------------------------------------------
def rewrite_mat(path, **changes):
  data = {k: v for k, v in scipy.io.loadmat(path).items()
          if not k.startswith("__")}
  for key, value in changes.items():
    if value is None:
      del data[key]
    else:
      data[key] = value
  scipy.io.savemat(path, data)


def test_deep3d_missing_file(tmp_path):
  path = tmp_path / "BFM_model_front.mat"
  with pytest.raises(FaceModelError) as error:
    load_deep3d_bfm_front(str(path))
  assert_helpful(error, path, "not found", "Deep3DFaceReconstruction",
                 "faces.dmi.unibas.ch")


def test_deep3d_not_a_mat_file(tmp_path):
  path = tmp_path / "BFM_model_front.mat"
  path.write_text("this is not MATLAB\n")
  with pytest.raises(FaceModelError) as error:
    load_face_model(str(path))
  assert_helpful(error, path, "not a readable MATLAB")


@pytest.mark.parametrize("change, needle", [
    ({"idBase": None}, "'idBase'"),
    ({"tri": None}, "'tri'"),
    ({"exBase": np.zeros([87, 64], np.float32)}, "'exBase' must be [3V = 90"),
    ({"meantex": np.zeros([1, 93], np.float32)}, "'meantex' must hold 3V"),
    ({"keypoints": np.ones([1, 67], np.float32)}, "68 landmark"),
    ({"tri": np.array([[0, 1, 2]], np.float32)}, "1-based"),
    ({"tri": np.array([[1, 2, NUM_FRONT + 1]], np.float32)}, "1-based"),
    ({"frontmask2_idx": np.array([[0.0]], np.float32)}, "'frontmask2_idx'"),
    ({"keypoints": np.full([1, 68], 1.5, np.float32)}, "integer"),
    ({"skinmask": np.ones([1, 5], np.float32)}, "'skinmask'"),
])
def test_deep3d_malformed(deep3d_mat, change, needle):
  rewrite_mat(deep3d_mat, **change)
  with pytest.raises(FaceModelError) as error:
    load_deep3d_bfm_front(deep3d_mat)
  assert_helpful(error, deep3d_mat, needle, "Deep3DFaceReconstruction")


@pytest.mark.parametrize("drop, replace, needle", [
    ("shape/representer/idx_lm68", None, "'shape/representer/idx_lm68'"),
    ("expression/model/pcaBasis", None, "'expression/model/pcaBasis'"),
    (None, ("shape/representer/tri", np.array([[0, 1, 2]], np.int32)),
     "1-based"),
    (None, ("shape/model/pcaBasis", np.zeros([90, 10], np.float32)),
     "10 components, 80 are needed"),
    (None, ("color/model/mean", np.zeros([89], np.float32)), "3 values"),
])
def test_mgcnet_malformed(tmp_path, raw, drop, replace, needle):
  arrays = mgcnet_arrays(raw)
  if drop:
    del arrays[drop]
  if replace:
    arrays[replace[0]] = replace[1]
  path = tmp_path / "bfm09_trim_exp_uv_presplit.h5"
  write_h5(path, arrays)
  with pytest.raises(FaceModelError) as error:
    load_mgcnet_h5(str(path))
  assert_helpful(error, path, needle, "MGCNet")


def test_mgcnet_not_hdf5(tmp_path):
  path = tmp_path / "bfm09_trim_exp_uv_presplit.h5"
  path.write_bytes(b"\x89HDF-not-really")
  with pytest.raises(FaceModelError) as error:
    load_face_model(str(path))
  assert_helpful(error, path, "not a readable HDF5", "jiaxiangshang/MGCNet")


def test_bfm2009_missing_files(bfm_dir):
  paths = bfm_paths(bfm_dir)
  os.remove(paths["exp_pca_bin"])
  with pytest.raises(FaceModelError) as error:
    convert_bfm2009(**paths)
  assert_helpful(error, "Exp_Pca.bin", "not found", "github.com/Juyong/3DFace")
  os.remove(paths["morphable_model_mat"])
  with pytest.raises(FaceModelError) as error:
    convert_bfm2009(**paths)
  assert_helpful(error, "01_MorphableModel.mat", "faces.dmi.unibas.ch")


def test_bfm2009_missing_std_exp(bfm_dir):
  os.remove(bfm_dir / "std_exp.txt")
  with pytest.raises(FaceModelError) as error:
    convert_bfm2009(**bfm_paths(bfm_dir))
  assert_helpful(error, "std_exp.txt", "Deep3DFaceReconstruction")


@pytest.mark.parametrize("name, changes, needle", [
    ("BFM_exp_idx.mat",
     {"trimIndex": np.full([NUM_EXP, 1], NUM_BFM + 1, np.uint16)}, "1-based"),
    ("BFM_front_idx.mat", {"idx": None}, "'idx'"),
    ("BFM_front_idx.mat", {"idx": np.zeros([NUM_FRONT, 1], np.float32)},
     "1-based"),
    ("facemodel_info.mat", {"keypoints": None}, "'keypoints'"),
    ("01_MorphableModel.mat",
     {"shapePC": np.zeros([3 * NUM_BFM - 3, BFM_RANK], np.float32)},
     "'shapePC' must be [3V"),
    ("01_MorphableModel.mat", {"texEV": np.ones([50, 1], np.float32)},
     "'texEV' holds 50"),
])
def test_bfm2009_malformed(bfm_dir, name, changes, needle):
  rewrite_mat(bfm_dir / name, **changes)
  with pytest.raises(FaceModelError) as error:
    convert_bfm2009(**bfm_paths(bfm_dir))
  assert_helpful(error, name, needle)


def test_bfm2009_expression_vertex_mismatch(bfm_dir, raw):
  write_exp_pca_bin(bfm_dir / "Exp_Pca.bin", raw.exp_mean[:-3],
                    raw.exp_pc[:, :-3])
  with pytest.raises(FaceModelError) as error:
    convert_bfm2009(**bfm_paths(bfm_dir))
  assert_helpful(error, "Exp_Pca.bin", f"{NUM_EXP - 1} vertices", "53215")


def test_bfm2009_std_exp_length(bfm_dir, raw):
  np.savetxt(bfm_dir / "std_exp.txt", raw.std_exp[:-1])
  with pytest.raises(FaceModelError) as error:
    convert_bfm2009(**bfm_paths(bfm_dir))
  assert_helpful(error, "std_exp.txt", "78 standard deviations")


def test_missing_bfm2009_input_is_recognised(tmp_path):
  path = tmp_path / "01_MorphableModel.mat"
  with pytest.raises(FaceModelError) as error:
    loaders.load_face_model_file(str(path))
  assert_helpful(error, path, "not found", "Basel Face Model 2009",
                 "faces.dmi.unibas.ch")
