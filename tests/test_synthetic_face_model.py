"""Tests of the embedded synthetic face model (mgc_tf.facemodel.synthetic)."""

import dataclasses
import time

import numpy as np
import pytest
from scipy import spatial

from mgc_tf.facemodel import mesh
from mgc_tf.facemodel import synthetic
from mgc_tf.facemodel.face_model import FaceModel

# iBUG-68 (image-left, image-right) mirror pairs, and the landmarks on the
# mid-line.
MIRROR_PAIRS = ([(i, 16 - i) for i in range(8)] +
                [(17 + i, 26 - i) for i in range(5)] +
                [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42),
                 (40, 47), (41, 46), (48, 54), (49, 53), (50, 52), (59, 55),
                 (58, 56), (60, 64), (61, 63), (67, 65)])
MID_LINE = [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]


@pytest.fixture(scope="module")
def model():
  return synthetic.embedded_face_model()


@pytest.fixture(scope="module")
def lm(model):
  """[68, 3] landmark positions of the mean shape, mm."""
  return model.mean_shape[model.landmark_indices].astype(np.float64)


def _nearest_vertex(model, xy):
  """Id of the vertex nearest to (x, y) among those facing +z."""
  points = model.mean_shape.astype(np.float64)
  d2 = np.sum((points[:, :2] - np.asarray(xy)[:2])**2, -1)
  return int(np.argmin(np.where(_vertex_normals(model)[:, 2] > 0, d2, np.inf)))


def _vertex_normals(model):
  return mesh.vertex_normals(model.mean_shape, model.triangles)


def _mirror_index(model):
  """[V] id of the vertex at each vertex's mirror image, and the distance."""
  points = model.mean_shape.astype(np.float64)
  distance, index = spatial.cKDTree(points).query(points * [-1.0, 1.0, 1.0])
  return index, distance


def _roughness(field, edges):
  """Mean squared difference across mesh edges relative to the field's power.

  About (edge length / correlation length)^2 for a smooth field and 2 for
  white noise.
  """
  diff = field[edges[:, 0]] - field[edges[:, 1]]
  power = 0.5 * (field[edges[:, 0]]**2 + field[edges[:, 1]]**2)
  return np.sum(diff**2) / np.sum(power)


# --- identity of the model ---------------------------------------------------
def test_cached_and_read_only(model):
  assert synthetic.embedded_face_model() is model
  assert model.name == "embedded-synthetic-v1"
  assert not model.mean_shape.flags.writeable
  with pytest.raises(ValueError):
    model.id_basis[0, 0, 0] = 1.0


def test_generation_is_deterministic_and_fast(model):
  synthetic.embedded_face_model.cache_clear()
  start = time.perf_counter()
  fresh = synthetic.embedded_face_model()
  seconds = time.perf_counter() - start
  assert fresh is not model
  for field in dataclasses.fields(FaceModel):
    a, b = getattr(model, field.name), getattr(fresh, field.name)
    if isinstance(a, np.ndarray):
      assert a.dtype == b.dtype and np.array_equal(a, b), field.name
    else:
      assert a == b, field.name
  # About a second on one core; generous for loaded CI machines.
  assert seconds < 15.0


def test_sizes_ranks_and_camera(model):
  model.validate()
  assert model.num_vertices >= 5000
  assert (model.id_rank, model.exp_rank, model.albedo_rank) == (80, 64, 80)
  assert model.id_basis.dtype == np.float32
  assert model.landmark_indices.shape == (68,)
  assert len(set(model.landmark_indices.tolist())) == 68
  # Every vertex belongs to the mesh.
  assert np.array_equal(np.unique(model.triangles),
                        np.arange(model.num_vertices))
  assert model.front_mask.all()
  assert model.focal_length == 1015.0 and model.image_size == 224
  rz, ry, rx, tx, ty, tz = model.default_pose.astype(np.float64)
  assert (rz, ry, tx) == (0.0, 0.0, 0.0)
  assert rx == pytest.approx(np.pi, abs=1e-6)
  assert 900.0 < tz < 1300.0 and abs(ty) < 50.0


