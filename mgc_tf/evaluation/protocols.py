"""Per-dataset evaluation protocols: a predictor over a prepared TFDS split.

Shared by `python -m mgc_tf.evaluate` and the trainer's periodic evaluation
(`periodic.py`), so both report the same numbers:

    predictor = predictor_lib.predictor_from_args(model_dir="runs/quick")
    builder = load_dataset_builder("synthetic_multiview/small", data_dir)
    result = evaluate_builder(predictor, builder, "test")
    print(format_table(result))      # result.metrics: name -> float

Protocols (metric names, formulas and units: docs/evaluation.md):
  multi-view sets (synthetic_multiview and the other builders with `images`):
    landmark NME per |yaw| bin, pose-angle errors, vertex error after rigid
    alignment, depth error without alignment, render PSNR/SSIM on the face
    mask, epipolar error and relative-rotation error of the predicted poses
    on (target, source) view pairs -- each when the set has the ground truth
    it needs.
  aflw2000_3d: landmark NME in the ORIGINAL image (predicted crop landmarks
    mapped back with the stored transform), normalised by the ground-truth
    box sqrt(w h), per |yaw| bin (MGCNet Table 1a); render PSNR/SSIM.
  micc_florence: per video, the predicted shapes (identity + expression,
    model space, mm) averaged over its frames, compared with the subject's
    scan (`scan_metrics`), reported per setting (MGCNet Table 1b); images
    rendered from the scans (MGCNet Fig. 7b), one by one.

Images are fed to the predictor resized to its input size (antialiased, as
the training pipeline does); landmarks, depth and renders are measured at the
dataset's stored crop size, with the face model's camera scaled to it (the
decoder's convention, in which the synthetic set was rendered).
"""

import dataclasses
import json
import os
import re
import time
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.data import pipeline
from mgc_tf.data import prepare
from mgc_tf.evaluation import metrics
from mgc_tf.evaluation import render_quality
from mgc_tf.evaluation import scan_metrics
from mgc_tf.faces2d import alignment
from mgc_tf.inference import predictor as predictor_lib
from mgc_tf.render import renderer
from mgc_tf.training import progress as progress_lib

AFLW2000_3D = "aflw2000_3d"
MICC_FLORENCE = "micc_florence"
SYNTHETIC = prepare.SYNTHETIC
#: Images per predictor/render call.
DEFAULT_BATCH_SIZE = 24
#: Seconds between progress lines.
PROGRESS_EVERY_SECONDS = 10.0


@dataclasses.dataclass
class EvaluationResult:
  """What a protocol measured.

  Attributes:
    dataset: TFDS name (with config) of the evaluated set.
    split: the split.
    metrics: metric name -> value (docs/evaluation.md lists them).
    counts: what was evaluated, e.g. {"examples": 60, "images": 180}.
    details: per-item records (MICC: one per video), for the JSON.
  """
  dataset: str
  split: str
  metrics: Dict[str, float]
  counts: Dict[str, int]
  details: List[dict] = dataclasses.field(default_factory=list)

  def to_json(self, model: str = "") -> str:
    """The JSON that `python -m mgc_tf.evaluate` writes (NaN/inf -> null)."""
    def clean(value):
      return value if np.isfinite(value) else None
    return json.dumps({
        "dataset": self.dataset, "split": self.split, "model": model,
        "counts": self.counts,
        "metrics": {k: clean(v) for k, v in self.metrics.items()},
        "details": self.details,
    }, indent=2, sort_keys=False)


class ProgressLog:
  """Prints 'evaluate NAME: done/total UNIT  rate/s  ETA' now and then.

  Args:
    label: what is evaluated.
    total: items expected (0: unknown).
    unit: the items' name.
    enabled: print only when True.
    every_seconds: seconds between lines.
  """

  def __init__(self, label: str, total: int, unit: str, enabled: bool = True,
               every_seconds: float = PROGRESS_EVERY_SECONDS):
    self.label, self.total, self.unit = label, int(total), unit
    self.enabled = enabled
    self.every_seconds = every_seconds
    self.start = time.perf_counter()
    self.last = self.start

  def update(self, done: int, final: bool = False) -> None:
    now = time.perf_counter()
    if not self.enabled or (not final and now - self.last < self.every_seconds):
      return
    self.last = now
    rate = done / max(now - self.start, 1e-9)
    total = f"/{self.total}" if self.total else ""
    eta = ""
    if self.total and not final and rate > 0:
      eta = "  ETA " + progress_lib.format_duration(
          (self.total - done) / rate)
    print(f"evaluate {self.label}: {done}{total} {self.unit}  "
          f"{rate:.2f} {self.unit}/s{eta}", flush=True)


