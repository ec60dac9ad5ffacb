"""Tests for mgc_tf.faces2d.detected_landmarks (landmarks as dlib gives them).

The dlib tests run the real detector on real renders of the synthetic
multi-view test split at S = 112: examples 11, 12, 14 and 18 (one render
batch), whose views include three near-frontal ones (|yaw| < 10) and two
profiles (|yaw| >= 85); the tests pick the views by their yaw. The noise
model and the no-dlib path need neither dlib nor rendering.
"""

import sys

import cv2
import numpy as np
import pytest

from mgc_tf.evaluation import metrics
from mgc_tf.faces2d import detected_landmarks as dl
from mgc_tf.faces2d import preprocessing

SIZE = 112
EXAMPLES = (11, 12, 14, 18)
Status = dl.LandmarkStatus


def face_like_landmarks(seed=0, size=60.0, centre=(56.0, 56.0)):
  """[68, 2] points spread like a face (only their box matters here)."""
  rng = np.random.default_rng(seed)
  return (np.asarray(centre) + size * (rng.uniform(size=[68, 2]) - 0.5))


@pytest.fixture(scope="module")
def views():
  """(images [V, S, S, 3], landmarks [V, 68, 2], yaw [V]) of EXAMPLES."""
  synthetic_scenes = pytest.importorskip(
      "tfds_builders.synthetic_multiview.synthetic_scenes")
  from mgc_tf.facemodel import synthetic  # pylint: disable=g-import-not-at-top
  face_model = synthetic.embedded_face_model()
  renderer = synthetic_scenes.SceneRenderer(face_model, SIZE)
  scenes = [synthetic_scenes.sample_scene(face_model, "test", index, SIZE)
            for index in EXAMPLES]
  rendered = renderer.render(scenes)
  return (np.concatenate([r["image"] for r in rendered]),
          np.concatenate([r["landmarks"] for r in rendered]),
          np.concatenate([s.yaw_degrees for s in scenes]))


def select(views, low, high):
  images, landmarks, yaws = views
  chosen = np.where((np.abs(yaws) >= low) & (np.abs(yaws) < high))[0]
  assert len(chosen) >= 2, (f"the test examples need >= 2 views with "
                            f"{low} <= |yaw| < {high}; yaws: {yaws}")
  return [(images[i], landmarks[i], float(yaws[i])) for i in chosen]


@pytest.fixture(scope="module")
def landmarker():
  pytest.importorskip("dlib")
  return preprocessing.default_landmarker()


# ----------------------------------------------------------- measures ----


def test_face_size_and_nme_are_the_evaluation_metrics():
  rng = np.random.default_rng(1)
  truth = rng.uniform(0, 100, [5, 68, 2])
  predicted = truth + rng.normal(0, 3, truth.shape)
  np.testing.assert_allclose(dl.face_size(truth), metrics.box_size(truth))
  np.testing.assert_allclose(dl.landmark_nme(predicted, truth),
                             metrics.landmark_nme(predicted, truth))


def test_detector_box_is_the_calibrated_square():
  truth = face_like_landmarks()
  inner = truth[17:]
  side = np.max(inner.max(0) - inner.min(0))
  box = dl.detector_box(truth)
  assert box.dtype == np.float32 and box.shape == (4,)
  np.testing.assert_allclose(box[2] - box[0], dl.BOX_SCALE * side, rtol=1e-5)
  np.testing.assert_allclose(box[3] - box[1], dl.BOX_SCALE * side, rtol=1e-5)
  centre = 0.5 * (inner.min(0) + inner.max(0)) + np.array(dl.BOX_OFFSET) * side
  np.testing.assert_allclose(0.5 * (box[:2] + box[2:]), centre, atol=1e-4)
  # Moving the face moves the box; the jaw (points 0-16) does not count.
  np.testing.assert_allclose(dl.detector_box(truth + [5.0, -3.0]),
                             box + [5.0, -3.0, 5.0, -3.0], atol=1e-4)
  moved_jaw = truth.copy()
  moved_jaw[:17] += 40.0
  np.testing.assert_array_equal(dl.detector_box(moved_jaw), box)
  with pytest.raises(ValueError, match="68, 2"):
    dl.detector_box(truth[:5])


def test_box_iou():
  assert dl.box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
  assert dl.box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
  assert dl.box_iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0


# ---------------------------------------------------------- the model ----


def test_noise_std_is_the_fitted_table():
  knots = np.asarray(dl.NOISE_KNOTS_DEGREES)
  table = np.asarray(dl.NOISE_STD_XY)
  for knot, expected in zip(knots, table):
    np.testing.assert_allclose(dl.noise_std(knot), expected)
    np.testing.assert_allclose(dl.noise_std(-knot), expected)
  np.testing.assert_allclose(dl.noise_std(0.0), table[0])  # flat below
  np.testing.assert_allclose(
      dl.noise_std(90.0),
      table[-1] + np.asarray(dl.NOISE_SLOPE_BEYOND) * (90.0 - knots[-1]))
  np.testing.assert_allclose(dl.noise_std(120.0), dl.noise_std(90.0))
  grid = np.stack([dl.noise_std(y) for y in np.linspace(0, 90, 91)])
  assert np.all(np.diff(grid[:, 0]) >= 0), "x spread grows with |yaw|"
  # Measured: 2.9 % (x) at frontal views, 11.5 % at 50-60 degrees.
  assert 0.02 < dl.noise_std(0)[0] < 0.04 < 0.10 < dl.noise_std(55)[0]


