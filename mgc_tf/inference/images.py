"""Inference over image files: faces -> meshes, coefficients, overlays.

For each image `<stem>.<ext>`, every face k (largest first) gets the files of
`outputs.write_face` named `<stem>_face<k>`, and the image gets
`<stem>_overlay.png`: the original with each face's render composited and
its landmarks drawn (model: green, detected: red). Images that cannot be
read or hold no usable face are skipped, counted by reason and summarised at
the end (and in `summary.json`); they never stop the run.
"""

import dataclasses
import os
from typing import Callable, List, Optional, Sequence

import numpy as np

from mgc_tf.inference import outputs
from mgc_tf.inference import overlay
from mgc_tf.inference import reconstruct
from mgc_tf.io import images as image_files
from mgc_tf.io.bad_input import BadExampleError
from mgc_tf.io.bad_input import read_image_rgb
from mgc_tf.io.bad_input import SkipCounter
from mgc_tf.io.progress import progress
from mgc_tf.models import gcn

SUMMARY_FILE = "summary.json"


@dataclasses.dataclass
class ImagesResult:
  """What a run over images did.

  Attributes:
    counter: images kept (at least one face written) and skipped by reason.
    faces: faces written.
    files: every file written.
  """
  counter: SkipCounter
  faces: int
  files: List[str]

  def summary(self) -> str:
    return (f"{self.counter.summary()}\n"
            f"{self.faces} face{'s' if self.faces != 1 else ''} written")


@dataclasses.dataclass
class _Image:
  path: str
  rgb: np.ndarray
  crops: list


def face_name(image_path: str, face_index: int) -> str:
  """`<stem>_face<k>`: the file stem of face k of an image."""
  stem = os.path.splitext(os.path.basename(image_path))[0]
  return f"{stem}_face{face_index}"


def infer_images(paths: Sequence[str], output_dir: str, predictor, finder,
                 batch_size: int = 8, all_faces: bool = True,
                 write_meshes: bool = True, show_progress: bool = True,
                 log: Callable[[str], None] = print,
                 refine: Optional[Callable[[list, np.ndarray], np.ndarray]]
                 = None) -> ImagesResult:
  """Reconstructs the faces in image files and writes their results.

  Args:
    paths: image files.
    output_dir: created if missing.
    predictor: a `mgc_tf.inference.reconstructor.Reconstructor`.
    finder: a `mgc_tf.inference.faces.FaceFinder`.
    batch_size: images read per step, and faces per model call.
    all_faces: every face in an image, or only the largest.
    write_meshes: write the .obj meshes.
    show_progress: draw a progress bar.
    log: where skip messages and the summary go.
    refine: optional (FaceCrops, [B, K] predicted) -> [B, K] refined
      coefficients (`fit_files.refiner`: infer --refine_steps).

  Returns:
    ImagesResult.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
  os.makedirs(output_dir, exist_ok=True)
  counter = SkipCounter("infer", unit="images")
  result = ImagesResult(counter=counter, faces=0, files=[])
  pending = []
  for path in progress(paths, total=len(paths), description="images",
                       unit="image", enabled=show_progress):
    try:
      rgb = read_image_rgb(path)
      pending.append(_Image(path, rgb, finder.find(rgb, all_faces)))
    except BadExampleError as error:
      counter.skip(path, error)
      log(f"{path}: skipped ({error})")
    if len(pending) >= batch_size:
      _reconstruct_and_write(pending, output_dir, predictor, batch_size,
                             write_meshes, result, refine)
      pending = []
  if pending:
    _reconstruct_and_write(pending, output_dir, predictor, batch_size,
                           write_meshes, result, refine)
  log(result.summary())
  outputs.write_json(os.path.join(output_dir, SUMMARY_FILE), {
      "images": len(paths), "images_with_faces": counter.kept,
      "faces": result.faces, "skipped": counter.counts,
      "model": predictor.description, "face_finder": finder.describe()})
  return result


def _reconstruct_and_write(images: List[_Image], output_dir: str, predictor,
                           batch_size: int, write_meshes: bool,
                           result: ImagesResult, refine=None) -> None:
  """Predicts (refines), renders and writes the faces of a few images."""
  crops = [crop for image in images for crop in image.crops]
  extras = reconstruct.predict_outputs(
      predictor, [crop.image for crop in crops], batch_size)
  coefficients = extras.pop("coefficients")
  if refine is not None:
    coefficients = refine(crops, coefficients)
    # The fit optimised the coefficients' albedo: the network's refined
    # texture no longer belongs to them.
    extras.pop(gcn.REFINED_ALBEDO_OUTPUT, None)
  decoder = predictor.decoder
  face_number = 0
  for image in images:
    count = len(image.crops)
    rows = slice(face_number, face_number + count)
    # The method's extra outputs (a depth map) go with their faces.
    recon = reconstruct.reconstruct(
        decoder, coefficients[rows],
        extras={name: values[rows] for name, values in extras.items()})
    face_number += count
    predicted, detected = [], []
    for k, crop in enumerate(image.crops):
      files = outputs.write_face(
          output_dir, face_name(image.path, k), recon, k, crop, decoder,
          source=image.path, face_index=k, image_shape=image.rgb.shape,
          model=predictor.description, write_obj=write_meshes)
      result.files.extend(files.values())
      predicted.append(outputs.to_original(crop.transform,
                                           recon.landmarks_2d[k]))
      detected.append(None if crop.landmarks is None else
                      outputs.to_original(crop.transform, crop.landmarks))
    stem = os.path.splitext(os.path.basename(image.path))[0]
    overlay_path = os.path.join(output_dir, f"{stem}_overlay.png")
    image_files.write_png(overlay_path, overlay.overlay_faces(
        image.rgb, recon.rendered, recon.mask,
        [crop.transform for crop in image.crops], predicted, detected))
    result.files.append(overlay_path)
    result.faces += count
    result.counter.keep()