def load_dataset_builder(dataset: str, data_dir: Optional[str] = None,
                         split: str = "test", build_if_missing: bool = True):
  """The prepared builder of `dataset` (e.g. "synthetic_multiview/small").

  A missing synthetic_multiview config is built first when
  `build_if_missing` (it needs no download).

  Raises:
    pipeline.DatasetNotPreparedError: not prepared, with the `tfds build`
      command that prepares it.
  """
  if build_if_missing:
    prepare.ensure_synthetic(dataset, data_dir)
  return pipeline.load_builder(pipeline.SourceSpec(dataset, split=split),
                               data_dir)


def _as_float_images(images: np.ndarray) -> np.ndarray:
  return tf.image.convert_image_dtype(tf.convert_to_tensor(images),
                                      tf.float32).numpy()


def _render_over(decoder, coefficients: np.ndarray, images: np.ndarray):
  """Renders coefficients over float images [N, H, W, 3] at their size.

  Returns:
    (DecodedFace at crop size H, RenderOutput, rendered image clipped to
    [0, 1] as NumPy).
  """
  face, output = renderer.render_face(
      decoder, tf.convert_to_tensor(coefficients, tf.float32),
      background=tf.convert_to_tensor(images, tf.float32))
  return face, output, np.clip(output.image.numpy(), 0.0, 1.0)


def _predict_render_and_score(predictor, decoder, crops: np.ndarray, values):
  """Predicts crops [N, H, W, 3] (uint8), renders over them, scores the render.

  Adds render_psnr_db and render_ssim to `values`; returns (coefficients
  [N, K], DecodedFace at crop size H, RenderOutput).
  """
  coefficients = predictor.coefficients(
      predictor_lib.model_inputs(crops, predictor.image_size))
  inputs = _as_float_images(crops)
  face, output, rendered = _render_over(decoder, coefficients, inputs)
  mask = output.mask.numpy()
  values.add("render_psnr_db",
             render_quality.masked_psnr(rendered, inputs, mask))
  values.add("render_ssim", render_quality.masked_ssim(rendered, inputs, mask))
  return coefficients, face, output


def _split_size(builder, split: str) -> int:
  try:
    return int(builder.info.splits[split].num_examples)
  except (KeyError, ValueError, TypeError):
    return 0


def _examples(builder, split: str, max_examples: int,
              decoders: Optional[dict] = None) -> Iterable[dict]:
  dataset = builder.as_dataset(split=split, shuffle_files=False,
                               decoders=decoders)
  if max_examples:
    dataset = dataset.take(max_examples)
  return tfds.as_numpy(dataset)


def _chunks(examples: Iterable[dict], images_per_chunk: int,
            count: Callable[[dict], int]) -> Iterable[List[dict]]:
  """Groups examples so that each group holds >= images_per_chunk images
  (the last one fewer)."""
  chunk, images = [], 0
  for example in examples:
    chunk.append(example)
    images += count(example)
    if images >= images_per_chunk:
      yield chunk
      chunk, images = [], 0
  if chunk:
    yield chunk


def _yaw_bin_counts(yaws: np.ndarray) -> Dict[str, int]:
  bins = metrics.yaw_bin_index(yaws)
  return {f"images/{low:.0f}-{high:.0f}": int(np.sum(bins == index))
          for index, (low, high) in enumerate(metrics.YAW_BINS)}


def _mean(values) -> float:
  return float(np.mean(values)) if len(values) else float("nan")


