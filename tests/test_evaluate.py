"""Evaluation protocols and `python -m mgc_tf.evaluate` on small prepared sets.

synthetic_multiview/tiny (3 test examples of 3 views, 64 px), and the
aflw2000_3d and micc_florence dummy data, built into a temporary data_dir;
the model is the `trained_model_dir` fixture (resnet18, 64 px, random).
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.data import pipeline
from mgc_tf.data import prepare
from mgc_tf.evaluation import metrics
from mgc_tf.evaluation import periodic
from mgc_tf.evaluation import protocols
from mgc_tf.evaluation import results
from mgc_tf.inference import reconstructor as reconstructor_lib
from tfds_builders.aflw2000_3d import aflw2000_3d_dataset_builder
from tfds_builders.micc_florence import micc_florence_dataset_builder
from tfds_builders.synthetic_multiview import (
    synthetic_multiview_dataset_builder)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "synthetic_multiview/tiny"
MULTIVIEW_KEYS = {
    "nme/0-30", "nme/30-60", "nme/60-90", "nme/mean", "roll_error_deg",
    "yaw_error_deg", "pitch_error_deg", "vertex_error_mm", "depth_error_mm",
    "depth_error_aligned_mm", "epipolar_error_px", "relative_rotation_error_deg", "render_psnr_db",
    "render_ssim"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """synthetic tiny, aflw2000_3d and micc_florence (dummy data) prepared."""
  directory = str(tmp_path_factory.mktemp("tfds"))
  # In this process (the tfds command would start another TensorFlow).
  synthetic_multiview_dataset_builder.Builder(
      config="tiny", data_dir=directory).download_and_prepare()
  assert prepare.is_prepared(TINY, directory)
  for module in (aflw2000_3d_dataset_builder, micc_florence_dataset_builder):
    builder = module.Builder(data_dir=directory)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=os.path.join(os.path.dirname(module.__file__),
                                "dummy_data")))
  return directory


@pytest.fixture(scope="module")
def predictor(trained_model_dir):
  return reconstructor_lib.Reconstructor.from_run(trained_model_dir)


class TableLookupPredictor(reconstructor_lib.Reconstructor):
  """Returns given coefficient rows in order (the protocols read the split
  in order), whatever the images."""

  def __init__(self, decoder, rows: np.ndarray, image_size: int = 64):
    super().__init__(self._lookup, decoder, image_size, "coefficient table")
    self.rows = np.asarray(rows, np.float32)
    self.next = 0

  def _lookup(self, images):
    assert images.shape[1:] == (self.image_size, self.image_size, 3)
    rows = self.rows[self.next:self.next + len(images)]
    self.next += len(images)
    assert len(rows) == len(images), "more images than table rows"
    return {"coefficients": rows}


def _finite(values):
  return all(np.isfinite(v) for v in values)


@pytest.mark.slow
def test_cli_prints_the_table_and_writes_every_metric(data_dir,
                                                      trained_model_dir,
                                                      tmp_path):
  model_dir = str(tmp_path / "run")
  shutil.copytree(trained_model_dir, model_dir)
  result = subprocess.run(
      [sys.executable, "-m", "mgc_tf.evaluate", f"--model_dir={model_dir}",
       f"--dataset={TINY}", f"--data_dir={data_dir}", "--batch_size=4"],
      capture_output=True, text=True, timeout=300, cwd=REPO,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert result.returncode == 0, result.stderr[-3000:]
  # Default output: inside the run.
  path = os.path.join(model_dir, "eval_synthetic_multiview-tiny_test.json")
  assert f"Wrote {path}" in result.stdout
  with open(path) as f:
    written = json.load(f)
  assert set(written["metrics"]) == MULTIVIEW_KEYS
  assert _finite(written["metrics"].values())
  assert written["counts"]["examples"] == 3
  assert written["counts"]["images"] == 9
  assert written["counts"]["view_pairs"] == 6
  assert "ckpt-7" in written["model"]
  for name, value in written["metrics"].items():
    assert f"{name} " in result.stdout
    assert f"{value:.4f}" in result.stdout


def test_ground_truth_coefficients_score_zero_errors(data_dir, predictor):
  builder = protocols.load_dataset_builder(TINY, data_dir)
  rows = np.concatenate([
      example["coefficients"] for example in
      tfds.as_numpy(builder.as_dataset(split="test", shuffle_files=False))])
  truth = TableLookupPredictor(predictor.decoder, rows)
  result = protocols.evaluate_builder(truth, builder, "test", batch_size=4,
                                      progress=False)
  assert truth.next == 9
  m = result.metrics
  assert set(m) == MULTIVIEW_KEYS
  for name in ("nme/mean", "roll_error_deg", "yaw_error_deg",
               "pitch_error_deg", "relative_rotation_error_deg"):
    assert m[name] < 1e-3, name
  assert m["vertex_error_mm"] < 1e-3
  assert m["depth_error_mm"] < 1e-2
  assert m["epipolar_error_px"] < 1e-3
  # The render matches the stored image up to its 8-bit rounding (about
  # 59 dB); a wrong camera, pose or colour would cost tens of dB.
  assert m["render_psnr_db"] > 45.0 and m["render_ssim"] > 0.99
  # And the model's guesses are far from that.
  random = protocols.evaluate_builder(predictor, builder, "test",
                                      progress=False)
  assert random.metrics["vertex_error_mm"] > 100 * m["vertex_error_mm"]
  assert random.metrics["nme/mean"] > 1.0


def test_mean_face_script_is_the_evaluation_of_the_mean_face(data_dir):
  """scripts/mean_face_vertex_error.py prints what the protocol gives a
  model that predicts the mean face (zero shape coefficients)."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import decoder as decoder_lib
  from mgc_tf.facemodel import loaders
  decoder = decoder_lib.FaceDecoder(loaders.load_face_model(
      "embedded-synthetic-v1"))
  builder = protocols.load_dataset_builder(TINY, data_dir)
  rows = np.concatenate([
      example["coefficients"] for example in
      tfds.as_numpy(builder.as_dataset(split="test", shuffle_files=False))])
  slices = decoder.layout.slices()
  rows[:, slices["identity"]] = 0.0
  rows[:, slices["expression"]] = 0.0
  mean_face = protocols.evaluate_builder(
      TableLookupPredictor(decoder, rows), builder, "test", batch_size=4,
      progress=False).metrics["vertex_error_mm"]
  script = os.path.join(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), "scripts", "mean_face_vertex_error.py")
  result = subprocess.run(
      [sys.executable, script, f"--dataset={TINY}", f"--data_dir={data_dir}"],
      capture_output=True, text=True, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-2000:]
  printed = float(result.stdout.split("vertex error ")[1].split(" mm")[0])
  assert mean_face > 1.0
  assert printed == pytest.approx(mean_face, abs=0.006)  # printed to 0.01


