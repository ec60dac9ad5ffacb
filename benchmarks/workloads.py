"""Workloads shared by the benchmark scripts: one MGCNet training step's parts.

A training step at the paper's setting is ResNet50 forward+backward on
batch x views images plus the MGCNet loss forward+backward; these helpers
build both on the same rendered images.
"""

from typing import Callable, Tuple

import keras
import numpy as np
import tensorflow as tf

from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.losses import mgc_loss
from mgc_tf.render import renderer


def rendered_views(decoder: face_decoder.FaceDecoder, batch: int, views: int,
                   size: int, seed: int = 0):
  """Rendered multi-view samples and the coefficients that made them.

  Returns:
    (coeffs [B, N, K] float32 numpy, images [B, N, S, S, 3],
    landmarks [B, N, 68, 2]).
  """
  rng = np.random.default_rng(seed)
  coeffs = np.zeros([batch, views, decoder.layout.size], np.float32)
  coeffs[..., :decoder.layout.id_rank] = rng.normal(
      0, 0.5, [batch, 1, decoder.layout.id_rank])
  yaw = decoder.layout.slices()["pose"].start + 1
  coeffs[..., yaw] = np.deg2rad(rng.uniform(-45, 45, [batch, views]))
  background = tf.random.uniform([batch * views, size, size, 3], seed=1)
  face, out = renderer.render_face(decoder, coeffs.reshape([batch * views, -1]),
                                   background=background)
  images = tf.reshape(out.image, [batch, views, size, size, 3])
  landmarks = tf.reshape(face.landmarks_2d, [batch, views, 68, 2])
  return coeffs, images, landmarks


def mgc_loss_step(decoder: face_decoder.FaceDecoder, coeffs: np.ndarray,
                  images: tf.Tensor, landmarks: tf.Tensor
                  ) -> Callable[[], list]:
  """A tf.function: MGCNet loss forward+backward w.r.t. the coefficients."""
  rng = np.random.default_rng(1)
  # Predictions a little off the truth, as during training.
  predicted = tf.Variable(coeffs + rng.normal(0, 0.05, coeffs.shape).astype(
      np.float32))
  flags = tf.fill([coeffs.shape[0]], 2)
  loss = mgc_loss.MGCLoss(decoder)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      total = loss(predicted, images, landmarks, flags).total
    return tape.gradient(total, predicted)

  return step


def resnet50_step(images: tf.Tensor, outputs: int) -> Callable[[], list]:
  """A tf.function: ResNet50 forward+backward on images [B, N, S, S, 3]."""
  size = images.shape[2]
  resnet = keras.applications.ResNet50(weights=None,
                                       input_shape=(size, size, 3),
                                       classes=outputs,
                                       classifier_activation=None)
  flat = tf.reshape(images, [-1, size, size, 3])

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      y = resnet(flat, training=True)
      total = tf.reduce_sum(y * y)
    return tape.gradient(total, resnet.trainable_variables)

  return step


def training_step_parts(decoder: face_decoder.FaceDecoder, batch: int,
                        views: int, size: int
                        ) -> Tuple[Callable[[], list], Callable[[], list]]:
  """(backbone step, loss step) on the same rendered batch."""
  coeffs, images, landmarks = rendered_views(decoder, batch, views, size)
  return (resnet50_step(images, decoder.layout.size),
          mgc_loss_step(decoder, coeffs, images, landmarks))