class _Accumulator:
  """Per-image (or per-pair) values collected over batches."""

  def __init__(self):
    self.lists: Dict[str, list] = {}

  def add(self, name: str, values) -> None:
    self.lists.setdefault(name, []).append(
        np.asarray(values, np.float64).reshape(-1))

  def values(self, name: str) -> np.ndarray:
    parts = self.lists.get(name, [])
    return np.concatenate(parts) if parts else np.zeros([0])

  def __contains__(self, name: str) -> bool:
    return name in self.lists


# --- multi-view sets (synthetic_multiview, w300_lp, multipie, ...) -----------
def evaluate_multiview(predictor: predictor_lib.Predictor, builder,
                       split: str = "test",
                       batch_size: int = DEFAULT_BATCH_SIZE,
                       max_examples: int = 0,
                       progress: bool = True) -> EvaluationResult:
  """Evaluates every view of a multi-view split (module docstring).

  Each example's views are single images for the per-image metrics; its
  middle view is the target and every other view a source for the pair
  metrics (DESIGN.md: R_rel = R_s R_t^T, t_rel = t_s - R_rel t_t).

  Args:
    predictor: the model.
    builder: prepared TFDS builder with `images` [V, S, S, 3] and
      `landmarks` [V, 68, 2]; optional `yaw_degrees` [V], `pose` [V, 6],
      `coefficients` [V, K], `depth` [V, S, S] (synthetic_multiview).
    split: TFDS split.
    batch_size: images per predictor/render call (examples are not split).
    max_examples: evaluate at most this many examples (0: all).
    progress: print progress lines.

  Returns:
    An `EvaluationResult`; metrics (those the set supports): nme/0-30,
    nme/30-60, nme/60-90, nme/mean (percent), roll/yaw/pitch_error_deg,
    vertex_error_mm, depth_error_mm, render_psnr_db, render_ssim,
    epipolar_error_px, relative_rotation_error_deg.
  """
  decoder = predictor.decoder
  features = builder.info.features
  total = _split_size(builder, split)
  if max_examples:
    total = min(total, max_examples) if total else max_examples
  log = ProgressLog(f"{builder.info.full_name} {split}", total, "examples",
                    enabled=progress)
  values = _Accumulator()
  predicted_landmarks, true_landmarks, yaws = [], [], []
  num_examples = num_images = 0
  # Full [V, 6] poses in the decoder's convention (synthetic_multiview).
  has_pose = "pose" in features and features["pose"].shape[-1] == 6
  skin_decoder = ({"skin": tfds.decode.SkipDecoding()} if "skin" in features
                  else None)
  examples = _examples(builder, split, max_examples, skin_decoder)
  for chunk in _chunks(examples, batch_size, lambda e: len(e["images"])):
    views = [len(example["images"]) for example in chunk]
    images = np.concatenate([example["images"] for example in chunk])
    _, face, output = _predict_render_and_score(predictor, decoder, images,
                                                values)
    landmarks = np.concatenate([example["landmarks"] for example in chunk])
    predicted_landmarks.append(face.landmarks_2d.numpy())
    true_landmarks.append(landmarks)
    yaws.append(np.concatenate([
        example["yaw_degrees"] if "yaw_degrees" in example
        else np.zeros(count) for example, count in zip(chunk, views)]))
    pose = face.pose.numpy()
    if has_pose:
      true_pose = np.concatenate([example["pose"] for example in chunk])
      for name, errors in metrics.pose_angle_errors(pose, true_pose).items():
        values.add(name, errors)
    if ("coefficients" in features and
        features["coefficients"].shape[-1] == decoder.layout.size):
      groups = decoder.layout.split(tf.constant(np.concatenate(
          [example["coefficients"] for example in chunk]), tf.float32))
      true_shapes = decoder.shape(groups["identity"],
                                  groups["expression"]).numpy()
      values.add("vertex_error_mm", [
          metrics.aligned_vertex_error(p, t)
          for p, t in zip(face.shape.numpy(), true_shapes)])
    if "depth" in features:
      true_depth = np.concatenate([example["depth"] for example in chunk])
      values.add("depth_error_mm",
                 metrics.depth_error(output.depth.numpy(), true_depth))
    _pair_metrics(values, chunk, views, pose, face.intrinsics.numpy(),
                  has_pose)
    num_examples += len(chunk)
    num_images += len(images)
    log.update(num_examples)
  log.update(num_examples, final=True)
  if not num_images:
    raise ValueError(f"The split {split!r} of {builder.info.full_name} is "
                     "empty")
  yaws = np.concatenate(yaws)
  result = metrics.nme_per_yaw_bin(np.concatenate(predicted_landmarks),
                                   np.concatenate(true_landmarks), yaws)
  for name in ("roll_error_deg", "yaw_error_deg", "pitch_error_deg",
               "vertex_error_mm", "epipolar_error_px",
               "relative_rotation_error_deg"):
    if name in values:
      result[name] = _mean(values.values(name))
  for name in ("depth_error_mm", "render_psnr_db", "render_ssim"):
    if name in values:
      result[name] = metrics.finite_mean(values.values(name))
  counts = {"examples": num_examples, "images": num_images,
            "view_pairs": int(values.values("epipolar_error_px").size)}
  counts.update(_yaw_bin_counts(yaws))
  return EvaluationResult(dataset=builder.info.full_name, split=split,
                          metrics=result, counts=counts)


