"""Tests of the synthetic multi-view scenes.

`tfds_builders/synthetic_multiview/synthetic_scenes.py`, the generator that
only the synthetic_multiview builder uses.

The ground truth stored with each example must be what decoding and
rendering its coefficients with `FaceDecoder` / `render_face` gives.
"""

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import geometry
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import synthetic
from mgc_tf.render import renderer as renderer_lib
from tfds_builders.synthetic_multiview import synthetic_scenes as scenes

SIZE = 64
# Test indices 0..5 cover each |yaw| bin twice; two train examples.
EXAMPLES = [("test", i) for i in range(6)] + [("train", 0), ("train", 1)]


@pytest.fixture(scope="module")
def face_model():
  return synthetic.embedded_face_model()


@pytest.fixture(scope="module")
def decoder(face_model):
  return face_decoder.FaceDecoder(face_model)


@pytest.fixture(scope="module")
def scene_renderer(face_model):
  return scenes.SceneRenderer(face_model, SIZE)


@pytest.fixture(scope="module")
def examples(face_model, scene_renderer):
  """(split, index) -> example dict, rendered through `generate_examples`."""
  out = {}
  for split in ("test", "train"):
    count = sum(1 for s, _ in EXAMPLES if s == split)
    for index, example in scenes.generate_examples(
        split, count, SIZE, face_model=face_model, renderer=scene_renderer):
      out[(split, index)] = example
  return out


def _decode(decoder, coefficients):
  return decoder.decode(tf.constant(coefficients), image_size=SIZE)


def test_example_keys_shapes_and_types(examples):
  example = examples[("test", 0)]
  assert len(example["images"]) == 3 and len(example["skin"]) == 3
  assert example["images"][0].shape == (SIZE, SIZE, 3)
  assert example["images"][0].dtype == np.uint8
  assert example["skin"][0].shape == (SIZE, SIZE, 1)
  assert example["landmarks"].shape == (3, 68, 2)
  assert example["coefficients"].shape == (3, 257)
  assert example["pose"].shape == (3, 6)
  assert example["yaw_degrees"].shape == (3,)
  assert example["depth"].shape == (3, SIZE, SIZE)
  for key in ("landmarks", "coefficients", "pose", "yaw_degrees", "depth"):
    assert example[key].dtype == np.float32, key
  assert example["identity"] == "synthetic-test-000000"
  identities = {e["identity"] for e in examples.values()}
  assert len(identities) == len(EXAMPLES)


def test_landmarks_and_pose_are_what_the_decoder_gives(examples, decoder):
  for key, example in examples.items():
    face = _decode(decoder, example["coefficients"])
    np.testing.assert_allclose(example["landmarks"], face.landmarks_2d.numpy(),
                               atol=1e-3, err_msg=str(key))
    np.testing.assert_allclose(example["pose"], face.pose.numpy(), atol=1e-5,
                               err_msg=str(key))
    # All landmarks (visible or not) lie inside the crop.
    assert np.all((example["landmarks"] > 0) & (example["landmarks"] < SIZE))


def test_rerendering_the_coefficients_reproduces_image_and_depth(
    examples, decoder):
  for key, example in examples.items():
    images = np.stack(example["images"]).astype(np.float64)
    _, out = renderer_lib.render_face(
        decoder, tf.constant(example["coefficients"]),
        background=tf.zeros([3, SIZE, SIZE, 3]), image_size=(SIZE, SIZE))
    mask = out.mask.numpy()[..., 0] > 0
    # Depth is > 0 exactly where the face is rendered, and equal there.
    np.testing.assert_array_equal(example["depth"] > 0, mask, err_msg=str(key))
    # Float32 barycentrics differ in the last bits between batch layouts:
    # 1e-5 relative is 0.01 mm at the face's distance.
    np.testing.assert_allclose(example["depth"], out.depth.numpy()[..., 0],
                               rtol=1e-5, atol=1e-3, err_msg=str(key))
    rendered = 255.0 * np.clip(out.image.numpy(), 0.0, 1.0)
    difference = np.abs(rendered - images)[mask]
    assert difference.max() <= 1.0, key
    # ... and the background is not black, so it really was composited.
    assert images[~mask].mean() > 5.0, key


