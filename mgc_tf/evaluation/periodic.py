"""The trainer's periodic evaluation on a held-out split.

The same protocol code as `python -m mgc_tf.evaluate`
(`protocols.evaluate_builder`), run on the networks being trained through
an in-memory `Reconstructor`: on the synthetic set NME per |yaw| bin
(nme/0-30, nme/30-60, nme/60-90, nme/mean, percent), pose-angle errors,
vertex, depth, epipolar and relative-rotation errors and render PSNR/SSIM;
on aflw2000_3d the original-image NME; on micc_florence the scan errors
(docs/evaluation.md). `--eval_batches` keeps it cheap: at most that many
batches of EVAL_BATCH_SIZE images.
"""

from typing import Callable, Dict

from mgc_tf.evaluation import protocols
from mgc_tf.inference import reconstructor as reconstructor_lib

#: Images per batch of the periodic evaluation (whole examples: 8 x 3 views).
EVAL_BATCH_SIZE = protocols.DEFAULT_BATCH_SIZE


def _images_per_example(builder) -> int:
  """Views per example of a multi-view set with a fixed count, else 1."""
  features = builder.info.features
  if "images" in features:
    views = features["images"].shape[0]
    return int(views) if views else 1
  return 1


def make_evaluate_fn(dataset: str, split: str, data_dir, max_batches: int
                     ) -> Callable[[object], Dict[str, float]]:
  """evaluate_fn(trainer) for `Trainer.train`.

  Args:
    dataset: TFDS name (e.g. "synthetic_multiview/small"), prepared already
      (the trainer builds a missing synthetic set before it trains).
    split: its split.
    data_dir: TFDS data dir (None: TFDS' default).
    max_batches: at most this many batches of EVAL_BATCH_SIZE images
      (rounded to whole examples); 0: the whole split.

  The trainer is used through `networks`, `decoder`, `config.image_size`
  and `method.outputs()`; prints one line and returns the metrics.
  """
  state = {}

  def evaluate_fn(trainer) -> Dict[str, float]:
    if "builder" not in state:
      state["builder"] = protocols.load_dataset_builder(
          dataset, data_dir, split=split, build_if_missing=False)
      state["reconstructor"] = reconstructor_lib.Reconstructor.from_networks(
          trainer.networks, trainer.decoder, trainer.config.image_size,
          outputs={name: spec.source()
                   for name, spec in trainer.method.outputs().items()},
          inference=trainer.method.inference_spec(),
          description="the model being trained")
    builder = state["builder"]
    max_examples = 0
    if max_batches:
      max_examples = max(1, max_batches * EVAL_BATCH_SIZE //
                         _images_per_example(builder))
    result = protocols.evaluate_builder(
        state["reconstructor"], builder, split, batch_size=EVAL_BATCH_SIZE,
        max_examples=max_examples, progress=False).metrics
    print("eval " + "  ".join(f"{k} {v:.3f}" for k, v in result.items()),
          flush=True)
    return result

  return evaluate_fn
