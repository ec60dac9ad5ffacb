r"""Issue 15's must-show figures for fitting, written to results/fitting/.

  PYTHONPATH=$PWD python scripts/fitting_experiments.py \
      --model_dir=runs/ablation_v2/full/seed0 --examples=8 --steps=100

1. Synthetic test split (synthetic_multiview/v2_small, ground-truth
   coefficients per view): aligned vertex error (mm, model-space shape with
   expression, `metrics.aligned_vertex_error`, as `mgc_tf.evaluate`) of the
   trained model's prediction, of fitting each view alone from it, and of
   fitting the 3 views of an example jointly (shared identity, multi-view
   terms) from it. Also each alone / jointly from the mean face.
2. Real photos (skimage's astronaut, matplotlib's Grace Hopper): the fitted
   model-space meshes' mean distance after rigid alignment (and the trained
   model's, for comparison), and the fitted landmarks' NME (% of the box
   size sqrt(w h)) against dlib's 68 landmarks.

Reads the run read-only. Writes results/fitting/fitting_<part>.json and
the figures. Numbers are as measured (CPU, small budgets).
"""

import dataclasses
import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from mgc_tf import fitting
from mgc_tf.data import pipeline
from mgc_tf.evaluation import metrics
from mgc_tf.inference import faces
from mgc_tf.inference import reconstruct
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.losses import identity as identity_lib

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/ablation_v2/full/seed0",
                                 "Trained run (read only).")
_DATASET = flags.DEFINE_string("dataset", "synthetic_multiview/v2_small",
                               "Synthetic set with coefficients per view.")
_EXAMPLES = flags.DEFINE_integer("examples", 8, "Test examples (3 views).")
_STEPS = flags.DEFINE_integer("steps", 100, "Fitting steps.")
_REAL_STEPS = flags.DEFINE_integer("real_steps", 100,
                                   "Fitting steps on the real photos.")
_IDENTITY = flags.DEFINE_string("identity_network", "dlib",
                                "Identity term network (dlib / none).")
_OUTPUT = flags.DEFINE_string("output_dir", "results/fitting", "Where to.")
_PARTS = flags.DEFINE_list("parts", ["synthetic", "real"], "Which parts.")
_SKIN = flags.DEFINE_boolean(
    "skin", True, "Weight the render term by the images' skin probability "
    "(the set's stored map; as training does).")
_SPLIT = flags.DEFINE_string(
    "split", "test", "Split of the synthetic part (choose settings on "
    "'train', report on 'test').")
_MODES = flags.DEFINE_list("modes", ["alone", "joint"],
                           "Synthetic fits: each view alone, 3 jointly.")
_REGULARIZATION = flags.DEFINE_float(
    "regularization_weight", None,
    "Weight of the coefficient prior in every fit, from a prediction or the "
    "mean (default: FitConfig's: 1e-2 from a prediction, the paper's 1e-4 "
    "from the mean face).")
_STARTS = flags.DEFINE_list("starts", ["prediction"],
                            "Synthetic fits start from: prediction, mean.")
_START_POSE = flags.DEFINE_enum(
    "start_pose", fitting.FitConfig().start_pose, fitting.fitter.START_POSES,
    "Pose of a fit from the mean face: solved from the landmarks, or the "
    "default (frontal) pose.")


def shapes_of(decoder, coefficients):
  """[N, V, 3] model-space shapes (identity + expression), mm."""
  groups = decoder.layout.split(tf.constant(coefficients, tf.float32))
  return decoder.shape(groups["identity"], groups["expression"]).numpy()


def vertex_errors(decoder, coefficients, truth):
  return [metrics.aligned_vertex_error(p, t, decoder.face_model.front_mask)
          for p, t in zip(shapes_of(decoder, coefficients),
                          shapes_of(decoder, truth))]


def landmark_nmes(decoder, coefficients, landmarks, size):
  """Per image: NME (%) of the coefficients' landmarks against `landmarks`
  ([N, 68, 2] in the S px crop)."""
  face = decoder.decode(tf.constant(coefficients, tf.float32),
                        image_size=size)
  return [100.0 * float(metrics.landmark_nme(p, t)) for p, t in
          zip(face.landmarks_2d.numpy().astype(np.float64),
              np.asarray(landmarks, np.float64))]


