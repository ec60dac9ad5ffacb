"""mgc_tf.Reconstructor: the Python front door over a run or an export."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from skimage import data

import mgc_tf
from mgc_tf.facemodel import loaders
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.models import description as description_lib
from mgc_tf.models import registry
from mgc_tf.facemodel import decoder as face_decoder


@pytest.fixture(scope="module")
def model(trained_model_dir):
  return mgc_tf.Reconstructor.from_run(trained_model_dir)


def _crops(count, size=224, seed=0):
  return np.random.default_rng(seed).integers(
      0, 256, [count, size, size, 3]).astype(np.uint8)


def test_from_run_reads_model_json(model, trained_model_dir):
  described = description_lib.read(trained_model_dir)
  assert model.image_size == described.image_size == 64
  assert model.model_description.backbone == "resnet18"
  assert model.step == 7 and model.outputs == ()
  assert described.coefficients["size"] == model.layout.size
  # No training configuration is needed.
  assert not os.path.exists(os.path.join(trained_model_dir, "config.json"))


def test_reconstruct_crops_returns_one_result_with_every_part(model):
  crops = _crops(3)
  result = model.reconstruct(crops, render=True)
  k = model.layout.size
  assert result.coefficients.shape == (3, k)
  groups = result.groups()
  assert set(groups) == {"identity", "albedo", "expression", "pose",
                         "lighting"}
  assert sum(g.shape[1] for g in groups.values()) == k
  np.testing.assert_array_equal(groups["pose"],
                                result.coefficients[:, model.layout.slices()
                                                    ["pose"]])
  v = model.decoder.num_vertices
  assert result.vertices.shape == (3, v, 3) and result.colors.shape == (3, v, 3)
  assert result.landmarks_2d.shape == (3, 68, 2)
  assert result.rendered.shape == (3, 224, 224, 3)
  assert result.landmarks_photo is None and result.depth is None
  # The crops' own coefficients: the same as the raw network call.
  inputs = reconstructor_lib.model_inputs(crops, model.image_size)
  np.testing.assert_allclose(result.coefficients, model.coefficients(inputs),
                             rtol=1e-5, atol=1e-6)
  # One crop, float in [0, 1], any size: resized like the pipeline does.
  single = model.reconstruct(crops[0].astype(np.float32) / 255.0)
  np.testing.assert_allclose(single.coefficients[0], result.coefficients[0],
                             rtol=1e-4, atol=1e-4)


def test_reconstruct_finds_the_faces_of_a_photo(model):
  photo = data.astronaut()
  result = model.reconstruct(photo, find_faces=True)
  assert len(result) == 1
  # Landmarks mapped back into the photo fall on the astronaut's face
  # (box about x 179-266, y 80-200 in the 512 x 512 photo).
  x, y = result.landmarks_photo[0].mean(axis=0)
  assert 150 < x < 300 and 60 < y < 230, (x, y)
  with pytest.raises(ValueError, match="one photo"):
    model.reconstruct(_crops(2), find_faces=True)


def test_a_run_restores_only_with_its_own_face_model(trained_model_dir,
                                                    tmp_path, tiny_face_model):
  other = str(tmp_path / "other.npz")
  tiny_face_model.save(other)
  with pytest.raises(reconstructor_lib.TrainedModelError,
                     match="fingerprint"):
    mgc_tf.Reconstructor.from_run(trained_model_dir, face_model=other)


def test_missing_model_json_says_what_to_do(tmp_path):
  with pytest.raises(reconstructor_lib.TrainedModelError,
                     match="model.json does not exist"):
    mgc_tf.Reconstructor.from_run(str(tmp_path))
  with pytest.raises(reconstructor_lib.TrainedModelError, match="exactly one"):
    mgc_tf.Reconstructor.from_args()


def test_a_run_written_before_model_json_still_loads(trained_model_dir,
                                                    tmp_path, model):
  """Runs of earlier versions hold only config.json beside the checkpoint."""
  legacy = str(tmp_path / "legacy")
  shutil.copytree(trained_model_dir, legacy)
  os.remove(os.path.join(legacy, "model.json"))
  with open(os.path.join(legacy, "config.json"), "w") as f:
    json.dump({"model_dir": legacy, "backbone": "resnet18", "image_size": 64,
               "face_model": None}, f)
  restored = mgc_tf.Reconstructor.from_run(legacy)
  crops = reconstructor_lib.model_inputs(_crops(2), 64)
  np.testing.assert_array_equal(restored.coefficients(crops),
                                model.coefficients(crops))


def test_model_description_round_trips_and_rejects_other_formats():
  decoder = face_decoder.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  from mgc_tf.models import reconstructor  # pylint: disable=g-import-not-at-top
  spec = reconstructor.reconstructor_spec(decoder.layout, "resnet18", 64)
  described = description_lib.ModelDescription(
      method="mgcnet", image_size=64, face_model_path=None,
      face_model_name="x", face_model_fingerprint="abc",
      coefficients=description_lib.layout_sizes(decoder.layout),
      networks={"reconstructor": spec},
      outputs={"depth": {"network": "d", "description": "[N,S,S,1] mm"}})
  again = description_lib.ModelDescription.from_json(described.to_json())
  assert again == described
  # "inference" is written only when a method sets it, so the model.json of
  # every other method (and its resume check) is unchanged.
  assert "inference" not in json.loads(described.to_json())
  solved = dataclasses.replace(described, inference=registry.NetworkSpec(
      "pgn_solved_pose", {"focal_length": 1.5}))
  assert description_lib.ModelDescription.from_json(
      solved.to_json()) == solved
  text = json.loads(described.to_json())
  text["format"] = 99
  with pytest.raises(description_lib.ModelDescriptionError, match="format"):
    description_lib.ModelDescription.from_json(json.dumps(text))
