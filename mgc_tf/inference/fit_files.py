"""Fitting image files and videos: faces -> crops -> a fit -> files.

What `python -m mgc_tf.fit` runs. The largest face of each image (or video
frame) is found and aligned as `infer` does (`mgc_tf.inference.faces`);
images or frames without a usable face are skipped and counted, never a
crash. A folder is taken as ONE person's photo set; with dlib's
face-recognition network available, images whose face is not the set's
majority person (descriptor distance above dlib's 0.6 to the set's medoid)
are skipped as "another person" (`mgc_tf.fitting.people`). Then one fit
(`Fitter.fit`, its render term weighted by each crop's skin probability,
`faces2d.skin`, as training weights it by the datasets' stored maps) and,
per image,
the files `infer` writes (`mgc_tf.inference.outputs.write_face`, the overlay)
plus `fit_loss.json` and `fit_loss.png` (the loss curve).
"""

import dataclasses
import os
from typing import Callable, List, Optional, Sequence

import numpy as np

from mgc_tf.fitting import fitter as fitter_lib
from mgc_tf.fitting import people
from mgc_tf.inference import outputs
from mgc_tf.inference import overlay
from mgc_tf.inference import reconstruct
from mgc_tf.io import images as image_files
from mgc_tf.io.bad_input import BadExampleError
from mgc_tf.io.bad_input import read_image_rgb
from mgc_tf.io.bad_input import SkipCounter
from mgc_tf.io.progress import progress

SUMMARY_FILE = "summary.json"
LOSS_FILE = "fit_loss.json"
LOSS_PLOT = "fit_loss.png"
ANOTHER_PERSON = "another person (the set is assumed to be one person)"


@dataclasses.dataclass
class FaceImage:
  """One image (or video frame) with its largest face.

  Attributes:
    name: file stem for the outputs.
    source: the input path (with `#<frame>` for a video frame).
    rgb: [H, W, 3] uint8 the whole image.
    crop: `mgc_tf.inference.faces.FaceCrop` of the largest face.
  """
  name: str
  source: str
  rgb: np.ndarray
  crop: object


@dataclasses.dataclass
class FitRun:
  """What a run over files did.

  Attributes:
    counter: images (frames) kept and skipped by reason.
    result: the `FitResult` (None when nothing was fitted).
    files: every file written.
  """
  counter: SkipCounter
  result: Optional[fitter_lib.FitResult]
  files: List[str]


def find_faces(items, finder, counter: SkipCounter,
               log: Callable[[str], None] = print) -> List[FaceImage]:
  """(name, source, rgb or path) items -> FaceImages of their largest faces.

  Unreadable images and images without a usable face are counted in
  `counter` and left out.
  """
  found = []
  for name, source, image in items:
    try:
      rgb = read_image_rgb(image) if isinstance(image, str) else image
      crop = finder.find(rgb, all_faces=False)[0]
    except BadExampleError as error:
      counter.skip(source, error)
      log(f"{source}: skipped ({error})")
      continue
    found.append(FaceImage(name, source, rgb, crop))
    counter.keep(source)
  return found


def drop_other_people(faces: List[FaceImage], embedding, counter: SkipCounter,
                      log: Callable[[str], None] = print) -> List[FaceImage]:
  """Keeps the majority person's faces (module docstring); the others are
  moved to `counter`'s skipped ones. `embedding`: a `FaceEmbedding` taking
  aligned crops, or None (then every face is kept)."""
  if embedding is None or len(faces) < 3:
    # Two faces have no majority; say what is assumed instead.
    return faces
  crops = np.stack([face.crop.image for face in faces]).astype(np.float32)
  descriptors = np.asarray(embedding(crops / 255.0))
  keep = people.majority_person(descriptors)
  for face, kept in zip(faces, keep):
    if not kept:
      counter.drop_kept(face.source, BadExampleError(
          ANOTHER_PERSON, "its face is not the majority person's"))
      log(f"{face.source}: skipped ({ANOTHER_PERSON})")
  return [face for face, kept in zip(faces, keep) if kept]