def test_save_load_round_trip(model, tmp_path):
  path = str(tmp_path / "synthetic.npz")
  model.save(path)
  loaded = FaceModel.load(path)
  assert loaded.name == model.name
  for field in ("mean_shape", "id_basis", "exp_basis", "albedo_basis",
                "triangles", "landmark_indices", "default_pose"):
    np.testing.assert_array_equal(getattr(loaded, field), getattr(model, field))


# --- mesh --------------------------------------------------------------------
def test_mesh_is_a_consistently_oriented_manifold(model):
  f = model.triangles.astype(np.int64)
  directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
  codes = directed[:, 0] * model.num_vertices + directed[:, 1]
  # A directed edge used twice means two neighbours disagree on orientation.
  assert np.unique(codes).size == codes.size
  undirected = np.sort(directed, axis=1)
  _, counts = np.unique(
      undirected[:, 0] * model.num_vertices + undirected[:, 1],
      return_counts=True)
  assert counts.max() == 2


def test_front_triangles_face_the_viewer(model, lm):
  normals = mesh.face_normals(model.mean_shape, model.triangles)
  centroids = model.mean_shape[model.triangles].mean(1)
  front = ((np.abs(centroids[:, 0]) < 45.0) &
           (centroids[:, 1] > lm[8, 1] + 15.0) &
           (centroids[:, 1] < lm[19, 1] + 20.0))
  assert front.sum() > 5000
  assert np.mean(normals[front, 2] > 0) > 0.95
  assert _vertex_normals(model)[model.landmark_indices[30], 2] > 0.9


def test_mean_shape_is_mirror_symmetric(model):
  _, distance = _mirror_index(model)
  assert distance.max() < 1e-3


def test_mean_albedo_and_skin_mask_are_mirror_symmetric(model):
  index, _ = _mirror_index(model)
  np.testing.assert_allclose(model.mean_albedo[index], model.mean_albedo,
                             atol=1e-4)
  np.testing.assert_allclose(model.skin_mask[index], model.skin_mask, atol=1e-4)


def test_human_scale(model, lm):
  points = model.mean_shape.astype(np.float64)
  eye_y = lm[36:48, 1].mean()
  cheeks = points[np.abs(points[:, 1] - (eye_y - 20.0)) < 10.0]
  assert 140.0 < np.ptp(cheeks[:, 0]) < 160.0
  assert 190.0 < np.ptp(points[:, 1]) < 230.0
  # Nose protrusion: tip in front of the subnasale.
  assert 18.0 < lm[30, 2] - lm[33, 2] < 32.0
  eye_distance = lm[42:48].mean(0)[0] - lm[36:42].mean(0)[0]
  assert 55.0 < eye_distance < 70.0
  assert 40.0 < lm[54, 0] - lm[48, 0] < 60.0     # mouth width


# --- landmarks ---------------------------------------------------------------
def test_jaw_contour_goes_down_to_the_chin_and_back_up(lm):
  jaw = lm[:17]
  assert np.all(np.diff(jaw[:9, 1]) < 0) and np.all(np.diff(jaw[8:, 1]) > 0)
  assert np.all(np.diff(np.abs(jaw[:9, 0])) < 0)
  assert np.all(np.diff(np.abs(jaw[8:, 0])) > 0)
  assert np.argmin(lm[:, 1]) == 8
  assert jaw[0, 0] < -50.0 and jaw[16, 0] > 50.0


def test_landmarks_mirror_their_twins(lm):
  for left, right in MIRROR_PAIRS:
    assert lm[left, 0] < 0.0 < lm[right, 0], (left, right)
    np.testing.assert_allclose(lm[left] * [-1.0, 1.0, 1.0], lm[right],
                               atol=1e-3, err_msg=str((left, right)))
  np.testing.assert_allclose(lm[MID_LINE, 0], 0.0, atol=1e-3)


