"""TensorBoard summaries of a run (written by the chief only)."""

import os
from typing import Dict

import tensorflow as tf


class SummaryWriter:
  """Scalars and images under model_dir/train (a no-op when not enabled)."""

  def __init__(self, model_dir: str, enabled: bool = True,
               subdir: str = "train"):
    self.enabled = enabled
    self._writer = (tf.summary.create_file_writer(
        os.path.join(model_dir, subdir)) if enabled else None)

  def scalars(self, step: int, values: Dict[str, float]) -> None:
    if not self.enabled:
      return
    with self._writer.as_default(step=step):
      for name, value in values.items():
        tf.summary.scalar(name, value)

  def images(self, step: int, images: Dict[str, tf.Tensor],
             max_outputs: int = 4) -> None:
    if not self.enabled:
      return
    with self._writer.as_default(step=step):
      for name, value in images.items():
        tf.summary.image(name, value, max_outputs=max_outputs)

  def flush(self) -> None:
    if self.enabled:
      self._writer.flush()


def training_images(images: tf.Tensor, loss_output) -> Dict[str, tf.Tensor]:
  """Image panels of one batch for TensorBoard.

  Args:
    images: [B, N, S, S, 3] input views in [0, 1].
    loss_output: the `MGCLossOutput` of the batch.

  Returns:
    name -> [B, H, W, 3] (or [B, H, W, 1]) images in [0, 1]:
      inputs: the N views side by side;
      render_overlay: the rendered faces composited on the inputs;
      covisible: the covisible maps of the (target, source) pairs;
      synthesized: the target synthesized from each source.
  """
  b, n, s = images.shape[0], images.shape[1], images.shape[2]

  def side_by_side(views):  # [B, V, S, S, C] -> [B, S, V*S, C]
    views = tf.transpose(views, [0, 2, 1, 3, 4])
    return tf.reshape(views, [b, s, -1, views.shape[-1]])

  rendered = tf.reshape(loss_output.renders.image, [b, n, s, s, 3])
  return {
      "inputs": side_by_side(images),
      "render_overlay": side_by_side(tf.clip_by_value(rendered, 0.0, 1.0)),
      "covisible": side_by_side(loss_output.covisible),
      "synthesized": side_by_side(
          tf.clip_by_value(loss_output.synthesized, 0.0, 1.0)),
  }
