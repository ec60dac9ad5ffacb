"""AFLW2000-3D: landmark NME in the ORIGINAL image (MGCNet Table 1a).

The predicted crop landmarks are mapped back with the stored transform and
normalised by the ground-truth box sqrt(w h), per |yaw| bin; render PSNR/SSIM
on the aligned crop (docs/evaluation.md).
"""

import numpy as np
import tensorflow_datasets as tfds

from mgc_tf.evaluation import metrics
from mgc_tf.evaluation.protocols import common
from mgc_tf.evaluation.results import EvaluationResult
from mgc_tf.faces2d import alignment
from mgc_tf.inference import reconstructor as reconstructor_lib

def evaluate_aflw2000_3d(predictor: reconstructor_lib.Reconstructor, builder,
                         split: str = "test",
                         batch_size: int = common.DEFAULT_BATCH_SIZE,
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
  log = common.progress_log(builder, split, max_examples, "images", progress)
  values = common.Accumulator()
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
    _, face, _ = common.predict_render_and_score(predictor, decoder, crops,
                                                 values)
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
  common.check_not_empty(count, builder, split)
  yaws = np.concatenate(yaws)
  result = metrics.nme_per_yaw_bin(
      np.stack(predicted), np.concatenate(truth), yaws,
      normaliser=metrics.box_size_from_corners(np.concatenate(boxes)))
  for name in ("render_psnr_db", "render_ssim", "render_refined_psnr_db",
               "render_refined_ssim"):
    if name in values:
      result[name] = metrics.finite_mean(values.values(name))
  counts = {"images": count}
  counts.update(common.yaw_bin_counts(yaws))
  return EvaluationResult(dataset=builder.info.full_name, split=split,
                          metrics=result, counts=counts)
