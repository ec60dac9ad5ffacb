"""The MGCNet objective: 2D losses on every view plus multi-view geometry losses.

One object, `MGCLoss`, takes the N views of a batch and returns the weighted
total and every named term (DESIGN.md section 5; paper eq. 6):

  L = w_2D (w_render L_render + w_lm L_lm + w_id L_id + w_reg L_reg)
      + w_mul (w_pixel L_pixel + w_depth L_depth + w_epi L_epi + w_ssim L_ssim)

2D terms are averaged over the N views; multi-view terms over the N-1
(target, source) pairs, the target being the middle view. Per-sample flags gate
the multi-view terms: 0 = single view (2D only), 1 = + pixel, depth and SSIM,
2 = + epipolar. Each sample's loss is summed and divided by the *global* batch
size, so that summing over replicas under a `tf.distribute` strategy gives the
mean over the global batch.
"""

import dataclasses
from typing import Dict, NamedTuple, Optional, Tuple

import tensorflow as tf

from mgc_tf import geometry
from mgc_tf.losses import consistency
from mgc_tf.losses import epipolar
from mgc_tf.losses import identity as identity_lib
from mgc_tf.losses import landmark
from mgc_tf.losses import photometric
from mgc_tf.losses import regularization
from mgc_tf.render import covisibility
from mgc_tf.render import renderer
from mgc_tf.render import view_synthesis

# A source pixel counts as on the source face only if its bilinear footprint is
# entirely covered: at the silhouette the sampled depth mixes in background 0.
SOURCE_COVERAGE_THRESHOLD = 0.999


@dataclasses.dataclass(frozen=True)
class MGCLossWeights:
  """Loss weights; the defaults are the paper's (configs/mgc.flags)."""
  render: float = 1.9
  landmark: float = 1e-3
  identity: float = 0.2
  regularization: float = 1e-4
  pixel: float = 0.15
  depth: float = 1e-4
  epipolar: float = 1e-3
  ssim: float = 0.0
  two_d: float = 1.0
  multiview: float = 1.0
  # Inside the regularization term (DESIGN: 1.0 alpha, 0.8 beta, 3e-3 delta).
  reg_identity: float = 1.0
  reg_expression: float = 0.8
  reg_albedo: float = 3e-3
  # Landmark weight on nose and inner mouth (paper 10; code release 5).
  landmark_nose_mouth: float = 10.0


class MGCLossOutput(NamedTuple):
  """What `MGCLoss.__call__` returns.

  Attributes:
    total: scalar, sum over the local batch of the per-sample loss divided by
      the global batch size.
    terms: name -> scalar: each term's gated per-sample values summed over
      the local batch and divided by the global batch size (unweighted), for
      logging. `total` is the weighted sum of these.
    renders: the `RenderOutput` of all B*N views (leading axis B*N).
    faces: the `DecodedFace` of all B*N views.
    covisible: [B, N-1, H, W, 1] covisible maps actually used (C times the
      validity masks), for summaries.
    synthesized: [B, N-1, H, W, 3] targets synthesized from each source.
  """
  total: tf.Tensor
  terms: Dict[str, tf.Tensor]
  renders: renderer.RenderOutput
  faces: object
  covisible: tf.Tensor
  synthesized: tf.Tensor


