"""SIR (Jiang et al.): recognisable shapes by identity-aware regularisation.

Two pieces, so that the regularisation can join any method:

* `SIRAddOn` (`--sir_weight > 0`, any `--method`): on the identity (shape)
  coefficients of every view of the identity-labelled samples,

    sir_weight * (L_cosface + sir_center_weight L_center
                  + sir_kl_weight L_kl)                     (eqs. 17-18, 21)

  with CosFace over hashed identity classes (class weights trained in the
  `sir_identity_classes` network), the weighted centre loss whose centres
  move by eq. 20 with the frontal/neutral weights of eq. 19 (computed from
  the predicted pose and expression), and the KL to N(0, I) of the batch's
  identity-labelled samples (one row each: the mean over its views).

* `SIR` (`--method=sir`): the paper's reconstruction objective (eq. 9):
  the landmark term on landmark-labelled samples, the confidence-map pixel
  term (eq. 11, ConfNet `sir_confidence`) and the perceptual term (eq. 12,
  pluggable encoder, off without one) and the coefficient regularisation on
  all, and the two-stage warm-up: `--landmark_warmup_steps` on the
  landmark-labelled samples alone without SIR, then the mix with SIR
  (configs/sir.flags turns the add-on on).

Labels, per sample: identity-labelled = the source stores a non-empty
`identity` (`has_identity`); the rest are landmark-labelled. A source whose
identities should not count (a landmark set such as 300W-LP stores its
file names as identities) is listed with the source option
`[without=identity]` in `--dataset` (docs/sir.md).
"""

import dataclasses
from typing import Any, Dict, Mapping

import tensorflow as tf

from mgc_tf.losses import confidence
from mgc_tf.losses import landmark as landmark_lib
from mgc_tf.losses import regularization
from mgc_tf.losses import sir as sir_lib
from mgc_tf.methods import addons
from mgc_tf.methods import base
from mgc_tf.models import registry
from mgc_tf.models import sir_heads  # pylint: disable=unused-import
from mgc_tf.render import renderer

IDENTITY_CLASSES = "sir_identity_classes"
CONFIDENCE = "sir_confidence"
SIR_TERMS = ("sir_cosface", "sir_center", "sir_kl")
WARMUP_STAGE = "landmark_warmup"

_field = addons.field


def identity_labelled(batch: Mapping[str, Any]) -> tf.Tensor:
  """[B] float32 1 for samples whose source gives a non-empty identity."""
  if "identity" not in batch:
    return tf.zeros([batch["images"].shape[0]])
  labelled = tf.logical_and(tf.cast(batch["has_identity"], tf.bool),
                            tf.strings.length(batch["identity"]) > 0)
  return tf.cast(labelled, tf.float32)


# ------------------------------------------------------------------ add-on


@dataclasses.dataclass(frozen=True)
class SIRConfig:
  """The SIR add-on's section (every --method has these flags)."""
  sir_weight: float = _field(
      0.0, "eps_s: scale of the SIR terms on identity-labelled samples (0: "
      "off; configs/sir.flags sets 1).")
  sir_center_weight: float = _field(
      0.01, "eps_c: weighted centre loss inside SIR (not given in the paper).")
  sir_kl_weight: float = _field(
      0.01, "eps_kl: KL of the shape coefficients to N(0, I) inside SIR (not "
      "given in the paper).")
  sir_margin: float = _field(sir_lib.COSFACE_MARGIN, "CosFace margin m.")
  sir_scale: float = _field(sir_lib.COSFACE_SCALE, "CosFace scale s.")
  sir_num_classes: int = _field(
      16384, "Identity classes C: identities are hashed into C classes "
      "(about n^2/(2C) of n identities collide; docs/sir.md).")
  sir_center_rate: float = _field(sir_lib.CENTER_RATE,
                                  "Centre update rate alpha (eq. 20).")
  sir_expression_falloff: float = _field(
      sir_lib.EXPRESSION_FALLOFF,
      "lambda of eq. 19: centre weight exp(-lambda |expression|).")

  def validate(self) -> "SIRConfig":
    problems = base.negative_fields(self, ("",))
    if self.sir_num_classes < 2:
      problems.append(f"--sir_num_classes must be >= 2, got "
                      f"{self.sir_num_classes}")
    if not 0 < self.sir_center_rate <= 1:
      problems.append(f"--sir_center_rate must be in (0, 1], got "
                      f"{self.sir_center_rate}")
    if problems:
      raise ValueError("; ".join(problems))
    return self


