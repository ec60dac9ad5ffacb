"""`embedded_face_model()`: the synthetic `FaceModel`, built once a process."""

import functools

import numpy as np

from mgc_tf.facemodel.face_model import FaceModel
from mgc_tf.facemodel.synthetic.bases import (build_albedo_basis,
                                              build_expression_basis,
                                              build_identity_basis)
from mgc_tf.facemodel.synthetic.features import (build_mean_albedo,
                                                 build_skin_mask)
from mgc_tf.facemodel.synthetic.landmarks import (find_landmark_indices,
                                                  template_pose)
from mgc_tf.facemodel.synthetic.params import (AXIS_Y, EYE_LINE_Y, FOCAL_LENGTH,
                                               IMAGE_SIZE, MODEL_NAME,
                                               RANDOM_SEED)
from mgc_tf.facemodel.synthetic.sheet import Sheet


def _quantise(array, step):
  """float32 `array` rounded to multiples of `step`.

  Last-bit differences between BLAS/libm builds then (almost surely) do not
  reach the stored values, so the model is the same on every machine.
  """
  return (np.round(np.asarray(array, np.float64) / step) *
          step).astype(np.float32)


@functools.lru_cache(maxsize=1)


def embedded_face_model() -> FaceModel:
  """The embedded synthetic face model, built once per process and cached.

  Returns:
    A `FaceModel` named "embedded-synthetic-v1": 11,615 vertices, 22,800
    triangles, the BFM ranks (identity 80, expression 64, albedo 80), the
    68 iBUG landmarks, a skin mask, focal length 1015 px for the 224 crop
    and a default pose that puts the mean face on the 224 alignment
    template. The object is shared, so its arrays are read-only.
  """
  sheet = Sheet()
  rng = np.random.RandomState(RANDOM_SEED)
  id_basis = build_identity_basis(sheet, rng)
  exp_basis = build_expression_basis(sheet, rng)
  skin_mask = build_skin_mask(sheet.masks)
  albedo_basis = build_albedo_basis(sheet, skin_mask, rng)
  landmarks = find_landmark_indices(sheet)
  points = sheet.points + EYE_LINE_Y * AXIS_Y
  pose = template_pose(points, landmarks)
  pose[3:] = _quantise(pose[3:], 1e-4)
  model = FaceModel.create(
      mean_shape=_quantise(points, 1e-4),
      id_basis=_quantise(id_basis, 1e-5),
      exp_basis=_quantise(exp_basis, 1e-5),
      mean_albedo=_quantise(
          build_mean_albedo(sheet.u, sheet.v, sheet.masks), 1e-5),
      albedo_basis=_quantise(albedo_basis, 1e-6),
      triangles=sheet.triangles,
      landmark_indices=landmarks,
      skin_mask=_quantise(skin_mask, 1e-5),
      front_mask=np.ones([points.shape[0]], bool),
      default_pose=pose,
      focal_length=FOCAL_LENGTH,
      image_size=IMAGE_SIZE,
      name=MODEL_NAME)
  for field in ("mean_shape", "id_basis", "exp_basis", "mean_albedo",
                "albedo_basis", "triangles", "landmark_indices", "skin_mask",
                "front_mask", "vertex_triangles", "default_pose"):
    getattr(model, field).flags.writeable = False
  return model