def initial_coefficients(faces: Sequence[FaceImage], predictor,
                         decoder) -> Optional[np.ndarray]:
  """[N, K] a trained model's prediction of the crops, or None (mean face)."""
  if predictor is None:
    return None
  if predictor.decoder.layout.size != decoder.layout.size:
    raise ValueError(
        f"The model predicts {predictor.decoder.layout.size} coefficients "
        f"but the face model has {decoder.layout.size}.")
  return reconstruct.predict_coefficients(
      predictor, [face.crop.image for face in faces], batch_size=8)


def crop_landmarks(crops) -> Optional[np.ndarray]:
  """[N, 68, 2] detected landmarks of FaceCrops, or None when any crop has
  none (aligned mode: the fit then has no landmark term)."""
  if any(crop.landmarks is None for crop in crops):
    return None
  return np.stack([crop.landmarks for crop in crops])


def crop_skin(crops) -> np.ndarray:
  """[N, S, S, 1] float32 skin probability of FaceCrops' images (the map
  the datasets store for training, `faces2d.skin.skin_probability`)."""
  from mgc_tf.faces2d import skin  # pylint: disable=g-import-not-at-top
  return np.stack([skin.skin_probability(crop.image)
                   for crop in crops])[..., None].astype(np.float32)


def fit_faces(faces: List[FaceImage], fitter: fitter_lib.Fitter,
              mode: fitter_lib.FitMode, initial: Optional[np.ndarray] = None,
              show_progress: bool = True) -> fitter_lib.FitResult:
  """One fit of the crops (224 px) with their detected landmarks."""
  crops = [face.crop for face in faces]
  images = np.stack([crop.image for crop in crops]).astype(np.float32)
  return fitter.fit(images / 255.0, crop_landmarks(crops), mode=mode,
                    initial=initial, skin=crop_skin(crops),
                    show_progress=show_progress,
                    description=f"fit {len(faces)} "
                    f"{'image' if len(faces) == 1 else 'images'}")


def refiner(fitter: fitter_lib.Fitter, show_progress: bool = False
            ) -> Callable[[list, np.ndarray], np.ndarray]:
  """(FaceCrops, [B, K] predicted) -> [B, K] refined by fitting each crop
  alone from the prediction (`infer --refine_steps`); the landmark term is
  on when every crop has detected landmarks."""

  def refine(crops, coefficients):
    images = np.stack([crop.image for crop in crops]).astype(np.float32)
    return fitter.fit(images / 255.0, crop_landmarks(crops),
                      mode=fitter_lib.FitMode.PHOTOS, initial=coefficients,
                      skin=crop_skin(crops),
                      show_progress=show_progress,
                      description="refine").coefficients

  return refine


def write_outputs(faces: List[FaceImage], result: fitter_lib.FitResult,
                  decoder, output_dir: str, model: str,
                  write_meshes: bool = True) -> List[str]:
  """Per face the files of `infer` (named `<name>_face0`) and the overlay;
  once the loss curve (`fit_loss.json`, `fit_loss.png`)."""
  os.makedirs(output_dir, exist_ok=True)
  recon = reconstruct.reconstruct(decoder, result.coefficients)
  files = []
  for index, face in enumerate(faces):
    written = outputs.write_face(
        output_dir, f"{face.name}_face0", recon, index, face.crop, decoder,
        source=face.source, face_index=0, image_shape=face.rgb.shape,
        model=model, write_obj=write_meshes)
    files.extend(written.values())
    detected = (None if face.crop.landmarks is None else
                outputs.to_original(face.crop.transform, face.crop.landmarks))
    path = os.path.join(output_dir, f"{face.name}_overlay.png")
    image_files.write_png(path, overlay.overlay_faces(
        face.rgb, recon.rendered[index:index + 1],
        recon.mask[index:index + 1], [face.crop.transform],
        [outputs.to_original(face.crop.transform, recon.landmarks_2d[index])],
        [detected]))
    files.append(path)
  files.extend(write_loss_curve(output_dir, result))
  return files