def test_depth_is_in_the_human_range_around_the_model_distance(
    examples, face_model):
  tz = float(face_model.default_pose[5])
  for key, example in examples.items():
    depth = example["depth"]
    for view in range(3):
      face = depth[view][depth[view] > 0]
      assert 0.15 < face.size / SIZE**2 < 0.95, key
      # A head is about 200 mm deep and turns about its centre; the camera
      # distance varies by 6 % (a `small` build spans 879-1189 mm).
      assert face.min() > 0.75 * tz and face.max() < 1.25 * tz, key
      assert 40.0 < np.ptp(face) < 250.0, key


def test_skin_is_the_face_models_skin_region_inside_the_face(examples):
  for key, example in examples.items():
    skin = np.stack(example["skin"])[..., 0].astype(np.float64) / 255.0
    face = example["depth"] > 0
    assert np.all(skin[~face] == 0), key
    # Most of the face is skin; eyes, brows and lips are not.
    assert 0.6 < skin[face].mean() < 0.98, key
    assert np.mean(skin[face] < 0.1) > 0.01, key


def test_yaw_degrees_is_the_pose_yaw_and_its_sign_is_nose_to_image_right(
    examples):
  for key, example in examples.items():
    np.testing.assert_allclose(example["yaw_degrees"],
                               np.rad2deg(example["pose"][:, 1]), atol=1e-4)
    landmarks = example["landmarks"]
    for view, yaw in enumerate(example["yaw_degrees"]):
      if abs(yaw) < 10.0:
        continue
      # The nose tip (30) moves towards the side the face turns to,
      # relative to the outer eye corners (36, 45) behind it.
      nose_shift = landmarks[view, 30, 0] - landmarks[view, [36, 45], 0].mean()
      assert np.sign(nose_shift) == np.sign(yaw), (key, view, yaw)


def test_views_share_identity_expression_albedo_and_light(examples, decoder):
  layout = decoder.layout.slices()
  for key, example in examples.items():
    coefficients = example["coefficients"]
    for group in ("identity", "expression", "albedo"):
      assert np.all(coefficients[:, layout[group]] ==
                    coefficients[0, layout[group]]), (key, group)
    # One light at one instant: every vertex has the same shaded colour in
    # the three views (the per-view SH coefficients are that light in each
    # camera's frame).
    face = _decode(decoder, coefficients)
    colors = face.colors.numpy()
    np.testing.assert_allclose(colors[0], colors[1], atol=2e-4)
    np.testing.assert_allclose(colors[2], colors[1], atol=2e-4)
    # Not trivially equal: the views differ in pose, so in lighting too.
    poses = coefficients[:, layout["pose"]]
    assert np.ptp(poses[:, 1]) > np.deg2rad(5.0)
    assert not np.allclose(coefficients[0, layout["lighting"]],
                           coefficients[1, layout["lighting"]], atol=1e-3)


def test_lighting_varies_between_examples(examples, decoder):
  light = decoder.layout.slices()["lighting"]
  ambient = [e["coefficients"][1, light][[0, 9, 18]] for e in examples.values()]
  assert np.ptp(np.stack(ambient)[:, 0]) > 0.05
  # A colour tint: the channels' ambient terms differ.
  assert np.max(np.ptp(np.stack(ambient), axis=1)) > 0.005


def test_test_split_yaw_bins_are_balanced(face_model):
  yaws = [scenes.sample_scene(face_model, "test", i, 8).yaw_degrees
          for i in range(30)]
  bins = scenes.yaw_bin([y[scenes.TARGET_VIEW] for y in yaws])
  np.testing.assert_array_equal(bins, np.arange(30) % 3)
  assert np.bincount(bins).tolist() == [10, 10, 10]
  signs = np.sign([y[scenes.TARGET_VIEW] for y in yaws])
  assert 0 < np.sum(signs > 0) < 30


def test_yaw_bins_edges():
  np.testing.assert_array_equal(
      scenes.yaw_bin([0.0, -29.9, 30.0, -59.9, 60.0, 89.0, -90.0]),
      [0, 0, 1, 1, 2, 2, 2])


