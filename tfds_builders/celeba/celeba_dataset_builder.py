"""celeba: CelebA aligned photos as same-identity groups for the 2D losses.

MGCNet trains on CelebA (with LS3D) for its varied lighting and backgrounds;
those samples "only contribute to 2D feature losses" (paper section 4.1),
i.e. they carry flag 0 (single view) in training. Each example here is a group
of up to `views_per_group` photos of one identity from one split, each aligned
to the 224 template from 68 dlib landmarks, with its skin map.
Docs: docs/datasets/celeba.md.
"""

import dataclasses
import functools
import itertools
import os
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.data import beam_build
from mgc_tf.data import features as features_lib
from mgc_tf.data.manual_dir import ManualDirBuild
from mgc_tf.faces2d import alignment
from mgc_tf.io.bad_input import (BadExampleError, SkipCounter, read_image_rgb,
                                 skip_bad)

IMAGE_DIR = "img_align_celeba"
IDENTITY_FILE = "identity_CelebA.txt"
PARTITION_FILE = "list_eval_partition.txt"
LANDMARKS_FILE = "list_landmarks_align_celeba.txt"
FILE_NAMES_KEY = "file_names"

# list_eval_partition.txt: 0 train, 1 validation, 2 test.
SPLIT_NAMES = {0: "train", 1: "validation", 2: "test"}
# The annotated face must be the detected one: the mean distance between the
# annotated 5 points and the detection's (eye centres, nose tip, mouth
# corners) may be at most this fraction of the annotated eye distance.
MAX_ANNOTATION_DISTANCE = 0.3

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
CelebA cannot be downloaded automatically. From
https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive / Baidu links,
non-commercial research licence) fetch:

  Img/img_align_celeba.zip                 (the 178 x 218 aligned JPEGs)
  Anno/identity_CelebA.txt
  Anno/list_landmarks_align_celeba.txt     (optional: picks the annotated
                                            face when dlib finds several)
  Eval/list_eval_partition.txt

and place them in manual_dir (default <data_dir>/downloads/manual/) as:

  <manual_dir>/img_align_celeba/000001.jpg ... 202599.jpg   (unzipped)
  <manual_dir>/identity_CelebA.txt
  <manual_dir>/list_eval_partition.txt
  <manual_dir>/list_landmarks_align_celeba.txt

