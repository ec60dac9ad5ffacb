"""micc_florence: MICC Florence videos and 3D scans for evaluation (manual).

MICC Florence (Bagdanov, Del Bimbo and Masi, "The Florence 2D/3D Hybrid Face
Dataset", J-HGBU 2011) holds 53 subjects, each with 3D scans (3dMD, in mm,
as .obj and VRML .wrl) and three videos: Indoor-Cooperative (HD, controlled),
PTZ-Indoor and PTZ-Outdoor (surveillance cameras). MGCNet, like Genova et al.
2018 and Deep3DFaceReconstruction, evaluates 3D reconstruction on it: the
shapes predicted for the frames of one video are averaged, the scan is cropped
to 95 mm around the nose tip, aligned by ICP and compared by point-to-plane
RMSE, per setting. Images rendered from the scans (20 poses per subject in
the MGCNet paper) are the other protocol; put them in Rendered/<name>/.

One example per (subject, video) or (subject, rendered image set): the sampled
frames aligned to the 224 crop template with dlib's 68 landmarks, skin maps,
the frames' indices, and the subject's scan mesh. Docs:
docs/datasets/micc_florence.md.
"""

import collections
import dataclasses
import logging
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from mgc_tf.data import features as features_lib
from mgc_tf.data.manual_dir import ManualDirBuild
from mgc_tf.io import images as image_files
from mgc_tf.io import scans
from mgc_tf.io import video_io
from mgc_tf.io.bad_input import (BadExampleError, SkipCounter,
                                 generate_with_skips, read_image_rgb)

HOMEPAGE = ("https://www.micc.unifi.it/resources/datasets/"
            "florence-3d-faces/")
SETTINGS = ("Indoor-Cooperative", "PTZ-Indoor", "PTZ-Outdoor")
RENDERED_PREFIX = "rendered/"
SUBJECT_PREFIX = "subject_"
# The MICC videos are Motion-JPEG streams (.mjpg/.mjpeg) or MPEG (.mpg);
# OpenCV's FFmpeg backend decodes all of these.
VIDEO_EXTENSIONS = (".mjpg", ".mjpeg", ".mpg", ".mpeg", ".avi", ".mp4",
                    ".mov", ".mkv", ".wmv")

FRAME_INDICES_KEY = "frame_indices"
SUBJECT_KEY = "subject"
SETTING_KEY = "setting"
SOURCE_KEY = "source"
SCAN_VERTICES_KEY = "scan_vertices"
SCAN_FACES_KEY = "scan_faces"
SCAN_NAME_KEY = "scan_name"

_LOG = logging.getLogger("mgc_tf.data")

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
MICC Florence cannot be downloaded automatically: request it from
{HOMEPAGE} (Media Integration and Communication Center, University of
Florence), extract it and pass the folder that holds the subject_XX folders
as --manual_dir (default: <data_dir>/downloads/manual/; the subject folders
may also sit one folder deeper, e.g. <manual_dir>/florence/subject_01).
Layout, per subject:

  subject_01/Model/frontal1/obj/<scan>.obj     ground-truth scan (mm); the
  subject_01/Model/frontal1/vrml/<scan>.wrl    same scan as VRML 2.0
  subject_01/Model/frontal2/..., sidel/..., sider/...   further scans
  subject_01/Video/Indoor-Cooperative.mjpg     one video per setting (also
  subject_01/Video/PTZ-Indoor.mjpg             .mjpeg/.mpg/.avi/.mp4; or a
  subject_01/Video/PTZ-Outdoor.mjpg            folder per setting holding
                                               the video files)

Optional images rendered from the scans (the rendered-image protocol):

  subject_01/Rendered/<set name>/<image>.png|jpg   one example per folder

