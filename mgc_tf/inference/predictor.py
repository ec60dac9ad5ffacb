"""One interface over a trained reconstructor, from a checkpoint or a SavedModel.

    predictor = predictor_from_args(model_dir="runs/quickstart")
    predictor = predictor_from_args(saved_model="export/mgc/1")
    coefficients = predictor.coefficients(images)   # [N,S,S,3] -> [N,K]

`infer` and `evaluate` take either; both give the same coefficients (the
export test pins the SavedModel to the Keras model within 1e-5).

A SavedModel written by `mgc_tf.export` carries `EXPORT_METADATA`
(assets.extra/mgc_tf_export.json) saying the crop size, the number of
coefficients and the face model it decodes with.
"""

import abc
import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import loaders
from mgc_tf.training import restore

# Written by mgc_tf.export beside saved_model.pb; TF Serving ignores it.
EXPORT_METADATA = os.path.join("assets.extra", "mgc_tf_export.json")
# The signature taking float images [N, H, W, 3] in [0, 1].
IMAGES_SIGNATURE = "predict_images"


class Predictor(abc.ABC):
  """Images -> coefficients, plus the decoder that turns them into faces.

  Attributes:
    image_size: S, the side of the square crop the model was trained on.
    decoder: FaceDecoder of the model's face model.
    description: one line naming the source, for logs and reports.
  """
  image_size: int
  decoder: face_decoder.FaceDecoder
  description: str

  @abc.abstractmethod
  def coefficients(self, images) -> np.ndarray:
    """images [N, S, S, 3] float32 RGB in [0, 1] -> [N, K] float32."""


def model_inputs(images, image_size: int) -> np.ndarray:
  """[N, H, W, 3] uint8 (or float in [0, 1]) -> [N, S, S, 3] float32 in [0, 1].

  Resized with antialiasing, as the training pipeline resizes crops; no
  resize when H = W = S.
  """
  images = tf.image.convert_image_dtype(tf.convert_to_tensor(images),
                                        tf.float32)
  if images.shape[1] != image_size or images.shape[2] != image_size:
    images = tf.image.resize(images, [image_size, image_size], antialias=True)
  return tf.clip_by_value(images, 0.0, 1.0).numpy()


class ModelPredictor(Predictor):
  """A Keras reconstructor in memory (e.g. the trainer's) as a `Predictor`.

  Args:
    model: Keras model, image [N, S, S, 3] float32 in [0, 1] -> [N, K].
    decoder: its `FaceDecoder`.
    image_size: S.
    description: one line for logs.
  """

  def __init__(self, model, decoder: face_decoder.FaceDecoder,
               image_size: int, description: str = "model in memory"):
    self.model = model
    self.decoder = decoder
    self.image_size = int(image_size)
    self.description = description
    # float32 also when the model was built under mixed precision.
    self._call = tf.function(
        lambda x: tf.cast(model(x, training=False), tf.float32),
        input_signature=[tf.TensorSpec(
            [None, self.image_size, self.image_size, 3], tf.float32)])

  def coefficients(self, images) -> np.ndarray:
    return self._call(tf.convert_to_tensor(images, tf.float32)).numpy()


class CheckpointPredictor(ModelPredictor):
  """A training run's latest (or named) checkpoint, run with Keras."""

  def __init__(self, model_dir: str, checkpoint: Optional[str] = None):
    self.restored = restore.load_trained_model(model_dir, checkpoint)
    super().__init__(
        self.restored.model, self.restored.decoder, self.restored.image_size,
        description=(f"checkpoint {self.restored.checkpoint_path} "
                     f"(step {self.restored.step})"))


def read_export_metadata(saved_model_dir: str) -> dict:
  """The metadata mgc_tf.export wrote beside a SavedModel."""
  path = os.path.join(saved_model_dir, EXPORT_METADATA)
  if not tf.io.gfile.exists(path):
    raise restore.TrainedModelError(
        f"{path} does not exist: --saved_model must be a version directory "
        "written by python -m mgc_tf.export (EXPORT_DIR/MODEL_NAME/VERSION).")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


class SavedModelPredictor(Predictor):
  """An exported SavedModel (mgc_tf.export), through its float signature."""

  def __init__(self, saved_model_dir: str, face_model: Optional[str] = None):
    metadata = read_export_metadata(saved_model_dir)
    self.image_size = int(metadata["image_size"])
    self.decoder = face_decoder.FaceDecoder(loaders.load_face_model(
        face_model if face_model is not None else metadata.get("face_model")))
    if self.decoder.layout.size != int(metadata["num_coefficients"]):
      raise restore.TrainedModelError(
          f"{saved_model_dir} predicts {metadata['num_coefficients']} "
          f"coefficients but the face model has {self.decoder.layout.size}: "
          "pass the --face_model the model was trained with.")
    self.description = f"SavedModel {saved_model_dir}"
    self._loaded = tf.saved_model.load(saved_model_dir)
    self._signature = self._loaded.signatures[IMAGES_SIGNATURE]

  def coefficients(self, images) -> np.ndarray:
    out = self._signature(images=tf.convert_to_tensor(images, tf.float32))
    return out["coefficients"].numpy()


def predictor_from_args(model_dir: Optional[str] = None,
                        saved_model: Optional[str] = None,
                        checkpoint: Optional[str] = None,
                        face_model: Optional[str] = None) -> Predictor:
  """Exactly one of model_dir / saved_model (the entry points' flags)."""
  if bool(model_dir) == bool(saved_model):
    raise ValueError("Pass exactly one of --model_dir (a training run) or "
                     "--saved_model (an exported version directory).")
  if model_dir:
    return CheckpointPredictor(model_dir, checkpoint)
  return SavedModelPredictor(saved_model, face_model)
