"""Photometric losses with a predicted confidence map (SIR eqs. 11-12).

The network predicts a per-pixel scale sigma > 0 beside the reconstruction
(Wu et al. 2020's confidence map); the loss is the negative log-likelihood
of the error under a distribution of that scale, so the network may explain
hard pixels (hair, beard, occluders) by a large sigma at a cost of ln sigma.

  pixel (eq. 11, Laplace):   ln(sqrt(2) sigma) + sqrt(2) l1 / sigma
  perceptual (eq. 12, Gauss): ln(sqrt(2 pi) sigma) + l^2 / (2 sigma^2)

each averaged over the pixels of a mask (the rendered face: Omega). At
sigma = 1 the pixel term is sqrt(2) l1 + ln sqrt(2): the plain L1 loss,
scaled, plus a constant.
"""

import math
from typing import Callable, Optional

import tensorflow as tf

_LN_SQRT_2 = 0.5 * math.log(2.0)
_LN_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_2 = math.sqrt(2.0)


def _masked_mean(values: tf.Tensor, mask: Optional[tf.Tensor]) -> tf.Tensor:
  """[B, H, W, 1] values -> [B] mean over the mask (0 for an empty mask)."""
  if mask is None:
    return tf.reduce_mean(values, axis=[1, 2, 3])
  mask = tf.cast(mask, tf.float32)
  return (tf.reduce_sum(values * mask, axis=[1, 2, 3]) /
          tf.maximum(tf.reduce_sum(mask, axis=[1, 2, 3]), 1.0))


def confidence_l1_loss(reconstruction: tf.Tensor, image: tf.Tensor,
                       sigma: tf.Tensor,
                       mask: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Eq. 11: Laplace negative log-likelihood of the per-pixel L1 error.

  Args:
    reconstruction: [B, H, W, C] the rendered image, in [0, 1].
    image: [B, H, W, C] the input image, in [0, 1].
    sigma: [B, H, W, 1] > 0, the predicted confidence (scale) map.
    mask: optional [B, H, W, 1] 0/1 pixels that count (Omega).

  Returns:
    [B] float32: mean over Omega of ln(sqrt(2) sigma) + sqrt(2) l1 / sigma,
    l1 = mean over channels of |reconstruction - image|.
  """
  reconstruction = tf.convert_to_tensor(reconstruction, tf.float32)
  image = tf.convert_to_tensor(image, tf.float32)
  sigma = tf.convert_to_tensor(sigma, tf.float32)
  if reconstruction.shape.rank != 4 or sigma.shape.rank != 4:
    raise ValueError("reconstruction must be [B, H, W, C] and sigma "
                     f"[B, H, W, 1]. Received: {reconstruction.shape}, "
                     f"{sigma.shape}")
  l1 = tf.reduce_mean(tf.abs(reconstruction - image), axis=-1, keepdims=True)
  nll = _LN_SQRT_2 + tf.math.log(sigma) + _SQRT_2 * l1 / sigma
  return _masked_mean(nll, mask)


def confidence_perceptual_loss(features_reconstruction: tf.Tensor,
                               features_image: tf.Tensor, sigma: tf.Tensor,
                               mask: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Eq. 12: Gaussian negative log-likelihood of a feature-map distance.

  Args:
    features_reconstruction: [B, h, w, C] encoder features of the render.
    features_image: [B, h, w, C] encoder features of the input.
    sigma: [B, H, W, 1] > 0 confidence map; resized (bilinearly) to h x w.
    mask: optional [B, H, W, 1] 0/1, resized (nearest) to h x w.

  Returns:
    [B] float32: mean over Omega_k of ln(sqrt(2 pi) sigma) + l^2/(2 sigma^2),
    l = mean over channels of |e(reconstruction) - e(image)|.
  """
  a = tf.convert_to_tensor(features_reconstruction, tf.float32)
  b = tf.convert_to_tensor(features_image, tf.float32)
  size = a.shape[1:3]
  sigma = tf.image.resize(tf.convert_to_tensor(sigma, tf.float32), size,
                          method="bilinear")
  if mask is not None:
    mask = tf.image.resize(tf.cast(mask, tf.float32), size, method="nearest")
  distance = tf.reduce_mean(tf.abs(a - b), axis=-1, keepdims=True)
  nll = (_LN_SQRT_2PI + tf.math.log(sigma) +
         tf.square(distance) / (2.0 * tf.square(sigma)))
  return _masked_mean(nll, mask)


class PerceptualEncoder:
  """A pluggable image encoder for the perceptual term.

  The paper uses VGG16's relu3_3 features; VGG16 weights cannot be
  downloaded here, so there is no built-in default: with no network the
  term is off (`enabled` False) and says so once.

  Args:
    network: None, or a callable [B, H, W, 3] in [0, 1] -> [B, h, w, C]
      (a Keras model), or the path of a .keras/.h5/SavedModel network with
      that signature.
  """

  def __init__(self, network=None):
    if isinstance(network, str):
      network = network.strip()
      if network.lower() in ("", "none"):
        network = None
      else:
        network = _load_network(network)
    self.network: Optional[Callable[[tf.Tensor], tf.Tensor]] = network

  @property
  def enabled(self) -> bool:
    return self.network is not None

  def describe(self) -> str:
    if not self.enabled:
      return ("perceptual term off: no --perceptual_model given (the "
              "paper's VGG16 weights cannot be downloaded here)")
    return "perceptual term on"

  def __call__(self, images: tf.Tensor) -> tf.Tensor:
    return tf.cast(self.network(images), tf.float32)


def _load_network(path: str):
  # pylint: disable=g-import-not-at-top
  import keras
  if not tf.io.gfile.exists(path):
    raise ValueError(f"--perceptual_model={path!r} does not exist; give a "
                     ".keras/.h5/SavedModel image encoder or 'none'")
  if path.endswith((".keras", ".h5")):
    return keras.models.load_model(path, compile=False)
  return keras.layers.TFSMLayer(path, call_endpoint="serving_default")
