"""Tests for mgc_tf.faces2d.alignment and mgc_tf.io.bad_input."""

import threading

import cv2
import numpy as np
import pytest

from mgc_tf.faces2d import alignment
from mgc_tf.io import bad_input
from mgc_tf.io.bad_input import BadExampleError


def similarity(scale, angle, shift):
  """[2, 3] matrix s R(angle) | shift."""
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[scale * c, -scale * s, shift[0]],
                   [scale * s, scale * c, shift[1]]])


def complex_least_squares(source, target):
  """Independent reference: q = a p + b over complex numbers, a != 0.

  A similarity without reflection is z -> a z + b (a = s e^{i angle}); its
  least-squares fit is a linear regression in the complex plane.
  """
  p = source[:, 0] + 1j * source[:, 1]
  q = target[:, 0] + 1j * target[:, 1]
  pc, qc = p - p.mean(), q - q.mean()
  a = np.sum(np.conj(pc) * qc) / np.sum(np.abs(pc) ** 2)
  b = q.mean() - a * p.mean()
  return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def landmarks_with_five_points(five):
  """[68, 2] landmarks whose five_points_from_68 are exactly `five`."""
  rng = np.random.default_rng(3)
  landmarks = rng.uniform(50, 170, [68, 2])
  landmarks[36:42] = five[0]
  landmarks[42:48] = five[1]
  landmarks[30] = five[2]
  landmarks[48] = five[3]
  landmarks[54] = five[4]
  return landmarks


# ------------------------------------------------------------- alignment ----


@pytest.mark.parametrize("scale,angle,shift", [
    (1.0, 0.0, (0.0, 0.0)),
    (0.37, 0.3, (12.5, -40.0)),
    (2.5, -2.9, (-100.0, 7.25)),
    (1.3, np.pi, (3.0, 4.0)),
])
def test_similarity_transform_recovers_known_transform(scale, angle, shift):
  rng = np.random.default_rng(0)
  source = rng.uniform(-100, 300, [7, 2])
  truth = similarity(scale, angle, shift)
  recovered = alignment.similarity_transform(
      source, alignment.transform_points(truth, source))
  np.testing.assert_allclose(recovered, truth, atol=1e-9)


def test_similarity_transform_matches_complex_least_squares_on_noisy_points():
  rng = np.random.default_rng(1)
  source = rng.uniform(0, 200, [68, 2])
  target = alignment.transform_points(similarity(0.8, 0.7, (5, 9)), source)
  target += rng.normal(0, 3.0, target.shape)
  np.testing.assert_allclose(alignment.similarity_transform(source, target),
                             complex_least_squares(source, target), atol=1e-9)


def test_similarity_transform_never_reflects():
  rng = np.random.default_rng(2)
  source = rng.uniform(0, 100, [10, 2])
  mirrored = source * [-1.0, 1.0] + [300.0, 0.0]
  transform = alignment.similarity_transform(source, mirrored)
  linear = transform[:, :2]
  assert np.linalg.det(linear) > 0
  # A scaled rotation [[a, -b], [b, a]], and the best such fit.
  assert linear[0, 0] == pytest.approx(linear[1, 1], abs=1e-12)
  assert linear[0, 1] == pytest.approx(-linear[1, 0], abs=1e-12)
  np.testing.assert_allclose(transform,
                             complex_least_squares(source, mirrored),
                             atol=1e-9)


def test_similarity_transform_rejects_bad_input():
  with pytest.raises(ValueError, match="coincide"):
    alignment.similarity_transform(np.ones([5, 2]), np.zeros([5, 2]))
  with pytest.raises(ValueError, match="must"):
    alignment.similarity_transform(np.zeros([5, 2]), np.zeros([4, 2]))
  with pytest.raises(ValueError, match="must"):
    alignment.similarity_transform(np.zeros([5, 3]), np.zeros([5, 3]))


