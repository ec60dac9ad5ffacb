"""How dlib's 68-point detector does on the synthetic renders, by |yaw|.

  python scripts/measure_landmark_detector.py [--examples=480] [--size=112]
      [--json_out=results/landmark_detector/measurement.json]
      [--markdown_out=/tmp/tables.md]

Renders `--examples` examples of the synthetic_multiview test split (its
target yaws are balanced over [0, 30), [30, 60), [60, 90]; the sources sit
10-40 degrees away), runs `mgc_tf.faces2d.detected_landmarks.run_detector`
on every view and prints, per 10-degree |yaw| bin:

  * the views, the HOG detection rate, the drift rate (of found views, NME
    above DRIFT_NME) and the predictor's NME (mean, median; % of the face
    size sqrt(w h) of the true landmarks, `metrics.landmark_nme`) on found
    views (also with the predictor in HOG's own box, as a plain pipeline
    runs it), on views HOG misses (the predictor placed in the calibrated
    box anyway) and on all;
  * per-coordinate error statistics on found views: RMS of x and y errors,
    RMS of the per-view mean error (the part shared by the 68 points),
    RMS of the per-landmark mean error (the systematic part), and the mean
    error per face region (jaw, brows, nose, eyes, mouth);
  * the NME of what the dataset stores (`detect_landmarks`: the predictor's
    output on found views, truth + modelled noise elsewhere) and of
    `modelled_landmarks` alone, to compare the model's size with the
    detector's.

It also refits the detector box calibration (`detector_box`: side and centre
of dlib's real boxes on frontal views, relative to the inner landmarks) and
the noise model (`noise_std`, NOISE_SHARED_FRACTION), printing the constants
next to those in the module. The raw numbers go to `--json_out`; the
markdown tables of docs/datasets/landmark_detector_measurement.md to
`--markdown_out`.
"""

import json
import os
import time

from absl import app
from absl import flags
import numpy as np

from mgc_tf.faces2d import detected_landmarks as dl
from mgc_tf.faces2d import preprocessing
from tfds_builders.synthetic_multiview import synthetic_scenes

_EXAMPLES = flags.DEFINE_integer("examples", 480, "Test examples (x3 views).")
_SIZE = flags.DEFINE_integer("size", 112, "Crop side S, pixels.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Raw measurement JSON.")
_MARKDOWN_OUT = flags.DEFINE_string("markdown_out", None,
                                    "Markdown tables.")
_CALIBRATION_MAX_YAW = flags.DEFINE_float(
    "calibration_max_yaw", 20.0, "|yaw| below which views calibrate the box.")
_MIN_FIT_VIEWS = flags.DEFINE_integer(
    "min_fit_views", 20, "Found views a bin needs to enter the noise fit.")

BIN_DEGREES = 10.0
NUM_BINS = 9
REGIONS = {"jaw": slice(0, 17), "brows": slice(17, 27), "nose": slice(27, 36),
           "eyes": slice(36, 48), "mouth": slice(48, 68)}


def render(examples: int, size: int):
  """images [E*3, S, S, 3], landmarks [E*3, 68, 2], yaw [E*3], seconds."""
  start = time.perf_counter()
  images, landmarks, yaws = [], [], []
  for _, example in synthetic_scenes.generate_examples("test", examples,
                                                       size):
    images.extend(example["images"])
    landmarks.extend(example["landmarks"])
    yaws.extend(example["yaw_degrees"])
  return (np.stack(images), np.stack(landmarks).astype(np.float64),
          np.asarray(yaws, np.float64), time.perf_counter() - start)


