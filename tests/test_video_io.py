"""Tests of mgc_tf.io.video_io: finding videos, decoding, landmark tracks."""

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from mgc_tf.io import video_io  # pylint: disable=g-import-not-at-top
from mgc_tf.io.bad_input import BadExampleError  # pylint: disable=g-import-not-at-top


def write_numbered_video(path: str, num_frames: int, fps: float = 12.0,
                         codec: str = "mp4v", size=(48, 32)) -> None:
  """Frame i is a flat grey of level 20 * i + 10 (decodable after lossy
  compression), width x height = size."""
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codec), fps, size)
  assert writer.isOpened(), f"OpenCV cannot write {codec} to {path}"
  for i in range(num_frames):
    writer.write(np.full((size[1], size[0], 3), 20 * i + 10, np.uint8))
  writer.release()


def frame_level(frame: np.ndarray) -> int:
  """Recovers i from frame i of write_numbered_video."""
  return int(round((float(frame.mean()) - 10.0) / 20.0))


@pytest.mark.parametrize("name,codec", [("clip.mp4", "mp4v"),
                                        ("clip.avi", "MJPG")])
def test_reader_decodes_every_frame_with_properties(tmp_path, name, codec):
  path = str(tmp_path / name)
  write_numbered_video(path, 7, fps=12.0, codec=codec)
  with video_io.VideoReader(path) as video:
    assert video.properties.fps == pytest.approx(12.0)
    assert video.properties.frame_count == 7
    assert (video.properties.width, video.properties.height) == (48, 32)
    decoded = list(video.frames())
  assert [index for index, _ in decoded] == list(range(7))
  for index, frame in decoded:
    assert frame.shape == (32, 48, 3) and frame.dtype == np.uint8
    assert frame_level(frame) == index


def test_reader_stride_and_max_frames(tmp_path):
  path = str(tmp_path / "clip.mp4")
  write_numbered_video(path, 10)
  with video_io.VideoReader(path) as video:
    decoded = list(video.frames(frame_stride=3))
  assert [index for index, _ in decoded] == [0, 3, 6, 9]
  assert [frame_level(frame) for _, frame in decoded] == [0, 3, 6, 9]
  with video_io.VideoReader(path) as video:
    assert [i for i, _ in video.frames(frame_stride=2, max_frames=3)] == [0, 2, 4]


def test_reader_rejects_bad_arguments_and_second_pass(tmp_path):
  path = str(tmp_path / "clip.mp4")
  write_numbered_video(path, 3)
  with video_io.VideoReader(path) as video:
    with pytest.raises(ValueError, match="frame_stride"):
      next(video.frames(frame_stride=0))
  with video_io.VideoReader(path) as video:
    list(video.frames())
    with pytest.raises(ValueError, match="only once"):
      list(video.frames())


def test_reader_rgb_channel_order(tmp_path):
  path = str(tmp_path / "red.avi")
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (32, 32))
  red_bgr = np.zeros((32, 32, 3), np.uint8)
  red_bgr[..., 2] = 220  # OpenCV writes BGR: channel 2 is red.
  writer.write(red_bgr)
  writer.release()
  with video_io.VideoReader(path) as video:
    (_, frame), = list(video.frames())
  assert frame[..., 0].mean() > 180 and frame[..., 2].mean() < 40


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 50])
def test_unreadable_video_is_a_bad_example(tmp_path, content):
  path = tmp_path / "broken.mp4"
  path.write_bytes(content)
  with pytest.raises(BadExampleError) as error:
    with video_io.VideoReader(str(path)) as video:
      list(video.frames())
  assert error.value.reason == "unreadable video"


def test_video_that_opens_but_decodes_nothing(tmp_path):
  # A valid container whose compressed frames were wiped: OpenCV opens it,
  # then no frame decodes.
  path = str(tmp_path / "wiped.mp4")
  write_numbered_video(path, 5)
  data = bytearray((tmp_path / "wiped.mp4").read_bytes())
  start, end = data.find(b"mdat") + 4, data.find(b"moov") - 4
  assert 0 < start < end
  data[start:end] = bytes(end - start)
  (tmp_path / "wiped.mp4").write_bytes(bytes(data))
  with video_io.VideoReader(path) as video:
    with pytest.raises(BadExampleError, match="no frame could be decoded"):
      list(video.frames())


def test_missing_video_is_a_bad_example(tmp_path):
  with pytest.raises(BadExampleError, match="unreadable video"):
    video_io.VideoReader(str(tmp_path / "nothing.mp4"))


def test_find_videos_identity_from_folder_or_stem(tmp_path):
  for relative in ["alice/a1.mp4", "alice/yt123/00001.MKV", "bob/b.avi",
                   "solo.webm", "notes.txt", "alice/a1.npy", ".hidden.mp4",
                   ".cache/x.mp4"]:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
  entries = video_io.find_videos(str(tmp_path))
  summary = [(e.relative_path, e.identity, e.video_id) for e in entries]
  assert summary == [
      ("alice/a1.mp4", "alice", "alice/a1"),
      ("alice/yt123/00001.MKV", "alice", "alice/yt123/00001"),
      ("bob/b.avi", "bob", "bob/b"),
      ("solo.webm", "solo", "solo"),
  ]
  assert entries[0].path == str(tmp_path / "alice" / "a1.mp4")


