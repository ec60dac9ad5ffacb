"""TFDS feature schemas shared by the builders, and helpers that fill them.

Every multi-view and single-view builder emits the same core features, so the
pipeline (`mgc_tf.data.pipeline`) reads any of them the same way:

  images:     Sequence of [S, S, 3] uint8 aligned crops (one per view)
  landmarks:  [V, 68, 2] float32, crop pixels (OpenCV convention: the centre of
              pixel [i, j] is at (x, y) = (j, i))
  skin:       Sequence of [S, S, 1] uint8 skin probability * 255
  identity:   text, the person (or capture) the views show

V is the number of views of the example (fixed for the synthetic set, varying
for real multi-view groups). Video builders emit `frames`, `landmarks` [T, 68, 2],
`skin` and `identity` per video, and the pipeline cuts N-frame windows.
Builders add their own ground truth next to these keys.

Every feature carries a `doc=` (what it is, its units, its frame), shown by
`builder.info.features` and in the dataset catalog; the phrases below say the
conventions once. docs/data.md tabulates them.
"""

from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow_datasets as tfds

from mgc_tf.io.bad_input import NUM_LANDMARKS, BadExampleError

#: BibTeX of MGCNet: the citation of the builders of a user's own data
#: (no dataset paper) and of the synthetic set.
MGCNET_CITATION = """@inproceedings{shang2020self,
  title={Self-Supervised Monocular 3D Face Reconstruction by Occlusion-Aware
         Multi-view Geometry Consistency},
  author={Shang, Jiaxiang and Shen, Tianwei and Li, Shiwei and Zhou, Lei and
          Zhen, Mingmin and Fang, Tian and Quan, Long},
  booktitle={European Conference on Computer Vision (ECCV)},
  year={2020}
}"""
MGCNET_HOMEPAGE = "https://github.com/jiaxiangshang/MGCNet"

IMAGE_KEY = "images"
FRAMES_KEY = "frames"
LANDMARKS_KEY = "landmarks"
SKIN_KEY = "skin"
IDENTITY_KEY = "identity"

# Units and frames, in the words every feature doc uses (DESIGN.md section 4).
CROP_PIXELS = ("crop pixels, OpenCV convention: x to the right, y down, the "
               "centre of the top-left pixel at (0, 0)")
IMAGE_PIXELS = ("original-image pixels, OpenCV convention: x to the right, y "
                "down, the centre of the top-left pixel at (0, 0)")
CAMERA_FRAME = ("camera frame, OpenCV axes: x to the right, y down, z forward "
                "(away from the camera)")
RGB_UINT8 = "uint8 RGB in [0, 255] (the pipeline divides by 255: [0, 1] RGB)"
LANDMARKS_68 = "68 facial landmarks (x, y) in the iBUG/Multi-PIE order"

IMAGES_DOC = (f"V aligned face crops, [S, S, 3] {RGB_UINT8}: photographs "
              "aligned to the 224 template by a 5-point similarity (eye "
              "centres, nose tip, mouth corners) and scaled to S; renders are "
              "drawn at S directly.")
FRAMES_DOC = (f"T aligned face frames, [T, S, S, 3] {RGB_UINT8}, aligned as "
              "the multi-view crops are.")
LANDMARKS_DOC = (f"[V, 68, 2] float32: per view, {LANDMARKS_68}, in "
                 f"{CROP_PIXELS}.")
VIDEO_LANDMARKS_DOC = (f"[T, 68, 2] float32: per frame, {LANDMARKS_68}, in "
                       f"{CROP_PIXELS}.")
SKIN_DOC = ("Per view, a skin-probability map of the crop, [S, S, 1] uint8 = "
            "probability x 255 (the pipeline divides by 255: [0, 1]); same "
            "pixels as the crop.")
IDENTITY_DOC = ("Text: the person (or capture) shown; examples with the same "
                "identity show the same person.")


