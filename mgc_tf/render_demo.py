"""Renders faces with random coefficients at yaw -60, 0, +60 degrees to a PNG grid.

  python -m mgc_tf.render_demo --output=render_demo.png [--num_faces=3]
      [--seed=0] [--face_model=PATH] [--size=224]
      [--rasterizer=auto|kernel|xla]

Rows are random faces (identity, expression, albedo, lighting drawn from the
model's prior; a blendshape model gets a few shapes per face), columns the
yaw angles. Without --face_model the default, the packaged ICT-FaceKit Light,
is used; `--face_model=embedded-synthetic-v1` renders the synthetic model.
"""

from mgc_tf import _quiet  # pylint: disable=g-bad-import-order
_quiet.quiet_start()  # before anything imports TensorFlow

import os
import sys
from typing import Sequence

from absl import app
from absl import flags

from mgc_tf import _flags
import numpy as np

_OUTPUT = flags.DEFINE_string("output", "render_demo.png", "PNG to write.")
_NUM_FACES = flags.DEFINE_integer("num_faces", 3, "Random faces (rows).")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed of the coefficients.")
_FACE_MODEL = flags.DEFINE_string(
    "face_model", None,
    "Face model file (.npz, Deep3D .mat, MGCNet .h5), or a packaged model's "
    "name (embedded-ict-light-v1, the default; embedded-synthetic-v1).")
_YAWS = flags.DEFINE_list("yaw_degrees", ["-60", "0", "60"],
                          "Yaw angles (columns), degrees.")
_SIZE = flags.DEFINE_integer("size", 224, "Output tile side, pixels.")
_RASTERIZER = flags.DEFINE_string(
    "rasterizer", "auto", "Rasterizer backend: auto, kernel (C++, built on "
    "first use) or xla (core TF ops, no compiler needed).")


def random_coefficients(layout, num_faces: int, seed: int,
                        id_scale: float = 1.0, exp_scale: float = 0.7,
                        albedo_scale: float = 0.7,
                        light_scale: float = 0.15,
                        blendshape: bool = False,
                        blendshapes_per_face: int = 3) -> np.ndarray:
  """[num_faces, K] coefficients drawn from the prior, frontal default pose.

  PCA expressions are drawn like identity, N(0, exp_scale^2) per mode;
  blendshape weights (`blendshape`, meant for [0, 1]) as an expression an
  animator would set: `blendshapes_per_face` random shapes at weights
  uniform in [0.3, 0.8], the others 0.
  """
  from mgc_tf.facemodel import expressions  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  coeffs = np.zeros([num_faces, layout.size], np.float32)
  s = layout.slices()
  coeffs[:, s["identity"]] = id_scale * rng.standard_normal(
      [num_faces, layout.id_rank])
  if blendshape:
    coeffs[:, s["expression"]] = [
        expressions.random_blendshape_weights(rng, layout.exp_rank,
                                              blendshapes_per_face)
        for _ in range(num_faces)]
  else:
    coeffs[:, s["expression"]] = exp_scale * rng.standard_normal(
        [num_faces, layout.exp_rank])
  coeffs[:, s["albedo"]] = albedo_scale * rng.standard_normal(
      [num_faces, layout.albedo_rank])
  # White light from a random direction (bands 1-3) with mild higher-order
  # variation, and a small colour tint in the ambient band.
  light = np.zeros([num_faces, 3, 9])
  light[:, :, 0] = rng.uniform(0.2, 0.4, [num_faces, 1]) + rng.uniform(
      -0.03, 0.03, [num_faces, 3])
  light[:, :, 1:4] = light_scale * rng.standard_normal([num_faces, 1, 3])
  light[:, :, 4:] = 0.3 * light_scale * rng.standard_normal([num_faces, 1, 5])
  coeffs[:, s["lighting"]] = light.reshape([num_faces, 27])
  return coeffs


def background(size: int, count: int) -> np.ndarray:
  """[count, size, size, 3] soft vertical gradient (not black, to see edges)."""
  ramp = np.linspace(0.35, 0.6, size, dtype=np.float32)[:, None, None]
  tile = np.broadcast_to(ramp * [0.8, 0.85, 1.0], [size, size, 3])
  return np.tile(tile[None], [count, 1, 1, 1]).astype(np.float32)


def render_grid(face_model, yaws_degrees: Sequence[float], num_faces: int,
                seed: int, size: int, rasterizer: str = "auto") -> np.ndarray:
  """[rows * size, cols * size, 3] uint8 grid of renders.

  `rasterizer` is the visibility backend (`mgc_tf.render.rasterizer.Backend`).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import decoder as face_decoder  # pylint: disable=g-import-not-at-top
  from mgc_tf.render import renderer  # pylint: disable=g-import-not-at-top

  decoder = face_decoder.FaceDecoder(face_model)
  layout = decoder.layout
  base = random_coefficients(layout, num_faces, seed,
                             blendshape=face_model.is_blendshape)
  rows = []
  for yaw in yaws_degrees:
    coeffs = base.copy()
    coeffs[:, layout.slices()["pose"].start + 1] = np.deg2rad(yaw)  # ry
    _, out = renderer.render_face(decoder, tf.constant(coeffs),
                                  background=tf.constant(background(
                                      decoder.image_size, num_faces)),
                                  backend=rasterizer)
    image = tf.image.resize(out.image, [size, size], antialias=True)
    rows.append(np.clip(image.numpy(), 0.0, 1.0))
  grid = np.stack(rows, axis=1)  # [faces, yaws, H, W, 3]
  grid = grid.transpose([0, 2, 1, 3, 4]).reshape(
      [num_faces * size, len(yaws_degrees) * size, 3])
  return (255.0 * grid + 0.5).astype(np.uint8)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import loaders  # pylint: disable=g-import-not-at-top

  try:
    yaws = [float(y) for y in _YAWS.value]
  except ValueError:
    raise app.UsageError(
        f"--yaw_degrees must be numbers, got {_YAWS.value}") from None
  from mgc_tf.render import rasterizer  # pylint: disable=g-import-not-at-top
  try:
    backend = rasterizer.parse_backend(_RASTERIZER.value)
  except ValueError as e:
    print(f"error: --rasterizer: {e}", file=sys.stderr)
    return 2
  try:
    face_model = loaders.load_face_model(_FACE_MODEL.value)
  except loaders.FaceModelError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"Rendering {_NUM_FACES.value} random faces of '{face_model.name}' "
        f"({face_model.num_vertices} vertices) at yaw {yaws} degrees...")
  grid = render_grid(face_model, yaws, _NUM_FACES.value, _SEED.value,
                     _SIZE.value, rasterizer=backend)
  out_dir = os.path.dirname(os.path.abspath(_OUTPUT.value))
  os.makedirs(out_dir, exist_ok=True)
  Image.fromarray(grid).save(_OUTPUT.value)
  print(f"Wrote {_OUTPUT.value} ({grid.shape[1]}x{grid.shape[0]} px): rows are "
        "faces, columns yaw angles.")
  return 0


def run():
  _flags.run(main)


if __name__ == "__main__":
  run()