class SIRAddOn(addons.AddOn):
  """SIR's identification and distribution terms, for any method."""
  name = "sir"
  config_class = SIRConfig
  extra_features = ("identity",)

  @classmethod
  def enabled(cls, config: SIRConfig) -> bool:
    return config.sir_weight > 0

  def network_specs(self) -> Dict[str, registry.NetworkSpec]:
    return {IDENTITY_CLASSES: registry.NetworkSpec(
        "sir_identity_classes",
        {"feature_dim": int(self.setup.decoder.layout.id_rank),
         "num_classes": int(self.config.sir_num_classes)})}

  def weights(self) -> Dict[str, float]:
    c = self.config
    return {"sir_cosface": c.sir_weight,
            "sir_center": c.sir_weight * c.sir_center_weight,
            "sir_kl": c.sir_weight * c.sir_kl_weight}

  def describe(self) -> str:
    c = self.config
    return (f"SIR on identity-labelled samples (eps_s={c.sir_weight}, "
            f"CosFace m={c.sir_margin} s={c.sir_scale}, "
            f"{c.sir_num_classes} hashed classes)")

  def terms(self, networks, batch, objective, stage, training=True):
    c = self.config
    coefficients = tf.cast(objective.coefficients, tf.float32)
    b, n = coefficients.shape[0], coefficients.shape[1]
    if not any(stage.term_on(name) for name in SIR_TERMS):
      return {name: tf.constant(0.0) for name in SIR_TERMS}
    groups = self.setup.decoder.layout.split(
        tf.reshape(coefficients, [b * n, -1]))
    shape = groups["identity"]
    labelled = identity_labelled(batch)  # [B]
    row_mask = tf.reshape(tf.repeat(labelled[:, None], n, axis=1), [b * n])
    labels = tf.repeat(sir_lib.identity_classes(batch["identity"],
                                                c.sir_num_classes), n)
    head = networks[IDENTITY_CLASSES]
    scale = 1.0 / float(self.setup.global_batch_size)

    def per_sample_sum(per_row):  # [B*N] -> mean over views, sum over B
      per_view = tf.reshape(per_row * row_mask, [b, n])
      return tf.reduce_sum(tf.reduce_mean(per_view, axis=1)) * scale

    cosface = sir_lib.cosface_loss(shape, head.class_weights, labels,
                                   margin=c.sir_margin, scale=c.sir_scale)
    center = sir_lib.center_loss(shape, head.centers, labels)
    # The prior is a distribution over people, so the KL sees one row per
    # sample (the mean of its views, all of one person): the views' own
    # spread is the centre loss's business. A statistic of the local batch,
    # weighted by its share of the global batch, so the sum over replicas
    # is their mean.
    per_person = tf.reduce_mean(tf.reshape(shape, [b, n, -1]), axis=1)
    kl = sir_lib.kl_to_standard_normal(per_person, mask=labelled) * (
        b * scale)
    if training and stage.term_on("sir_center"):
      # Eq. 19 from the predicted pose offsets (relative to the face
      # model's frontal default pose) and expression.
      weights = sir_lib.frontal_neutral_weight(
          groups["pose"][:, :3], groups["expression"],
          c.sir_expression_falloff)
      head.centers.assign(sir_lib.center_update(
          head.centers, shape, labels, weights, mask=row_mask,
          rate=c.sir_center_rate))
    return {"sir_cosface": per_sample_sum(cosface),
            "sir_center": per_sample_sum(center),
            "sir_kl": kl}


# ------------------------------------------------------------------ method


@dataclasses.dataclass(frozen=True)
class SIRMethodConfig:
  """The `sir` method's section (SIR's own terms are the add-on's flags)."""
  landmark_weight: float = _field(1e-3, "Landmark loss.")
  landmark_nose_mouth_weight: float = _field(
      10.0, "Landmark weight on nose and inner mouth (paper 10, code 5).")
  regularization_weight: float = _field(
      1e-4, "Coefficient regularization 1.0|alpha|^2 + 0.8|beta|^2 + "
      "3e-3|delta|^2 (eq. 15).")
  confidence_pixel_weight: float = _field(
      1.0, "Confidence-map pixel term (eq. 11).")
  perceptual_weight: float = _field(
      1.0, "Confidence-map perceptual term (eq. 12); on only with "
      "--perceptual_model.")
  perceptual_model: str = _field(
      "none", "Image encoder of the perceptual term: 'none' (off; the "
      "paper's VGG16 cannot be downloaded) or a .keras/.h5/SavedModel path "
      "mapping [B, S, S, 3] in [0, 1] to [B, h, w, C] features.")
  landmark_warmup_steps: int = _field(
      0, "First stage: this many steps on the landmark-labelled samples "
      "without SIR, then the mix with SIR (the paper's warm-up).")
  landmarks_on_identity_samples: bool = _field(
      False, "Also apply the landmark term to identity-labelled samples "
      "(the paper: no; their landmarks are detected).")

  def validate(self) -> "SIRMethodConfig":
    problems = base.negative_fields(self, ("_weight", "_steps"))
    if problems:
      raise ValueError("; ".join(problems))
    return self


