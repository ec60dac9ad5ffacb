"""Robust reconstruction (Mohaghegh et al.): GCN texture refiners + self-augmentation.

`--method=robust` trains three networks:

  reconstructor         the coarse model (section 3.1): image -> coefficients
                        (shape, expression, albedo, pose, lighting)
  robust_mesh_refiner   mesh-wise refiner (3.2.1): Chebyshev GCN from the
                        coarse per-vertex albedo to refined albedo
  robust_faid_refiner   feature-wise refiner (3.2.2): the same GCN trunk
                        from the input's identity and attribute features
                        (frozen networks) to per-vertex albedo

The fine albedo is the average of the two refiners' outputs (clipped to
[0, 1]); it is shaded with the predicted SH lighting and rendered with the
predicted shape and pose. The objective (eq. 5), per view, averaged over a
sample's views:

  photo           eq. 6: sum M ||I - I_re||_2 / sum M, M = the face mask
                  (`--face_mask`: the rendered mask x the skin
                  probability by default; the paper used a face-parsing
                  network, which cannot be downloaded here)      weight 1
  identity        eq. 7: 1 - cos of the identity features       weight 0.2
  attribute       eq. 8: ||F(I) - F(I_re)||_2, attribute features
                                                                weight 0.005
  landmark        the coarse model's landmark term (section 3.1 follows
                  Deep3D, which fits landmarks)                 weight 1e-3
  regularization  the coarse model's coefficient prior           weight 1e-4

and eq. 9 (alpha_rob = 0.001) is the self-augmentation add-on
(`mgc_tf.methods.self_augmentation`, `--self_augmentation_weight`), which
configs/robust.flags turns on; it re-renders the coarse prediction (the
add-on works with any method, so it sees coefficients only).

Feature networks (docs/robust.md): identity = dlib's face-recognition
descriptor (our FaceNet stand-in, docs/face_embedding.md); attributes =
dlib's mid-level features averaged over space (our stand-in for the
paper's attribute classifier). Both are pluggable by path.
"""

import dataclasses
import enum
from typing import Any, Dict, Mapping

import tensorflow as tf

from mgc_tf.facemodel import graph
from mgc_tf.losses import attribute as attribute_lib
from mgc_tf.losses import identity as identity_lib
from mgc_tf.losses import landmark as landmark_lib
from mgc_tf.losses import photometric
from mgc_tf.losses import regularization
from mgc_tf.methods import base
from mgc_tf.models import gcn
from mgc_tf.models import registry
from mgc_tf.render import renderer

MESH_REFINER = "robust_mesh_refiner"
FAID_REFINER = "robust_faid_refiner"
ALBEDO_OUTPUT = gcn.REFINED_ALBEDO_OUTPUT

_field = base.field


class FaceMask(str, enum.Enum):
  """Which pixels the photometric term (eq. 6) counts, beside the render's
  own mask."""
  SKIN = "skin"            # x the batch's skin probability (the default)
  RENDERED = "rendered"    # the rendered mask alone
  SEGMENTATION = "segmentation"  # x the source's face_mask feature


