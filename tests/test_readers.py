"""Readers of real annotation formats: .pts, .txt, .npy, .mat, mirroring."""

import numpy as np
import pytest
import scipy.io

from mgc_tf.data import groups as groups_lib
from mgc_tf.faces2d import mirror
from mgc_tf.io import annotations
from mgc_tf.io import images
from mgc_tf.io.bad_input import BadExampleError, SkipCounter


def _points(seed=0):
  rng = np.random.default_rng(seed)
  return np.round(rng.uniform(10, 200, [68, 2]), 3)


def _write_pts(path, points, n_points=None):
  n_points = len(points) if n_points is None else n_points
  with open(path, "w") as f:
    f.write(f"version: 1\nn_points:  {n_points}\n{{\n")
    for x, y in points:
      f.write(f"{x} {y}\n")
    f.write("}\n")


def _reason(call):
  with pytest.raises(BadExampleError) as error:
    call()
  return error.value.reason


# --- .pts ------------------------------------------------------------------


def test_pts_is_one_based_by_default(tmp_path):
  points = _points()
  path = str(tmp_path / "a.pts")
  _write_pts(path, points)
  np.testing.assert_allclose(annotations.read_pts(path), points - 1, atol=1e-4)
  np.testing.assert_allclose(
      annotations.read_pts(path, one_based=False), points, atol=1e-4)
  assert annotations.read_pts(path).dtype == np.float32


@pytest.mark.parametrize("body, reason", [
    ("version: 1\nn_points: 68\n1 2\n", "unreadable landmarks"),  # no braces
    ("version: 1\nn_points: 68\n{\n1 2 3\n}\n", "unreadable landmarks"),
    ("version: 1\nn_points: 68\n{\n1 two\n}\n", "unreadable landmarks"),
])
def test_pts_malformed(tmp_path, body, reason):
  path = str(tmp_path / "bad.pts")
  with open(path, "w") as f:
    f.write(body)
  assert _reason(lambda: annotations.read_pts(path)) == reason


def test_pts_count_and_header_checks(tmp_path):
  path = str(tmp_path / "short.pts")
  _write_pts(path, _points()[:67])
  assert _reason(lambda: annotations.read_pts(path)) == "wrong landmark count"
  _write_pts(path, _points(), n_points=70)
  assert _reason(lambda: annotations.read_pts(path)) == "unreadable landmarks"
  points = _points()
  points[3, 1] = np.nan
  _write_pts(path, points)
  assert _reason(lambda: annotations.read_pts(path)) == "non-finite landmarks"
  missing = str(tmp_path / "missing.pts")
  assert _reason(lambda: annotations.read_pts(missing)) == (
      "unreadable landmarks")


# --- .txt / .npy -----------------------------------------------------------


def test_txt_reads_spaces_commas_and_comments(tmp_path):
  points = _points(1)
  path = str(tmp_path / "a.txt")
  with open(path, "w") as f:
    f.write("# x y\n\n")
    for i, (x, y) in enumerate(points):
      f.write(f"{x},{y}\n" if i % 2 else f"{x}\t{y}\n")
  np.testing.assert_allclose(annotations.read_landmarks_txt(path), points,
                             atol=1e-4)


def test_txt_bad_files(tmp_path):
  path = str(tmp_path / "a.txt")
  np.savetxt(path, _points()[:5])
  assert _reason(lambda: annotations.read_landmarks_txt(path)) == (
      "wrong landmark count")
  with open(path, "w") as f:
    f.write("a caption, not landmarks\n")
  assert _reason(lambda: annotations.read_landmarks_txt(path)) == (
      "unreadable landmarks")


def test_npy_reads_and_drops_z(tmp_path):
  points = _points(2)
  path = str(tmp_path / "a.npy")
  np.save(path, np.concatenate([points, np.ones([68, 1])], axis=1))
  np.testing.assert_allclose(annotations.read_landmarks_npy(path), points,
                             atol=1e-4)
  np.save(path, points.T)  # [2, 68] is not accepted for .npy
  assert _reason(lambda: annotations.read_landmarks_npy(path)) == (
      "wrong landmark count")
  np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
  assert _reason(lambda: annotations.read_landmarks_npy(path)) == (
      "unreadable landmarks")
  with open(path, "wb") as f:
    f.write(b"not numpy")
  assert _reason(lambda: annotations.read_landmarks_npy(path)) == (
      "unreadable landmarks")