def test_landmarks_are_stacked_like_a_face(lm):
  brows, eyes = lm[17:27, 1].mean(), lm[36:48, 1].mean()
  mouth = lm[48:68, 1].mean()
  assert brows > eyes > lm[30, 1] > lm[33, 1] > mouth > lm[8, 1]
  assert lm[17:27, 1].min() > lm[36:48, 1].max()
  # Nose bridge from the top down to the tip; nostril base left to right.
  assert np.all(np.diff(lm[27:31, 1]) < 0)
  assert np.all(np.diff(lm[31:36, 0]) > 0)
  # Eyes: outer corner 36 left of inner corner 39; upper lid above lower.
  assert lm[36, 0] < lm[37, 0] < lm[38, 0] < lm[39, 0]
  assert lm[42, 0] < lm[43, 0] < lm[44, 0] < lm[45, 0]
  assert min(lm[37, 1], lm[38, 1]) > max(lm[40, 1], lm[41, 1])
  assert min(lm[43, 1], lm[44, 1]) > max(lm[46, 1], lm[47, 1])
  # Brows: outer to inner on the left, inner to outer on the right.
  assert np.all(np.diff(lm[17:22, 0]) > 0) and np.all(np.diff(lm[22:27, 0]) > 0)
  # Lips: the outer contour starts at the left corner and goes over the
  # upper lip; the inner contour sits between the outer upper and lower.
  assert np.all(np.diff(lm[48:55, 0]) > 0) and np.all(np.diff(lm[54:60, 0]) < 0)
  assert np.all(np.diff(lm[60:65, 0]) > 0) and np.all(np.diff(lm[64:68, 0]) < 0)
  for upper, inner_upper, inner_lower, lower in ((50, 61, 67, 58),
                                                 (51, 62, 66, 57),
                                                 (52, 63, 65, 56)):
    assert lm[upper, 1] > lm[inner_upper, 1] > lm[inner_lower, 1] > lm[lower, 1]


def test_nose_tip_is_the_vertex_nearest_the_camera(model):
  pose = model.default_pose.astype(np.float64)
  # R = Rx(pi): X_c = (x, -y, -z) + t.
  camera_z = -model.mean_shape[:, 2].astype(np.float64) + pose[5]
  assert np.argmin(camera_z) == model.landmark_indices[30]


def test_default_pose_puts_the_face_on_the_alignment_template(model, lm):
  pose = model.default_pose.astype(np.float64)
  camera = lm * [1.0, -1.0, -1.0] + pose[3:]
  pixels = model.focal_length * camera[:, :2] / camera[:, 2:] + 112.0
  five = np.stack([pixels[36:42].mean(0), pixels[42:48].mean(0), pixels[30],
                   pixels[48], pixels[54]])
  np.testing.assert_allclose(five, synthetic.ALIGNMENT_TEMPLATE_224, atol=5.0)
  assert pixels.min() > 0.0 and pixels.max() < 224.0
  assert pixels[16, 0] - pixels[0, 0] > 0.5 * 224      # fills most of the crop


# --- bases -------------------------------------------------------------------
def test_bases_are_orthogonal_and_decay(model):
  for basis in (model.id_basis, model.exp_basis):
    gram = np.einsum("vck,vcj->kj", basis.astype(np.float64),
                     basis.astype(np.float64))
    scale = np.sqrt(np.diag(gram))
    np.testing.assert_allclose(gram / np.outer(scale, scale),
                               np.eye(gram.shape[0]), atol=1e-3)
  id_peak = np.linalg.norm(model.id_basis, axis=1).max(0)
  exp_peak = np.linalg.norm(model.exp_basis, axis=1).max(0)
  albedo_peak = np.abs(model.albedo_basis).max(axis=(0, 1))
  assert 2.0 < id_peak[0] < 8.0 and 2.0 < exp_peak[0] < 10.0   # mm
  assert id_peak[:10].mean() > 3.0 * id_peak[-10:].mean()
  assert exp_peak[:10].mean() > 3.0 * exp_peak[-10:].mean()
  assert np.all((albedo_peak > 0.005) & (albedo_peak < 0.1))
  assert albedo_peak[:10].mean() > 2.0 * albedo_peak[-10:].mean()


