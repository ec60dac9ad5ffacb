"""Tests of the video_folder builder on dummy_data/ (see make_dummy_data.py).

dummy_data holds alice/talk.mp4 (16 frames, landmark file with frame 3 NaN),
bob.avi (5 frames, no landmark file: dlib detects), carol/short.mp4 (2
frames: too few) and dave/broken.mp4 (random bytes: unreadable).
"""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mgc_tf.faces2d import alignment

pytest.importorskip("dlib")

from tfds_builders.video_folder import video_folder_dataset_builder as builder_lib  # pylint: disable=g-import-not-at-top

DUMMY_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "dummy_data")


class VideoFolderTest(tfds.testing.DatasetBuilderTestCase):
  """Default config: every frame, min_frames 3."""
  DATASET_CLASS = builder_lib.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["default"]
  # alice/talk, bob; carol (short) and dave (broken) skipped.
  SPLITS = {"train": 2}
  SKIP_CHECKSUMS = True


class VideoFolderStride5Test(tfds.testing.DatasetBuilderTestCase):
  """stride5: alice keeps frames 0, 5, 10, 15; bob (frame 0 only) and carol
  are too short, dave is broken."""
  DATASET_CLASS = builder_lib.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["stride5"]
  SPLITS = {"train": 1}
  SKIP_CHECKSUMS = True


def _build(tmp_path, config) -> tuple:
  """Builds dummy_data with `config`; returns (builder, examples by key)."""
  builder = builder_lib.Builder(data_dir=str(tmp_path), config=config)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=DUMMY_DATA))
  examples = {example["video_id"].decode(): example for example in
              tfds.as_numpy(builder.as_dataset(split="train"))}
  return builder, examples


@pytest.fixture(scope="module")
def default_build(tmp_path_factory):
  return _build(tmp_path_factory.mktemp("video_folder"), "default")


def test_examples_content(default_build):
  _, examples = default_build
  assert sorted(examples) == ["alice/talk", "bob"]
  alice, bob = examples["alice/talk"], examples["bob"]
  # Frame 3 of alice is NaN in its landmark file: dropped, the gap shows.
  np.testing.assert_array_equal(alice["frame_indices"],
                                [0, 1, 2] + list(range(4, 16)))
  np.testing.assert_array_equal(bob["frame_indices"], [0, 1, 2, 3, 4])
  assert alice["identity"] == b"alice" and bob["identity"] == b"bob"
  assert alice["fps"] == pytest.approx(25.0) and bob["fps"] == pytest.approx(10.0)
  for example in (alice, bob):
    count = len(example["frame_indices"])
    assert example["frames"].shape == (count, 224, 224, 3)
    assert example["frames"].dtype == np.uint8
    assert example["skin"].shape == (count, 224, 224, 1)
    assert example["landmarks"].shape == (count, 68, 2)
    # Aligned crops: eyes, nose tip and mouth corners land near the 224
    # template, and the head's per-frame motion is undone (the points stay
    # put from frame to frame).
    five = alignment.five_points_from_68(example["landmarks"])
    assert np.abs(five - alignment.TEMPLATE_5PT_224).max() < 10.0
    assert five.std(axis=0).max() < 2.0
    assert np.all((example["landmarks"] > 0) & (example["landmarks"] < 224))
    # Skin probability is high on the cheeks, low in the corners (the
    # astronaut's background and suit).
    assert example["skin"][:, 120:140, 80:100].mean() > 128
    assert example["frames"].std() > 20  # real image content, not blank


def test_skipped_videos_and_dropped_frames_are_counted(default_build):
  builder, _ = default_build
  counter = builder.skip_counters["train"]
  assert counter.kept == 2
  assert counter.counts == {"unreadable video": 1, "too few usable frames": 1}
  tally = builder.frame_tallies["train"]
  # alice 15 + bob 5 + carol 2 (kept frames of a video later skipped count).
  assert tally.kept == 22
  assert tally.dropped == {"frame without landmarks": 1}


def test_stride_max_frames_and_size(tmp_path):
  # Stride 2, at most 3 frames, min_frames 2, 112 crops: alice and bob keep
  # frames 0, 2, 4 (alice's NaN frame 3 is strided over); carol keeps only
  # frame 0 and is skipped.
  config = builder_lib.VideoFolderConfig(
      name="stride2_test", frame_stride=2, max_frames=3, min_frames=2,
      image_size=112)
  builder, examples = _build(tmp_path, config)
  assert sorted(examples) == ["alice/talk", "bob"]
  for example in examples.values():
    np.testing.assert_array_equal(example["frame_indices"], [0, 2, 4])
    assert example["frames"].shape == (3, 112, 112, 3)
    assert example["skin"].shape == (3, 112, 112, 1)
    assert np.all((example["landmarks"] > 0) & (example["landmarks"] < 112))
  assert builder.skip_counters["train"].counts == {
      "unreadable video": 1, "too few usable frames": 1}
  assert builder.frame_tallies["train"].dropped == {}


def test_no_usable_video_is_a_clear_error(tmp_path):
  (tmp_path / "videos" / "eve").mkdir(parents=True)
  (tmp_path / "videos" / "eve" / "bad.mp4").write_bytes(b"not a video")
  builder = builder_lib.Builder(data_dir=str(tmp_path / "data"),
                                config="default")
  with pytest.raises(ValueError, match="No usable video") as error:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path / "videos")))
  assert "1 x unreadable video" in str(error.value)


def test_missing_manual_dir_gives_instructions(tmp_path):
  builder = builder_lib.Builder(data_dir=str(tmp_path), config="default")
  with pytest.raises(AssertionError) as error:
    builder.download_and_prepare()
  assert "manual_dir" in str(error.value)
  assert "<identity>/<video>" in str(error.value)


def test_configs():
  configs = {config.name: config for config in builder_lib.Builder.BUILDER_CONFIGS}
  assert configs["default"].frame_stride == 1
  assert configs["stride5"].frame_stride == 5
  assert all(config.image_size == 224 and config.min_frames == 3
             for config in configs.values())
  with pytest.raises(ValueError, match="would skip every video"):
    builder_lib.VideoFolderConfig(name="bad", max_frames=2, min_frames=3)
  with pytest.raises(ValueError, match="frame_stride"):
    builder_lib.VideoFolderConfig(name="bad", frame_stride=0)