def test_read_landmark_file_dispatches_on_extension(tmp_path):
  points = _points(3)
  _write_pts(str(tmp_path / "a.pts"), points)
  np.savetxt(str(tmp_path / "a.txt"), points)
  np.save(str(tmp_path / "a.npy"), points)
  np.testing.assert_allclose(
      annotations.read_landmark_file(str(tmp_path / "a.pts")), points - 1,
      atol=1e-4)
  np.testing.assert_allclose(
      annotations.read_landmark_file(str(tmp_path / "a.txt")), points,
      atol=1e-4)
  np.testing.assert_allclose(
      annotations.read_landmark_file(str(tmp_path / "a.npy")), points,
      atol=1e-4)
  assert _reason(lambda: annotations.read_landmark_file(
      str(tmp_path / "a.json"))) == "unreadable landmarks"


def test_find_landmark_file_priority(tmp_path):
  image = str(tmp_path / "face.JPG")
  open(image, "wb").close()
  assert annotations.find_landmark_file(image) is None
  open(str(tmp_path / "face.txt"), "w").close()
  open(str(tmp_path / "face_other.pts"), "w").close()  # another stem
  assert annotations.find_landmark_file(image) == str(tmp_path / "face.txt")
  open(str(tmp_path / "face.NPY"), "wb").close()
  assert annotations.find_landmark_file(image) == str(tmp_path / "face.NPY")
  open(str(tmp_path / "face.pts"), "w").close()
  assert annotations.find_landmark_file(image) == str(tmp_path / "face.pts")
  assert images.is_image_file(image)
  assert not images.is_image_file(str(tmp_path / "face.pts"))


# --- .mat ------------------------------------------------------------------


def test_read_mat_round_trip_and_variables(tmp_path):
  path = str(tmp_path / "a.mat")
  pt2d = _points(4).T  # [2, 68], as 300W-LP stores it
  scipy.io.savemat(path, {"pt2d": pt2d, "Pose_Para": np.arange(7.0)[None]})
  contents = annotations.read_mat(path)
  assert sorted(contents) == ["Pose_Para", "pt2d"]
  np.testing.assert_array_equal(
      annotations.mat_variable(contents, "Pose_Para", path),
      np.arange(7.0)[None])
  assert _reason(
      lambda: annotations.mat_variable(contents, "pts_3d", path)) == (
          "missing mat variable")
  np.testing.assert_allclose(
      annotations.landmarks_from_matrix(contents["pt2d"], path), pt2d.T,
      atol=1e-4)


@pytest.mark.parametrize("cut", [0, 40, 300, -100])
def test_read_mat_broken_files(tmp_path, cut):
  good = str(tmp_path / "good.mat")
  scipy.io.savemat(good, {"pt2d": _points().T})
  with open(good, "rb") as f:
    data = f.read()
  path = str(tmp_path / "broken.mat")
  with open(path, "wb") as f:
    f.write(data[:cut])
  assert _reason(lambda: annotations.read_mat(path)) == "unreadable mat file"


def test_read_mat_text_missing_and_v73(tmp_path):
  path = str(tmp_path / "text.mat")
  with open(path, "w") as f:
    f.write("this is not a MATLAB file\n" * 10)
  assert _reason(lambda: annotations.read_mat(path)) == "unreadable mat file"
  assert _reason(lambda: annotations.read_mat(str(tmp_path / "none.mat"))) == (
      "unreadable mat file")
  # A v7.3 header: 116 bytes of text, 8 of subsystem offset, version 0x0200.
  header = b"MATLAB 7.3 MAT-file".ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM"
  v73 = str(tmp_path / "v73.mat")
  with open(v73, "wb") as f:
    f.write(header + b"\0" * 512)
  with pytest.raises(BadExampleError, match="v7.3"):
    annotations.read_mat(v73)


def test_landmarks_from_matrix_orientations():
  points = _points(5)
  for matrix in (points, points.T,
                 np.concatenate([points, np.ones([68, 1])], 1),
                 np.concatenate([points, np.ones([68, 1])], 1).T):
    np.testing.assert_allclose(annotations.landmarks_from_matrix(matrix),
                               points, atol=1e-4)
  np.testing.assert_allclose(
      annotations.landmarks_from_matrix(points.T, one_based=True), points - 1,
      atol=1e-4)
  assert _reason(lambda: annotations.landmarks_from_matrix(points[:60])) == (
      "wrong landmark count")


# --- mirroring -------------------------------------------------------------


