"""Training with the xla rasterizer: same loss as the kernel, an MGCNet step
compiled with XLA, and no C++ compiler needed (train + export without one).

Runs on synthetic_multiview/tiny at 64 px with the ResNet18-style backbone.
"""

import os
import subprocess
import sys

import pytest

from mgc_tf import methods
from mgc_tf.data import prepare

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "synthetic_multiview/tiny"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("tfds"))
  prepare.ensure_synthetic(TINY, directory)
  return directory


def _trainer(tmp_path, data_dir, name, **overrides):
  from mgc_tf.training import config as config_lib  # pylint: disable=g-import-not-at-top
  from mgc_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.TrainConfig(
      model_dir=str(tmp_path / name), dataset=TINY, data_dir=data_dir,
      eval_dataset="", build_data_if_missing=False, backbone="resnet18",
      image_size=64, batch_size=2, num_views=3, max_steps=2, augment=False,
      deterministic=True, shuffle_buffer=1, image_summary_every=0,
      method_config=methods.get("mgcnet").config_class(), **overrides)
  return trainer_lib.Trainer(config.validate(), methods.get("mgcnet"))


def test_compiled_xla_step_matches_the_kernel_step(data_dir, tmp_path):
  from mgc_tf.render import rasterizer  # pylint: disable=g-import-not-at-top
  try:
    totals = {}
    batch = None
    for name, overrides in (
        ("kernel", dict(rasterizer="kernel")),
        ("xla", dict(rasterizer="xla")),
        ("xla_jit", dict(rasterizer="xla", jit_compile=True))):
      trainer = _trainer(tmp_path, data_dir, name, **overrides)
      if batch is None:
        batch = next(iter(trainer.distributed_dataset(start_step=0)))
      out = trainer._train_step_of(0)(batch)  # pylint: disable=protected-access
      assert bool(out["applied"])
      totals[name] = float(out["total"])
  finally:
    rasterizer.set_default_backend("auto")
  # Same seed, same first batch: the same pixels give the same loss.
  assert totals["xla"] == pytest.approx(totals["kernel"], rel=1e-6)
  assert totals["xla_jit"] == pytest.approx(totals["xla"], rel=1e-4), totals


def test_jit_compile_with_the_kernel_is_a_config_error(tmp_path, data_dir):
  with pytest.raises(ValueError, match="--jit_compile needs"):
    _trainer(tmp_path, data_dir, "bad", rasterizer="kernel", jit_compile=True)


def test_without_a_compiler_xla_trains_and_exports(data_dir, tmp_path):
  # No compiler on PATH and an empty kernel cache: building the kernel
  # would fail, so the run shows that --rasterizer=xla never builds it.
  empty_bin = tmp_path / "bin"
  empty_bin.mkdir()
  cache = tmp_path / "kernel_cache"
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2",
             PATH=str(empty_bin), MGC_TF_KERNEL_CACHE=str(cache))
  env.pop("CXX", None)
  export_dir = tmp_path / "export"
  command = [sys.executable, "-m", "mgc_tf.train",
             f"--model_dir={tmp_path / 'run'}", f"--data_dir={data_dir}",
             "--dataset=" + TINY, "--eval_dataset=", "--backbone=resnet18",
             "--image_size=64", "--batch_size=2", "--max_steps=2",
             "--shuffle_buffer=1", "--image_summary_every=0",
             "--build_data_if_missing=false", "--rasterizer=xla",
             f"--export_dir={export_dir}"]
  result = subprocess.run(command, capture_output=True, text=True,
                          timeout=900, env=env, cwd=REPO)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert "compiling the rasterizer kernel" not in result.stderr
  built = [name for _, _, files in os.walk(cache) for name in files
           if name.endswith(".so")]
  assert not built
  exported = [os.path.join(folder, name)
              for folder, _, files in os.walk(export_dir) for name in files]
  assert any(path.endswith("saved_model.pb") for path in exported), exported
  # The same environment with the kernel fails, saying why.
  kernel_run = subprocess.run(
      [sys.executable, "-c",
       "from mgc_tf.render import kernel; kernel.build_kernel()"],
      capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
  assert kernel_run.returncode != 0
  assert "No C++ compiler" in kernel_run.stderr
