"""Multi-view sets (synthetic_multiview, w300_lp, multipie, ...).

Landmark NME per |yaw| bin, pose-angle errors, vertex error after rigid
alignment, depth error with and without a per-image scale-shift alignment
(and, for a model with a depth network such as --method=depthnet, the same
two for that network's depth: depthnet_depth_error_mm and
depthnet_depth_error_aligned_mm), render PSNR/SSIM on the face mask,
epipolar error and relative-rotation error of the predicted poses on
(target, source) view pairs -- each when the set has the ground truth it
needs (docs/evaluation.md).

Landmark metrics use the exact landmarks (`landmarks_true`) where a set
stores them beside the detected ones it trains on (synthetic_multiview
2.0.0). Where a set stores `occluded_fraction`, every metric is also
reported on the clean views and on the occluded ones (`clean/...`,
`occluded/...`); a pair counts as occluded when either view is.
"""

from typing import Dict, List

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.evaluation import metrics
from mgc_tf.evaluation.protocols import common
from mgc_tf.evaluation.results import EvaluationResult
from mgc_tf.geometry import depth_map
from mgc_tf.inference import reconstructor as reconstructor_lib

#: A view counts as occluded when occluders cover more than this fraction
#: of its visible face (a strand of hair over the forehead edge does not).
OCCLUDED_MIN_FRACTION = 0.02
TRUE_LANDMARKS_KEY = "landmarks_true"
OCCLUDED_FRACTION_KEY = "occluded_fraction"
_PER_IMAGE_MEANS = ("roll_error_deg", "yaw_error_deg", "pitch_error_deg",
                    "vertex_error_mm")
_PER_IMAGE_FINITE_MEANS = ("depth_error_mm", "depth_error_aligned_mm",
                           "depthnet_depth_error_mm",
                           "depthnet_depth_error_aligned_mm",
                           "render_psnr_db", "render_ssim",
                           "render_refined_psnr_db", "render_refined_ssim")
_PER_PAIR_MEANS = ("epipolar_error_px", "relative_rotation_error_deg")


