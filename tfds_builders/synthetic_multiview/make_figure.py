"""Writes the docs figure of the synthetic multi-view dataset.

  python tfds_builders/synthetic_multiview/make_figure.py \
      [--output=docs/images/synthetic_multiview.png] [--size=128]
  python tfds_builders/synthetic_multiview/make_figure.py --recipe=v2 \
      --output=docs/images/synthetic_multiview_v2.png

Rows are examples (test indices 0, 1, 2: one per |yaw| bin, then train index
0; for v2 test indices 0-5), drawn exactly as the builder draws them.
Columns: source view 0, the target view 1, source view 2, the target with
its 68 ground-truth landmarks (v2: exact in green, detected in red, with the
status), and the target's ground-truth depth (near = bright; v2: 0 where
occluders hide the face).
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
_RECIPE = flags.DEFINE_enum("recipe", "v1", ["v1", "v2"],
                            "Dataset version: v1 (1.0.0) or v2 (2.0.0).")

ROWS = {"v1": (("test", 0), ("test", 1), ("test", 2), ("train", 0)),
        "v2": tuple(("test", index) for index in range(6))}
STATUS_NAMES = ("detected", "drifted", "not found", "modelled")


def _with_landmarks(image: np.ndarray, landmarks: np.ndarray,
                    colour=(80, 255, 80), out=None) -> np.ndarray:
  import cv2  # pylint: disable=g-import-not-at-top
  out = image.copy() if out is None else out
  for x, y in landmarks:
    cv2.circle(out, (int(round(x)), int(round(y))), 1, colour, -1)
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


def figure(size: int, recipe_name: str = "v1") -> np.ndarray:
  """[rows * size, 5 * size, 3] uint8 grid (see the module docstring)."""
  import synthetic_scenes  # pylint: disable=g-import-not-at-top  # beside this script
  from mgc_tf.faces2d import detected_landmarks  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import synthetic  # pylint: disable=g-import-not-at-top
  face_model = synthetic.embedded_face_model()
  renderer = synthetic_scenes.SceneRenderer(face_model, size)
  recipe = synthetic_scenes.RECIPES[recipe_name]
  source = (detected_landmarks.landmark_source()
            if recipe.detected_landmarks else None)
  rows = []
  for split, index in ROWS[recipe_name]:
    (_, example), = synthetic_scenes.generate_examples(
        split, 1, size, face_model=face_model, renderer=renderer, start=index,
        recipe=recipe, landmark_source=source)
    target = synthetic_scenes.TARGET_VIEW
    views = [_label(image, f"yaw {yaw:+.0f}")
             for image, yaw in zip(example["images"], example["yaw_degrees"])]
    if recipe.detected_landmarks:
      marked = _with_landmarks(
          example["images"][target], example["landmarks"][target],
          (255, 60, 60),
          _with_landmarks(example["images"][target],
                          example["landmarks_true"][target]))
      marked = _label(marked, STATUS_NAMES[
          example["landmark_status"][target]])
    else:
      marked = _with_landmarks(example["images"][target],
                               example["landmarks"][target])
    tiles = views + [marked, _depth_tile(example["depth"][target])]
    rows.append(np.concatenate(tiles, axis=1))
  return np.concatenate(rows, axis=0)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from PIL import Image  # pylint: disable=g-import-not-at-top
  grid = figure(_SIZE.value, _RECIPE.value)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  Image.fromarray(grid).save(_OUTPUT.value, optimize=True)
  print(f"Wrote {os.path.normpath(_OUTPUT.value)} "
        f"({grid.shape[1]}x{grid.shape[0]} px)")


if __name__ == "__main__":
  app.run(main)