def test_identity_components_are_smooth(model):
  f = model.triangles.astype(np.int64)
  edges = np.unique(np.sort(np.concatenate(
      [f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1), axis=0)
  roughness = [_roughness(model.id_basis[:, :, k].astype(np.float64), edges)
               for k in range(model.id_rank)]
  assert max(roughness) < 0.15
  # The measure does tell smooth from rough fields.
  noise = np.random.RandomState(0).normal(size=[model.num_vertices, 3])
  assert _roughness(noise, edges) > 1.0


def test_expression_components_are_localised(model, lm):
  points = model.mean_shape.astype(np.float64)
  x, y = points[:, 0], points[:, 1]
  brow_y = lm[17:27, 1].mean()
  mouth = (np.abs(x) < 60.0) & (y < lm[33, 1] + 5.0)
  eyes_and_brows = np.zeros_like(mouth)
  for centre in (lm[36:42].mean(0), lm[42:48].mean(0)):
    eyes_and_brows |= ((np.abs(x - centre[0]) < 30.0) &
                       (y > centre[1] - 18.0) & (y < brow_y + 16.0))
  inside = mouth | eyes_and_brows
  energy = np.sum(model.exp_basis.astype(np.float64)**2, axis=1)   # [V, K]
  assert np.all(energy[inside].sum(0) > 0.8 * energy.sum(0))
  # The top of the forehead and the sides of the head do not move.
  motion = np.linalg.norm(model.exp_basis, axis=1)
  still = (y > brow_y + 40.0) | (np.abs(x) > 68.0)
  assert np.all(motion[still].max(0) < 0.02 * motion.max(0))


def test_shape_components_do_not_fold_the_mesh_at_two_std(model):
  mean = model.mean_shape.astype(np.float64)
  reference = mesh.face_normals(mean, model.triangles)
  for basis in (model.id_basis, model.exp_basis):
    for k in range(basis.shape[-1]):
      for sign in (-2.0, 2.0):
        normals = mesh.face_normals(mean + sign * basis[:, :, k],
                                    model.triangles)
        flipped = np.sum(np.sum(normals * reference, -1) <= 0.0)
        assert flipped == 0, (k, sign)


# --- colour ------------------------------------------------------------------
def test_mean_albedo_has_skin_lips_brows_and_eyes(model, lm):
  albedo = model.mean_albedo.astype(np.float64)
  assert albedo.min() >= 0.0 and albedo.max() <= 1.0
  eye_l = lm[36:42].mean(0)
  cheek = albedo[_nearest_vertex(model, eye_l - [0.0, 35.0, 0.0])]
  forehead = albedo[_nearest_vertex(model, [0.0, lm[19, 1] + 30.0])]
  upper_lip = albedo[_nearest_vertex(model, 0.5 * (lm[51] + lm[62]))]
  lower_lip = albedo[_nearest_vertex(model, 0.5 * (lm[57] + lm[66]))]
  pupil = albedo[_nearest_vertex(model, eye_l)]
  sclera = albedo[_nearest_vertex(model, eye_l - [9.0, 0.0, 0.0])]
  brow = albedo[model.landmark_indices[19]]
  for skin in (cheek, forehead):
    assert skin[0] > skin[1] > skin[2] and 0.5 < skin[0] < 0.95
  for lip in (upper_lip, lower_lip):   # redder and darker than skin
    assert lip[0] / lip[1] > 1.2 * cheek[0] / cheek[1]
    assert lip.sum() < cheek.sum()
  assert sclera.min() > 0.75 and pupil.max() < 0.15
  assert brow.sum() < 0.8 * forehead.sum()


def test_skin_mask_excludes_eyes_brows_and_lips(model, lm):
  mask = model.skin_mask
  assert mask.min() >= 0.0 and mask.max() <= 1.0
  eye_l = lm[36:42].mean(0)
  for point in (eye_l, lm[42:48].mean(0), 0.5 * (lm[51] + lm[62]),
                0.5 * (lm[57] + lm[66]), lm[19], lm[24]):
    assert mask[_nearest_vertex(model, point)] < 0.05, point
  for point in (eye_l - [0.0, 35.0, 0.0], [0.0, lm[19, 1] + 30.0],
                [0.0, lm[8, 1] + 12.0]):
    assert mask[_nearest_vertex(model, point)] > 0.95, point


def test_albedo_samples_stay_in_range(model):
  rng = np.random.RandomState(0)
  mean = model.mean_albedo.astype(np.float64)
  for _ in range(10):
    sample = mean + model.albedo_basis @ rng.normal(size=model.albedo_rank)
    assert np.mean((sample < 0.0) | (sample > 1.0)) < 0.01
