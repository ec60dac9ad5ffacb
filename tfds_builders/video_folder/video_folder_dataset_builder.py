"""video_folder: face videos from a folder, aligned frame by frame.

Each video becomes one example: its usable frames aligned to the 224 crop
template (5-point similarity from 68 landmarks), per-frame landmarks in crop
pixels, skin maps, the frames' original indices, the frame rate and the
person's identity. Landmarks come from a file beside the video when there is
one, otherwise dlib detects them in every frame. The folder may be local or a
URL (gs://...); a remote video is decoded from a temporary local copy.
Docs: docs/datasets/video_folder.md.
"""

import collections
import dataclasses
import functools
from typing import Any, Dict, Iterator, Mapping, Tuple

import numpy as np
import tensorflow_datasets as tfds

from mgc_tf.data import beam_build
from mgc_tf.data import features as features_lib
from mgc_tf.data.manual_dir import ManualDirBuild
from mgc_tf.io import video_io
from mgc_tf.io.bad_input import BadExampleError, SkipCounter, skip_bad

FRAME_INDICES_KEY = "frame_indices"
FPS_KEY = "fps"
VIDEO_ID_KEY = "video_id"

# Frame-tally reasons of the build report (besides the preprocessing ones).
UNDECODABLE_FRAMES = video_io.UNDECODABLE_FRAMES
SKIPPED_VIDEO_FRAMES = "good frame of a video skipped for too few frames"

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put your face videos (mp4, avi, mov, mkv or webm) in a folder and pass it as
--manual_dir (default: <data_dir>/downloads/manual/). Layout:

  <manual_dir>/<identity>/<video>            one folder per person (videos
  <manual_dir>/<identity>/<any>/<video>      may sit deeper, e.g. VoxCeleb's
                                             id10001/1zcIwhmdeo4/00001.mp4)
  <manual_dir>/<video>                       identity = the video's file stem

Optional landmarks beside a video (otherwise dlib detects them per frame,
which needs `pip install "mgc-tf[preprocess]"`):

  <stem>.npy             float [T, 68, 2], iBUG-68 points of every frame
                         (frame 0 first) in original frame pixels, NaN rows
                         for frames without a face
  <stem>_landmarks.txt   the same as text: T*68 lines "x y" (or T lines of
                         136 numbers), "nan nan" for frames without a face

