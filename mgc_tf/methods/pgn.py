"""The Pose Guidance Network (Liu et al.; seed 001; docs/pgn.md).

Networks:
  reconstructor  the shared encoder (its backbone) and the identity /
                 expression branches (its Dense head; the same head also
                 outputs albedo, lighting and a pose, see below)
  pgn            the UV position-map decoder: encoder features -> X_UV, the
                 68 landmarks in weak-perspective crop coordinates
                 (`mgc_tf.models.pgn`)

Forward pass, per view: features = encoder(image); X_UV = pgn(features);
identity and expression from the head (identity from the head applied to
the features average-pooled over the sample's N views in the multi-frame
stage: one identity per sample; with N = 1 this is the view's own); the
pose from landmarks in closed form (eq. 4 then the camera conversion,
`mgc_tf.geometry.landmark_pose`) between the model's landmark vertices of
that identity and expression and X_UV. The coefficients the objective
decodes and renders are [identity | albedo | expression | solved pose |
lighting].

Albedo and lighting: the paper models neither (texture is sampled from the
images); no term here touches them, so the head's albedo and lighting stay
at their initial ~0 (mean albedo under the ambient light) and inference
shows the geometry with the mean albedo.

Inference: as in training, the pose is solved from the PGN's landmarks:
`inference_spec()` names `mgc_tf.models.pgn.build_solved_pose_reconstructor`
(written to model.json), which export, evaluation and inference build over
the restored networks. The head's own pose slot is still trained to follow
the solve (term `pose_head`, an L1 on (rz, ry, rx) in radians and t in the
head's 100 mm units, with the solved pose held fixed); it is unused at
inference (docs/pgn.md).

Terms (per sample, summed over the batch and divided by the global batch):
  pgn_landmarks   the PGN's supervision: L1 of X_UV to the labels, x and y
                  from `landmarks` (2D) and z where 3D labels exist (the
                  synthetic sources' ground-truth coefficients, decoded:
                  has_coefficients), summed over landmarks, reference-crop
                  pixels
  landmarks       eq. 8, sum |T X - X_UV| (T of eq. 4), reference pixels
  regularization  eq. 12, |alpha| + |beta| / 2
  pose_head       see Inference above
  photometric     eq. 9, soft census (7 x 7) Hamming distance between each
                  target view and the render of the next view's swapped
                  texture on the target's geometry (eqs. 5-6), on the
                  rendered mask, weight 5 near eyes, nose and mouth
  flow            eq. 10, mean |flow(I_t, I_s->t)| with the same weights
                  (built-in Lucas-Kanade or --pgn_flow_network), reference
                  pixels
  semantic        eq. 11, 1 - cos of the encoder features of I_t and I_s->t
The multi-view terms run over the pairs (target v, source v + 1 mod N) of
samples with flag >= 1 (both directions when N = 2), or over all N (N - 1)
ordered pairs with --pgn_view_pairs=all.

Stages (config): "pgn" trains the encoder and the PGN on pgn_landmarks;
"single" trains the head alone (encoder and PGN fixed, one image per
identity: no fusion) on landmarks, regularization and pose_head; "multi"
trains the head on every term but pgn_landmarks, with identity fusion.
"""

import dataclasses
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np
import tensorflow as tf

from mgc_tf.geometry import landmark_pose
from mgc_tf.losses import census
from mgc_tf.losses import identity as identity_lib
from mgc_tf.losses import landmark as landmark_lib
from mgc_tf.losses import regularization
from mgc_tf.methods import base
from mgc_tf.models import backbones
from mgc_tf.models import flow as flow_lib
from mgc_tf.models import pgn as pgn_models
from mgc_tf.models import reconstructor as reconstructor_lib
from mgc_tf.models import registry
from mgc_tf.render import texture_swap

PGN = "pgn"
PGN_STAGE, SINGLE_STAGE, MULTI_STAGE = "pgn", "single", "multi"
PGN_TERMS = ("pgn_landmarks",)
SINGLE_TERMS = ("landmarks", "regularization", "pose_head")
MULTI_VIEW_TERMS = ("photometric", "flow", "semantic")
HEAD_LAYER = "head"

_field = base.field