@dataclasses.dataclass(frozen=True)
class RobustConfig:
  """The `robust` method's section (paper weights; the refiners' sizes)."""
  photo_weight: float = _field(1.0, "alpha_photo: photometric loss (eq. 6).")
  identity_weight: float = _field(0.2, "alpha_id: identity loss (eq. 7).")
  attribute_weight: float = _field(
      0.005, "alpha_att: attribute-aware loss (eq. 8).")
  landmark_weight: float = _field(
      1e-3, "Landmark loss of the coarse model (squared reference-crop "
      "pixels; not in eq. 5, section 3.1 follows Deep3D).")
  regularization_weight: float = _field(
      1e-4, "Coefficient regularization of the coarse model (not in eq. 5).")
  face_mask: FaceMask = _field(
      FaceMask.SKIN, "Face mask M of eq. 6: 'skin' (rendered mask x skin "
      "probability), 'rendered', or 'segmentation' (x the source's "
      "face_mask maps).")
  identity_model: str = _field(
      "dlib", "Identity features (eq. 7 and the FAID input): 'dlib', "
      "'none' or a network's path (docs/face_embedding.md).")
  attribute_model: str = _field(
      "dlib", "Attribute features (eq. 8 and the FAID input): 'dlib' "
      "(dlib's mid-level features, our stand-in), 'none' or a network's "
      "path.")
  mesh_refiner: bool = _field(True, "Use the mesh-wise refiner.")
  faid_refiner: bool = _field(
      True, "Use the feature-wise (FAID) refiner (needs identity or "
      "attribute features).")
  gcn_channels: int = _field(32, "Width of the refiners' residual blocks.")
  gcn_order: int = _field(
      6, "K, Chebyshev terms per graph convolution (the paper does not "
      "give it).")
  gcn_blocks: int = _field(4, "Residual blocks per refiner (the paper: 4).")

  def validate(self) -> "RobustConfig":
    problems = base.negative_fields(self)
    for name in ("gcn_channels", "gcn_order"):
      if getattr(self, name) < 1:
        problems.append(f"--{name} must be >= 1, got {getattr(self, name)}")
    if self.gcn_blocks < 0:
      problems.append(f"--gcn_blocks must be >= 0, got {self.gcn_blocks}")
    try:
      FaceMask(self.face_mask)
    except ValueError:
      problems.append(f"--face_mask must be one of "
                      f"{[m.value for m in FaceMask]}, got {self.face_mask!r}")
    if problems:
      raise ValueError("; ".join(problems))
    return self


