"""ICT-FaceKit Light shipped inside the package: `embedded-ict-light-v1`.

A compact copy of what `ict.load_ict_facekit` makes of ICT-FaceKit's
FaceXModel folder (face area and eyeballs, 12,549 vertices, 100 identity
modes, 53 ARKit blendshapes; MIT licence, notice in
`assets/ICT-FaceKit-LICENSE.txt` beside the file), so that a real,
scan-derived shape model needs no download:

- the identity and expression bases are stored as float16: the largest
  rounding error is 0.004 mm for identity and 0.016 mm for expression
  (per unit coefficient), far below a pixel of the 224 crop (~0.5 mm at the
  default distance); the mean shape stays float32;
- the albedo is not stored: it is the embedded synthetic model's albedo
  ("synthetic albedo on real shape", docs/face_models.md), carried at load
  time through the stored nearest-surface map (3 source vertex ids and
  barycentric weights per ICT vertex). The synthetic model's fingerprint is
  stored too, and a mismatch is an error rather than a silently different
  albedo.

`write_embedded_ict` is what `scripts/build_embedded_ict.py` runs to
regenerate the file from the FaceXModel folder; `embedded_ict_face_model`
reads it (cached per process).
"""

import functools
import os
from typing import Optional

import numpy as np

from mgc_tf.facemodel import transfer
from mgc_tf.facemodel.face_model import FaceModel, FaceModelError

MODEL_NAME = "embedded-ict-light-v1"
ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "assets")
ASSET_PATH = os.path.join(ASSETS_DIR, "ict_light_v1.npz")
NOTICE_PATH = os.path.join(ASSETS_DIR, "ICT-FaceKit-LICENSE.txt")
#: Format of the asset file (bumped when its arrays change).
ASSET_FORMAT = 1
_REBUILD = ("python scripts/build_embedded_ict.py "
            "--input=ICT-FaceKit/FaceXModel")


def write_embedded_ict(model: FaceModel, surface_map: transfer.SurfaceMap,
                       albedo_from: FaceModel, path: str = ASSET_PATH) -> None:
  """Writes the compact file of an ICT model.

  Args:
    model: the ICT model (`ict.load_ict_facekit`), whose albedo came from
      `albedo_from` through `surface_map`.
    surface_map: `ict.albedo_surface_map(albedo_from, ...)` of its vertices.
    albedo_from: the model whose albedo is carried (the embedded synthetic
      model): its fingerprint is stored.
    path: the .npz to write.
  """
  arrays = {
      "format": np.int32(ASSET_FORMAT),
      "mean_shape": model.mean_shape.astype(np.float32),
      "id_basis": model.id_basis.astype(np.float16),
      "exp_basis": model.exp_basis.astype(np.float16),
      "triangles": model.triangles.astype(np.int32),
      "landmark_indices": model.landmark_indices.astype(np.int32),
      "skin_mask": model.skin_mask.astype(np.float16),
      "front_mask": model.front_mask.astype(bool),
      "default_pose": model.default_pose.astype(np.float32),
      "focal_length": np.float64(model.focal_length),
      "image_size": np.int32(model.image_size),
      "expression_kind": np.array(model.expression_kind),
      "expression_names": np.array(model.expression_names, dtype=str),
      "source_name": np.array(model.name),
      "albedo_vertex_ids": surface_map.vertex_ids.astype(np.int32),
      "albedo_weights": surface_map.weights.astype(np.float32),
      "albedo_source_fingerprint": np.array(albedo_from.fingerprint()),
  }
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    np.savez_compressed(f, **arrays)


def read_embedded_ict(path: str = ASSET_PATH,
                      albedo_from: Optional[FaceModel] = None) -> FaceModel:
  """Reads a file of `write_embedded_ict` into a `FaceModel`.

  Args:
    path: the .npz.
    albedo_from: the albedo source; default the embedded synthetic model.

  Raises:
    FaceModelError: the file is missing or unreadable, or the albedo
      source is not the model the file was made with.
  """
  if not os.path.exists(path):
    raise FaceModelError(f"{path}: the embedded ICT-FaceKit model is missing "
                         f"from this installation; rebuild it with "
                         f"`{_REBUILD}` or reinstall mgc_tf.")
  try:
    # A file object, not a path: TFDS's builder tests only allow np.load
    # on file objects.
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except Exception as e:  # zipfile errors carry no path.
    raise FaceModelError(f"Cannot read {path}: {e}. Rebuild it with "
                         f"`{_REBUILD}`.") from e
  if int(arrays.get("format", -1)) != ASSET_FORMAT:
    raise FaceModelError(f"{path} has format {arrays.get('format')}, this "
                         f"mgc_tf reads {ASSET_FORMAT}; rebuild it with "
                         f"`{_REBUILD}`.")
  if albedo_from is None:
    # Imported here: the synthetic model is only needed for the albedo.
    from mgc_tf.facemodel import synthetic  # pylint: disable=g-import-not-at-top
    albedo_from = synthetic.embedded_face_model()
  expected = str(arrays["albedo_source_fingerprint"])
  if albedo_from.fingerprint() != expected:
    raise FaceModelError(
        f"{path} carries the albedo of a face model with fingerprint "
        f"{expected}, but {albedo_from.name} has {albedo_from.fingerprint()} "
        f"(the synthetic model changed); rebuild it with `{_REBUILD}`.")
  vertex_ids = arrays["albedo_vertex_ids"].astype(np.int64)
  weights = arrays["albedo_weights"].astype(np.float64)
  return FaceModel.create(
      mean_shape=arrays["mean_shape"],
      id_basis=arrays["id_basis"].astype(np.float32),
      exp_basis=arrays["exp_basis"].astype(np.float32),
      mean_albedo=transfer.interpolate(albedo_from.mean_albedo, vertex_ids,
                                       weights),
      albedo_basis=transfer.interpolate(albedo_from.albedo_basis, vertex_ids,
                                        weights),
      triangles=arrays["triangles"],
      landmark_indices=arrays["landmark_indices"],
      skin_mask=arrays["skin_mask"].astype(np.float32),
      front_mask=arrays["front_mask"],
      default_pose=arrays["default_pose"],
      focal_length=float(arrays["focal_length"]),
      image_size=int(arrays["image_size"]),
      name=f"{MODEL_NAME}: {arrays['source_name']}",
      expression_kind=str(arrays["expression_kind"]),
      expression_names=tuple(str(n) for n in arrays["expression_names"]))


@functools.lru_cache(maxsize=1)
def embedded_ict_face_model() -> FaceModel:
  """The packaged ICT-FaceKit Light model, read once per process."""
  return read_embedded_ict(ASSET_PATH)
