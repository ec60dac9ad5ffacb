"""Features a method may ask the training pipeline for beside the core ones.

The core batch is images, landmarks, skin and flag (`mgc_tf.data.pipeline`).
A method that reads more (ground truth on synthetic data, identity labels)
lists the names in `Method.extra_features`; the trainer passes them to
`PipelineConfig.extra_features`, and every batch then holds, per name:

  <name>       the values, resized and augmented with the views they belong to
  has_<name>   [B] bool: whether the sample's source stores the feature; where
               it does not, <name> is zeros (or "" for text)

so sources with and without ground truth mix in one batch and a loss gates
itself per sample with `has_<name>`.

How a feature travels depends on its `Kind`:

  VIEW_IMAGE   per-view PNG maps [V, S, S, 1] uint8 -> [B, N, S, S, 1] float32
               in [0, 1], resized and warped bilinearly (face_mask, occlusion)
  VIEW_DENSE   per-view float maps [V, S, S] -> [B, N, S, S, 1] float32, resized
               and warped by nearest neighbour so that a map's values are
               never blended across an edge (depth in mm, 0 off the face)
  VIEW_POINTS  per-view points [V, L, 2] crop pixels -> [B, N, L, 2], moved
               with the crop as `landmarks` are (landmarks_true)
  VIEW_VALUES  per-view values [V, ...] -> [B, N, ...], unchanged
               (coefficients, pose, yaw_degrees, landmark_status,
               occluded_fraction)
  SAMPLE_TEXT  one text per example -> [B] string (identity)

VIEW_VALUES describe the un-augmented crop: the pipeline's zoom and shift
move the image but not, say, the pose that rendered it, so a method that
supervises with them trains with `--augment=false` (or undoes the shift).
"""

import dataclasses
import enum
from typing import Dict, Sequence, Tuple

import tensorflow as tf


class Kind(enum.Enum):
  VIEW_IMAGE = "view_image"
  VIEW_DENSE = "view_dense"
  VIEW_POINTS = "view_points"
  VIEW_VALUES = "view_values"
  SAMPLE_TEXT = "sample_text"

  @property
  def per_view(self) -> bool:
    return self is not Kind.SAMPLE_TEXT


@dataclasses.dataclass(frozen=True)
class ExtraFeature:
  """One feature the pipeline can carry.

  Attributes:
    name: the feature's key in the TFDS examples and in the batch.
    kind: how it is decoded, resized and augmented (see the module doc).
    description: one line with shape and units, for docs and errors.
  """
  name: str
  kind: Kind
  description: str


_KNOWN: Dict[str, ExtraFeature] = {}


def register(feature: ExtraFeature) -> ExtraFeature:
  """Makes `feature.name` a name methods may ask for (plugins too)."""
  _KNOWN[feature.name] = feature
  return feature


for _feature in (
    ExtraFeature("depth", Kind.VIEW_DENSE,
                 "[B, N, S, S, 1] float32 mm, camera z of the face, 0 off it"),
    ExtraFeature("face_mask", Kind.VIEW_IMAGE,
                 "[B, N, S, S, 1] float32, 1 on the visible face"),
    ExtraFeature("occlusion", Kind.VIEW_IMAGE,
                 "[B, N, S, S, 1] float32, occluder coverage in [0, 1]"),
    ExtraFeature("landmarks_true", Kind.VIEW_POINTS,
                 "[B, N, 68, 2] float32 crop pixels, exact landmarks"),
    ExtraFeature("coefficients", Kind.VIEW_VALUES,
                 "[B, N, K] float32, ground-truth coefficient vectors"),
    ExtraFeature("pose", Kind.VIEW_VALUES,
                 "[B, N, 6] float32, absolute pose (radians, mm)"),
    ExtraFeature("yaw_degrees", Kind.VIEW_VALUES,
                 "[B, N] float32 degrees, head yaw"),
    ExtraFeature("landmark_status", Kind.VIEW_VALUES,
                 "[B, N] int32, how each view's landmarks were made"),
    ExtraFeature("occluded_fraction", Kind.VIEW_VALUES,
                 "[B, N] float32, fraction of the face occluders hide"),
    ExtraFeature("identity", Kind.SAMPLE_TEXT,
                 "[B] string, the person the views show"),
):
  register(_feature)


def lookup(names: Sequence[str]) -> Tuple[ExtraFeature, ...]:
  """The `ExtraFeature`s of `names`; ValueError naming an unknown one."""
  unknown = [name for name in names if name not in _KNOWN]
  if unknown:
    raise ValueError(f"Unknown extra batch feature(s) {unknown}; known: "
                     f"{', '.join(sorted(_KNOWN))} "
                     "(mgc_tf.data.extra_features.register adds one)")
  return tuple(_KNOWN[name] for name in names)


def has_key(name: str) -> str:
  return f"has_{name}"


@dataclasses.dataclass(frozen=True)
class ValueTemplate:
  """Shape (without the view axis) and dtype of a VIEW_VALUES or
  VIEW_POINTS feature, taken from a source that stores it, so that a
  source without it can give zeros of the same form."""
  shape: Tuple[int, ...]
  dtype: tf.DType


