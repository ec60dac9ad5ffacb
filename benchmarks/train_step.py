"""One MGCNet training step, split into its parts, beside the backbone alone.

  python benchmarks/train_step.py [--backbone=resnet50] [--batch=5]
      [--views=3] [--size=224] [--repeats=5]
      [--data_dir=/tmp/mgc_tf_benchmark_data]
      [--rasterizer=auto|kernel|xla] [--jit_compile]

Builds the trainer exactly as `python -m mgc_tf.train` does (the paper's
configs/mgc.flags setting on synthetic_multiview/small, built if missing) and
times, round-robin on the same batch:
- backbone: the reconstructor's forward+backward on the batch x views images
  with a trivial loss (what any image model pays);
- full step: the trainer's compiled step (forward, MGCNet loss, backward,
  gradient reduction and checks, Adam update);
and the parts of a full step:
- input: one batch from the training pipeline (decode, resize, augment),
  pulled on its own; in training it overlaps the step (prefetch);
- rendering: decode + rasterize + shade of all views, forward+backward
  with respect to the coefficients;
- losses: the whole MGCNet loss forward+backward with respect to the
  coefficients, minus the rendering;
- optimizer: Adam's update on precomputed gradients.
Target (issue 5): full step <= 1.5x the backbone step on CPU; with
--rasterizer=xla on a GPU (issue 22): full step <= 1.3x the backbone step.
--jit_compile compiles the step's replica maths and the rendering and loss
parts with XLA (needs the xla rasterizer).
"""

import sys

import os
import tempfile

from absl import app
from absl import flags
import tensorflow as tf
from timing import interleaved_median_ms

from mgc_tf import methods
from mgc_tf.data import prepare
from mgc_tf.render import rasterizer
from mgc_tf.render import renderer
from mgc_tf.training import trainer as trainer_lib
from mgc_tf.training.config import TrainConfig

_BACKBONE = flags.DEFINE_string("backbone", "resnet50", "Reconstructor backbone.")
_BATCH = flags.DEFINE_integer("batch", 5, "Samples per batch.")
_VIEWS = flags.DEFINE_integer("views", 3, "Views per sample.")
_SIZE = flags.DEFINE_integer("size", 224, "Image side, pixels.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed rounds (median).")
_RASTERIZER = flags.DEFINE_string(
    "rasterizer", "auto", "Rasterizer backend: auto, kernel or xla.")
_JIT_COMPILE = flags.DEFINE_bool(
    "jit_compile", False, "Compile with XLA (needs --rasterizer=xla).")
_DATA_DIR = flags.DEFINE_string("data_dir", "/tmp/mgc_tf_benchmark_data",
                                "TFDS data dir; synthetic_multiview is built "
                                "there if missing.")


def main(argv):
  del argv
  b, n, size = _BATCH.value, _VIEWS.value, _SIZE.value
  try:
    backend = rasterizer.parse_backend(_RASTERIZER.value)
  except ValueError as e:
    print(f"error: --rasterizer: {e}", file=sys.stderr)
    return 2
  jit = _JIT_COMPILE.value
  data_dir = os.path.expanduser(_DATA_DIR.value)
  prepare.ensure_synthetic("synthetic_multiview/small", data_dir)
  config = TrainConfig(
      model_dir=tempfile.mkdtemp(prefix="mgc_train_step_"),
      dataset="synthetic_multiview/small", data_dir=data_dir,
      eval_dataset="", backbone=_BACKBONE.value, image_size=size,
      num_views=n, batch_size=b, max_steps=1000, rasterizer=backend,
      jit_compile=jit, method_config=methods.get("mgcnet").config_class())
  try:
    trainer = trainer_lib.Trainer(config, methods.get("mgcnet"))
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  resolved = rasterizer.resolve_backend()
  iterator = iter(trainer.distributed_dataset(start_step=0))
  batch = next(iterator)
  full_step = trainer._train_step_of(0)  # pylint: disable=protected-access
  model, loss = trainer.model, trainer.method.loss
  images = batch["images"]
  flat = tf.reshape(images, [b * n, size, size, 3])
  coefficients = tf.Variable(tf.reshape(model(flat, training=False),
                                        [b, n, -1]))

  @tf.function(jit_compile=jit or None)
  def backbone():
    with tf.GradientTape() as tape:
      out = model(flat, training=True)
      total = tf.reduce_sum(out * out)
    return tape.gradient(total, model.trainable_variables)

  @tf.function(jit_compile=jit or None)
  def rendering():
    with tf.GradientTape() as tape:
      _, out = renderer.render_face(
          trainer.decoder, tf.reshape(coefficients, [b * n, -1]),
          background=flat)
      total = tf.reduce_sum(out.image) + tf.reduce_sum(out.depth)
    return tape.gradient(total, coefficients)

  @tf.function(jit_compile=jit or None)
  def loss_with_rendering():
    with tf.GradientTape() as tape:
      total = loss(coefficients, images, batch["landmarks"], batch["flag"],
                   skin=batch["skin"]).total
    return tape.gradient(total, coefficients)

  gradients = backbone()

  @tf.function
  def optimizer_update():
    trainer.optimizer.apply(gradients, model.trainable_variables)

  times = interleaved_median_ms({
      "backbone": backbone,
      "full": lambda: full_step(batch)["total"].numpy(),
      "input": lambda: next(iterator),
      "rendering": rendering,
      "loss": loss_with_rendering,
      "optimizer": optimizer_update,
  }, _REPEATS.value)
  parts = {
      "input (pulled alone; prefetch overlaps it)": times["input"],
      "backbone forward+backward": times["backbone"],
      "rendering forward+backward": times["rendering"],
      "losses forward+backward (without rendering)":
          times["loss"] - times["rendering"],
      "optimizer update (Adam)": times["optimizer"],
  }
  print(f"\n{config.backbone} reconstructor, batch {b} x {n} views, "
        f"{size}x{size}, {os.cpu_count()} CPU cores, "
        f"{len(tf.config.list_logical_devices('GPU'))} GPUs, rasterizer "
        f"{resolved.value}{' (from auto)' if backend.value == 'auto' else ''}"
        f"{', jit_compile' if jit else ''}, median of "
        f"{_REPEATS.value} round-robin rounds\n")
  header = f"{'':<48} {'ms':>9} {'x backbone':>11}"
  print(header)
  print("-" * len(header))
  backbone_ms = times["backbone"]
  print(f"{'backbone only (forward+backward)':<48} {backbone_ms:>9.1f} "
        f"{1.0:>11.3f}")
  print(f"{'full MGCNet training step':<48} {times['full']:>9.1f} "
        f"{times['full'] / backbone_ms:>11.3f}")
  print("\nsplit of the full step")
  print("-" * len(header))
  for label, ms in parts.items():
    print(f"  {label:<46} {ms:>9.1f} {ms / backbone_ms:>11.3f}")
  compute = sum(ms for label, ms in parts.items()
                if not label.startswith("input"))
  print(f"  {'sum of the compute parts':<46} {compute:>9.1f} "
        f"{compute / backbone_ms:>11.3f}")
  print("\ntargets: full step <= 1.5x the backbone-only step on CPU; "
        "<= 1.3x on a GPU with --rasterizer=xla")


if __name__ == "__main__":
  app.run(main)