def test_template_at_224_maps_onto_itself():
  np.testing.assert_array_equal(alignment.template_points(224),
                                alignment.TEMPLATE_5PT_224)
  np.testing.assert_allclose(
      alignment.similarity_transform(alignment.TEMPLATE_5PT_224,
                                     alignment.template_points(224)),
      [[1, 0, 0], [0, 1, 0]], atol=1e-12)
  # A 224 image whose landmarks already sit on the template is not moved.
  rng = np.random.default_rng(4)
  image = rng.integers(0, 256, [224, 224, 3], dtype=np.uint8)
  landmarks = landmarks_with_five_points(alignment.TEMPLATE_5PT_224)
  aligned = alignment.align_face(image, landmarks, 224)
  np.testing.assert_allclose(aligned.transform, [[1, 0, 0], [0, 1, 0]],
                             atol=1e-12)
  np.testing.assert_array_equal(aligned.image, image)
  np.testing.assert_allclose(aligned.landmarks, landmarks, atol=1e-4)


def test_template_scales_about_the_image_corner():
  # Scaling a 224 crop to 112 maps the continuous extent [-0.5, 223.5] onto
  # [-0.5, 111.5], as cv2.resize does.
  np.testing.assert_allclose(alignment.template_points(112),
                             (alignment.TEMPLATE_5PT_224 + 0.5) / 2 - 0.5)
  # Aligning a face to 112 gives the 224 result resized by one half.
  transform_224 = alignment.similarity_transform(
      alignment.TEMPLATE_5PT_224 * 1.3 + 20, alignment.template_points(224))
  transform_112 = alignment.similarity_transform(
      alignment.TEMPLATE_5PT_224 * 1.3 + 20, alignment.template_points(112))
  half = np.array([[0.5, 0, -0.25], [0, 0.5, -0.25], [0, 0, 1]])
  np.testing.assert_allclose(transform_112,
                             (half @ np.vstack([transform_224, [0, 0, 1]]))[:2],
                             atol=1e-9)


def test_five_points_from_68():
  rng = np.random.default_rng(5)
  landmarks = rng.uniform(0, 200, [68, 2])
  five = alignment.five_points_from_68(landmarks)
  np.testing.assert_allclose(five[0], landmarks[36:42].mean(0))
  np.testing.assert_allclose(five[1], landmarks[42:48].mean(0))
  np.testing.assert_array_equal(five[2:], landmarks[[30, 48, 54]])
  batch = alignment.five_points_from_68(np.stack([landmarks, landmarks + 1]))
  assert batch.shape == (2, 5, 2)
  np.testing.assert_allclose(batch[1], five + 1)


def test_invert_affine_round_trip():
  transform = similarity(1.7, 0.4, (10, -3))
  points = np.random.default_rng(6).uniform(-50, 50, [9, 2])
  back = alignment.transform_points(
      alignment.invert_affine(transform),
      alignment.transform_points(transform, points))
  np.testing.assert_allclose(back, points, atol=1e-10)


