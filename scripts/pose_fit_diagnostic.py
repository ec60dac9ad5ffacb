"""Why yaw stalled: fit only the pose of one test example to its landmarks.

  python scripts/pose_fit_diagnostic.py [--example=3] [--steps=300]

Fits the 6 pose coefficients of each view of one synthetic_multiview/small
test example to its ground-truth landmarks (the landmark term alone, Adam lr
0.01, from the default pose), once with the translation in millimetres and
once in units of 100 mm (what the reconstructor's head now predicts). The
views of turned heads need tens of millimetres of lateral translation
together with their yaw; in millimetres Adam moves the translation too
slowly and the yaw stays near the frontal pose. docs/results.md quotes the
output.
"""

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.data import pipeline
from mgc_tf.data import prepare
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import loaders
from mgc_tf.losses import mgc_loss

_EXAMPLE = flags.DEFINE_integer("example", 3, "Index in the test split.")
_STEPS = flags.DEFINE_integer("steps", 300, "Adam steps per fit.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir.")


def fit_pose(loss, image, landmarks, layout, translation_unit: float,
             steps: int) -> np.ndarray:
  """Pose-only fit; returns the [K] coefficients found."""
  pose = layout.slices()["pose"]
  scale = np.ones([1, 1, layout.size], np.float32)
  scale[..., pose.start + 3:pose.stop] = translation_unit
  mask = np.zeros([1, 1, layout.size], np.float32)
  mask[..., pose] = 1.0
  unknowns = tf.Variable(np.zeros([1, 1, layout.size], np.float32))
  optimizer = tf.keras.optimizers.Adam(0.01)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      total = loss(unknowns * scale, image, landmarks, tf.constant([0])).total
    optimizer.apply([tape.gradient(total, unknowns) * mask], [unknowns])

  for _ in range(steps):
    step()
  return (unknowns * scale).numpy()[0, 0]


def main(argv):
  del argv
  prepare.ensure_synthetic("synthetic_multiview/small", _DATA_DIR.value)
  builder = pipeline.load_builder(
      pipeline.SourceSpec("synthetic_multiview/small"), _DATA_DIR.value)
  example = next(iter(tfds.as_numpy(
      builder.as_dataset(split="test").skip(_EXAMPLE.value).take(1))))
  decoder = face_decoder.FaceDecoder(loaders.load_face_model(None))
  layout = decoder.layout
  pose = layout.slices()["pose"]
  # The landmark term alone (render, regularization, multi-view off).
  loss = mgc_loss.MGCLoss(decoder, mgc_loss.MGCLossWeights(
      render=0.0, regularization=0.0, multiview=0.0))
  print(f"\n{'view yaw':>9} {'true tx':>8} | {'unit':>7} {'fit yaw':>8} "
        f"{'fit tx':>7} {'landmark':>9}")
  for view in range(len(example["images"])):
    image = tf.constant(example["images"][view][None, None] / 255.0,
                        tf.float32)
    landmarks = tf.constant(example["landmarks"][view][None, None],
                            tf.float32)
    for unit in (1.0, 100.0):
      found = fit_pose(loss, image, landmarks, layout, unit, _STEPS.value)
      residual = float(loss(found[None, None], image, landmarks,
                            tf.constant([0])).terms["landmark"])
      print(f"{example['yaw_degrees'][view]:9.1f} "
            f"{example['coefficients'][view, pose.start + 3]:8.1f} | "
            f"{unit:4.0f} mm {np.degrees(found[pose.start + 1]):8.1f} "
            f"{found[pose.start + 3]:7.1f} {residual:9.1f}")


if __name__ == "__main__":
  app.run(main)
