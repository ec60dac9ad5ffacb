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
  # The report equals what is stored: alice 15 + bob 5; carol's 2 good
  # frames are not stored (her video is skipped) and count as dropped.
  assert tally.kept == 15 + 5
  assert tally.dropped == {"frame without landmarks": 1,
                           builder_lib.SKIPPED_VIDEO_FRAMES: 2}
  assert "kept 20 frames, dropped 3" in tally.summary()


def _damage_second_half(source: str, target: str, num_frames: int) -> None:
  """Re-encodes `source` as MJPG AVI and zeroes the second half of its
  frame data: OpenCV announces num_frames and decodes only the first ones."""
  import cv2  # pylint: disable=g-import-not-at-top
  capture = cv2.VideoCapture(source)
  frames = [capture.read()[1] for _ in range(num_frames)]
  capture.release()
  height, width = frames[0].shape[:2]
  writer = cv2.VideoWriter(target, cv2.VideoWriter_fourcc(*"MJPG"), 25.0,
                           (width, height))
  for frame in frames:
    writer.write(frame)
  writer.release()
  with open(target, "rb") as f:
    data = bytearray(f.read())
  start, end = data.find(b"movi") + 4, data.find(b"idx1")
  assert 0 < start < end
  middle = start + (end - start) // 2
  data[middle:end] = bytes(end - middle)
  with open(target, "wb") as f:
    f.write(bytes(data))


def test_damaged_video_reports_the_frames_it_lost(tmp_path):
  # alice's 10 first frames (frame 3 has NaN landmarks), the second half of
  # the file damaged: the report must equal what is stored.
  manual = tmp_path / "videos" / "alice"
  manual.mkdir(parents=True)
  _damage_second_half(os.path.join(DUMMY_DATA, "alice", "talk.mp4"),
                      str(manual / "talk.avi"), 10)
  with open(os.path.join(DUMMY_DATA, "alice", "talk_landmarks.txt")) as f:
    (manual / "talk_landmarks.txt").write_text(f.read())
  builder = builder_lib.Builder(data_dir=str(tmp_path / "data"),
                                config="default")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(tmp_path / "videos")))
  example, = tfds.as_numpy(builder.as_dataset(split="train"))
  stored = len(example["frame_indices"])
  assert 3 <= stored < 9
  tally = builder.frame_tallies["train"]
  assert tally.kept == stored
  dropped = tally.dropped
  assert dropped.pop("frame without landmarks") == 1
  assert dropped == {builder_lib.UNDECODABLE_FRAMES: 10 - 1 - stored}
  assert f"kept {stored} frames, dropped {10 - stored}" in tally.summary()


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
  # carol's one good frame is not stored: dropped with her video.
  assert builder.frame_tallies["train"].dropped == {
      builder_lib.SKIPPED_VIDEO_FRAMES: 1}
  assert builder.frame_tallies["train"].kept == 6


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
