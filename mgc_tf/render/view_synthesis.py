"""View synthesis: the target view re-drawn from a source view (MGCNet eq. 2).

For every target pixel p (OpenCV pixel centres at integers, see
`mgc_tf.render.sampling`) with rendered target depth D_t(p) (camera z, mm):

  X   = D_t(p) K_t^-1 [p, 1]         target camera frame, mm
  X_s = R_rel X + t_rel              source camera frame, mm
  p_s = (K_s X_s)_{x,y} / (K_s X_s)_z  source pixel

and the source image and the source depth map are sampled bilinearly at p_s.
The relative pose is target -> source (DESIGN.md section 4):
R_rel = R_s R_t^T, t_rel = t_s - R_rel t_t (`mgc_tf.geometry.relative_pose`).

Two synthesized depths come out, both in the SOURCE camera frame:
  * `sampled_depth` = D_s(p_s), the source depth map read at p_s. This is
    the paper's synthesized depth D~_t^s of eq. 4, the one the DESIGN.md
    depth-consistency formula compares with the target depth D_t.
  * `warped_depth` = X_s.z, the target depth carried into the source frame.
    For geometry that agrees between the views, sampled_depth == warped_depth
    on covisible pixels (up to resampling), whereas sampled_depth and D_t
    differ by the change of viewpoint; `warped_depth` is the reference for a
    frame-consistent depth comparison.

Shapes: B batch, H x W the target image, H_s x W_s the source image, C image
channels.
"""

from typing import NamedTuple

import tensorflow as tf

from mgc_tf import geometry
from mgc_tf.render import sampling

#: Source-camera depths at or below this (mm) are behind the camera: invalid.
DEFAULT_MIN_DEPTH_MM = 1.0


class SynthesizedView(NamedTuple):
  """The target view synthesized from one source view.

  Attributes:
    image: [B, H, W, C] source image sampled at p_s (I~_t^s); 0 where
      `valid` is 0.
    sampled_depth: [B, H, W, 1] source depth map sampled at p_s, source
      camera z in mm (D~_t^s of the paper's eq. 4); 0 where `valid` is 0.
    warped_depth: [B, H, W, 1] X_s.z, the target depth transformed into the
      source camera frame, mm; 0 where `valid` is 0.
    coords: [B, H, W, 2] p_s, (x, y) source pixel coordinates of each target
      pixel (meaningless where `valid` is 0, but finite).
    valid: [B, H, W, 1] float, 1 where D_t > 0 (target foreground),
      X_s.z > min_depth (in front of the source camera) and p_s lies inside
      the source image ([0, W_s - 1] x [0, H_s - 1]). No gradient.
    source_coverage: [B, H, W, 1] the source foreground mask (D_s > 0)
      sampled bilinearly at p_s: 1 where all four neighbours of p_s are on
      the rendered source face, fractional on its silhouette, 0 where `valid`
      is 0. No gradient. Optional extra mask for callers.
  """
  image: tf.Tensor
  sampled_depth: tf.Tensor
  warped_depth: tf.Tensor
  coords: tf.Tensor
  valid: tf.Tensor
  source_coverage: tf.Tensor


def pixel_grid(height, width, dtype=tf.float32) -> tf.Tensor:
  """[H, W, 2] (x, y) coordinates of the pixel centres: grid[i, j] = (j, i)."""
  xs = tf.range(width, dtype=dtype)
  ys = tf.range(height, dtype=dtype)
  x, y = tf.meshgrid(xs, ys)
  return tf.stack([x, y], axis=-1)


