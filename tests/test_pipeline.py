"""N-view pipeline over small TFDS datasets that the tests build themselves."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.data import augment as augment_lib
from mgc_tf.data import features as features_lib
from mgc_tf.data import pipeline

SIZE = 32
NUM_LM = 68


def _dot_image(value: float, dot_xy, size: int = SIZE) -> np.ndarray:
  """Flat grey image of `value` with one white 1-pixel dot at dot_xy."""
  image = np.full((size, size, 3), int(value * 255), np.uint8)
  image[dot_xy[1], dot_xy[0]] = 255
  return image


def _dot_centroid(image: np.ndarray) -> np.ndarray:
  """(x, y) centroid of the brightness above the flat background (median)."""
  brightness = image.mean(-1)
  weight = np.maximum(brightness - np.median(brightness) - 1e-4, 0.0)
  rows, cols = np.indices(brightness.shape)
  return np.array([(weight * cols).sum(), (weight * rows).sum()]) / weight.sum()


def _landmarks_at(dot_xy) -> np.ndarray:
  landmarks = np.full((NUM_LM, 2), SIZE / 2, np.float32)
  landmarks[0] = dot_xy
  return landmarks


class MultiviewToy(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Groups of 1-4 views; view v of example e has grey level (e * 10 + v) / 255."""
  VERSION = tfds.core.Version("1.0.0")
  VIEW_COUNTS = (3, 4, 2, 3, 1, 3)
  GREY = 0.2

  def _info(self):
    return tfds.core.DatasetInfo(builder=self,
        features=features_lib.multiview_features(SIZE, image_format="png"))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    rng = np.random.default_rng(0)
    for e, count in enumerate(self.VIEW_COUNTS):
      dots = rng.integers(8, SIZE - 8, size=(count, 2))
      yield str(e), features_lib.stack_views(
          [_dot_image(self.GREY, dot) for dot in dots],
          [_landmarks_at(dot) for dot in dots],
          [np.full((SIZE, SIZE), 0.5) for _ in dots],
          identity=f"person{e}", image_size=SIZE)


class MultiviewToyBright(MultiviewToy, skip_registration=True):
  GREY = 0.8


