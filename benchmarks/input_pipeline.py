"""Input pipeline throughput beside a training step's consumption, in one run.

  python benchmarks/input_pipeline.py [--data_dir=/tmp/mgc_tf_benchmark_data]
      [--synthetic_config=small] [--batch=5] [--views=3] [--size=224]
      [--batches=40] [--repeats=3]

Builds what is missing first (the synthetic multi-view set with `tfds build`,
and a video_folder set from short videos of rendered faces that this script
writes with their landmark files), then measures:
- examples/s of `mgc_tf.data.pipeline.training_dataset` (decode, resize to
  --size, augmentation, batching) on `synthetic_multiview` and on the video set;
- examples/s one training step consumes at the same batch: ResNet50
  forward+backward on batch x views images plus the MGCNet loss
  forward+backward (the optimizer update is left out; it is small).
Target: the pipeline delivers >= 3x what a training step consumes.
"""

import os
import time

from absl import app
from absl import flags
import cv2
import numpy as np
import tensorflow as tf
from timing import median_ms
import workloads

from mgc_tf.data import pipeline
from mgc_tf.data import prepare
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import synthetic
from mgc_tf.render import renderer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_DATA_DIR = flags.DEFINE_string("data_dir", "/tmp/mgc_tf_benchmark_data",
                                "TFDS data dir; missing datasets are built.")
_SYNTHETIC_CONFIG = flags.DEFINE_string("synthetic_config", "small",
                                        "synthetic_multiview config.")
_BATCH = flags.DEFINE_integer("batch", 5, "Samples per batch.")
_VIEWS = flags.DEFINE_integer("views", 3, "Views per sample.")
_SIZE = flags.DEFINE_integer("size", 224, "Training image side, pixels.")
_BATCHES = flags.DEFINE_integer("batches", 40, "Batches timed per dataset.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed training steps (median).")
_NUM_VIDEOS = flags.DEFINE_integer("num_videos", 4, "Videos to write.")
_VIDEO_FRAMES = flags.DEFINE_integer("video_frames", 30, "Frames per video.")


def write_rendered_videos(folder: str, num_videos: int, num_frames: int,
                          size: int = 224) -> None:
  """Writes videos of rendered heads turning left to right, with landmarks.

  Each video `<folder>/person<i>/clip.mp4` has `clip.npy` [T, 68, 2] beside
  it (frame pixels), the per-video landmark file video_folder reads.
  """
  decoder = face_decoder.FaceDecoder(synthetic.embedded_face_model())
  layout = decoder.layout
  yaw_index = layout.slices()["pose"].start + 1
  rng = np.random.default_rng(0)
  for video in range(num_videos):
    coeffs = np.zeros([num_frames, layout.size], np.float32)
    coeffs[:, :layout.id_rank] = rng.normal(0, 0.7, layout.id_rank)
    coeffs[:, yaw_index] = np.deg2rad(np.linspace(-40, 40, num_frames))
    background = tf.fill([num_frames, size, size, 3], 0.3 + 0.1 * video)
    face, out = renderer.render_face(decoder, coeffs, background=background)
    frames = np.clip(out.image.numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)
    directory = os.path.join(folder, f"person{video}")
    os.makedirs(directory, exist_ok=True)
    writer = cv2.VideoWriter(os.path.join(directory, "clip.mp4"),
                             cv2.VideoWriter_fourcc(*"mp4v"), 25.0,
                             (size, size))
    for frame in frames:
      writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    np.save(os.path.join(directory, "clip.npy"),
            face.landmarks_2d.numpy().astype(np.float32))


def pipeline_examples_per_second(name: str, data_dir: str, batch: int,
                                 views: int, size: int, batches: int) -> float:
  config = pipeline.PipelineConfig(num_views=views, image_size=size,
                                   batch_size=batch, data_dir=data_dir)
  dataset = pipeline.training_dataset([pipeline.SourceSpec(name)], config)
  iterator = iter(dataset)
  for _ in range(5):  # warm-up: tracing, file opening, buffers
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * batch / (time.perf_counter() - start)


def main(argv):
  del argv
  data_dir = os.path.expanduser(_DATA_DIR.value)
  b, n, size = _BATCH.value, _VIEWS.value, _SIZE.value
  synthetic_name = f"synthetic_multiview/{_SYNTHETIC_CONFIG.value}"
  prepare.ensure_synthetic(synthetic_name, data_dir)
  if not prepare.is_prepared("video_folder", data_dir):
    manual = os.path.join(data_dir, "manual", "video_folder")
    write_rendered_videos(manual, _NUM_VIDEOS.value, _VIDEO_FRAMES.value)
    prepare.tfds_build(os.path.join(REPO, "tfds_builders", "video_folder"),
                       data_dir, manual_dir=manual)

  rates = {}
  for label, name in ((f"pipeline: {synthetic_name}", synthetic_name),
                      ("pipeline: video_folder (rendered videos)",
                       "video_folder")):
    rates[label] = pipeline_examples_per_second(name, data_dir, b, n, size,
                                                _BATCHES.value)

  decoder = face_decoder.FaceDecoder(synthetic.embedded_face_model())
  backbone_step, loss_step = workloads.training_step_parts(decoder, b, n, size)
  step_ms = (median_ms(backbone_step, _REPEATS.value)
             + median_ms(loss_step, _REPEATS.value))
  step_rate = 1000.0 * b / step_ms

  print(f"\nbatch {b} x {n} views, {size}x{size}, augmentation on, "
        f"{os.cpu_count()} CPU cores; training step = ResNet50 + MGCNet loss "
        f"forward+backward, {step_ms:.0f} ms\n")
  header = f"{'':<48} {'examples/s':>11} {'x step':>8}"
  print(header)
  print("-" * len(header))
  print(f"{'training step consumes':<48} {step_rate:>11.1f} {1.0:>8.2f}")
  for label, rate in rates.items():
    print(f"{label:<48} {rate:>11.1f} {rate / step_rate:>8.2f}")
  print("\ntarget: each pipeline >= 3x what the training step consumes")


if __name__ == "__main__":
  app.run(main)
