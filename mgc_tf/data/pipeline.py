"""N-view training batches from one or several TFDS datasets.

    sources = parse_sources("synthetic_multiview/small:0.7,video_folder:0.3")
    dataset = training_dataset(sources, PipelineConfig(batch_size=5))
    batch = next(iter(dataset))
    # images [5, 3, 224, 224, 3] float32 in [0, 1], landmarks [5, 3, 68, 2],
    # skin [5, 3, 224, 224, 1] float32 in [0, 1], flag [5] int32

What happens, per source: read the prepared TFDS split (images left encoded),
repeat, pick N views (multi-view sets: N consecutive views of a group; video:
N-frame windows with the target in the middle), then all sources are mixed by
weight, shuffled while still encoded (cheap), decoded in parallel, resized to
the training size, augmented and batched with a static batch size
(the rasterizer needs it).

Flags (see mgc_tf.losses.mgc_loss): 0 single view, 1 multi-view, 2 multi-view
with epipolar. A source's default is 2 (multi-view sets and video), 0 for
single-view sources (`celeba`); a group with fewer than N views is padded by
repeating views and gets flag 0.
"""

import dataclasses
import functools
from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.data import augment as augment_lib
from mgc_tf.data import extra_features as extra_lib
from mgc_tf.data import features as features_lib
from mgc_tf.data import prepare
from mgc_tf.io.bad_input import NUM_LANDMARKS

# Single-view sources: their groups are same-identity images at different
# instants, so only the 2D losses apply.
SINGLE_VIEW_DATASETS = ("celeba",)
FLAG_MULTIVIEW_EPIPOLAR = 2
FRAME_INDICES_KEY = "frame_indices"


# A --dataset that cannot be used (ValueError; one-line message), and its
# case of a known dataset not built into data_dir.
DatasetError = prepare.DatasetError
DatasetNotPreparedError = prepare.DatasetNotPreparedError


@dataclasses.dataclass(frozen=True)
class SourceSpec:
  """One TFDS dataset in the mix.

  Attributes:
    name: TFDS name with optional config and version,
      e.g. "synthetic_multiview/small" or "video_folder:1.0.0".
    weight: relative sampling weight (> 0).
    split: TFDS split, e.g. "train" or "train[:90%]".
    flag: flag of its samples; None picks 0 for single-view datasets
      (SINGLE_VIEW_DATASETS), else 2.
    data_dir: TFDS data dir; None uses the pipeline's (or TFDS' default).
    frame_step: video only: frames between consecutive views of a window.
    window_stride: video only: frames between the starts of two windows.
    without: extra features (`mgc_tf.data.extra_features`) the source
      stores but whose values must not be used: its samples get zeros and
      has_<name> False, as from a source that lacks them (e.g. a landmark
      set whose `identity` is a file name, not a person; SIR reads
      has_identity as "identity-labelled").
  """
  name: str
  weight: float = 1.0
  split: str = "train"
  flag: Optional[int] = None
  data_dir: Optional[str] = None
  frame_step: int = 1
  window_stride: int = 1
  without: Tuple[str, ...] = ()

  @property
  def dataset_name(self) -> str:
    return self.name.split("/")[0].split(":")[0]

  @property
  def resolved_flag(self) -> int:
    if self.flag is not None:
      return self.flag
    if self.dataset_name in SINGLE_VIEW_DATASETS:
      return 0
    return FLAG_MULTIVIEW_EPIPOLAR


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """How batches are made.

  Attributes:
    num_views: N views per sample (the middle one is the target).
    image_size: side of the training crops; stored crops are resized.
    batch_size: examples per batch produced by this input pipeline (for a
      strategy: the per-replica batch, see `training_dataset`).
    shuffle_buffer: samples in the shuffle buffer (encoded, so cheap).
    augment: augmentation strengths (augment_lib.NO_AUGMENTATION for none).
    deterministic: reproducible order and randomness (tests, debugging);
      slower, since parallel maps keep their order.
    seed: seed of every random choice.
    repeat: repeat the sources forever (training); False gives one pass,
      which for several sources ends when the first source runs out.
    data_dir: default TFDS data dir for the sources.
    extra_features: names of features to carry into the batch beside the
      core ones, each with a has_<name> [B] bool
      (`mgc_tf.data.extra_features`; sources without one give zeros).
    exact_mix: with several sources, every batch holds each source's share
      of the weights exactly (`batch_counts`; each source shuffled on its
      own) instead of drawing each sample's source at random.
  """
  num_views: int = 3
  image_size: int = 224
  batch_size: int = 5
  shuffle_buffer: int = 256
  augment: augment_lib.AugmentConfig = augment_lib.AugmentConfig()
  deterministic: bool = False
  seed: int = 0
  repeat: bool = True
  data_dir: Optional[str] = None
  extra_features: Tuple[str, ...] = ()
  exact_mix: bool = False

  @property
  def extras(self) -> Tuple[extra_lib.ExtraFeature, ...]:
    return extra_lib.lookup(self.extra_features)


