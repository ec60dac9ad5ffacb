"""Face videos on disk: finding them, decoding frames, per-video landmarks.

Frames are decoded with OpenCV (its bundled FFmpeg reads mp4, avi, mov, mkv
and webm). A file that cannot be opened or yields no frame raises
`BadExampleError("unreadable video")`, so a dataset build skips it and counts
it instead of dying.

Videos and landmark files may be local or behind a URL (`gs://...`, see
`mgc_tf.io.files`): OpenCV decodes only local files, so `VideoReader` decodes
a remote video from a temporary local copy, which it removes on `close()`.

Per-video landmark files sit beside the video and hold one row of 68 iBUG
points per frame of the video (every frame, from frame 0, whatever stride the
build samples), in the original frame's pixels (OpenCV convention: the centre
of pixel [i, j] is at (x, y) = (j, i)). A frame without a face is a row of NaN.
Two formats:

  <stem>.npy            float array [T, 68, 2] (or [T, 68, 3], z dropped,
                        or [T, 136] as x0 y0 x1 y1 ...)
  <stem>_landmarks.txt  text, "#" starts a comment; either T*68 lines of
                        "x y" (frame 0's 68 points, then frame 1's, ...) or
                        T lines of 136 numbers "x0 y0 x1 y1 ... x67 y67";
                        "nan nan" marks a frame without a face
"""

import collections
import contextlib
import dataclasses
import logging
import os
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from mgc_tf.io import files
from mgc_tf.io.bad_input import NUM_LANDMARKS, BadExampleError, TallyState

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
# Suffixes appended to the video's stem, in the order they are looked for.
LANDMARK_FILE_SUFFIXES = (".npy", "_landmarks.txt")

_LOG = logging.getLogger("mgc_tf.data")


@dataclasses.dataclass(frozen=True)
class VideoEntry:
  """One video found under a dataset root.

  Attributes:
    path: absolute path (or URL) of the video file.
    relative_path: path below the root with "/" separators (a stable key,
      the same for a local and a remote copy of the root).
    identity: the person: the first folder below the root, or the file's
      stem for a video directly in the root.
    video_id: `relative_path` without the extension.
  """
  path: str
  relative_path: str
  identity: str
  video_id: str


def find_videos(root: str) -> List[VideoEntry]:
  """Lists the video files below `root`, sorted by relative path.

  Layout: `<root>/<identity>/.../<video>` (any depth below the identity
  folder, e.g. VoxCeleb's `id10001/<youtube id>/00001.mp4`) or
  `<root>/<video>` (the identity is then the video's stem). Extensions are
  matched case-insensitively; hidden files and folders are ignored.
  `root` may be a local folder or a URL.

  Raises:
    FileNotFoundError: when `root` is not a folder.
  """
  if not files.isdir(root):
    raise FileNotFoundError(f"video folder {root!r} does not exist")
  entries = []
  for folder, subfolders, names in files.walk(root):
    subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
    for name in names:
      stem, extension = os.path.splitext(name)
      if name.startswith(".") or extension.lower() not in VIDEO_EXTENSIONS:
        continue
      path = files.join(folder, name)
      relative_path = files.relative_path(path, root)
      parts = relative_path.split("/")
      identity = parts[0] if len(parts) > 1 else stem
      entries.append(VideoEntry(
          path=path if files.is_url(path) else os.path.abspath(path),
          relative_path=relative_path, identity=identity,
          video_id=os.path.splitext(relative_path)[0]))
  return sorted(entries, key=lambda entry: entry.relative_path)


@dataclasses.dataclass(frozen=True)
class VideoProperties:
  """What the container says about a video.

  Attributes:
    fps: frames per second (0.0 when the container does not say).
    frame_count: number of frames the container reports (-1 when unknown;
      an estimate for some formats, decoding is the truth).
    width: frame width in pixels.
    height: frame height in pixels.
  """
  fps: float
  frame_count: int
  width: int
  height: int


# Reason under which a build counts `VideoReader.undecodable_frames`.
UNDECODABLE_FRAMES = "undecodable frame (damaged or truncated video)"