@pytest.fixture(scope="module")
def v2_data_dir(tmp_path_factory):
  """synthetic_multiview/v2_tiny (detected landmarks, occluders)."""
  directory = str(tmp_path_factory.mktemp("tfds_v2"))
  synthetic_multiview_dataset_builder.Builder(
      config="v2_tiny", data_dir=directory).download_and_prepare()
  return directory


def test_v2_scores_against_true_landmarks_and_splits_clean_and_occluded(
    v2_data_dir, predictor):
  builder = protocols.load_dataset_builder("synthetic_multiview/v2_tiny",
                                           v2_data_dir)
  examples = list(tfds.as_numpy(builder.as_dataset(split="test",
                                                   shuffle_files=False)))
  rows = np.concatenate([example["coefficients"] for example in examples])
  occluded = np.concatenate([example["occluded_fraction"] for example in
                             examples]) > 0.02
  truth = TableLookupPredictor(predictor.decoder, rows)
  m = protocols.evaluate_builder(truth, builder, "test", batch_size=4,
                                 progress=False).metrics
  # Against the exact landmarks, not the detected ones the set trains on.
  assert m["nme/mean"] < 1e-3 and m["epipolar_error_px"] < 1e-3
  # Occluded pixels are not in the true depth; the rest still agree.
  assert m["depth_error_mm"] < 1e-2
  result = protocols.evaluate_builder(predictor, builder, "test",
                                      progress=False)
  counts = result.counts
  assert counts["clean_images"] == int(np.sum(~occluded))
  assert counts["occluded_images"] == int(np.sum(occluded))
  for prefix, selected in (("clean", ~occluded), ("occluded", occluded)):
    for name in ("vertex_error_mm", "yaw_error_deg", "nme/mean"):
      key = f"{prefix}/{name}"
      assert key in result.metrics
      assert np.isfinite(result.metrics[key]) == bool(selected.any()), key
  if occluded.any() and (~occluded).any():
    # A per-image mean is the count-weighted mean of its two parts.
    weighted = (counts["clean_images"] *
                result.metrics["clean/vertex_error_mm"] +
                counts["occluded_images"] *
                result.metrics["occluded/vertex_error_mm"]) / counts["images"]
    np.testing.assert_allclose(result.metrics["vertex_error_mm"], weighted,
                               rtol=1e-9)