def synthetic(predictor, fitter, log):
  """Per-image vertex errors and landmark NMEs (against the landmarks the
  fits are given) of prediction and fits (module docstring)."""
  builder = pipeline.load_builder(pipeline.SourceSpec(_DATASET.value))
  dataset = builder.as_dataset(split=_SPLIT.value, shuffle_files=False)
  errors = {"prediction": []}
  for start in _STARTS.value:
    for name in _MODES.value:
      errors[f"fit_{name}_from_{start}"] = []
  nmes = {name: [] for name in errors}
  decoder = predictor.decoder
  seconds = []
  for index, example in enumerate(tfds_numpy(dataset.take(_EXAMPLES.value))):
    images = example["images"].astype(np.float32) / 255.0
    landmarks = example["landmarks"].astype(np.float32)
    truth = example["coefficients"]
    skin = (example["skin"].astype(np.float32) / 255.0 if _SKIN.value
            else None)
    # The model takes its own crop size (64); the fit runs on the set's.
    predicted = predictor.coefficients(reconstructor_lib.model_inputs(
        example["images"], predictor.image_size))
    errors["prediction"] += vertex_errors(decoder, predicted, truth)
    size = images.shape[1]
    nmes["prediction"] += landmark_nmes(decoder, predicted, landmarks, size)
    starts = {"prediction": predicted, "mean": None}
    for start_name in _STARTS.value:
      start = starts[start_name]
      for mode, name in ((fitting.FitMode.PHOTOS, "alone"),
                         (fitting.FitMode.SET, "joint")):
        if name not in _MODES.value:
          continue
        began = time.perf_counter()
        result = fitter.fit(images, landmarks, mode=mode, initial=start,
                            skin=skin)
        seconds.append(time.perf_counter() - began)
        errors[f"fit_{name}_from_{start_name}"] += vertex_errors(
            decoder, result.coefficients, truth)
        nmes[f"fit_{name}_from_{start_name}"] += landmark_nmes(
            decoder, result.coefficients, landmarks, size)
    log(f"example {index}: " + ", ".join(
        f"{k} {np.mean(v[-3:]):.2f}" for k, v in errors.items()))
  means = {name: float(np.mean(v)) for name, v in errors.items()}
  report = {"dataset": builder.info.full_name, "split": _SPLIT.value,
            "examples": _EXAMPLES.value,
            "images": len(errors["prediction"]),
            "vertex_error_mm": means,
            "vertex_error_mm_per_image": errors,
            "landmark_nme_percent": {name: float(np.mean(v))
                                     for name, v in nmes.items()},
            "landmark_nme_percent_per_image": nmes,
            "start_pose": fitter.config.start_pose,
            "seconds_per_fit_mean": float(np.mean(seconds))}
  for start in _STARTS.value:
    if start == "prediction":
      for name in _MODES.value:
        report[f"fit_{name}_vs_prediction_percent"] = 100.0 * (
            means[f"fit_{name}_from_prediction"] / means["prediction"] - 1)
    if len(_MODES.value) == 2:
      report[f"joint_vs_alone_from_{start}_percent"] = 100.0 * (
          means[f"fit_joint_from_{start}"] /
          means[f"fit_alone_from_{start}"] - 1)
  return report


def tfds_numpy(dataset):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.as_numpy(dataset)


