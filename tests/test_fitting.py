"""Fitting (mgc_tf.fitting): recovery of rendered faces, sharing, smoothness.

Renders of known coefficients of the embedded face model at 64 px stand in
for photos; fits run a few dozen steps. CLI runs (real photos, dlib) are
slow-marked.
"""

import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from mgc_tf import fitting
from mgc_tf.facemodel import decoder as decoder_lib
from mgc_tf.facemodel import loaders
from mgc_tf.inference import fit_files
from mgc_tf.fitting import people
from mgc_tf.losses import temporal
from mgc_tf.render import renderer

SIZE = 64


@pytest.fixture(scope="module")
def decoder():
  return decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))


def _coefficients(decoder, count, seed=0, yaws=None):
  """[count, K]: one random identity/albedo, small per-image expressions."""
  layout, rng = decoder.layout, np.random.default_rng(seed)
  slices = layout.slices()
  out = np.zeros([count, layout.size], np.float32)
  out[:, slices["identity"]] = rng.normal(size=[1, layout.id_rank])
  out[:, slices["albedo"]] = 0.5 * rng.normal(size=[1, layout.albedo_rank])
  out[:, slices["expression"]] = 0.5 * rng.normal(
      size=[count, layout.exp_rank])
  pose = slices["pose"].start
  out[:, pose + 1] = yaws if yaws is not None else 0.0
  out[:, pose + 3:pose + 6] = rng.normal(0.0, 5.0, [count, 3])  # mm
  return out


def _render(decoder, coefficients):
  """(images [N, 64, 64, 3], landmarks [N, 68, 2]) of the coefficients."""
  background = tf.fill([len(coefficients), SIZE, SIZE, 3], 0.3)
  face, output = renderer.render_face(decoder, tf.constant(coefficients),
                                      background=background)
  return output.image.numpy(), face.landmarks_2d.numpy()


def _landmark_error(decoder, coefficients, landmarks):
  face = decoder.decode(tf.constant(coefficients), image_size=SIZE)
  return float(np.linalg.norm(face.landmarks_2d.numpy() - landmarks,
                              axis=-1).mean())


def test_temporal_smoothness_matches_numpy():
  values = np.random.default_rng(1).normal(size=[7, 5]).astype(np.float32)
  expected = np.mean(np.sum(np.diff(values, axis=0)**2, axis=1))
  np.testing.assert_allclose(temporal.temporal_smoothness(values).numpy(),
                             expected, rtol=1e-5)
  assert float(temporal.temporal_smoothness(values[:1])) == 0.0
  with pytest.raises(ValueError, match="values must be"):
    temporal.temporal_smoothness(values[0])


def test_zero_steps_return_the_start(decoder):
  start = _coefficients(decoder, 2)
  images, landmarks = _render(decoder, start)
  result = fitting.Fitter(decoder, fitting.FitConfig(steps=0)).fit(
      images, landmarks, initial=start)
  np.testing.assert_allclose(result.coefficients, start, atol=1e-5)
  assert result.losses.shape == (1,)


@pytest.mark.slow
def test_fitting_a_render_from_the_mean_recovers_pose_and_lowers_the_loss(
    decoder):
  truth = _coefficients(decoder, 1)
  images, landmarks = _render(decoder, truth)
  result = fitting.Fitter(decoder, fitting.FitConfig(
      steps=40, start_pose="default")).fit(images, landmarks)
  assert result.losses[-1] < 0.2 * result.losses[0]
  before = _landmark_error(decoder, result.initial, landmarks)
  after = _landmark_error(decoder, result.coefficients, landmarks)
  assert after < 0.3 * before, (before, after)
  assert after < 1.0  # pixels of the 64 px crop


