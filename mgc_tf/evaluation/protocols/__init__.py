"""Per-dataset evaluation protocols: a predictor over a prepared TFDS split.

Shared by `python -m mgc_tf.evaluate` and the trainer's periodic evaluation
(`periodic.py`), so both report the same numbers:

    predictor = reconstructor_lib.Reconstructor.from_run("runs/quick")
    builder = load_dataset_builder("synthetic_multiview/small", data_dir)
    result = evaluate_builder(predictor, builder, "test")
    print(results.format_table(result))   # result.metrics: name -> float

`evaluate_builder` picks the protocol of the builder's dataset, one module
each (metric names, formulas and units: docs/evaluation.md):
  multiview (synthetic_multiview and the other builders with `images`):
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

Face verification (`evaluate_verification`, asked for by name: the CLI's
--protocol=verification) scores pairs of faces by identity coefficients,
neutral shapes and embeddings of the render: pairs from a multi-view set's
identity labels or from an LFW-style pairs.txt (`pairs_from_file`).

Images are fed to the predictor resized to its input size (antialiased, as
the training pipeline does); landmarks, depth and renders are measured at the
dataset's stored crop size, with the face model's camera scaled to it (the
decoder's convention, in which the synthetic set was rendered).
"""

from typing import Optional

from mgc_tf.data import pipeline
from mgc_tf.data import prepare
from mgc_tf.evaluation.protocols.aflw2000_3d import evaluate_aflw2000_3d
from mgc_tf.evaluation.protocols.common import DEFAULT_BATCH_SIZE
from mgc_tf.evaluation.protocols.micc_florence import evaluate_micc_florence
from mgc_tf.evaluation.protocols.multiview import evaluate_multiview
from mgc_tf.evaluation.protocols.verification import evaluate_verification
from mgc_tf.evaluation.protocols.verification import pairs_from_builder
from mgc_tf.evaluation.protocols.verification import pairs_from_file
from mgc_tf.evaluation.results import EvaluationResult
from mgc_tf.inference import reconstructor as reconstructor_lib

AFLW2000_3D = "aflw2000_3d"
MICC_FLORENCE = "micc_florence"
SYNTHETIC = prepare.SYNTHETIC

PROTOCOLS = {AFLW2000_3D: evaluate_aflw2000_3d,
             MICC_FLORENCE: evaluate_micc_florence}


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


def evaluate_builder(predictor: reconstructor_lib.Reconstructor, builder,
                     split: str = "test",
                     batch_size: int = DEFAULT_BATCH_SIZE,
                     max_examples: int = 0,
                     progress: bool = True) -> EvaluationResult:
  """Runs the protocol of `builder`'s dataset (module docstring).

  Raises:
    ValueError: a dataset without a protocol (no `images`: e.g. a video
      set other than micc_florence), or an empty split.
  """
  pipeline.check_face_model(builder, predictor.decoder.face_model)
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