def test_mirror_permutation_is_an_involution_on_pairs():
  order = mirror.MIRROR_68
  assert sorted(order) == list(range(68))
  np.testing.assert_array_equal(order[order], np.arange(68))
  # Known pairs: jaw ends, outer eye corners, mouth corners; fixed points.
  for a, b in [(0, 16), (36, 45), (39, 42), (48, 54), (31, 35), (17, 26)]:
    assert order[a] == b and order[b] == a
  for fixed in (8, 27, 30, 33, 51, 57, 62, 66):
    assert order[fixed] == fixed


def _upright_face():
  """68 points of an upright frontal face in a 100-pixel-wide image."""
  points = np.zeros([68, 2])
  points[0:17, 0] = np.linspace(20, 80, 17)
  points[0:17, 1] = 50 + 30 * np.sin(np.linspace(0, np.pi, 17))  # jaw, 8 low
  points[17:27] = [[25 + 5 * i, 30] for i in range(5)] + [
      [55 + 5 * i, 30] for i in range(5)]
  points[27:36] = [[50, 35 + 3 * i] for i in range(4)] + [
      [44 + 3 * i, 48] for i in range(5)]
  points[36:42] = [[30, 40], [33, 38], [37, 38], [40, 40], [37, 42], [33, 42]]
  points[42:48] = [[60, 40], [63, 38], [67, 38], [70, 40], [67, 42], [63, 42]]
  points[48:68] = np.stack([50 + 10 * np.cos(np.linspace(np.pi, -np.pi, 20)),
                            65 + 4 * np.sin(np.linspace(np.pi, -np.pi, 20))],
                           -1)
  points[48] = [38, 65]
  points[54] = [62, 65]
  return points


def test_mirror_landmarks_follow_the_flipped_image():
  import cv2  # pylint: disable=g-import-not-at-top
  points = _upright_face()
  width = 100
  image = np.zeros([100, width], np.uint8)
  left_corner = points[36].astype(int)
  image[left_corner[1], left_corner[0]] = 255
  flipped = cv2.flip(image, 1)
  mirrored = mirror.mirror_landmarks_68(points, width)
  # Old point 36 is new point 45, at the pixel the flip moved it to.
  row, col = np.argwhere(flipped == 255)[0]
  np.testing.assert_allclose(mirrored[45], [col, row])
  # Renumbered: 36 is again on the image's left, the face reads as upright.
  assert mirrored[36, 0] < mirrored[45, 0]
  assert not mirror.has_mirrored_numbering(points)
  assert not mirror.has_mirrored_numbering(mirrored)
  flipped_without_renumbering = points.copy()
  flipped_without_renumbering[:, 0] = width - 1 - points[:, 0]
  assert mirror.has_mirrored_numbering(flipped_without_renumbering)
  np.testing.assert_allclose(
      mirror.mirror_landmarks_68(mirrored, width), points, atol=1e-4)


# --- preprocess_views ------------------------------------------------------


def test_preprocess_views_drops_and_counts_bad_views(tmp_path):
  from mgc_tf.faces2d import alignment  # pylint: disable=g-import-not-at-top
  image = np.full([160, 160, 3], 128, np.uint8)
  # Landmarks of the 224 template face shrunk into the image: valid input.
  points = _upright_face() * 1.6

  def load(view):
    if view == "broken":
      raise BadExampleError("unreadable image", "broken.jpg")
    if view == "short":
      return groups_lib.LoadedView(image, points[:30])
    return groups_lib.LoadedView(image, points, {"name": view})

  counter = SkipCounter("views")
  kept = groups_lib.preprocess_views(["a", "broken", "short", "b"], load,
                                     counter, name_of=lambda v: f"group/{v}",
                                     image_size=64)
  assert [v.view for v in kept] == ["a", "b"]
  assert [v.info for v in kept] == [{"name": "a"}, {"name": "b"}]
  assert not any(v.landmarks_detected for v in kept)
  assert counter.counts == {"unreadable image": 1,
                            "wrong landmark count": 1}
  assert counter.kept == 2
  face = kept[0].face
  assert face.image.shape == (64, 64, 3) and face.image.dtype == np.uint8
  assert face.skin.shape == (64, 64, 1)
  # The crop comes from the given landmarks: the 5-point fit to the template.
  expected = alignment.similarity_transform(
      alignment.five_points_from_68(points), alignment.template_points(64))
  np.testing.assert_allclose(face.transform, expected, atol=1e-6)
  np.testing.assert_allclose(
      face.landmarks, alignment.transform_points(expected, points), atol=1e-3)