#: --pgn_view_pairs values.
VIEW_PAIRS = ("next", "all")


def view_pairs(num_views: int, mode: str) -> List[Tuple[int, int]]:
  """(target, source) view pairs of the multi-view terms.

  Args:
    num_views: N.
    mode: "next" (source = target + 1 mod N; for N = 2 both directions) or
      "all" (every ordered pair of distinct views).

  Returns:
    N pairs ("next") or N (N - 1) pairs ("all"); none when N < 2.
  """
  if mode not in VIEW_PAIRS:
    raise ValueError(f"mode must be one of {VIEW_PAIRS}, got {mode!r}")
  if num_views < 2:
    return []
  if mode == "next":
    return [(t, (t + 1) % num_views) for t in range(num_views)]
  return [(t, s) for t in range(num_views) for s in range(num_views)
          if s != t]


@dataclasses.dataclass(frozen=True)
class PGNConfig:
  """The `pgn` section: the paper's weights (lambda_*) and stages."""
  pgn_landmarks_weight: float = _field(
      1.0, "PGN supervision: L1 of X_UV to 2D/3D landmark labels.")
  pgn_landmark_weight: float = _field(
      1.0, "lambda_l, eq. 8 sparse landmark loss |T X - X_UV|.")
  pgn_photometric_weight: float = _field(
      0.2, "lambda_p, eq. 9 census photometric consistency.")
  pgn_flow_weight: float = _field(0.2, "lambda_f, eq. 10 flow consistency.")
  pgn_semantic_weight: float = _field(
      10.0, "lambda_s, eq. 11 semantic (encoder cosine) consistency.")
  pgn_landmark_fit: str = _field(
      "similarity", "The fit in eq. 8's |T X - X_UV|: 'similarity' (f R X "
      "+ t; default, see docs/pgn.md) or 'affine' (the paper's T).")
  pgn_regularization_weight: float = _field(
      1.0, "lambda_r, eq. 12 L1 of identity and expression / std.")
  pgn_pose_head_weight: float = _field(
      1.0, "The head's pose follows the solved pose (for export; not in "
      "the paper).")
  pgn_region_weight: float = _field(
      5.0, "W of eqs. 9-10 on eyes, nose and mouth (1 elsewhere).")
  pgn_census_window: int = _field(7, "Census window side (odd).")
  pgn_view_pairs: str = _field(
      "next", "Pairs of the multi-view terms (eqs. 9-11): 'next' (target "
      "v, source v + 1 mod N: N swapped renders) or 'all' (every ordered "
      "pair: N (N - 1) renders).")
  pgn_flow_network: str = _field(
      "", "Flow network for eq. 10: a .keras/.h5 file or SavedModel dir "
      "(two images -> [B, H, W, 2]); empty: built-in Lucas-Kanade.")
  pgn_flow_levels: int = _field(3, "Lucas-Kanade pyramid levels.")
  pgn_flow_iterations: int = _field(3, "Lucas-Kanade steps per level.")
  pgn_uv_size: int = _field(32, "Side of the PGN's UV position map.")
  pgn_decoder_filters: int = _field(64, "PGN decoder's first channels.")
  stage_pgn_steps: int = _field(
      600_000, "Steps of stage 'pgn' (encoder + PGN); 0 skips it.")
  stage_single_steps: int = _field(
      400_000, "Steps of stage 'single' (head, one image); 0 skips it. "
      "Stage 'multi' runs to --max_steps.")

  def validate(self) -> "PGNConfig":
    problems = base.negative_fields(self, ("_weight", "_steps"))
    if self.pgn_census_window < 3 or self.pgn_census_window % 2 == 0:
      problems.append("--pgn_census_window must be odd and >= 3, got "
                      f"{self.pgn_census_window}")
    if self.pgn_flow_levels < 1 or self.pgn_flow_iterations < 1:
      problems.append("--pgn_flow_levels and --pgn_flow_iterations must be "
                      f">= 1, got {self.pgn_flow_levels}, "
                      f"{self.pgn_flow_iterations}")
    if self.pgn_uv_size < 8 or self.pgn_uv_size & (self.pgn_uv_size - 1):
      problems.append("--pgn_uv_size must be a power of two >= 8, got "
                      f"{self.pgn_uv_size}")
    if self.pgn_decoder_filters < 8:
      problems.append("--pgn_decoder_filters must be >= 8, got "
                      f"{self.pgn_decoder_filters}")
    if self.pgn_view_pairs not in VIEW_PAIRS:
      problems.append(f"--pgn_view_pairs must be one of "
                      f"{', '.join(VIEW_PAIRS)}, got {self.pgn_view_pairs!r}")
    if self.pgn_landmark_fit not in pgn_models.LANDMARK_FITS:
      problems.append("--pgn_landmark_fit must be one of "
                      f"{', '.join(pgn_models.LANDMARK_FITS)}, got "
                      f"{self.pgn_landmark_fit!r}")
    if problems:
      raise ValueError("; ".join(problems))
    return self

  def weights(self) -> Dict[str, float]:
    return {"pgn_landmarks": self.pgn_landmarks_weight,
            "landmarks": self.pgn_landmark_weight,
            "regularization": self.pgn_regularization_weight,
            "pose_head": self.pgn_pose_head_weight,
            "photometric": self.pgn_photometric_weight,
            "flow": self.pgn_flow_weight,
            "semantic": self.pgn_semantic_weight}


