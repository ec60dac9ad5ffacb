"""Exported SavedModel speed beside calling the Keras model, in one run.

  python benchmarks/inference.py [--backbone=resnet50] [--size=224]
      [--batch=32] [--repeats=10] [--latency_repeats=40] [--model_dir=RUN]

Writes a model_dir with random weights (or uses --model_dir), exports it with
`mgc_tf.serving.export_lib`, loads the SavedModel with tf.saved_model.load,
and times on the CPU, alternating the contenders call by call so machine load
hits both alike:

  * direct: the Keras reconstructor + FaceDecoder.decode in one tf.function
    (coefficients, pose, landmarks_2d, landmarks_3d): what the export holds;
  * SavedModel `predict_images` on the same float images;
  * SavedModel `serving_default` on the same images as JPEG bytes (adds the
    decoding, so it is listed for information, not held to the target).

Prints batch-1 latency and batch-B throughput with ratios to the direct call.
Target: predict_images <= 1.1x the direct call.
"""

import os
import tempfile

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf
from timing import interleaved_median_ms

from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import loaders
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.models import reconstructor
from mgc_tf.serving import export_lib

_BACKBONE = flags.DEFINE_enum("backbone", "resnet50",
                              ["resnet50", "resnet18", "mobilenet_v2"],
                              "Encoder of the random-weight run.")
_SIZE = flags.DEFINE_integer("size", 224, "Training crop side S, pixels.")
_BATCH = flags.DEFINE_integer("batch", 32, "Throughput batch.")
_REPEATS = flags.DEFINE_integer(
    "repeats", 10, "Timed batch-B calls per contender (median).")
_LATENCY_REPEATS = flags.DEFINE_integer(
    "latency_repeats", 40, "Timed batch-1 calls per contender (median).")
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "A training run to export instead of random weights.")

FOUR_OUTPUTS = ("coefficients", "pose", "landmarks_2d", "landmarks_3d")


def write_random_run(model_dir: str, backbone: str, image_size: int,
                     step: int = 1) -> str:
  """A model_dir as training leaves it (model.json + ckpt), random weights."""
  face_model = loaders.load_face_model(None)
  decoder = face_decoder.FaceDecoder(face_model)
  keras.utils.set_random_seed(0)
  model = reconstructor.build_reconstructor(
      decoder.layout.size, backbone=backbone, image_size=image_size,
      head_stddev=1e-2,
      output_scale=reconstructor.coefficient_output_scale(decoder.layout))
  spec = reconstructor.reconstructor_spec(decoder.layout, backbone=backbone,
                                          image_size=image_size)
  reconstructor_lib.save_run(model_dir, {"reconstructor": model},
                             {"reconstructor": spec}, face_model, image_size,
                             step=step)
  return model_dir


def contenders(restored, loaded, images: np.ndarray) -> dict:
  """Three zero-argument callables over the same batch, outputs fetched."""
  size = restored.image_size

  @tf.function(input_signature=[
      tf.TensorSpec([None, size, size, 3], tf.float32)])
  def direct_fn(x):
    coefficients = restored.model(x, training=False)
    face = restored.decoder.decode(coefficients, image_size=size)
    return {"coefficients": coefficients, "pose": face.pose,
            "landmarks_2d": face.landmarks_2d,
            "landmarks_3d": face.landmarks_3d}

  floats = tf.constant(images)
  encoded = tf.constant([
      tf.io.encode_jpeg(tf.image.convert_image_dtype(image, tf.uint8),
                        quality=95).numpy() for image in images])
  predict_images = loaded.signatures["predict_images"]
  serving_default = loaded.signatures["serving_default"]

  def fetch(outputs):
    return [outputs[name].numpy() for name in FOUR_OUTPUTS]

  return {
      "direct (Keras + decode)": lambda: fetch(direct_fn(floats)),
      "SavedModel predict_images": lambda: fetch(predict_images(
          images=floats)),
      "SavedModel serving_default (JPEG)": lambda: fetch(serving_default(
          image_bytes=encoded)),
  }


def main(argv):
  del argv
  size, batch, repeats = _SIZE.value, _BATCH.value, _REPEATS.value
  with tempfile.TemporaryDirectory() as tmp:
    model_dir = _MODEL_DIR.value or write_random_run(
        os.path.join(tmp, "run"), _BACKBONE.value, size)
    export = export_lib.export_saved_model(model_dir,
                                           os.path.join(tmp, "export"))
    restored = reconstructor_lib.Reconstructor.from_run(model_dir)
    loaded = tf.saved_model.load(export.path)
    size = restored.image_size
    rng = np.random.default_rng(0)
    results = {}
    for n in (1, batch):
      images = rng.uniform(0, 1, [n, size, size, 3]).astype(np.float32)
      functions = contenders(restored, loaded, images)
      # The same numbers from both paths before timing them.
      want, got = functions["direct (Keras + decode)"](), functions[
          "SavedModel predict_images"]()
      for a, b in zip(want, got):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
      results[n] = interleaved_median_ms(
          functions, _LATENCY_REPEATS.value if n == 1 else repeats)

  print(f"\n{restored.model_description.backbone} at {size}x{size}, CPU "
        f"({os.cpu_count()} cores), median of {_LATENCY_REPEATS.value} "
        f"(batch 1) / {repeats} (batch {batch}) interleaved calls; "
        f"tensorflow {tf.__version__}\n")
  header = (f"{'path':<36} {'batch 1 ms':>10} {'x direct':>8} "
            f"{f'batch {batch} ms':>12} {'images/s':>9} {'x direct':>8}")
  print(header)
  print("-" * len(header))
  direct = "direct (Keras + decode)"
  for name in results[1]:
    one, many = results[1][name], results[batch][name]
    print(f"{name:<36} {one:>10.1f} {one / results[1][direct]:>8.3f} "
          f"{many:>12.1f} {1000.0 * batch / many:>9.1f} "
          f"{many / results[batch][direct]:>8.3f}")
  print("\ntarget: SavedModel predict_images <= 1.1x the direct call")


if __name__ == "__main__":
  app.run(main)
