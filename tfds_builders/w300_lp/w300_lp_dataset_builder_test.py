"""w300_lp builder: builds on dummy_data, landmark choice, flips, skips."""

import os
import shutil

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from mgc_tf.faces2d import mirror
from mgc_tf.io.bad_input import BadExampleError, SkipCounter
from tfds_builders.w300_lp import w300_lp_dataset_builder as w300

DUMMY_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "dummy_data")
ROOT = os.path.join(DUMMY_DATA, "300W_LP")


class W300LPTest(tfds.testing.DatasetBuilderTestCase):
  """AFW (3 views), IBUG (2), LFPW (2 of 3); HELEN loses a view: skipped."""
  DATASET_CLASS = w300.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["default"]
  SPLITS = {"train": 3}


class W300LPWithFlipsTest(tfds.testing.DatasetBuilderTestCase):
  """The default groups plus the mirrored AFW_Flip group."""
  DATASET_CLASS = w300.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["with_flips"]
  SPLITS = {"train": 4}


def _view(image_set, stem):
  return w300.W300View(root=ROOT, image_set=image_set, stem=stem,
                       index=int(stem.rsplit("_", 1)[1]))


def test_find_root_accepts_both_levels():
  assert w300.find_root(DUMMY_DATA) == ROOT
  assert w300.find_root(ROOT) == ROOT


def test_find_groups_by_source_photo():
  groups = w300.find_groups(ROOT, include_flips=False)
  assert [g.key for g in groups] == [
      "AFW/AFW_111_1", "HELEN/HELEN_222_1", "IBUG/IBUG_image_003_1",
      "LFPW/LFPW_image_train_0001"]
  assert [v.stem for v in groups[0].views] == [
      "AFW_111_1_0", "AFW_111_1_1", "AFW_111_1_2"]
  assert [v.index for v in groups[3].views] == [0, 1, 2]
  with_flips = w300.find_groups(ROOT, include_flips=True)
  assert [g.key for g in with_flips][-1] == "AFW_Flip/AFW_111_1"
  flipped = with_flips[-1].views[1]
  assert flipped.flipped and flipped.subset == "AFW"
  assert flipped.landmark_path == os.path.join(
      ROOT, "landmarks", "AFW", "AFW_111_1_1_pts.mat")


def test_views_sort_numerically(tmp_path):
  folder = tmp_path / "AFW"
  folder.mkdir()
  for k in (10, 2, 1, 0):
    (folder / f"AFW_5_1_{k}.jpg").write_bytes(b"")
  (folder / "AFW_5_1_0.mat").write_bytes(b"")
  (folder / "notes.jpg").write_bytes(b"")  # no _<k>: ignored
  groups = w300.find_groups(str(tmp_path), include_flips=False)
  assert [v.index for v in groups[0].views] == [0, 1, 2, 10]
  assert [g.source for g in groups] == ["AFW_5_1"]


def test_landmarks_prefer_pts_3d_and_are_zero_based():
  view = _view("AFW", "AFW_111_1_1")
  landmarks, source = w300.view_landmarks(view, image_width=128)
  pts = scipy.io.loadmat(view.landmark_path)
  assert source == "pts_3d"
  np.testing.assert_allclose(landmarks, pts["pts_3d"] - 1.0, atol=1e-4)
  # pt2d (the 2D contour annotation) differs on the jaw line.
  pt2d = w300.read_pt2d(view.mat_path)
  np.testing.assert_allclose(pt2d[:17, 0] - landmarks[:17, 0], 2.0,
                             atol=1e-4)


def test_landmarks_fall_back_to_pt2d():
  view = _view("IBUG", "IBUG_image_003_1_1")
  landmarks, source = w300.view_landmarks(view, image_width=128)
  assert source == "pt2d"
  pt2d = scipy.io.loadmat(view.mat_path)["pt2d"]
  assert pt2d.shape == (2, 68)
  np.testing.assert_allclose(landmarks, pt2d.T - 1.0, atol=1e-4)


def test_flipped_view_mirrors_the_unflipped_pts_3d():
  original, _ = w300.view_landmarks(_view("AFW", "AFW_111_1_2"), 128)
  flipped, source = w300.view_landmarks(_view("AFW_Flip", "AFW_111_1_2"), 128)
  assert source == "pts_3d"
  np.testing.assert_allclose(flipped,
                             mirror.mirror_landmarks_68(original, 128),
                             atol=1e-4)
  assert not mirror.has_mirrored_numbering(flipped)
  # Point 36 (eye corner on the image's left) sits where the flipped image
  # shows the original's point 45.
  assert flipped[36, 0] < flipped[45, 0]
  np.testing.assert_allclose(flipped[36], [127 - original[45, 0],
                                           original[45, 1]], atol=1e-4)