def multiview_features(image_size: int,
                       num_views: Optional[int] = None,
                       image_format: str = "jpeg",
                       extra: Optional[Dict[str, tfds.features.FeatureConnector]] = None
                       ) -> tfds.features.FeaturesDict:
  """Features of a multi-view (or same-identity group) example.

  Args:
    image_size: side S of the aligned crops.
    num_views: fixed number of views V, or None for a variable count.
    image_format: "jpeg" (real photographs) or "png" (lossless renders).
    extra: builder-specific features (ground truth, metadata).
  """
  features = {
      IMAGE_KEY: tfds.features.Sequence(
          tfds.features.Image(shape=(image_size, image_size, 3),
                              encoding_format=image_format),
          length=num_views, doc=IMAGES_DOC),
      LANDMARKS_KEY: tfds.features.Tensor(
          shape=(num_views, NUM_LANDMARKS, 2), dtype=np.float32,
          doc=LANDMARKS_DOC),
      SKIN_KEY: tfds.features.Sequence(
          tfds.features.Image(shape=(image_size, image_size, 1),
                              encoding_format="png"),
          length=num_views, doc=SKIN_DOC),
      IDENTITY_KEY: tfds.features.Text(doc=IDENTITY_DOC),
  }
  features.update(extra or {})
  return tfds.features.FeaturesDict(features)


def video_features(image_size: int,
                   extra: Optional[Dict[str, tfds.features.FeatureConnector]] = None
                   ) -> tfds.features.FeaturesDict:
  """Features of a face video: T aligned frames with per-frame landmarks."""
  features = {
      FRAMES_KEY: tfds.features.Video(shape=(None, image_size, image_size, 3),
                                      encoding_format="jpeg", doc=FRAMES_DOC),
      LANDMARKS_KEY: tfds.features.Tensor(shape=(None, NUM_LANDMARKS, 2),
                                          dtype=np.float32,
                                          doc=VIDEO_LANDMARKS_DOC),
      SKIN_KEY: tfds.features.Video(shape=(None, image_size, image_size, 1),
                                    encoding_format="png",
                                    doc=SKIN_DOC.replace("Per view",
                                                         "Per frame")),
      IDENTITY_KEY: tfds.features.Text(doc=IDENTITY_DOC),
  }
  features.update(extra or {})
  return tfds.features.FeaturesDict(features)


def skin_to_uint8(skin: np.ndarray) -> np.ndarray:
  """Skin probability [S, S] or [S, S, 1] in [0, 1] -> uint8 [S, S, 1]."""
  skin = np.asarray(skin)
  if skin.dtype != np.uint8:
    skin = np.clip(np.round(np.asarray(skin, np.float64) * 255.0), 0, 255)
    skin = skin.astype(np.uint8)
  return skin.reshape(skin.shape[0], skin.shape[1], 1)


def stack_views(images: Sequence[np.ndarray], landmarks: Sequence[np.ndarray],
                skins: Sequence[np.ndarray], identity: str,
                image_size: int) -> dict:
  """Checks and stacks per-view arrays into the core multi-view features.

  Args:
    images: V uint8 [S, S, 3] crops.
    landmarks: V [68, 2] landmark arrays in crop pixels.
    skins: V skin maps, [S, S] or [S, S, 1], float in [0, 1] or uint8.
    identity: identity label.
    image_size: expected S.

  Returns:
    dict with the IMAGE/LANDMARKS/SKIN/IDENTITY keys filled.

  Raises:
    BadExampleError: no views, mismatched counts, wrong sizes or bad landmarks.
  """
  from mgc_tf.io.bad_input import check_landmarks  # pylint: disable=g-import-not-at-top
  if not images:
    raise BadExampleError("no usable views", f"identity {identity}")
  if not len(images) == len(landmarks) == len(skins):
    raise BadExampleError(
        "inconsistent views",
        f"{len(images)} images, {len(landmarks)} landmark sets, "
        f"{len(skins)} skin maps")
  for image in images:
    if image.shape != (image_size, image_size, 3) or image.dtype != np.uint8:
      raise BadExampleError(
          "wrong crop size",
          f"got {image.shape} {image.dtype}, expected "
          f"({image_size}, {image_size}, 3) uint8")
  return {
      IMAGE_KEY: list(images),
      LANDMARKS_KEY: np.stack([check_landmarks(lm) for lm in landmarks]),
      SKIN_KEY: [skin_to_uint8(skin) for skin in skins],
      IDENTITY_KEY: identity,
  }
