"""w300_lp: 300W-LP (Zhu et al., 3DDFA) as multi-view groups.

300W-LP renders each 300-W photo at growing yaw angles ("profiling"): the
images `<source>_0.jpg` ... `<source>_<k>.jpg` of one source photo show the
same face, expression and lighting from k + 1 viewpoints, which is one view
group here. Each image has a `.mat` with the fitted 3DDFA parameters
(`Pose_Para` = [pitch, yaw, roll, tx, ty, tz, scale], radians and pixels) and
2D landmarks `pt2d` [2, 68]; `landmarks/<subset>/<image>_pts.mat` adds
`pts_2d` and `pts_3d` [68, 2]. We use `pts_3d` (the projected 3D landmarks:
the same face points in every view, also on profiles, which is what the
multi-view losses need) and fall back to `pt2d`.

Pixel coordinates: 300W-LP was made in MATLAB from the 1-based 300-W
annotations, so we treat its landmarks as 1-based and subtract 1
(LANDMARKS_ONE_BASED).

Mirrored sets (`AFW_Flip`, ...) are the horizontal mirrors of the same images.
With `include_flips` they form their own groups; their landmarks are the
unflipped image's `pts_3d` mirrored (x' = W - 1 - x, points renumbered so the
iBUG order holds), their pose is their own `.mat`'s `Pose_Para`.
"""

import dataclasses
import functools
import os
import re
from typing import Iterator, List, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.data import beam_build
from mgc_tf.data import features as mv_features
from mgc_tf.data import groups as groups_lib
from mgc_tf.data.manual_dir import ManualDirBuild
from mgc_tf.faces2d import mirror
from mgc_tf.io import annotations
from mgc_tf.io.bad_input import (BadExampleError, SkipCounter,
                                 read_image_rgb)

IMAGE_SIZE = 224
SUBSETS = ("AFW", "HELEN", "IBUG", "LFPW")
FLIP_SUFFIX = "_Flip"
LANDMARKS_DIR = "landmarks"
# MATLAB pixel coordinates (1-based) in pt2d / pts_2d / pts_3d.
LANDMARKS_ONE_BASED = True
POSE_PARA_SIZE = 7
YAW_INDEX = 1

_VIEW_STEM = re.compile(r"^(?P<source>.+)_(?P<index>\d+)$")


@dataclasses.dataclass(frozen=True)
class W300View:
  """One 300W-LP image.

  Attributes:
    root: the `300W_LP` folder.
    image_set: "AFW", "AFW_Flip", "HELEN", ...
    stem: file name without extension, e.g. "AFW_134212_1_0".
    index: the profiling step k (0 = the original pose).
  """
  root: str
  image_set: str
  stem: str
  index: int

  @property
  def flipped(self) -> bool:
    return self.image_set.endswith(FLIP_SUFFIX)

  @property
  def subset(self) -> str:
    return (self.image_set[:-len(FLIP_SUFFIX)] if self.flipped
            else self.image_set)

  @property
  def name(self) -> str:
    return f"{self.image_set}/{self.stem}"

  @property
  def image_path(self) -> str:
    return os.path.join(self.root, self.image_set, self.stem + ".jpg")

  @property
  def mat_path(self) -> str:
    return os.path.join(self.root, self.image_set, self.stem + ".mat")

  @property
  def landmark_path(self) -> str:
    """`landmarks/<subset>/<stem>_pts.mat` (of the unflipped image)."""
    return os.path.join(self.root, LANDMARKS_DIR, self.subset,
                        self.stem + "_pts.mat")


@dataclasses.dataclass(frozen=True)
class W300Group:
  """The profiled images of one source photo (one image set)."""
  image_set: str
  source: str
  views: Tuple[W300View, ...]

  @property
  def key(self) -> str:
    return f"{self.image_set}/{self.source}"


def find_root(manual_dir: str) -> str:
  """`<manual_dir>/300W_LP` when present, else manual_dir itself."""
  nested = os.path.join(manual_dir, "300W_LP")
  return nested if tf.io.gfile.isdir(nested) else manual_dir


def find_groups(root: str, include_flips: bool) -> List[W300Group]:
  """Groups `<set>/<source>_<k>.jpg` by source photo.

  Args:
    root: the `300W_LP` folder.
    include_flips: also the `<subset>_Flip` sets (their own groups).

  Returns:
    W300Groups sorted by set and source; views sorted by k. Missing sets
    are skipped; files not named `<source>_<k>.jpg` are ignored.
  """
  image_sets = list(SUBSETS)
  if include_flips:
    image_sets += [subset + FLIP_SUFFIX for subset in SUBSETS]
  groups = []
  for image_set in image_sets:
    folder = os.path.join(root, image_set)
    if not tf.io.gfile.isdir(folder):
      continue
    by_source = {}
    for name in tf.io.gfile.listdir(folder):
      stem, extension = os.path.splitext(name)
      match = _VIEW_STEM.match(stem)
      if extension.lower() != ".jpg" or match is None:
        continue
      view = W300View(root=root, image_set=image_set, stem=stem,
                      index=int(match.group("index")))
      by_source.setdefault(match.group("source"), []).append(view)
    for source in sorted(by_source):
      views = tuple(sorted(by_source[source], key=lambda v: v.index))
      groups.append(W300Group(image_set=image_set, source=source,
                              views=views))
  return groups