def test_flipped_view_without_landmark_file_renumbers_pt2d(tmp_path):
  root = tmp_path / "300W_LP"
  shutil.copytree(os.path.join(ROOT, "AFW"), root / "AFW")
  shutil.copytree(os.path.join(ROOT, "AFW_Flip"), root / "AFW_Flip")
  view = w300.W300View(root=str(root), image_set="AFW_Flip",
                       stem="AFW_111_1_1", index=1)
  landmarks, source = w300.view_landmarks(view, 128)
  assert source == "pt2d"
  assert not mirror.has_mirrored_numbering(landmarks)
  original = w300.read_pt2d(str(root / "AFW" / "AFW_111_1_1.mat"))
  np.testing.assert_allclose(landmarks,
                             mirror.mirror_landmarks_68(original, 128),
                             atol=1e-4)


def test_read_pose_para_checks(tmp_path):
  pose = w300.read_pose_para(_view("AFW", "AFW_111_1_1").mat_path)
  assert pose.shape == (7,) and pose.dtype == np.float32
  np.testing.assert_allclose(np.rad2deg(pose[1]), 25.0, atol=1e-3)
  path = str(tmp_path / "bad.mat")
  scipy.io.savemat(path, {"Pose_Para": np.zeros([1, 6])})
  with pytest.raises(BadExampleError, match="bad pose"):
    w300.read_pose_para(path)
  scipy.io.savemat(path, {"pt2d": np.zeros([2, 68])})
  with pytest.raises(BadExampleError, match="missing mat variable"):
    w300.read_pose_para(path)


def test_generate_examples_content_and_skips():
  groups = w300.find_groups(ROOT, include_flips=True)
  group_counter, view_counter = SkipCounter("groups"), SkipCounter("views")
  examples = dict(w300.generate_examples(groups, group_counter, view_counter))
  assert sorted(examples) == ["AFW/AFW_111_1", "AFW_Flip/AFW_111_1",
                              "IBUG/IBUG_image_003_1",
                              "LFPW/LFPW_image_train_0001"]
  assert group_counter.counts == {"too few views": 1}  # HELEN
  # HELEN's good view is not stored: dropped with its group.
  assert view_counter.counts == {"unreadable mat file": 1,
                                 "unreadable image": 1,
                                 "dropped with its group (too few views)": 1}
  assert view_counter.kept == sum(len(example["view_names"])
                                  for example in examples.values())

  afw = examples["AFW/AFW_111_1"]
  assert afw["identity"] == "AFW_111_1" and afw["subset"] == "AFW"
  assert afw["view_names"] == ["AFW/AFW_111_1_0", "AFW/AFW_111_1_1",
                               "AFW/AFW_111_1_2"]
  np.testing.assert_allclose(afw["yaw_degrees"], [0, 25, 45], atol=1e-3)
  assert afw["pose_para"].shape == (3, 7)
  assert afw["landmarks"].shape == (3, 68, 2)
  assert afw["landmark_sources"] == ["pts_3d"] * 3
  assert not afw["flipped"]

  flipped = examples["AFW_Flip/AFW_111_1"]
  assert flipped["flipped"] and flipped["identity"] == "AFW_111_1"
  np.testing.assert_allclose(flipped["yaw_degrees"], [0, -25, -45],
                             atol=1e-3)
  # The aligned crops of a mirrored image are mirrors of each other, so the
  # landmarks in the crops agree up to that mirror (within 1 px: the
  # template's symmetry axis is x = 111.8, not the crop's 111.5).
  np.testing.assert_allclose(
      flipped["landmarks"][1],
      mirror.mirror_landmarks_68(afw["landmarks"][1], 224), atol=1.0)

  assert examples["IBUG/IBUG_image_003_1"]["landmark_sources"] == [
      "pt2d", "pt2d"]
  lfpw = examples["LFPW/LFPW_image_train_0001"]
  assert lfpw["view_names"] == ["LFPW/LFPW_image_train_0001_0",
                                "LFPW/LFPW_image_train_0001_1"]


def test_missing_manual_dir_gives_instructions(tmp_path):
  builder = w300.Builder(data_dir=str(tmp_path / "data"))
  with pytest.raises(AssertionError, match="300W-LP.zip"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path / "missing")))


def test_manual_dir_without_images_is_an_error(tmp_path):
  (tmp_path / "manual" / "300W_LP" / "AFW").mkdir(parents=True)
  builder = w300.Builder(data_dir=str(tmp_path / "data"))
  with pytest.raises(ValueError, match="No 300W-LP images"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path / "manual")))


if __name__ == "__main__":
  tfds.testing.test_main()
