"""The reconstructor: one face crop -> K coefficients (face model's layout).

    image [B, S, S, 3] RGB in [0, 1]  ->  backbone  ->  [B, F] features
                                      ->  Dense(K) "coefficients"  ->  [B, K]

The coefficients are offsets (`mgc_tf.facemodel.coefficients`'s
`CoefficientLayout`): zero identity / albedo / expression / lighting is the
mean face under the 0.8 ambient light, and zero pose is the face model's
default pose. The head starts near zero, so the untrained network predicts
the mean face at the default pose: the renderer sees a face in the crop
from the first step.

The model is plain Keras 3 (functional, one registered custom layer for the
input preprocessing), so `model.save("x.keras")` / `keras.models.load_model`
and `tf.saved_model.save` of a `tf.function` around it both work. Its input is
named "image" and its output "coefficients".

Translation unit: the head predicts the pose translation (tx, ty, tz) in
units of `TRANSLATION_UNIT_MM` (100 mm), and a fixed `CoefficientScale`
layer turns them into millimetres, so every output of the head is O(1).
In millimetres, Adam moves a translation output by well under a millimetre
per step; aligned crops of turned heads need tens of millimetres of lateral
translation together with the yaw (the model's origin is not the centre of
rotation), so yaw stalled near 10 degrees on 60-90 degree views (see
docs/results.md). `coefficient_output_scale(layout)` gives the scale vector.

Mixed precision: build it under `keras.mixed_precision.set_global_policy(
"mixed_float16")` and the backbone computes in float16 while the input
preprocessing and the head stay float32, so the coefficients (and everything
decoded, rendered and compared from them) are float32.
"""

import dataclasses
import math
from typing import Optional, Sequence

import keras
import numpy as np

from mgc_tf.models import backbones
from mgc_tf.models import registry

HEAD_NAME = "coefficients"
INPUT_NAME = "image"
# Small enough that the first prediction is the mean face to well under a
# millimetre; not zero, so the backbone gets gradient from the first step.
DEFAULT_HEAD_STDDEV = 1e-5
# The head's unit for the pose translation (see the module docstring).
TRANSLATION_UNIT_MM = 100.0


def coefficient_output_scale(layout, translation_unit_mm: float =
                             TRANSLATION_UNIT_MM) -> np.ndarray:
  """[K] float32: 1 everywhere but `translation_unit_mm` on tx, ty, tz.

  Args:
    layout: a `mgc_tf.facemodel.coefficients.CoefficientLayout`.
    translation_unit_mm: millimetres per unit of the head's translation
      outputs.
  """
  scale = np.ones([layout.size], np.float32)
  pose = layout.slices()["pose"]
  scale[pose.start + 3:pose.stop] = translation_unit_mm
  return scale


@keras.saving.register_keras_serializable(package="mgc_tf")
class CoefficientScale(keras.layers.Layer):
  """[B, K] -> [B, K] * scale, a fixed per-coefficient factor (no weights)."""

  def __init__(self, scale: Sequence[float], **kwargs):
    super().__init__(**kwargs)
    self.scale = [float(v) for v in scale]

  def call(self, coefficients):
    return coefficients * keras.ops.convert_to_tensor(
        np.asarray(self.scale, np.float32), dtype=coefficients.dtype)

  def get_config(self):
    return {**super().get_config(), "scale": self.scale}


@dataclasses.dataclass(frozen=True)
class ReconstructorConfig:
  """What to build; the trainer fills it from flags.

  Attributes:
    backbone: one of `backbones.BACKBONES`.
    image_size: S, side of the square input crop in pixels (>= 32).
    backbone_weights: "none", "imagenet" (not for resnet18), or the path of
      a `.weights.h5` file saved from a backbone or a reconstructor.
    head_stddev: standard deviation of the head's normal kernel initialiser
      (0 = exact zeros, as Deep3DFaceReconstruction did).
  """
  backbone: str = "resnet50"
  image_size: int = 224
  backbone_weights: str = "none"
  head_stddev: float = DEFAULT_HEAD_STDDEV

  def validate(self) -> "ReconstructorConfig":
    """Raises ValueError naming the bad field and the valid choices."""
    backbones.check_backbone_args(self.backbone, self.image_size)
    weights = self.backbone_weights
    if weights is not None and (not isinstance(weights, str) or
                                not weights.strip()):
      raise ValueError(
          "backbone_weights must be 'none', 'imagenet' or a .weights.h5 "
          f"path; got {weights!r}.")
    if weights is not None and weights.lower() == "imagenet":
      backbones.imagenet_weights_file(self.backbone, self.image_size)
    if (isinstance(self.head_stddev, bool) or
        not isinstance(self.head_stddev, (int, float)) or
        not math.isfinite(self.head_stddev) or self.head_stddev < 0):
      raise ValueError("head_stddev must be a finite number >= 0; got "
                       f"{self.head_stddev!r}.")
    return self

  def build(self, num_coefficients: int,
            name: str = "reconstructor") -> keras.Model:
    """`build_reconstructor` with this configuration."""
    return build_reconstructor(
        num_coefficients, backbone=self.backbone, image_size=self.image_size,
        backbone_weights=self.backbone_weights, head_stddev=self.head_stddev,
        name=name)


