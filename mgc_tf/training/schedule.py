"""Learning-rate schedules: linear warm-up, then constant, cosine or step."""

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mgc_tf")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """lr(step): linear warm-up to `peak`, then `kind`.

  Args:
    peak: learning rate after warm-up.
    kind: "constant"; "cosine" (peak -> 0 at total_steps); "step" (x0.1 at
      60% and again at 85% of total_steps).
    total_steps: the run's max_steps.
    warmup_steps: steps of linear warm-up from peak / warmup_steps.
  """

  def __init__(self, peak: float, kind: str, total_steps: int,
               warmup_steps: int = 0):
    self.peak = float(peak)
    self.kind = kind
    self.total_steps = int(total_steps)
    self.warmup_steps = int(warmup_steps)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    peak = tf.constant(self.peak, tf.float32)
    if self.kind == "cosine":
      span = max(self.total_steps - self.warmup_steps, 1)
      progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
      rate = 0.5 * peak * (1.0 + tf.cos(math.pi * progress))
    elif self.kind == "step":
      drops = (tf.cast(step >= 0.6 * self.total_steps, tf.float32)
               + tf.cast(step >= 0.85 * self.total_steps, tf.float32))
      rate = peak * tf.pow(0.1, drops)
    else:
      rate = peak
    if self.warmup_steps > 0:
      warm = peak * (step + 1.0) / self.warmup_steps
      rate = tf.where(step < self.warmup_steps, warm, rate)
    return rate

  def get_config(self):
    return {"peak": self.peak, "kind": self.kind,
            "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}
