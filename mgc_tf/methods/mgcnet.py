"""MGCNet (Shang et al., ECCV 2020): 2D losses plus multi-view geometry losses.

One network (the reconstructor), one stage, the objective of
`mgc_tf.losses.mgc_loss.MGCLoss` (DESIGN section 5): render, landmark,
identity and regularisation terms on every view, and pixel, depth and
epipolar consistency between the target and each source view, gated per
sample by the batch's flag.
"""

import dataclasses
import enum
from typing import Any, Dict, Mapping

import tensorflow as tf

from mgc_tf.losses import identity as identity_lib
from mgc_tf.losses import mgc_loss
from mgc_tf.methods import base
from mgc_tf.models import face_chips

_PAPER = mgc_loss.MGCLossWeights()


class DepthReference(str, enum.Enum):
  """What the sampled source depth is compared with (docs/losses.md)."""
  WARPED = "warped"
  TARGET = "target"


_field = base.field


@dataclasses.dataclass(frozen=True)
class MGCNetConfig:
  """The `mgcnet` section: loss weights (the paper's) and loss options."""
  render_weight: float = _field(_PAPER.render, "Render (photometric) loss.")
  landmark_weight: float = _field(_PAPER.landmark, "Landmark loss.")
  landmark_nose_mouth_weight: float = _field(
      _PAPER.landmark_nose_mouth,
      "Landmark weight on nose and inner mouth (paper 10, code 5).")
  identity_weight: float = _field(_PAPER.identity, "Identity loss.")
  regularization_weight: float = _field(
      _PAPER.regularization,
      "Weight of the shape regularization 1.0|alpha|^2 + 0.8|beta|^2 (+ the "
      "albedo part, see --albedo_regularization_weight).")
  albedo_regularization_weight: float = _field(
      _PAPER.regularization * _PAPER.reg_albedo,
      "Effective weight of |delta|^2 in the total loss.")
  pixel_weight: float = _field(_PAPER.pixel, "Pixel consistency.")
  depth_weight: float = _field(_PAPER.depth, "Depth consistency.")
  epipolar_weight: float = _field(_PAPER.epipolar, "Epipolar loss.")
  ssim_weight: float = _field(_PAPER.ssim, "SSIM consistency.")
  two_d_weight: float = _field(_PAPER.two_d, "Scale of all 2D terms.")
  multiview_weight: float = _field(
      _PAPER.multiview,
      "Scale of all multi-view terms (0: the 2D-only baseline).")
  use_covisible_map: bool = _field(
      True, "False: the 'without covisible map' ablation.")
  depth_reference: DepthReference = _field(
      DepthReference.WARPED, "Depth consistency reference (docs/losses.md).")
  identity_model: str = _field(
      "dlib", "Face-recognition network of the identity loss: 'dlib' "
      "(dlib's ResNet from the preprocess extra; docs/face_embedding.md), "
      "'none' (off), or the path of a .keras/.h5/SavedModel network.")
  identity_chip: face_chips.ChipPlacement = _field(
      face_chips.ChipPlacement.FIXED,
      "How dlib's 150 px chip is cut from the crop for the identity loss: "
      "'fixed' (one transform for every face) or 'landmarks' (placed by each "
      "view's landmarks, as dlib does; closer to dlib's own chips, "
      "docs/face_embedding.md).")

  def loss_weights(self) -> mgc_loss.MGCLossWeights:
    """The `MGCLossWeights` these settings describe."""
    shape_weight = self.regularization_weight
    return mgc_loss.MGCLossWeights(
        render=self.render_weight, landmark=self.landmark_weight,
        identity=self.identity_weight,
        # The regularization term is 1.0|a|^2 + 0.8|b|^2 + r|d|^2 scaled by
        # shape_weight; r carries the separate albedo weight.
        regularization=shape_weight,
        reg_albedo=(self.albedo_regularization_weight / shape_weight
                    if shape_weight > 0 else 0.0),
        pixel=self.pixel_weight, depth=self.depth_weight,
        epipolar=self.epipolar_weight, ssim=self.ssim_weight,
        two_d=self.two_d_weight, multiview=self.multiview_weight,
        landmark_nose_mouth=self.landmark_nose_mouth_weight)

  def validate(self) -> "MGCNetConfig":
    problems = base.negative_fields(self)
    if problems:
      raise ValueError("; ".join(problems))
    return self


class MGCNet(base.Method):
  """The paper's method: one reconstructor, `MGCLoss`, one stage."""
  name = "mgcnet"
  config_class = MGCNetConfig
  required_features = ("images", "landmarks", "flag", "skin")
  accepted_sources = ("multi_view", "video", "single_view")

  def __init__(self, config: MGCNetConfig, **setup):
    super().__init__(config, **setup)
    self.loss = mgc_loss.MGCLoss(
        self.decoder, config.loss_weights(),
        identity_loss=identity_lib.IdentityLoss.from_spec(
            config.identity_model,
            chip_placement=face_chips.ChipPlacement(
                config.identity_chip).value),
        use_covisible_map=config.use_covisible_map,
        depth_reference=DepthReference(config.depth_reference).value,
        global_batch_size=self.setup.global_batch_size)

  def describe(self) -> str:
    return self.loss.identity_loss.describe()

  def objective(self, networks: Mapping[str, Any], batch: Mapping[str, Any],
                stage: base.Stage, training: bool = True) -> base.Objective:
    images = batch["images"]
    batch_size, num_views, size = (images.shape[0], images.shape[1],
                                   images.shape[2])
    layout_size = self.decoder.layout.size
    flat = tf.reshape(images, [batch_size * num_views, size, size, 3])
    coefficients = tf.cast(networks[base.RECONSTRUCTOR](flat,
                                                        training=training),
                           tf.float32)
    coefficients = tf.reshape(coefficients,
                              [batch_size, num_views, layout_size])
    out = self.loss(coefficients, images, batch["landmarks"], batch["flag"],
                    skin=batch.get("skin"))
    return base.Objective(total=out.total, terms=out.terms, details=out,
                          coefficients=coefficients)

  def summary_images(self, objective: base.Objective,
                     batch: Mapping[str, Any]) -> Dict[str, tf.Tensor]:
    return training_images(batch["images"], objective.details)


def training_images(images: tf.Tensor, loss_output) -> Dict[str, tf.Tensor]:
  """Image panels of one batch for TensorBoard.

  Args:
    images: [B, N, S, S, 3] input views in [0, 1].
    loss_output: the `MGCLossOutput` of the batch.

  Returns:
    name -> [B, H, W, 3] (or [B, H, W, 1]) images in [0, 1]:
      inputs: the N views side by side;
      render_overlay: the rendered faces composited on the inputs;
      covisible: the covisible maps of the (target, source) pairs;
      synthesized: the target synthesized from each source.
  """
  b, n, s = images.shape[0], images.shape[1], images.shape[2]

  def side_by_side(views):  # [B, V, S, S, C] -> [B, S, V*S, C]
    views = tf.transpose(views, [0, 2, 1, 3, 4])
    return tf.reshape(views, [b, s, -1, views.shape[-1]])

  rendered = tf.reshape(loss_output.renders.image, [b, n, s, s, 3])
  return {
      "inputs": side_by_side(images),
      "render_overlay": side_by_side(tf.clip_by_value(rendered, 0.0, 1.0)),
      "covisible": side_by_side(loss_output.covisible),
      "synthesized": side_by_side(
          tf.clip_by_value(loss_output.synthesized, 0.0, 1.0)),
  }