def matched_hog_box(run: dl.DetectorRun, truth: np.ndarray):
  """The HOG box whose centre is nearest the inner landmarks' box centre
  (independent of the current calibration), or None."""
  if not len(run.hog_boxes):
    return None
  inner = truth[dl.INNER_LANDMARKS]
  centre = 0.5 * (inner.min(0) + inner.max(0))
  centres = 0.5 * (run.hog_boxes[:, :2] + run.hog_boxes[:, 2:])
  best = run.hog_boxes[np.argmin(np.linalg.norm(centres - centre, axis=1))]
  side = best[2] - best[0]
  if np.linalg.norm(0.5 * (best[:2] + best[2:]) - centre) > 0.5 * side:
    return None
  return best


def calibrate(runs, truths, yaws, max_yaw):
  """Fits BOX_SCALE and BOX_OFFSET on frontal views; IoU per bin."""
  ratios, offsets, matched = [], [], []
  for run, truth, yaw in zip(runs, truths, yaws):
    hog = matched_hog_box(run, truth)
    matched.append(hog)
    if hog is None or abs(yaw) >= max_yaw:
      continue
    inner = truth[dl.INNER_LANDMARKS]
    low, high = inner.min(0), inner.max(0)
    size = np.max(high - low)
    ratios.append((hog[2] - hog[0]) / size)
    offsets.append((0.5 * (hog[:2] + hog[2:]) - 0.5 * (low + high)) / size)
  if not ratios:
    raise SystemExit("no frontal view with a HOG box: render more examples")
  ratios, offsets = np.array(ratios), np.array(offsets)
  scale, offset = float(ratios.mean()), offsets.mean(0)
  # IoU of the refitted box with the matched real box, per bin.
  saved = dl.BOX_SCALE, dl.BOX_OFFSET
  dl.BOX_SCALE, dl.BOX_OFFSET = scale, tuple(offset)
  try:
    ious = np.array([dl.box_iou(dl.detector_box(t), h) if h is not None
                     else np.nan for t, h in zip(truths, matched)])
  finally:
    dl.BOX_SCALE, dl.BOX_OFFSET = saved
  bins = bin_index(yaws)
  frontal = (np.abs(yaws) < max_yaw) & np.isfinite(ious)
  sides = sorted({round(float(h[2] - h[0]), 1) for h in matched
                  if h is not None})
  return {
      "views": int(len(ratios)), "scale": scale, "scale_sd": float(
          ratios.std()), "offset": offset.tolist(),
      "offset_sd": offsets.std(0).tolist(),
      "iou_frontal_median": float(np.median(ious[frontal])),
      "iou_frontal_min": float(np.min(ious[frontal])),
      "iou_median_per_bin": [
          float(np.nanmedian(ious[bins == b]))
          if np.isfinite(ious[bins == b]).any() else None
          for b in range(NUM_BINS)],
      "hog_box_sides_px": sides,
  }


