"""multipie: CMU Multi-PIE as multi-view groups of neighbouring cameras.

Multi-PIE photographs each subject in up to 4 sessions, several recordings
(expressions) per session, with 15 cameras and 20 illuminations captured at
the same instant: the images of one (subject, session, recording,
illumination) show one face, expression and lighting from 15 viewpoints.

Views: the 13 cameras on the horizontal arc, sorted by yaw (CAMERA_YAWS; the
two elevated cameras 08_1 and 19_1 are left out). A group is a window of
`views_per_group` consecutive cameras of that list (cameras beyond
`max_abs_yaw_degrees` removed first), every `window_stride` cameras; windows
holding fewer than 2 image files are not groups. Landmarks come from a file
beside the image (same stem: `.pts` 1-based iBUG, `.npy` / `.txt` 0-based
[68, 2]) or from dlib's detector, which rarely finds faces beyond about 45-60
degrees of yaw: those views are dropped and counted.

Layout: Multi-Pie/data/session0<s>/multiview/<subject>/<recording>/<camera>/
<subject>_<session>_<recording>_<camera without '_'>_<illumination>.png,
e.g. session01/multiview/001/01/05_1/001_01_01_051_07.png.
"""

import dataclasses
import functools
import itertools
import os
import re
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.data import beam_build
from mgc_tf.data import features as mv_features
from mgc_tf.data import groups as groups_lib
from mgc_tf.data.manual_dir import ManualDirBuild
from mgc_tf.io import annotations
from mgc_tf.io import files
from mgc_tf.io.bad_input import SkipCounter, read_image_rgb

IMAGE_SIZE = 224
MIN_VIEWS = groups_lib.MIN_GROUP_VIEWS

# Nominal yaw of the cameras on the horizontal arc, in degrees, sorted. The
# values are the commonly used 15-degree steps (e.g. in face frontalization
# papers); the negative side is cameras 11_0 ... 14_0. The elevated cameras
# 08_1 and 19_1 (above the arc, at about the yaw of 08_0 / 19_0) are not
# used.
CAMERA_YAWS = (
    ("11_0", -90.0), ("12_0", -75.0), ("09_0", -60.0), ("08_0", -45.0),
    ("13_0", -30.0), ("14_0", -15.0), ("05_1", 0.0), ("05_0", 15.0),
    ("04_1", 30.0), ("19_0", 45.0), ("20_0", 60.0), ("01_0", 75.0),
    ("24_0", 90.0),
)
ELEVATED_CAMERAS = ("08_1", "19_1")
NUM_SESSIONS = 4

_FILE_NAME = re.compile(
    r"^(?P<subject>\d{3})_(?P<session>\d{2})_(?P<recording>\d{2})_"
    r"(?P<camera>\d{3})_(?P<illumination>\d{2})\.png$", re.IGNORECASE)


def camera_from_file_code(code: str) -> str:
  """'051' (file name) -> '05_1' (folder name)."""
  return f"{code[:2]}_{code[2]}"


def select_cameras(max_abs_yaw_degrees: float) -> List[Tuple[str, float]]:
  """(camera, yaw) within +/- max_abs_yaw_degrees, in yaw order."""
  return [(camera, yaw) for camera, yaw in CAMERA_YAWS
          if abs(yaw) <= max_abs_yaw_degrees + 1e-9]


def camera_windows(num_cameras: int, views_per_group: int,
                   window_stride: int) -> List[range]:
  """Index ranges of the camera windows: [i*s, i*s + V) inside the list.

  With fewer cameras than V, the one window is all of them.
  """
  if views_per_group < MIN_VIEWS or window_stride < 1:
    raise ValueError(f"views_per_group must be >= {MIN_VIEWS} and "
                     f"window_stride >= 1; got {views_per_group}, "
                     f"{window_stride}")
  if num_cameras <= views_per_group:
    return [range(num_cameras)] if num_cameras else []
  return [range(start, start + views_per_group)
          for start in range(0, num_cameras - views_per_group + 1,
                             window_stride)]


@dataclasses.dataclass(frozen=True)
class Capture:
  """One instant: a subject, session, recording and illumination."""
  subject: str
  session: str
  recording: str
  illumination: str

  @property
  def name(self) -> str:
    return (f"{self.subject}_{self.session}_{self.recording}_"
            f"{self.illumination}")


