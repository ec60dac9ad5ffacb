"""aflw2000_3d: AFLW2000-3D landmarks and pose for evaluation (manual download).

AFLW2000-3D (Zhu et al., "Face Alignment Across Large Poses: A 3D Solution",
CVPR 2016) re-annotates the first 2000 images of AFLW with 68 3D-consistent
landmarks and a 3DMM fit. It is the standard test set for 68-point alignment
over large poses (NME normalised by the landmark box size, reported per
absolute-yaw bin 0-30, 30-60 and 60-90 degrees), which MGCNet reports.

One example per image: the original photograph, its 68 landmarks and the
landmark box (the NME normaliser), the ground-truth pose, and the aligned 224
crop that the reconstructor takes, with the 2 x 3 transform from the original
image to the crop so predictions can be mapped back. Docs:
docs/datasets/aflw2000_3d.md.
"""

import dataclasses
from typing import Dict, Iterator, Tuple

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from mgc_tf.data.manual_dir import ManualDirBuild
from mgc_tf.io import annotations
from mgc_tf.io.bad_input import (NUM_LANDMARKS, BadExampleError,
                                 SkipCounter, generate_with_skips,
                                 read_image_rgb)

IMAGE_FOLDER = "AFLW2000"
ZIP_NAME = "AFLW2000-3D.zip"
HOMEPAGE = ("http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/"
            "main.htm")

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
AFLW2000-3D cannot be downloaded automatically. Get AFLW2000-3D.zip from the
3DDFA project page ({HOMEPAGE}; direct link:
http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/Database/AFLW2000-3D.zip)
and put it in --manual_dir (default: <data_dir>/downloads/manual/), either
as the zip itself or extracted:

  <manual_dir>/{ZIP_NAME}                 (extracted by the build), or
  <manual_dir>/{IMAGE_FOLDER}/image00002.jpg
  <manual_dir>/{IMAGE_FOLDER}/image00002.mat   pt3d_68, Pose_Para, ...
  <manual_dir>/{IMAGE_FOLDER}/...              (2000 .jpg/.mat pairs)

