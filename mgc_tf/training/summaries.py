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