@dataclasses.dataclass(frozen=True)
class CameraView:
  """One image of a capture."""
  camera: str
  yaw_degrees: float
  path: str

  @property
  def name(self) -> str:
    return os.path.splitext(os.path.basename(self.path))[0]


@dataclasses.dataclass(frozen=True)
class CameraWindow:
  """A group: neighbouring cameras of one capture.

  Attributes:
    capture: the instant.
    start_camera: the window's first camera (whether or not it has a file).
    views: the window's cameras that have an image file, in yaw order.
  """
  capture: Capture
  start_camera: str
  views: Tuple[CameraView, ...]

  @property
  def key(self) -> str:
    return f"{self.capture.name}#{self.start_camera}"


def find_root(manual_dir: str) -> str:
  """The folder holding `session0<s>/`: manual_dir, `data/` or
  `Multi-Pie/data/` below it (manual_dir itself when none has sessions)."""
  for candidate in (manual_dir, os.path.join(manual_dir, "data"),
                    os.path.join(manual_dir, "Multi-Pie", "data")):
    if any(tf.io.gfile.isdir(os.path.join(candidate, f"session{s:02d}"))
           for s in range(1, NUM_SESSIONS + 1)):
      return candidate
  return manual_dir


def _subfolders(folder: str) -> List[str]:
  if not files.isdir(folder):
    return []
  return sorted(name for name in files.listdir(folder)
                if not name.startswith(".")
                and files.isdir(files.join(folder, name)))


def find_captures(root: str, cameras: Sequence[str],
                  illuminations: Optional[Sequence[str]]
                  ) -> Dict[Capture, Dict[str, str]]:
  """Image paths of each capture, by camera.

  Args:
    root: the folder holding `session0<s>/multiview/`.
    cameras: folder names of the cameras to read (e.g. "05_1").
    illuminations: two-digit illumination ids to keep; None keeps all.

  Returns:
    {Capture: {camera: path}}, ordered by subject, session, recording,
    illumination. Files whose name does not follow the Multi-PIE pattern,
    or disagrees with its camera folder, are ignored.
  """
  wanted = set(cameras)
  captures: Dict[Capture, Dict[str, str]] = {}
  for session_index in range(1, NUM_SESSIONS + 1):
    multiview = os.path.join(root, f"session{session_index:02d}", "multiview")
    for subject in _subfolders(multiview):
      for recording in _subfolders(os.path.join(multiview, subject)):
        recording_dir = os.path.join(multiview, subject, recording)
        for camera in _subfolders(recording_dir):
          if camera not in wanted:
            continue
          camera_dir = os.path.join(recording_dir, camera)
          for name in tf.io.gfile.listdir(camera_dir):
            match = _FILE_NAME.match(name)
            if (match is None or
                camera_from_file_code(match.group("camera")) != camera):
              continue
            illumination = match.group("illumination")
            if illuminations is not None and illumination not in illuminations:
              continue
            capture = Capture(match.group("subject"), match.group("session"),
                              match.group("recording"), illumination)
            captures.setdefault(capture, {})[camera] = os.path.join(
                camera_dir, name)
  return dict(sorted(captures.items(),
                     key=lambda item: dataclasses.astuple(item[0])))


def make_windows(captures: Dict[Capture, Dict[str, str]],
                 cameras: Sequence[Tuple[str, float]], views_per_group: int,
                 window_stride: int) -> List[CameraWindow]:
  """The groups: camera windows holding at least 2 image files."""
  windows = []
  index_ranges = camera_windows(len(cameras), views_per_group, window_stride)
  for capture, paths in captures.items():
    for index_range in index_ranges:
      views = tuple(CameraView(camera, yaw, paths[camera])
                    for camera, yaw in (cameras[i] for i in index_range)
                    if camera in paths)
      if len(views) >= MIN_VIEWS:
        windows.append(CameraWindow(capture, cameras[index_range[0]][0],
                                    views))
  return windows


def load_view(view: CameraView) -> groups_lib.LoadedView:
  """Image and the landmark file's points (None: detect)."""
  image = read_image_rgb(view.path)
  landmark_path = annotations.find_landmark_file(view.path)
  landmarks = (None if landmark_path is None
               else annotations.read_landmark_file(landmark_path))
  return groups_lib.LoadedView(image, landmarks)