The images and .mat files may also sit directly in <manual_dir>.
"""


# pt3d_68 is in MATLAB pixel coordinates (the centre of the first pixel is 1).
LANDMARKS_ONE_BASED = True


@dataclasses.dataclass(frozen=True)
class Annotation:
  """The parts of an AFLW2000-3D .mat file that the evaluation uses.

  Attributes:
    landmarks: float32 [68, 2] (x, y) in 0-based original image pixels:
      rows 0-1 of `pt3d_68` minus 1 (MATLAB 1-based, as in 300W-LP: see
      "Pixel origin" in docs/datasets/aflw2000_3d.md).
    pose: float32 [3] (pitch, yaw, roll) radians: `Pose_Para[:3]`.
  """
  landmarks: np.ndarray
  pose: np.ndarray


def read_annotation(mat_path: str) -> Annotation:
  """Reads the landmarks and pose of one AFLW2000-3D `.mat` file.

  `pt3d_68` is 3 x 68 (x, y, z); `Pose_Para` is 1 x 7 = pitch, yaw, roll
  (radians), tx, ty, tz, scale of the 3DDFA fit.

  Raises:
    BadExampleError: "unreadable mat file" (missing, truncated), "missing mat
      variable", "wrong landmark count", "non-finite landmarks", "bad pose".
  """
  contents = annotations.read_mat(mat_path)
  # The 3DDFA fits behind AFLW2000-3D and 300W-LP are MATLAB, 1-based; we
  # store 0-based pixels like every other builder (w300_lp does the same).
  landmarks = annotations.landmarks_from_matrix(
      annotations.mat_variable(contents, "pt3d_68", mat_path), source=mat_path,
      one_based=LANDMARKS_ONE_BASED)
  pose_para = annotations.mat_variable(contents, "Pose_Para",
                                       mat_path).reshape(-1)
  if pose_para.size < 3 or not np.all(np.isfinite(pose_para[:3])):
    raise BadExampleError(
        "bad pose", f"{mat_path}: Pose_Para {pose_para.tolist()} needs 3 "
        "finite angles (pitch, yaw, roll)")
  return Annotation(landmarks=landmarks,
                    pose=pose_para[:3].astype(np.float32))


def find_image_folder(manual_dir: epath.Path,
                      extract=None) -> epath.Path:
  """The folder holding the AFLW2000 .jpg/.mat pairs.

  Looks for `<manual_dir>/AFLW2000/`, then images directly in `manual_dir`,
  then `<manual_dir>/AFLW2000-3D.zip` (passed to `extract`, which returns the
  extraction folder; the images are in its AFLW2000/ or at its top).

  Raises:
    FileNotFoundError: none of these, with the download instructions.
  """
  candidates = [manual_dir / IMAGE_FOLDER, manual_dir]
  archive = manual_dir / ZIP_NAME
  if extract is not None and archive.exists():
    extracted = epath.Path(extract(archive))
    candidates += [extracted / IMAGE_FOLDER, extracted]
  for folder in candidates:
    if folder.is_dir() and any(folder.glob("*.jpg")):
      return folder
  raise FileNotFoundError(
      f"No AFLW2000-3D images (*.jpg) found in {manual_dir}.\n"
      f"{_MANUAL_DOWNLOAD_INSTRUCTIONS}")


def _stored_original(jpeg_bytes: bytes, rgb: np.ndarray):
  """The original JPEG bytes (no second lossy encoding) when TF decodes them
  to the same image size, else the decoded RGB array."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if jpeg_bytes[:2] == b"\xff\xd8":
    try:
      shape = tuple(tf.io.decode_jpeg(jpeg_bytes, channels=3).shape)
    except (tf.errors.InvalidArgumentError, ValueError):
      shape = None
    if shape == rgb.shape:
      return jpeg_bytes
  return rgb


@dataclasses.dataclass
class Aflw2000Config(tfds.core.BuilderConfig):
  """Attributes: image_size: side S of the aligned square crop, pixels."""
  image_size: int = 224


