"""The trainer's periodic evaluation on a held-out split.

Runs the reconstructor on every view of the split (single images: no
rendering is needed) and reports:
  nme/<bin>, nme/mean   2D landmark NME (ground-truth box sqrt(w h)) per
                        |yaw| bin [0,30), [30,60), [60,90] and their mean,
                        in percent
  yaw_error_deg, pitch_error_deg, roll_error_deg
                        absolute pose-angle errors, when the set has `pose`
  vertex_error_mm       mean vertex distance after rigid alignment, when the
                        set has ground-truth `coefficients` of the same face
                        model (the synthetic set)
"""

from typing import Callable, Dict

import numpy as np
import tensorflow as tf

from mgc_tf.data import pipeline
from mgc_tf.evaluation import metrics


def view_dataset(builder, split: str, image_size: int, batch_size: int
                 ) -> tf.data.Dataset:
  """Single views of a multi-view split, resized, with their ground truth.

  Yields dicts: image [b, S, S, 3] float32 in [0, 1], landmarks [b, 68, 2]
  (pixels of the resized crop), and, when the set has them, yaw_degrees [b],
  pose [b, 6], coefficients [b, K].
  """
  features = builder.info.features
  extra = [key for key in ("yaw_degrees", "pose", "coefficients")
           if key in features]
  dataset = builder.as_dataset(split=split, shuffle_files=False)

  def views(example):
    out = {"image": example["images"], "landmarks": example["landmarks"]}
    out.update({key: example[key] for key in extra})
    return tf.data.Dataset.from_tensor_slices(out)

  def resize(view):
    raw = tf.cast(tf.shape(view["image"])[0], tf.float32)
    image = tf.image.convert_image_dtype(view["image"], tf.float32)
    view["image"] = tf.image.resize(image, [image_size, image_size],
                                    antialias=True)
    view["landmarks"] = ((view["landmarks"] + 0.5) * (image_size / raw)
                         - 0.5)
    return view

  return (dataset.flat_map(views)
          .map(resize, num_parallel_calls=tf.data.AUTOTUNE)
          .batch(batch_size).prefetch(tf.data.AUTOTUNE))


def evaluate(model, decoder, dataset: tf.data.Dataset, image_size: int,
             max_batches: int = 0) -> Dict[str, float]:
  """Metrics of `model` over `dataset` (see the module docstring)."""
  nme, yaws = [], []
  angle_errors = {"yaw_error_deg": [], "pitch_error_deg": [],
                  "roll_error_deg": []}
  vertex_errors = []
  for index, batch in enumerate(dataset):
    if max_batches and index >= max_batches:
      break
    coefficients = tf.cast(model(batch["image"], training=False), tf.float32)
    face = decoder.decode(coefficients, image_size=image_size)
    truth = batch["landmarks"].numpy()
    nme.append(metrics.landmark_nme(face.landmarks_2d.numpy(), truth))
    yaws.append(batch["yaw_degrees"].numpy() if "yaw_degrees" in batch
                else np.zeros(len(truth)))
    if "pose" in batch:
      predicted = np.degrees(face.pose.numpy()[:, :3])
      expected = np.degrees(batch["pose"].numpy()[:, :3])
      errors = metrics.angle_error_degrees(predicted, expected)
      # Pose angles are (rz, ry, rx) = (roll, yaw, pitch).
      angle_errors["roll_error_deg"].extend(errors[:, 0])
      angle_errors["yaw_error_deg"].extend(errors[:, 1])
      angle_errors["pitch_error_deg"].extend(errors[:, 2])
    if ("coefficients" in batch
        and batch["coefficients"].shape[-1] == coefficients.shape[-1]):
      true_shape = decoder.decode(batch["coefficients"]).shape.numpy()
      for predicted_shape, shape in zip(face.shape.numpy(), true_shape):
        vertex_errors.append(metrics.aligned_vertex_error(predicted_shape,
                                                          shape))
  if not nme:
    raise ValueError("The evaluation split is empty")
  nme = np.concatenate(nme) * 100.0
  result = {f"nme/{name}": value for name, value in
            metrics.per_yaw_bin_mean(nme, np.concatenate(yaws)).items()}
  result.update(metrics.summarise(angle_errors))
  if vertex_errors:
    result["vertex_error_mm"] = float(np.mean(vertex_errors))
  return result


def make_evaluate_fn(config) -> Callable[[object], Dict[str, float]]:
  """evaluate_fn(trainer) for `Trainer.train`, on config.eval_dataset."""
  spec = pipeline.SourceSpec(config.eval_dataset, split=config.eval_split)
  state = {}

  def evaluate_fn(trainer) -> Dict[str, float]:
    if "dataset" not in state:
      builder = pipeline.load_builder(spec, config.data_dir)
      state["dataset"] = view_dataset(builder, config.eval_split,
                                      config.image_size, batch_size=16)
    result = evaluate(trainer.model, trainer.decoder, state["dataset"],
                      config.image_size, config.eval_batches)
    print("eval " + "  ".join(f"{k} {v:.3f}" for k, v in result.items()),
          flush=True)
    return result

  return evaluate_fn