def read_pose_para(mat_path: str) -> np.ndarray:
  """`Pose_Para` of an image `.mat`: float32 [7] (pitch, yaw, roll in
  radians; tx, ty, tz; scale).

  Raises:
    BadExampleError: unreadable file, missing variable, wrong size, NaN.
  """
  pose = annotations.mat_variable(annotations.read_mat(mat_path), "Pose_Para",
                                  mat_path).reshape(-1)
  if pose.size != POSE_PARA_SIZE or not np.all(np.isfinite(pose)):
    raise BadExampleError(
        "bad pose", f"{mat_path}: Pose_Para {pose.shape} must be 7 finite "
        "numbers")
  return pose.astype(np.float32)


def read_pts_3d(landmark_path: str) -> np.ndarray:
  """`pts_3d` of a `landmarks/..._pts.mat`: float32 [68, 2], 0-based."""
  contents = annotations.read_mat(landmark_path)
  return annotations.landmarks_from_matrix(
      annotations.mat_variable(contents, "pts_3d", landmark_path),
      landmark_path, one_based=LANDMARKS_ONE_BASED)


def read_pt2d(mat_path: str) -> np.ndarray:
  """`pt2d` of an image `.mat`: float32 [68, 2], 0-based."""
  contents = annotations.read_mat(mat_path)
  return annotations.landmarks_from_matrix(
      annotations.mat_variable(contents, "pt2d", mat_path), mat_path,
      one_based=LANDMARKS_ONE_BASED)


def view_landmarks(view: W300View, image_width: int) -> Tuple[np.ndarray, str]:
  """The view's 68 landmarks, 0-based, and where they came from.

  `pts_3d` of the landmarks folder when that file exists (mirrored for a
  flipped view), else the image `.mat`'s `pt2d` (renumbered if a flipped
  set's points keep the unflipped numbering).

  Returns:
    (float32 [68, 2], "pts_3d" or "pt2d").
  """
  if tf.io.gfile.exists(view.landmark_path):
    landmarks = read_pts_3d(view.landmark_path)
    if view.flipped:
      landmarks = mirror.mirror_landmarks_68(landmarks, image_width)
    return landmarks, "pts_3d"
  landmarks = read_pt2d(view.mat_path)
  if view.flipped and mirror.has_mirrored_numbering(landmarks):
    landmarks = landmarks[mirror.MIRROR_68]
  return landmarks, "pt2d"


def load_view(view: W300View) -> groups_lib.LoadedView:
  """Image, landmarks and pose of one view.

  Raises:
    BadExampleError: unreadable image or `.mat`, missing variables, bad
      landmarks or pose.
  """
  image = read_image_rgb(view.image_path)
  pose_para = read_pose_para(view.mat_path)
  landmarks, source = view_landmarks(view, image.shape[1])
  return groups_lib.LoadedView(image, landmarks,
                               {"pose_para": pose_para,
                                "landmark_source": source})


def make_group_example(group: W300Group, view_counter: SkipCounter,
                       image_size: int = IMAGE_SIZE) -> Tuple[str, dict]:
  """Aligns a group's views into one example.

  Raises:
    BadExampleError: "too few views" when fewer than 2 views survive.
  """
  kept = groups_lib.preprocess_views(group.views, load_view, view_counter,
                                     name_of=lambda view: view.name,
                                     image_size=image_size)
  example = groups_lib.stack_group(kept, len(group.views), group.source,
                                   image_size)
  pose_para = np.stack([view.info["pose_para"] for view in kept])
  example.update({
      "view_names": [view.view.name for view in kept],
      "pose_para": pose_para.astype(np.float32),
      "yaw_degrees": np.rad2deg(pose_para[:, YAW_INDEX]).astype(np.float32),
      "landmark_sources": [view.info["landmark_source"] for view in kept],
      "flipped": group.image_set.endswith(FLIP_SUFFIX),
      "subset": group.views[0].subset,
  })
  return group.key, example