def parse_sources(text: str, data_dir: Optional[str] = None) -> List[SourceSpec]:
  """Parses "name[:weight],name[:weight],..." into SourceSpecs.

  A trailing ":<number>" is the weight; "name:1.0.0" with dots is a version,
  so write "name:1.0.0:0.5" for a versioned source with a weight.
  Options go in brackets after the name: "video_folder[frame_step=2,
  window_stride=4,split=train,flag=2]:0.3"; `without=identity+depth` hides
  extra features the source stores (`SourceSpec.without`).
  """
  specs = []
  for item in _split_top_level(text):
    item = item.strip()
    if not item:
      continue
    options: Dict[str, str] = {}
    if "[" in item:
      head, rest = item.split("[", 1)
      body, tail = rest.split("]", 1)
      for option in body.split(","):
        key, _, value = option.partition("=")
        options[key.strip()] = value.strip()
      item = head + tail
    weight = 1.0
    head, sep, last = item.rpartition(":")
    if sep and _is_weight(last):
      item, weight = head, float(last)
    unknown = set(options) - {"split", "flag", "frame_step", "window_stride",
                              "data_dir", "without"}
    if unknown:
      raise ValueError(f"Unknown source option(s) {sorted(unknown)} in "
                       f"{text!r}; known: split, flag, frame_step, "
                       "window_stride, data_dir, without")
    without = tuple(name.strip() for name in
                    options.get("without", "").split("+") if name.strip())
    extra_lib.lookup(without)  # An unknown name is one clear error.
    specs.append(SourceSpec(
        name=item, weight=weight,
        split=options.get("split", "train"),
        flag=int(options["flag"]) if "flag" in options else None,
        data_dir=options.get("data_dir", data_dir),
        frame_step=int(options.get("frame_step", 1)),
        window_stride=int(options.get("window_stride", 1)),
        without=without))
  if not specs:
    raise ValueError(f"No dataset in {text!r}; expected e.g. "
                     "'synthetic_multiview/small' or 'a:0.7,b:0.3'")
  for spec in specs:
    if spec.weight <= 0:
      raise ValueError(f"Weight of {spec.name} must be > 0, got {spec.weight}")
  return specs


def _split_top_level(text: str) -> List[str]:
  """Splits on commas outside brackets."""
  parts, depth, current = [], 0, []
  for char in text:
    if char == "[":
      depth += 1
    elif char == "]":
      depth -= 1
    if char == "," and depth == 0:
      parts.append("".join(current))
      current = []
    else:
      current.append(char)
  parts.append("".join(current))
  return parts


def _is_weight(text: str) -> bool:
  if text.count(".") > 1:
    return False  # a version like 1.0.0
  try:
    float(text)
  except ValueError:
    return False
  return True


def load_builder(spec: SourceSpec, data_dir: Optional[str] = None):
  """The prepared TFDS builder of a source, or a clear error how to build it.

  Raises:
    DatasetError: an unknown dataset or config (one line, with close names).
    DatasetNotPreparedError: not built in data_dir (one line, with the
      `tfds build` command).
  """
  data_dir = spec.data_dir or data_dir
  prepare.check_dataset_name(spec.name, data_dir)
  if prepare.folder_missing(spec.name, data_dir):
    raise DatasetNotPreparedError(_build_hint(spec, data_dir, None))
  try:
    builder = tfds.builder(spec.name, data_dir=data_dir)
  except Exception as error:  # pylint: disable=broad-except
    raise DatasetNotPreparedError(_build_hint(spec, data_dir, error)) from error
  if not builder.is_prepared():
    raise DatasetNotPreparedError(_build_hint(spec, data_dir, None))
  return builder