Landmarks are detected with dlib: pip install "mgc-tf[preprocess]".
"""


@dataclasses.dataclass
class CelebAConfig(tfds.core.BuilderConfig):
  """How images are grouped and stored.

  Attributes:
    image_size: side S of the aligned square crops, pixels.
    views_per_group: photos of one identity per example; an identity's
      last group holds the remainder (1 to views_per_group - 1 photos).
  """
  image_size: int = 224
  views_per_group: int = 3

  def __post_init__(self):
    if self.image_size < 1 or self.views_per_group < 1:
      raise ValueError(
          f"config {self.name!r}: image_size and views_per_group must be "
          f">= 1; Received: {self.image_size}, {self.views_per_group}")


@dataclasses.dataclass(frozen=True)
class ImageRecord:
  """One CelebA image to preprocess.

  Attributes:
    file_name: e.g. "000001.jpg".
    identity: the identity label as text, None when the file has none.
    five_points: [5, 2] float64 annotated eye centres, nose tip, mouth
      corners (image-left first), or None without the landmarks file.
  """
  file_name: str
  identity: Optional[str]
  five_points: Optional[np.ndarray] = None


def _annotation_lines(path) -> Iterator[Tuple[int, List[str]]]:
  """(line number, whitespace-split fields) of the non-empty lines."""
  with tf.io.gfile.GFile(str(path), "r") as f:
    for number, line in enumerate(f, start=1):
      fields = line.split()
      if fields:
        yield number, fields


def read_identities(path) -> Dict[str, str]:
  """identity_CelebA.txt -> {file name: identity label (text)}.

  Raises:
    ValueError: a line is not "<file> <integer identity>".
  """
  identities = {}
  for number, fields in _annotation_lines(path):
    if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
      raise ValueError(f"{path} line {number}: expected '<file> <identity>', "
                       f"got {' '.join(fields)!r}")
    identities[fields[0]] = str(int(fields[1]))
  return identities


def read_partition(path) -> Dict[str, str]:
  """list_eval_partition.txt -> {file name: "train" / "validation" / "test"}.

  Raises:
    ValueError: a line is not "<file> 0|1|2".
  """
  splits = {}
  for number, fields in _annotation_lines(path):
    if (len(fields) != 2 or not fields[1].isdigit()
        or int(fields[1]) not in SPLIT_NAMES):
      raise ValueError(f"{path} line {number}: expected '<file> 0|1|2', got "
                       f"{' '.join(fields)!r}")
    splits[fields[0]] = SPLIT_NAMES[int(fields[1])]
  return splits


def read_five_point_landmarks(path) -> Dict[str, np.ndarray]:
  """list_landmarks_align_celeba.txt -> {file name: [5, 2] float64}.

  The file starts with a count line and a header line naming the columns
  (lefteye_x lefteye_y righteye_x ... rightmouth_y); each following line is
  "<file> x y x y x y x y x y" for the image-left eye, image-right eye, nose
  tip, image-left and image-right mouth corner, in the aligned image's
  pixels.

  Raises:
    ValueError: the header or a line is malformed.
  """
  landmarks = {}
  lines = _annotation_lines(path)
  header = [fields for _, fields in itertools.islice(lines, 2)]
  if (len(header) != 2 or len(header[0]) != 1 or not header[0][0].isdigit()
      or len(header[1]) != 10 or not header[1][0].startswith("lefteye")):
    raise ValueError(f"{path}: expected a count line and a 'lefteye_x ...' "
                     "header line first")
  for number, fields in lines:
    try:
      values = [float(value) for value in fields[1:]]
    except ValueError:
      values = []
    if len(fields) != 11 or len(values) != 10:
      raise ValueError(f"{path} line {number}: expected '<file>' and 10 "
                       f"numbers, got {' '.join(fields)!r}")
    landmarks[fields[0]] = np.asarray(values, np.float64).reshape(5, 2)
  if len(landmarks) != int(header[0][0]):
    raise ValueError(f"{path}: header says {header[0][0]} images, found "
                     f"{len(landmarks)} lines")
  return landmarks


def split_records(partition: Dict[str, str], identities: Dict[str, str],
                  five_points: Optional[Dict[str, np.ndarray]]
                  ) -> Dict[str, List[ImageRecord]]:
  """The images of each split, ordered by identity then file name.

  Identities sort numerically (CelebA's labels are integers), so an
  identity's photos are consecutive, in file order, ready to be grouped.
  """
  by_split = {name: [] for name in SPLIT_NAMES.values()}
  for file_name, split in partition.items():
    by_split[split].append(ImageRecord(
        file_name=file_name, identity=identities.get(file_name),
        five_points=(None if five_points is None
                     else five_points.get(file_name))))

  def order(record: ImageRecord):
    identity = record.identity
    label = int(identity) if identity is not None else -1
    return (label, record.file_name)

  return {split: sorted(records, key=order)
          for split, records in by_split.items()}


def select_annotated_face(detections: Sequence, five_points: np.ndarray):
  """The detection whose 5 points match CelebA's annotation.

  Args:
    detections: `preprocessing.Detection`s (68 landmarks each), non-empty.
    five_points: [5, 2] annotated points (image-left eye first).

  Returns:
    the closest detection.

  Raises:
    BadExampleError: "face does not match annotation" when even the closest
      is farther than MAX_ANNOTATION_DISTANCE eye distances (dlib missed the
      annotated face and found another one).
  """
  eye_distance = max(float(np.linalg.norm(five_points[1] - five_points[0])),
                     1.0)
  distances = [
      float(np.linalg.norm(alignment.five_points_from_68(d.landmarks)
                           - five_points, axis=1).mean())
      for d in detections]
  best = int(np.argmin(distances))
  if distances[best] > MAX_ANNOTATION_DISTANCE * eye_distance:
    raise BadExampleError(
        "face does not match annotation",
        f"closest detected face is {distances[best]:.1f} px from the "
        f"annotated points (eye distance {eye_distance:.1f} px)")
  return detections[best]


def chunk(items: Sequence, size: int) -> List[list]:
  """Consecutive chunks of `size`; the last holds the remainder."""
  return [list(items[start:start + size])
          for start in range(0, len(items), size)]


class Builder(ManualDirBuild, beam_build.BeamBuild,
              tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for CelebA (manual download).

  Runs on Beam when the build is given Beam pipeline options (one identity
  of a split per unit of work), else as a plain generator.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  MANUAL_FILES = (IDENTITY_FILE, PARTITION_FILE, IMAGE_DIR)
  BUILDER_CONFIGS = [
      CelebAConfig(name="default",
                   description="224 crops, groups of up to 3 photos of one "
                               "identity."),
  ]
  DEFAULT_CONFIG_NAME = "default"

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    # Per split: images kept/skipped by reason (read by the tests).
    self.skip_counters: Dict[str, SkipCounter] = {}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=features_lib.multiview_features(
            self.builder_config.image_size, num_views=None, extra={
                # The group's source images, e.g. "000001.jpg", one per view.
                FILE_NAMES_KEY: tfds.features.Sequence(
                    tfds.features.Text(),
                    doc="Per view, the CelebA source image file name, e.g. "
                        "000001.jpg."),
            }),
        supervised_keys=None,
        homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
        citation="""\
@inproceedings{liu2015faceattributes,
  title = {Deep Learning Face Attributes in the Wild},
  author = {Liu, Ziwei and Luo, Ping and Wang, Xiaogang and Tang, Xiaoou},
  booktitle = {Proceedings of International Conference on Computer Vision (ICCV)},
  year = {2015}
}""",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = dl_manager.manual_dir
    for name in (IDENTITY_FILE, PARTITION_FILE, IMAGE_DIR):
      if not (root / name).exists():
        raise FileNotFoundError(
            f"{root / name} is missing.\n{_MANUAL_DOWNLOAD_INSTRUCTIONS}")
    landmarks_path = root / LANDMARKS_FILE
    five_points = (read_five_point_landmarks(landmarks_path)
                   if landmarks_path.exists() else None)
    records = split_records(read_partition(root / PARTITION_FILE),
                            read_identities(root / IDENTITY_FILE), five_points)
    config = self.builder_config
    process = functools.partial(
        process_identity, image_dir=os.fspath(root / IMAGE_DIR),
        image_size=config.image_size, views_per_group=config.views_per_group)
    generators = {}
    for split in SPLIT_NAMES.values():
      counter = SkipCounter(f"celeba/{config.name} {split}", unit="images")
      self.skip_counters[split] = counter
      generators[split] = self._generate_examples(
          split, identity_units(records[split]), process, {"images": counter})
    return generators


def identity_units(records: Sequence[ImageRecord]
                   ) -> List[Tuple[ImageRecord, ...]]:
  """The units of work of a split: each identity's records (in order)."""
  return [tuple(group) for _, group in itertools.groupby(
      records, key=lambda record: record.identity)]


def face_of(record: ImageRecord, image_dir: str, image_size: int
            ) -> Tuple[str, dict]:
  """(file name, {"identity", "face"}) of one CelebA image.

  Raises:
    BadExampleError: no identity label, unreadable image, no face found,
      or the detected face is not the annotated one.
  """
  # Imported here so that reading a prepared dataset does not need the
  # preprocessing dependencies.
  from mgc_tf.faces2d import preprocessing  # pylint: disable=g-import-not-at-top
  if record.identity is None:
    raise BadExampleError("no identity label", f"not in {IDENTITY_FILE}")
  image = read_image_rgb(os.path.join(image_dir, record.file_name))
  detections = preprocessing.default_landmarker().detect(image)
  if not detections:
    raise BadExampleError("no face found",
                          f"{image.shape[1]}x{image.shape[0]} image")
  detection = (detections[0] if record.five_points is None else
               select_annotated_face(detections, record.five_points))
  face = preprocessing.crop_face(image, detection.landmarks, detection.box,
                                 image_size)
  return record.file_name, {"identity": record.identity, "face": face}


def process_identity(records: Sequence[ImageRecord],
                     tallies: Mapping[str, SkipCounter], image_dir: str,
                     image_size: int, views_per_group: int
                     ) -> Iterator[Tuple[str, dict]]:
  """One unit of a build: one identity's photos of a split, aligned and cut
  into groups of up to `views_per_group`.

  Args:
    records: the identity's images, in file order.
    tallies: {"images": SkipCounter}.
    image_dir: the folder of the aligned JPEGs.
    image_size: side S of the aligned crops, pixels.
    views_per_group: photos per example.
  """
  faces = skip_bad(records,
                   lambda record: face_of(record, image_dir, image_size),
                   tallies["images"], key_of=lambda record: record.file_name)
  # Grouping after the skips keeps the groups full.
  for identity, items in itertools.groupby(
      faces, key=lambda item: item[1]["identity"]):
    for group in chunk(list(items), views_per_group):
      names = [name for name, _ in group]
      crops = [item["face"] for _, item in group]
      example = features_lib.stack_views(
          [face.image for face in crops], [face.landmarks for face in crops],
          [face.skin for face in crops], identity, image_size)
      example[FILE_NAMES_KEY] = names
      yield f"{identity}_{names[0]}", example