class CaptureViewCache:
  """Aligned views of the current capture, so overlapping windows align
  (and count) each image once.

  Windows arrive grouped by capture; the cache holds one capture at a time.
  """

  def __init__(self, view_counter: SkipCounter, image_size: int,
               landmarker=None):
    self._view_counter = view_counter
    self._image_size = image_size
    self._landmarker = landmarker
    self._capture = None
    self._views: Dict[str, Optional[groups_lib.PreprocessedView]] = {}

  def get(self, capture: Capture, views: Sequence[CameraView]
          ) -> List[groups_lib.PreprocessedView]:
    """The aligned views among `views` that worked, in order."""
    if capture != self._capture:
      self._capture, self._views = capture, {}
    missing = [view for view in views if view.camera not in self._views]
    for view in missing:
      self._views[view.camera] = None
    for done in groups_lib.preprocess_views(
        missing, load_view, self._view_counter, name_of=lambda v: v.name,
        image_size=self._image_size, landmarker=self._landmarker):
      self._views[done.view.camera] = done
    return [self._views[view.camera] for view in views
            if self._views[view.camera] is not None]


def make_window_example(window: CameraWindow, cache: CaptureViewCache,
                        image_size: int = IMAGE_SIZE) -> Tuple[str, dict]:
  """Aligned views of one camera window as an example.

  Raises:
    BadExampleError: "too few views" when fewer than 2 views survive.
  """
  kept = cache.get(window.capture, window.views)
  capture = window.capture
  example = groups_lib.stack_group(kept, len(window.views), capture.subject,
                                   image_size)
  example.update({
      "view_names": [view.view.name for view in kept],
      "cameras": [view.view.camera for view in kept],
      "yaw_degrees": np.array([view.view.yaw_degrees for view in kept],
                              np.float32),
      "landmarks_detected": np.array([view.landmarks_detected
                                      for view in kept]),
      "session": int(capture.session),
      "recording": int(capture.recording),
      "illumination": int(capture.illumination),
  })
  return window.key, example


def capture_units(windows: Sequence[CameraWindow]
                  ) -> List[Tuple[CameraWindow, ...]]:
  """The units of work: the windows of each capture, in order (windows of
  one capture share views; windows of two captures never do)."""
  return [tuple(group) for _, group in itertools.groupby(
      windows, key=lambda window: window.capture)]


def process_capture(windows: Sequence[CameraWindow],
                    tallies: Mapping[str, SkipCounter],
                    image_size: int = IMAGE_SIZE, landmarker=None
                    ) -> Iterator[Tuple[str, dict]]:
  """One unit of a build: a capture's windows with >= 2 good views.

  Each image is aligned (and counted) once, however many windows hold it.

  Args:
    windows: the windows of one capture.
    tallies: {"groups": SkipCounter, "views": SkipCounter}.
    image_size: side of the aligned crops, pixels.
    landmarker: FaceLandmarker for views without landmark files (None: the
      default dlib one).
  """
  cache = CaptureViewCache(tallies["views"], image_size, landmarker)
  yield from groups_lib.unit_group_examples(
      windows, lambda window: make_window_example(window, cache, image_size),
      tallies["groups"], tallies["views"], key_of=lambda window: window.key,
      view_names=[view.name for window in windows for view in window.views])


def generate_examples(windows: Sequence[CameraWindow],
                      group_counter: SkipCounter, view_counter: SkipCounter,
                      image_size: int = IMAGE_SIZE, landmarker=None
                      ) -> Iterator[Tuple[str, dict]]:
  """(key, example) per window with >= 2 good views; counts the rest and
  reports both counters at the end (the single-process build)."""
  yield from beam_build.generate(
      capture_units(windows),
      functools.partial(process_capture, image_size=image_size,
                        landmarker=landmarker),
      {"groups": group_counter, "views": view_counter})


@dataclasses.dataclass
class MultiPieConfig(tfds.core.BuilderConfig):
  """Options of the Multi-PIE builder.

  Attributes:
    image_size: side of the aligned crops, pixels.
    views_per_group: cameras per window.
    window_stride: cameras between the starts of consecutive windows.
    max_abs_yaw_degrees: cameras with a larger nominal |yaw| are not used.
    illuminations: two-digit illumination ids to use; None uses all 20.
  """
  image_size: int = IMAGE_SIZE
  views_per_group: int = 3
  window_stride: int = 1
  max_abs_yaw_degrees: float = 60.0
  illuminations: Optional[Tuple[str, ...]] = ("07",)


