"""Multi-view supervision with a depth network (Shu et al.; seed 003).

Three networks:
  reconstructor  g, 3DMMNet: image -> coefficients, i.e. the 3DMM
                 parameters alpha and the view V = (R, t) (our reconstructor,
                 any backbone; the paper used a DenseNet)
  depthnet       f, a U-Net: image -> normalised depth D' (eq. 7; a, c and
                 xi_V = t_z in `mgc_tf.geometry.depth_map`)
  suitability    h, a U-Net: image -> C in [0, 1] (eq. 14)

Terms (pure functions of `mgc_tf.losses`; per sample, then summed and
divided by the global batch):
  g:  coefficients      eq. 3, L1 to the ground-truth identity and
                        expression; samples with has_coefficients only. The
                        paper's real-data identity targets came from Tran et
                        al.'s regressor, which we do not have: on real data
                        the term is 0 (lambda_1 = 0 there).
      pair_consistency  eq. 4, over the view pairs of multi-view samples.
      reprojection      eq. 5, `landmark_loss` of the projected model
                        landmarks, uniform weights, squared pixels of the
                        reference crop (224 for our models) as MGCNet's
                        landmark term; every sample.
  f:  depth_l1          eq. 8 on ground-truth face pixels (has_depth).
      normals           eq. 9, normals by finite differences (has_depth).
      depth_3dmm        eq. 10, (D' - D'_S)^2 with D'_S the depth render of
                        g's 3DMM, gradient to f only; every sample.
  f,h: photo            eqs. 11-14, every source view warped into the
                        target (middle) view with f's target depth and g's
                        views, masked by the occlusion mask from warping
                        g's 3DMM depth (threshold 0.05 in D' units) and
                        weighted by h; multi-view samples (flag >= 1).
  h:  suitability_reg   eq. 15, |C - 1|; multi-view samples.

Stages (config): "3dmm" trains g on its terms, then "depth" trains f and h
on theirs with g fixed (run in inference mode, no gradient), then
optionally "joint" trains all three on every term. The paper ran the first
two; the ground-truth terms need the un-augmented crop (--augment=false).
"""

import dataclasses
from typing import Any, Dict, Mapping

import tensorflow as tf

from mgc_tf import geometry
from mgc_tf.geometry import depth_map as depth_map_lib
from mgc_tf.losses import depth_map
from mgc_tf.losses import landmark
from mgc_tf.losses import parameters
from mgc_tf.methods import base
from mgc_tf.models import registry
from mgc_tf.models import unet  # pylint: disable=unused-import (registers)
from mgc_tf.render import renderer

DEPTHNET = "depthnet"
SUITABILITY = "suitability"
G_TERMS = ("coefficients", "pair_consistency", "reprojection")
F_TERMS = ("depth_l1", "normals", "depth_3dmm", "photo", "suitability_reg")


_field = base.field


@dataclasses.dataclass(frozen=True)
class DepthNetConfig:
  """The `depthnet` section: the paper's weights and stages."""
  coefficient_weight: float = _field(1.0, "Eq. 3, coefficient L1 (g).")
  coefficient_identity_weight: float = _field(
      1.0, "lambda_1 of eq. 3 (identity).")
  coefficient_expression_weight: float = _field(
      1.0, "lambda_2 of eq. 3 (expression).")
  pair_consistency_weight: float = _field(
      1.0, "Eq. 4, identity/expression consistency between views (g).")
  reprojection_weight: float = _field(
      1e-3, "Eq. 5, landmark reprojection in squared reference-crop pixels "
      "(g; MGCNet's landmark weight).")
  depth_l1_weight: float = _field(1.0, "Eq. 8, depth L1 in D' units (f).")
  normal_weight: float = _field(1.0, "Eq. 9, normal L1 (f).")
  depth_3dmm_weight: float = _field(
      0.02, "Eq. 10, lambda_3 of the 3DMM depth regulariser (f).")
  photo_weight: float = _field(
      1.0, "Eq. 14, suitability-weighted photo-consistency (f, h).")
  suitability_reg_weight: float = _field(1.0, "Eq. 15, |C - 1| (h).")
  occlusion_threshold: float = _field(
      depth_map.OCCLUSION_THRESHOLD,
      "Eq. 13 threshold on the warped 3DMM depth, D' units (x 300 mm).")
  depthnet_filters: int = _field(32, "DepthNet U-Net: first-level channels.")
  depthnet_levels: int = _field(4, "DepthNet U-Net: levels.")
  suitability_filters: int = _field(16, "Suitability U-Net: channels.")
  suitability_levels: int = _field(3, "Suitability U-Net: levels.")
  stage_3dmm_steps: int = _field(
      200_000, "Steps of stage '3dmm' (g alone); 0 skips it.")
  stage_depth_steps: int = _field(
      200_000, "Steps of stage 'depth' (f and h, g fixed) when "
      "--joint_stage; else it runs to --max_steps.")
  joint_stage: bool = _field(
      False, "Add a last stage 'joint' training g, f and h on every term.")

  def validate(self) -> "DepthNetConfig":
    problems = base.negative_fields(self, ("_weight", "_steps"))
    if self.occlusion_threshold <= 0:
      problems.append("--occlusion_threshold must be > 0, got "
                      f"{self.occlusion_threshold}")
    if self.joint_stage and self.stage_depth_steps == 0:
      problems.append("--joint_stage needs --stage_depth_steps > 0")
    if problems:
      raise ValueError("; ".join(problems))
    return self

  def weights(self) -> Dict[str, float]:
    return {"coefficients": self.coefficient_weight,
            "pair_consistency": self.pair_consistency_weight,
            "reprojection": self.reprojection_weight,
            "depth_l1": self.depth_l1_weight,
            "normals": self.normal_weight,
            "depth_3dmm": self.depth_3dmm_weight,
            "photo": self.photo_weight,
            "suitability_reg": self.suitability_reg_weight}