def real_photos():
  """{name: uint8 RGB} of the two shipped photos."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  from skimage import data  # pylint: disable=g-import-not-at-top
  from mgc_tf.io.bad_input import read_image_rgb  # pylint: disable=g-import-not-at-top
  return {"astronaut": data.astronaut(),
          "grace_hopper": read_image_rgb(os.path.join(
              matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))}


def real(predictor, fitter, output_dir, log):
  """Mesh distance and landmark NME on the two photos (module docstring)."""
  from mgc_tf.inference import fit_files  # pylint: disable=g-import-not-at-top
  finder = faces.make_face_finder(log=log)
  decoder = fitter.decoder
  crops, fitted, predicted, nme = {}, {}, {}, {}
  for name, rgb in real_photos().items():
    crop = finder.find(rgb, all_faces=False)[0]
    crops[name] = crop
    image = crop.image[None].astype(np.float32) / 255.0
    result = fitter.fit(image, crop.landmarks[None],
                        skin=(fit_files.crop_skin([crop]) if _SKIN.value
                              else None))
    fitted[name] = result
    predicted[name] = predictor.coefficients(
        reconstructor_lib.model_inputs(crop.image[None],
                                       predictor.image_size))
    recon = reconstruct.reconstruct(decoder, result.coefficients,
                                    render=False)
    nme[name] = 100.0 * float(metrics.landmark_nme(
        recon.landmarks_2d[0], crop.landmarks))
    fit_files.write_outputs(
        [fit_files.FaceImage(name, name, rgb, crop)], result, decoder,
        os.path.join(output_dir, "real"), "fit from the mean face",
        write_meshes=False)
    os.replace(os.path.join(output_dir, "real", fit_files.LOSS_FILE),
               os.path.join(output_dir, "real", f"{name}_fit_loss.json"))
    if os.path.exists(os.path.join(output_dir, "real", fit_files.LOSS_PLOT)):
      os.replace(os.path.join(output_dir, "real", fit_files.LOSS_PLOT),
                 os.path.join(output_dir, "real", f"{name}_fit_loss.png"))
    log(f"{name}: loss {result.losses[0]:.4g} -> {result.losses[-1]:.4g}, "
        f"landmark NME vs dlib {nme[name]:.2f} %")
  names = list(crops)

  def distance(coefficients):
    a, b = (shapes_of(decoder, coefficients[n])[0] for n in names)
    return metrics.aligned_vertex_error(a, b, decoder.face_model.front_mask)

  prediction_nme = {}
  for name in names:
    recon = reconstruct.reconstruct(decoder, predicted[name], render=False)
    prediction_nme[name] = 100.0 * float(metrics.landmark_nme(
        recon.landmarks_2d[0], crops[name].landmarks))
  return {
      "fitted_mesh_distance_mm": distance(
          {n: r.coefficients for n, r in fitted.items()}),
      "predicted_mesh_distance_mm": distance(predicted),
      "fitted_landmark_nme_percent": nme,
      "predicted_landmark_nme_percent": prediction_nme,
      "steps": fitter.config.steps,
      "start_pose": fitter.config.start_pose,
  }


def bar_figure(path, values, title, ylabel):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, axis = pyplot.subplots(figsize=(7, 3.4), dpi=100)
  names = list(values)
  axis.bar(range(len(names)), [values[n] for n in names])
  axis.set_xticks(range(len(names)))
  axis.set_xticklabels([n.replace("_", "\n") for n in names], fontsize=7)
  axis.set_ylabel(ylabel)
  axis.set_title(title, fontsize=9)
  for i, name in enumerate(names):
    axis.text(i, values[name], f"{values[name]:.2f}", ha="center",
              va="bottom", fontsize=7)
  figure.tight_layout()
  figure.savefig(path)
  pyplot.close(figure)


def main(argv):
  del argv
  log = lambda line: print(line, flush=True)
  os.makedirs(_OUTPUT.value, exist_ok=True)
  predictor = reconstructor_lib.Reconstructor.from_run(_MODEL_DIR.value)
  identity_loss = identity_lib.IdentityLoss.from_spec(_IDENTITY.value)
  report = {"model": predictor.description,
            "identity": identity_loss.describe()}
  weights = fitting.FitConfig().weights
  prediction_regularization = fitting.FitConfig().prediction_regularization
  if _REGULARIZATION.value is not None:
    weights = dataclasses.replace(weights,
                                  regularization=_REGULARIZATION.value)
    prediction_regularization = _REGULARIZATION.value
  report["regularization_weight"] = {
      "from_mean": weights.regularization,
      "from_prediction": prediction_regularization}
  if "synthetic" in _PARTS.value:
    fitter = fitting.Fitter(predictor.decoder,
                            fitting.FitConfig(
                                steps=_STEPS.value, weights=weights,
                                prediction_regularization=(
                                    prediction_regularization),
                                start_pose=_START_POSE.value),
                            identity_loss)
    report["synthetic"] = synthetic(predictor, fitter, log)
    report["synthetic"]["steps"] = _STEPS.value
    bar_figure(os.path.join(_OUTPUT.value, "synthetic_vertex_error.png"),
               report["synthetic"]["vertex_error_mm"],
               f"{report['synthetic']['dataset']} test, "
               f"{report['synthetic']['images']} images, {_STEPS.value} steps",
               "aligned vertex error (mm)")
  if "real" in _PARTS.value:
    fitter = fitting.Fitter(predictor.decoder,
                            fitting.FitConfig(
                                steps=_REAL_STEPS.value, weights=weights,
                                prediction_regularization=(
                                    prediction_regularization),
                                start_pose=_START_POSE.value),
                            identity_loss)
    report["real"] = real(predictor, fitter, _OUTPUT.value, log)
  for part in _PARTS.value:
    # One file per part, so that the parts can run at the same time.
    with open(os.path.join(_OUTPUT.value, f"fitting_{part}.json"), "w") as f:
      json.dump({"model": report["model"], "identity": report["identity"],
                 "regularization_weight": report["regularization_weight"],
                 part: report[part]}, f, indent=1)
  log(json.dumps({k: v for k, v in report.items()
                  if k != "synthetic"}, indent=1))
  if "synthetic" in report:
    log(json.dumps({k: v for k, v in report["synthetic"].items()
                    if not k.endswith("_per_image")}, indent=1))


if __name__ == "__main__":
  app.run(main)