def write_loss_curve(output_dir: str, result: fitter_lib.FitResult
                     ) -> List[str]:
  """fit_loss.json (total and terms per step) and fit_loss.png."""
  path = os.path.join(output_dir, LOSS_FILE)
  outputs.write_json(path, {"mode": result.mode.value,
                            "steps": len(result.losses) - 1,
                            "loss": result.curve()})
  files = [path]
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  except ImportError:
    return files
  figure, axis = pyplot.subplots(figsize=(5, 3.2), dpi=100)
  axis.plot(result.losses, label="total")
  axis.set_xlabel("step")
  axis.set_ylabel("loss")
  axis.set_yscale("log")
  axis.set_title(f"fit ({result.mode.value})")
  figure.tight_layout()
  plot = os.path.join(output_dir, LOSS_PLOT)
  figure.savefig(plot)
  pyplot.close(figure)
  return files + [plot]


def image_items(paths: Sequence[str]):
  """(stem, path, path) for image files."""
  return [(os.path.splitext(os.path.basename(p))[0], p, p) for p in paths]


def video_items(path: str, frame_stride: int = 1,
                max_frames: Optional[int] = None):
  """(stem_<frame>, path#<frame>, rgb) for the frames of a video, in order.

  Raises:
    BadExampleError: the video decodes no frame.
  """
  from mgc_tf.io import video_io  # pylint: disable=g-import-not-at-top
  stem = os.path.splitext(os.path.basename(path))[0]
  with video_io.VideoReader(path) as video:
    return [(f"{stem}_{index:06d}", f"{path}#{index}", frame)
            for index, frame in video.frames(frame_stride, max_frames)]


def fit_files(items, output_dir: str, fitter: fitter_lib.Fitter,
              finder, mode: fitter_lib.FitMode, predictor=None,
              embedding=None, write_meshes: bool = True,
              show_progress: bool = True,
              log: Callable[[str], None] = print) -> FitRun:
  """Finds the faces of `items`, fits them, writes the results.

  Args:
    items: (name, source, rgb array or path) per image or frame, in order
      (`image_items`, `video_items`).
    output_dir: created if missing.
    fitter: a `Fitter`.
    finder: a `FaceFinder` (detecting, or aligned mode).
    mode: PHOTOS (each alone), SET (one person) or VIDEO.
    predictor: a `Reconstructor` whose prediction is the start; None: the
      mean face.
    embedding: a `FaceEmbedding` for the same-person check of SET (None:
      every face is taken as the person's).
    write_meshes: write the .obj meshes.
    show_progress: progress bars.
    log: where skip lines and the summary go.

  Returns:
    FitRun; `result` is None when no image had a usable face.
  """
  counter = SkipCounter("fit", unit="frames" if mode == fitter_lib.FitMode.VIDEO
                        else "images")
  faces = find_faces(progress(items, total=len(items), description="faces",
                              unit="image", enabled=show_progress),
                     finder, counter, log)
  if mode == fitter_lib.FitMode.SET:
    faces = drop_other_people(faces, embedding, counter, log)
  run = FitRun(counter=counter, result=None, files=[])
  if faces:
    initial = initial_coefficients(faces, predictor, fitter.decoder)
    run.result = fit_faces(faces, fitter, mode, initial, show_progress)
    model = (f"fit ({mode.value}, {fitter.config.steps} steps) from "
             + (predictor.description if predictor else "the mean face"))
    run.files = write_outputs(faces, run.result, fitter.decoder, output_dir,
                              model, write_meshes)
    log(f"loss {run.result.losses[0]:.4g} -> {run.result.losses[-1]:.4g} "
        f"in {fitter.config.steps} steps")
  log(counter.summary())
  os.makedirs(output_dir, exist_ok=True)
  outputs.write_json(os.path.join(output_dir, SUMMARY_FILE), {
      "mode": mode.value, "inputs": len(items), "fitted": len(faces),
      "skipped": counter.counts, "steps": fitter.config.steps,
      "start": predictor.description if predictor else "mean face",
      "face_finder": finder.describe(),
      "loss_start": None if run.result is None else run.result.losses[0],
      "loss_end": None if run.result is None else run.result.losses[-1]})
  return run
