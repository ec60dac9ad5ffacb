r"""How well each loss term follows its own gradient, from a trained run.

  PYTHONPATH=$PWD python scripts/term_slopes.py \
      --model_dir=runs/ablation_v2/robust/seed0 [--eps=1e-3,1e-4,1e-5] \
      [--batches=2] [--output=results/term_slopes/robust_seed0.json]

Terms that go through the rasteriser are piecewise constant in the weights
(a pixel changes triangle), and dlib's features magnify a changed pixel of
a small render; docs/robust.md measured at the short CPU test's 32 px that
a step along a term's normalised gradient can change the term by -2.9
times its first-order prediction. This measures it at the run's own size.

Builds the run's trainer from its config.json (with a scratch model_dir,
so the run is only read), restores its latest checkpoint, takes
`--batches` training batches (the run's seed, so its data order), and for
each term with a gradient on the weights and each eps: the ratio of the term's change
after a step of eps along its own normalised gradient to the first-order
prediction -eps |g| (1: linear; near 0 or negative: the gradient does not
predict the change). Training mode with fixed random seeds, so the
augmentations and the self-augmentation poses are the same in both
evaluations.
"""

import json
import os
import shutil
import tempfile

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from mgc_tf import methods
from mgc_tf.training import config as config_lib
from mgc_tf.training import trainer as trainer_lib

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Trained run (read only).")
_EPS = flags.DEFINE_list("eps", ["1e-3", "1e-4", "1e-5"],
                         "Step lengths along the normalised gradient.")
_BATCHES = flags.DEFINE_integer("batches", 2, "Training batches measured.")
_OUTPUT = flags.DEFINE_string("output", "", "JSON file for the table.")


def load_trainer(model_dir: str, scratch: str):
  """(the run's trainer with its latest weights, writing only to scratch;
  the checkpoint path restored)."""
  with open(os.path.join(model_dir, "config.json")) as f:
    text = f.read()
  method_name = json.loads(text)["method"]
  config = config_lib.TrainConfig.from_json(
      text, methods.get(method_name).config_class,
      {name: addon.config_class
       for name, addon in methods.addon_classes().items()})
  config = config_lib.dataclasses.replace(
      config, model_dir=scratch, eval_dataset="",
      build_data_if_missing=False).validate()
  trainer = trainer_lib.Trainer(
      config, methods.composed(config.method, config.addon_configs))
  latest = tf.train.latest_checkpoint(model_dir)
  if not latest:
    raise SystemExit(f"error: no checkpoint in {model_dir}")
  trainer.checkpoint.restore(latest).expect_partial()
  return trainer, latest


def main(argv):
  del argv
  scratch = tempfile.mkdtemp(prefix="term_slopes_")
  try:
    trainer, checkpoint = load_trainer(_MODEL_DIR.value, scratch)
    method, networks = trainer.method, trainer.networks
    stage = method.stages()[-1]
    variables = [v for net in networks.values()
                 for v in net.trainable_variables]
    trained = [v.numpy() for v in variables]
    iterator = iter(trainer.distributed_dataset(int(trainer.step.numpy())))
    eps_values = [float(e) for e in _EPS.value]
    table, norms = {}, {}
    for _ in range(_BATCHES.value):
      batch = next(iterator)

      def objective():
        tf.random.set_seed(11)
        return method.objective(networks, batch, stage, training=True)

      for name in sorted(objective().terms):
        for variable, value in zip(variables, trained):
          variable.assign(value)
        with tf.GradientTape() as tape:
          start = objective().terms[name]
        grads = tape.gradient(start, variables)
        present = [g for g in grads if g is not None]
        norm = float(tf.linalg.global_norm(present)) if present else 0.0
        if not norm > 0:
          continue  # a term with no gradient on the weights
        norms.setdefault(name, []).append(norm)
        table.setdefault(name, {str(e): [] for e in eps_values})
        for eps in eps_values:
          for variable, value, g in zip(variables, trained, grads):
            variable.assign(value if g is None else value - eps * g / norm)
          change = float(objective().terms[name]) - float(start)
          table[name][str(eps)].append(change / (-eps * norm))
    for variable, value in zip(variables, trained):
      variable.assign(value)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)

  size = trainer.config.image_size
  print(f"\n{checkpoint}: {trainer.config.method}, {size} px, "
        f"{_BATCHES.value} batches; change / first-order prediction "
        "(1 = linear)\n")
  header = f"{'term':<18} {'|grad|':>10} " + " ".join(
      f"{'eps ' + e:>20}" for e in _EPS.value)
  print(header)
  print("-" * len(header))
  for name in table:
    cells = " ".join(
        f"{' / '.join(f'{r:+.2f}' for r in table[name][str(e)]):>20}"
        for e in eps_values)
    print(f"{name:<18} {np.mean(norms[name]):>10.3g} {cells}")
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(_OUTPUT.value) or ".", exist_ok=True)
    with open(_OUTPUT.value, "w") as f:
      json.dump({"checkpoint": checkpoint, "image_size": size,
                 "method": trainer.config.method,
                 "batches": _BATCHES.value, "gradient_norm": norms,
                 "ratio_change_to_first_order": table}, f, indent=1)


if __name__ == "__main__":
  flags.mark_flag_as_required("model_dir")
  app.run(main)
