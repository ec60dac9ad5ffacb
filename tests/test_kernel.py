"""The rasterizer kernel builds itself, once, into a keyed cache, with clear errors."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from conftest import run_with_two_logical_cpus
from mgc_tf.render import kernel

BUILD_SCRIPT = """
import sys
from mgc_tf.render import kernel
path = kernel.build_kernel()
kernel.load_rasterizer_module(path)
print("PATH=" + path)
"""


@pytest.mark.slow
def test_concurrent_first_use_builds_once_into_a_keyed_cache(tmp_path):
  env = dict(os.environ, MGC_TF_KERNEL_CACHE=str(tmp_path),
             TF_CPP_MIN_LOG_LEVEL="3")
  procs = [subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for _ in range(2)]
  outputs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err
  paths = {line[5:] for out, _ in outputs for line in out.splitlines()
           if line.startswith("PATH=")}
  assert len(paths) == 1
  path = paths.pop()
  assert os.path.exists(path) and path.startswith(str(tmp_path))
  assert f"tf{tf.__version__}-" in path
  compiles = sum(err.count("compiling the rasterizer kernel")
                 for _, err in outputs)
  assert compiles == 1, [err for _, err in outputs]
  # No temporary files left beside the library.
  leftovers = [f for f in os.listdir(os.path.dirname(path))
               if f.endswith(".so") and f != kernel.LIBRARY_NAME]
  assert not leftovers


@pytest.mark.slow
def test_ahead_of_time_command_prints_the_library_path(tmp_path):
  env = dict(os.environ, MGC_TF_KERNEL_CACHE=str(tmp_path),
             TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, "-m", "mgc_tf.build_kernel"],
                          env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  path = result.stdout.strip().splitlines()[-1]
  assert path.endswith(kernel.LIBRARY_NAME) and os.path.exists(path)


def test_missing_compiler_gives_one_clear_error(tmp_path, monkeypatch):
  monkeypatch.setenv(kernel.CACHE_ENV_VAR, str(tmp_path))
  monkeypatch.setattr(kernel.shutil, "which", lambda name: None)
  with pytest.raises(kernel.KernelBuildError, match="No C\\+\\+ compiler") as e:
    kernel.build_kernel()
  assert "apt-get install g++" in str(e.value)
  assert "mgc_tf.build_kernel" in str(e.value)


def test_failed_compilation_reports_the_command_and_the_fix(tmp_path,
                                                            monkeypatch):
  monkeypatch.setenv(kernel.CACHE_ENV_VAR, str(tmp_path))
  real = kernel.build_command
  monkeypatch.setattr(
      kernel, "build_command",
      lambda *args: real(*args) + ["-include", "no_such_header_mgc.h"])
  with pytest.raises(kernel.KernelBuildError, match="failed") as e:
    kernel.build_kernel()
  message = str(e.value)
  assert "no_such_header_mgc.h" in message  # compiler output is shown
  assert "install" in message
  out_dir = os.path.dirname(kernel.library_path())
  assert not [f for f in os.listdir(out_dir) if f.endswith(".so")]


def test_the_prebuilt_wheel_library_is_never_loaded():
  from mgc_tf.render import rasterizer  # pylint: disable=g-import-not-at-top
  rasterizer.rasterize(tf.constant([[[0., 0., 10.], [1., 0., 10.],
                                     [0., 1., 10.]]]), [[0, 2, 1]],
                       tf.eye(3)[None] * [[[10.], [10.], [1.]]], (8, 8))
  with open("/proc/self/maps") as f:
    maps = f.read()
  wheel_library = os.path.join(kernel.kernel_source_dir(), "rasterizer_op.so")
  assert wheel_library not in maps
  assert kernel.library_path() in maps


MIRRORED_SCRIPT = """
import numpy as np
from conftest import grid_sheet
from mgc_tf.render import renderer

vertices, triangles = grid_sheet(8, 8, 60.0, 60.0, bulge=20.0)
cam = (vertices * [1, -1, -1] + [0, 0, 150]).astype(np.float32)
batch = np.stack([cam, cam + [5.0, 0.0, 0.0]]).astype(np.float32)
colors = np.random.default_rng(0).uniform(size=batch.shape).astype(np.float32)
k = np.tile(np.array([[[60., 0, 16], [0, 60., 16], [0, 0, 1]]], np.float32),
            [2, 1, 1])
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
dataset = tf.data.Dataset.from_tensor_slices((batch, colors, k)).batch(2)
dist = iter(strategy.experimental_distribute_dataset(dataset))

@tf.function
def step(inputs):
  def replica_fn(v, c, kk):
    with tf.GradientTape() as tape:
      tape.watch(v)
      out = renderer.render_mesh(v, c, triangles, kk, (32, 32))
      loss = tf.reduce_sum(out.image)
    return out.image, tape.gradient(loss, v)
  return strategy.run(replica_fn, args=inputs)

images, grads = step(next(dist))
images = tf.concat(strategy.experimental_local_results(images), 0)
grads = tf.concat(strategy.experimental_local_results(grads), 0)
reference = renderer.render_mesh(batch, colors, triangles, k, (32, 32)).image
np.testing.assert_allclose(images, reference, atol=1e-5)
assert float(tf.reduce_sum(tf.abs(grads))) > 0
print("MIRRORED_OK", float(tf.reduce_sum(images)))
"""


@pytest.mark.slow
def test_renders_under_mirrored_strategy_with_two_logical_cpus():
  run_with_two_logical_cpus(MIRRORED_SCRIPT, "MIRRORED_OK")
