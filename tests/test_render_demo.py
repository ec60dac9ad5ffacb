"""The render demo writes a grid PNG of recognisable, non-empty renders."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from mgc_tf import render_demo

# Both tests run the demo CLI in a subprocess.
pytestmark = pytest.mark.slow


def test_render_demo_writes_a_grid(tmp_path):
  output = tmp_path / "grid.png"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run(
      [sys.executable, "-m", "mgc_tf.render_demo", f"--output={output}",
       "--num_faces=2", "--size=96", "--yaw_degrees=-60,0,60"],
      env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  image = np.asarray(Image.open(output))
  assert image.shape == (2 * 96, 3 * 96, 3)
  # Each tile shows a face: a good part of it differs from the background,
  # and the corners (outside the face) do not.
  background = 255.0 * render_demo.background(96, 1)[0]
  for r in range(2):
    for c in range(3):
      tile = image[r * 96:(r + 1) * 96, c * 96:(c + 1) * 96].astype(float)
      differs = np.abs(tile - background).sum(-1) > 30
      assert 0.3 < differs.mean() < 0.95, (r, c, differs.mean())
      assert not differs[:4, :4].any() and not differs[:4, -4:].any()
  # The frontal face is left/right balanced; yawed ones are not mirror images
  # of the frontal one.
  assert not np.allclose(image[:96, :96], image[:96, 96:192], atol=10)


def test_render_demo_reports_a_missing_face_model(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "mgc_tf.render_demo",
       f"--output={tmp_path / 'x.png'}", f"--face_model={tmp_path}/none.npz"],
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 1
  assert "none.npz" in result.stderr
  assert not (tmp_path / "x.png").exists()


def test_render_demo_grid_is_the_same_with_either_rasterizer():
  from mgc_tf.facemodel import loaders  # pylint: disable=g-import-not-at-top
  face_model = loaders.load_face_model(None)
  grids = [render_demo.render_grid(face_model, [-60.0, 30.0], 1, 0, 64,
                                   rasterizer=backend)
           for backend in ("kernel", "xla")]
  np.testing.assert_array_equal(grids[0], grids[1])


def test_render_demo_bad_rasterizer_is_one_line_exit_2(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "mgc_tf.render_demo",
       f"--output={tmp_path / 'x.png'}", "--rasterizer=opengl"],
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 2
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines == ["error: --rasterizer: Unknown rasterizer backend 'opengl'; "
                   "choose one of auto, kernel, xla."], result.stderr
  assert not (tmp_path / "x.png").exists()
