"""The MGCNet objective on a fixed batch equals values recorded before the re-seam.

`tests/golden/mgcnet_objective.json` was written by this file's `record()` on
the code before the method layer existed (commit d472512: `Trainer` calling
the reconstructor and `MGCLoss` directly). The test recomputes the same
forward pass, loss and gradients through today's code and compares: the
total, every named term, the global gradient norm and each variable's
gradient norm. Regenerate only for a change that is meant to alter the loss:
`python tests/test_mgcnet_golden.py --record`.

Re-recorded once, 2026-12-04, when `rasterizer.interpolate` went from an
einsum to a product and sum (the fit-speed work of issue 15): the same
maths in another summation order. Against the values of before, checked
first: the depth term moved by 2.6e-4 relative (a difference of nearby
depths), the total by 1.4e-7, every gradient norm by at most 1.1e-5.
"""

import json
import os
import sys

import numpy as np
import pytest

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden",
                      "mgcnet_objective.json")
BATCH, VIEWS, SIZE, SEED = 2, 3, 64, 11
# Same machine kind, same binaries: the values agree to float32 rounding.
RTOL = 1e-5


def fixed_batch(decoder):
  """B=2 samples of N=3 rendered views at yaws (-20, 0, 25) degrees.

  Images are renders of two random faces over textured backgrounds, landmarks
  their projections plus 1.5 px noise, flags (2, 1), skin maps uniform noise.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mgc_tf.render import renderer  # pylint: disable=g-import-not-at-top
  layout = decoder.layout
  rng = np.random.default_rng(SEED)
  coeffs = np.zeros([BATCH, VIEWS, layout.size], np.float32)
  slices = layout.slices()
  coeffs[..., slices["identity"]] = rng.normal(0, 0.7,
                                               [BATCH, 1, layout.id_rank])
  coeffs[..., slices["albedo"]] = rng.normal(0, 0.7,
                                             [BATCH, 1, layout.albedo_rank])
  for n, yaw in enumerate((-20.0, 0.0, 25.0)):
    coeffs[:, n, slices["pose"].start + 1] = np.deg2rad(yaw)
  background = rng.uniform(0.1, 0.9, [BATCH * VIEWS, SIZE, SIZE, 3])
  face, out = renderer.render_face(
      decoder, tf.reshape(coeffs, [BATCH * VIEWS, layout.size]),
      background=tf.constant(background, tf.float32))
  images = tf.reshape(out.image, [BATCH, VIEWS, SIZE, SIZE, 3])
  # The pipeline's crops are [0, 1]; the render is composited over them.
  images = tf.clip_by_value(images, 0.0, 1.0)
  landmarks = tf.reshape(face.landmarks_2d, [BATCH, VIEWS, 68, 2])
  landmarks += rng.normal(0, 1.5, landmarks.shape).astype(np.float32)
  skin = rng.uniform(0.3, 1.0, [BATCH, VIEWS, SIZE, SIZE, 1])
  return {"images": images,
          "landmarks": tf.constant(landmarks, tf.float32),
          "flag": tf.constant([2, 1], tf.int32),
          "skin": tf.constant(skin, tf.float32)}


def compute():
  """Total, terms and gradient norms of the MGCNet objective on the batch.

  Goes through the method layer: the `mgcnet` method builds the
  reconstructor (resnet18, 64 px, seed 11) and computes its objective on
  the fixed batch in training mode, as the trainer's step does.
  """
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mgc_tf import methods  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import loaders  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import decoder as face_decoder  # pylint: disable=g-import-not-at-top
  from mgc_tf.models import registry  # pylint: disable=g-import-not-at-top

  decoder = face_decoder.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  batch = fixed_batch(decoder)
  keras.utils.set_random_seed(SEED)
  method_class = methods.get("mgcnet")
  # The values were recorded with the identity term off (no network then).
  method = method_class(method_class.config_class(identity_model="none"),
                        decoder=decoder,
                        backbone="resnet18", backbone_weights="none",
                        image_size=SIZE, num_views=VIEWS,
                        global_batch_size=BATCH)
  networks = {name: registry.build(spec)
              for name, spec in method.network_specs().items()}
  model = networks["reconstructor"]
  with tf.GradientTape() as tape:
    out = method.objective(networks, batch, method.stages()[0],
                           training=True)
  variables = model.trainable_variables
  gradients = tape.gradient(out.total, variables)
  return {
      "total": float(out.total),
      "terms": {k: float(v) for k, v in sorted(out.terms.items())},
      "gradient_global_norm": float(tf.linalg.global_norm(gradients)),
      "gradient_norms": {v.path: float(tf.norm(g))
                         for v, g in zip(variables, gradients)},
  }


def test_mgcnet_objective_and_gradients_equal_the_recorded_values():
  with open(GOLDEN) as f:
    golden = json.load(f)
  values = compute()
  assert values["total"] == pytest.approx(golden["total"], rel=RTOL)
  assert sorted(values["terms"]) == sorted(golden["terms"])
  for name, value in golden["terms"].items():
    assert values["terms"][name] == pytest.approx(value, rel=RTOL,
                                                  abs=1e-9), name
  assert values["gradient_global_norm"] == pytest.approx(
      golden["gradient_global_norm"], rel=RTOL)
  got = list(values["gradient_norms"].values())
  want = list(golden["gradient_norms"].values())
  assert len(got) == len(want)
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-9)
  # The batch exercises every term the paper weights.
  for name in ("render", "landmark", "regularization", "pixel", "depth",
               "epipolar"):
    assert golden["terms"][name] > 0, name


def record():
  values = compute()
  os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
  with open(GOLDEN, "w") as f:
    json.dump(values, f, indent=1, sort_keys=False)
    f.write("\n")
  print(json.dumps({k: v for k, v in values.items()
                    if k != "gradient_norms"}, indent=1))


if __name__ == "__main__":
  if "--record" in sys.argv:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    record()