class GroundTruthToy(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """3-view groups with ground truth beside the core features: per view a
  depth map (DEPTH mm on a 5x5 patch around the dot, 0 elsewhere), a face
  mask on the same patch, exact landmarks, coefficients [v, e, 0.5, -1]."""
  VERSION = tfds.core.Version("1.0.0")
  DEPTH = 500.0

  def _info(self):
    extra = {
        "depth": tfds.features.Tensor(shape=(3, SIZE, SIZE), dtype=np.float32),
        "face_mask": tfds.features.Sequence(
            tfds.features.Image(shape=(SIZE, SIZE, 1), encoding_format="png"),
            length=3),
        "landmarks_true": tfds.features.Tensor(shape=(3, NUM_LM, 2),
                                               dtype=np.float32),
        "coefficients": tfds.features.Tensor(shape=(3, 4), dtype=np.float32),
    }
    return tfds.core.DatasetInfo(builder=self,
        features=features_lib.multiview_features(SIZE, num_views=3,
                                                 image_format="png",
                                                 extra=extra))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    rng = np.random.default_rng(1)
    for e in range(4):
      dots = rng.integers(8, SIZE - 8, size=(3, 2))
      example = features_lib.stack_views(
          [_dot_image(0.2, dot) for dot in dots],
          [_landmarks_at(dot) for dot in dots],
          [np.full((SIZE, SIZE), 0.5) for _ in dots],
          identity=f"gt{e}", image_size=SIZE)
      patches = np.zeros((3, SIZE, SIZE), np.float32)
      for v, (x, y) in enumerate(dots):
        patches[v, y - 2:y + 3, x - 2:x + 3] = 1.0
      example["depth"] = patches * self.DEPTH
      example["face_mask"] = (patches[..., None] * 255).astype(np.uint8)
      example["landmarks_true"] = np.stack([_landmarks_at(d) for d in dots])
      example["coefficients"] = np.array(
          [[v, e, 0.5, -1.0] for v in range(3)], np.float32)
      yield str(e), example


class VideoToy(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """One video of 7 frames; frame t has grey level 30 t."""
  VERSION = tfds.core.Version("1.0.0")

  # Original frame numbers of the 7 stored frames; None stores none.
  FRAME_INDICES = None

  def _info(self):
    extra = ({"frame_indices": tfds.features.Tensor(shape=(None,),
                                                    dtype=np.int32)}
             if self.FRAME_INDICES is not None else None)
    return tfds.core.DatasetInfo(
        builder=self, features=features_lib.video_features(SIZE, extra=extra))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    frames = np.stack([np.full((SIZE, SIZE, 3), 30 * t, np.uint8)
                       for t in range(7)])
    landmarks = np.tile(np.arange(7, dtype=np.float32)[:, None, None],
                        (1, NUM_LM, 2))
    example = {"frames": frames, "landmarks": landmarks,
               "skin": np.full((7, SIZE, SIZE, 1), 255, np.uint8),
               "identity": "p0"}
    if self.FRAME_INDICES is not None:
      example["frame_indices"] = np.array(self.FRAME_INDICES, np.int32)
    yield "v0", example


class VideoWithGapToy(VideoToy, skip_registration=True):
  """Frames 0, 2, 4, 6, 10, 12, 14 of a video sampled every 2nd frame (8 dropped)."""
  FRAME_INDICES = (0, 2, 4, 6, 10, 12, 14)


@pytest.fixture(scope="module")
def toy_builders(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  builders = {}
  for cls in (MultiviewToy, MultiviewToyBright, VideoToy,
              VideoWithGapToy, GroundTruthToy):
    builder = cls(data_dir=data_dir)
    builder.download_and_prepare()
    builders[cls.__name__] = builder
  return builders


def _config(**kwargs):
  defaults = dict(num_views=3, image_size=SIZE, batch_size=2, shuffle_buffer=1,
                  augment=augment_lib.NO_AUGMENTATION, deterministic=True,
                  seed=3)
  defaults.update(kwargs)
  return pipeline.PipelineConfig(**defaults)


def _take(dataset, count):
  return [{k: v.numpy() for k, v in batch.items()}
          for batch in dataset.take(count)]


def test_batches_have_static_shapes_and_ranges(toy_builders):
  spec = pipeline.SourceSpec("multiview_toy")
  dataset = pipeline.training_dataset([spec], _config(),
                                      builders=[toy_builders["MultiviewToy"]])
  assert dataset.element_spec["images"].shape == (2, 3, SIZE, SIZE, 3)
  assert dataset.element_spec["landmarks"].shape == (2, 3, 68, 2)
  assert dataset.element_spec["skin"].shape == (2, 3, SIZE, SIZE, 1)
  assert dataset.element_spec["flag"].shape == (2,)
  batch = _take(dataset, 1)[0]
  assert batch["images"].dtype == np.float32
  assert 0.0 <= batch["images"].min() and batch["images"].max() <= 1.0
  np.testing.assert_allclose(batch["skin"], 128 / 255, atol=1e-6)


def test_landmarks_follow_the_image_content(toy_builders):
  """The white dot sits on landmark 0 in every view, also after resizing."""
  spec = pipeline.SourceSpec("multiview_toy")
  for size in (SIZE, 2 * SIZE, SIZE // 2):
    dataset = pipeline.training_dataset(
        [spec], _config(image_size=size),
        builders=[toy_builders["MultiviewToy"]])
    for batch in _take(dataset, 3):
      for image, landmarks in zip(batch["images"].reshape(-1, size, size, 3),
                                  batch["landmarks"].reshape(-1, 68, 2)):
        # Resizing by s moves a pixel centre x to (x + 0.5) s - 0.5.
        np.testing.assert_allclose(_dot_centroid(image), landmarks[0],
                                   atol=0.05)


def test_short_groups_are_padded_with_flag_zero(toy_builders):
  spec = pipeline.SourceSpec("multiview_toy", flag=2)
  dataset = pipeline.training_dataset(
      [spec], _config(batch_size=6, repeat=False),
      builders=[toy_builders["MultiviewToy"]])
  batch = _take(dataset, 1)[0]
  # VIEW_COUNTS = (3, 4, 2, 3, 1, 3): groups of 1 and 2 views get flag 0.
  assert sorted(batch["flag"].tolist()) == [0, 0, 2, 2, 2, 2]
  for flag, landmarks in zip(batch["flag"], batch["landmarks"]):
    distinct = len({tuple(lm[0]) for lm in landmarks})
    assert distinct == 3 if flag else distinct < 3


def test_flag_defaults_by_dataset():
  assert pipeline.SourceSpec("synthetic_multiview/small").resolved_flag == 2
  assert pipeline.SourceSpec("celeba").resolved_flag == 0
  assert pipeline.SourceSpec("celeba", flag=1).resolved_flag == 1


def test_video_windows_have_the_target_in_the_middle(toy_builders):
  spec = pipeline.SourceSpec("video_toy", frame_step=2, window_stride=1)
  dataset = pipeline.training_dataset(
      [spec], _config(batch_size=3, repeat=False),
      builders=[toy_builders["VideoToy"]])
  batch = _take(dataset, 1)[0]
  # 7 frames, windows (t, t+2, t+4) for t = 0, 1, 2.
  frame_index = batch["landmarks"][:, :, 0, 0]
  np.testing.assert_array_equal(frame_index, [[0, 2, 4], [1, 3, 5], [2, 4, 6]])
  grey = batch["images"][:, :, 0, 0, 0] * 255
  np.testing.assert_allclose(grey, 30 * frame_index, atol=1.0)
  assert (batch["flag"] == 2).all()


def test_video_windows_skip_dropped_frames(toy_builders):
  spec = pipeline.SourceSpec("video_with_gap_toy", frame_step=1)
  dataset = pipeline.training_dataset(
      [spec], _config(batch_size=3, repeat=False),
      builders=[toy_builders["VideoWithGapToy"]])
  batches = _take(dataset, 2)
  # Stored positions 0..6 are frames 0, 2, 4, 6, 10, 12, 14: windows
  # (2,3,4) = frames 4, 6, 10 and (3,4,5) = 6, 10, 12 span the gap.
  assert len(batches) == 1
  np.testing.assert_array_equal(batches[0]["landmarks"][:, :, 0, 0],
                                [[0, 1, 2], [1, 2, 3], [4, 5, 6]])


def test_deterministic_mode_repeats_exactly(toy_builders):
  spec = pipeline.SourceSpec("multiview_toy")
  config = _config(augment=augment_lib.AugmentConfig(), shuffle_buffer=4)
  first, second = [
      _take(pipeline.training_dataset([spec], config,
                                      builders=[toy_builders["MultiviewToy"]]),
            4) for _ in range(2)]
  for a, b in zip(first, second):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  other = _take(pipeline.training_dataset(
      [spec], _config(augment=augment_lib.AugmentConfig(), shuffle_buffer=4,
                      seed=4),
      builders=[toy_builders["MultiviewToy"]]), 4)
  assert any(not np.array_equal(a["images"], b["images"])
             for a, b in zip(first, other))


def test_mixing_follows_the_weights(toy_builders):
  specs = [pipeline.SourceSpec("dark", weight=0.8),
           pipeline.SourceSpec("bright", weight=0.2)]
  dataset = pipeline.training_dataset(
      specs, _config(batch_size=10),
      builders=[toy_builders["MultiviewToy"], toy_builders["MultiviewToyBright"]])
  greys = np.concatenate([b["images"][:, 0, 0, 0, 0]
                          for b in _take(dataset, 40)])
  bright_fraction = np.mean(greys > 0.5)
  # 400 draws: binomial std of the fraction is 0.02.
  assert 0.12 < bright_fraction < 0.28


def test_augmentation_keeps_landmarks_on_content_and_colours_shared(toy_builders):
  spec = pipeline.SourceSpec("multiview_toy")
  strong = augment_lib.AugmentConfig(brightness=0.2, contrast=0.0,
                                     saturation=0.0, hue=0.0, scale=0.2,
                                     shift=0.1)
  dataset = pipeline.training_dataset([spec], _config(augment=strong),
                                      builders=[toy_builders["MultiviewToy"]])
  moved = 0
  for batch in _take(dataset, 3):
    for views_img, views_lm in zip(batch["images"], batch["landmarks"]):
      backgrounds = []
      for image, landmarks in zip(views_img, views_lm):
        # Bilinear resampling of a 1-pixel dot at zoom != 1 moves its
        # centroid by up to ~0.15 px; the warp itself moves it by up to 3 px.
        np.testing.assert_allclose(_dot_centroid(image), landmarks[0],
                                   atol=0.25)
        backgrounds.append(np.median(image.mean(-1)))
      # One brightness shift for all views of a sample.
      np.testing.assert_allclose(backgrounds, backgrounds[0], atol=2e-3)
    moved += np.abs(batch["landmarks"][..., 1:, :] - SIZE / 2).max() > 0.5
  assert moved  # the geometric augmentation did something


EXTRAS = ("depth", "face_mask", "landmarks_true", "coefficients", "identity")


def test_extra_features_travel_with_their_views(toy_builders):
  """Ground truth asked for by name follows its views through resizing and
  the zoom/shift augmentation: the depth patch and the mask sit on the dot,
  exact landmarks move with it, depth values are never blended."""
  strong = augment_lib.AugmentConfig(brightness=0.0, contrast=0.0,
                                     saturation=0.0, hue=0.0, scale=0.2,
                                     shift=0.1)
  size = 2 * SIZE
  dataset = pipeline.training_dataset(
      [pipeline.SourceSpec("ground_truth_toy")],
      _config(augment=strong, image_size=size, extra_features=EXTRAS),
      builders=[toy_builders["GroundTruthToy"]])
  spec = dataset.element_spec
  assert spec["depth"].shape == (2, 3, size, size, 1)
  assert spec["face_mask"].shape == (2, 3, size, size, 1)
  assert spec["landmarks_true"].shape == (2, 3, 68, 2)
  assert spec["coefficients"].shape == (2, 3, 4)
  assert spec["identity"].shape == (2,)
  for batch in _take(dataset, 3):
    assert batch["has_depth"].all() and batch["has_identity"].all()
    assert set(np.unique(batch["depth"])) <= {0.0, GroundTruthToy.DEPTH}
    for b in range(2):
      e = int(batch["coefficients"][b, 0, 1])
      assert batch["identity"][b].decode() == f"gt{e}"
      np.testing.assert_array_equal(batch["coefficients"][b, :, 0], [0, 1, 2])
      for v in range(3):
        dot = _dot_centroid(batch["images"][b, v])
        np.testing.assert_allclose(batch["landmarks_true"][b, v, 0],
                                   batch["landmarks"][b, v, 0], atol=1e-4)
        np.testing.assert_allclose(dot, batch["landmarks_true"][b, v, 0],
                                   atol=0.3)
        for key in ("depth", "face_mask"):
          rows, cols = np.nonzero(batch[key][b, v, ..., 0] > 0.5 * (
              GroundTruthToy.DEPTH if key == "depth" else 1.0))
          centre = np.array([cols.mean(), rows.mean()])
          np.testing.assert_allclose(centre, dot, atol=0.6)


def test_sources_without_an_extra_feature_give_zeros_and_say_so(toy_builders):
  """Mixed with a source lacking them, the extras are zeros with has_ False,
  for multi-view groups and for video windows alike."""
  specs = [pipeline.SourceSpec("ground_truth_toy", weight=1.0),
           pipeline.SourceSpec("multiview_toy", weight=1.0),
           pipeline.SourceSpec("video_toy", weight=1.0)]
  builders = [toy_builders[name] for name in
              ("GroundTruthToy", "MultiviewToy", "VideoToy")]
  dataset = pipeline.training_dataset(
      specs, _config(batch_size=6, extra_features=EXTRAS,
                     augment=augment_lib.AugmentConfig()),
      builders=builders)
  assert dataset.element_spec["coefficients"].shape == (6, 3, 4)
  seen = set()
  for batch in _take(dataset, 4):
    for b in range(6):
      has = batch["has_depth"][b]
      assert has == batch["has_coefficients"][b] == batch["has_face_mask"][b]
      identity = batch["identity"][b].decode()
      seen.add(identity[:2])
      if has:
        assert identity.startswith("gt")
        continue
      for key in ("depth", "face_mask", "landmarks_true", "coefficients"):
        assert not batch[key][b].any(), key
      # Identity is stored by every source (the core features).
      assert batch["has_identity"][b] and identity in (
          "p0",) + tuple(f"person{e}" for e in range(6))
  assert {"gt", "p0", "pe"} <= seen


def test_unknown_extra_feature_is_one_clear_error():
  with pytest.raises(ValueError, match="Unknown extra batch feature.*known:"):
    pipeline.PipelineConfig(extra_features=("depht",)).extras


def test_element_sharding_splits_the_data(toy_builders):
  spec = pipeline.SourceSpec("multiview_toy")
  seen = []
  for pipeline_id in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2,
                                         input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)
    dataset = pipeline.training_dataset(
        [spec], _config(batch_size=1, repeat=False), input_context=context,
        builders=[toy_builders["MultiviewToy"]])
    seen.append({tuple(b["landmarks"][0, 0, 0]) for b in _take(dataset, 10)})
  assert seen[0] and seen[1] and not seen[0] & seen[1]


def test_missing_dataset_says_how_to_build_it(tmp_path):
  spec = pipeline.SourceSpec("synthetic_multiview/small")
  with pytest.raises(pipeline.DatasetNotPreparedError,
                     match="tfds build tfds_builders/synthetic_multiview "
                     "--config=small"):
    pipeline.load_builder(spec, data_dir=str(tmp_path))


def test_a_dataset_of_another_packaged_face_model_is_refused():
  # pylint: disable=g-import-not-at-top
  import types
  from mgc_tf.facemodel import loaders

  def builder(metadata):
    return types.SimpleNamespace(info=types.SimpleNamespace(
        metadata=metadata, full_name="synthetic_multiview/ict_tiny/3.0.0"))

  ict = loaders.load_face_model("embedded-ict-light-v1")
  synthetic = loaders.load_face_model("embedded-synthetic-v1")
  recorded = builder({"face_model": "embedded-ict-light-v1"})
  with pytest.raises(pipeline.DatasetError) as error:
    pipeline.check_face_model(recorded, synthetic)
  assert "--face_model=embedded-ict-light-v1" in str(error.value)
  assert "'embedded-synthetic-v1'" in str(error.value)
  pipeline.check_face_model(recorded, ict)
  # Real photos record no face model; an unknown record is not ours.
  pipeline.check_face_model(builder({}), synthetic)
  pipeline.check_face_model(builder(None), synthetic)
  pipeline.check_face_model(builder({"face_model": "my-model"}), synthetic)


def test_parse_sources():
  specs = pipeline.parse_sources(
      "synthetic_multiview/small:0.7, video_folder[frame_step=2,"
      "window_stride=4]:0.3,multipie:1.0.0", data_dir="/d")
  assert [s.name for s in specs] == ["synthetic_multiview/small",
                                     "video_folder", "multipie:1.0.0"]
  assert [s.weight for s in specs] == [0.7, 0.3, 1.0]
  assert specs[1].frame_step == 2 and specs[1].window_stride == 4
  assert all(s.data_dir == "/d" for s in specs)
  with pytest.raises(ValueError, match="Unknown source option"):
    pipeline.parse_sources("a[stride=2]")
  with pytest.raises(ValueError, match="must be > 0"):
    pipeline.parse_sources("a:0")
