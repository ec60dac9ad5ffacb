"""folder_multiview: multi-view face groups from a folder of identities.

The generic builder for your own multi-view photos. Layout under manual_dir:

  <manual_dir>/<identity>/<image>.jpg                 one group per identity
  <manual_dir>/<identity>/<capture>/<image>.png       one group per capture

Every folder below an identity folder that holds images is one view group
(identity = the first-level folder name). A folder with more than
`max_views_per_group` images is cut, in sorted file order, into the fewest
consecutive chunks of near-equal size that fit. A landmark file with the
image's stem (`.pts` 1-based iBUG, `.npy` or `.txt` 0-based [68, 2]) gives the
image's landmarks; without one they are detected (dlib). Views that fail are
dropped and counted; a group left with fewer than 2 views is skipped.
"""

import dataclasses
import functools
import os
from typing import Iterator, List, Mapping, Sequence, Tuple

import numpy as np
import tensorflow_datasets as tfds

from mgc_tf.data import beam_build
from mgc_tf.data import features as mv_features
from mgc_tf.data import groups as groups_lib
from mgc_tf.data.manual_dir import ManualDirBuild
from mgc_tf.io import annotations
from mgc_tf.io import files
from mgc_tf.io import images as image_files
from mgc_tf.io.bad_input import SkipCounter, read_image_rgb

IMAGE_SIZE = 224


@dataclasses.dataclass(frozen=True)
class ViewGroup:
  """Images of one identity that form one example.

  Attributes:
    identity: first-level folder name.
    folder: the group's folder relative to the root, '/'-separated.
    chunk: index of this chunk among the folder's chunks.
    image_paths: absolute paths (or URLs) of the views, sorted.
    root: the manual_dir the paths are under.
  """
  identity: str
  folder: str
  chunk: int
  image_paths: Tuple[str, ...]
  root: str

  @property
  def key(self) -> str:
    return f"{self.folder}#{self.chunk}"

  def view_name(self, path: str) -> str:
    """The view's path below the root, "/"-separated (local or URL root)."""
    return files.relative_path(path, self.root)


