"""Self-augmentation (Mohaghegh et al. section 3.2.3, eq. 9), for any method.

The reconstructor's own prediction c of an input I is rendered again

  I_rot  at a random pose (the predicted pose plus random yaw, pitch and
         roll offsets), over a flat background of I's mean colour, and
  I_occ  at the predicted pose composited over I, with synthetic occluders
         (`mgc_tf.data.occluders`: hands, hair, glasses, microphones,
         objects) on top,

and each is fed back through the reconstructor (c_rot', c_occ'). Its
re-renders must match, image-level (the photometric distance of
`mgc_tf.losses.photometric.render_loss`) and perception-level (identity eq.
7 plus attribute eq. 8 features, i.e. eq. 9):

  photometric, averaged over four pairs:
    I_rot vs R(c_rot')                  inside I_rot's face
    I     vs R(c_rot' at c's pose)      inside c's face mask x skin
    I_occ vs R(c_occ')                  inside c's face mask x skin, outside
                                        every occluder pixel (alpha > 0)
    I     vs R(c_occ')                  inside c's face mask x skin
  perceptual, averaged over the three pairs whose two images show the same
  view: (I_rot, R(c_rot')), (I, R(c_rot' at c's pose)), (I, R(c_occ')).

R(.) composites over the image it is compared with. Our reading of eq. 9's
"renders under random views" is this: the reconstruction of the random
view is rendered back in the input's view before its features are compared
with the input's, so the features compare like with like and a model that
returns the ground truth scores exactly 0 (tests/test_self_augmentation.py).

Gradients flow through the renders into the first prediction, as the paper
trains end to end (`stop_gradient=False`, the default); with
`stop_gradient=True`, I_rot and I_occ are constants and only the second
pass learns.
"""

import dataclasses
import math
from typing import Callable, Dict, Mapping, Optional

import numpy as np
import tensorflow as tf

from mgc_tf.data import occluders as occluders_lib
from mgc_tf.losses import attribute as attribute_lib
from mgc_tf.losses import identity as identity_lib
from mgc_tf.losses import photometric
from mgc_tf.methods import addons
from mgc_tf.methods import base
from mgc_tf.render import renderer

TERMS = ("rob_photo", "rob_perceptual")
_field = addons.field


# ----------------------------------------------------------------- helpers


def random_pose_offsets(batch_size: int, max_yaw: float, max_pitch: float,
                        max_roll: float) -> tf.Tensor:
  """[B, 6] pose offsets (rz, ry, rx, 0, 0, 0): roll, yaw, pitch uniform
  in +-max_* radians, no translation (the layout's pose order)."""
  limits = tf.constant([max_roll, max_yaw, max_pitch], tf.float32)
  angles = tf.random.uniform([batch_size, 3], -1.0, 1.0) * limits
  return tf.concat([angles, tf.zeros([batch_size, 3])], axis=1)


def occluder_bank(landmarks: np.ndarray, image_size: int, count: int,
                  seed: int = 0):
  """`count` non-empty occluder layers drawn for one face.

  Args:
    landmarks: [68, 2] crop pixels of the face they are drawn for (the face
      model's mean face at its default pose).
    image_size: S.
    count: M layers.
    seed: of the NumPy generator.

  Returns:
    rgb [M, S, S, 3] and alpha [M, S, S] float32 (`draw_occluders`).
  """
  rng = np.random.default_rng(seed)
  rgbs, alphas = [], []
  while len(rgbs) < count:
    chosen = occluders_lib.sample_occluders(rng)
    if not chosen:
      continue
    rgb, alpha = occluders_lib.draw_occluders(chosen, landmarks, image_size)
    if alpha.max() <= 0:
      continue
    rgbs.append(rgb)
    alphas.append(alpha)
  return np.stack(rgbs), np.stack(alphas)