def _pair_metrics(values: _Accumulator, chunk: List[dict], views: List[int],
                  pose: np.ndarray, intrinsics: np.ndarray,
                  has_pose: bool) -> None:
  """Epipolar and relative-rotation errors of (target, source) view pairs."""
  targets, sources = [], []
  offset = 0
  for count in views:
    target = offset + count // 2
    for view in range(offset, offset + count):
      if view != target:
        targets.append(target)
        sources.append(view)
    offset += count
  if not targets:
    return
  targets, sources = np.array(targets), np.array(sources)
  landmarks = np.concatenate([example["landmarks"] for example in chunk])
  values.add("epipolar_error_px", metrics.epipolar_error(
      pose[targets], pose[sources], intrinsics[targets], intrinsics[sources],
      landmarks[targets], landmarks[sources]))
  if has_pose:
    true_pose = np.concatenate([example["pose"] for example in chunk])
    values.add("relative_rotation_error_deg",
               metrics.relative_rotation_error_degrees(
                   pose[targets], pose[sources], true_pose[targets],
                   true_pose[sources]))


# --- AFLW2000-3D --------------------------------------------------------------
def evaluate_aflw2000_3d(predictor: predictor_lib.Predictor, builder,
                         split: str = "test",
                         batch_size: int = DEFAULT_BATCH_SIZE,
                         max_examples: int = 0,
                         progress: bool = True) -> EvaluationResult:
  """AFLW2000-3D: 68-landmark NME per |yaw| bin in the original images.

  The predicted landmarks (aligned-crop pixels) are mapped back to the
  original photograph with the inverse of the stored crop transform and
  compared with `landmarks_original`, normalised by sqrt(w h) of the stored
  ground-truth `box` (MGCNet Table 1a; bins from `yaw_degrees`).

  Returns:
    An `EvaluationResult`; metrics nme/0-30, nme/30-60, nme/60-90, nme/mean
    (percent), render_psnr_db, render_ssim (on the aligned crop).
  """
  decoder = predictor.decoder
  total = _split_size(builder, split)
  if max_examples:
    total = min(total, max_examples) if total else max_examples
  log = ProgressLog(f"{builder.info.full_name} {split}", total, "images",
                    enabled=progress)
  values = _Accumulator()
  predicted, truth, boxes, yaws = [], [], [], []
  dataset = builder.as_dataset(
      split=split, shuffle_files=False,
      decoders={"image": tfds.decode.SkipDecoding(),
                "skin": tfds.decode.SkipDecoding()})
  keys = ("aligned_image", "landmarks_original", "box", "yaw_degrees",
          "transform")
  dataset = dataset.map(lambda example: {k: example[k] for k in keys})
  if max_examples:
    dataset = dataset.take(max_examples)
  count = 0
  for batch in tfds.as_numpy(dataset.batch(batch_size)):
    crops = batch["aligned_image"]
    _, face, _ = _predict_render_and_score(predictor, decoder, crops, values)
    crop_landmarks = face.landmarks_2d.numpy()
    predicted.extend(
        alignment.transform_points(
            alignment.invert_affine(transform.astype(np.float64)), points)
        for transform, points in zip(batch["transform"], crop_landmarks))
    truth.append(batch["landmarks_original"])
    boxes.append(batch["box"])
    yaws.append(batch["yaw_degrees"])
    count += len(crops)
    log.update(count)
  log.update(count, final=True)
  if not count:
    raise ValueError(f"The split {split!r} of {builder.info.full_name} is "
                     "empty")
  yaws = np.concatenate(yaws)
  result = metrics.nme_per_yaw_bin(
      np.stack(predicted), np.concatenate(truth), yaws,
      normaliser=metrics.box_size_from_corners(np.concatenate(boxes)))
  for name in ("render_psnr_db", "render_ssim"):
    result[name] = metrics.finite_mean(values.values(name))
  counts = {"images": count}
  counts.update(_yaw_bin_counts(yaws))
  return EvaluationResult(dataset=builder.info.full_name, split=split,
                          metrics=result, counts=counts)


