"""Shape identity-aware regularisation (SIR; Jiang et al., section III.D).

Pure functions on shape (identity) coefficients x [M, D] (M = samples times
views, D = the identity rank), in units of one standard deviation (our bases
are stored pre-multiplied by their standard deviations):

  identification (eq. 18)  L_recog = L_sm + eps_c L_c
    L_sm  CosFace (Wang et al. 2018): `cosface_loss`, margin m, scale s
    L_c   weighted centre loss: `center_loss` pulls x towards its class
          centre; `center_update` moves the centres with the weights
          `frontal_neutral_weight` (eq. 19), so a class centre leans towards
          the coefficients of its frontal, neutral images (eq. 20)
  distribution (eq. 21)    L_kl = KL(N(mu, var) of the batch || N(0, I))
                           (`kl_to_standard_normal`)

Class labels are integers in [0, C); `identity_classes` maps the pipeline's
text identities to them.
"""

from typing import Optional

import tensorflow as tf

#: CosFace's margin m and scale s: the values of Wang et al. (CVPR 2018),
#: which SIR uses unchanged ("we choose Cosloss").
COSFACE_MARGIN = 0.35
COSFACE_SCALE = 64.0
#: lambda of eq. 19: how fast the centre weight falls with |expression|.
#: The paper gives no value; with it, |beta| = 1 (one standard deviation
#: over all expression directions) halves a frontal sample's weight.
EXPRESSION_FALLOFF = 0.6931471805599453  # ln 2
#: The centre loss's update rate alpha (Wen et al. 2016 use 0.5).
CENTER_RATE = 0.5
_EPSILON = 1e-12


def identity_classes(identities: tf.Tensor, num_classes: int) -> tf.Tensor:
  """Text identities [...] -> int32 classes [...] in [0, num_classes).

  A stable hash (FarmHash fingerprint) modulo `num_classes`: no vocabulary
  to build or ship, the same class on every worker and every restart. Two
  identities share a class when their hashes collide; for n identities and
  C classes about n^2 / (2C) pairs do, so choose C well above n^2 / 2 / (the
  collisions you accept) (docs/sir.md).
  """
  if num_classes < 1:
    raise ValueError(f"num_classes must be >= 1. Received: {num_classes}")
  return tf.cast(tf.strings.to_hash_bucket_fast(identities, num_classes),
                 tf.int32)


def cosface_logits(features: tf.Tensor, class_weights: tf.Tensor,
                   labels: tf.Tensor, margin: float = COSFACE_MARGIN,
                   scale: float = COSFACE_SCALE) -> tf.Tensor:
  """CosFace logits s (cos theta_j - m [j = y]).

  Args:
    features: [M, D] float32.
    class_weights: [D, C] float32, one column per class (normalised here).
    labels: [M] int, the class y of each row.
    margin: m, subtracted from the cosine of the true class.
    scale: s.

  Returns:
    [M, C] float32 logits.
  """
  features = tf.convert_to_tensor(features, tf.float32)
  class_weights = tf.convert_to_tensor(class_weights, tf.float32)
  if features.shape.rank != 2 or class_weights.shape.rank != 2:
    raise ValueError("features must be [M, D] and class_weights [D, C]. "
                     f"Received: {features.shape}, {class_weights.shape}")
  cosine = tf.matmul(tf.math.l2_normalize(features, axis=1, epsilon=_EPSILON),
                     tf.math.l2_normalize(class_weights, axis=0,
                                          epsilon=_EPSILON))
  one_hot = tf.one_hot(labels, tf.shape(class_weights)[1], dtype=tf.float32)
  return scale * (cosine - margin * one_hot)


def cosface_loss(features: tf.Tensor, class_weights: tf.Tensor,
                 labels: tf.Tensor, margin: float = COSFACE_MARGIN,
                 scale: float = COSFACE_SCALE) -> tf.Tensor:
  """Large margin cosine loss per row (eq. 18's L_sm).

  -log( e^{s (cos theta_y - m)} /
        (e^{s (cos theta_y - m)} + sum_{j != y} e^{s cos theta_j}) )

  Returns:
    [M] float32, nats.
  """
  logits = cosface_logits(features, class_weights, labels, margin, scale)
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(labels, tf.int32), logits=logits)


def frontal_neutral_weight(pose_angles: tf.Tensor, expression: tf.Tensor,
                           falloff: float = EXPRESSION_FALLOFF) -> tf.Tensor:
  """Eq. 19: how close a sample is to a frontal, neutral face.

  f = 1/8 (cos a + 1)(cos b + 1)(cos c + 1) exp(-lambda ||beta||_2)

  1 for a frontal (all angles 0), neutral (beta = 0) face; a profile (yaw
  90 degrees) gets 1/2 of that, a half turn of any angle 0; the expression
  factor multiplies.

  Args:
    pose_angles: [M, 3] radians, the three Euler angles of the head relative
      to the face model's frontal default pose.
    expression: [M, K_exp] expression coefficients (standard deviations).
    falloff: lambda, per unit of ||beta||_2.

  Returns:
    [M] float32 in [0, 1].
  """
  pose_angles = tf.convert_to_tensor(pose_angles, tf.float32)
  expression = tf.convert_to_tensor(expression, tf.float32)
  if pose_angles.shape[-1] != 3:
    raise ValueError("pose_angles must be [M, 3]. Received: "
                     f"{pose_angles.shape}")
  pose_factor = tf.reduce_prod(tf.cos(pose_angles) + 1.0, axis=-1) / 8.0
  norm = tf.sqrt(tf.reduce_sum(tf.square(expression), axis=-1) + _EPSILON)
  return pose_factor * tf.exp(-falloff * norm)