def test_a_fit_from_the_mean_starts_at_the_pose_of_the_landmarks(decoder):
  """Turned heads (yaw -0.7, 0, 0.6 rad, shifted): the closed-form start
  recovers yaw within 0.1 rad from the mean face's landmarks (the true
  identity and expression differ), and its landmarks are far closer than
  the default pose's; a fit from given coefficients keeps their pose;
  mirrored landmarks (a face seen from behind) start at the default pose."""
  truth = _coefficients(decoder, 3, seed=2, yaws=np.array([-0.7, 0.0, 0.6]))
  images, landmarks = _render(decoder, truth)
  pose = decoder.layout.slices()["pose"]
  solved = fitting.pose_from_landmarks(decoder, landmarks, SIZE)
  np.testing.assert_allclose(solved[:, 1], truth[:, pose][:, 1], atol=0.1)
  start = fitting.Fitter(decoder, fitting.FitConfig(steps=0)).fit(
      images, landmarks).initial
  np.testing.assert_allclose(start[:, pose], solved, atol=1e-6)
  assert not np.any(start[:, decoder.layout.slices()["identity"]])
  frontal = fitting.Fitter(decoder, fitting.FitConfig(
      steps=0, start_pose="default")).fit(images, landmarks).initial
  assert not np.any(frontal)
  errors = [_landmark_error(decoder, c, landmarks) for c in (start, frontal)]
  assert errors[0] < 0.5 * errors[1], errors
  given = fitting.Fitter(decoder, fitting.FitConfig(steps=0)).fit(
      images, landmarks, initial=truth).initial
  np.testing.assert_allclose(given, truth)
  mirrored = landmarks.copy()
  mirrored[..., 0] = SIZE - 1 - mirrored[..., 0]
  assert not np.any(fitting.pose_from_landmarks(decoder, mirrored, SIZE))
  with pytest.raises(ValueError, match="start_pose must be one of"):
    fitting.FitConfig(start_pose="frontal")


def test_the_prior_is_stronger_from_a_prediction_than_from_the_mean(decoder):
  config = fitting.FitConfig()
  assert config.regularization(from_prediction=False) == 1e-4  # the paper's
  assert config.regularization(from_prediction=True) == 1e-2
  assert fitting.FitConfig(prediction_regularization=None).regularization(
      True) == 1e-4
  with pytest.raises(ValueError, match="prediction_regularization"):
    fitting.FitConfig(prediction_regularization=-1.0)
  fitter = fitting.Fitter(decoder, config)
  images = tf.zeros([1, 64, 64, 3])
  for from_prediction, expected in ((False, 1e-4), (True, 1e-2)):
    loss = fitter._loss(images, None, from_prediction)  # pylint: disable=protected-access
    assert loss.weights.regularization == expected


def test_set_shares_identity_and_albedo_and_photos_do_not(decoder):
  truth = _coefficients(decoder, 2, yaws=[-0.3, 0.3])
  images, landmarks = _render(decoder, truth)
  slices = decoder.layout.slices()
  config = fitting.FitConfig(steps=2, compiled=False)
  joint = fitting.Fitter(decoder, config).fit(images, landmarks,
                                              mode=fitting.FitMode.SET)
  alone = fitting.Fitter(decoder, config).fit(images, landmarks,
                                              mode=fitting.FitMode.PHOTOS)
  for name in ("identity", "albedo"):
    rows = joint.coefficients[:, slices[name]]
    np.testing.assert_array_equal(rows, np.broadcast_to(rows[:1], rows.shape))
    assert np.abs(rows).max() > 0  # it moved
    assert not np.allclose(alone.coefficients[0, slices[name]],
                           alone.coefficients[1, slices[name]])
  # Expression and pose stay per image in a set.
  assert not np.allclose(joint.coefficients[0, slices["pose"]],
                         joint.coefficients[1, slices["pose"]])
  # The multi-view terms ran (and the epipolar one in the second half).
  assert max(joint.terms["pixel"]) > 0
  assert joint.terms["epipolar"][-1] > 0 and joint.terms["epipolar"][0] == 0


def test_shared_start_is_the_mean_of_the_given_identities(decoder):
  start = np.random.default_rng(2).normal(
      size=[2, decoder.layout.size]).astype(np.float32) * 0.1
  variables = fitting.FitVariables(decoder.layout, start, shared=True,
                                   translation_unit_mm=20.0)
  identity = decoder.layout.slices()["identity"]
  np.testing.assert_allclose(variables.coefficients().numpy()[:, identity],
                             np.repeat(start[:, identity].mean(0, keepdims=True),
                                       2, axis=0), atol=1e-6)
  assert variables.groups["identity"].shape == (1, decoder.layout.id_rank)
  # Everything else round-trips, translation through its unit.
  others = np.ones(decoder.layout.size, bool)
  for name in fitting.fitter.SHARED_GROUPS:
    others[decoder.layout.slices()[name]] = False
  np.testing.assert_allclose(variables.coefficients().numpy()[:, others],
                             start[:, others], atol=1e-6)


