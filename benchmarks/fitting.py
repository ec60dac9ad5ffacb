"""One fitting iteration beside ResNet50 forward+backward, on one 224 image.

  PYTHONPATH=$PWD python benchmarks/fitting.py [--repeats=5]
      [--identity_network=dlib] [--photo_steps=100]

Times, round-robin (`timing.interleaved_median_ms`):
- fit iteration: one `FitProblem.step` of a one-photo fit at 224 px (decode,
  render, render/landmark/identity/regularisation losses, gradients, Adam
  update), identity term with `--identity_network`;
- ResNet50: keras.applications.ResNet50 (random weights, 1000 classes)
  forward+backward on one 224 image with a trivial loss, and its SGD-free
  gradient (what a network pays per image).
Then seconds per photo for the default iteration count (`FitConfig().steps`
steps, tracing included, detection excluded): one whole `Fitter.fit`.
Target (issue 15): iteration <= 0.3x ResNet50.
"""

import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf
from timing import interleaved_median_ms

from mgc_tf import fitting
from mgc_tf.facemodel import decoder as decoder_lib
from mgc_tf.facemodel import loaders
from mgc_tf.losses import identity as identity_lib
from mgc_tf.render import renderer

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed rounds (median).")
_IDENTITY = flags.DEFINE_string("identity_network", "dlib",
                                "Identity term network (dlib / none).")
_PHOTO_STEPS = flags.DEFINE_integer(
    "photo_steps", fitting.FitConfig().steps,
    "Steps of the whole-photo timing (default: the fit default).")
SIZE = 224


def _photo(decoder):
  """A 224 render of a random face with its landmarks (a stand-in photo)."""
  rng = np.random.default_rng(0)
  coefficients = np.zeros([1, decoder.layout.size], np.float32)
  coefficients[0, decoder.layout.slices()["identity"]] = rng.normal(
      size=decoder.layout.id_rank)
  face, output = renderer.render_face(
      decoder, tf.constant(coefficients),
      background=tf.fill([1, SIZE, SIZE, 3], 0.4))
  return output.image.numpy(), face.landmarks_2d.numpy() + 2.0


def main(argv):
  del argv
  decoder = decoder_lib.FaceDecoder(loaders.load_face_model(None))
  identity_loss = identity_lib.IdentityLoss.from_spec(_IDENTITY.value)
  image, landmarks = _photo(decoder)
  fitter = fitting.Fitter(decoder, fitting.FitConfig(), identity_loss)
  problem = fitter.problem(image, landmarks)

  resnet = keras.applications.ResNet50(weights=None, input_shape=(SIZE,
                                                                  SIZE, 3))
  batch = tf.constant(image)

  @tf.function
  def resnet_step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(resnet(batch, training=True))
    return tape.gradient(loss, resnet.trainable_variables)

  times = interleaved_median_ms({"fit iteration": problem.step,
                                 "ResNet50 fwd+bwd": resnet_step},
                                _REPEATS.value)
  photo_fitter = fitting.Fitter(
      decoder, fitting.FitConfig(steps=_PHOTO_STEPS.value), identity_loss)
  start = time.perf_counter()
  photo_fitter.fit(image, landmarks)
  seconds = time.perf_counter() - start
  print(f"one 224 image, {identity_loss.describe()}, "
        f"{len(tf.config.list_physical_devices('CPU'))} CPU device(s)")
  print(f"{'':24s}{'ms':>10s}{'ratio':>8s}")
  base = times["ResNet50 fwd+bwd"]
  for name, value in times.items():
    print(f"{name:24s}{value:10.1f}{value / base:8.2f}")
  print(f"seconds per photo ({_PHOTO_STEPS.value} steps, tracing included): "
        f"{seconds:.1f}")


if __name__ == "__main__":
  app.run(main)
