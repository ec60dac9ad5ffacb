"""MICC Florence: scan errors per video (MGCNet Table 1b) and per rendered
image (MGCNet Fig. 7b).

Per video, the predicted shapes (identity + expression, model space, mm) are
averaged over its frames and compared with the subject's scan
(`scan_metrics`), reported per setting; images rendered from the scans are
compared one by one (docs/evaluation.md).
"""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.evaluation import scan_metrics
from mgc_tf.evaluation.protocols import common
from mgc_tf.evaluation.results import EvaluationResult
from mgc_tf.inference import reconstructor as reconstructor_lib

#: Settings of MICC examples made of images rendered from the scans.
MICC_RENDERED_PREFIX = "rendered/"


def evaluate_micc_florence(predictor: reconstructor_lib.Reconstructor, builder,
                           split: str = "test",
                           batch_size: int = common.DEFAULT_BATCH_SIZE,
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
  log = common.progress_log(builder, split, max_examples, "examples", progress)
  details = []
  num_examples = num_frames = 0
  subjects = set()
  for example in common.examples_of(builder, split, max_examples,
                                    {"skin": tfds.decode.SkipDecoding()}):
    frames = example["frames"]
    shapes = []
    for start in range(0, len(frames), batch_size):
      coefficients = predictor.coefficients(
          reconstructor_lib.model_inputs(frames[start:start + batch_size],
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
  common.check_not_empty(len(details), builder, split)
  groups = {}
  for record in details:
    rendered = record["setting"].startswith(MICC_RENDERED_PREFIX)
    for name in (record["setting"], "rendered" if rendered else "videos"):
      groups.setdefault(name, []).append(record)
  result = {}
  for name, records in groups.items():
    rmse = [r["point_to_plane_rmse_mm"] for r in records]
    result[f"point_to_plane_rmse_mm/{name}"] = common.mean(rmse)
    result[f"point_to_plane_rmse_std_mm/{name}"] = float(np.std(rmse))
    result[f"point_to_point_mm/{name}"] = common.mean(
        [r["point_to_point_mm"] for r in records])
  rendered_images = sum(1 for r in details if "frame_index" in r)
  counts = {"examples": num_examples, "subjects": len(subjects),
            "videos": len(details) - rendered_images,
            "rendered_images": rendered_images, "frames": num_frames}
  return EvaluationResult(dataset=builder.info.full_name, split=split,
                          metrics=result, counts=counts, details=details)