def test_modelled_landmarks_are_deterministic_for_a_seed():
  truth = face_like_landmarks()
  first = dl.modelled_landmarks(np.random.default_rng(7), truth, 30.0)
  again = dl.modelled_landmarks(np.random.default_rng(7), truth, 30.0)
  other = dl.modelled_landmarks(np.random.default_rng(8), truth, 30.0)
  assert first.dtype == np.float32 and first.shape == (68, 2)
  np.testing.assert_array_equal(first, again)
  assert np.abs(first - other).max() > 0.1


@pytest.mark.parametrize("yaw", [0.0, -80.0])
def test_modelled_noise_is_unbiased_with_the_model_spread(yaw):
  truth = face_like_landmarks(size=80.0)
  size = dl.face_size(truth)
  rng = np.random.default_rng(3)
  draws = 3000
  noise = np.stack([dl.modelled_landmarks(rng, truth, yaw)
                    for _ in range(draws)]) - truth  # [D, 68, 2] px
  noise /= size
  sigma = dl.noise_std(yaw)
  # Unbiased: the mean offset (over draws and points) is within 4 standard
  # errors of 0 (the shared part dominates the error of that mean).
  standard_error = sigma * np.sqrt(
      (dl.NOISE_SHARED_FRACTION + (1 - dl.NOISE_SHARED_FRACTION) / 68) /
      draws)
  assert np.all(np.abs(noise.mean((0, 1))) < 4 * standard_error)
  # Spread per coordinate within 5 % of the model (x and y differ; 3000
  # draws estimate it to about 2 %).
  empirical = noise.std(0).mean(0)
  np.testing.assert_allclose(empirical, sigma, rtol=0.05)
  # The shared part: two different points covary by the shared variance.
  covariance = np.mean(noise[:, 0] * noise[:, 40], axis=0)
  np.testing.assert_allclose(covariance / sigma ** 2,
                             dl.NOISE_SHARED_FRACTION, atol=0.06)


def test_spread_grows_from_frontal_to_profile_as_the_model_says():
  truth = face_like_landmarks(size=80.0)
  def spread(yaw):
    rng = np.random.default_rng(5)
    noise = np.stack([dl.modelled_landmarks(rng, truth, yaw)
                      for _ in range(1500)]) - truth
    return noise.std(0).mean(0) / dl.face_size(truth)
  ratio = spread(80.0) / spread(0.0)
  np.testing.assert_allclose(ratio, dl.noise_std(80.0) / dl.noise_std(0.0),
                             rtol=0.15)
  assert ratio[0] > 3.0  # x: 2.9 % -> about 15 %


# ------------------------------------------------- without a detector ----