def test_periodic_evaluation_runs_the_same_protocol(data_dir, predictor,
                                                   monkeypatch):
  trainer = types.SimpleNamespace(
      networks=predictor.networks, decoder=predictor.decoder,
      config=types.SimpleNamespace(image_size=predictor.image_size),
      method=types.SimpleNamespace(outputs=dict,
                                   inference_spec=lambda: None))
  periodic_metrics = periodic.make_evaluate_fn(TINY, "test", data_dir, 0)(
      trainer)
  builder = protocols.load_dataset_builder(TINY, data_dir)
  cli_metrics = protocols.evaluate_builder(predictor, builder, "test",
                                           progress=False).metrics
  assert set(periodic_metrics) == MULTIVIEW_KEYS
  for name, value in cli_metrics.items():
    assert periodic_metrics[name] == pytest.approx(value, rel=1e-4,
                                                   abs=1e-4), name
  # --eval_batches counts batches of EVAL_BATCH_SIZE images, whole examples:
  # 1 batch of 3 images is the first example only.
  monkeypatch.setattr(periodic, "EVAL_BATCH_SIZE", 3)
  limited = periodic.make_evaluate_fn(TINY, "test", data_dir, 1)(trainer)
  first = protocols.evaluate_builder(predictor, builder, "test",
                                     max_examples=1, progress=False).metrics
  assert limited["vertex_error_mm"] == pytest.approx(
      first["vertex_error_mm"], rel=1e-4)
  assert first["vertex_error_mm"] != pytest.approx(
      cli_metrics["vertex_error_mm"], rel=1e-3)


def test_aflw2000_3d_nme_is_measured_in_the_original_image(data_dir,
                                                           predictor):
  builder = protocols.load_dataset_builder(aflw2000_3d_dataset_builder.Builder
                                           .name, data_dir)
  result = protocols.evaluate_builder(predictor, builder, "test",
                                      progress=False)
  assert set(result.metrics) == {"nme/0-30", "nme/30-60", "nme/60-90",
                                 "nme/mean", "render_psnr_db", "render_ssim"}
  assert result.counts["images"] == 3
  # Independent recomputation: decode at the crop size, map back with
  # OpenCV's inverse of the stored transform, normalise by the stored box.
  examples = list(tfds.as_numpy(builder.as_dataset(split="test",
                                                   shuffle_files=False)))
  crops = np.stack([e["aligned_image"] for e in examples])
  images = tf.image.resize(crops.astype(np.float32) / 255.0, [64, 64],
                           antialias=True).numpy()
  coefficients = predictor.coefficients(np.clip(images, 0, 1))
  crop_landmarks = predictor.decoder.decode(
      coefficients, image_size=crops.shape[1]).landmarks_2d.numpy()
  nme, yaws = [], []
  for example, points in zip(examples, crop_landmarks):
    back = cv2.invertAffineTransform(example["transform"].astype(np.float64))
    original = points @ back[:, :2].T + back[:, 2]
    x0, y0, x1, y1 = example["box"]
    error = np.linalg.norm(original - example["landmarks_original"],
                           axis=-1).mean()
    nme.append(100.0 * error / np.sqrt((x1 - x0) * (y1 - y0)))
    yaws.append(example["yaw_degrees"])
  expected = metrics.per_yaw_bin_mean(np.array(nme), np.array(yaws))
  assert result.metrics["nme/mean"] == pytest.approx(expected["mean"],
                                                     rel=1e-4)
  assert _finite([result.metrics["nme/mean"], result.metrics["render_ssim"],
                  result.metrics["render_psnr_db"]])