class SIR(base.Method):
  """The paper's objective with label-switched terms and the warm-up."""
  name = "sir"
  config_class = SIRMethodConfig
  required_features = ("images", "landmarks")
  extra_features = ("identity",)
  accepted_sources = ("multi_view", "single_view", "video")

  def __init__(self, config: SIRMethodConfig, **setup):
    super().__init__(config, **setup)
    self.perceptual = confidence.PerceptualEncoder(config.perceptual_model)
    self.landmark_weights = landmark_lib.landmark_weights(
        config.landmark_nose_mouth_weight)

  def network_specs(self) -> Dict[str, registry.NetworkSpec]:
    return {**super().network_specs(),
            CONFIDENCE: registry.NetworkSpec(
                "sir_confidence", {"image_size": self.setup.image_size})}

  def stages(self):
    steps = self.config.landmark_warmup_steps
    if not steps:
      return base.SINGLE_STAGE
    return (base.Stage(WARMUP_STAGE, steps=steps,
                       terms=("landmark", "pixel", "perceptual",
                              "regularization")),
            base.Stage("mixed"))

  def describe(self) -> str:
    return self.perceptual.describe()

  def weights(self) -> Dict[str, float]:
    c = self.config
    return {"landmark": c.landmark_weight,
            "pixel": c.confidence_pixel_weight,
            "perceptual": (c.perceptual_weight if self.perceptual.enabled
                           else 0.0),
            "regularization": c.regularization_weight}

  def objective(self, networks, batch, stage, training=True):
    images = tf.convert_to_tensor(batch["images"], tf.float32)
    b, n, s = images.shape[0], images.shape[1], images.shape[2]
    flat = tf.reshape(images, [b * n, s, s, 3])
    coefficients = tf.cast(networks[base.RECONSTRUCTOR](flat,
                                                        training=training),
                           tf.float32)
    sigma = tf.cast(networks[CONFIDENCE](flat, training=training),
                    tf.float32)
    faces, renders = renderer.render_face(self.decoder, coefficients,
                                          background=flat)
    identity = identity_labelled(batch)
    if stage.name == WARMUP_STAGE:
      # The warm-up trains on landmark data alone.
      sample_weight = 1.0 - identity
    else:
      sample_weight = tf.ones([b])
    landmark_gate = sample_weight * (
        1.0 if self.config.landmarks_on_identity_samples else 1.0 - identity)

    def per_sample(per_view):  # [B*N] -> [B], mean over views
      return base.view_mean(per_view, b, n)

    # Landmarks in reference-crop pixels, as MGCNet's (mgc_loss).
    per = {
        "landmark": per_sample(base.reference_landmark_loss(
            self.decoder, faces.landmarks_2d, batch["landmarks"],
            self.landmark_weights, s)) * landmark_gate,
        "pixel": per_sample(confidence.confidence_l1_loss(
            renders.image, flat, sigma[..., :1], renders.mask)) * sample_weight,
        "regularization": per_sample(regularization.regularization_loss(
            coefficients, self.decoder.layout,
            expression_kind=self.decoder.expression_kind)) * sample_weight,
    }
    if self.perceptual.enabled:
      per["perceptual"] = per_sample(confidence.confidence_perceptual_loss(
          self.perceptual(renders.image), self.perceptual(flat),
          sigma[..., 1:], renders.mask)) * sample_weight
    else:
      per["perceptual"] = tf.zeros([b])
    terms = self.batch_terms(per)
    return base.Objective(
        total=base.weighted_total(terms, self.weights(), stage), terms=terms,
        details={"renders": renders, "sigma": sigma},
        coefficients=tf.reshape(coefficients, [b, n, -1]))

  def summary_images(self, objective, batch):
    images = batch["images"]
    b, n, s = images.shape[0], images.shape[1], images.shape[2]

    def side_by_side(views):  # [B*N, S, S, C] -> [B, S, N*S, C]
      return base.side_by_side(views, b, n)

    sigma = objective.details["sigma"][..., :1]
    return {
        "inputs": side_by_side(tf.reshape(images, [b * n, s, s, 3])),
        "render_overlay": side_by_side(tf.clip_by_value(
            objective.details["renders"].image, 0.0, 1.0)),
        # Confidence (scale) maps, shown as sigma / max(sigma).
        "sigma": side_by_side(sigma / tf.reduce_max(sigma)),
    }