def apply_occluders(images: tf.Tensor, rgb: tf.Tensor, alpha: tf.Tensor,
                    indices: tf.Tensor, shifts: tf.Tensor):
  """Composites bank layers over images.

  Args:
    images: [B, S, S, 3] in [0, 1].
    rgb, alpha: the bank, [M, S, S, 3] and [M, S, S].
    indices: [B] int32 layer per image.
    shifts: [B, 2] int32 (rows, columns) the layer is rolled by.

  Returns:
    (occluded [B, S, S, 3], alpha [B, S, S, 1] of the layer used).
  """
  layers = tf.concat([tf.gather(rgb, indices),
                      tf.gather(alpha, indices)[..., None]], axis=-1)
  rolled = tf.map_fn(lambda a: tf.roll(a[0], a[1], axis=[0, 1]),
                     (layers, shifts), fn_output_signature=tf.float32)
  a = rolled[..., 3:4]
  return images * (1.0 - a) + rolled[..., :3] * a, a


def _composite(render: renderer.RenderOutput, background: tf.Tensor):
  return render.rendered + (1.0 - render.mask) * background


def _with_pose(coefficients: tf.Tensor, pose: tf.Tensor, layout) -> tf.Tensor:
  """Coefficients [B, K] with their pose group replaced by `pose` [B, 6]."""
  pose_slice = layout.slices()["pose"]
  start, stop = pose_slice.start, pose_slice.stop
  return tf.concat([coefficients[:, :start], pose, coefficients[:, stop:]],
                   axis=1)


