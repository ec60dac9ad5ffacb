"""The full MGCNet loss beside ResNet50, forward+backward, in one run.

  python benchmarks/losses.py [--batch=5] [--views=3] [--size=224] [--repeats=3]
      [--face_model=PATH]

Times the whole MGCNet loss (decode, render all views, 2D losses, view
synthesis, covisible maps, multi-view losses) forward+backward with respect
to the coefficients, and ResNet50 forward+backward on the same batch*views
images, and prints their ratio. Target: loss <= 0.5x the backbone.
"""

from absl import app
from absl import flags
from timing import median_ms
import workloads

from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import loaders

_BATCH = flags.DEFINE_integer("batch", 5, "Samples per batch.")
_VIEWS = flags.DEFINE_integer("views", 3, "Views per sample.")
_SIZE = flags.DEFINE_integer("size", 224, "Image side, pixels.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repetitions (median).")
_FACE_MODEL = flags.DEFINE_string("face_model", None,
                                  "Face model file; default: embedded.")


def main(argv):
  del argv
  b, n, size, repeats = _BATCH.value, _VIEWS.value, _SIZE.value, _REPEATS.value
  model = loaders.load_face_model(_FACE_MODEL.value)
  decoder = face_decoder.FaceDecoder(model)
  backbone_step, loss_step = workloads.training_step_parts(decoder, b, n,
                                                            size)
  loss_ms = median_ms(loss_step, repeats)
  backbone_ms = median_ms(backbone_step, repeats)
  print(f"\nface model: {model.name} ({model.num_vertices} vertices, "
        f"{model.num_triangles} triangles); batch {b} x {n} views, "
        f"{size}x{size}; median of {repeats}\n")
  header = f"{'step (forward+backward)':<44} {'ms':>9} {'x backbone':>11}"
  print(header)
  print("-" * len(header))
  print(f"{'ResNet50 on the same ' + str(b * n) + ' images':<44} "
        f"{backbone_ms:>9.1f} {1.0:>11.3f}")
  print(f"{'MGCNet loss (render + 2D + multi-view)':<44} {loss_ms:>9.1f} "
        f"{loss_ms / backbone_ms:>11.3f}")
  print("\ntarget: MGCNet loss <= 0.5x the backbone")


if __name__ == "__main__":
  app.run(main)