def value_templates(builders, features: Sequence[ExtraFeature]
                    ) -> Dict[str, ValueTemplate]:
  """name -> ValueTemplate for the array features some builder stores.

  Raises:
    ValueError: two sources store a feature with different shapes.
  """
  templates: Dict[str, ValueTemplate] = {}
  for feature in features:
    if feature.kind not in (Kind.VIEW_VALUES, Kind.VIEW_POINTS):
      continue
    for builder in builders:
      stored = builder.info.features
      if feature.name not in stored:
        continue
      connector = stored[feature.name]
      template = ValueTemplate(tuple(connector.shape[1:]),
                               tf.as_dtype(connector.dtype))
      known = templates.setdefault(feature.name, template)
      if known != template:
        raise ValueError(
            f"Sources store {feature.name!r} with different shapes "
            f"({known.shape} and {template.shape}); they cannot share a "
            "batch")
  return templates


def read(example, stored_keys, features: Sequence[ExtraFeature],
         templates: Dict[str, ValueTemplate], view_count: tf.Tensor
         ) -> Dict[str, tf.Tensor]:
  """Extra features of one raw example (images still encoded).

  Args:
    example: the TFDS example, with VIEW_IMAGE features left encoded.
    stored_keys: the keys the source stores.
    features: the features to read.
    templates: from `value_templates`.
    view_count: scalar int32, V (views, or frames of a video).

  Returns:
    name -> per-view [V, ...] (or per-example) values, and has_<name> ->
    scalar bool; zeros (or empty strings) where the source lacks the name.
  """
  out = {}
  for feature in features:
    present = feature.name in stored_keys
    out[has_key(feature.name)] = tf.constant(present)
    if present:
      value = example[feature.name]
      if feature.kind is Kind.VIEW_DENSE:
        value = tf.cast(value, tf.float32)
      out[feature.name] = value
      continue
    if feature.kind is Kind.VIEW_IMAGE:
      out[feature.name] = tf.fill([view_count], "")
    elif feature.kind is Kind.VIEW_DENSE:
      out[feature.name] = tf.zeros([view_count, 1, 1])
    elif feature.kind is Kind.SAMPLE_TEXT:
      out[feature.name] = tf.constant("")
    else:
      template = templates.get(feature.name)
      if template is None:  # No source stores it: a placeholder of rank 1.
        template = ValueTemplate((), tf.float32)
      out[feature.name] = tf.zeros((view_count,) + template.shape,
                                   template.dtype)
  return out


def decode(sample, features: Sequence[ExtraFeature], num_views: int,
           image_size: int, raw_size: tf.Tensor,
           decode_images) -> Dict[str, tf.Tensor]:
  """Decodes and resizes the extra features of one N-view sample.

  Args:
    sample: the selected sample (N views), as `read` left them.
    features: the features to decode.
    num_views: N.
    image_size: S, the training crop side.
    raw_size: scalar float32, the stored crops' side.
    decode_images: [N] encoded -> [N, H, W, C] uint8 (the pipeline's).

  Returns:
    name -> values at the training size (before augmentation), and every
    has_<name> unchanged.
  """
  out = {}
  for feature in features:
    name = feature.name
    value, present = sample[name], sample[has_key(name)]
    out[has_key(name)] = present
    if feature.kind is Kind.VIEW_IMAGE:
      out[name] = tf.cond(
          present,
          lambda v=value: tf.image.resize(
              tf.image.convert_image_dtype(decode_images(v, 1), tf.float32),
              [image_size, image_size], antialias=True),
          lambda: tf.zeros([num_views, image_size, image_size, 1]))
    elif feature.kind is Kind.VIEW_DENSE:
      out[name] = tf.image.resize(value[..., None], [image_size, image_size],
                                  method="nearest")
    elif feature.kind is Kind.VIEW_POINTS:
      scale = image_size / raw_size
      moved = (value + 0.5) * scale - 0.5
      out[name] = tf.where(present, moved, tf.zeros_like(moved))
    else:
      out[name] = value
    if feature.kind.per_view:
      out[name] = tf.ensure_shape(
          out[name], [num_views] + [None] * (out[name].shape.rank - 1))
  return out


def augmentable(values: Dict[str, tf.Tensor],
                features: Sequence[ExtraFeature]
                ) -> Tuple[Dict[str, Tuple[tf.Tensor, str]],
                           Dict[str, tf.Tensor]]:
  """Splits decoded extras into the maps and points augmentation moves.

  Returns:
    maps: name -> ([N, S, S, C], interpolation "bilinear" or "nearest");
    points: name -> [N, L, 2].
  """
  maps, points = {}, {}
  for feature in features:
    if feature.kind is Kind.VIEW_IMAGE:
      maps[feature.name] = (values[feature.name], "bilinear")
    elif feature.kind is Kind.VIEW_DENSE:
      maps[feature.name] = (values[feature.name], "nearest")
    elif feature.kind is Kind.VIEW_POINTS:
      points[feature.name] = values[feature.name]
  return maps, points


def given_by(builders, names: Sequence[str]) -> Dict[str, int]:
  """name -> how many of the builders store it (for a start-up note)."""
  return {name: sum(name in builder.info.features for builder in builders)
          for name in names}


def zero_missing(values: Dict[str, tf.Tensor],
                 features: Sequence[ExtraFeature]) -> Dict[str, tf.Tensor]:
  """Zeros the per-view extras of a sample whose source lacks them (the
  augmentation's shift would otherwise move zero points off zero)."""
  out = dict(values)
  for feature in features:
    if feature.kind.per_view:
      value = out[feature.name]
      out[feature.name] = tf.where(out[has_key(feature.name)], value,
                                   tf.zeros_like(value))
  return out
