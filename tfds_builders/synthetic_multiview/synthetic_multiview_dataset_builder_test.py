"""Builds the `tiny` config end to end and checks what the dataset holds."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders.synthetic_multiview import (
    synthetic_multiview_dataset_builder)
from mgc_tf.data import occluders
from mgc_tf.facemodel import coefficients
from tfds_builders.synthetic_multiview import synthetic_scenes

TINY = 64


class SyntheticMultiviewTest(tfds.testing.DatasetBuilderTestCase):
  """The `tiny` config builds, reloads and has the expected split sizes."""
  DATASET_CLASS = synthetic_multiview_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["tiny", "v2_tiny", "ict_tiny"]
  SPLITS = {"train": 3, "test": 3}
  # Nothing is downloaded; the test case still wants an example folder.
  EXAMPLE_DIR = os.path.dirname(os.path.abspath(__file__))


def test_scene_batches_follow_the_renderer_batches():
  batches = synthetic_multiview_dataset_builder.scene_batches("test", 10, 4)
  assert [(b.split, b.start, b.count) for b in batches] == [
      ("test", 0, 4), ("test", 4, 4), ("test", 8, 2)]


def test_configs_and_feature_shapes():
  builder_class = synthetic_multiview_dataset_builder.Builder
  configs = {c.name: c for c in builder_class.BUILDER_CONFIGS}
  assert set(configs) == {"default", "small", "tiny", "v2", "v2_small",
                          "v2_tiny", "v2_large", "persons_small",
                          "persons_tiny", "ict", "ict_small", "ict_tiny"}
  assert (str(configs["v2_large"].version), configs["v2_large"].recipe) == (
      "2.0.0", "v2")
  assert configs["v2_large"].num_train == 10 * configs["v2"].num_train
  for name in ("persons_small", "persons_tiny"):
    assert (configs[name].recipe, configs[name].examples_per_identity) == (
        "v1", 3)
    assert configs[name].num_test % 3 == 0
  assert str(builder_class.VERSION) == "3.0.0"
  for name in ("ict", "ict_small", "ict_tiny"):
    assert (str(configs[name].version), configs[name].recipe,
            configs[name].face_model) == ("3.0.0", "v1",
                                          "embedded-ict-light-v1")
  assert {configs[n].face_model for n in configs if not n.startswith("ict")
          } == {"embedded-synthetic-v1"}
  for name in ("default", "small", "tiny"):
    assert (str(configs[name].version), configs[name].recipe) == (
        "1.0.0", "v1")
    assert (str(configs["v2_" + name if name != "default" else "v2"].version),
            configs["v2_" + name if name != "default" else "v2"].recipe) == (
                "2.0.0", "v2")
  assert (configs["small"].image_size, configs["default"].image_size) == (
      112, 224)
  assert configs["default"].num_train > configs["small"].num_train
  for config in configs.values():
    assert config.num_views == 3 and config.num_test % 3 == 0
  assert str(builder_class(config="small", data_dir="/tmp/unused").version
             ) == "1.0.0"
  builder = builder_class(config="tiny", data_dir="/tmp/unused")
  shapes = builder.info.features.shape
  assert shapes["images"] == (3, TINY, TINY, 3)
  assert shapes["skin"] == (3, TINY, TINY, 1)
  assert shapes["landmarks"] == (3, 68, 2)
  assert shapes["coefficients"] == (3, 257)
  assert shapes["pose"] == (3, 6) and shapes["yaw_degrees"] == (3,)
  assert shapes["depth"] == (3, TINY, TINY)


def test_built_examples_hold_consistent_ground_truth(tmp_path):
  builder = synthetic_multiview_dataset_builder.Builder(
      config="tiny", data_dir=str(tmp_path))
  builder.download_and_prepare()
  test = list(tfds.as_numpy(builder.as_dataset(split="test")))
  assert len(test) == 3
  bins = set()
  for example in test:
    identity = example["identity"].decode()
    assert identity.startswith("synthetic-test-")
    index = int(identity.rsplit("-", 1)[1])
    # The stored example is the one the library draws for that index.
    scene = synthetic_scenes.sample_scene(
        synthetic_multiview_dataset_builder._face_model(), "test", index,
        TINY)
    np.testing.assert_array_equal(example["coefficients"], scene.coefficients)
    np.testing.assert_array_equal(example["pose"], scene.pose)
    bins.add(int(synthetic_scenes.yaw_bin(example["yaw_degrees"][1])))
    face = example["depth"] > 0
    assert 0.1 < face.mean() < 0.95
    # Skin only on the face.
    assert np.all(example["skin"][..., 0][~face] == 0)
  assert bins == {0, 1, 2}


def test_test_split_must_be_balanced():
  config = synthetic_multiview_dataset_builder.SyntheticMultiviewConfig(
      name="odd", num_test=10)
  with pytest.raises(ValueError, match="multiple"):
    synthetic_multiview_dataset_builder.Builder(config=config,
                                                data_dir="/tmp/unused").info


def test_v2_features_shapes():
  builder = synthetic_multiview_dataset_builder.Builder(
      config="v2_tiny", data_dir="/tmp/unused")
  shapes = builder.info.features.shape
  assert shapes["landmarks"] == shapes["landmarks_true"] == (3, 68, 2)
  assert shapes["landmark_status"] == (3,)
  assert shapes["occlusion"] == shapes["face_mask"] == (3, TINY, TINY, 1)
  assert shapes["occluded_fraction"] == (3,)
  assert builder.info.metadata["recipe"]["name"] == "v2"


def test_v2_built_examples_hold_occluder_masks_and_both_landmark_sets(
    tmp_path):
  builder = synthetic_multiview_dataset_builder.Builder(
      config="v2_tiny", data_dir=str(tmp_path))
  builder.download_and_prepare()
  assert "landmark_source" in builder.info.metadata
  face_model = synthetic_multiview_dataset_builder._face_model()
  examples = list(tfds.as_numpy(builder.as_dataset(split="test"))) + list(
      tfds.as_numpy(builder.as_dataset(split="train")))
  kinds = set()
  for example in examples:
    identity = example["identity"].decode()
    split, index = identity.split("-")[1], int(identity.rsplit("-", 1)[1])
    scene = synthetic_scenes.sample_scene(face_model, split, index, TINY,
                                          synthetic_scenes.RECIPE_V2)
    # The stored occluders and exact landmarks are the scene's.
    assert example["occluders"].decode() == occluders.describe(
        scene.occluders)
    kinds.add(example["occluders"].decode())
    rendered = synthetic_scenes.SceneRenderer(face_model, TINY).render(
        [scene])[0]
    np.testing.assert_allclose(example["landmarks_true"],
                               rendered["landmarks"], atol=1e-4)
    occlusion = example["occlusion"][..., 0] > 127
    face_mask = example["face_mask"][..., 0] > 0
    face = rendered["depth"] > 0
    # The visible face is the rendered face less what occluders hide; the
    # depth ground truth covers exactly that.
    np.testing.assert_array_equal(face_mask, face & ~occlusion)
    np.testing.assert_array_equal(example["depth"] > 0, face_mask)
    np.testing.assert_allclose(
        example["occluded_fraction"],
        (face & occlusion).sum((1, 2)) / face.sum((1, 2)), atol=1e-6)
    if not scene.occluders:
      assert not occlusion.any()
      np.testing.assert_array_equal(example["images"], rendered["image"])
    # Detected landmarks: status in 0..3; modelled ones differ from truth.
    status = example["landmark_status"]
    assert set(status.tolist()) <= {0, 1, 2, 3}
    for view, code in enumerate(status):
      difference = np.abs(example["landmarks"][view] -
                          example["landmarks_true"][view]).max()
      assert difference > 0.0, (identity, view, code)
  assert len(examples) == 6


def test_ict_configs_render_the_packaged_ict_model(tmp_path):
  """ict_tiny: the ICT model's layout and metadata, blendshape weights in
  [0, 1] with at most 3 shapes on, and the stored example is the scene the
  library draws from that model."""
  builder = synthetic_multiview_dataset_builder.Builder(
      config="ict_tiny", data_dir=str(tmp_path))
  face_model = synthetic_multiview_dataset_builder._face_model(
      "embedded-ict-light-v1")
  layout = coefficients.CoefficientLayout.from_face_model(face_model)
  assert builder.info.features.shape["coefficients"] == (3, layout.size)
  assert builder.info.metadata["face_model"] == "embedded-ict-light-v1"
  builder.download_and_prepare()
  weights = []
  for example in tfds.as_numpy(builder.as_dataset(split="train")):
    identity = example["identity"].decode()
    scene = synthetic_scenes.sample_scene(
        face_model, "train", int(identity.rsplit("-", 1)[1]), TINY)
    np.testing.assert_array_equal(example["coefficients"], scene.coefficients)
    expression = example["coefficients"][:, layout.slices()["expression"]]
    # One expression per example, shared by the views.
    np.testing.assert_array_equal(expression, expression[:1].repeat(3, 0))
    weights.append(expression[0])
    face = example["depth"] > 0
    assert 0.1 < face.mean() < 0.95
  weights = np.stack(weights)
  assert weights.min() >= 0.0 and weights.max() <= 0.8
  assert np.all(np.sum(weights > 0, axis=1) <= 3)


def test_unknown_face_model_is_refused():
  config = synthetic_multiview_dataset_builder.SyntheticMultiviewConfig(
      name="odd", face_model="bfm")
  with pytest.raises(ValueError, match="face_model must be one of"):
    synthetic_multiview_dataset_builder.Builder(config=config,
                                                data_dir="/tmp/unused").info
