"""multipie builder: builds on dummy_data, camera windows, detection, skips."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mgc_tf.data import groups as groups_lib
from mgc_tf.faces2d import alignment
from mgc_tf.io.bad_input import SkipCounter
from tfds_builders.multipie import multipie_dataset_builder as mp

DUMMY_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "dummy_data")
DATA = os.path.join(DUMMY_DATA, "Multi-Pie", "data")


class MultiPieTest(tfds.testing.DatasetBuilderTestCase):
  """Illumination 07: four windows of subject 001; subject 002 has none."""
  DATASET_CLASS = mp.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["default"]
  SPLITS = {"train": 4}


class MultiPieAllIlluminationsTest(tfds.testing.DatasetBuilderTestCase):
  """Adds the two windows of illumination 00."""
  DATASET_CLASS = mp.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["all_illuminations"]
  SPLITS = {"train": 6}


def _windows(config_name="default"):
  config = mp.Builder.builder_configs[config_name]
  cameras = mp.select_cameras(config.max_abs_yaw_degrees)
  captures = mp.find_captures(DATA, [c for c, _ in cameras],
                              config.illuminations)
  return mp.make_windows(captures, cameras, config.views_per_group,
                         config.window_stride)


def test_camera_list_is_in_yaw_order():
  yaws = [yaw for _, yaw in mp.CAMERA_YAWS]
  assert yaws == sorted(yaws) and len(yaws) == 13
  assert dict(mp.CAMERA_YAWS)["05_1"] == 0.0
  assert not set(mp.ELEVATED_CAMERAS) & {c for c, _ in mp.CAMERA_YAWS}
  assert [c for c, _ in mp.select_cameras(60)] == [
      "09_0", "08_0", "13_0", "14_0", "05_1", "05_0", "04_1", "19_0", "20_0"]
  assert len(mp.select_cameras(90)) == 13
  assert mp.camera_from_file_code("051") == "05_1"


def test_camera_windows():
  assert [list(r) for r in mp.camera_windows(5, 3, 1)] == [
      [0, 1, 2], [1, 2, 3], [2, 3, 4]]
  assert [list(r) for r in mp.camera_windows(9, 3, 3)] == [
      [0, 1, 2], [3, 4, 5], [6, 7, 8]]
  assert [list(r) for r in mp.camera_windows(2, 3, 1)] == [[0, 1]]
  assert mp.camera_windows(0, 3, 1) == []
  with pytest.raises(ValueError):
    mp.camera_windows(5, 1, 1)
  with pytest.raises(ValueError):
    mp.camera_windows(5, 3, 0)


def test_find_root_accepts_three_levels():
  for manual_dir in (DUMMY_DATA, os.path.join(DUMMY_DATA, "Multi-Pie"), DATA):
    assert mp.find_root(manual_dir) == DATA


def test_find_captures_parses_the_layout():
  cameras = [c for c, _ in mp.select_cameras(90)]
  captures = mp.find_captures(DATA, cameras, illuminations=None)
  assert [c.name for c in captures] == ["001_01_01_00", "001_01_01_07",
                                        "002_02_01_07"]
  first = captures[mp.Capture("001", "01", "01", "07")]
  assert sorted(first) == ["04_1", "05_0", "05_1", "11_0", "13_0", "14_0"]
  assert first["05_1"].endswith(
      "session01/multiview/001/01/05_1/001_01_01_051_07.png")
  only_07 = mp.find_captures(DATA, cameras, illuminations=("07",))
  assert [c.illumination for c in only_07] == ["07", "07"]


def test_default_windows():
  # Cameras within +/-60 degrees, windows of 3, stride 1; a window is a group
  # when at least 2 of its cameras have files.
  assert [(w.key, [v.camera for v in w.views]) for w in _windows()] == [
      ("001_01_01_07#08_0", ["13_0", "14_0"]),
      ("001_01_01_07#13_0", ["13_0", "14_0", "05_1"]),
      ("001_01_01_07#14_0", ["14_0", "05_1", "05_0"]),
      ("001_01_01_07#05_1", ["05_1", "05_0", "04_1"]),
      ("001_01_01_07#05_0", ["05_0", "04_1"]),
      ("002_02_01_07#14_0", ["05_1", "05_0"]),
      ("002_02_01_07#05_1", ["05_1", "05_0"]),
  ]
  yaws = [v.yaw_degrees for v in _windows()[1].views]
  assert yaws == [-30.0, -15.0, 0.0]
  # Stride 3 and all cameras: 11_0 (-90) joins, windows do not overlap.
  config = mp.Builder.builder_configs["all_cameras"]
  cameras = mp.select_cameras(config.max_abs_yaw_degrees)
  captures = mp.find_captures(DATA, [c for c, _ in cameras], ("07",))
  wide = mp.make_windows(captures, cameras, 3, 3)
  assert [(w.key, [v.camera for v in w.views]) for w in wide] == [
      ("001_01_01_07#08_0", ["13_0", "14_0"]),
      ("001_01_01_07#05_1", ["05_1", "05_0", "04_1"]),
      ("002_02_01_07#05_1", ["05_1", "05_0"]),
  ]


def test_generate_examples_windows_skips_and_detection():
  group_counter, view_counter = SkipCounter("groups"), SkipCounter("views")
  examples = dict(mp.generate_examples(_windows(), group_counter,
                                       view_counter))
  assert sorted(examples) == ["001_01_01_07#05_1", "001_01_01_07#08_0",
                              "001_01_01_07#13_0", "001_01_01_07#14_0"]
  # 05_0 is not a PNG; 002's 05_1 is a grey frame. Each is counted once even
  # though it sits in several windows.
  # 002's 05_0 is good but in no stored window: dropped with its groups.
  assert view_counter.counts == {"unreadable image": 1, "no face found": 1,
                                 groups_lib.DROPPED_WITH_GROUP: 1}
  assert view_counter.kept == 4  # 13_0 14_0 05_1 04_1 of 001: all stored
  assert view_counter.kept == len({name for example in examples.values()
                                   for name in example["view_names"]})
  # 001's last window keeps 04_1 only; 002's two windows keep 05_0 only.
  assert group_counter.counts == {"too few views": 3}

  window = examples["001_01_01_07#13_0"]
  assert window["cameras"] == ["13_0", "14_0", "05_1"]
  assert window["view_names"] == ["001_01_01_130_07", "001_01_01_140_07",
                                  "001_01_01_051_07"]
  np.testing.assert_array_equal(window["yaw_degrees"], [-30, -15, 0])
  np.testing.assert_array_equal(window["landmarks_detected"],
                                [True, False, True])
  assert window["identity"] == "001"
  assert (window["session"], window["recording"],
          window["illumination"]) == (1, 1, 7)
  assert window["landmarks"].shape == (3, 68, 2)
  # Detected and file landmarks all put the eyes on the template.
  template_eyes = alignment.template_points(224)[:2]
  for view_landmarks in window["landmarks"]:
    np.testing.assert_allclose(
        alignment.five_points_from_68(view_landmarks)[:2], template_eyes,
        atol=8.0)
  after_broken = examples["001_01_01_07#05_1"]
  assert after_broken["cameras"] == ["05_1", "04_1"]


def test_missing_manual_dir_gives_instructions(tmp_path):
  builder = mp.Builder(data_dir=str(tmp_path / "data"))
  with pytest.raises(AssertionError, match="Carnegie Mellon"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path / "missing")))


def test_manual_dir_without_images_is_an_error(tmp_path):
  (tmp_path / "manual" / "session01" / "multiview").mkdir(parents=True)
  builder = mp.Builder(data_dir=str(tmp_path / "data"))
  with pytest.raises(ValueError, match="No Multi-PIE camera windows"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path / "manual")))


if __name__ == "__main__":
  tfds.testing.test_main()