def center_loss(features: tf.Tensor, centers: tf.Tensor,
                labels: tf.Tensor) -> tf.Tensor:
  """1/2 ||x_i - c_{y_i}||^2 per row (eq. 18's L_c; centres held fixed).

  Args:
    features: [M, D].
    centers: [C, D] class centres; no gradient flows into them (they move
      by `center_update`).
    labels: [M] int.

  Returns:
    [M] float32, squared standard deviations.
  """
  centers = tf.stop_gradient(tf.convert_to_tensor(centers, tf.float32))
  chosen = tf.gather(centers, tf.cast(labels, tf.int32))
  return 0.5 * tf.reduce_sum(
      tf.square(tf.convert_to_tensor(features, tf.float32) - chosen), axis=-1)


def center_update(centers: tf.Tensor, features: tf.Tensor, labels: tf.Tensor,
                  weights: tf.Tensor, mask: Optional[tf.Tensor] = None,
                  rate: float = CENTER_RATE) -> tf.Tensor:
  """The new centres after one batch (eq. 20, with the weight per sample).

    delta_j = sum_i [y_i = j] m_i f_i (c_j - x_i) / (1 + sum_i [y_i = j] m_i)
    c_j <- c_j - rate * delta_j

  Each sample pulls its class centre towards itself in proportion to its
  weight f_i (`frontal_neutral_weight`): a frontal, neutral image (f = 1)
  moves it most, a profile with an expression hardly at all. Classes
  without a sample in the batch keep their centre. Nothing here is
  differentiated (the features are taken as constants).

  Args:
    centers: [C, D] the current centres.
    features: [M, D].
    labels: [M] int classes.
    weights: [M] f_i.
    mask: optional [M] 0/1: rows that count (identity-labelled).
    rate: alpha, the update rate.

  Returns:
    [C, D] float32, the updated centres.
  """
  centers = tf.convert_to_tensor(centers, tf.float32)
  features = tf.stop_gradient(tf.convert_to_tensor(features, tf.float32))
  weights = tf.stop_gradient(tf.convert_to_tensor(weights, tf.float32))
  labels = tf.cast(labels, tf.int32)
  mask = (tf.ones_like(weights) if mask is None
          else tf.cast(mask, tf.float32))
  num_classes = tf.shape(centers)[0]
  chosen = tf.gather(centers, labels)
  pulls = (mask * weights)[:, None] * (chosen - features)
  numerator = tf.math.unsorted_segment_sum(pulls, labels, num_classes)
  counts = tf.math.unsorted_segment_sum(mask, labels, num_classes)
  return centers - rate * numerator / (1.0 + counts[:, None])


def kl_to_standard_normal(features: tf.Tensor,
                          mask: Optional[tf.Tensor] = None,
                          stddev: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Eq. 21: KL(N(mu, diag(var)) || N(0, I)) of the batch's x / sigma.

  mu and var are the masked mean and (biased) variance over the rows of
  x / sigma, per dimension; then

    KL = 1/2 sum_d (var_d + mu_d^2 - 1 - ln var_d)

  which is 0 exactly when the batch has mean 0 and unit variance in every
  dimension, i.e. follows the face model's prior (eq. 7). sigma is 1 for
  our std-scaled bases.

  Args:
    features: [M, D].
    mask: optional [M] 0/1: rows that count. Fewer than 2 rows give 0 (a
      variance needs two).
    stddev: optional [D] sigma (default 1).

  Returns:
    scalar float32, nats.
  """
  x = tf.convert_to_tensor(features, tf.float32)
  if stddev is not None:
    x = x / tf.convert_to_tensor(stddev, tf.float32)
  mask = (tf.ones(tf.shape(x)[:1]) if mask is None
          else tf.cast(mask, tf.float32))
  count = tf.reduce_sum(mask)
  safe = tf.maximum(count, 1.0)
  mean = tf.reduce_sum(mask[:, None] * x, axis=0) / safe
  variance = tf.reduce_sum(mask[:, None] * tf.square(x - mean),
                           axis=0) / safe
  # The floor keeps ln var finite for a batch whose rows are all equal.
  variance = tf.maximum(variance, 1e-6)
  kl = 0.5 * tf.reduce_sum(variance + tf.square(mean) - 1.0 -
                           tf.math.log(variance))
  return tf.where(count >= 2.0, kl, 0.0)