Landmarks are detected with dlib: pip install "mgc-tf[preprocess]".
"""


@dataclasses.dataclass(frozen=True)
class Source:
  """The frames of one example: a video file or a folder of rendered images.

  Attributes:
    subject: subject folder name, e.g. "subject_01".
    setting: "Indoor-Cooperative", "PTZ-Indoor", "PTZ-Outdoor" (or the
      video's path below Video/ for another name), or "rendered/<set name>".
    path: the video file or the image folder.
    relative_path: `path` below the subject folder, "/"-separated.
    is_video: True for a video file, False for an image folder.
  """
  subject: str
  setting: str
  path: epath.Path
  relative_path: str
  is_video: bool

  @property
  def key(self) -> str:
    return f"{self.subject}/{self.relative_path}"


def _normalised(name: str) -> str:
  return name.lower().replace("_", "-").replace(" ", "-")


def setting_of_video(relative_to_video_folder: Sequence[str]) -> str:
  """The MICC setting of a video from its path parts below Video/.

  ("Indoor-Cooperative.mjpg",) -> "Indoor-Cooperative";
  ("PTZ-Outdoor", "part1.avi") -> "PTZ-Outdoor" (matched case-, "_"- and
  " "-insensitively); an unknown name -> the path without its extension.
  """
  parts = list(relative_to_video_folder)
  parts[-1] = epath.Path(parts[-1]).stem
  known = {_normalised(setting): setting for setting in SETTINGS}
  for part in parts:
    if _normalised(part) in known:
      return known[_normalised(part)]
  return "/".join(parts)


def _is_file_with(path: epath.Path, extensions: Sequence[str]) -> bool:
  return (not path.name.startswith(".") and path.suffix.lower() in extensions
          and path.is_file())


def _sorted_files(folder: epath.Path,
                  extensions: Sequence[str]) -> List[epath.Path]:
  return sorted((path for path in folder.iterdir()
                 if _is_file_with(path, extensions)),
                key=lambda path: path.name)


def _files_below(folder: epath.Path) -> Iterator[epath.Path]:
  """Every file below `folder` (any depth), hidden entries left out."""
  for path in sorted(folder.iterdir(), key=lambda p: p.name):
    if path.name.startswith("."):
      continue
    if path.is_dir():
      yield from _files_below(path)
    else:
      yield path


def find_subject_folders(manual_dir: epath.Path) -> List[epath.Path]:
  """The subject_XX folders in `manual_dir` or one folder below it, sorted.

  Raises:
    FileNotFoundError: none found, with the download instructions.
  """
  for parent in [manual_dir] + sorted(
      (child for child in manual_dir.iterdir() if child.is_dir()),
      key=lambda child: child.name):
    subjects = sorted(
        (child for child in parent.iterdir()
         if child.is_dir() and child.name.lower().startswith(SUBJECT_PREFIX)),
        key=lambda child: child.name)
    if subjects:
      return subjects
  raise FileNotFoundError(
      f"No {SUBJECT_PREFIX}XX folders found in {manual_dir} or the folders "
      f"inside it.\n{_MANUAL_DOWNLOAD_INSTRUCTIONS}")


def find_sources(subject_folder: epath.Path) -> List[Source]:
  """The videos (below Video/, any depth) and rendered image sets of a subject.

  Returns:
    Sources sorted by relative path (videos, then rendered sets).
  """
  subject = subject_folder.name
  sources = []
  video_folder = subject_folder / "Video"
  if video_folder.is_dir():
    for path in _files_below(video_folder):
      if not _is_file_with(path, VIDEO_EXTENSIONS):
        continue
      parts = path.relative_to(video_folder).parts
      sources.append(Source(
          subject=subject, setting=setting_of_video(parts), path=path,
          relative_path="/".join(("Video",) + parts), is_video=True))
  rendered_folder = subject_folder / "Rendered"
  if rendered_folder.is_dir():
    for folder in sorted(rendered_folder.iterdir(), key=lambda p: p.name):
      if folder.is_dir() and _sorted_files(folder,
                                           image_files.IMAGE_EXTENSIONS):
        sources.append(Source(
            subject=subject, setting=RENDERED_PREFIX + folder.name,
            path=folder, relative_path=f"Rendered/{folder.name}",
            is_video=False))
  return sources


def find_scan_files(subject_folder: epath.Path,
                    scan_preference: Sequence[str]) -> List[epath.Path]:
  """Candidate scan files of a subject, most preferred first.

  For each scan folder name in `scan_preference` (e.g. "frontal1"): the .obj
  files in Model/<name>/obj/, the .wrl files in Model/<name>/vrml/, then scan
  files directly in Model/<name>/.
  """
  model_folder = subject_folder / "Model"
  candidates = []
  for name in scan_preference:
    scan_folder = model_folder / name
    for folder, extensions in ((scan_folder / "obj", (".obj",)),
                               (scan_folder / "vrml", scans.VRML_EXTENSIONS),
                               (scan_folder, scans.SCAN_EXTENSIONS)):
      if folder.is_dir():
        candidates.extend(
            path for path in sorted(folder.iterdir(), key=lambda p: p.name)
            if not path.name.startswith(".") and path.is_file()
            and path.name.lower().endswith(tuple(extensions)))
  return candidates


def read_subject_scan(subject_folder: epath.Path,
                      scan_preference: Sequence[str]
                      ) -> Tuple[str, scans.ScanMesh]:
  """The first readable scan of a subject in order of preference.

  A broken file is logged and the next candidate tried (the .wrl holds the
  same scan as the .obj beside it).

  Returns:
    (scan name: the path below Model/, the mesh in mm).

  Raises:
    BadExampleError: "no scan" when there is no candidate file, otherwise
      the first candidate's error ("unreadable scan") when none is readable.
  """
  candidates = find_scan_files(subject_folder, scan_preference)
  if not candidates:
    raise BadExampleError(
        "no scan", f"{subject_folder.name}: no .obj/.wrl scan under "
        f"Model/{{{','.join(scan_preference)}}}")
  first_error = None
  for path in candidates:
    try:
      mesh = scans.read_scan(str(path))
    except BadExampleError as error:
      _LOG.warning("micc_florence: %s: %s; trying the next scan file",
                   subject_folder.name, error)
      first_error = first_error or error
      continue
    return path.relative_to(subject_folder / "Model").as_posix(), mesh
  raise first_error


@dataclasses.dataclass
class MiccFlorenceConfig(tfds.core.BuilderConfig):
  """How frames are sampled and which scan is the ground truth.

  Attributes:
    image_size: side S of the aligned square crops, pixels.
    frame_stride: sample frames 0, s, 2s, ... of a video (or of the sorted
      images of a rendered set).
    max_frames: stop an example once this many usable frames are stored
      (None: all).
    scan_preference: scan folders below Model/ in order of preference; the
      first readable scan is the subject's ground truth.
    detector_upsample: dlib upsampling (each step finds faces half as large,
      at 4x the time); None picks it per image from the image size.
  """
  image_size: int = 224
  frame_stride: int = 5
  max_frames: Optional[int] = 100
  scan_preference: Tuple[str, ...] = ("frontal1", "frontal2")
  detector_upsample: Optional[int] = None


class Builder(ManualDirBuild, tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for MICC Florence (manual download, `test` split only)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      MiccFlorenceConfig(
          name="default",
          description="224 crops of every 5th frame, at most 100 frames per "
                      "video; frontal1 scan (frontal2 if frontal1 is "
                      "missing or unreadable)."),
      MiccFlorenceConfig(
          name="all_frames", frame_stride=1, max_frames=None,
          description="224 crops of every frame; frontal1 scan (frontal2 if "
                      "frontal1 is missing or unreadable)."),
  ]
  DEFAULT_CONFIG_NAME = "default"

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    # Per split: subjects and examples kept/skipped by reason, frames
    # kept/dropped (read by the tests, reported at the end of the build).
    self.subject_counters: Dict[str, SkipCounter] = {}
    self.skip_counters: Dict[str, SkipCounter] = {}
    self.frame_tallies: Dict[str, video_io.FrameTally] = {}
    self._landmarker = None

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=features_lib.video_features(
            self.builder_config.image_size, extra={
                # Position of each stored frame in the video (or in the
                # sorted images of a rendered set).
                FRAME_INDICES_KEY: tfds.features.Tensor(
                    shape=(None,), dtype=np.int32,
                    doc="[T] int32: per stored frame, its 0-based position "
                        "in the video (or in the sorted images of a rendered "
                        "set)."),
                SUBJECT_KEY: tfds.features.Text(
                    doc="The subject folder name, e.g. subject_01."),
                # Indoor-Cooperative, PTZ-Indoor, PTZ-Outdoor or
                # rendered/<set name>.
                SETTING_KEY: tfds.features.Text(
                    doc="Indoor-Cooperative, PTZ-Indoor, PTZ-Outdoor or "
                        "rendered/<set name>."),
                # The video file or image folder below the subject folder.
                SOURCE_KEY: tfds.features.Text(
                    doc="The video file or image folder below the subject "
                        "folder."),
                # The subject's ground-truth scan, whole (the evaluation
                # crops it around the nose tip): vertices in mm, triangles.
                SCAN_VERTICES_KEY: tfds.features.Tensor(
                    shape=(None, 3), dtype=np.float32,
                    doc="[N, 3] float32 mm: the subject's whole ground-truth "
                        "scan (3dMD), vertices (x, y, z) in the scan's own "
                        "frame as distributed (the evaluation crops it "
                        "around the nose tip and aligns it)."),
                SCAN_FACES_KEY: tfds.features.Tensor(
                    shape=(None, 3), dtype=np.int32,
                    doc="[F, 3] int32: the scan's triangles, 0-based indices "
                        "into scan_vertices."),
                # The scan file below Model/, e.g. frontal1/obj/<name>.obj.
                SCAN_NAME_KEY: tfds.features.Text(
                    doc="The scan file below Model/, e.g. "
                        "frontal1/obj/<name>.obj."),
            }),
        supervised_keys=None,
        homepage=HOMEPAGE,
        citation="""@inproceedings{bagdanov2011florence,
  title={The Florence 2D/3D Hybrid Face Dataset},
  author={Bagdanov, Andrew D. and Del Bimbo, Alberto and Masi, Iacopo},
  booktitle={Proceedings of the 2011 Joint ACM Workshop on Human Gesture and Behavior Understanding},
  pages={79--80},
  year={2011}
}""",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    return {"test": self._generate_examples(
        find_subject_folders(dl_manager.manual_dir), "test")}

  def _generate_examples(self, subject_folders: List[epath.Path], split: str
                         ) -> Iterator[Tuple[str, dict]]:
    name = f"micc_florence/{self.builder_config.name} {split}"
    subject_counter = SkipCounter(name, unit="subjects")
    example_counter = SkipCounter(name, unit="examples")
    tally = video_io.FrameTally(f"{name} frames")
    self.subject_counters[split] = subject_counter
    self.skip_counters[split] = example_counter
    self.frame_tallies[split] = tally
    items = self._sources_with_scans(subject_folders, subject_counter)
    yield from generate_with_skips(
        items, lambda item: self._example(*item, tally), example_counter,
        key_of=lambda item: item[0].key)
    tally.report()

  def _sources_with_scans(self, subject_folders: List[epath.Path],
                          counter: SkipCounter
                          ) -> Iterator[Tuple[Source, str, scans.ScanMesh]]:
    """(source, scan name, scan) for each source of each usable subject.

    One subject's scan is in memory at a time. A subject without sources or
    without a readable scan is skipped and counted in `counter`.
    """
    for folder in subject_folders:
      try:
        sources = find_sources(folder)
        if not sources:
          raise BadExampleError(
              "no videos or rendered images",
              f"nothing under {folder.name}/Video or {folder.name}/Rendered")
        scan_name, scan = read_subject_scan(
            folder, self.builder_config.scan_preference)
      except BadExampleError as error:
        counter.skip(folder.name, error)
        continue
      counter.keep()
      for source in sources:
        yield source, scan_name, scan
    counter.report()

  def _frames(self, source: Source
              ) -> Iterator[Tuple[int, Optional[np.ndarray],
                                  Optional[BadExampleError]]]:
    """(index, RGB frame or None, error or None) for the sampled frames."""
    stride = self.builder_config.frame_stride
    if source.is_video:
      with video_io.VideoReader(str(source.path)) as video:
        for index, frame in video.frames(frame_stride=stride):
          yield index, frame, None
      # The damaged or truncated rest of the file: dropped, so counted.
      for _ in range(video.undecodable_frames):
        yield -1, None, BadExampleError(video_io.UNDECODABLE_FRAMES)
      return
    images = _sorted_files(source.path, image_files.IMAGE_EXTENSIONS)
    for index in range(0, len(images), stride):
      try:
        yield index, read_image_rgb(str(images[index])), None
      except BadExampleError as error:
        yield index, None, error

  def _get_landmarker(self):
    from mgc_tf.faces2d import preprocessing  # pylint: disable=g-import-not-at-top
    if self._landmarker is None:
      upsample = self.builder_config.detector_upsample
      self._landmarker = (preprocessing.default_landmarker() if upsample is None
                          else preprocessing.FaceLandmarker(
                              upsample_times=upsample))
    return self._landmarker

  def _example(self, source: Source, scan_name: str, scan: scans.ScanMesh,
               tally: video_io.FrameTally) -> Tuple[str, dict]:
    """Detects, aligns and stacks the usable frames of one source.

    Raises:
      BadExampleError: "unreadable video", or "no usable frames" when no
        sampled frame has a face.
    """
    # Imported here so that reading a prepared dataset does not need the
    # preprocessing dependencies.
    from mgc_tf.faces2d import preprocessing  # pylint: disable=g-import-not-at-top
    config = self.builder_config
    landmarker = self._get_landmarker()
    frames, landmarks, skins, indices = [], [], [], []
    dropped = collections.Counter()
    for index, frame, error in self._frames(source):
      try:
        if error is not None:
          raise error
        face = preprocessing.preprocess_face(
            frame, landmarker=landmarker, image_size=config.image_size)
      except BadExampleError as frame_error:
        dropped[frame_error.reason] += 1
        continue
      frames.append(face.image)
      landmarks.append(face.landmarks)
      skins.append(features_lib.skin_to_uint8(face.skin))
      indices.append(index)
      if config.max_frames is not None and len(frames) >= config.max_frames:
        break
    tally.add_video(source.key, len(frames), dropped)
    if not frames:
      raise BadExampleError(
          "no usable frames",
          f"no face in any sampled frame (dropped: {dict(dropped) or 'none'})")
    return source.key, {
        features_lib.FRAMES_KEY: np.stack(frames),
        features_lib.LANDMARKS_KEY: np.stack(landmarks).astype(np.float32),
        features_lib.SKIN_KEY: np.stack(skins),
        features_lib.IDENTITY_KEY: source.subject,
        FRAME_INDICES_KEY: np.asarray(indices, np.int32),
        SUBJECT_KEY: source.subject,
        SETTING_KEY: source.setting,
        SOURCE_KEY: source.relative_path,
        SCAN_VERTICES_KEY: scan.vertices,
        SCAN_FACES_KEY: scan.faces,
        SCAN_NAME_KEY: scan_name,
    }
