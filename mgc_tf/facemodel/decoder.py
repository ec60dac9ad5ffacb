"""Coefficients -> face geometry, colour and landmarks, in pure TensorFlow.

No rasterizer op is used here, so this is what the serving graph exports.
"""

from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

from mgc_tf import geometry
from mgc_tf.facemodel import coefficients as coefficients_lib
from mgc_tf.facemodel import expressions
from mgc_tf.facemodel import shading


@tf.custom_gradient
def clip_blendshape_weights(raw: tf.Tensor) -> tf.Tensor:
  """[..., K] raw values -> weights clipped to [0, 1], gradient kept inward.

  Forward: clip(raw, 0, 1). Backward: the exact gradient inside [0, 1]; for a
  value below 0 (above 1) the gradient passes only where a descent step would
  raise (lower) it, back towards [0, 1], and is zero where it would push it
  further out. So a weight stuck at 0 still learns when an image wants more
  of it (see `mgc_tf.facemodel.expressions`).
  """
  weights = tf.clip_by_value(raw, expressions.BLENDSHAPE_MIN,
                             expressions.BLENDSHAPE_MAX)

  def grad(upstream):
    # A descent step moves raw by -upstream.
    outward = tf.logical_or(
        tf.logical_and(raw < expressions.BLENDSHAPE_MIN, upstream > 0),
        tf.logical_and(raw > expressions.BLENDSHAPE_MAX, upstream < 0))
    return tf.where(outward, tf.zeros_like(upstream), upstream)

  return weights, grad


class DecodedFace(NamedTuple):
  """A batch of B decoded faces (V vertices).

  Attributes:
    shape: [B, V, 3] model-space vertices, mm.
    albedo: [B, V, 3] albedo in [0, 1].
    pose: [B, 6] full pose (default + predicted): (rz, ry, rx) rad, t mm.
    rotation: [B, 3, 3] model -> camera rotation R = Rx Ry Rz.
    translation: [B, 3] mm.
    vertices: [B, V, 3] camera-space vertices (OpenCV axes), mm.
    normals: [B, V, 3] camera-space unit vertex normals.
    colors: [B, V, 3] SH-shaded vertex colours (not clipped).
    lighting: [B, 27] SH coefficients as predicted (before the 0.8 offset).
    intrinsics: [B, 3, 3] pinhole matrix K, pixels.
    landmarks_3d: [B, 68, 3] camera-space landmarks, mm.
    landmarks_2d: [B, 68, 2] projected landmarks, crop pixels.
  """
  shape: tf.Tensor
  albedo: tf.Tensor
  pose: tf.Tensor
  rotation: tf.Tensor
  translation: tf.Tensor
  vertices: tf.Tensor
  normals: tf.Tensor
  colors: tf.Tensor
  lighting: tf.Tensor
  intrinsics: tf.Tensor
  landmarks_3d: tf.Tensor
  landmarks_2d: tf.Tensor


