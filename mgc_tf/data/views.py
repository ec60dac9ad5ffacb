"""Multi-view and video examples as single views, e.g. for tfds.show_examples.

`tfds.show_examples` (tensorflow-datasets 4.9) draws a dataset whose info has
a top-level `tfds.features.Image`. Our multi-view builders store a
`Sequence(Image)` per example and the video builders a `Video`, which it
does not draw (and on synthetic_multiview its graph visualiser first trips
over the integer `target_view` metadata: `TypeError: 'int' object is not
iterable`). TFDS has no public way to register another visualiser, so these
two functions give it what it draws, one image per example:

  ds, info = tfds.load("synthetic_multiview/small", split="test",
                       data_dir=DATA_DIR, with_info=True)
  fig = tfds.show_examples(views.single_views(ds, info),
                           views.single_view_info(info))

Each single-view example holds `image` (one crop or frame), `view` (its index
in the example), and, where the example has them, `landmarks` [68, 2] (crop
pixels) and `identity`. `key="skin"` shows the skin maps instead.
"""

from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.data import features as features_lib

IMAGE_KEY = "image"
VIEW_KEY = "view"


def view_sequence_keys(features: tfds.features.FeaturesDict) -> list:
  """Top-level keys whose feature is a sequence of images (Video included)."""
  return [key for key, feature in features.items()
          if isinstance(feature, tfds.features.Sequence)
          and isinstance(feature.feature, tfds.features.Image)]


def _sequence_key(info: tfds.core.DatasetInfo, key: Optional[str]) -> str:
  keys = view_sequence_keys(info.features)
  if key is None:
    for default in (features_lib.IMAGE_KEY, features_lib.FRAMES_KEY):
      if default in keys:
        return default
    if not keys:
      raise ValueError(
          f"{info.full_name} has no sequence of images to split into views; "
          "a dataset with a top-level Image feature is drawn directly: "
          "tfds.show_examples(ds, info, image_key=...).")
    return keys[0]
  if key not in keys:
    raise ValueError(f"key must name a sequence of images of "
                     f"{info.full_name}: one of {keys}. Received: key={key!r}")
  return key


def single_views(dataset: tf.data.Dataset, info: tfds.core.DatasetInfo,
                 key: Optional[str] = None) -> tf.data.Dataset:
  """Un-nests a (non-batched) multi-view or video dataset: one view each.

  Args:
    dataset: examples as the builder stores them (`builder.as_dataset`).
    info: the builder's info.
    key: the sequence of images to split ("images", "frames", "skin", ...);
      default "images", else "frames".

  Returns:
    A dataset of {image, view, landmarks?, identity?}, views in order.
  """
  key = _sequence_key(info, key)
  names = set(info.features.keys())

  def to_views(example):
    images = example[key]
    count = tf.shape(images)[0]
    views = {IMAGE_KEY: images, VIEW_KEY: tf.range(count, dtype=tf.int32)}
    if features_lib.LANDMARKS_KEY in names:
      views[features_lib.LANDMARKS_KEY] = example[features_lib.LANDMARKS_KEY]
    if features_lib.IDENTITY_KEY in names:
      views[features_lib.IDENTITY_KEY] = tf.fill(
          [count], example[features_lib.IDENTITY_KEY])
    return tf.data.Dataset.from_tensor_slices(views)

  return dataset.flat_map(to_views)


def single_view_info(info: tfds.core.DatasetInfo,
                     key: Optional[str] = None) -> tfds.core.DatasetInfo:
  """The DatasetInfo that describes `single_views(dataset, info, key)`.

  It has the dataset's name, version, homepage and citation, the flat
  features, and no metadata.
  """
  key = _sequence_key(info, key)
  image = info.features[key].feature
  flat = {
      IMAGE_KEY: tfds.features.Image(
          shape=image.shape, dtype=image.np_dtype,
          doc=f"One element of `{key}`: {info.features[key].doc.desc}"),
      VIEW_KEY: tfds.features.Scalar(
          dtype=np.int32, doc="Index of the view (or frame) in its example."),
  }
  if features_lib.LANDMARKS_KEY in info.features:
    flat[features_lib.LANDMARKS_KEY] = tfds.features.Tensor(
        shape=(features_lib.NUM_LANDMARKS, 2), dtype=np.float32,
        doc=(f"{features_lib.LANDMARKS_68} of this view, in "
             f"{features_lib.CROP_PIXELS}."))
  if features_lib.IDENTITY_KEY in info.features:
    flat[features_lib.IDENTITY_KEY] = tfds.features.Text(
        doc=features_lib.IDENTITY_DOC)
  identity = tfds.core.dataset_info.DatasetIdentity(
      name=info.name, version=info.version, data_dir=info.data_dir,
      module_name=info.module_name, config_name=info.config_name,
      config_description=info.config_description,
      release_notes=info.release_notes)
  return tfds.core.DatasetInfo(
      builder=identity,
      description=(f"One view per example of {info.full_name} "
                   f"(mgc_tf.data.views.single_views, key {key!r})."),
      features=tfds.features.FeaturesDict(flat),
      homepage=info.homepage, citation=info.citation)