def bin_index(yaws):
  return np.minimum(np.abs(yaws) // BIN_DEGREES, NUM_BINS - 1).astype(int)


def percent(values, reducer=np.mean):
  return float(100.0 * reducer(values)) if len(values) else None


def fit_noise(errors, yaws, found, min_views):
  """Per-coordinate std lines and the shared fraction (see the module)."""
  bins = bin_index(yaws)
  centres, rms, weights, used = [], [], [], np.zeros(len(yaws), bool)
  for b in range(NUM_BINS):
    selected = (bins == b) & found
    if selected.sum() < min_views:
      continue
    used |= selected
    centres.append(np.abs(yaws[selected]).mean())
    rms.append(np.sqrt(np.mean(errors[selected] ** 2, axis=(0, 1))))
    weights.append(selected.sum())
  if len(centres) < 2:
    return None
  centres, rms, weights = np.array(centres), np.array(rms), np.array(weights)
  design = np.stack([np.ones_like(centres), centres], 1) * np.sqrt(
      weights)[:, None]
  coefficients = np.linalg.lstsq(design, rms * np.sqrt(weights)[:, None],
                                 rcond=None)[0]  # [2 (a, b), 2 (x, y)]
  view_means = errors[used].mean(axis=1)  # [V, 2]
  shared = float(np.sum(view_means ** 2) / np.sum(
      np.mean(errors[used] ** 2, axis=1)))
  shared_xy = (np.sum(view_means ** 2, 0) / np.sum(
      np.mean(errors[used] ** 2, axis=1), 0)).tolist()
  return {"knots_degrees": centres.tolist(), "std_xy": rms.tolist(),
          "line_at_0": coefficients[0].tolist(),
          "slope_beyond": coefficients[1].tolist(),
          "shared_fraction": shared, "shared_fraction_xy": shared_xy,
          "bins_used": [int(c // BIN_DEGREES) for c in centres],
          "bin_views": weights.tolist()}


def print_noise_fit(noise):
  """Prints the refitted noise constants beside the module's."""
  print(f"noise fit over bins {noise['bins_used']} (found views "
        f"{noise['bin_views']}):")
  print("  NOISE_KNOTS_DEGREES = (" + ", ".join(
      f"{v:.1f}" for v in noise["knots_degrees"]) + ")")
  print("  NOISE_STD_XY = (" + ", ".join(
      f"({x:.4f}, {y:.4f})" for x, y in noise["std_xy"]) + ")")
  print(f"  NOISE_SLOPE_BEYOND = ({noise['slope_beyond'][0]:.5f}, "
        f"{noise['slope_beyond'][1]:.5f}) (line at 0: "
        f"{noise['line_at_0'][0]:.4f}, {noise['line_at_0'][1]:.4f})")
  print(f"  NOISE_SHARED_FRACTION = {noise['shared_fraction']:.3f} (x, y: "
        f"{noise['shared_fraction_xy'][0]:.3f}, "
        f"{noise['shared_fraction_xy'][1]:.3f})")
  print(f"  module: NOISE_KNOTS_DEGREES = {dl.NOISE_KNOTS_DEGREES}, "
        f"NOISE_STD_XY = {dl.NOISE_STD_XY}, NOISE_SLOPE_BEYOND = "
        f"{dl.NOISE_SLOPE_BEYOND}, NOISE_SHARED_FRACTION = "
        f"{dl.NOISE_SHARED_FRACTION}")


def main(argv):
  del argv
  size, examples = _SIZE.value, _EXAMPLES.value
  images, truths, yaws, render_seconds = render(examples, size)
  print(f"rendered {examples} examples ({len(images)} views, S={size}) in "
        f"{render_seconds:.1f} s")
  landmarker = preprocessing.default_landmarker()

  start = time.perf_counter()
  runs = [dl.run_detector(landmarker, image, truth)
          for image, truth in zip(images, truths)]
  run_seconds = (time.perf_counter() - start) / len(images)
  rng = np.random.default_rng(0)
  start = time.perf_counter()
  stored = [dl.detect_landmarks(landmarker, image, truth, yaw, rng)
            for image, truth, yaw in zip(images, truths, yaws)]
  detect_seconds = (time.perf_counter() - start) / len(images)
  modelled = np.stack([dl.modelled_landmarks(rng, truth, yaw)
                       for truth, yaw in zip(truths, yaws)])
  print(f"time per view: run_detector {1e3 * run_seconds:.1f} ms, "
        f"detect_landmarks {1e3 * detect_seconds:.1f} ms "
        "(what the dataset builder calls)")

  found = np.array([r.found for r in runs])
  nme = np.array([r.nme for r in runs])
  sizes = dl.face_size(truths)
  predicted = np.stack([r.predicted for r in runs]).astype(np.float64)
  errors = (predicted - truths) / sizes[:, None, None]  # face sizes
  status = np.array([int(s.status) for s in stored])
  stored_nme = dl.landmark_nme(np.stack([s.landmarks for s in stored]),
                               truths)
  modelled_nme = dl.landmark_nme(modelled, truths)
  drifted = nme > dl.DRIFT_NME
  nme_hog_box = np.array([
      dl.landmark_nme(r.predicted_in_hog_box, t) if r.found else np.nan
      for r, t in zip(runs, truths)])
  assert np.all((status == dl.LandmarkStatus.DRIFTED) == (found & drifted))
  bins = bin_index(yaws)

  rows, region_rows = [], []
  for b in range(NUM_BINS):
    in_bin = bins == b
    hit, miss = in_bin & found, in_bin & ~found
    e = errors[hit]
    row = {
        "bin": f"{b * 10}-{b * 10 + 10}", "views": int(in_bin.sum()),
        "found_rate": (float(found[in_bin].mean()) if in_bin.any()
                       else None),
        "drift_rate_of_found": (float(drifted[hit].mean()) if hit.any()
                                else None),
        "nme_found_mean": percent(nme[hit]),
        "nme_found_median": percent(nme[hit], np.median),
        "nme_found_in_hog_box_mean": percent(nme_hog_box[hit]),
        "nme_missed_mean": percent(nme[miss]),
        "nme_missed_median": percent(nme[miss], np.median),
        "nme_all_mean": percent(nme[in_bin]),
        "nme_all_median": percent(nme[in_bin], np.median),
        "nme_stored_mean": percent(stored_nme[in_bin]),
        "nme_modelled_mean": percent(modelled_nme[in_bin]),
        "status_counts": [int(np.sum(status[in_bin] == s)) for s in range(4)],
    }
    if hit.any():
      model_std = dl.noise_std(np.abs(yaws[hit]).mean())
      row.update({
          "rms_x": 100.0 * float(np.sqrt(np.mean(e[..., 0] ** 2))),
          "rms_y": 100.0 * float(np.sqrt(np.mean(e[..., 1] ** 2))),
          "shared_rms": 100.0 * float(np.sqrt(np.mean(e.mean(1) ** 2))),
          "systematic_rms": 100.0 * float(np.sqrt(np.mean(e.mean(0) ** 2))),
          "model_std_x": 100.0 * float(model_std[0]),
          "model_std_y": 100.0 * float(model_std[1]),
          "per_point_mean_error": [
              round(100.0 * float(v), 2)
              for v in np.linalg.norm(e, axis=-1).mean(0)],
      })
      region_rows.append((row["bin"], int(hit.sum()), {
          name: 100.0 * float(np.linalg.norm(e[:, part], axis=-1).mean())
          for name, part in REGIONS.items()}))
    rows.append(row)

  calibration = calibrate(runs, truths, yaws, _CALIBRATION_MAX_YAW.value)
  noise = fit_noise(errors, yaws, found, _MIN_FIT_VIEWS.value)

  def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"

  lines = [
      "| abs(yaw) deg | views | HOG found | drifted (of found) | NME found "
      "mean / median | NME found, in HOG's own box | NME missed "
      "(predictor in the calibrated box) mean / median | "
      "NME all mean / median | NME stored | NME modelled |",
      "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    found_rate = ("-" if r["found_rate"] is None
                  else f"{100 * r['found_rate']:.0f} %")
    drift = r["drift_rate_of_found"]
    drift = "-" if drift is None else f"{100 * drift:.0f} %"
    lines.append(
        f"| {r['bin']} | {r['views']} | "
        f"{found_rate} | "
        f"{drift} | "
        f"{fmt(r['nme_found_mean'])} / {fmt(r['nme_found_median'])} | "
        f"{fmt(r['nme_found_in_hog_box_mean'])} | "
        f"{fmt(r['nme_missed_mean'])} / {fmt(r['nme_missed_median'])} | "
        f"{fmt(r['nme_all_mean'])} / {fmt(r['nme_all_median'])} | "
        f"{fmt(r['nme_stored_mean'])} | {fmt(r['nme_modelled_mean'])} |")
  lines += [
      "", "| abs(yaw) deg | found views | RMS x | RMS y | shared (per-view "
      "mean) RMS | systematic (per-landmark mean) RMS | model std x | model "
      "std y | " + " | ".join(f"mean error {name}" for name in REGIONS) +
      " |", "|---" * (8 + len(REGIONS)) + "|"]
  for (name, count, regions), r in zip(region_rows,
                                        [r for r in rows if "rms_x" in r]):
    lines.append(
        f"| {name} | {count} | {r['rms_x']:.1f} | {r['rms_y']:.1f} | "
        f"{r['shared_rms']:.1f} | {r['systematic_rms']:.1f} | "
        f"{r['model_std_x']:.1f} | {r['model_std_y']:.1f} | " +
        " | ".join(f"{regions[k]:.1f}" for k in REGIONS) + " |")
  table = "\n".join(lines)
  print()
  print(table)
  print()
  print("box calibration (frontal views, |yaw| < "
        f"{_CALIBRATION_MAX_YAW.value:g}): {calibration['views']} views, "
        f"side/m = {calibration['scale']:.3f} (sd "
        f"{calibration['scale_sd']:.3f}), offset/m = "
        f"({calibration['offset'][0]:+.3f}, {calibration['offset'][1]:+.3f})"
        f" (sd {calibration['offset_sd'][0]:.3f}, "
        f"{calibration['offset_sd'][1]:.3f}); IoU frontal median "
        f"{calibration['iou_frontal_median']:.2f}, min "
        f"{calibration['iou_frontal_min']:.2f}; per bin "
        + " ".join(fmt(v, 2) for v in calibration["iou_median_per_bin"])
        + f"; HOG box sides {calibration['hog_box_sides_px']} px")
  print(f"  module: BOX_SCALE = {dl.BOX_SCALE}, BOX_OFFSET = {dl.BOX_OFFSET}")
  if noise is None:
    print(f"noise fit: fewer than 2 bins with >= {_MIN_FIT_VIEWS.value} "
          "found views; render more examples")
  else:
    print_noise_fit(noise)
  print("  module noise_std at |yaw| 0, 30, 60, 75, 90 (%): " + ", ".join(
      "(%.1f, %.1f)" % tuple(100 * dl.noise_std(v))
      for v in (0, 30, 60, 75, 90)))

  if _MARKDOWN_OUT.value:
    with open(_MARKDOWN_OUT.value, "w", encoding="utf-8") as f:
      f.write(table + "\n")
  if _JSON_OUT.value:
    os.makedirs(os.path.dirname(_JSON_OUT.value) or ".", exist_ok=True)
    with open(_JSON_OUT.value, "w", encoding="utf-8") as f:
      json.dump({
          "command": "python scripts/measure_landmark_detector.py "
                     f"--examples={examples} --size={size}",
          "examples": examples, "views": int(len(images)), "size": size,
          "work_size": dl.WORK_SIZE, "dlib_version": landmarker.dlib_version,
          "drift_nme": dl.DRIFT_NME, "found_min_iou": dl.FOUND_MIN_IOU,
          "render_seconds": render_seconds,
          "ms_per_view_run_detector": 1e3 * run_seconds,
          "ms_per_view_detect_landmarks": 1e3 * detect_seconds,
          "bins": rows, "box_calibration": calibration, "noise_fit": noise,
          "module_constants": {
              "BOX_SCALE": dl.BOX_SCALE, "BOX_OFFSET": list(dl.BOX_OFFSET),
              "NOISE_KNOTS_DEGREES": list(dl.NOISE_KNOTS_DEGREES),
              "NOISE_STD_XY": [list(v) for v in dl.NOISE_STD_XY],
              "NOISE_SLOPE_BEYOND": list(dl.NOISE_SLOPE_BEYOND),
              "NOISE_SHARED_FRACTION": dl.NOISE_SHARED_FRACTION},
          "per_view": {"yaw_degrees": yaws.round(3).tolist(),
                       "found": found.tolist(),
                       "nme": nme.round(5).tolist(),
                       "status": status.tolist()},
      }, f, indent=1)
    print(f"wrote {_JSON_OUT.value}")


if __name__ == "__main__":
  app.run(main)