def test_find_videos_missing_root(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    video_io.find_videos(str(tmp_path / "absent"))


def _track(num_frames: int, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return rng.uniform(0, 200, [num_frames, 68, 2]).astype(np.float32)


def test_find_landmark_file_prefers_npy(tmp_path):
  video = tmp_path / "clip.mp4"
  video.write_bytes(b"x")
  assert video_io.find_landmark_file(str(video)) is None
  (tmp_path / "clip_landmarks.txt").write_text("1 2\n")
  assert video_io.find_landmark_file(str(video)) == str(
      tmp_path / "clip_landmarks.txt")
  np.save(tmp_path / "clip.npy", _track(1))
  assert video_io.find_landmark_file(str(video)) == str(tmp_path / "clip.npy")


def test_read_npy_track_shapes(tmp_path):
  track = _track(3)
  track[1] = np.nan
  np.save(tmp_path / "a.npy", track)
  np.save(tmp_path / "b.npy", np.concatenate(
      [track, np.ones([3, 68, 1], np.float32)], axis=2))
  np.save(tmp_path / "c.npy", track.reshape(3, 136))
  for name in ["a.npy", "b.npy", "c.npy"]:
    read = video_io.read_video_landmarks(str(tmp_path / name))
    assert read.shape == (3, 68, 2) and read.dtype == np.float32
    np.testing.assert_array_equal(read, track)


def test_read_text_track_both_layouts(tmp_path):
  track = _track(2).astype(np.float64).round(3)
  track[1] = np.nan
  point_lines = "# frame-major, 68 'x y' lines per frame\n" + "".join(
      f"{x} {y}\n" for x, y in track.reshape(-1, 2))
  (tmp_path / "points.txt").write_text(point_lines)
  frame_lines = "".join(
      " ".join(str(v) for v in frame.reshape(-1)) + "\n" for frame in track)
  (tmp_path / "frames.txt").write_text(frame_lines)
  for name in ["points.txt", "frames.txt"]:
    read = video_io.read_video_landmarks(str(tmp_path / name))
    assert read.shape == (2, 68, 2)
    np.testing.assert_allclose(read, track, rtol=1e-6)
    assert np.isnan(read[1]).all() and np.isfinite(read[0]).all()


@pytest.mark.parametrize("name,content", [
    ("odd.txt", "1 2\n" * 67),
    ("mixed.txt", "1 2\n" * 68 + "1 2 3\n"),
    ("words.txt", "x y\n"),
    ("empty.txt", "# nothing\n"),
    ("inf.txt", "1 2\n" * 67 + "inf 2\n"),
])
def test_bad_text_track(tmp_path, name, content):
  (tmp_path / name).write_text(content)
  with pytest.raises(BadExampleError) as error:
    video_io.read_video_landmarks(str(tmp_path / name))
  assert error.value.reason == "bad landmark file"


def test_bad_npy_track(tmp_path):
  np.save(tmp_path / "shape.npy", np.zeros([4, 5, 2]))
  (tmp_path / "junk.npy").write_bytes(b"not numpy")
  np.save(tmp_path / "text.npy", np.array(["a", "b"]))
  for name in ["shape.npy", "junk.npy", "text.npy"]:
    with pytest.raises(BadExampleError, match="bad landmark file"):
      video_io.read_video_landmarks(str(tmp_path / name))


def test_frame_landmarks_nan_and_past_the_end():
  track = _track(3)
  track[1, 5] = np.nan  # One NaN point marks the whole frame faceless.
  np.testing.assert_array_equal(video_io.frame_landmarks(track, 2), track[2])
  for index in (1, 3):
    with pytest.raises(BadExampleError) as error:
      video_io.frame_landmarks(track, index)
    assert error.value.reason == "frame without landmarks"


def test_frame_tally_sums_videos():
  tally = video_io.FrameTally("test frames")
  tally.add_video("a.mp4", 5, {"no face found": 2})
  tally.add_video("b.mp4", 3, {"no face found": 1, "frame without landmarks": 4})
  tally.add_video("c.mp4", 7, {})
  assert tally.kept == 15
  assert tally.dropped == {"no face found": 3, "frame without landmarks": 4}
  assert "kept 15 frames, dropped 7" in tally.summary()


@pytest.mark.parametrize("stride,expected", [(1, 5), (2, 2), (3, 2)])
def test_damaged_rest_of_a_video_is_counted(tmp_path, stride, expected):
  # 10 MJPG frames, the second half of the frame data zeroed: 5 decode, and
  # the sampled frames announced after them are counted as undecodable.
  path = str(tmp_path / "damaged.avi")
  write_numbered_video(path, 10, codec="MJPG")
  data = bytearray((tmp_path / "damaged.avi").read_bytes())
  start, end = data.find(b"movi") + 4, data.find(b"idx1")
  middle = start + (end - start) // 2
  data[middle:end] = bytes(end - middle)
  (tmp_path / "damaged.avi").write_bytes(bytes(data))
  with video_io.VideoReader(path) as video:
    indices = [index for index, _ in video.frames(frame_stride=stride)]
    assert video.properties.frame_count == 10
  assert indices == list(range(0, 5, stride))
  # The sampled indices among 5..9 (stride 3: 6 and 9).
  assert video.undecodable_frames == expected
  # An intact video loses nothing.
  write_numbered_video(path, 10, codec="MJPG")
  with video_io.VideoReader(path) as video:
    assert len(list(video.frames())) == 10
  assert video.undecodable_frames == 0
