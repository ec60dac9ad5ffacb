"""Writes the docs figure of the procedural occluders (mgc_tf.data.occluders).

  python scripts/occluder_figure.py [--output=docs/images/occluders.png]
      [--size=160] [--seed=0]

The face is scikit-image's astronaut photograph, aligned to the crop template
from dlib's 68 landmarks (the `preprocess` extra). Without dlib it is a grey
stand-in with the embedded face model's frontal landmarks as dots. Rows: each
kind alone; random sets from `sample_occluders` (the first seeds from --seed
on that give two kinds or more, captioned with `describe`); their alpha.
"""

import os

from absl import app
from absl import flags
import cv2
import numpy as np

from mgc_tf.data import occluders
from mgc_tf.io import images

_OUTPUT = flags.DEFINE_string(
    "output", os.path.normpath(os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "docs", "images",
        "occluders.png")), "PNG to write.")
_SIZE = flags.DEFINE_integer("size", 160, "Side of each tile, pixels.")
_SEED = flags.DEFINE_integer("seed", 0, "First seed of the random sets.")


def _face(size: int):
  """([S, S, 3] uint8 face crop, [68, 2] landmarks, where they came from)."""
  # pylint: disable=g-import-not-at-top
  try:
    import skimage.data
    from mgc_tf.faces2d import preprocessing
    face = preprocessing.preprocess_face(skimage.data.astronaut(),
                                         image_size=size)
    return face.image, face.landmarks, "astronaut, dlib landmarks"
  except ImportError as error:  # PreprocessDependencyError is one too
    print(f"No dlib/scikit-image ({error}); using a grey stand-in.")
  from mgc_tf.facemodel.synthetic import embedded_face_model
  model = embedded_face_model()
  points = np.asarray(model.mean_shape, np.float64)[model.landmark_indices]
  camera = points * [1, -1, -1] + model.default_pose[3:]  # Rx(pi), then t
  landmarks = model.focal_length * camera[:, :2] / camera[:, 2:] + (
      0.5 * model.image_size)
  landmarks = (landmarks + 0.5) * size / model.image_size - 0.5
  image = np.full([size, size, 3], 150, np.uint8)
  for x, y in landmarks:
    cv2.circle(image, (int(round(x)), int(round(y))), 1, (60, 60, 60), -1)
  return image, landmarks, "stand-in, template landmarks"


def _caption(tile: np.ndarray, text: str) -> np.ndarray:
  tile = tile.copy()
  for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
    cv2.putText(tile, text, (4, tile.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX,
                0.4, colour, width, cv2.LINE_AA)
  return tile


def main(_):
  size = _SIZE.value
  image, landmarks, source = _face(size)
  print(f"Face: {source}.")
  alone = [[occluders.sample_occluder(kind, np.random.default_rng(i))]
           for i, kind in enumerate(occluders.KINDS)]
  sets, seed = [], _SEED.value
  while len(sets) < len(occluders.KINDS):
    drawn = occluders.sample_occluders(np.random.default_rng(seed))
    seed += 1
    if len(drawn) >= 2:
      sets.append(drawn)
  rows = [[], [], []]
  for row, groups in ((0, alone), (1, sets)):
    for group in groups:
      rgb, alpha = occluders.draw_occluders(group, landmarks, size)
      rows[row].append(_caption(occluders.composite(image, rgb, alpha),
                                occluders.describe(group)))
      if row == 1:
        grey = np.round(alpha * 255).astype(np.uint8)
        rows[2].append(_caption(np.repeat(grey[..., None], 3, -1), "alpha"))
  grid = np.concatenate([np.concatenate(r, 1) for r in rows], 0)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  images.write_png(_OUTPUT.value, grid)
  print(f"Wrote {_OUTPUT.value} ({grid.shape[1]}x{grid.shape[0]}).")


if __name__ == "__main__":
  app.run(main)