def split_into_chunks(items: Sequence, max_size: int) -> List[list]:
  """Cuts `items` into the fewest consecutive chunks of at most `max_size`.

  Chunk sizes differ by at most one, larger first (9 items, max 8 -> 5 + 4),
  so no tail chunk is left with a single view.
  """
  if max_size < 1:
    raise ValueError(f"max_size must be >= 1, got {max_size}")
  count = len(items)
  num_chunks = -(-count // max_size)
  chunks, start = [], 0
  for index in range(num_chunks):
    size = count // num_chunks + (1 if index < count % num_chunks else 0)
    chunks.append(list(items[start:start + size]))
    start += size
  return chunks


def _image_folders(folder: str) -> Iterator[Tuple[str, List[str]]]:
  """(folder, sorted image paths) for `folder` and every folder below it.

  Depth first in sorted order; hidden entries (starting with '.') skipped.
  Lists through `mgc_tf.io.files`, so manual_dir may be local or a URL.
  """
  names = sorted(name for name in files.listdir(folder)
                 if not name.startswith("."))
  paths = [files.join(folder, name) for name in names]
  subfolders = [path for path in paths if files.isdir(path)]
  subfolder_set = set(subfolders)
  images = [path for path in paths
            if path not in subfolder_set and image_files.is_image_file(path)]
  if images:
    yield folder, images
  for subfolder in subfolders:
    yield from _image_folders(subfolder)


def find_view_groups(root: str, max_views_per_group: int) -> List[ViewGroup]:
  """Lists the view groups under `root` (see the module docstring).

  Hidden files and folders (starting with '.') are ignored, as are files
  directly under `root`.

  Returns:
    ViewGroups sorted by folder, then chunk.
  """
  groups = []
  for identity in sorted(files.listdir(root)):
    identity_dir = files.join(root, identity)
    if identity.startswith(".") or not files.isdir(identity_dir):
      continue
    for folder, images in _image_folders(identity_dir):
      relative = files.relative_path(folder, root)
      for chunk, paths in enumerate(
          split_into_chunks(images, max_views_per_group)):
        groups.append(ViewGroup(identity=identity, folder=relative,
                                chunk=chunk, image_paths=tuple(paths),
                                root=root))
  return groups


def load_view(image_path: str) -> groups_lib.LoadedView:
  """Image and its landmark file's points (None when there is no file)."""
  image = read_image_rgb(image_path)
  landmark_path = annotations.find_landmark_file(image_path)
  if landmark_path is None:
    return groups_lib.LoadedView(image, None)
  return groups_lib.LoadedView(image,
                               annotations.read_landmark_file(landmark_path))


def make_group_example(group: ViewGroup, view_counter: SkipCounter,
                       image_size: int = IMAGE_SIZE,
                       landmarker=None) -> Tuple[str, dict]:
  """Preprocesses a group's views into one example.

  Args:
    group: the views.
    view_counter: counts kept and dropped views.
    image_size: side of the aligned crops, pixels.
    landmarker: FaceLandmarker for views without landmark files (None: the
      default dlib one).

  Returns:
    (key, example dict).

  Raises:
    BadExampleError: "too few views" when fewer than 2 views survive.
  """
  kept = groups_lib.preprocess_views(
      group.image_paths, load_view, view_counter, name_of=group.view_name,
      image_size=image_size, landmarker=landmarker)
  example = groups_lib.stack_group(kept, len(group.image_paths), group.identity,
                                   image_size)
  example.update({
      "view_names": [group.view_name(view.view) for view in kept],
      "landmarks_detected": np.array(
          [view.landmarks_detected for view in kept]),
      "capture": group.folder,
  })
  return group.key, example


def process_group(group: ViewGroup, tallies: Mapping[str, SkipCounter],
                  image_size: int = IMAGE_SIZE,
                  landmarker=None) -> Iterator[Tuple[str, dict]]:
  """One unit of a build: the group's example if >= 2 views are good.

  Args:
    group: the views (chunks of a folder share none, so a Beam worker can
      count a group alone).
    tallies: {"groups": SkipCounter, "views": SkipCounter}.
    image_size: side of the aligned crops, pixels.
    landmarker: see `make_group_example`.
  """
  views = tallies["views"]
  yield from groups_lib.unit_group_examples(
      [group], lambda g: make_group_example(g, views, image_size, landmarker),
      tallies["groups"], views, key_of=lambda g: g.key,
      view_names=[group.view_name(path) for path in group.image_paths])


def generate_examples(groups: Sequence[ViewGroup], group_counter: SkipCounter,
                      view_counter: SkipCounter, image_size: int = IMAGE_SIZE,
                      landmarker=None) -> Iterator[Tuple[str, dict]]:
  """(key, example) for each group that keeps >= 2 views.

  Dropped views are counted in `view_counter`, skipped groups in
  `group_counter`; both report when the generator ends.
  """
  yield from beam_build.generate(
      groups, functools.partial(process_group, image_size=image_size,
                                landmarker=landmarker),
      {"groups": group_counter, "views": view_counter})


@dataclasses.dataclass
class FolderMultiviewConfig(tfds.core.BuilderConfig):
  """Options of the folder builder.

  Attributes:
    image_size: side of the aligned crops, pixels.
    max_views_per_group: larger folders are cut into chunks of at most this.
  """
  image_size: int = IMAGE_SIZE
  max_views_per_group: int = 8


class Builder(ManualDirBuild, beam_build.BeamBuild,
              tfds.core.GeneratorBasedBuilder):
  """Multi-view face groups from `<identity>/[<capture>/]<images>` folders.

  Runs on Beam when the build is given Beam pipeline options (one group
  per unit of work), else as a plain generator.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      FolderMultiviewConfig(
          name="default",
          description="224 crops, at most 8 views per group."),
  ]
  DEFAULT_CONFIG_NAME = "default"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put your photos under manual_dir, one folder per person (or per capture):

    <manual_dir>/<identity>/<name>.jpg|.jpeg|.png|.bmp
    <manual_dir>/<identity>/<capture>/<name>.jpg      (deeper folders allowed)

  Each folder holding images is one group of views of one identity (the
  first-level folder name). Optional landmarks beside an image, same stem:
  <name>.pts (iBUG, 1-based), <name>.txt (68 lines "x y", 0-based) or
  <name>.npy ([68, 2], 0-based). Without them the faces are detected, which
  needs `pip install "mgc-tf[preprocess]"`.
  See docs/datasets/folder_multiview.md.
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
                    doc="Per view, the image path below manual_dir."),
                "landmarks_detected": tfds.features.Tensor(
                    shape=(None,), dtype=np.bool_,
                    doc="[V] bool: per view, True when the landmarks were "
                        "detected (no landmark file beside the image)."),
                "capture": tfds.features.Text(
                    doc="The group's folder below manual_dir, "
                        "'/'-separated."),
            }),
        # Your own photos: no dataset paper; cite the method whose
        # multi-view data this builder prepares.
        homepage=mv_features.MGCNET_HOMEPAGE,
        citation=mv_features.MGCNET_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = os.fspath(dl_manager.manual_dir)
    groups = find_view_groups(root, self.builder_config.max_views_per_group)
    if not groups:
      raise ValueError(
          f"No image folders found under {root}. Expected layout:\n"
          f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    return {"train": self._generate_examples(
        "train", groups,
        functools.partial(process_group,
                          image_size=self.builder_config.image_size),
        groups_lib.group_tallies(f"{self.name}/train"))}