def process_group(group: W300Group, tallies: Mapping[str, SkipCounter],
                  image_size: int = IMAGE_SIZE) -> Iterator[Tuple[str, dict]]:
  """One unit of a build: the group's example if >= 2 views are good.

  Args:
    group: the profiled views of one source photo (no view is shared with
      another group, so a Beam worker can count it alone).
    tallies: {"groups": SkipCounter, "views": SkipCounter}.
    image_size: side of the aligned crops, pixels.
  """
  views = tallies["views"]
  yield from groups_lib.unit_group_examples(
      [group], lambda g: make_group_example(g, views, image_size),
      tallies["groups"], views, key_of=lambda g: g.key,
      view_names=[view.name for view in group.views])


def generate_examples(groups: Sequence[W300Group], group_counter: SkipCounter,
                      view_counter: SkipCounter,
                      image_size: int = IMAGE_SIZE
                      ) -> Iterator[Tuple[str, dict]]:
  """(key, example) per group with >= 2 good views; counts what is dropped
  and reports both counters at the end (the single-process build)."""
  yield from beam_build.generate(
      groups, functools.partial(process_group, image_size=image_size),
      {"groups": group_counter, "views": view_counter})


@dataclasses.dataclass
class W300LPConfig(tfds.core.BuilderConfig):
  """Options of the 300W-LP builder.

  Attributes:
    image_size: side of the aligned crops, pixels.
    include_flips: add the mirrored `<subset>_Flip` sets as their own groups.
  """
  image_size: int = IMAGE_SIZE
  include_flips: bool = False


class Builder(ManualDirBuild, beam_build.BeamBuild,
              tfds.core.GeneratorBasedBuilder):
  """300W-LP profiled views of one photo per example.

  Runs on Beam when the build is given Beam pipeline options (one source
  photo per unit of work), else as a plain generator.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      W300LPConfig(name="default",
                   description="AFW, HELEN, IBUG, LFPW; no mirrored sets."),
      W300LPConfig(name="with_flips", include_flips=True,
                   description="Also the mirrored *_Flip sets, as their own "
                   "groups."),
  ]
  DEFAULT_CONFIG_NAME = "default"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download 300W-LP.zip from the 3DDFA project page
  http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/main.htm
  (the "300W-LP" link, .../3DDFA/Database/300W-LP/main.htm) and unzip it
  into manual_dir, so that manual_dir holds

    300W_LP/AFW/AFW_<id>_<face>_<k>.jpg + .mat     (also HELEN, IBUG, LFPW)
    300W_LP/AFW_Flip/...                           (mirrored sets, optional)
    300W_LP/landmarks/AFW/AFW_<id>_<face>_<k>_pts.mat

  (manual_dir may also be the 300W_LP folder itself). See
  docs/datasets/w300_lp.md.
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
                    doc="Per view, <image set>/<image stem>, e.g. "
                        "AFW/AFW_134212_1_0."),
                "pose_para": tfds.features.Tensor(
                    shape=(None, POSE_PARA_SIZE), dtype=np.float32,
                    doc="[V, 7] float32: per view, the dataset's Pose_Para "
                        "of its 3DMM fit, as distributed: pitch, yaw, roll "
                        "in radians, then tx, ty, tz and scale."),
                "yaw_degrees": tfds.features.Tensor(
                    shape=(None,), dtype=np.float32,
                    doc="[V] float32 degrees: per view, the yaw of "
                        "pose_para."),
                "landmark_sources": tfds.features.Sequence(
                    tfds.features.Text(),
                    doc="Per view, where the landmarks come from: pts_3d "
                        "(landmarks/..._pts.mat) or pt2d (the image's "
                        ".mat)."),
                "flipped": tfds.features.Scalar(
                    dtype=np.bool_,
                    doc="True for the mirrored (*_Flip) image sets."),
                "subset": tfds.features.Text(
                    doc="The 300W-LP subset: AFW, HELEN, IBUG or LFPW."),
            }),
        homepage=("http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/"
                  "3DDFA/main.htm"),
        citation="""@inproceedings{zhu2016face,
  title={Face Alignment Across Large Poses: A 3D Solution},
  author={Zhu, Xiangyu and Lei, Zhen and Liu, Xiaoming and Shi, Hailin and
          Li, Stan Z.},
  booktitle={CVPR},
  year={2016}
}""",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = find_root(os.fspath(dl_manager.manual_dir))
    groups = find_groups(root, self.builder_config.include_flips)
    if not groups:
      raise ValueError(
          f"No 300W-LP images found under {root} (looked for "
          f"{', '.join(SUBSETS)}/<source>_<k>.jpg). Expected layout:\n"
          f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    return {"train": self._generate_examples(
        "train", groups,
        functools.partial(process_group,
                          image_size=self.builder_config.image_size),
        groups_lib.group_tallies(f"{self.name}/train"))}