def self_augmentation_terms(
    reconstruct: Callable[[tf.Tensor], tf.Tensor], decoder,
    images: tf.Tensor, coefficients: tf.Tensor, pose_offsets: tf.Tensor,
    occluded: Callable[[tf.Tensor], tuple],
    skin: Optional[tf.Tensor] = None,
    perceptual: Optional[Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = None,
    stop_gradient: bool = False) -> Dict[str, tf.Tensor]:
  """The self-augmentation pairs of one batch (see the module docstring).

  Args:
    reconstruct: [M, S, S, 3] images -> [M, K] coefficients (the model).
    decoder: the `FaceDecoder`.
    images: [B, S, S, 3] inputs I in [0, 1].
    coefficients: [B, K] the model's prediction c for them.
    pose_offsets: [B, 6] added to c's pose for I_rot.
    occluded: [B, S, S, 3] -> (occluded images, alpha [B, S, S, 1]).
    skin: optional [B, S, S, 1] skin probability of I.
    perceptual: optional (a, b) [B, S, S, 3] -> [B] feature distance
      (identity + attribute); None: the perceptual pairs are 0.
    stop_gradient: treat I_rot and I_occ as constants.

  Returns:
    name -> [B] float32: "photo" and "perceptual" (the averages), and each
    pair: photo_rot, photo_rot_input, photo_occ, photo_occ_input,
    perceptual_rot, perceptual_rot_input, perceptual_occ_input; plus the
    images "rotated" and "occluded" [B, S, S, 3] and "occluder_alpha".
  """
  images = tf.convert_to_tensor(images, tf.float32)
  coefficients = tf.convert_to_tensor(coefficients, tf.float32)
  b, s = images.shape[0], images.shape[1]
  layout = decoder.layout
  pose = layout.split(coefficients)["pose"]
  background = tf.broadcast_to(
      tf.reduce_mean(images, axis=[1, 2], keepdims=True), tf.shape(images))
  rotated_coefficients = _with_pose(coefficients, pose + pose_offsets, layout)
  _, first = renderer.render_face(
      decoder, tf.concat([rotated_coefficients, coefficients], 0),
      image_size=(s, s))
  rot_render = renderer.RenderOutput(*[t[:b] for t in first])
  face_render = renderer.RenderOutput(*[t[b:] for t in first])
  rotated = _composite(rot_render, background)
  occluded_images, alpha = occluded(_composite(face_render, images))
  if stop_gradient:
    rotated = tf.stop_gradient(rotated)
    occluded_images = tf.stop_gradient(occluded_images)
  again = tf.cast(reconstruct(tf.concat([rotated, occluded_images], 0)),
                  tf.float32)
  rot_again, occ_again = again[:b], again[b:]
  _, second = renderer.render_face(
      decoder, tf.concat([rot_again,
                          _with_pose(rot_again, pose, layout),
                          occ_again], 0), image_size=(s, s))
  parts = [renderer.RenderOutput(*[t[i * b:(i + 1) * b] for t in second])
           for i in range(3)]
  re_rot, re_rot_input, re_occ = parts
  face = tf.stop_gradient(face_render.mask)
  visible = face * tf.cast(alpha <= 0.0, tf.float32)
  pairs = {
      "photo_rot": (rotated, _composite(re_rot, rotated),
                    tf.stop_gradient(rot_render.mask), None),
      "photo_rot_input": (images, _composite(re_rot_input, images), face,
                          skin),
      "photo_occ": (occluded_images, _composite(re_occ, occluded_images),
                    visible, skin),
      "photo_occ_input": (images, _composite(re_occ, images), face, skin),
  }
  out = {name: photometric.render_loss(target, pred, mask, weights)
         for name, (target, pred, mask, weights) in pairs.items()}
  out["photo"] = tf.add_n([out[n] for n in pairs]) / float(len(pairs))
  perceptual_pairs = {
      "perceptual_rot": (rotated, pairs["photo_rot"][1]),
      "perceptual_rot_input": (images, pairs["photo_rot_input"][1]),
      "perceptual_occ_input": (images, pairs["photo_occ_input"][1]),
  }
  for name, (first_image, second_image) in perceptual_pairs.items():
    out[name] = (tf.cast(perceptual(first_image, second_image), tf.float32)
                 if perceptual is not None else tf.zeros([b]))
  out["perceptual"] = tf.add_n(
      [out[n] for n in perceptual_pairs]) / float(len(perceptual_pairs))
  out.update(rotated=rotated, occluded=occluded_images, occluder_alpha=alpha)
  return out


# ------------------------------------------------------------------ add-on


@dataclasses.dataclass(frozen=True)
class SelfAugmentationConfig:
  """The self-augmentation add-on's section (every --method has these)."""
  self_augmentation_weight: float = _field(
      0.0, "alpha_rob: weight of the self-augmentation terms (0: off; the "
      "paper 0.001, configs/robust.flags).")
  self_augmentation_perceptual_weight: float = _field(
      1.0, "Scale of the perceptual (identity + attribute, eq. 9) part "
      "relative to the photometric part.")
  self_augmentation_max_yaw: float = _field(
      60.0, "I_rot: yaw offset uniform in +-this, degrees.")
  self_augmentation_max_pitch: float = _field(
      20.0, "I_rot: pitch offset uniform in +-this, degrees.")
  self_augmentation_max_roll: float = _field(
      15.0, "I_rot: roll offset uniform in +-this, degrees.")
  self_augmentation_occluders: int = _field(
      32, "I_occ: occluder layers drawn once (mgc_tf.data.occluders); each "
      "sample takes one at random, shifted by up to 1/8 of the crop.")
  self_augmentation_stop_gradient: bool = _field(
      False, "Treat I_rot and I_occ as constants (default: gradients flow "
      "through the renders into the first prediction, as the paper).")
  self_augmentation_identity_model: str = _field(
      "dlib", "Identity features of the perceptual part (eq. 7): 'dlib', "
      "'none' or a network's path (docs/face_embedding.md).")
  self_augmentation_attribute_model: str = _field(
      "dlib", "Attribute features of the perceptual part (eq. 8): 'dlib' "
      "(mid-level dlib features, our stand-in; docs/robust.md), 'none' or a "
      "network's path.")

  def validate(self) -> "SelfAugmentationConfig":
    problems = base.negative_fields(self, ("_weight", "_yaw", "_pitch",
                                           "_roll"))
    if self.self_augmentation_occluders < 1:
      problems.append("--self_augmentation_occluders must be >= 1, got "
                      f"{self.self_augmentation_occluders}")
    for flag in ("max_yaw", "max_pitch", "max_roll"):
      value = getattr(self, f"self_augmentation_{flag}")
      if value > 180:
        problems.append(f"--self_augmentation_{flag} must be <= 180 "
                        f"degrees, got {value}")
    if problems:
      raise ValueError("; ".join(problems))
    return self


class PerceptualDistance:
  """Identity (eq. 7) plus attribute (eq. 8) distance, per sample.

  Args:
    identity: an `IdentityLoss` (may be off).
    attribute: an `AttributeLoss` (may be off).
  """

  def __init__(self, identity, attribute):
    self.identity, self.attribute = identity, attribute

  @property
  def enabled(self) -> bool:
    return self.identity.enabled or self.attribute.enabled

  def __call__(self, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return self.identity(a, b) + self.attribute(a, b)

  def describe(self) -> str:
    return f"{self.identity.describe()}, {self.attribute.describe()}"


class SelfAugmentationAddOn(addons.AddOn):
  """Self-augmentation consistency terms, for any method."""
  name = "self_augmentation"
  config_class = SelfAugmentationConfig

  def __init__(self, config: SelfAugmentationConfig, **setup):
    super().__init__(config, **setup)
    c = config
    self.perceptual = PerceptualDistance(
        identity_lib.IdentityLoss.from_spec(c.self_augmentation_identity_model),
        attribute_lib.AttributeLoss.from_spec(
            c.self_augmentation_attribute_model))
    decoder, size = self.setup.decoder, self.setup.image_size
    mean_face = decoder.decode(tf.zeros([1, decoder.layout.size]),
                               image_size=size)
    rgb, alpha = occluder_bank(mean_face.landmarks_2d.numpy()[0], size,
                               c.self_augmentation_occluders)
    self.occluder_rgb = tf.constant(rgb)
    self.occluder_alpha = tf.constant(alpha)

  @classmethod
  def enabled(cls, config: SelfAugmentationConfig) -> bool:
    return config.self_augmentation_weight > 0

  def weights(self) -> Dict[str, float]:
    c = self.config
    return {"rob_photo": c.self_augmentation_weight,
            "rob_perceptual": (c.self_augmentation_weight *
                               c.self_augmentation_perceptual_weight
                               if self.perceptual.enabled else 0.0)}

  def describe(self) -> str:
    c = self.config
    return (f"self-augmentation (alpha_rob={c.self_augmentation_weight}, "
            f"yaw +-{c.self_augmentation_max_yaw} deg, "
            f"{c.self_augmentation_occluders} occluder layers, gradients "
            f"{'stopped' if c.self_augmentation_stop_gradient else 'through'}"
            f" the renders; {self.perceptual.describe()})")

  def occlude(self, images: tf.Tensor):
    """[B, S, S, 3] -> (images with a random bank layer, its alpha)."""
    b, s = images.shape[0], images.shape[1]
    indices = tf.random.uniform([b], 0, self.occluder_rgb.shape[0], tf.int32)
    reach = max(1, s // 8)
    shifts = tf.random.uniform([b, 2], -reach, reach + 1, tf.int32)
    return apply_occluders(images, self.occluder_rgb, self.occluder_alpha,
                           indices, shifts)

  def terms(self, networks, batch, objective, stage, training=True):
    if not any(stage.term_on(name) for name in TERMS):
      return {name: tf.constant(0.0) for name in TERMS}
    c = self.config
    images = tf.convert_to_tensor(batch["images"], tf.float32)
    b, n = images.shape[0], images.shape[1]
    middle = n // 2  # the target view of each sample
    skin = batch.get("skin")
    degrees = math.pi / 180.0
    out = self_augmentation_terms(
        lambda x: networks[base.RECONSTRUCTOR](x, training=training),
        self.setup.decoder, images[:, middle],
        tf.cast(objective.coefficients, tf.float32)[:, middle],
        random_pose_offsets(b, c.self_augmentation_max_yaw * degrees,
                            c.self_augmentation_max_pitch * degrees,
                            c.self_augmentation_max_roll * degrees),
        self.occlude,
        skin=None if skin is None else tf.cast(skin, tf.float32)[:, middle],
        perceptual=self.perceptual if self.perceptual.enabled else None,
        stop_gradient=c.self_augmentation_stop_gradient)
    scale = 1.0 / float(self.setup.global_batch_size)
    return {"rob_photo": tf.reduce_sum(out["photo"]) * scale,
            "rob_perceptual": tf.reduce_sum(out["perceptual"]) * scale}