class DepthNetMethod(base.Method):
  """Shu et al.: 3DMMNet g, DepthNet f, suitability net h (module doc)."""
  name = "depthnet"
  config_class = DepthNetConfig
  required_features = ("images", "landmarks", "flag")
  extra_features = ("depth", "coefficients")
  accepted_sources = ("multi_view", "single_view")

  def __init__(self, config: DepthNetConfig, **setup):
    super().__init__(config.validate(), **setup)
    self.landmark_weights = landmark.landmark_weights(1.0)

  def network_specs(self) -> Dict[str, registry.NetworkSpec]:
    c, size = self.config, self.setup.image_size
    return {**super().network_specs(),
            DEPTHNET: registry.NetworkSpec("depth_unet", {
                "image_size": size, "filters": c.depthnet_filters,
                "levels": c.depthnet_levels}),
            SUITABILITY: registry.NetworkSpec("suitability_unet", {
                "image_size": size, "filters": c.suitability_filters,
                "levels": c.suitability_levels})}

  def stages(self):
    c = self.config
    out = []
    if c.stage_3dmm_steps:
      out.append(base.Stage("3dmm", steps=c.stage_3dmm_steps,
                            networks=(base.RECONSTRUCTOR,), terms=G_TERMS))
    out.append(base.Stage("depth",
                          steps=c.stage_depth_steps if c.joint_stage else 0,
                          networks=(DEPTHNET, SUITABILITY), terms=F_TERMS))
    if c.joint_stage:
      out.append(base.Stage("joint"))
    return tuple(out)

  def outputs(self) -> Dict[str, base.OutputSpec]:
    return {
        depth_map_lib.NORMALIZED_OUTPUT: base.OutputSpec(
            DEPTHNET, "[N, S, S, 1] DepthNet's D' = a (D - t_z) + c, 0 off "
            "the face (a = 1/300 per mm, c = 0.6; mgc_tf.geometry.depth_map)"),
        depth_map_lib.SUITABILITY_OUTPUT: base.OutputSpec(
            SUITABILITY, "[N, S, S, 1] suitability map C in [0, 1]")}

  def describe(self) -> str:
    return ("depthnet: g = reconstructor (3DMMNet), f = depth U-Net, h = "
            "suitability U-Net; eq. 3 identity targets on real data are not "
            "available here (term 0 without ground-truth coefficients).")

  def objective(self, networks: Mapping[str, Any], batch: Mapping[str, Any],
                stage: base.Stage, training: bool = True) -> base.Objective:
    images = tf.cast(batch["images"], tf.float32)
    b, n, s = images.shape[0], images.shape[1], images.shape[2]
    flat = tf.reshape(images, [b * n, s, s, 3])
    trains = lambda name: stage.networks is None or name in stage.networks
    # A fixed network runs in inference mode (its batch-norm statistics
    # stay as they are) and gives no gradient.
    def run(name, inputs):
      out = tf.cast(networks[name](inputs, training=training and trains(name)),
                    tf.float32)
      return out if trains(name) else tf.stop_gradient(out)

    layout = self.decoder.layout
    coefficients = run(base.RECONSTRUCTOR, flat)  # [BN, K]
    multi_view = tf.cast(tf.reshape(batch["flag"], [b]) >= 1, tf.float32)
    per_view = lambda v: tf.reduce_mean(tf.reshape(v, [b, n]), axis=1)
    terms_per_sample = {}
    details = {}

    if any(stage.term_on(t) for t in G_TERMS):
      face = self.decoder.decode(coefficients, image_size=s)
      has_coefficients = tf.cast(tf.reshape(batch["has_coefficients"], [b]),
                                 tf.float32)
      c = self.config
      true_coefficients = tf.reshape(
          tf.cast(batch["coefficients"], tf.float32), [b * n, -1])
      terms_per_sample["coefficients"] = has_coefficients * per_view(
          parameters.coefficient_l1(
              coefficients, true_coefficients, layout,
              identity_weight=c.coefficient_identity_weight,
              expression_weight=c.coefficient_expression_weight))
      terms_per_sample["pair_consistency"] = multi_view * (
          parameters.parameter_consistency(
              tf.reshape(coefficients, [b, n, -1]), layout))
      to_reference = (float(self.decoder.image_size) / s)**2
      terms_per_sample["reprojection"] = to_reference * per_view(
          landmark.landmark_loss(
              face.landmarks_2d,
              tf.reshape(tf.cast(batch["landmarks"], tf.float32),
                         [b * n, -1, 2]), weights=self.landmark_weights))

    if any(stage.term_on(t) for t in F_TERMS):
      terms_per_sample.update(self._depth_terms(
          networks, run, batch, flat, coefficients, multi_view, b, n, s,
          details))

    terms = self.batch_terms(terms_per_sample)
    total = base.weighted_total(terms, self.config.weights(), stage)
    return base.Objective(total=total, terms=terms, details=details)

  def _depth_terms(self, networks, run, batch, flat, coefficients,
                   multi_view, b, n, s, details) -> Dict[str, tf.Tensor]:
    """Per-sample [B] terms of f and h (eqs. 8-15)."""
    del networks
    face, render = renderer.render_face(self.decoder, coefficients,
                                        image_size=(s, s))
    xi = face.translation[:, 2]  # [BN] camera-face distance of g's views
    depth = run(DEPTHNET, flat)  # [BN, S, S, 1] D'
    suitability = run(SUITABILITY, flat)
    depth_3dmm = tf.stop_gradient(render.depth)  # mm
    intrinsics = face.intrinsics
    out = {}

    # Ground truth (synthetic): normalised with the true view's t_z.
    has_depth = tf.cast(tf.reshape(batch["has_depth"], [b]), tf.float32)
    true_mm = tf.reshape(tf.cast(batch["depth"], tf.float32), [b * n, s, s, 1])
    pose = self.decoder.layout.slices()["pose"]
    true_xi = tf.reshape(tf.cast(batch["coefficients"], tf.float32),
                         [b * n, -1])[:, pose.stop - 1] + (
                             self.decoder.default_pose[5])
    has_true_xi = tf.repeat(tf.reshape(batch["has_coefficients"], [b]), n)
    true_xi = tf.where(has_true_xi, true_xi, tf.stop_gradient(xi))
    true_depth = depth_map_lib.normalize_depth(true_mm, true_xi)
    per_view = lambda v: tf.reduce_mean(tf.reshape(v, [b, n]), axis=1)
    out["depth_l1"] = has_depth * per_view(depth_map.depth_l1(depth,
                                                              true_depth))
    depth_mm_true_xi = depth_map_lib.denormalize_depth(depth, true_xi,
                                                       face_threshold=None)
    out["normals"] = has_depth * per_view(depth_map.normal_loss(
        depth_mm_true_xi, true_mm, intrinsics))

    # The 3DMM regulariser, normalised with g's own view.
    out["depth_3dmm"] = per_view(depth_map.depth_regularizer(
        depth, depth_map_lib.normalize_depth(depth_3dmm, xi)))

    # Photo-consistency: every source warped into the middle view.
    def views(t):
      return tf.reshape(t, [b, n] + t.shape[1:].as_list())
    images = views(flat)
    rotation, translation = views(face.rotation), views(face.translation)
    k = views(intrinsics)
    depth_mm = views(depth_map_lib.denormalize_depth(depth, xi,
                                                     face_threshold=None))
    depth_3dmm, suitability_views = views(depth_3dmm), views(suitability)
    target = n // 2
    photo, masks = [], []
    for source in [v for v in range(n) if v != target]:
      r_rel, t_rel = geometry.relative_pose(
          rotation[:, target], translation[:, target], rotation[:, source],
          translation[:, source])
      mask = depth_map.occlusion_mask(
          depth_3dmm[:, target], depth_3dmm[:, source], k[:, target],
          k[:, source], r_rel, t_rel,
          threshold=self.config.occlusion_threshold)
      warped = depth_map.warp_image(images[:, source], depth_mm[:, target],
                                    k[:, target], k[:, source], r_rel, t_rel)
      mask = mask * warped.valid
      photo.append(depth_map.photo_consistency(
          images[:, target], warped.image, mask,
          suitability_views[:, target]))
      masks.append(mask)
    zeros = tf.zeros([b])
    out["photo"] = multi_view * (tf.add_n(photo) / len(photo) if photo
                                 else zeros)
    out["suitability_reg"] = multi_view * depth_map.suitability_regularizer(
        suitability_views[:, target])
    details.update(depth=views(depth), suitability=suitability_views,
                   depth_3dmm=depth_3dmm,
                   occlusion=tf.stack(masks, 1) if masks else None)
    return out

  def summary_images(self, objective: base.Objective,
                     batch: Mapping[str, Any]) -> Dict[str, tf.Tensor]:
    details = objective.details or {}
    if "depth" not in details:
      return {}

    def side_by_side(views):  # [B, V, S, S, C] -> [B, S, V*S, C]
      b, s = views.shape[0], views.shape[2]
      views = tf.transpose(views, [0, 2, 1, 3, 4])
      return tf.reshape(views, [b, s, -1, views.shape[-1]])

    return {"depth": side_by_side(tf.clip_by_value(details["depth"], 0, 1)),
            "suitability": side_by_side(details["suitability"])}
