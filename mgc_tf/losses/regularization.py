"""3DMM coefficient regularization.

  L_reg = w_alpha ||alpha||^2 + w_beta ||beta||^2 + w_delta ||delta||^2

per sample, with alpha the identity (shape), beta the expression and delta
the albedo coefficients, each in units of one standard deviation (the bases
are pre-multiplied by their standard deviations). Defaults 1.0, 0.8, 3e-3
(MGCNet paper section 3.3, DESIGN.md section 5); the term weight
w_reg = 1e-4 and the batch mean are applied by the combinator.

Blendshape expressions (`expression_kind="blendshape"`, ICT-FaceKit's ARKit
shapes, weights meant for [0, 1]; see `mgc_tf.facemodel.expressions`) get a
different prior on the raw expression outputs r instead of w_beta ||beta||^2:

  w_beta ||r||^2 + w_box (||min(r, 0)||^2 + ||max(r - 1, 0)||^2)

The first part is the same pull towards the neutral face as for PCA, scaled
so that a weight of 1 (a full expression) costs what one standard deviation
of a PCA expression costs; it prefers few, weak expressions. The box part is
zero on [0, 1] and grows quadratically outside: the decoder clips weights to
[0, 1] and passes only inward gradients there, so this term is what brings a
raw value that left [0, 1] back (w_box = 10 by default: a raw value 0.1 out
costs 0.1, more than the pull of any weight inside). It is a constraint, not
a preference, so it does not scale with w_beta.

`norm="l1"` gives PGN's eq. 12 instead (Liu et al.): the same weights on
sums of absolute values, lambda_r sum |alpha_i / sigma_i| +
lambda_r / 2 sum |beta_i / sigma_i|, i.e. identity_weight 1, expression
weight 0.5, albedo weight 0 (the coefficients are already divided by their
standard deviations).

Shape glossary: B batch, K coefficients (see `CoefficientLayout`).
"""

import tensorflow as tf

from mgc_tf.facemodel import coefficients as coefficients_lib
from mgc_tf.facemodel import expressions

DEFAULT_IDENTITY_WEIGHT = 1.0
DEFAULT_EXPRESSION_WEIGHT = 0.8
DEFAULT_ALBEDO_WEIGHT = 3e-3
DEFAULT_BLENDSHAPE_BOX_WEIGHT = 10.0
NORMS = ("l2", "l1")


def regularization_loss(
    coefficients,
    layout: coefficients_lib.CoefficientLayout,
    identity_weight: float = DEFAULT_IDENTITY_WEIGHT,
    expression_weight: float = DEFAULT_EXPRESSION_WEIGHT,
    albedo_weight: float = DEFAULT_ALBEDO_WEIGHT,
    expression_kind: str = expressions.PCA,
    blendshape_box_weight: float = DEFAULT_BLENDSHAPE_BOX_WEIGHT,
    norm: str = "l2",
    name: str = "regularization_loss") -> tf.Tensor:
  """Per-sample weighted squared (or L1) norms of the 3DMM coefficient groups.

  Pose and lighting coefficients are not regularized. For a blendshape
  model the expression group gets the box prior of the module docstring.

  Args:
    coefficients: `[B, K]` predicted coefficients in `layout`.
    layout: the `CoefficientLayout` that owns the slicing.
    identity_weight: weight of ||alpha||^2 (identity group).
    expression_weight: weight of ||beta||^2 (expression group).
    albedo_weight: weight of ||delta||^2 (albedo group).
    expression_kind: the face model's `expression_kind`: "pca" (Gaussian
      prior) or "blendshape" (box prior).
    blendshape_box_weight: w_box, weight of the squared distance of raw
      blendshape values to [0, 1] (blendshape models only).
    norm: "l2" (squared norms, MGCNet) or "l1" (sums of absolute values,
      PGN eq. 12).
    name: name scope of the ops.

  Returns:
    `[B]` tensor, in squared standard deviations ("l2") or standard
    deviations ("l1"), dtype of `coefficients`.

  Raises:
    ValueError: if the last axis of `coefficients` is not `layout.size`, or
      `expression_kind` or `norm` is unknown.
  """
  if norm not in NORMS:
    raise ValueError(f"norm must be one of {NORMS}. Received: norm={norm!r}")
  if expression_kind not in expressions.KINDS:
    raise ValueError(f"expression_kind must be one of {expressions.KINDS}. "
                     f"Received: expression_kind={expression_kind!r}")
  with tf.name_scope(name):
    coefficients = tf.convert_to_tensor(coefficients, name="coefficients")
    if not coefficients.dtype.is_floating:
      coefficients = tf.cast(coefficients, tf.float32)
    if coefficients.shape.rank != 2:
      raise ValueError(f"`coefficients` must have shape [B, K]. Received: "
                       f"coefficients.shape={tuple(coefficients.shape)}")
    groups = layout.split(coefficients)

    elementwise = tf.square if norm == "l2" else tf.abs

    def group_norm(group):
      return tf.reduce_sum(elementwise(groups[group]), axis=-1)

    loss = (identity_weight * group_norm("identity") +
            expression_weight * group_norm("expression") +
            albedo_weight * group_norm("albedo"))
    if expression_kind == expressions.BLENDSHAPE:
      loss += blendshape_box_weight * blendshape_box_penalty(
          groups["expression"])
    return loss


def blendshape_box_penalty(raw: tf.Tensor) -> tf.Tensor:
  """[B, K] raw blendshape values -> [B] squared distances to [0, 1]^K."""
  below = tf.minimum(raw - expressions.BLENDSHAPE_MIN, 0.0)
  above = tf.maximum(raw - expressions.BLENDSHAPE_MAX, 0.0)
  return tf.reduce_sum(tf.square(below) + tf.square(above), axis=-1)
