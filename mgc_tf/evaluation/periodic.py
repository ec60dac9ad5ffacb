"""The trainer's periodic evaluation on a held-out split.

The same protocol code as `python -m mgc_tf.evaluate`
(`protocols.evaluate_builder`), run on the model being trained: on the
synthetic set NME per |yaw| bin (nme/0-30, nme/30-60, nme/60-90, nme/mean,
percent), pose-angle errors, vertex, depth, epipolar and relative-rotation
errors and render PSNR/SSIM; on aflw2000_3d the original-image NME; on
micc_florence the scan errors (docs/evaluation.md). `--eval_batches` keeps
it cheap: at most that many batches of EVAL_BATCH_SIZE images.
"""

from typing import Callable, Dict

from mgc_tf.evaluation import protocols
from mgc_tf.inference import predictor as predictor_lib

#: Images per batch of the periodic evaluation (whole examples: 8 x 3 views).
EVAL_BATCH_SIZE = protocols.DEFAULT_BATCH_SIZE


def _evaluate(predictor, builder, split, max_batches, batch_size):
  max_examples = 0
  if max_batches:
    images_per_example = _images_per_example(builder)
    max_examples = max(1, max_batches * batch_size // images_per_example)
  result = protocols.evaluate_builder(
      predictor, builder, split, batch_size=batch_size,
      max_examples=max_examples, progress=False)
  return result.metrics


def _images_per_example(builder) -> int:
  """Views per example of a multi-view set with a fixed count, else 1."""
  features = builder.info.features
  if "images" in features:
    views = features["images"].shape[0]
    return int(views) if views else 1
  return 1


def make_evaluate_fn(config) -> Callable[[object], Dict[str, float]]:
  """evaluate_fn(trainer) for `Trainer.train`, on config.eval_dataset.

  Runs `protocols.evaluate_builder` (the code behind python -m
  mgc_tf.evaluate) on config.eval_split, at most config.eval_batches batches
  of EVAL_BATCH_SIZE images, prints one line and returns the metrics.
  """
  state = {}

  def evaluate_fn(trainer) -> Dict[str, float]:
    if "builder" not in state:
      # The trainer built a missing synthetic set already (prepare_data).
      state["builder"] = protocols.load_dataset_builder(
          config.eval_dataset, config.data_dir, split=config.eval_split,
          build_if_missing=False)
      state["predictor"] = predictor_lib.ModelPredictor(
          trainer.model, trainer.decoder, config.image_size,
          description="the model being trained")
    result = _evaluate(state["predictor"], state["builder"],
                       config.eval_split, config.eval_batches,
                       EVAL_BATCH_SIZE)
    print("eval " + "  ".join(f"{k} {v:.3f}" for k, v in result.items()),
          flush=True)
    return result

  return evaluate_fn