def _head_initializer(stddev: float):
  if stddev == 0:
    return keras.initializers.Zeros()
  return keras.initializers.RandomNormal(stddev=stddev)


def build_reconstructor(num_coefficients: int, backbone: str = "resnet50",
                        image_size: int = 224,
                        backbone_weights: str = "none",
                        head_stddev: float = DEFAULT_HEAD_STDDEV,
                        output_scale: Optional[Sequence[float]] = None,
                        name: str = "reconstructor") -> keras.Model:
  """Builds image -> coefficients.

  Args:
    num_coefficients: K, e.g. `CoefficientLayout.from_face_model(m).size`
      (257 for the BFM ranks).
    backbone: one of `backbones.BACKBONES`.
    image_size: S, side of the square input crop in pixels (>= 32).
    backbone_weights: "none", "imagenet" or a `.weights.h5` path (see
      `backbones.build_backbone`).
    head_stddev: std of the head kernel's normal initialiser; the bias is 0.
    output_scale: optional [K] fixed factors applied after the head, e.g.
      `coefficient_output_scale(layout)` (what the trainer uses); None: the
      head's outputs are the coefficients.
    name: the model's name.

  Returns:
    A functional keras.Model: input "image" [None, S, S, 3] float32 RGB in
    [0, 1]; output "coefficients" [None, K] float32 (also under a
    mixed_float16 policy). Layers: the backbone (a nested model named
    f"{backbone}_backbone") and the Dense head named "coefficients".

  Raises:
    ValueError: bad arguments (the message lists the valid choices).
    backbones.BackboneWeightsError: weights that cannot be fetched or loaded.
  """
  if (isinstance(num_coefficients, bool) or
      not isinstance(num_coefficients, int) or num_coefficients < 1):
    raise ValueError("num_coefficients must be a positive integer; got "
                     f"{num_coefficients!r}.")
  ReconstructorConfig(backbone, image_size, backbone_weights,
                      head_stddev).validate()
  encoder = backbones.build_backbone(backbone, image_size,
                                     weights=backbone_weights)
  images = keras.Input((image_size, image_size, 3), dtype="float32",
                       name=INPUT_NAME)
  # float32 head: under mixed precision the coefficients feed rendering and
  # losses, which must stay float32.
  head = keras.layers.Dense(
      num_coefficients, kernel_initializer=_head_initializer(head_stddev),
      bias_initializer="zeros", dtype="float32",
      name=HEAD_NAME if output_scale is None else "head")
  coefficients = head(encoder(images))
  if output_scale is not None:
    if len(output_scale) != num_coefficients:
      raise ValueError(f"output_scale has {len(output_scale)} entries for "
                       f"{num_coefficients} coefficients.")
    coefficients = CoefficientScale(output_scale, dtype="float32",
                                    name=HEAD_NAME)(coefficients)
  return keras.Model(images, coefficients, name=name)


@registry.register("reconstructor")
def build_reconstructor_from_spec(num_coefficients: int, backbone: str,
                                  image_size: int, translation_unit_mm: float,
                                  translation_slice: Sequence[int],
                                  backbone_weights: str = "none"
                                  ) -> keras.Model:
  """`build_reconstructor` from the JSON-friendly kwargs of `reconstructor_spec`."""
  scale = np.ones([num_coefficients], np.float32)
  scale[translation_slice[0]:translation_slice[1]] = translation_unit_mm
  return build_reconstructor(num_coefficients, backbone=backbone,
                             image_size=image_size,
                             backbone_weights=backbone_weights,
                             output_scale=scale)


def reconstructor_spec(layout, backbone: str, image_size: int,
                       backbone_weights: str = "none",
                       translation_unit_mm: float = TRANSLATION_UNIT_MM
                       ) -> registry.NetworkSpec:
  """The `NetworkSpec` of the trainer's reconstructor for a coefficient layout.

  `backbone_weights` only matters when training starts; a restored model
  takes its weights from the checkpoint (`registry.build(spec,
  backbone_weights="none")`).
  """
  pose = layout.slices()["pose"]
  return registry.NetworkSpec("reconstructor", {
      "num_coefficients": int(layout.size), "backbone": backbone,
      "image_size": int(image_size),
      "translation_unit_mm": float(translation_unit_mm),
      "translation_slice": [pose.start + 3, pose.stop],
      "backbone_weights": backbone_weights})


def backbone_of(reconstructor: keras.Model) -> keras.Model:
  """The nested backbone model of a reconstructor (e.g. to save its weights
  or give it its own learning rate)."""
  nested = [layer for layer in reconstructor.layers
            if isinstance(layer, keras.Model)]
  if len(nested) != 1:
    raise ValueError(f"{reconstructor.name!r} is not a reconstructor built by "
                     "build_reconstructor (expected one nested backbone).")
  return nested[0]