class Builder(ManualDirBuild, tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for AFLW2000-3D (manual download, `test` split only)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      Aflw2000Config(
          name="default",
          description="Originals plus 224 crops aligned with the ground-truth "
                      "landmarks."),
  ]
  DEFAULT_CONFIG_NAME = "default"

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    # Per split: images kept/skipped by reason (read by the tests, reported
    # at the end of the build).
    self.skip_counters: Dict[str, SkipCounter] = {}

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    float32 = np.float32
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            # The photograph as distributed (its JPEG bytes, unchanged).
            "image": tfds.features.Image(
                shape=(None, None, 3), encoding_format="jpeg",
                doc="The photograph as distributed, [H, W, 3] uint8 RGB in "
                    "[0, 255]."),
            # pt3d_68 rows x, y minus 1: 0-based original image pixels.
            "landmarks_original": tfds.features.Tensor(
                shape=(NUM_LANDMARKS, 2), dtype=float32,
                doc="[68, 2] float32: the 68 landmarks (x, y), iBUG order "
                    "(pt3d_68 rows x, y minus 1), in original-image pixels, "
                    "OpenCV convention: x to the right, y down, the centre "
                    "of the top-left pixel at (0, 0)."),
            # (x0, y0, x1, y1) extent of the 68 landmarks, original pixels;
            # the NME normaliser is sqrt((x1 - x0) * (y1 - y0)).
            "box": tfds.features.Tensor(
                shape=(4,), dtype=float32,
                doc="(x0, y0, x1, y1) float32: the extent of the 68 "
                    "landmarks in original-image pixels; the NME normaliser "
                    "is sqrt((x1 - x0) * (y1 - y0))."),
            # (pitch, yaw, roll) radians, Pose_Para[:3].
            "pose": tfds.features.Tensor(
                shape=(3,), dtype=float32,
                doc="(pitch, yaw, roll) float32 radians: Pose_Para[:3] of "
                    "the dataset's 3DMM fit."),
            # Signed yaw in degrees; the evaluation bins |yaw|.
            "yaw_degrees": tfds.features.Scalar(
                dtype=float32,
                doc="Signed yaw, float32 degrees (pose[1]); the evaluation "
                    "bins |yaw| into 0-30, 30-60 and 60-90."),
            "aligned_image": tfds.features.Image(
                shape=(size, size, 3), encoding_format="jpeg",
                doc="The aligned S x S crop the reconstructor takes (5-point "
                    "template), uint8 RGB in [0, 255]."),
            # The 68 landmarks in aligned-crop pixels.
            "landmarks": tfds.features.Tensor(
                shape=(NUM_LANDMARKS, 2), dtype=float32,
                doc="[68, 2] float32: the 68 landmarks (x, y), iBUG order, "
                    "in crop pixels of aligned_image, OpenCV convention: x "
                    "to the right, y down, the centre of the top-left pixel "
                    "at (0, 0)."),
            # Skin probability * 255 of the aligned crop.
            "skin": tfds.features.Image(
                shape=(size, size, 1), encoding_format="png",
                doc="Skin probability of aligned_image, [S, S, 1] uint8 = "
                    "probability x 255."),
            # 2 x 3 affine map original -> crop pixels; invert it to map
            # predicted crop landmarks back to the original image.
            "transform": tfds.features.Tensor(
                shape=(2, 3), dtype=float32,
                doc="2 x 3 float32 affine map from original-image pixels to "
                    "crop pixels ([x', y'] = A [x, y, 1]); invert it to map "
                    "crop predictions back to the photograph."),
            "file_name": tfds.features.Text(
                doc="The image file name, e.g. image00002.jpg."),
        }),
        supervised_keys=None,
        homepage=HOMEPAGE,
        citation="""@inproceedings{zhu2016face,
  title={Face Alignment Across Large Poses: A 3D Solution},
  author={Zhu, Xiangyu and Lei, Zhen and Liu, Xiaoming and Shi, Hailin and Li, Stan Z.},
  booktitle={CVPR},
  year={2016}
}""",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    folder = find_image_folder(dl_manager.manual_dir, dl_manager.extract)
    return {"test": self._generate_examples(folder, "test")}

  def _generate_examples(self, folder: epath.Path, split: str
                         ) -> Iterator[Tuple[str, dict]]:
    counter = SkipCounter(f"aflw2000_3d {split}")
    self.skip_counters[split] = counter
    images = sorted(folder.glob("*.jpg"), key=lambda path: path.name)
    yield from generate_with_skips(images, self._example, counter,
                                   key_of=lambda path: path.name)

  def _example(self, image_path: epath.Path) -> Tuple[str, dict]:
    """One image and its .mat file -> (key, example).

    Raises:
      BadExampleError: unreadable image or .mat file, bad landmarks or pose.
    """
    # Imported here so that reading a prepared dataset does not need the
    # preprocessing dependencies.
    from mgc_tf.faces2d import preprocessing  # pylint: disable=g-import-not-at-top
    rgb = read_image_rgb(str(image_path))
    annotation = read_annotation(str(image_path.with_suffix(".mat")))
    face = preprocessing.preprocess_face(
        rgb, landmarks=annotation.landmarks,
        image_size=self.builder_config.image_size)
    return image_path.stem, {
        "image": _stored_original(image_path.read_bytes(), rgb),
        "landmarks_original": annotation.landmarks,
        "box": preprocessing.landmark_box(annotation.landmarks),
        "pose": annotation.pose,
        "yaw_degrees": np.float32(np.degrees(annotation.pose[1])),
        "aligned_image": face.image,
        "landmarks": face.landmarks.astype(np.float32),
        "skin": face.skin,
        "transform": face.transform.astype(np.float32),
        "file_name": image_path.name,
    }