class PGNMethod(base.Method):
  """Liu et al.'s Pose Guidance Network (module docstring)."""
  name = "pgn"
  config_class = PGNConfig
  required_features = ("images", "landmarks", "flag")
  extra_features = ("coefficients",)
  accepted_sources = ("multi_view", "video", "single_view")

  def __init__(self, config: PGNConfig, **setup):
    super().__init__(config.validate(), **setup)
    c = self.config
    self.flow = (flow_lib.load_flow_network(c.pgn_flow_network)
                 if c.pgn_flow_network else
                 flow_lib.LucasKanadeFlow(levels=c.pgn_flow_levels,
                                          iterations=c.pgn_flow_iterations))
    size = self.setup.image_size
    self.focal = self.decoder.focal_length * size / self.decoder.image_size
    self.to_reference = float(self.decoder.image_size) / size
    self.backbone_name = f"{self.setup.backbone}_backbone"

  # --- networks and stages ----------------------------------------------

  def template(self) -> np.ndarray:
    """[68, 3] the mean face's X_UV at the default pose, crop pixels."""
    size = self.setup.image_size
    face = self.decoder.decode(tf.zeros([1, self.decoder.layout.size]),
                               image_size=size)
    z = landmark_pose.weak_perspective_depth(face.landmarks_3d, self.focal)
    return tf.concat([face.landmarks_2d, z[..., None]], -1).numpy()[0]

  def network_specs(self) -> Dict[str, registry.NetworkSpec]:
    c = self.config
    return {**super().network_specs(),
            PGN: registry.NetworkSpec("pgn_uv_decoder", {
                "feature_dim": backbones.FEATURE_DIMS[self.setup.backbone],
                "image_size": int(self.setup.image_size),
                "template": np.round(self.template(), 4).tolist(),
                "uv_size": c.pgn_uv_size,
                "filters": c.pgn_decoder_filters})}

  def stages(self):
    c = self.config
    frozen = (f"{base.RECONSTRUCTOR}/{self.backbone_name}",)
    out = []
    if c.stage_pgn_steps:
      out.append(base.Stage(PGN_STAGE, steps=c.stage_pgn_steps,
                            networks=(base.RECONSTRUCTOR, PGN),
                            terms=PGN_TERMS))
    if c.stage_single_steps:
      out.append(base.Stage(SINGLE_STAGE, steps=c.stage_single_steps,
                            networks=(base.RECONSTRUCTOR,),
                            terms=SINGLE_TERMS, frozen=frozen))
    out.append(base.Stage(MULTI_STAGE, networks=(base.RECONSTRUCTOR,),
                          terms=SINGLE_TERMS + MULTI_VIEW_TERMS,
                          frozen=frozen))
    return tuple(out)

  def inference_spec(self) -> registry.NetworkSpec:
    """Inference solves the pose from the PGN's landmarks, as training
    does (`mgc_tf.models.pgn.build_solved_pose_reconstructor`)."""
    return registry.NetworkSpec("pgn_solved_pose", {
        "backbone_layer": self.backbone_name,
        "head_layers": [HEAD_LAYER, reconstructor_lib.HEAD_NAME],
        "focal_length": float(self.focal),
        "principal_point": self.setup.image_size / 2.0})

  def describe(self) -> str:
    flow = (self.flow.describe() if hasattr(self.flow, "describe") else
            f"flow network {self.config.pgn_flow_network}")
    return (f"pgn: shared encoder = the reconstructor's backbone, PGN UV "
            f"decoder; pose solved from landmarks (eq. 4), in training "
            f"and at inference; flow: {flow}.")

  # --- objective ----------------------------------------------------------

  def objective(self, networks: Mapping[str, Any], batch: Mapping[str, Any],
                stage: base.Stage, training: bool = True) -> base.Objective:
    images = tf.cast(batch["images"], tf.float32)
    b, n, s = images.shape[0], images.shape[1], images.shape[2]
    flat = tf.reshape(images, [b * n, s, s, 3])
    layout = self.decoder.layout
    reconstructor = networks[base.RECONSTRUCTOR]
    encoder = reconstructor.get_layer(self.backbone_name)
    head_dense = reconstructor.get_layer(HEAD_LAYER)
    head_scale = reconstructor.get_layer(reconstructor_lib.HEAD_NAME)
    trains = lambda name: stage.networks is None or name in stage.networks
    encoder_trains = trains(base.RECONSTRUCTOR) and not any(
        path.endswith("/" + self.backbone_name) for path in stage.frozen)

    def fixed_unless(value, on):
      return value if on else tf.stop_gradient(value)

    features = fixed_unless(tf.cast(encoder(
        flat, training=training and encoder_trains), tf.float32),
                            encoder_trains)  # [BN, F]
    landmarks_uv = fixed_unless(tf.cast(networks[PGN](
        features, training=training and trains(PGN)), tf.float32),
                                trains(PGN))  # [BN, 68, 3]
    head = lambda f: tf.cast(head_scale(head_dense(f)), tf.float32)
    per_view = lambda v: tf.reduce_mean(tf.reshape(v, [b, n]), axis=1)
    terms_per_sample = {}
    details = {"landmarks_uv": landmarks_uv}

    if stage.term_on("pgn_landmarks"):
      terms_per_sample["pgn_landmarks"] = per_view(
          self._pgn_supervision(batch, landmarks_uv, b, n, s))

    needs_faces = any(stage.term_on(t) for t in SINGLE_TERMS +
                      MULTI_VIEW_TERMS)
    coefficients = None
    if needs_faces:
      predicted = head(features)  # [BN, K]
      groups = layout.split(predicted)
      if stage.name == MULTI_STAGE:  # one identity per sample (fusion)
        pooled = tf.reduce_mean(tf.reshape(features, [b, n, -1]), axis=1)
        fused = layout.split(head(pooled))["identity"]  # [B, K_id]
        groups["identity"] = tf.repeat(fused, n, axis=0)
      solve = pgn_models.solve_pose(groups, landmarks_uv, self.decoder,
                                    self.focal, s / 2.0,
                                    fit=self.config.pgn_landmark_fit)
      pose = solve.pose
      terms_per_sample["landmarks"] = self.to_reference * per_view(
          tf.reduce_sum(tf.abs(solve.fitted - landmarks_uv), axis=[1, 2]))
      terms_per_sample["regularization"] = per_view(
          regularization.regularization_loss(
              layout.join({**groups, "pose": tf.zeros_like(pose)}), layout,
              identity_weight=1.0, expression_weight=0.5, albedo_weight=0.0,
              expression_kind=self.decoder.expression_kind, norm="l1"))
      unit = np.ones([6], np.float32)
      unit[3:] = reconstructor_lib.TRANSLATION_UNIT_MM
      terms_per_sample["pose_head"] = per_view(tf.reduce_sum(
          tf.abs(groups["pose"] - tf.stop_gradient(pose)) / unit, axis=-1))
      coefficients = solve.coefficients
      if any(stage.term_on(t) for t in MULTI_VIEW_TERMS):
        terms_per_sample.update(self._multi_view_terms(
            batch, images, coefficients, features, encoder, b, n, s,
            details))

    terms = self.batch_terms(terms_per_sample)
    total = base.weighted_total(terms, self.config.weights(), stage)
    return base.Objective(
        total=total, terms=terms, details=details,
        coefficients=(None if coefficients is None else
                      tf.reshape(coefficients, [b, n, -1])))

  def _pgn_supervision(self, batch, landmarks_uv, b, n, s) -> tf.Tensor:
    """[BN] sum over landmarks of |X_UV - label|_1, reference pixels; z
    only where the sample has ground-truth coefficients (synthetic)."""
    labels = tf.reshape(tf.cast(batch["landmarks"], tf.float32),
                        [b * n, -1, 2])
    error = tf.reduce_sum(tf.abs(landmarks_uv[..., :2] - labels),
                          axis=[1, 2])
    if "coefficients" in batch:
      has_3d = tf.cast(tf.repeat(tf.reshape(batch["has_coefficients"], [b]),
                                 n), tf.float32)
      truth = self.decoder.decode(tf.reshape(tf.cast(
          batch["coefficients"], tf.float32), [b * n, -1]), image_size=s)
      z = landmark_pose.weak_perspective_depth(truth.landmarks_3d,
                                               self.focal)
      error += has_3d * tf.reduce_sum(tf.abs(landmarks_uv[..., 2] - z),
                                      axis=1)
    return self.to_reference * error

  def _multi_view_terms(self, batch, images, coefficients, features,
                        encoder, b, n, s, details) -> Dict[str, tf.Tensor]:
    """Per-sample [B] photometric, flow and semantic terms (eqs. 5-11)."""
    c = self.config
    zeros = tf.zeros([b])
    if n < 2:
      return {"photometric": zeros, "flow": zeros, "semantic": zeros}
    face = self.decoder.decode(coefficients, image_size=s)

    def views(t):
      return tf.reshape(t, [b, n] + t.shape[1:].as_list())

    vertices, k = views(face.vertices), views(face.intrinsics)
    landmarks_2d = views(face.landmarks_2d)
    feature_views = views(features)
    multi = tf.cast(tf.reshape(batch["flag"], [b]) >= 1, tf.float32)
    photometric, flows, semantic, swapped = [], [], [], []
    for target, source in view_pairs(n, c.pgn_view_pairs):
      render = texture_swap.swap_render(
          images[:, source], vertices[:, source], images[:, target],
          vertices[:, target], self.decoder.triangles, k[:, target])
      weights = landmark_lib.region_weight_map(
          landmarks_2d[:, target], s, radius=s / 16.0,
          weight=c.pgn_region_weight)
      photometric.append(census.census_loss(
          images[:, target], render.image, render.mask, weights,
          window=c.pgn_census_window))
      flow = self.flow(images[:, target], render.image)
      magnitude = tf.sqrt(tf.reduce_sum(tf.square(flow), -1, keepdims=True)
                          + 1e-12)
      w = weights * tf.stop_gradient(render.mask)
      flows.append(self.to_reference * tf.math.divide_no_nan(
          tf.reduce_sum(magnitude * w, [1, 2, 3]),
          tf.reduce_sum(w, [1, 2, 3])))
      rendered_features = tf.cast(encoder(render.image, training=False),
                                  tf.float32)
      semantic.append(identity_lib.cosine_distance(
          tf.stop_gradient(feature_views[:, target]), rendered_features))
      swapped.append(render.image)
    details["swapped"] = tf.stack(swapped, 1)
    mean = lambda values: multi * tf.add_n(values) / len(values)
    return {"photometric": mean(photometric), "flow": mean(flows),
            "semantic": mean(semantic)}

  def summary_images(self, objective: base.Objective,
                     batch: Mapping[str, Any]) -> Dict[str, tf.Tensor]:
    details = objective.details or {}
    if "swapped" not in details:
      return {}
    views = details["swapped"]
    b, s = views.shape[0], views.shape[2]
    side = tf.reshape(tf.transpose(views, [0, 2, 1, 3, 4]), [b, s, -1, 3])
    return {"swapped": tf.clip_by_value(side, 0.0, 1.0)}
