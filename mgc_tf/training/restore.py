"""Loading a trained reconstructor from a training run's model_dir.

    restored = load_trained_model("runs/quickstart")
    coefficients = restored.model(images)          # [N, S, S, 3] -> [N, K]
    face = restored.decoder.decode(coefficients, image_size=S)

Export, inference and evaluation all start here: the run's `config.json`
says how the reconstructor and face model were built, the latest (or a
named) checkpoint gives the weights.
"""

import dataclasses
import os
from typing import Optional

import keras
import tensorflow as tf

from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import loaders
from mgc_tf.models import reconstructor
from mgc_tf.training.config import TrainConfig

CONFIG_FILE = "config.json"


class TrainedModelError(ValueError):
  """model_dir has no config.json or no usable checkpoint."""


@dataclasses.dataclass
class RestoredModel:
  """A reconstructor with its trained weights.

  Attributes:
    model: keras.Model, input "image" [N, S, S, 3] float32 RGB in [0, 1],
      output "coefficients" [N, K] float32.
    decoder: FaceDecoder of the run's face model.
    config: the run's TrainConfig.
    checkpoint_path: the checkpoint the weights came from.
    step: the training step of that checkpoint.
  """
  model: keras.Model
  decoder: face_decoder.FaceDecoder
  config: TrainConfig
  checkpoint_path: str
  step: int

  @property
  def image_size(self) -> int:
    return self.config.image_size


def read_config(model_dir: str) -> TrainConfig:
  """The TrainConfig a run wrote to model_dir/config.json."""
  path = os.path.join(model_dir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    raise TrainedModelError(
        f"{path} does not exist: --model_dir must be the directory a "
        "training run (python -m mgc_tf.train --model_dir=...) wrote.")
  with tf.io.gfile.GFile(path) as f:
    return TrainConfig.from_json(f.read())


def load_trained_model(model_dir: str, checkpoint: Optional[str] = None
                       ) -> RestoredModel:
  """Rebuilds the run's reconstructor and restores its weights.

  Args:
    model_dir: a training run's directory (config.json + checkpoints).
    checkpoint: a checkpoint prefix (e.g. model_dir/ckpt-300); default: the
      latest in model_dir.

  Raises:
    TrainedModelError: no config.json, no checkpoint, or a checkpoint that
      does not hold the model's weights.
  """
  config = read_config(model_dir)
  checkpoint = checkpoint or tf.train.latest_checkpoint(model_dir)
  if not checkpoint:
    raise TrainedModelError(
        f"No checkpoint in {model_dir}: train first (it saves every "
        "--checkpoint_every steps and at the end) or pass a checkpoint path.")
  decoder = face_decoder.FaceDecoder(loaders.load_face_model(
      config.face_model))
  # Inference runs in float32 even when training used mixed precision.
  model = reconstructor.build_reconstructor(
      decoder.layout.size, backbone=config.backbone,
      image_size=config.image_size, backbone_weights="none",
      output_scale=reconstructor.coefficient_output_scale(decoder.layout))
  step = tf.Variable(0, dtype=tf.int64, name="step")
  status = tf.train.Checkpoint(model=model, step=step).restore(checkpoint)
  try:
    status.expect_partial().assert_existing_objects_matched()
  except AssertionError as error:
    raise TrainedModelError(
        f"{checkpoint} does not hold the weights of a {config.backbone} "
        f"reconstructor at {config.image_size} px with "
        f"{decoder.layout.size} coefficients ({error}).") from error
  return RestoredModel(model=model, decoder=decoder, config=config,
                       checkpoint_path=checkpoint, step=int(step.numpy()))