@pytest.mark.parametrize("split", ["train", "test"])
def test_view_yaws_offsets_and_range(split):
  targets = []
  for index in range(600):
    rng = scenes.example_rng(split, index)
    yaws = scenes.sample_view_yaws(rng, split, index)
    targets.append(yaws[scenes.TARGET_VIEW])
    assert np.all(np.abs(yaws) <= scenes.MAX_YAW_DEGREES + 1e-9)
    offsets = np.abs(yaws[[0, 2]] - yaws[1])
    assert np.all((offsets >= 10.0) & (offsets <= 40.0)), yaws
  targets = np.array(targets)
  # Spread over the whole range, up to +/-90.
  assert targets.min() < -80.0 and targets.max() > 80.0
  if split == "train":
    counts = np.bincount(scenes.yaw_bin(targets))
    assert counts.min() > 150  # uniform: about 200 each


def test_same_index_gives_the_same_example(face_model, scene_renderer,
                                           examples):
  first = scenes.sample_scene(face_model, "test", 4, SIZE)
  again = scenes.sample_scene(face_model, "test", 4, SIZE)
  for field in ("coefficients", "pose", "yaw_degrees", "backgrounds"):
    np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
  # Rendered alone (a padded batch) or inside a full batch: identical.
  (index, alone), = scenes.generate_examples(
      "test", 1, SIZE, face_model=face_model, renderer=scene_renderer,
      start=4)
  assert index == 4
  batched = examples[("test", 4)]
  for key in ("images", "skin"):
    np.testing.assert_array_equal(np.stack(alone[key]), np.stack(batched[key]))
  for key in ("landmarks", "depth", "coefficients", "pose"):
    np.testing.assert_array_equal(alone[key], batched[key])
  # Another index, or the same index of the other split, differs.
  other = scenes.sample_scene(face_model, "train", 4, SIZE)
  assert not np.allclose(other.coefficients, first.coefficients)


def test_scene_does_not_depend_on_the_image_size(face_model):
  small = scenes.sample_scene(face_model, "train", 7, 32)
  large = scenes.sample_scene(face_model, "train", 7, 96)
  np.testing.assert_array_equal(small.coefficients, large.coefficients)
  assert large.backgrounds.shape == (3, 96, 96, 3)


def test_sampled_shapes_do_not_fold(face_model):
  for index in range(15):
    rng = scenes.example_rng("train", index)
    id_coeffs, exp_coeffs, shape = scenes.sample_shape(rng, face_model)
    assert scenes.folded_triangles(face_model, shape) == 0
    np.testing.assert_allclose(shape, face_model.shape_np(id_coeffs,
                                                          exp_coeffs),
                               atol=1e-3)
    assert np.all(np.abs(id_coeffs) <= scenes.COEFFICIENT_CLIP)
    assert 0.5 < np.std(id_coeffs) < 1.5 and 0.3 < np.std(exp_coeffs) < 0.9
  # The check is not vacuous: a strong expression folds the mesh.
  strong = face_model.shape_np(np.zeros(80), np.full(64, 3.0))
  assert scenes.folded_triangles(face_model, strong) > 0


def test_unjittered_poses_keep_the_face_in_the_crop(face_model):
  # The fall-back pose (no jitter) at the extreme yaws, pitches and rolls.
  landmarks = face_model.mean_shape[face_model.landmark_indices]
  default = face_model.default_pose.astype(np.float64)
  anchor = landmarks.astype(np.float64).mean(0)
  anchor_camera = (scenes.euler_to_rotation_np(default[:3]) @ anchor +
                   default[3:])
  f = face_model.focal_length / face_model.image_size
  limit_pitch = scenes.HEAD_PITCH_DEGREES + scenes.VIEW_ANGLE_JITTER_DEGREES
  limit_roll = scenes.HEAD_ROLL_DEGREES + scenes.VIEW_ANGLE_JITTER_DEGREES
  for yaw in (-90.0, -45.0, 0.0, 45.0, 90.0):
    for pitch in (-limit_pitch, limit_pitch):
      for roll in (-limit_roll, limit_roll):
        rotation = scenes.euler_to_rotation_np(
            default[:3] + np.deg2rad([roll, yaw, pitch]))
        camera = (landmarks - anchor) @ rotation.T + anchor_camera
        fraction = f * camera[:, :2] / camera[:, 2:] + 0.5
        assert np.all((fraction > 0.03) & (fraction < 0.97)), (yaw, pitch,
                                                                roll)