def evaluate_multiview(predictor: reconstructor_lib.Reconstructor, builder,
                       split: str = "test",
                       batch_size: int = common.DEFAULT_BATCH_SIZE,
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
    vertex_error_mm, depth_error_mm, render_psnr_db, render_ssim (and
    render_refined_psnr_db, render_refined_ssim for a model with a refined
    texture), epipolar_error_px, relative_rotation_error_deg; with occlusion
    ground truth each again under clean/ and occluded/.
  """
  decoder = predictor.decoder
  features = builder.info.features
  log = common.progress_log(builder, split, max_examples, "examples", progress)
  values = common.Accumulator()
  predicted_landmarks, true_landmarks, yaws, occluded = [], [], [], []
  landmarks_key = (TRUE_LANDMARKS_KEY if TRUE_LANDMARKS_KEY in features
                   else "landmarks")
  has_occlusion = OCCLUDED_FRACTION_KEY in features
  num_examples = num_images = 0
  # Full [V, 6] poses in the decoder's convention (synthetic_multiview).
  has_pose = "pose" in features and features["pose"].shape[-1] == 6
  skin_decoder = ({"skin": tfds.decode.SkipDecoding()} if "skin" in features
                  else None)
  examples = common.examples_of(builder, split, max_examples, skin_decoder)
  for chunk in common.chunks(examples, batch_size, lambda e: len(e["images"])):
    views = [len(example["images"]) for example in chunk]
    images = np.concatenate([example["images"] for example in chunk])
    _, face, output = common.predict_render_and_score(predictor, decoder,
                                                      images, values)
    landmarks = np.concatenate([example[landmarks_key] for example in chunk])
    predicted_landmarks.append(face.landmarks_2d.numpy())
    occluded.append(np.concatenate([
        example[OCCLUDED_FRACTION_KEY] > OCCLUDED_MIN_FRACTION
        if has_occlusion else np.zeros(count, bool)
        for example, count in zip(chunk, views)]))
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
          metrics.aligned_vertex_error(p, t, decoder.face_model.front_mask)
          for p, t in zip(face.shape.numpy(), true_shapes)])
    if "depth" in features:
      true_depth = np.concatenate([example["depth"] for example in chunk])
      values.add("depth_error_mm",
                 metrics.depth_error(output.depth.numpy(), true_depth))
      values.add("depth_error_aligned_mm",
                 metrics.aligned_depth_error(output.depth.numpy(), true_depth))
      if depth_map.NORMALIZED_OUTPUT in predictor.outputs:
        depthnet = _depthnet_depth(predictor, images, face.translation,
                                   true_depth.shape[1])
        values.add("depthnet_depth_error_mm",
                   metrics.depth_error(depthnet, true_depth))
        values.add("depthnet_depth_error_aligned_mm",
                   metrics.aligned_depth_error(depthnet, true_depth))
    _pair_metrics(values, chunk, views, pose, face.intrinsics.numpy(),
                  has_pose, landmarks_key, occluded[-1])
    num_examples += len(chunk)
    num_images += len(images)
    log.update(num_examples)
  log.update(num_examples, final=True)
  common.check_not_empty(num_images, builder, split)
  yaws = np.concatenate(yaws)
  predicted_landmarks = np.concatenate(predicted_landmarks)
  true_landmarks = np.concatenate(true_landmarks)
  occluded = np.concatenate(occluded)
  pair_occluded = values.values("pair_occluded").astype(bool)
  everything = (np.ones_like(occluded), np.ones_like(pair_occluded))
  result = _summarise(values, predicted_landmarks, true_landmarks, yaws,
                      *everything)
  counts = {"examples": num_examples, "images": num_images,
            "view_pairs": int(values.values("epipolar_error_px").size)}
  counts.update(common.yaw_bin_counts(yaws))
  if has_occlusion:
    for prefix, images, pairs in (("clean", ~occluded, ~pair_occluded),
                                  ("occluded", occluded, pair_occluded)):
      subset = _summarise(values, predicted_landmarks, true_landmarks, yaws,
                          images, pairs)
      result.update({f"{prefix}/{name}": value
                     for name, value in subset.items()})
      counts[f"{prefix}_images"] = int(np.sum(images))
      counts.update({f"{prefix}_{name}": count for name, count in
                     common.yaw_bin_counts(yaws[images]).items()})
  return EvaluationResult(dataset=builder.info.full_name, split=split,
                          metrics=result, counts=counts)


def _summarise(values: common.Accumulator, predicted_landmarks: np.ndarray,
               true_landmarks: np.ndarray, yaws: np.ndarray,
               images: np.ndarray, pairs: np.ndarray) -> Dict[str, float]:
  """The metrics over the images (and view pairs) selected by the masks."""
  result = metrics.nme_per_yaw_bin(predicted_landmarks[images],
                                   true_landmarks[images], yaws[images])
  for names, selected, reduce in (
      (_PER_IMAGE_MEANS, images, common.mean),
      (_PER_IMAGE_FINITE_MEANS, images, metrics.finite_mean),
      (_PER_PAIR_MEANS, pairs, common.mean)):
    for name in names:
      if name in values:
        result[name] = reduce(values.values(name)[selected])
  return result


def _depthnet_depth(predictor, crops: np.ndarray, translation, size: int
                    ) -> np.ndarray:
  """[N, size, size, 1] depth (mm) of a depth method's network for crops
  [N, H, H, 3] uint8: D' at the model's side S, resized (nearest) to the
  ground truth's side, made camera z with the reconstructor's t_z."""
  predicted = predictor.predict(
      reconstructor_lib.model_inputs(crops, predictor.image_size))
  normalized = tf.constant(predicted[depth_map.NORMALIZED_OUTPUT],
                           tf.float32)
  if normalized.shape[1] != size:
    normalized = tf.image.resize(normalized, [size, size], method="nearest")
  return depth_map.denormalize_depth(normalized,
                                     np.asarray(translation)[:, 2]).numpy()


def _pair_metrics(values: common.Accumulator, chunk: List[dict],
                  views: List[int], pose: np.ndarray, intrinsics: np.ndarray,
                  has_pose: bool, landmarks_key: str,
                  occluded: np.ndarray) -> None:
  """Epipolar and relative-rotation errors of (target, source) view pairs,
  and whether either view of each pair is occluded (`pair_occluded`)."""
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
  values.add("pair_occluded", occluded[targets] | occluded[sources])
  landmarks = np.concatenate([example[landmarks_key] for example in chunk])
  values.add("epipolar_error_px", metrics.epipolar_error(
      pose[targets], pose[sources], intrinsics[targets], intrinsics[sources],
      landmarks[targets], landmarks[sources]))
  if has_pose:
    true_pose = np.concatenate([example["pose"] for example in chunk])
    values.add("relative_rotation_error_deg",
               metrics.relative_rotation_error_degrees(
                   pose[targets], pose[sources], true_pose[targets],
                   true_pose[sources]))