@pytest.mark.slow
def test_video_smoothness_term_pulls_poses_together(decoder):
  truth = _coefficients(decoder, 3, yaws=[-0.1, 0.0, 0.1])
  images, landmarks = _render(decoder, truth)
  pose = decoder.layout.slices()["pose"]

  def spread(weight):
    config = fitting.FitConfig(steps=8, pose_smoothness=weight,
                               expression_smoothness=weight, compiled=False)
    result = fitting.Fitter(decoder, config).fit(
        images, landmarks, mode=fitting.FitMode.VIDEO, initial=truth)
    assert "pose_smoothness" in result.terms
    return np.abs(np.diff(result.coefficients[:, pose][:, :3], axis=0)).sum()

  assert spread(1e4) < spread(0.0)


def test_majority_person_keeps_the_largest_group():
  rng = np.random.default_rng(0)
  person = rng.normal(size=128)
  person /= np.linalg.norm(person)
  same = [person + rng.normal(0, 0.01, 128) for _ in range(3)]
  other = -person
  keep = people.majority_person(np.stack([same[0], other, same[1], same[2]]))
  np.testing.assert_array_equal(keep, [True, False, True, True])


def test_fit_files_skips_unreadable_and_writes_infer_outputs(
    decoder, tmp_path):
  from mgc_tf.inference import faces  # pylint: disable=g-import-not-at-top
  truth = _coefficients(decoder, 1)
  images, _ = _render(decoder, truth)
  rgb = np.round(images[0] * 255).astype(np.uint8)
  items = [("good", "good.png", rgb),
           ("wide", "wide.png", np.zeros([32, 64, 3], np.uint8))]
  run = fit_files.fit_files(
      items, str(tmp_path), fitting.Fitter(decoder, fitting.FitConfig(2, compiled=False)),
      faces.make_face_finder(aligned=True), fitting.FitMode.SET,
      show_progress=False, log=lambda line: None)
  assert run.counter.kept == 1 and run.counter.counts == {
      "not a square crop": 1}
  names = sorted(os.listdir(tmp_path))
  for name in ("good_face0.obj", "good_face0.npz", "good_face0.json",
               "good_overlay.png", fit_files.LOSS_FILE, fit_files.SUMMARY_FILE):
    assert name in names
  curve = json.load(open(tmp_path / fit_files.LOSS_FILE))
  assert len(curve["loss"]["total"]) == 3
  npz = np.load(tmp_path / "good_face0.npz")
  np.testing.assert_allclose(npz["coefficients"], run.result.coefficients[0])