def rendered_face_model(spec: SourceSpec,
                        data_dir: Optional[str] = None) -> Optional[str]:
  """The packaged face model a prepared synthetic source is rendered from
  (its metadata "face_model"); None for any other source, and for one that
  is not prepared (`load_builder` reports that in its own words)."""
  try:
    builder = load_builder(spec, data_dir)
  except DatasetError:
    return None
  return _recorded_face_model(builder)


def _recorded_face_model(builder) -> Optional[str]:
  """The metadata "face_model" a synthetic builder records; else None."""
  return (builder.info.metadata or {}).get("face_model")


@functools.lru_cache(maxsize=None)
def _packaged_fingerprint(name: str) -> str:
  """A packaged face model's fingerprint, loaded once per process (every
  periodic evaluation checks its dataset)."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import loaders
  return loaders.load_face_model(name).fingerprint()


def check_face_model(builder, face_model) -> None:
  """Refuses a dataset rendered from another packaged face model.

  A synthetic dataset records the packaged face model it was rendered from
  (metadata "face_model"); its ground-truth coefficients and depths are in
  that model's layout and topology. Datasets without the record (real
  photos) suit any face model.

  Args:
    builder: a TFDS builder.
    face_model: the run's `FaceModel` (compared by fingerprint).

  Raises:
    DatasetError: one line naming both models and the fix.
  """
  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import loaders
  recorded = _recorded_face_model(builder)
  if recorded not in loaders.embedded_model_names():
    return
  if _packaged_fingerprint(recorded) != face_model.fingerprint():
    used = face_model.name.split(":")[0]
    raise DatasetError(
        f"{builder.info.full_name} was rendered from the face model "
        f"'{recorded}', but this run uses '{used}': its ground truth is in "
        f"the other model's layout. Pass --face_model={recorded}, or use a "
        f"dataset rendered from '{used}' (docs/datasets/"
        "synthetic_multiview.md).")


def _build_hint(spec: SourceSpec, data_dir: Optional[str], error) -> str:
  """One line: not prepared, and the command that builds it."""
  name = spec.dataset_name
  config = spec.name.split("/")[1].split(":")[0] if "/" in spec.name else None
  ours = prepare.builder_names()
  ours_or_unknown = name in ours or not ours
  command = (f"tfds build tfds_builders/{name}" if ours_or_unknown
             else f"tfds build {name}")
  if config:
    command += f" --config={config}"
  command += f" --data_dir={data_dir or '~/tensorflow_datasets'}"
  if name != "synthetic_multiview" and ours_or_unknown:
    command += " --manual_dir=<where you put the downloaded files>"
  # TFDS' DatasetNotFoundError lists every dataset it knows (hundreds of
  # lines): name the error only, and only its first line otherwise.
  reason = ""
  if error is not None and type(error).__name__ != "DatasetNotFoundError":
    first_line = (str(error).strip().splitlines() or [""])[0][:200]
    reason = f" ({type(error).__name__}: {first_line})"
  return (f"dataset {spec.name!r} is not prepared in data_dir "
          f"{data_dir or '(TFDS default)'}{reason}; build it with: "
          f"{command}" + (f" (see docs/datasets/{name}.md)"
                          if ours_or_unknown else ""))


def _sample_keys(config: PipelineConfig) -> Tuple[str, ...]:
  """Keys of a raw example that hold one value per example, not per view."""
  keys = []
  for feature in config.extras:
    keys.append(extra_lib.has_key(feature.name))
    if not feature.kind.per_view:
      keys.append(feature.name)
  return tuple(keys)


def _read_source(builder, spec: SourceSpec, config: PipelineConfig,
                 input_context: Optional[tf.distribute.InputContext],
                 templates: Optional[Dict[str, extra_lib.ValueTemplate]] = None
                 ) -> tf.data.Dataset:
  """Reads one split with the image features left encoded, sharded."""
  features = builder.info.features
  is_video = features_lib.FRAMES_KEY in features
  image_key = features_lib.FRAMES_KEY if is_video else features_lib.IMAGE_KEY
  if image_key not in features or features_lib.LANDMARKS_KEY not in features:
    raise ValueError(
        f"{spec.name} has features {sorted(features.keys())}; training needs "
        f"{image_key!r} and {features_lib.LANDMARKS_KEY!r} (mgc_tf.data.features)")
  has_skin = features_lib.SKIN_KEY in features
  decoders = {image_key: tfds.decode.SkipDecoding()}
  if has_skin:
    decoders[features_lib.SKIN_KEY] = tfds.decode.SkipDecoding()
  for feature in config.extras:
    if feature.kind is extra_lib.Kind.VIEW_IMAGE and feature.name in features:
      decoders[feature.name] = tfds.decode.SkipDecoding()

  num_shards = builder.info.splits[spec.split].num_shards
  shard_files = (input_context is not None
                 and input_context.num_input_pipelines > 1
                 and num_shards >= input_context.num_input_pipelines)
  read_config = tfds.ReadConfig(
      shuffle_seed=config.seed,
      input_context=input_context if shard_files else None,
      try_autocache=False)
  dataset = builder.as_dataset(
      split=spec.split, decoders=decoders, read_config=read_config,
      shuffle_files=not config.deterministic)
  if (input_context is not None and input_context.num_input_pipelines > 1
      and not shard_files):
    # Fewer files than workers: shard by element instead.
    dataset = dataset.shard(input_context.num_input_pipelines,
                            input_context.input_pipeline_id)

  def core(example):
    out = {
        "images": example[image_key],
        "landmarks": tf.cast(example[features_lib.LANDMARKS_KEY], tf.float32),
    }
    out["skin"] = (example[features_lib.SKIN_KEY] if has_skin
                   else tf.fill(tf.shape(example[image_key]), ""))
    if is_video:
      # Original frame numbers, so windows can avoid dropped frames.
      out["frame_indices"] = (
          tf.cast(example[FRAME_INDICES_KEY], tf.int64)
          if FRAME_INDICES_KEY in features
          else tf.range(tf.shape(example[image_key], out_type=tf.int64)[0]))
    stored = [key for key in features.keys() if key not in spec.without]
    out.update(extra_lib.read(example, stored, config.extras,
                              templates or {},
                              tf.shape(example[image_key])[0]))
    return out

  return dataset.map(core), is_video


def _video_windows(example, num_views: int, frame_step: int,
                   window_stride: int, sample_keys=()) -> tf.data.Dataset:
  """All N-frame windows of one video: frames s, s+step, ..., target middle.

  A window that spans frames the builder dropped (no face, bad landmarks:
  a gap in `frame_indices` wider than the video's usual spacing) is left
  out, so the views of a window are evenly spaced in time.
  """
  length = tf.shape(example["images"])[0]
  span = (num_views - 1) * frame_step
  starts = tf.range(0, tf.maximum(length - span, 0), window_stride)
  indices = starts[:, None] + tf.range(num_views)[None, :] * frame_step
  frame_numbers = example.pop("frame_indices")
  spacing = tf.reduce_min(tf.concat(
      [frame_numbers[1:] - frame_numbers[:-1], [tf.int64.max]], axis=0))
  window_numbers = tf.gather(frame_numbers, indices)
  evenly_spaced = tf.equal(window_numbers[:, -1] - window_numbers[:, 0],
                           span * spacing)
  indices = tf.boolean_mask(indices, evenly_spaced)
  windows = tf.shape(indices)[0]
  return tf.data.Dataset.from_tensor_slices({
      key: (tf.fill([windows], value) if key in sample_keys
            else tf.gather(value, indices))
      for key, value in example.items()})


def _select_views(example, index, num_views: int, flag: int, seed: int,
                  sample_keys=()):
  """N consecutive views of a group (random start); pads short groups.

  Returns the example with [N] encoded images/skin, [N, 68, 2] landmarks and
  a scalar flag (0 when the group had fewer than N views).
  """
  count = tf.shape(example["images"])[0]
  start_seed = tf.stack([tf.cast(seed, tf.int64), index])
  max_start = tf.maximum(count - num_views, 0)
  start = tf.random.stateless_uniform([], start_seed, 0, max_start + 1,
                                      dtype=tf.int32)
  indices = (start + tf.range(num_views)) % tf.maximum(count, 1)
  selected = {key: value if key in sample_keys else tf.gather(value, indices)
              for key, value in example.items()}
  selected["flag"] = tf.where(count >= num_views, flag, 0)
  return selected


def _decode_images(encoded: tf.Tensor, channels: int) -> tf.Tensor:
  """[N] encoded images of one size -> [N, H, W, C] uint8."""
  return tf.map_fn(
      lambda data: tf.io.decode_image(data, channels=channels,
                                      expand_animations=False),
      encoded,
      fn_output_signature=tf.TensorSpec([None, None, channels], tf.uint8))


def _to_float_size(images: tf.Tensor, image_size: int) -> tf.Tensor:
  """[N, H, W, C] uint8 -> [N, S, S, C] float32 in [0, 1]."""
  images = tf.image.convert_image_dtype(images, tf.float32)
  return tf.image.resize(images, [image_size, image_size], antialias=True)


def _decode_sample(sample, seed, config: PipelineConfig):
  """Decodes, resizes and augments one N-view sample."""
  num_views, size = config.num_views, config.image_size
  raw = _decode_images(sample["images"], 3)
  raw_size = tf.cast(tf.shape(raw)[1], tf.float32)
  images = _to_float_size(raw, size)
  skin = tf.cond(
      tf.equal(tf.strings.length(sample["skin"][0]), 0),
      lambda: tf.ones([num_views, size, size, 1]),
      lambda: _to_float_size(_decode_images(sample["skin"], 1), size))
  # Resizing maps pixel centres x -> (x + 0.5) * scale - 0.5.
  scale = size / raw_size
  landmarks = (sample["landmarks"] + 0.5) * scale - 0.5
  landmarks = tf.ensure_shape(landmarks, [num_views, NUM_LANDMARKS, 2])
  extras = extra_lib.decode(sample, config.extras, num_views, size, raw_size,
                            _decode_images)
  maps, points = extra_lib.augmentable(extras, config.extras)
  images, skin, landmarks, maps, points = augment_lib.augment_views(
      tf.ensure_shape(images, [num_views, size, size, 3]),
      tf.ensure_shape(skin, [num_views, size, size, 1]),
      landmarks, seed, config.augment, extra_maps=maps, extra_points=points)
  extras.update(maps)
  extras.update(points)
  return {
      "images": images,
      "landmarks": landmarks,
      "skin": skin,
      "flag": tf.cast(sample["flag"], tf.int32),
      **extra_lib.zero_missing(extras, config.extras),
  }


def samples_from_source(builder, spec: SourceSpec, source_index: int,
                        config: PipelineConfig,
                        input_context: Optional[tf.distribute.InputContext] = None
                        ) -> tf.data.Dataset:
  """Encoded N-view samples of one source (before mixing and decoding)."""
  templates = extra_lib.value_templates([builder], config.extras)
  return _samples(builder, spec, source_index, config, input_context,
                  templates)


def _samples(builder, spec: SourceSpec, source_index: int,
             config: PipelineConfig, input_context, templates
             ) -> tf.data.Dataset:
  dataset, is_video = _read_source(builder, spec, config, input_context,
                                   templates)
  sample_keys = _sample_keys(config)
  if config.repeat:
    dataset = dataset.repeat()
  if is_video:
    dataset = dataset.flat_map(lambda ex: _video_windows(
        ex, config.num_views, spec.frame_step, spec.window_stride,
        sample_keys))
  # Per-source seed stream: (seed + source, running index).
  seed = config.seed * 1000 + source_index
  dataset = dataset.enumerate().map(
      lambda index, ex: _select_views(ex, index, config.num_views,
                                      spec.resolved_flag, seed, sample_keys))
  return dataset


def batch_counts(weights: Sequence[float], batch_size: int) -> List[int]:
  """Samples of each source in a batch of `batch_size`, by the weights.

  Largest remainder: floor(B w_i / sum w), then one more for the sources
  with the largest fractional parts (ties: the earlier source).

  Raises:
    ValueError: a source would get no sample in a batch.
  """
  total = float(sum(weights))
  shares = [batch_size * w / total for w in weights]
  counts = [int(share) for share in shares]
  order = sorted(range(len(shares)), key=lambda i: (counts[i] - shares[i], i))
  for i in order[:batch_size - sum(counts)]:
    counts[i] += 1
  if min(counts) < 1:
    raise ValueError(
        f"An exact mix of weights {list(weights)} in batches of "
        f"{batch_size} gives a source no sample ({counts}); raise the batch "
        "size or the weight, or drop --exact_mix")
  return counts


def _exact_mix(per_source: Sequence[tf.data.Dataset],
               weights: Sequence[float],
               config: PipelineConfig) -> tf.data.Dataset:
  """Interleaves the sources so that each batch holds `batch_counts`."""
  counts = batch_counts(weights, config.batch_size)
  if config.shuffle_buffer > 1:
    # Shuffled per source, before mixing: shuffling after it would undo
    # the per-batch counts.
    per_source = [dataset.shuffle(config.shuffle_buffer,
                                  seed=config.seed + index)
                  for index, dataset in enumerate(per_source)]
  pattern = [index for index, count in enumerate(counts)
             for _ in range(count)]
  choices = tf.data.Dataset.from_tensor_slices(
      tf.constant(pattern, tf.int64)).repeat()
  return tf.data.Dataset.choose_from_datasets(
      per_source, choices, stop_on_empty_dataset=not config.repeat)


def training_dataset(sources: Sequence[SourceSpec], config: PipelineConfig,
                     input_context: Optional[tf.distribute.InputContext] = None,
                     builders: Optional[Sequence] = None) -> tf.data.Dataset:
  """Batches of N-view samples mixed from `sources`.

  Args:
    sources: datasets and their weights.
    config: sizes, augmentation, determinism.
    input_context: from `strategy.distribute_datasets_from_function`; the
      data is sharded over input pipelines (by file when there are enough
      files, else by element) and the batch is config.batch_size (pass the
      per-replica size).
    builders: prepared TFDS builders, one per source (default: loaded with
      `load_builder`); lets callers and tests pass builders directly.

  Returns:
    Dataset of dicts: images [B, N, S, S, 3] float32 in [0, 1], landmarks
    [B, N, 68, 2] float32 pixels, skin [B, N, S, S, 1] float32 in [0, 1],
    flag [B] int32, with a static batch size B = config.batch_size; plus,
    per name in config.extra_features, <name> and has_<name> [B] bool
    (`mgc_tf.data.extra_features`).
  """
  if builders is None:
    builders = [load_builder(spec, config.data_dir) for spec in sources]
  # Shapes of array features come from the sources that store them, so the
  # others can give zeros of the same form.
  templates = extra_lib.value_templates(builders, config.extras)
  per_source = [_samples(builder, spec, index, config, input_context,
                         templates)
                for index, (builder, spec) in enumerate(zip(builders, sources))]
  exact = config.exact_mix and len(per_source) > 1
  if len(per_source) == 1:
    dataset = per_source[0]
  elif exact:
    dataset = _exact_mix(per_source, [spec.weight for spec in sources],
                         config)
  else:
    total = sum(spec.weight for spec in sources)
    dataset = tf.data.Dataset.sample_from_datasets(
        per_source, weights=[spec.weight / total for spec in sources],
        seed=config.seed, stop_on_empty_dataset=not config.repeat)
  if config.shuffle_buffer > 1 and not exact:
    dataset = dataset.shuffle(config.shuffle_buffer, seed=config.seed)
  augment_seed = config.seed * 1000 + 999
  parallel = tf.data.AUTOTUNE
  dataset = dataset.enumerate().map(
      lambda index, sample: _decode_sample(
          sample, tf.stack([tf.cast(augment_seed, tf.int64), index]), config),
      num_parallel_calls=parallel,
      # An exact mix needs the order kept, or batches would mix unevenly.
      deterministic=config.deterministic or exact)
  dataset = dataset.batch(config.batch_size, drop_remainder=True)
  options = tf.data.Options()
  options.deterministic = config.deterministic
  # Sharding is done above explicitly; stop tf.distribute from re-sharding.
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.OFF)
  dataset = dataset.with_options(options)
  return dataset.prefetch(tf.data.AUTOTUNE)