def test_numpy_euler_matches_geometry():
  angles = np.random.default_rng(0).uniform(-3.0, 3.0, [10, 3])
  np.testing.assert_allclose(
      scenes.euler_to_rotation_np(angles),
      geometry.euler_to_rotation(angles.astype(np.float32)).numpy(),
      atol=1e-5)


def test_backgrounds_are_textured_and_differ_between_views():
  photos = scenes.background_photos()
  assert set(photos) == set(scenes.BACKGROUND_PHOTOS)
  assert "astronaut.png" not in photos and "camera.png" not in photos
  for name, photo in photos.items():
    assert photo.ndim == 3 and photo.shape[2] == 3 and photo.dtype == np.float32
    assert photo.std() > 0.03, name
  for index in range(12):
    views = scenes.sample_backgrounds(scenes.example_rng("train", index), 48)
    assert views.shape == (3, 48, 48, 3)
    assert views.min() >= 0.0 and views.max() <= 1.0
    assert not np.array_equal(views[0], views[1]), index
  for kind in scenes.PROCEDURAL_KINDS:
    texture = scenes.procedural_texture(np.random.default_rng(1), kind, 64)
    assert texture.shape == (64, 64, 3) and np.all(np.isfinite(texture))
    assert texture.std() > 0.02, kind
  with pytest.raises(ValueError, match="kind"):
    scenes.procedural_texture(np.random.default_rng(1), "plaid")


def test_bad_arguments_raise(face_model, scene_renderer):
  with pytest.raises(ValueError, match="split"):
    scenes.example_rng("validation", 0)
  with pytest.raises(ValueError, match="index"):
    scenes.example_rng("train", -1)
  with pytest.raises(ValueError, match="image size"):
    next(scenes.generate_examples("train", 1, SIZE + 1, face_model=face_model,
                                  renderer=scene_renderer))


def test_a_person_is_seen_in_several_examples_when_asked(face_model):
  # persons_* configs: examples 3p .. 3p + 2 are person p at 3 instants.
  layout_slices = face_decoder.FaceDecoder(face_model).layout.slices()
  scenes_k3 = [scenes.sample_scene(face_model, "test", index, 32,
                                   examples_per_identity=3)
               for index in range(4)]
  ident = lambda s: s.coefficients[0, layout_slices["identity"]]
  albedo = lambda s: s.coefficients[0, layout_slices["albedo"]]
  expression = lambda s: s.coefficients[0, layout_slices["expression"]]
  for other in scenes_k3[1:3]:
    np.testing.assert_array_equal(ident(other), ident(scenes_k3[0]))
    np.testing.assert_array_equal(albedo(other), albedo(scenes_k3[0]))
    assert not np.array_equal(expression(other), expression(scenes_k3[0]))
  assert not np.array_equal(ident(scenes_k3[3]), ident(scenes_k3[0]))
  assert [s.identity for s in scenes_k3] == [
      "synthetic-test-person000000"] * 3 + ["synthetic-test-person000001"]
  # The three instants fall in the three yaw bins of the test split.
  bins = [int(scenes.yaw_bin(abs(s.yaw_degrees[scenes.TARGET_VIEW])))
          for s in scenes_k3[:3]]
  assert sorted(bins) == [0, 1, 2]
  # One person each (the original configs) is unchanged by the option.
  plain = scenes.sample_scene(face_model, "test", 4, 32)
  again = scenes.sample_scene(face_model, "test", 4, 32,
                              examples_per_identity=1)
  np.testing.assert_array_equal(plain.coefficients, again.coefficients)
  assert plain.identity == "synthetic-test-000004"
  # Pose and light still come from the example's own stream.
  np.testing.assert_array_equal(
      scenes.sample_scene(face_model, "test", 1, 32).pose, scenes_k3[1].pose)
