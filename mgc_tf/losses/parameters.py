"""3DMM parameter terms of Shu et al.'s 3DMMNet (eqs. 3 and 4).

  coefficient_l1:        lambda_1 |alpha_id - alpha^_id| +
                         lambda_2 |alpha_exp - alpha^_exp|       (eq. 3)
  parameter_consistency: |g_id(I_1) - g_id(I_2)| +
                         |g_exp(I_1) - g_exp(I_2)|               (eq. 4)

Each L1 norm is divided by the group's rank (a mean absolute difference in
standard deviations, since our bases are std-scaled), so the weights do
not depend on the face model's ranks. Pure per-sample functions, [B] out.
The landmark reprojection of eq. 5 is `mgc_tf.losses.landmark.landmark_loss`
on the projected model landmarks (one piece of code for the same maths).

Shapes: B batch, N views, K coefficients (the decoder's layout).
"""

import itertools

import tensorflow as tf


def _groups(coefficients, layout):
  groups = layout.split(tf.cast(coefficients, tf.float32))
  return groups["identity"], groups["expression"]


def coefficient_l1(predicted, target, layout, identity_weight: float = 1.0,
                   expression_weight: float = 1.0,
                   name: str = "coefficient_l1") -> tf.Tensor:
  """Eq. 3: weighted mean absolute error of identity and expression.

  Args:
    predicted: [B, K] coefficients of g.
    target: [B, K] ground-truth coefficients (same layout).
    layout: the `CoefficientLayout` (names "identity" and "expression").
    identity_weight, expression_weight: lambda_1 and lambda_2 (the paper
      sets lambda_2 = 0 where only identity is known).
    name: name scope.

  Returns:
    [B] float32, in standard deviations.
  """
  with tf.name_scope(name):
    pred_id, pred_exp = _groups(predicted, layout)
    true_id, true_exp = _groups(target, layout)
    return (identity_weight * tf.reduce_mean(tf.abs(pred_id - true_id), -1) +
            expression_weight * tf.reduce_mean(tf.abs(pred_exp - true_exp),
                                               -1))


def parameter_consistency(coefficients, layout,
                          name: str = "parameter_consistency") -> tf.Tensor:
  """Eq. 4 averaged over every pair of views of a sample.

  Args:
    coefficients: [B, N, K] coefficients of g for the N views of each
      sample (same person, same instant).
    layout: the `CoefficientLayout`.
    name: name scope.

  Returns:
    [B] float32: the mean over view pairs (i < j) of the mean absolute
    identity difference plus the mean absolute expression difference; 0
    for N = 1.
  """
  with tf.name_scope(name):
    coefficients = tf.cast(coefficients, tf.float32)
    if coefficients.shape.rank != 3:
      raise ValueError("`coefficients` must have shape [B, N, K]. Received: "
                       f"coefficients.shape={coefficients.shape}")
    views = coefficients.shape[1]
    identity, expression = _groups(coefficients, layout)
    pairs = list(itertools.combinations(range(views), 2))
    if not pairs:
      return tf.zeros(tf.shape(coefficients)[:1])
    values = [tf.reduce_mean(tf.abs(identity[:, i] - identity[:, j]), -1) +
              tf.reduce_mean(tf.abs(expression[:, i] - expression[:, j]), -1)
              for i, j in pairs]
    return tf.add_n(values) / float(len(values))