class Robust(base.Method):
  """Coarse reconstructor + GCN refiners; eqs. 5-8 (eq. 9: the add-on)."""
  name = "robust"
  config_class = RobustConfig
  required_features = ("images", "landmarks", "skin")
  accepted_sources = ("multi_view", "single_view", "video")

  def __init__(self, config: RobustConfig, **setup):
    super().__init__(config.validate(), **setup)
    self.face_mask = FaceMask(config.face_mask)
    if self.face_mask == FaceMask.SEGMENTATION:
      self.extra_features = ("face_mask",)
    self.identity = identity_lib.IdentityLoss.from_spec(config.identity_model)
    self.attribute = attribute_lib.AttributeLoss.from_spec(
        config.attribute_model)
    if config.faid_refiner and not (self.identity.enabled or
                                    self.attribute.enabled):
      raise ValueError("--faid_refiner needs identity or attribute features: "
                       "set --identity_model or --attribute_model, or "
                       "--faid_refiner=false.")
    self.landmark_weights = landmark_lib.landmark_weights()
    self.laplacian = gcn.laplacian_tensor(
        graph.scaled_laplacian_of(self.decoder.face_model))
    size = self.setup.image_size
    self.feature_dim = (int(self.face_features(tf.zeros([1, size, size,
                                                          3])).shape[-1])
                        if config.faid_refiner else 0)

  def face_features(self, images: tf.Tensor) -> tf.Tensor:
    """[M, S, S, 3] -> [M, D] identity then attribute features (constants:
    the networks are frozen and the input is data)."""
    return gcn.face_features(images, [
        e for e in (self.identity.embedding, self.attribute.embedding)
        if e is not None])

  def network_specs(self) -> Dict[str, registry.NetworkSpec]:
    c = self.config
    trunk = {"channels": c.gcn_channels, "order": c.gcn_order,
             "blocks": c.gcn_blocks}
    specs = super().network_specs()
    if c.mesh_refiner:
      specs[MESH_REFINER] = registry.NetworkSpec(MESH_REFINER, dict(trunk))
    if c.faid_refiner:
      specs[FAID_REFINER] = registry.NetworkSpec(FAID_REFINER, {
          "num_vertices": int(self.decoder.num_vertices),
          "feature_dim": self.feature_dim, **trunk})
    return specs

  def outputs(self) -> Dict[str, base.OutputSpec]:
    """The refined texture, when a refiner is on (export, evaluation)."""
    c = self.config
    if not (c.mesh_refiner or c.faid_refiner):
      return {}
    return {ALBEDO_OUTPUT: base.OutputSpec(
        network="", description=(
            "[N, V, 3] refined per-vertex albedo in [0, 1] (the average of "
            "the GCN refiners)"),
        builder=registry.NetworkSpec("robust_refined_albedo", {
            "identity_model": c.identity_model,
            "attribute_model": c.attribute_model}))}

  def describe(self) -> str:
    c = self.config
    refiners = [n for n, on in (("mesh-wise", c.mesh_refiner),
                                ("FAID", c.faid_refiner)) if on]
    return (f"robust: {' + '.join(refiners) or 'no'} refiner(s), K="
            f"{c.gcn_order}, face mask {self.face_mask.value}; "
            f"{self.identity.describe()}; {self.attribute.describe()}")

  def weights(self) -> Dict[str, float]:
    c = self.config
    return {"photo": c.photo_weight,
            "identity": c.identity_weight if self.identity.enabled else 0.0,
            "attribute": (c.attribute_weight if self.attribute.enabled
                          else 0.0),
            "landmark": c.landmark_weight,
            "regularization": c.regularization_weight}

  def fine_albedo(self, networks: Mapping[str, Any], coarse: tf.Tensor,
                  images: tf.Tensor, training: bool) -> tf.Tensor:
    """The refined per-vertex albedo.

    Args:
      networks: the built networks.
      coarse: [M, V, 3] coarse albedo in [0, 1].
      images: [M, S, S, 3] the inputs (for the FAID features).
      training: the networks' mode.

    Returns:
      [M, V, 3] in [0, 1]: the average of the enabled refiners' outputs
      (the coarse albedo when both are off).
    """
    c = self.config
    return gcn.refined_albedo(
        coarse, self.laplacian,
        networks[MESH_REFINER] if c.mesh_refiner else None,
        networks[FAID_REFINER] if c.faid_refiner else None,
        self.face_features(images) if c.faid_refiner else None,
        training=training)

  def objective(self, networks, batch, stage, training=True):
    images = tf.convert_to_tensor(batch["images"], tf.float32)
    b, n, s = images.shape[0], images.shape[1], images.shape[2]
    flat = tf.reshape(images, [b * n, s, s, 3])
    coefficients = tf.cast(networks[base.RECONSTRUCTOR](flat,
                                                        training=training),
                           tf.float32)
    face = self.decoder.decode(coefficients, image_size=s)
    albedo = self.fine_albedo(networks, face.albedo, flat, training)
    render = renderer.render_with_albedo(face, albedo, self.decoder.triangles,
                                         flat)
    mask_weights = None
    if self.face_mask == FaceMask.SKIN:
      mask_weights = tf.reshape(tf.cast(batch["skin"], tf.float32),
                                [b * n, s, s, 1])
    elif self.face_mask == FaceMask.SEGMENTATION:
      mask_weights = tf.reshape(tf.cast(batch["face_mask"], tf.float32),
                                [b * n, s, s, 1])

    def per_sample(per_view):  # [B*N] -> [B], mean over views
      return base.view_mean(per_view, b, n)

    per = {
        "photo": per_sample(photometric.render_loss(
            flat, render.image, render.mask, mask_weights)),
        "identity": per_sample(self.identity(flat, render.image)),
        "attribute": per_sample(self.attribute(flat, render.image)),
        "landmark": per_sample(base.reference_landmark_loss(
            self.decoder, face.landmarks_2d, batch["landmarks"],
            self.landmark_weights, s)),
        "regularization": per_sample(regularization.regularization_loss(
            coefficients, self.decoder.layout,
            expression_kind=self.decoder.expression_kind)),
    }
    terms = base.batch_terms(per, self.setup.global_batch_size)
    return base.Objective(
        total=base.weighted_total(terms, self.weights(), stage), terms=terms,
        details={"render": render, "fine_albedo": albedo,
                 "coarse_albedo": face.albedo, "face": face},
        coefficients=tf.reshape(coefficients, [b, n, -1]))

  def summary_images(self, objective, batch):
    images = batch["images"]
    b, n, s = images.shape[0], images.shape[1], images.shape[2]

    def side_by_side(views):  # [B*N, S, S, C] -> [B, S, N*S, C]
      return base.side_by_side(views, b, n)

    return {
        "inputs": side_by_side(tf.reshape(images, [b * n, s, s, 3])),
        "render_overlay": side_by_side(tf.clip_by_value(
            objective.details["render"].image, 0.0, 1.0)),
    }
