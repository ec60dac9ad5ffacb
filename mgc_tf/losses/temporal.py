"""Temporal smoothness of per-frame values (pose, expression) over a video.

  L_smooth = 1/(T-1) sum_{t=1}^{T-1} ||x_t - x_{t-1}||^2

over the T frames in time order (frames without a face are left out before,
so a gap joins its two neighbours). Used by the video fitter
(`mgc_tf.fitting`) on the pose and expression coefficients; the post-hoc
smoothing of `infer` is `mgc_tf.inference.smoothing`.
"""

import tensorflow as tf


def temporal_smoothness(values, name: str = "temporal_smoothness"
                        ) -> tf.Tensor:
  """Mean squared difference of consecutive rows.

  Args:
    values: [T, D] float per-frame values in time order (units of the
      values; the pose's rotations are radians, translations mm).
    name: op name scope.

  Returns:
    Scalar; 0 for T < 2 (no pair of frames).
  """
  with tf.name_scope(name):
    values = tf.convert_to_tensor(values, tf.float32)
    if values.shape.rank != 2:
      raise ValueError("values must be [T, D]. Received: "
                       f"values.shape={values.shape}")
    steps = values[1:] - values[:-1]
    pairs = tf.cast(tf.shape(steps)[0], tf.float32)
    return tf.reduce_sum(tf.square(steps)) / tf.maximum(pairs, 1.0)