class Builder(ManualDirBuild, beam_build.BeamBuild,
              tfds.core.GeneratorBasedBuilder):
  """Multi-PIE windows of neighbouring cameras per example.

  Runs on Beam when the build is given Beam pipeline options (one capture
  per unit of work), else as a plain generator.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      MultiPieConfig(
          name="default",
          description="Illumination 07 (frontal flash), cameras within +/-60 "
          "degrees, windows of 3 neighbouring cameras, stride 1."),
      MultiPieConfig(
          name="all_illuminations", illuminations=None,
          description="As default, all 20 illuminations."),
      MultiPieConfig(
          name="all_cameras", max_abs_yaw_degrees=90.0,
          description="As default, all 13 arc cameras (+/-90 degrees); "
          "profiles need landmark files, dlib rarely finds them."),
  ]
  DEFAULT_CONFIG_NAME = "default"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Multi-PIE is licensed by Carnegie Mellon University: request it at
  http://www.cs.cmu.edu/afs/cs/project/PIE/MultiPie/Multi-Pie/Home.html
  (distributed on a hard drive). Copy (or link) its `data` folder into
  manual_dir so that manual_dir holds

    Multi-Pie/data/session01/multiview/001/01/05_1/001_01_01_051_07.png
    (session0<1-4>/multiview/<subject>/<recording>/<camera>/
     <subject>_<session>_<recording>_<camera w/o '_'>_<illumination>.png)

  (manual_dir may also be Multi-Pie/ or data/ itself). Optional landmark
  files beside the images (same stem, .pts / .txt / .npy); without them
  faces are detected, which needs `pip install "mgc-tf[preprocess]"`.
  See docs/datasets/multipie.md.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    return self.dataset_info_from_configs(
        description=__doc__,
        features=mv_features.multiview_features(
            config.image_size, num_views=None,
            extra={
                "view_names": tfds.features.Sequence(
                    tfds.features.Text(),
                    doc="Per view, the Multi-PIE image file stem, e.g. "
                        "001_01_01_051_07."),
                "cameras": tfds.features.Sequence(
                    tfds.features.Text(),
                    doc="Per view, the Multi-PIE camera, e.g. 05_1."),
                "yaw_degrees": tfds.features.Tensor(
                    shape=(None,), dtype=np.float32,
                    doc="[V] float32 degrees: per view, the camera's nominal "
                        "yaw (-90 ... 90 in 15 degree steps; 0 = 05_1)."),
                "landmarks_detected": tfds.features.Tensor(
                    shape=(None,), dtype=np.bool_,
                    doc="[V] bool: per view, True when the landmarks were "
                        "detected (no landmark file beside the image)."),
                "session": tfds.features.Scalar(
                    dtype=np.int32, doc="Multi-PIE session, 1-4."),
                "recording": tfds.features.Scalar(
                    dtype=np.int32, doc="Multi-PIE recording number."),
                "illumination": tfds.features.Scalar(
                    dtype=np.int32,
                    doc="Multi-PIE illumination (flash) number, 0-19."),
            }),
        homepage=("http://www.cs.cmu.edu/afs/cs/project/PIE/MultiPie/"
                  "Multi-Pie/Home.html"),
        citation="""@article{gross2010multipie,
  title={Multi-PIE},
  author={Gross, Ralph and Matthews, Iain and Cohn, Jeffrey and Kanade,
          Takeo and Baker, Simon},
  journal={Image and Vision Computing},
  volume={28},
  number={5},
  pages={807--813},
  year={2010}
}""",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    root = find_root(os.fspath(dl_manager.manual_dir))
    cameras = select_cameras(config.max_abs_yaw_degrees)
    captures = find_captures(root, [camera for camera, _ in cameras],
                             config.illuminations)
    windows = make_windows(captures, cameras, config.views_per_group,
                           config.window_stride)
    if not windows:
      raise ValueError(
          f"No Multi-PIE camera windows found under {root} (cameras "
          f"{[camera for camera, _ in cameras]}, illuminations "
          f"{config.illuminations or 'all'}). Expected layout:\n"
          f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    return {"train": self._generate_examples(
        "train", capture_units(windows),
        functools.partial(process_capture, image_size=config.image_size),
        groups_lib.group_tallies(f"{self.name}/train"))}