def test_without_dlib_every_view_is_modelled(monkeypatch):
  monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` fails
  preprocessing.default_landmarker.cache_clear()
  try:
    source = dl.landmark_source()
  finally:
    preprocessing.default_landmarker.cache_clear()
  assert source.name == "modelled" and source.landmarker is None
  assert "dlib" in source.description
  truths = np.stack([face_like_landmarks(seed) for seed in range(3)])
  yaws = [0.0, 45.0, -85.0]
  images = np.zeros([3, SIZE, SIZE, 3], np.uint8)
  landmarks, status = source.views(images, truths, yaws,
                                   np.random.default_rng(11))
  np.testing.assert_array_equal(status, [Status.MODELLED] * 3)
  assert status.dtype == np.int32 and landmarks.dtype == np.float32
  rng = np.random.default_rng(11)
  expected = [dl.modelled_landmarks(rng, t, y) for t, y in zip(truths, yaws)]
  np.testing.assert_array_equal(landmarks, np.stack(expected))


def test_no_detector_requested_is_modelled_too():
  source = dl.landmark_source(use_detector=False)
  assert source.name == "modelled"
  result = source(np.zeros([64, 64, 3], np.uint8), face_like_landmarks(
      centre=(32, 32), size=30), 10.0, np.random.default_rng(0))
  assert result.status == Status.MODELLED


class FakeLandmarker:
  """Duck-typed FaceLandmarker: fixed HOG boxes, truth + a fixed offset."""

  def __init__(self, truth_work, offset_px, boxes_work):
    self.truth_work, self.offset, self.boxes = truth_work, offset_px, boxes_work
    self.calls = []

  def detect_boxes(self, image, upsample_times=None):
    self.calls.append(("boxes", image.shape, upsample_times))
    return (np.asarray(self.boxes, np.float32).reshape([-1, 4]),
            np.ones(len(self.boxes), np.float32))

  def landmarks_in_box(self, image, box):
    self.calls.append(("landmarks", image.shape))
    return (self.truth_work + self.offset).astype(np.float32)


@pytest.mark.parametrize("offset_fraction,found,expected", [
    (0.02, True, Status.DETECTED), (0.15, True, Status.DRIFTED),
    (0.02, False, Status.NOT_FOUND)])
def test_status_from_detection_and_drift(offset_fraction, found, expected):
  truth = face_like_landmarks(centre=(56, 56), size=60)
  scale = dl.WORK_SIZE / SIZE
  truth_work = (truth + 0.5) * scale - 0.5
  box_work = (dl.detector_box(truth) + 0.5) * scale - 0.5
  boxes = [box_work] if found else [box_work + [150, 150, 150, 150]]
  offset = offset_fraction * dl.face_size(truth) * scale
  fake = FakeLandmarker(truth_work, [offset, 0.0], boxes)
  image = np.zeros([SIZE, SIZE, 3], np.uint8)
  result = dl.detect_landmarks(fake, image, truth, 20.0,
                               np.random.default_rng(2))
  assert result.status == expected
  assert fake.calls[0] == ("boxes", (dl.WORK_SIZE, dl.WORK_SIZE, 3), 0)
  if found:
    # The predictor's points come back in crop pixels, unchanged otherwise.
    np.testing.assert_allclose(result.landmarks,
                               truth + [offset / scale, 0], atol=1e-3)
  else:
    assert len(fake.calls) == 1  # no predictor run for a missed face
    np.testing.assert_array_equal(result.landmarks, dl.modelled_landmarks(
        np.random.default_rng(2), truth, 20.0))


def test_bad_inputs():
  truth = face_like_landmarks()
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="finite"):
    dl.modelled_landmarks(rng, np.full([68, 2], np.nan), 0.0)
  fake = FakeLandmarker(truth, [0, 0], [])
  with pytest.raises(ValueError, match="square"):
    dl.detect_landmarks(fake, np.zeros([64, 80, 3], np.uint8), truth, 0.0,
                        rng)


# -------------------------------------------------- dlib, on renders ----


def test_landmarks_in_box_is_what_detect_gives(landmarker, views):
  image = select(views, 0, 10)[0][0]
  work = cv2.resize(image, (dl.WORK_SIZE, dl.WORK_SIZE))
  detections = landmarker.detect(work)
  assert detections
  boxes, scores = landmarker.detect_boxes(work)
  assert sorted(map(tuple, boxes)) == sorted(tuple(d.box) for d in detections)
  assert sorted(scores) == sorted(d.score for d in detections)
  np.testing.assert_array_equal(
      landmarker.landmarks_in_box(work, detections[0].box),
      detections[0].landmarks)
  with pytest.raises(ValueError, match="box"):
    landmarker.landmarks_in_box(work, [10, 10, 5, 20])


def test_calibrated_box_matches_the_real_hog_box(landmarker, views):
  ious = []
  for image, truth, _ in select(views, 0, 10):
    run = dl.run_detector(landmarker, image, truth)
    if len(run.hog_boxes):
      ious.append(max(dl.box_iou(run.box, hog) for hog in run.hog_boxes))
  assert len(ious) >= 2, "HOG should fire on at least two frontal renders"
  assert min(ious) > 0.7, ious


def test_frontal_render_is_detected_close_to_the_truth(landmarker, views):
  for image, truth, yaw in select(views, 0, 10):
    result = dl.detect_landmarks(landmarker, image, truth, yaw,
                                 np.random.default_rng(0))
    assert result.status == Status.DETECTED, yaw
    assert result.landmarks.shape == (68, 2)
    assert result.landmarks.dtype == np.float32
    assert dl.landmark_nme(result.landmarks, truth) < 0.05


def test_profile_render_is_not_found_and_modelled(landmarker, views):
  # Measured: the HOG detector finds no face beyond 80 degrees (0 of 109
  # views), and the predictor forced into the true box is far off (NME
  # about 23 %), so these views get truth + modelled noise.
  for image, truth, yaw in select(views, 85, 91):
    run = dl.run_detector(landmarker, image, truth)
    assert not run.found
    assert run.nme > dl.DRIFT_NME
    result = dl.detect_landmarks(landmarker, image, truth, yaw,
                                 np.random.default_rng(4))
    assert result.status == Status.NOT_FOUND
    # The same landmarks as on a machine without dlib.
    modelled = dl.detect_landmarks(None, image, truth, yaw,
                                   np.random.default_rng(4))
    assert modelled.status == Status.MODELLED
    np.testing.assert_array_equal(result.landmarks, modelled.landmarks)


def test_source_with_dlib_names_it(landmarker):
  source = dl.landmark_source(landmarker=landmarker)
  assert source.name == "dlib" and source.landmarker is landmarker
  assert landmarker.dlib_version in source.description
