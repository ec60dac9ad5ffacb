"""Writes the docs figure of the synthetic multi-view dataset.

  python tfds_builders/synthetic_multiview/make_figure.py \
      [--output=docs/images/synthetic_multiview.png] [--size=128]

Rows are examples (test indices 0, 1, 2: one per |yaw| bin, then train index
0), drawn exactly as the builder draws them. Columns: source view 0, the
target view 1, source view 2, the target with its 68 ground-truth landmarks,
and the target's ground-truth depth (near = bright).
"""

import os

from absl import app
from absl import flags
import numpy as np

_OUTPUT = flags.DEFINE_string(
    "output",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                 "docs", "images", "synthetic_multiview.png"),
    "PNG to write.")
_SIZE = flags.DEFINE_integer("size", 128, "Crop side of each tile, pixels.")

ROWS = (("test", 0), ("test", 1), ("test", 2), ("train", 0))


def _with_landmarks(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
  import cv2  # pylint: disable=g-import-not-at-top
  out = image.copy()
  for x, y in landmarks:
    cv2.circle(out, (int(round(x)), int(round(y))), 1, (80, 255, 80), -1)
  return out


def _depth_tile(depth: np.ndarray) -> np.ndarray:
  import cv2  # pylint: disable=g-import-not-at-top
  face = depth > 0
  near, far = depth[face].min(), depth[face].max()
  level = np.zeros(depth.shape, np.uint8)
  level[face] = np.round(255.0 * (far - depth[face]) / max(far - near, 1e-6))
  tile = cv2.applyColorMap(level, cv2.COLORMAP_VIRIDIS)[..., ::-1]
  tile[~face] = 0
  return tile


def _label(tile: np.ndarray, text: str) -> np.ndarray:
  import cv2  # pylint: disable=g-import-not-at-top
  out = tile.copy()
  for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
    cv2.putText(out, text, (3, out.shape[0] - 5), cv2.FONT_HERSHEY_SIMPLEX,
                0.35, colour, thickness, cv2.LINE_AA)
  return out


def figure(size: int) -> np.ndarray:
  """[rows * size, 5 * size, 3] uint8 grid (see the module docstring)."""
  import synthetic_scenes  # pylint: disable=g-import-not-at-top  # beside this script
  from mgc_tf.facemodel import synthetic  # pylint: disable=g-import-not-at-top
  face_model = synthetic.embedded_face_model()
  renderer = synthetic_scenes.SceneRenderer(face_model, size)
  rows = []
  for split, index in ROWS:
    (_, example), = synthetic_scenes.generate_examples(
        split, 1, size, face_model=face_model, renderer=renderer, start=index)
    target = synthetic_scenes.TARGET_VIEW
    views = [_label(image, f"yaw {yaw:+.0f}")
             for image, yaw in zip(example["images"], example["yaw_degrees"])]
    tiles = views + [
        _with_landmarks(example["images"][target],
                        example["landmarks"][target]),
        _depth_tile(example["depth"][target])]
    rows.append(np.concatenate(tiles, axis=1))
  return np.concatenate(rows, axis=0)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from PIL import Image  # pylint: disable=g-import-not-at-top
  grid = figure(_SIZE.value)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  Image.fromarray(grid).save(_OUTPUT.value, optimize=True)
  print(f"Wrote {os.path.normpath(_OUTPUT.value)} "
        f"({grid.shape[1]}x{grid.shape[0]} px)")


if __name__ == "__main__":
  app.run(main)