class VideoReader:
  """Decodes a video file frame by frame (a context manager).

  Example:
    with VideoReader("clip.mp4") as video:
      for index, frame in video.frames(frame_stride=2, max_frames=100):
        ...  # frame: uint8 RGB [H, W, 3], index: position in the video

  Raises:
    BadExampleError: "unreadable video" when the file cannot be opened.
  """

  def __init__(self, path: str):
    import cv2  # pylint: disable=g-import-not-at-top
    self._cv2 = cv2
    self.path = path
    if not files.isfile(path):
      raise BadExampleError("unreadable video", f"{path} does not exist")
    # OpenCV opens local files only: a URL's video is decoded from a local
    # copy, which close() removes.
    self._cleanup = contextlib.ExitStack()
    try:
      local_path = self._cleanup.enter_context(files.local_copy(path))
    except OSError as error:
      raise BadExampleError("unreadable video", f"{path}: {error}") from error
    self._capture = cv2.VideoCapture(local_path)
    if not self._capture.isOpened():
      self.close()
      raise BadExampleError(
          "unreadable video",
          f"{path} ({files.getsize(path)} bytes) could not be opened")
    fps = float(self._capture.get(cv2.CAP_PROP_FPS))
    count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
    self.properties = VideoProperties(
        fps=fps if np.isfinite(fps) and fps > 0 else 0.0,
        frame_count=int(count) if np.isfinite(count) and count > 0 else -1,
        width=int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    self._used = False
    # Set by frames(): sampled frames that the container announces but that
    # could not be decoded (the damaged or truncated rest of the stream).
    self.undecodable_frames = 0

  def __enter__(self) -> "VideoReader":
    return self

  def __exit__(self, *unused_exc_info) -> None:
    self.close()

  def close(self) -> None:
    """Releases the decoder and removes a remote video's local copy."""
    self._capture.release()
    self._cleanup.close()

  def frames(self, frame_stride: int = 1,
             max_frames: Optional[int] = None
             ) -> Iterator[Tuple[int, np.ndarray]]:
    """Yields (index, RGB frame) for every `frame_stride`-th frame.

    Decoding stops at the end of the stream or at the first frame that
    cannot be decoded (a truncated file keeps the frames before the damage).
    When it stops before the frame count the container announces, the
    sampled frames it could not decode (every `frame_stride`-th from the
    damaged one on) are counted in `self.undecodable_frames`, so a build
    can report them as dropped. Can be iterated once per reader.

    Args:
      frame_stride: keep frames 0, s, 2s, ... (skipped frames are grabbed,
        not converted, which is cheaper).
      max_frames: stop after yielding this many frames (None: all).

    Yields:
      (index, frame): index int, the frame's position in the video from 0;
      frame uint8 [H, W, 3] RGB.

    Raises:
      BadExampleError: "unreadable video" when not even the first frame
        decodes.
      ValueError: frame_stride < 1, max_frames < 0 or a second iteration.
    """
    if frame_stride < 1:
      raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    if max_frames is not None and max_frames < 0:
      raise ValueError(f"max_frames must be >= 0 or None, got {max_frames}")
    if self._used:
      raise ValueError("VideoReader.frames() can be iterated only once")
    self._used = True
    index = 0
    yielded = 0
    stopped_early = False
    while max_frames is None or yielded < max_frames:
      if index % frame_stride == 0:
        ok, frame_bgr = self._capture.read()
        if not ok or frame_bgr is None:
          stopped_early = True
          break
        yield index, self._cv2.cvtColor(frame_bgr, self._cv2.COLOR_BGR2RGB)
        yielded += 1
      elif not self._capture.grab():
        stopped_early = True
        break
      index += 1
    total = self.properties.frame_count
    if stopped_early and total > index:
      # Frames index..total-1 that the stride would have sampled.
      first = -(-index // frame_stride) * frame_stride
      missing = max(0, -(-(total - first) // frame_stride))
      if max_frames is not None:
        missing = min(missing, max_frames - yielded)
      self.undecodable_frames = missing
    if index == 0 and max_frames != 0:
      raise BadExampleError("unreadable video",
                            f"{self.path}: no frame could be decoded")


def find_landmark_file(video_path: str) -> Optional[str]:
  """The landmark file beside `video_path`, or None.

  Looks for `<stem>.npy`, then `<stem>_landmarks.txt` in the video's folder.
  """
  stem = os.path.splitext(video_path)[0]
  for suffix in LANDMARK_FILE_SUFFIXES:
    if files.isfile(stem + suffix):
      return stem + suffix
  return None


def _landmark_rows_from_text(path: str) -> np.ndarray:
  """Parses a text landmark track into float64 [T, 68, 2]."""
  rows = []
  with files.open_file(path, "r", encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      fields = line.split("#", 1)[0].replace(",", " ").split()
      if not fields:
        continue
      try:
        rows.append([float(field) for field in fields])
      except ValueError as error:
        raise BadExampleError(
            "bad landmark file",
            f"{path} line {line_number}: {error}") from error
  widths = {len(row) for row in rows}
  if not rows:
    raise BadExampleError("bad landmark file", f"{path} has no numbers")
  if widths == {2}:
    if len(rows) % NUM_LANDMARKS:
      raise BadExampleError(
          "bad landmark file",
          f"{path} has {len(rows)} 'x y' lines, not a multiple of "
          f"{NUM_LANDMARKS}")
    return np.asarray(rows).reshape(-1, NUM_LANDMARKS, 2)
  if widths == {2 * NUM_LANDMARKS}:
    return np.asarray(rows).reshape(-1, NUM_LANDMARKS, 2)
  raise BadExampleError(
      "bad landmark file",
      f"{path}: lines must all hold 2 numbers ('x y') or all "
      f"{2 * NUM_LANDMARKS}, found lengths {sorted(widths)}")


def _landmark_rows_from_npy(path: str) -> np.ndarray:
  """Loads a .npy landmark track into float64 [T, 68, 2]."""
  try:
    # A file object, not a path: tfds' builder tests only allow np.load on
    # open files.
    with files.open_file(path, "rb") as f:
      array = np.load(f, allow_pickle=False)
  except (OSError, ValueError, EOFError) as error:
    raise BadExampleError("bad landmark file", f"{path}: {error}") from error
  array = np.asarray(array)
  if not np.issubdtype(array.dtype, np.number):
    raise BadExampleError("bad landmark file",
                          f"{path} holds {array.dtype}, not numbers")
  if array.ndim == 2 and array.shape[1] == 2 * NUM_LANDMARKS:
    array = array.reshape(-1, NUM_LANDMARKS, 2)
  if array.ndim != 3 or array.shape[1] != NUM_LANDMARKS or array.shape[2] < 2:
    raise BadExampleError(
        "bad landmark file",
        f"{path} has shape {array.shape}, expected [T, {NUM_LANDMARKS}, 2]")
  return array[:, :, :2].astype(np.float64)


def read_video_landmarks(path: str) -> np.ndarray:
  """Reads a per-video landmark track (formats in the module docstring).

  Args:
    path: a `.npy` or `.txt` file.

  Returns:
    float32 [T, 68, 2], original frame pixels; rows of a frame without a
    face contain NaN.

  Raises:
    BadExampleError: "bad landmark file" when it cannot be read or parsed,
      has the wrong shape, or holds infinities.
  """
  if path.lower().endswith(".npy"):
    track = _landmark_rows_from_npy(path)
  else:
    try:
      track = _landmark_rows_from_text(path)
    except (OSError, UnicodeDecodeError) as error:
      raise BadExampleError("bad landmark file", f"{path}: {error}") from error
  if np.any(np.isinf(track)):
    raise BadExampleError("bad landmark file",
                          f"{path} holds infinite values (use NaN for "
                          "frames without a face)")
  return track.astype(np.float32)


def frame_landmarks(track: np.ndarray, index: int) -> np.ndarray:
  """Landmarks of frame `index` from a [T, 68, 2] track.

  Raises:
    BadExampleError: "frame without landmarks" when the track is shorter
      than the video or the frame's row holds NaN (no face in that frame).
  """
  if index >= len(track):
    raise BadExampleError(
        "frame without landmarks",
        f"frame {index} is past the landmark track's {len(track)} frames")
  landmarks = track[index]
  if not np.all(np.isfinite(landmarks)):
    raise BadExampleError("frame without landmarks",
                          f"frame {index} is marked NaN (no face)")
  return landmarks


class FrameTally:
  """Frames kept and dropped (by reason) over a build, plus a per-video log.

  Frames are too many to log one by one: a video's drops are logged once,
  as one line, and the totals at the end of the build.
  """

  def __init__(self, name: str):
    self.name = name
    self._dropped: Dict[str, int] = collections.Counter()
    self._kept = 0

  def add_video(self, video: str, kept: int,
                dropped: Dict[str, int]) -> None:
    """Adds one video's counts: `kept` frames, `dropped` {reason: count}."""
    self._kept += kept
    for reason, count in dropped.items():
      self._dropped[reason] += count
    if dropped:
      _LOG.info("%s: %s kept %d frames, dropped %s", self.name, video, kept,
                ", ".join(f"{n} x {r}" for r, n in sorted(dropped.items())))

  @property
  def kept(self) -> int:
    return self._kept

  @property
  def dropped(self) -> Dict[str, int]:
    return dict(self._dropped)

  def empty_like(self) -> "FrameTally":
    """A new, empty tally with this one's name."""
    return FrameTally(self.name)

  def state(self) -> TallyState:
    """Kept and dropped frames as plain data (no examples: frames are not
    listed one by one)."""
    return TallyState(self._kept, dict(self._dropped))

  def restore(self, state: TallyState) -> None:
    """Replaces the totals with `state`; reasons keep its order."""
    self._kept = state.kept
    self._dropped = collections.Counter()
    for reason, count in state.counts.items():
      self._dropped[reason] = count

  def summary(self) -> str:
    lines = [f"{self.name}: kept {self._kept} frames, dropped "
             f"{sum(self._dropped.values())}"]
    lines.extend(f"  {count} x {reason}" for reason, count in
                 sorted(self._dropped.items(), key=lambda kv: -kv[1]))
    return "\n".join(lines)

  def report(self) -> None:
    _LOG.info("%s", self.summary())
    # absl (used by `tfds build`) may not show the stdlib logger's records.
    print(self.summary(), flush=True)