def test_micc_florence_per_setting_scan_errors(data_dir, predictor):
  builder = protocols.load_dataset_builder("micc_florence", data_dir)
  result = protocols.evaluate_builder(predictor, builder, "test",
                                      progress=False)
  settings = ["Indoor-Cooperative", "PTZ-Indoor", "rendered/pose_set",
              "videos", "rendered"]
  expected = {f"{name}/{setting}" for setting in settings for name in
              ("point_to_plane_rmse_mm", "point_to_plane_rmse_std_mm",
               "point_to_point_mm")}
  assert set(result.metrics) == expected
  assert _finite(result.metrics.values())
  # Two videos (their average shapes) and one rendered image of one set.
  assert result.counts == {"examples": 3, "subjects": 2, "videos": 2,
                           "rendered_images": 1, "frames": 4}
  assert len(result.details) == 3
  # The mean face predicted for every frame: subject_01's scan IS the mean
  # face (decimated, mm rounded to 0.001), so its error is ~0; subject_02's
  # scan is 5 % larger, which no rigid motion undoes.
  mean_face = TableLookupPredictor(
      predictor.decoder, np.zeros([4, predictor.decoder.layout.size]))
  exact = protocols.evaluate_builder(mean_face, builder, "test",
                                     progress=False)
  errors = {r["subject"]: r["point_to_plane_rmse_mm"] for r in exact.details}
  assert errors["subject_01"] < 0.01
  assert errors["subject_02"] > 0.3
  assert exact.metrics["point_to_point_mm/Indoor-Cooperative"] < 0.01
  assert exact.metrics["point_to_plane_rmse_mm/videos"] == pytest.approx(
      np.mean([r["point_to_plane_rmse_mm"] for r in exact.details
               if "frames" in r]))


def test_missing_dataset_names_the_build_command(tmp_path):
  with pytest.raises(pipeline.DatasetNotPreparedError,
                     match="tfds build tfds_builders/aflw2000_3d"):
    protocols.load_dataset_builder("aflw2000_3d", str(tmp_path / "empty"))


def test_default_output_paths():
  assert results.default_output_path(
      "synthetic_multiview/small", "test", model_dir="runs/a") == (
          "runs/a/eval_synthetic_multiview-small_test.json")
  assert results.default_output_path(
      "aflw2000_3d", "test[:10]", saved_model="export/mgc/1/") == (
          "export/mgc/1_eval_aflw2000_3d_test-10.json")


def test_an_exported_saved_model_scores_like_its_checkpoint(
    data_dir, predictor, trained_model_dir, tmp_path):
  # The export's own tests pin its signatures; here: --saved_model goes
  # through the same protocol and gives the checkpoint's numbers.
  from mgc_tf.serving import export_lib  # pylint: disable=g-import-not-at-top
  exported = export_lib.export_saved_model(trained_model_dir,
                                           str(tmp_path / "export"))
  saved = reconstructor_lib.Reconstructor.from_saved_model(exported.path)
  builder = protocols.load_dataset_builder(TINY, data_dir)
  from_saved = protocols.evaluate_builder(saved, builder, "test",
                                          max_examples=1, progress=False)
  from_checkpoint = protocols.evaluate_builder(predictor, builder, "test",
                                               max_examples=1,
                                               progress=False)
  assert set(from_saved.metrics) == MULTIVIEW_KEYS
  for name, value in from_checkpoint.metrics.items():
    # (An example has 3 views: some yaw bins are empty, NaN, in both.)
    assert from_saved.metrics[name] == pytest.approx(value, rel=1e-3,
                                                     abs=1e-3,
                                                     nan_ok=True), name
  assert results.default_output_path(
      TINY, "test", saved_model=exported.path) == (
          exported.path + "_eval_synthetic_multiview-tiny_test.json")
