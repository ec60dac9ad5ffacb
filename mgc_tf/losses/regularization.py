"""3DMM coefficient regularization.

  L_reg = w_alpha ||alpha||^2 + w_beta ||beta||^2 + w_delta ||delta||^2

per sample, with alpha the identity (shape), beta the expression and delta
the albedo coefficients, each in units of one standard deviation (the bases
are pre-multiplied by their standard deviations). Defaults 1.0, 0.8, 3e-3
(MGCNet paper section 3.3, DESIGN.md section 5); the term weight
w_reg = 1e-4 and the batch mean are applied by the combinator.

Shape glossary: B batch, K coefficients (see `CoefficientLayout`).
"""

import tensorflow as tf

from mgc_tf.facemodel import coefficients as coefficients_lib

DEFAULT_IDENTITY_WEIGHT = 1.0
DEFAULT_EXPRESSION_WEIGHT = 0.8
DEFAULT_ALBEDO_WEIGHT = 3e-3


def regularization_loss(
    coefficients,
    layout: coefficients_lib.CoefficientLayout,
    identity_weight: float = DEFAULT_IDENTITY_WEIGHT,
    expression_weight: float = DEFAULT_EXPRESSION_WEIGHT,
    albedo_weight: float = DEFAULT_ALBEDO_WEIGHT,
    name: str = "regularization_loss") -> tf.Tensor:
  """Per-sample weighted squared norms of the 3DMM coefficient groups.

  Pose and lighting coefficients are not regularized.

  Args:
    coefficients: `[B, K]` predicted coefficients in `layout`.
    layout: the `CoefficientLayout` that owns the slicing.
    identity_weight: weight of ||alpha||^2 (identity group).
    expression_weight: weight of ||beta||^2 (expression group).
    albedo_weight: weight of ||delta||^2 (albedo group).
    name: name scope of the ops.

  Returns:
    `[B]` tensor, in squared standard deviations, dtype of `coefficients`.

  Raises:
    ValueError: if the last axis of `coefficients` is not `layout.size`.
  """
  with tf.name_scope(name):
    coefficients = tf.convert_to_tensor(coefficients, name="coefficients")
    if not coefficients.dtype.is_floating:
      coefficients = tf.cast(coefficients, tf.float32)
    if coefficients.shape.rank != 2:
      raise ValueError(f"`coefficients` must have shape [B, K]. Received: "
                       f"coefficients.shape={tuple(coefficients.shape)}")
    groups = layout.split(coefficients)

    def squared_norm(group):
      return tf.reduce_sum(tf.square(groups[group]), axis=-1)

    return (identity_weight * squared_norm("identity") +
            expression_weight * squared_norm("expression") +
            albedo_weight * squared_norm("albedo"))
