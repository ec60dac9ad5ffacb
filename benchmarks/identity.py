"""The identity term's network beside ResNet50, forward+backward, in one run.

  python benchmarks/identity.py [--images=16] [--size=224] [--repeats=5]

Times, per image and round-robin in one run:
  - ResNet50 forward+backward (the reconstructor's backbone, training mode);
  - the identity term forward+backward with respect to the rendered images:
    both the input crop and the render are cut into dlib's 150 px chip
    (`face_chips.cut_chips`) and embedded by dlib's ResNet (frozen), as
    `IdentityLoss` does in training, so the per-image cost counts two
    chips.
Target (issue 14): identity <= 0.25x ResNet50.
"""

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf
from timing import interleaved_median_ms
import workloads

from mgc_tf.losses import identity as identity_lib

_IMAGES = flags.DEFINE_integer("images", 16, "Images per batch.")
_SIZE = flags.DEFINE_integer("size", 224, "Crop side, pixels.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed rounds (median).")


def main(argv):
  del argv
  n, size = _IMAGES.value, _SIZE.value
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(0, 1, [n, size, size, 3]), tf.float32)
  rendered = tf.Variable(rng.uniform(0, 1, [n, size, size, 3]),
                         dtype=tf.float32)
  loss = identity_lib.IdentityLoss.from_spec("dlib")

  @tf.function
  def identity_step():
    with tf.GradientTape() as tape:
      total = tf.reduce_sum(loss(images, rendered))
    return tape.gradient(total, rendered)

  backbone_step = workloads.resnet50_step(
      tf.reshape(images, [n, 1, size, size, 3]), 257)
  times = interleaved_median_ms({"backbone": backbone_step,
                                 "identity": identity_step},
                                _REPEATS.value)
  per_image = {k: v / n for k, v in times.items()}
  print(f"\n{n} images of {size}x{size} per call; median of "
        f"{_REPEATS.value} round-robin rounds\n")
  header = f"{'forward+backward':<52} {'ms/image':>9} {'x ResNet50':>11}"
  print(header)
  print("-" * len(header))
  print(f"{'ResNet50 (training mode)':<52} {per_image['backbone']:>9.2f} "
        f"{1.0:>11.3f}")
  print(f"{'identity term (2 chips cut + dlib ResNet, frozen)':<52} "
        f"{per_image['identity']:>9.2f} "
        f"{per_image['identity'] / per_image['backbone']:>11.3f}")
  print("\ntarget: identity term <= 0.25x ResNet50")


if __name__ == "__main__":
  app.run(main)