class MGCLoss:
  """The full MGCNet loss over N-view batches.

  Args:
    decoder: a `FaceDecoder` (face model, layout, camera).
    weights: `MGCLossWeights`; defaults are the paper's.
    identity_loss: an `IdentityLoss`; None turns the identity term off (logged
      once).
    use_covisible_map: False replaces C by the target face mask (the paper's
      "without covisible map" ablation).
    depth_reference: "warped" compares the sampled source depth with the
      target depth moved into the source camera (X_s.z), which is 0 for
      consistent geometry; "target" compares it with the target's own depth
      map D_t, the literal reading of the paper's eq. 4 (see docs/losses.md).
    global_batch_size: the batch size over all replicas; None uses the local
      batch size (single device).

  Pixel units: the landmark (px^2) and epipolar (px) terms are measured in
  pixels of the face model's reference crop (`decoder.image_size`, 224 for
  the BFM setup) whatever the training size S: crop-pixel values are scaled
  by 224/S (squared for the landmark term). The paper's weights were set at
  224 px; without this, training at 112 px would weaken the landmark term 4x
  against the size-independent render and consistency terms.
  """

  def __init__(self, decoder, weights: MGCLossWeights = MGCLossWeights(),
               identity_loss: Optional[identity_lib.IdentityLoss] = None,
               use_covisible_map: bool = True,
               depth_reference: str = "warped",
               global_batch_size: Optional[int] = None):
    if depth_reference not in ("warped", "target"):
      raise ValueError("depth_reference must be 'warped' or 'target'. "
                       f"Received: depth_reference={depth_reference!r}")
    if global_batch_size is not None and global_batch_size < 1:
      raise ValueError("global_batch_size must be positive. Received: "
                       f"global_batch_size={global_batch_size}")
    self.decoder = decoder
    self.weights = weights
    self.identity_loss = identity_loss or identity_lib.IdentityLoss(None)
    self.use_covisible_map = use_covisible_map
    self.depth_reference = depth_reference
    self.global_batch_size = global_batch_size
    self.landmark_weights = landmark.landmark_weights(
        weights.landmark_nose_mouth)

  def __call__(self, coefficients: tf.Tensor, images: tf.Tensor,
               landmarks: tf.Tensor, flags: tf.Tensor,
               skin: Optional[tf.Tensor] = None,
               name: str = "mgc_loss") -> MGCLossOutput:
    """Computes the loss of a batch of B samples of N views.

    Args:
      coefficients: [B, N, K] predicted coefficients (layout of the decoder).
      images: [B, N, H, W, 3] input images in [0, 1]. B and N static.
      landmarks: [B, N, 68, 2] ground-truth landmarks, crop pixels.
      flags: [B] int, 0 single view, 1 multi-view, 2 multi-view + epipolar.
      skin: optional [B, N, H, W, 1] skin probability weighting the render
        loss; None weighs every face pixel 1.
      name: op name scope.

    Returns:
      `MGCLossOutput`.
    """
    with tf.name_scope(name):
      images = tf.convert_to_tensor(images, tf.float32)
      batch, views = images.shape[0], images.shape[1]
      if batch is None or views is None:
        raise ValueError("The batch size and the number of views must be "
                         f"static. Received: images.shape={images.shape}")
      height, width = images.shape[2], images.shape[3]
      k = coefficients.shape[-1]
      flat_images = tf.reshape(images, [batch * views, height, width, 3])
      flat_coeffs = tf.reshape(tf.cast(coefficients, tf.float32),
                               [batch * views, k])
      faces, renders = renderer.render_face(self.decoder, flat_coeffs,
                                            background=flat_images)
      terms_per_sample = self._two_d_terms(flat_coeffs, flat_images,
                                           landmarks, skin, faces, renders,
                                           batch, views)
      multiview, covisible, synthesized = self._multiview_terms(
          images, landmarks, faces, renders, batch, views)
      # Pixel-measured terms in reference-crop pixels (see the class doc).
      to_reference = float(self.decoder.image_size) / float(width)
      terms_per_sample["landmark"] *= to_reference**2
      multiview["epipolar"] *= to_reference
      flags = tf.cast(tf.reshape(flags, [batch]), tf.int32)
      pair_gate = tf.cast(flags >= 1, tf.float32)
      epipolar_gate = tf.cast(flags >= 2, tf.float32)
      for key in ("pixel", "depth", "ssim"):
        terms_per_sample[key] = multiview[key] * pair_gate
      terms_per_sample["epipolar"] = multiview["epipolar"] * epipolar_gate

      w = self.weights
      per_sample = (
          w.two_d * (w.render * terms_per_sample["render"] +
                     w.landmark * terms_per_sample["landmark"] +
                     w.identity * terms_per_sample["identity"] +
                     w.regularization * terms_per_sample["regularization"]) +
          w.multiview * (w.pixel * terms_per_sample["pixel"] +
                         w.depth * terms_per_sample["depth"] +
                         w.epipolar * terms_per_sample["epipolar"] +
                         w.ssim * terms_per_sample["ssim"]))
      denominator = float(self.global_batch_size or batch)
      total = tf.reduce_sum(per_sample) / denominator
      terms = {key: tf.reduce_sum(value) / denominator
               for key, value in terms_per_sample.items()}
      return MGCLossOutput(total=total, terms=terms, renders=renders,
                           faces=faces, covisible=covisible,
                           synthesized=synthesized)

  def _two_d_terms(self, flat_coeffs, flat_images, landmarks, skin, faces,
                   renders, batch, views) -> Dict[str, tf.Tensor]:
    """Per-sample [B] 2D terms, each averaged over the N views."""
    flat_skin = None
    if skin is not None:
      flat_skin = tf.reshape(tf.cast(skin, tf.float32),
                             [batch * views] + flat_images.shape[1:3] + [1])
    flat_landmarks = tf.reshape(tf.cast(landmarks, tf.float32),
                                [batch * views, -1, 2])
    per_view = {
        "render": photometric.render_loss(flat_images, renders.image,
                                          renders.mask, flat_skin),
        "landmark": landmark.landmark_loss(faces.landmarks_2d, flat_landmarks,
                                           weights=self.landmark_weights),
        "identity": self.identity_loss(flat_images, renders.image,
                                       landmarks=flat_landmarks),
        "regularization": regularization.regularization_loss(
            flat_coeffs, self.decoder.layout,
            identity_weight=self.weights.reg_identity,
            expression_weight=self.weights.reg_expression,
            albedo_weight=self.weights.reg_albedo,
            expression_kind=self.decoder.expression_kind),
    }
    return {key: tf.reduce_mean(tf.reshape(tf.cast(value, tf.float32),
                                           [batch, views]), axis=1)
            for key, value in per_view.items()}

  def _multiview_terms(self, images, landmarks, faces, renders, batch, views
                       ) -> Tuple[Dict[str, tf.Tensor], tf.Tensor, tf.Tensor]:
    """Per-sample [B] multi-view terms averaged over (target, source) pairs."""
    height, width = images.shape[2], images.shape[3]
    zeros = tf.zeros([batch])
    if views < 2:
      empty = tf.zeros([batch, 0, height, width, 1])
      return ({"pixel": zeros, "depth": zeros, "ssim": zeros,
               "epipolar": zeros}, empty, tf.zeros([batch, 0, height, width, 3]))

    def per_view(tensor):
      return tf.reshape(tensor, [batch, views] + tensor.shape[1:])

    rotation, translation = per_view(faces.rotation), per_view(faces.translation)
    intrinsics, pose = per_view(faces.intrinsics), per_view(faces.pose)
    depth, mask = per_view(renders.depth), per_view(renders.mask)
    triangle_ids = per_view(renders.triangle_ids)
    landmarks = tf.cast(landmarks, tf.float32)
    t = views // 2
    sums = {"pixel": [], "depth": [], "ssim": [], "epipolar": []}
    covisible_maps, synthesized_images = [], []
    for s in [v for v in range(views) if v != t]:
      r_rel, t_rel = geometry.relative_pose(rotation[:, t], translation[:, t],
                                            rotation[:, s], translation[:, s])
      synth = view_synthesis.synthesize_view(
          images[:, s], depth[:, s], depth[:, t], intrinsics[:, t],
          intrinsics[:, s], r_rel, t_rel)
      if self.use_covisible_map:
        region = covisibility.covisible_map(
            triangle_ids[:, t], triangle_ids[:, s], self.decoder.triangles,
            self.decoder.num_vertices)
      else:
        region = mask[:, t]
      on_source_face = tf.cast(
          synth.source_coverage >= SOURCE_COVERAGE_THRESHOLD, tf.float32)
      region = tf.stop_gradient(region * synth.valid * on_source_face)
      reference = (synth.warped_depth if self.depth_reference == "warped"
                   else depth[:, t])
      sums["pixel"].append(consistency.pixel_consistency(
          synth.image, images[:, t], region))
      sums["depth"].append(consistency.depth_consistency(
          synth.sampled_depth, reference, region))
      if self.weights.ssim:
        sums["ssim"].append(consistency.ssim_consistency(
            synth.image, images[:, t], region))
      else:
        sums["ssim"].append(tf.zeros([batch]))
      # float64: the distance is invariant to the scale of F, so for nearly
      # equal poses float32 rounding in t_rel would decide the epipolar lines.
      f64 = lambda x: tf.cast(x, tf.float64)
      sums["epipolar"].append(tf.cast(epipolar.epipolar_loss_from_poses(
          f64(pose[:, t]), f64(pose[:, s]), f64(intrinsics[:, t]),
          f64(intrinsics[:, s]), f64(landmarks[:, t]), f64(landmarks[:, s])),
                                      tf.float32))
      covisible_maps.append(region)
      synthesized_images.append(synth.image)
    terms = {key: tf.add_n(values) / float(len(values))
             for key, values in sums.items()}
    return (terms, tf.stack(covisible_maps, axis=1),
            tf.stack(synthesized_images, axis=1))