class FaceDecoder:
  """Holds a face model as constants and decodes coefficient batches.

  Args:
    face_model: a `mgc_tf.facemodel.FaceModel`.
  """

  def __init__(self, face_model):
    self.face_model = face_model
    self.layout = coefficients_lib.CoefficientLayout.from_face_model(face_model)
    v = face_model.num_vertices
    # Bases as [K, 3V] so a batch decodes with one matmul.
    def flat_basis(basis):
      return tf.constant(np.transpose(basis, [2, 0, 1]).reshape(
          [basis.shape[2], 3 * basis.shape[0]]))
    self.mean_shape = tf.constant(face_model.mean_shape.reshape([1, 3 * v]))
    self.id_basis = flat_basis(face_model.id_basis)
    self.exp_basis = flat_basis(face_model.exp_basis)
    self.mean_albedo = tf.constant(face_model.mean_albedo.reshape([1, 3 * v]))
    self.albedo_basis = flat_basis(face_model.albedo_basis)
    self.triangles = tf.constant(face_model.triangles)
    self.landmark_indices = tf.constant(face_model.landmark_indices)
    # The landmark rows alone, so a landmark-only decode (a pose solve at
    # inference) neither computes nor captures the whole mesh's bases.
    rows = np.asarray(face_model.landmark_indices)
    self._landmark_mean = tf.constant(
        face_model.mean_shape[rows].reshape([1, -1]))
    self._landmark_id_basis = flat_basis(face_model.id_basis[rows])
    self._landmark_exp_basis = flat_basis(face_model.exp_basis[rows])
    self.skin_mask = tf.constant(face_model.skin_mask)
    self.default_pose = tf.constant(face_model.default_pose)
    self.focal_length = float(face_model.focal_length)
    self.image_size = int(face_model.image_size)
    self.expression_kind = face_model.expression_kind
    # Which weight caps each blendshape weight (mouthClose <= jawOpen).
    caps = expressions.cap_indices(face_model.expression_names)
    self._caps = (None if caps == tuple(range(len(caps)))
                  else tf.constant(caps, tf.int32))

  @property
  def num_vertices(self) -> int:
    return self.face_model.num_vertices

  def expression_weights(self, exp_coeffs: tf.Tensor) -> tf.Tensor:
    """[B, K_exp] raw expression outputs -> the weights of the basis.

    PCA models: the coefficients as they are. Blendshape models: clipped to
    [0, 1] with the inward gradient, mouthClose capped by jawOpen
    (`mgc_tf.facemodel.expressions`).
    """
    if self.expression_kind != expressions.BLENDSHAPE:
      return exp_coeffs
    weights = clip_blendshape_weights(exp_coeffs)
    if self._caps is not None:
      weights = tf.minimum(weights, tf.gather(weights, self._caps, axis=-1))
    return weights

  def shape(self, id_coeffs: tf.Tensor, exp_coeffs: tf.Tensor) -> tf.Tensor:
    """[B, K_id], [B, K_exp] -> [B, V, 3] model-space shape, mm.

    `exp_coeffs` are raw expression outputs; `expression_weights` maps them
    (identity for PCA models).
    """
    flat = (self.mean_shape + tf.matmul(id_coeffs, self.id_basis) +
            tf.matmul(self.expression_weights(exp_coeffs), self.exp_basis))
    return tf.reshape(flat, [-1, self.num_vertices, 3])

  def landmark_shape(self, id_coeffs: tf.Tensor, exp_coeffs: tf.Tensor
                     ) -> tf.Tensor:
    """[B, K_id], [B, K_exp] -> [B, L, 3] the landmark vertices of `shape`
    (model space, mm), from the landmark rows of the bases only."""
    flat = (self._landmark_mean + tf.matmul(id_coeffs, self._landmark_id_basis)
            + tf.matmul(self.expression_weights(exp_coeffs),
                        self._landmark_exp_basis))
    return tf.reshape(flat, [-1, self._landmark_mean.shape[1] // 3, 3])

  def albedo(self, albedo_coeffs: tf.Tensor) -> tf.Tensor:
    """[B, K_alb] -> [B, V, 3] albedo clipped to [0, 1]."""
    flat = self.mean_albedo + tf.matmul(albedo_coeffs, self.albedo_basis)
    return tf.clip_by_value(tf.reshape(flat, [-1, self.num_vertices, 3]),
                            0.0, 1.0)

  def intrinsics(self, batch_size, image_size: Optional[int] = None
                 ) -> tf.Tensor:
    """[B, 3, 3] K for a square crop of `image_size` pixels (default: the
    model's crop), the model's focal length scaled with the crop."""
    image_size = image_size or self.image_size
    scale = float(image_size) / self.image_size
    k = geometry.intrinsics(self.focal_length * scale, image_size=image_size)
    return tf.broadcast_to(k, tf.stack([batch_size, 3, 3]))

  def pose_coefficients(self, pose: tf.Tensor) -> tf.Tensor:
    """[B, 6] a full pose (rz, ry, rx radians, tx, ty, tz mm) -> the
    layout's pose slot: its offset from the default pose, angles wrapped
    into (-pi, pi] (the default rx is pi; a solve may return -pi)."""
    offset = tf.cast(pose, tf.float32) - self.default_pose
    return tf.concat([tf.atan2(tf.sin(offset[:, :3]), tf.cos(offset[:, :3])),
                      offset[:, 3:]], -1)

  def decode(self, coefficients: tf.Tensor, image_size: Optional[int] = None,
             name: str = "decode_face") -> DecodedFace:
    """[B, K] coefficients (layout `self.layout`) -> `DecodedFace`.

    `image_size` is the side of the square crop the camera (and so
    `landmarks_2d`) refers to; by default the face model's (224).
    """
    with tf.name_scope(name):
      groups = self.layout.split(tf.cast(coefficients, tf.float32))
      shape = self.shape(groups["identity"], groups["expression"])
      albedo = self.albedo(groups["albedo"])
      pose = groups["pose"] + self.default_pose
      rotation, translation = geometry.pose_to_rotation_translation(pose)
      vertices = geometry.transform(shape, rotation, translation)
      normals = shading.vertex_normals(vertices, self.triangles)
      colors = shading.sh_shade(albedo, normals, groups["lighting"])
      intrinsics = self.intrinsics(tf.shape(coefficients)[0], image_size)
      landmarks_3d = tf.gather(vertices, self.landmark_indices, axis=1)
      landmarks_2d = geometry.project(landmarks_3d, intrinsics)
      return DecodedFace(shape=shape, albedo=albedo, pose=pose,
                         rotation=rotation, translation=translation,
                         vertices=vertices, normals=normals, colors=colors,
                         lighting=groups["lighting"], intrinsics=intrinsics,
                         landmarks_3d=landmarks_3d, landmarks_2d=landmarks_2d)
