"""Shared test fixtures: small meshes and a tiny face model (no files needed)."""

import os
import subprocess
import sys

# Quieter TensorFlow logs in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top


def grid_sheet(rows: int, cols: int, width: float, height: float,
               bulge: float = 0.0):
  """A rows x cols vertex sheet in model space (y up, z to the viewer), mm.

  Returns:
    vertices [rows*cols, 3] float32 and triangles [F, 3] int32,
    counter-clockwise seen from +z.
  """
  u, v = np.meshgrid(np.linspace(-1, 1, cols), np.linspace(1, -1, rows))
  z = bulge * np.clip(1.0 - 0.5 * (u**2 + v**2), 0.0, None)
  vertices = np.stack([0.5 * width * u, 0.5 * height * v, z], -1)
  triangles = []
  for r in range(rows - 1):
    for c in range(cols - 1):
      a, b = r * cols + c, r * cols + c + 1  # b is right of a (x grows)
      d, e = a + cols, b + cols  # d is below a (y decreases)
      # Seen from +z with y up: a -> d -> e and a -> e -> b are CCW.
      triangles += [[a, d, e], [a, e, b]]
  return (vertices.reshape([-1, 3]).astype(np.float32),
          np.array(triangles, np.int32))


def make_tiny_face_model():
  """A FaceModel on a 12 x 12 bulged sheet with small random bases."""
  from mgc_tf.facemodel import face_model  # pylint: disable=g-import-not-at-top
  vertices, triangles = grid_sheet(12, 12, 140.0, 180.0, bulge=40.0)
  v = vertices.shape[0]
  rng = np.random.default_rng(7)
  return face_model.FaceModel.create(
      mean_shape=vertices,
      id_basis=rng.normal(0, 2.0, [v, 3, 5]),
      exp_basis=rng.normal(0, 1.0, [v, 3, 4]),
      mean_albedo=np.full([v, 3], 0.6) + rng.uniform(-0.1, 0.1, [v, 3]),
      albedo_basis=rng.normal(0, 0.02, [v, 3, 3]),
      triangles=triangles,
      landmark_indices=rng.choice(v, 68, replace=False),
      skin_mask=(rng.uniform(size=v) > 0.2).astype(np.float32),
      focal_length=1015.0,
      default_pose=[0.0, 0.0, np.pi, 0.0, 0.0, 1000.0],
      name="tiny-test-model")


@pytest.fixture(scope="session")
def tiny_face_model():
  return make_tiny_face_model()


# Prepended to scripts run by `run_with_two_logical_cpus`: logical devices must
# be configured before TensorFlow initialises, hence a fresh process.
_TWO_CPUS_PREAMBLE = f"""
import sys
sys.path.insert(0, {TESTS_DIR!r})
import tensorflow as tf
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
"""


def run_with_two_logical_cpus(script: str, marker: str) -> str:
  """Runs `script` in a new Python process with the CPU split in two.

  The script may import from tests/ (e.g. `from conftest import grid_sheet`).
  Asserts that it exits 0 and prints `marker`; returns its stdout.
  """
  result = subprocess.run(
      [sys.executable, "-c", _TWO_CPUS_PREAMBLE + script],
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True,
      text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert marker in result.stdout
  return result.stdout


def write_trained_model_dir(model_dir: str, backbone: str = "resnet18",
                            image_size: int = 64, step: int = 7,
                            seed: int = 3) -> str:
  """A model_dir as a training run leaves it: model.json + ckpt-<step>.

  The weights are random (no training) but the head is scaled up so the
  coefficients depend visibly on the image; the face model is the embedded
  synthetic one.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import decoder as face_decoder  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import loaders  # pylint: disable=g-import-not-at-top
  from mgc_tf.inference import reconstructor as reconstructor_lib  # pylint: disable=g-import-not-at-top
  from mgc_tf.models import reconstructor  # pylint: disable=g-import-not-at-top

  face_model = loaders.load_face_model("embedded-synthetic-v1")
  decoder = face_decoder.FaceDecoder(face_model)
  keras.utils.set_random_seed(seed)
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


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory):
  """A resnet18 / 64 px run directory (see write_trained_model_dir)."""
  return write_trained_model_dir(
      str(tmp_path_factory.mktemp("trained_run")))