# --- MICC Florence ------------------------------------------------------------
#: Settings of MICC examples made of images rendered from the scans.
MICC_RENDERED_PREFIX = "rendered/"


def evaluate_micc_florence(predictor: predictor_lib.Predictor, builder,
                           split: str = "test",
                           batch_size: int = DEFAULT_BATCH_SIZE,
                           max_examples: int = 0,
                           progress: bool = True) -> EvaluationResult:
  """MICC Florence: scan errors per video (Table 1b) and rendered image.

  Video examples (Indoor-Cooperative, PTZ-Indoor, PTZ-Outdoor): the shapes
  predicted for the frames (identity + expression, model space, mm) are
  averaged and the average is compared with the subject's scan by
  `scan_metrics.scan_error` (95 mm crop around the nose tip, rigid ICP,
  point-to-plane RMSE and point-to-point mean distance). Rendered-image sets
  (setting "rendered/<set>", MGCNet Fig. 7b): each image's shape is compared
  with the scan on its own.

  Returns:
    An `EvaluationResult`. For each setting S, and for S = "videos" (every
    video) and "rendered" (every rendered image) when there are any:
    point_to_plane_rmse_mm/S and point_to_plane_rmse_std_mm/S (mean and
    standard deviation over videos or images), point_to_point_mm/S.
    details: one record per video or rendered image.
  """
  decoder = predictor.decoder
  nose_tip = int(decoder.face_model.landmark_indices[
      scan_metrics.NOSE_TIP_LANDMARK])
  triangles = np.asarray(decoder.face_model.triangles)
  total = _split_size(builder, split)
  if max_examples:
    total = min(total, max_examples) if total else max_examples
  log = ProgressLog(f"{builder.info.full_name} {split}", total, "examples",
                    enabled=progress)
  details = []
  num_examples = num_frames = 0
  subjects = set()
  for example in _examples(builder, split, max_examples,
                           {"skin": tfds.decode.SkipDecoding()}):
    frames = example["frames"]
    shapes = []
    for start in range(0, len(frames), batch_size):
      coefficients = predictor.coefficients(
          predictor_lib.model_inputs(frames[start:start + batch_size],
                       predictor.image_size))
      groups = decoder.layout.split(tf.constant(coefficients, tf.float32))
      shapes.append(decoder.shape(groups["identity"],
                                  groups["expression"]).numpy())
    shapes = np.concatenate(shapes)
    record = {"subject": example["subject"].decode(),
              "setting": example["setting"].decode(),
              "source": example["source"].decode(),
              "scan": example["scan_name"].decode()}
    if record["setting"].startswith(MICC_RENDERED_PREFIX):
      items = [({"frame_index": int(index)}, shape) for index, shape in
               zip(example["frame_indices"], shapes)]
    else:
      items = [({"frames": int(len(shapes))},
                scan_metrics.mean_shape(shapes))]
    for extra, shape in items:
      error = scan_metrics.scan_error(shape, triangles, shape[nose_tip],
                                      example["scan_vertices"])
      details.append(dict(
          record, **extra, scan_points=error.num_points,
          point_to_plane_rmse_mm=error.point_to_plane_rmse_mm,
          point_to_point_mm=error.point_to_point_mm))
    subjects.add(record["subject"])
    num_examples += 1
    num_frames += len(frames)
    log.update(num_examples)
  log.update(num_examples, final=True)
  if not details:
    raise ValueError(f"The split {split!r} of {builder.info.full_name} is "
                     "empty")
  groups = {}
  for record in details:
    rendered = record["setting"].startswith(MICC_RENDERED_PREFIX)
    for name in (record["setting"], "rendered" if rendered else "videos"):
      groups.setdefault(name, []).append(record)
  result = {}
  for name, records in groups.items():
    rmse = [r["point_to_plane_rmse_mm"] for r in records]
    result[f"point_to_plane_rmse_mm/{name}"] = _mean(rmse)
    result[f"point_to_plane_rmse_std_mm/{name}"] = float(np.std(rmse))
    result[f"point_to_point_mm/{name}"] = _mean(
        [r["point_to_point_mm"] for r in records])
  rendered_images = sum(1 for r in details if "frame_index" in r)
  counts = {"examples": num_examples, "subjects": len(subjects),
            "videos": len(details) - rendered_images,
            "rendered_images": rendered_images, "frames": num_frames}
  return EvaluationResult(dataset=builder.info.full_name, split=split,
                          metrics=result, counts=counts, details=details)