def blob_image(height, width, centre, sigma=2.0):
  """uint8 [H, W, 3]: a bright Gaussian dot at (x, y) = centre on black."""
  rows, cols = np.mgrid[0:height, 0:width]
  dot = np.exp(-((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2)
               / (2 * sigma ** 2))
  return np.repeat((255 * dot).round().astype(np.uint8)[..., None], 3, 2)


def intensity_centroid(image):
  """(x, y) of the intensity-weighted centre of the first channel."""
  weights = image[..., 0].astype(np.float64)
  rows, cols = np.mgrid[0:image.shape[0], 0:image.shape[1]]
  return np.array([np.sum(cols * weights), np.sum(rows * weights)]) / np.sum(
      weights)


@pytest.mark.parametrize("dot", [(60.0, 45.0), (130.3, 97.6), (200.0, 30.5)])
def test_landmarks_follow_the_image_content_through_the_warp(dot):
  image = blob_image(160, 240, dot)
  # Where the dot is in the source, in pixel-centre coordinates.
  np.testing.assert_allclose(intensity_centroid(image), dot, atol=0.02)
  transform = similarity(1.4, 0.35, (-30.0, 40.0))
  crop = alignment.warp_to_crop(image, transform, 300)
  carried = alignment.transform_points(transform, np.array([dot]))[0]
  # cv2 interpolates with 1/32 px fixed-point weights on uint8.
  np.testing.assert_allclose(intensity_centroid(crop), carried, atol=0.1)


def test_align_face_carries_landmarks_with_the_crop():
  # The dot sits at the nose tip; after alignment it must be at the crop
  # landmark 30 (the template's nose tip).
  five = alignment.TEMPLATE_5PT_224 * 0.9 + [40.0, 25.0]
  angle = 0.2
  rotation = np.array([[np.cos(angle), -np.sin(angle)],
                       [np.sin(angle), np.cos(angle)]])
  five = (five - five.mean(0)) @ rotation.T + five.mean(0)
  landmarks = landmarks_with_five_points(five)
  image = blob_image(260, 280, landmarks[30])
  aligned = alignment.align_face(image, landmarks, 224)
  assert aligned.image.shape == (224, 224, 3)
  assert aligned.image.dtype == np.uint8
  assert aligned.landmarks.dtype == np.float32
  np.testing.assert_allclose(aligned.landmarks[30],
                             alignment.TEMPLATE_5PT_224[2], atol=1e-3)
  np.testing.assert_allclose(intensity_centroid(aligned.image),
                             aligned.landmarks[30], atol=0.1)
  np.testing.assert_allclose(
      aligned.landmarks,
      alignment.transform_points(aligned.transform, landmarks), atol=1e-3)


def test_warp_to_crop_replicates_the_border_and_keeps_channels():
  image = np.full([50, 60, 1], 200, np.uint8)
  # Far outside the source: every crop pixel comes from the border.
  crop = alignment.warp_to_crop(image, similarity(1.0, 0.0, (500, 500)), 32)
  assert crop.shape == (32, 32, 1)
  assert np.all(crop == 200)
  grey = alignment.warp_to_crop(image[..., 0], similarity(1, 0, (0, 0)), 16)
  assert grey.shape == (16, 16)


# ------------------------------------------------------------- bad input ----


def test_check_landmarks_accepts_and_converts():
  landmarks = np.arange(136, dtype=np.float64).reshape(68, 2)
  checked = bad_input.check_landmarks(landmarks)
  assert checked.dtype == np.float32 and checked.shape == (68, 2)
  np.testing.assert_array_equal(checked, landmarks)
  with_depth = np.concatenate([landmarks, np.ones([68, 1])], axis=1)
  np.testing.assert_array_equal(bad_input.check_landmarks(with_depth),
                                landmarks)
  assert bad_input.check_landmarks(landmarks.tolist()).shape == (68, 2)
  assert bad_input.check_landmarks(np.zeros([5, 2]), num_landmarks=5).shape \
      == (5, 2)


@pytest.mark.parametrize("landmarks,reason", [
    (np.zeros([67, 2]), "wrong landmark count"),
    (np.zeros([68]), "wrong landmark count"),
    (np.zeros([68, 1]), "wrong landmark count"),
    (np.zeros([2, 68, 2]), "wrong landmark count"),
    (np.where(np.eye(68, 2) > 0, np.nan, 1.0), "non-finite landmarks"),
    (np.full([68, 2], np.inf), "non-finite landmarks"),
])
def test_check_landmarks_rejects(landmarks, reason):
  with pytest.raises(BadExampleError) as info:
    bad_input.check_landmarks(landmarks, source="file.pts")
  assert info.value.reason == reason
  assert "file.pts" in str(info.value)


def test_read_image_rgb_channel_order_grey_and_alpha(tmp_path):
  rgb = np.zeros([4, 5, 3], np.uint8)
  rgb[0, 0] = (255, 0, 0)  # red
  rgb[1, 1] = (0, 0, 255)  # blue
  path = str(tmp_path / "colour.png")
  cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
  np.testing.assert_array_equal(bad_input.read_image_rgb(path), rgb)

  grey_path = str(tmp_path / "grey.png")
  cv2.imwrite(grey_path, np.full([3, 3], 77, np.uint8))
  grey = bad_input.read_image_rgb(grey_path)
  assert grey.shape == (3, 3, 3) and np.all(grey == 77)

  rgba = np.zeros([2, 2, 4], np.uint8)
  rgba[..., 0] = 10  # B
  rgba[..., 2] = 30  # R
  rgba[..., 3] = 128
  rgba_path = str(tmp_path / "alpha.png")
  cv2.imwrite(rgba_path, rgba)
  read = bad_input.read_image_rgb(rgba_path)
  assert read.shape == (2, 2, 3)
  np.testing.assert_array_equal(read[0, 0], (30, 0, 10))


@pytest.mark.parametrize("content", [None, b"", b"not an image",
                                     b"\x89PNG\r\n\x1a\n truncated"])
def test_read_image_rgb_rejects_unreadable(tmp_path, content):
  path = str(tmp_path / "broken.jpg")
  if content is not None:
    with open(path, "wb") as f:
      f.write(content)
  with pytest.raises(BadExampleError) as info:
    bad_input.read_image_rgb(path)
  assert info.value.reason == "unreadable image"
  assert "broken.jpg" in str(info.value)


def test_read_image_rgb_rejects_a_folder(tmp_path):
  with pytest.raises(BadExampleError, match="unreadable image"):
    bad_input.read_image_rgb(str(tmp_path))


def make_example(item):
  if item % 3 == 0:
    raise BadExampleError("no face found", f"item {item}")
  if item % 5 == 0:
    raise BadExampleError("unreadable image")
  return f"key{item}", {"value": item}


def test_generate_with_skips_keeps_good_and_counts_bad(capsys):
  counter = bad_input.SkipCounter("toy/train", max_examples_per_reason=2)
  produced = list(bad_input.generate_with_skips(
      range(1, 16), make_example, counter, key_of=lambda i: f"file{i}"))
  good = [i for i in range(1, 16) if i % 3 and i % 5]
  assert produced == [(f"key{i}", {"value": i}) for i in good]
  assert counter.kept == len(good) == 8
  assert counter.skipped == 7
  # 3, 6, 9, 12, 15 -> no face (15 is checked for % 3 first); 5, 10 -> image.
  assert counter.counts == {"no face found": 5, "unreadable image": 2}
  summary = counter.summary()
  assert "toy/train: kept 8 examples, skipped 7" in summary
  assert "5 x no face found" in summary and "2 x unreadable image" in summary
  # At most two examples per reason, named by key_of.
  assert "file3: no face found: item 3" in summary
  assert "file6" in summary and "file9" not in summary
  # The report is printed when the generator finishes.
  assert "skipped 7" in capsys.readouterr().out


def test_generate_with_skips_propagates_other_errors():
  def broken(item):
    raise KeyError(item)
  counter = bad_input.SkipCounter("toy")
  with pytest.raises(KeyError):
    list(bad_input.generate_with_skips([1], broken, counter))
  assert counter.skipped == 0


def test_skip_counter_is_thread_safe():
  counter = bad_input.SkipCounter("threads")
  error = BadExampleError("no face found")

  def work():
    for _ in range(500):
      counter.skip("x", error)
      counter.keep()

  # Per-skip logging goes to the "mgc_tf.data" logger; keep it quiet here.
  logger = bad_input._LOG  # pylint: disable=protected-access
  level = logger.level
  logger.setLevel("ERROR")
  try:
    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
  finally:
    logger.setLevel(level)
  assert counter.counts == {"no face found": 2000}
  assert counter.kept == 2000


def test_bad_example_error_message():
  error = BadExampleError("no face found", "a.jpg")
  assert isinstance(error, ValueError)
  assert (error.reason, error.detail, str(error)) == (
      "no face found", "a.jpg", "no face found: a.jpg")
  assert str(BadExampleError("unreadable image")) == "unreadable image"