def _run_fit(args, timeout=900):
  return subprocess.run(
      [sys.executable, "-m", "mgc_tf.fit", "--progress=false"] + args,
      capture_output=True, text=True, timeout=timeout,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.mark.slow
def test_cli_bad_inputs_are_one_line_errors(tmp_path):
  missing = _run_fit([f"--input={tmp_path}/nope.jpg",
                      f"--output_dir={tmp_path}/out"])
  assert missing.returncode == 2
  assert missing.stderr.strip().splitlines()[-1].startswith("error: ")
  both = _run_fit([f"--input={tmp_path}", f"--output_dir={tmp_path}/o",
                   "--model_dir=a", "--saved_model=b"])
  assert both.returncode == 2 and "at most one" in both.stderr
  photo = tmp_path / "photo.png"
  PIL.Image.fromarray(np.full([32, 32, 3], 128, np.uint8)).save(photo)
  pose = _run_fit([f"--input={photo}", f"--output_dir={tmp_path}/p",
                   "--start_pose=frontal"])
  assert pose.returncode == 2 and "Traceback" not in pose.stderr
  assert "start_pose must be one of" in pose.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_cli_folder_skips_faceless_and_other_people(tmp_path):
  import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
  import matplotlib  # pylint: disable=g-import-not-at-top
  from skimage import data  # pylint: disable=g-import-not-at-top
  folder = tmp_path / "person"
  folder.mkdir()
  astronaut = data.astronaut()
  imageio.imwrite(folder / "a1.png", astronaut)
  imageio.imwrite(folder / "a2.png", astronaut[:, ::-1])
  imageio.imwrite(folder / "a3.png", (astronaut * 0.85).astype(np.uint8))
  hopper = os.path.join(matplotlib.get_data_path(), "sample_data",
                        "grace_hopper.jpg")
  imageio.imwrite(folder / "hopper.png", imageio.imread(hopper))
  imageio.imwrite(folder / "noise.png", np.random.default_rng(0).integers(
      0, 255, [120, 120, 3], dtype=np.uint8))
  out = tmp_path / "out"
  result = _run_fit([f"--input={folder}", f"--output_dir={out}",
                     "--steps=2"])
  assert result.returncode == 0, result.stderr[-2000:]
  summary = json.load(open(out / fit_files.SUMMARY_FILE))
  assert summary["fitted"] == 3
  assert summary["skipped"] == {"no face found": 1, fit_files.ANOTHER_PERSON: 1}
  assert "one person" in result.stdout


def test_refiner_starts_from_the_prediction_and_moves_it(decoder):
  from mgc_tf.inference import faces  # pylint: disable=g-import-not-at-top
  truth = _coefficients(decoder, 2)
  images, _ = _render(decoder, truth)
  crops = [faces.aligned_crop(np.round(image * 255).astype(np.uint8))
           for image in images]
  predicted = truth + 0.05
  same = fit_files.refiner(fitting.Fitter(
      decoder, fitting.FitConfig(steps=0)))(crops, predicted)
  np.testing.assert_allclose(same, predicted, atol=1e-5)
  moved = fit_files.refiner(fitting.Fitter(
      decoder, fitting.FitConfig(steps=2, compiled=False)))(crops, predicted)
  assert moved.shape == predicted.shape
  assert not np.allclose(moved, predicted)


@pytest.mark.slow
def test_cli_infer_refine_steps_writes_refined_coefficients(
    tmp_path, trained_model_dir):
  import imageio  # pylint: disable=g-import-not-at-top
  from skimage import data  # pylint: disable=g-import-not-at-top
  imageio.imwrite(tmp_path / "a.png", data.astronaut())
  runs = {}
  for steps in (0, 3):
    out = tmp_path / f"out{steps}"
    result = subprocess.run(
        [sys.executable, "-m", "mgc_tf.infer", f"--input={tmp_path}/a.png",
         f"--output_dir={out}", f"--model_dir={trained_model_dir}",
         f"--refine_steps={steps}", "--progress=false",
         "--refine_identity_network=none"],
        capture_output=True, text=True, timeout=900,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-2000:]
    runs[steps] = np.load(out / "a_face0.npz")["coefficients"]
  assert not np.allclose(runs[0], runs[3])


@pytest.mark.slow
def test_cli_video_skips_faceless_frames(tmp_path):
  import cv2  # pylint: disable=g-import-not-at-top
  from skimage import data  # pylint: disable=g-import-not-at-top
  astronaut = data.astronaut()
  path = str(tmp_path / "clip.avi")
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0,
                           (160, 160))
  for i in range(4):
    frame = cv2.resize(astronaut[0:300, 100 + 3 * i:400 + 3 * i], (160, 160),
                       interpolation=cv2.INTER_AREA)
    if i == 2:
      frame = np.full_like(frame, 128)  # no face
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()
  out = tmp_path / "out"
  result = _run_fit([f"--input={path}", f"--output_dir={out}", "--steps=2",
                     "--identity_network=none"])
  assert result.returncode == 0, result.stderr[-2000:]
  summary = json.load(open(out / fit_files.SUMMARY_FILE))
  assert summary["mode"] == "video"
  assert summary["fitted"] == 3 and summary["skipped"] == {"no face found": 1}
  curve = json.load(open(out / fit_files.LOSS_FILE))
  assert "pose_smoothness" in curve["loss"]
  assert (out / "clip_000003_face0.npz").exists()