PROTOCOLS = {AFLW2000_3D: evaluate_aflw2000_3d,
             MICC_FLORENCE: evaluate_micc_florence}


def evaluate_builder(predictor: predictor_lib.Predictor, builder,
                     split: str = "test",
                     batch_size: int = DEFAULT_BATCH_SIZE,
                     max_examples: int = 0,
                     progress: bool = True) -> EvaluationResult:
  """Runs the protocol of `builder`'s dataset (module docstring).

  Raises:
    ValueError: a dataset without a protocol (no `images`: e.g. a video
      set other than micc_florence), or an empty split.
  """
  protocol = PROTOCOLS.get(builder.name)
  if protocol is None:
    if "images" not in builder.info.features:
      raise ValueError(
          f"No evaluation protocol for {builder.name}: supported are "
          f"{SYNTHETIC} and the other multi-view sets (with `images`), "
          f"{AFLW2000_3D} and {MICC_FLORENCE}.")
    protocol = evaluate_multiview
  return protocol(predictor, builder, split=split, batch_size=batch_size,
                  max_examples=max_examples, progress=progress)


def format_table(result: EvaluationResult, model: str = "") -> str:
  """A two-column text table of the metrics, with a header line."""
  counts = ", ".join(f"{v} {k}" for k, v in result.counts.items()
                     if "/" not in k)
  lines = [f"{result.dataset} [{result.split}]: {counts}"]
  if model:
    lines.append(f"model: {model}")
  width = max([len("metric")] + [len(name) for name in result.metrics])
  lines.append(f"{'metric':<{width}}  value")
  lines.append(f"{'-' * width}  {'-' * 10}")
  for name, value in result.metrics.items():
    lines.append(f"{name:<{width}}  {value:.4f}")
  return "\n".join(lines)


def default_output_path(dataset: str, split: str,
                        model_dir: Optional[str] = None,
                        saved_model: Optional[str] = None) -> str:
  """Where the CLI writes its JSON when --output_json is not given.

  Inside the training run: <model_dir>/eval_<dataset>_<split>.json; for a
  SavedModel, next to its version directory (never inside it, which TF
  Serving loads): <saved_model>_eval_<dataset>_<split>.json. Characters
  other than letters, digits, ".", "_" and "-" become "-" (so
  "synthetic_multiview/small" -> "synthetic_multiview-small").
  """
  tag = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{dataset}_{split}").strip("-")
  if model_dir:
    return os.path.join(model_dir, f"eval_{tag}.json")
  if saved_model:
    return f"{saved_model.rstrip('/')}_eval_{tag}.json"
  raise ValueError("Pass model_dir or saved_model.")


def write_json(result: EvaluationResult, path: str, model: str = "") -> None:
  """Writes `result.to_json(model)` to `path` (parent folders created)."""
  folder = os.path.dirname(path)
  if folder:
    tf.io.gfile.makedirs(folder)
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(result.to_json(model) + "\n")
