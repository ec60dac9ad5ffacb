"""What the evaluation protocols share: batching, predicting and rendering,
and collecting per-image values.

Images are fed to the predictor resized to its input size (antialiased, as
the training pipeline does); landmarks, depth and renders are measured at the
dataset's stored crop size, with the face model's camera scaled to it (the
decoder's convention, in which the synthetic set was rendered).
"""

from typing import Callable, Dict, Iterable, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.evaluation import metrics
from mgc_tf.evaluation import render_quality
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.io.progress import ProgressLog
from mgc_tf.models import gcn
from mgc_tf.render import renderer

#: Images per predictor/render call.
DEFAULT_BATCH_SIZE = 24


def as_float_images(images: np.ndarray) -> np.ndarray:
  return tf.image.convert_image_dtype(tf.convert_to_tensor(images),
                                      tf.float32).numpy()


def render_over(decoder, coefficients: np.ndarray, images: np.ndarray):
  """Renders coefficients over float images [N, H, W, 3] at their size.

  Returns:
    (DecodedFace at crop size H, RenderOutput, rendered image clipped to
    [0, 1] as NumPy).
  """
  face, output = renderer.render_face(
      decoder, tf.convert_to_tensor(coefficients, tf.float32),
      background=tf.convert_to_tensor(images, tf.float32))
  return face, output, np.clip(output.image.numpy(), 0.0, 1.0)


def predict_render_and_score(predictor, decoder, crops: np.ndarray, values):
  """Predicts crops [N, H, W, 3] (uint8), renders over them, scores the render.

  Adds render_psnr_db and render_ssim to `values`, and, for a model with a
  refined texture (`gcn.REFINED_ALBEDO_OUTPUT`, the robust method),
  render_refined_psnr_db and render_refined_ssim of the same face rendered
  with that albedo; returns (coefficients [N, K], DecodedFace at crop size
  H, RenderOutput).
  """
  predicted = predictor.predict(
      reconstructor_lib.model_inputs(crops, predictor.image_size))
  coefficients = predicted["coefficients"]
  inputs = as_float_images(crops)
  face, output, rendered = render_over(decoder, coefficients, inputs)
  _score_render(values, "render", rendered, inputs, output.mask.numpy())
  refined = predicted.get(gcn.REFINED_ALBEDO_OUTPUT)
  if refined is not None:
    again = renderer.render_with_albedo(face, refined, decoder.triangles,
                                        inputs)
    _score_render(values, "render_refined",
                  np.clip(again.image.numpy(), 0.0, 1.0), inputs,
                  again.mask.numpy())
  return coefficients, face, output


def _score_render(values, prefix: str, rendered, inputs, mask) -> None:
  values.add(f"{prefix}_psnr_db",
             render_quality.masked_psnr(rendered, inputs, mask))
  values.add(f"{prefix}_ssim",
             render_quality.masked_ssim(rendered, inputs, mask))


def progress_log(builder, split: str, max_examples: int, unit: str,
                 enabled: bool) -> ProgressLog:
  """The progress lines of a protocol over `split` (at most `max_examples`)."""
  total = split_size(builder, split)
  if max_examples:
    total = min(total, max_examples) if total else max_examples
  return ProgressLog(f"{builder.info.full_name} {split}", total, unit,
                     enabled=enabled)


def check_not_empty(count: int, builder, split: str) -> None:
  """Raises ValueError when a protocol found nothing to evaluate."""
  if not count:
    raise ValueError(f"The split {split!r} of {builder.info.full_name} is "
                     "empty")


def split_size(builder, split: str) -> int:
  try:
    return int(builder.info.splits[split].num_examples)
  except (KeyError, ValueError, TypeError):
    return 0


def examples_of(builder, split: str, max_examples: int,
                decoders: Optional[dict] = None) -> Iterable[dict]:
  dataset = builder.as_dataset(split=split, shuffle_files=False,
                               decoders=decoders)
  if max_examples:
    dataset = dataset.take(max_examples)
  return tfds.as_numpy(dataset)


def chunks(examples: Iterable[dict], images_per_chunk: int,
           count: Callable[[dict], int]) -> Iterable[List[dict]]:
  """Groups examples so that each group holds >= images_per_chunk images
  (the last one fewer)."""
  chunk, images = [], 0
  for example in examples:
    chunk.append(example)
    images += count(example)
    if images >= images_per_chunk:
      yield chunk
      chunk, images = [], 0
  if chunk:
    yield chunk


def yaw_bin_counts(yaws: np.ndarray) -> Dict[str, int]:
  bins = metrics.yaw_bin_index(yaws)
  return {f"images/{low:.0f}-{high:.0f}": int(np.sum(bins == index))
          for index, (low, high) in enumerate(metrics.YAW_BINS)}


def mean(values) -> float:
  return float(np.mean(values)) if len(values) else float("nan")


class Accumulator:
  """Per-image (or per-pair) values collected over batches."""

  def __init__(self):
    self.lists: Dict[str, list] = {}

  def add(self, name: str, values) -> None:
    self.lists.setdefault(name, []).append(
        np.asarray(values, np.float64).reshape(-1))

  def values(self, name: str) -> np.ndarray:
    parts = self.lists.get(name, [])
    return np.concatenate(parts) if parts else np.zeros([0])

  def __contains__(self, name: str) -> bool:
    return name in self.lists