Public face-video sets that fit this layout once downloaded (after accepting
their licences): VoxCeleb1/2 (https://www.robots.ox.ac.uk/~vgg/data/voxceleb/),
300-VW (https://ibug.doc.ic.ac.uk/resources/300-VW/; convert its per-frame
.pts files into one <stem>.npy per video).
"""


@dataclasses.dataclass
class VideoFolderConfig(tfds.core.BuilderConfig):
  """How frames are sampled and stored.

  Attributes:
    image_size: side S of the aligned square crops, pixels.
    frame_stride: keep every frame_stride-th frame of the video (0, s, 2s...).
    max_frames: stop a video once this many usable frames are stored
      (bounds the example size: ~40 KB per stored frame at S = 224).
    min_frames: a video with fewer usable frames is skipped.
  """
  image_size: int = 224
  frame_stride: int = 1
  max_frames: int = 300
  min_frames: int = 3

  def __post_init__(self):
    if self.image_size < 1 or self.frame_stride < 1 or self.min_frames < 1:
      raise ValueError(
          f"config {self.name!r}: image_size, frame_stride and min_frames "
          f"must be >= 1; Received: {self.image_size}, {self.frame_stride}, "
          f"{self.min_frames}")
    if self.max_frames < self.min_frames:
      raise ValueError(
          f"config {self.name!r}: max_frames ({self.max_frames}) < "
          f"min_frames ({self.min_frames}) would skip every video")


class Builder(ManualDirBuild, beam_build.BeamBuild,
              tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for a folder of face videos (manual download).

  Runs on Beam when the build is given Beam pipeline options (one video per
  unit of work), else as a plain generator.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      VideoFolderConfig(
          name="default",
          description="224 crops, every frame, at most 300 frames a video."),
      VideoFolderConfig(
          name="stride5", frame_stride=5,
          description="224 crops, every 5th frame (for 25-30 fps video: "
                      "more head motion between stored frames, 1/5 of the "
                      "storage), at most 300 frames a video."),
  ]
  DEFAULT_CONFIG_NAME = "default"

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    # Per split: videos kept/skipped, frames kept/dropped (read by the tests
    # and reported in the build log).
    self.skip_counters: Dict[str, SkipCounter] = {}
    self.frame_tallies: Dict[str, video_io.FrameTally] = {}

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    return self.dataset_info_from_configs(
        description=__doc__,
        features=features_lib.video_features(size, extra={
            # Position of each stored frame in the original video (gaps where
            # frames were dropped or strided over).
            FRAME_INDICES_KEY: tfds.features.Tensor(
                shape=(None,), dtype=np.int32,
                doc="[T] int32: per stored frame, its 0-based index in the "
                    "original video (gaps where frames were dropped or "
                    "strided over)."),
            # Frames per second of the original video (0 when unknown).
            FPS_KEY: tfds.features.Scalar(
                dtype=np.float32,
                doc="Frames per second of the original video, float32 "
                    "(0 when unknown)."),
            # Path below manual_dir without the extension.
            VIDEO_ID_KEY: tfds.features.Text(
                doc="The video's path below manual_dir, without the "
                    "extension."),
        }),
        supervised_keys=None,
        # Your own videos: no dataset paper; cite the method whose video
        # training data this builder prepares.
        homepage=features_lib.MGCNET_HOMEPAGE,
        citation=features_lib.MGCNET_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    split = "train"
    root = str(dl_manager.manual_dir)
    entries = video_io.find_videos(root)
    name = f"video_folder/{self.builder_config.name} {split}"
    counter = SkipCounter(name, unit="videos")
    tally = video_io.FrameTally(f"{name} frames")
    self.skip_counters[split] = counter
    self.frame_tallies[split] = tally
    self._searched = (root, len(entries))
    return {split: self._generate_examples(
        split, entries,
        functools.partial(process_video, config=self.builder_config),
        {"videos": counter, "frames": tally})}

  def _check_reports(self, split, tallies) -> None:
    if not tallies["videos"].kept:
      root, found = self._searched
      # TFDS would only say "No examples were yielded".
      raise ValueError(
          f"No usable video in {root} for config "
          f"{self.builder_config.name!r} ({found} video files found; "
          f"looked for {', '.join(video_io.VIDEO_EXTENSIONS)}):\n"
          f"{tallies['videos'].summary()}")


def process_video(entry: video_io.VideoEntry,
                  tallies: Mapping[str, Any],
                  config: VideoFolderConfig) -> Iterator[Tuple[str, dict]]:
  """One unit of a build: the video's example, unless it is skipped.

  Args:
    entry: the video.
    tallies: {"videos": SkipCounter, "frames": video_io.FrameTally}.
    config: the builder config (frame sampling, crop size).
  """
  yield from skip_bad([entry],
                      lambda e: video_example(e, tallies["frames"], config),
                      tallies["videos"], key_of=lambda e: e.relative_path)


def video_example(entry: video_io.VideoEntry, tally: video_io.FrameTally,
                  config: VideoFolderConfig) -> Tuple[str, dict]:
  """Decodes, aligns and stacks one video's usable frames.

  Raises:
    BadExampleError: unreadable video, bad landmark file, or fewer than
      min_frames usable frames.
  """
  # Imported here so that reading a prepared dataset does not need the
  # preprocessing dependencies.
  from mgc_tf.faces2d import preprocessing  # pylint: disable=g-import-not-at-top
  landmark_file = video_io.find_landmark_file(entry.path)
  track = (video_io.read_video_landmarks(landmark_file)
           if landmark_file else None)
  frames, landmarks, skins, indices = [], [], [], []
  dropped = collections.Counter()
  with video_io.VideoReader(entry.path) as video:
    fps = video.properties.fps
    for index, frame in video.frames(frame_stride=config.frame_stride):
      try:
        known = (None if track is None
                 else video_io.frame_landmarks(track, index))
        face = preprocessing.preprocess_face(
            frame, landmarks=known, image_size=config.image_size)
      except BadExampleError as error:
        dropped[error.reason] += 1
        continue
      frames.append(face.image)
      landmarks.append(face.landmarks)
      skins.append(features_lib.skin_to_uint8(face.skin))
      indices.append(index)
      if len(frames) >= config.max_frames:
        break
  if video.undecodable_frames:
    dropped[UNDECODABLE_FRAMES] += video.undecodable_frames
  if len(frames) < config.min_frames:
    detail = (f"{len(frames)} usable frames, min_frames is "
              f"{config.min_frames} (dropped: {dict(dropped) or 'none'})")
    # The tally counts what is stored: this video's good frames are not.
    if frames:
      dropped[SKIPPED_VIDEO_FRAMES] += len(frames)
    tally.add_video(entry.relative_path, 0, dropped)
    raise BadExampleError("too few usable frames", detail)
  tally.add_video(entry.relative_path, len(frames), dropped)
  return entry.relative_path, {
      features_lib.FRAMES_KEY: np.stack(frames),
      features_lib.LANDMARKS_KEY: np.stack(landmarks).astype(np.float32),
      features_lib.SKIN_KEY: np.stack(skins),
      features_lib.IDENTITY_KEY: entry.identity,
      FRAME_INDICES_KEY: np.asarray(indices, np.int32),
      FPS_KEY: np.float32(fps),
      VIDEO_ID_KEY: entry.video_id,
  }