def synthesize_view(source_image: tf.Tensor,
                    source_depth: tf.Tensor,
                    target_depth: tf.Tensor,
                    target_intrinsics: tf.Tensor,
                    source_intrinsics: tf.Tensor,
                    rotation: tf.Tensor,
                    translation: tf.Tensor,
                    min_depth: float = DEFAULT_MIN_DEPTH_MM,
                    name: str = "synthesize_view") -> SynthesizedView:
  """Synthesizes the target view from a source view by inverse warping.

  Differentiable with respect to the source image, the source depth, the
  target depth, both intrinsics and the relative pose (the masks carry no
  gradient). Background target pixels (D_t = 0) and points behind the source
  camera get finite coordinates and gradients and are marked invalid.

  Args:
    source_image: [B, H_s, W_s, C] float32 source image (e.g. RGB in [0, 1]).
    source_depth: [B, H_s, W_s, 1] float32 rendered source depth, camera z
      in mm, 0 on background.
    target_depth: [B, H, W, 1] float32 rendered target depth, camera z in mm,
      0 on background.
    target_intrinsics: [B, 3, 3] float32 K_t, pixels.
    source_intrinsics: [B, 3, 3] float32 K_s, pixels.
    rotation: [B, 3, 3] float32 R_rel, target camera -> source camera.
    translation: [B, 3] float32 t_rel, mm.
    min_depth: source-camera depth (mm) below which a point is invalid; the
      projection divides by at least this much.
    name: name scope of the ops.

  Returns:
    A `SynthesizedView`.

  Raises:
    ValueError: on bad static shapes.
  """
  with tf.name_scope(name):
    source_image = tf.convert_to_tensor(source_image, tf.float32)
    source_depth = tf.convert_to_tensor(source_depth, tf.float32)
    target_depth = tf.convert_to_tensor(target_depth, tf.float32)
    for key, tensor in (("source_image", source_image),
                        ("source_depth", source_depth),
                        ("target_depth", target_depth)):
      if tensor.shape.rank is not None and tensor.shape.rank != 4:
        raise ValueError(f"`{key}` must have rank 4 [B, H, W, C]. Received: "
                         f"{key}.shape={tensor.shape}")
    for key, tensor in (("source_depth", source_depth),
                        ("target_depth", target_depth)):
      if tensor.shape[-1] is not None and tensor.shape[-1] != 1:
        raise ValueError(f"`{key}` must have shape [B, H, W, 1]. Received: "
                         f"{key}.shape={tensor.shape}")

    shape = tf.shape(target_depth)
    batch, height, width = shape[0], shape[1], shape[2]
    grid = tf.reshape(pixel_grid(height, width), [1, -1, 2])
    grid = tf.broadcast_to(grid, tf.stack([batch, height * width, 2]))
    depth = tf.reshape(target_depth, tf.stack([batch, height * width]))

    points = geometry.unproject(grid, depth, target_intrinsics)  # [B, HW, 3]
    points_source = geometry.transform(points, rotation, translation)
    z_source = points_source[..., 2]
    coords = geometry.project(points_source, source_intrinsics,
                              min_depth=min_depth)  # [B, HW, 2]

    image_shape = tf.stack([batch, height, width])
    coords = tf.reshape(coords, tf.concat([image_shape, [2]], 0))
    z_source = tf.reshape(z_source, tf.concat([image_shape, [1]], 0))

    source_mask = tf.cast(source_depth > 0.0, tf.float32)
    channels = source_image.shape[-1]
    stacked = tf.concat([source_image, source_depth, source_mask], axis=-1)
    sampled, inside = sampling.bilinear_sample(stacked, coords)
    if channels is None:
      channels = tf.shape(source_image)[-1]

    valid = tf.logical_and(
        tf.logical_and(target_depth > 0.0, z_source > min_depth), inside > 0.0)
    valid = tf.stop_gradient(tf.cast(valid, tf.float32))
    return SynthesizedView(
        image=sampled[..., :channels] * valid,
        sampled_depth=sampled[..., channels:channels + 1] * valid,
        warped_depth=z_source * valid,
        coords=coords,
        valid=valid,
        source_coverage=tf.stop_gradient(
            sampled[..., channels + 1:channels + 2] * valid))
