"""Tests of mgc_tf.data.occluders: sampling, drawing, compositing.

Faces are the embedded synthetic face model's 68 landmarks, projected with its
default camera (frontal) or turned about the vertical axis (recentred in the
crop), in NumPy.
"""

import functools
import re

import cv2
import numpy as np
import pytest

from mgc_tf.data import occluders
from mgc_tf.facemodel.synthetic import embedded_face_model


@functools.lru_cache(maxsize=None)
def _landmarks_224(yaw_degrees: float) -> np.ndarray:
  model = embedded_face_model()
  points = np.asarray(model.mean_shape, np.float64)[model.landmark_indices]
  yaw = np.radians(yaw_degrees)
  turn = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0],
                   [-np.sin(yaw), 0, np.cos(yaw)]])
  # Camera point = Rx(pi) Ry(yaw) X + t (MGCNet order, rz = 0).
  camera = (points @ turn.T) * [1, -1, -1] + model.default_pose[3:]
  pixels = model.focal_length * camera[:, :2] / camera[:, 2:] + 112.0
  if yaw_degrees:  # turned about the model origin: back to the crop centre
    pixels += 111.5 - 0.5 * (pixels.min(0) + pixels.max(0))
  return pixels


def face(size: int = 224, yaw_degrees: float = 0.0) -> np.ndarray:
  """[68, 2] landmarks of a crop of side `size`, scaled from 224."""
  return (_landmarks_224(yaw_degrees) + 0.5) * size / 224.0 - 0.5


def one(kind, seed):
  return [occluders.sample_occluder(kind, np.random.default_rng(seed))]


def every_kind(seed):
  rng = np.random.default_rng(seed)
  return [occluders.sample_occluder(k, rng) for k in occluders.DRAW_ORDER]


def box_pixels(mask, low, high):
  """mask[y0:y1, x0:x1] of the box with corners `low`, `high` (x, y)."""
  x0, y0 = np.maximum(np.floor(low).astype(int), 0)
  x1, y1 = np.ceil(high).astype(int) + 1
  return mask[y0:y1, x0:x1]


def eye_centres(landmarks):
  return landmarks[36:42].mean(0), landmarks[42:48].mean(0)


IOD_224 = float(np.linalg.norm(np.subtract(*eye_centres(face()))))


# --- determinism, shapes, ranges ----------------------------------------------
def test_same_seed_same_occluders_and_drawings_other_seeds_differ():
  first = occluders.sample_occluders(np.random.default_rng(0))
  again = occluders.sample_occluders(np.random.default_rng(0))
  assert first and first == again
  rgb, alpha = occluders.draw_occluders(first, face(), 224)
  rgb2, alpha2 = occluders.draw_occluders(again, face(), 224)
  np.testing.assert_array_equal(rgb, rgb2)
  np.testing.assert_array_equal(alpha, alpha2)
  for kind in occluders.KINDS:
    assert one(kind, 1) == one(kind, 1) and one(kind, 1) != one(kind, 2)
    _, a1 = occluders.draw_occluders(one(kind, 1), face(128), 128)
    _, a2 = occluders.draw_occluders(one(kind, 2), face(128), 128)
    assert np.abs(a1 - a2).max() > 0.5, kind
  sets = [occluders.sample_occluders(np.random.default_rng(s))
          for s in range(20)]
  occluded = [repr(s) for s in sets if s]
  assert len(occluded) >= 10 and len(set(occluded)) == len(occluded)


@pytest.mark.parametrize("size", [64, 101, 224])
def test_shapes_dtypes_and_ranges(size):
  rgb, alpha = occluders.draw_occluders(every_kind(3), face(size), size)
  assert rgb.shape == (size, size, 3) and alpha.shape == (size, size)
  assert rgb.dtype == np.float32 and alpha.dtype == np.float32
  assert 0.0 <= alpha.min() and alpha.max() <= 1.0
  assert 0.0 <= rgb.min() and rgb.max() <= 1.0
  assert alpha.max() == 1.0 and (alpha == 0).any()
  np.testing.assert_array_equal(rgb[alpha == 0], 0.0)


def test_an_empty_list_draws_nothing():
  rgb, alpha = occluders.draw_occluders([], face(96), 96)
  assert rgb.shape == (96, 96, 3) and alpha.shape == (96, 96)
  assert not alpha.any() and not rgb.any()


def test_bad_arguments_are_rejected():
  with pytest.raises(ValueError, match="68, 2"):
    occluders.draw_occluders([], np.zeros([5, 2]), 64)
  with pytest.raises(ValueError, match="68, 2"):
    occluders.draw_occluders([], np.full([68, 2], np.nan), 64)
  with pytest.raises(ValueError, match="collapse"):
    occluders.draw_occluders([], np.zeros([68, 2]), 64)
  with pytest.raises(ValueError, match="kind"):
    occluders.sample_occluder("scarf", np.random.default_rng(0))
  with pytest.raises(ValueError, match="probabilities"):
    occluders.sample_occluders(np.random.default_rng(0), {"scarf": 0.5})
  with pytest.raises(ValueError, match="probabilities"):
    occluders.sample_occluders(np.random.default_rng(0), {"hand": 1.5})


# --- each kind where it belongs, on a frontal face ----------------------------
SEEDS = range(12)


def test_glasses_cover_the_ring_around_the_eyes_not_the_eye_centres():
  landmarks = face()
  ys, xs = np.mgrid[0:224, 0:224]
  clear = sun = 0
  for seed in range(30):
    glasses = one("glasses", seed)
    _, alpha = occluders.draw_occluders(glasses, landmarks, 224)
    mask = occluders.occlusion_mask(alpha)
    opacity = glasses[0].params["lens_opacity"]
    for x, y in eye_centres(landmarks):
      distance = np.hypot(xs - x, ys - y)
      assert mask[(distance > 0.2 * IOD_224) & (distance < 0.6 * IOD_224)].sum(
      ) > 20, seed
      centre = alpha[int(round(y)), int(round(x))]
      # Inside the rim only the lens tint: alpha is the lens opacity.
      assert centre == pytest.approx(opacity, abs=0.01), seed
    if glasses[0].params["sunglasses"]:
      sun += 1
      assert 0.5 < opacity < 1.0
    else:
      clear += 1
      assert not mask[distance < 0.1 * IOD_224].any(), seed
  assert clear >= 10 and sun >= 3


def test_microphone_at_or_just_below_the_mouth_with_a_handle_from_below():
  landmarks = face()
  mouth = landmarks[48:68]
  for seed in SEEDS:
    _, alpha = occluders.draw_occluders(one("microphone", seed), landmarks, 224)
    mask = occluders.occlusion_mask(alpha)
    below = mouth.max(0) + [0.0, 0.5 * IOD_224]
    assert box_pixels(mask, mouth.min(0), below).any(), seed
    assert mask[-1].any() and not mask[0].any(), seed  # the handle: the bottom
    assert not box_pixels(mask, landmarks[17:27].min(0),
                          eye_centres(landmarks)[1]).any(), seed


def test_hand_covers_part_of_the_lower_face_and_comes_from_a_border():
  landmarks = face()
  lower = landmarks[30], landmarks[[5, 8, 11]].max(0)
  lower = (np.array([landmarks[4, 0], lower[0][1]]),
           np.array([landmarks[12, 0], lower[1][1]]))
  entries = set()
  for seed in SEEDS:
    hand = one("hand", seed)
    entries.add(hand[0].params["entry"])
    _, alpha = occluders.draw_occluders(hand, landmarks, 224)
    mask = occluders.occlusion_mask(alpha)
    assert box_pixels(mask, *lower).mean() > 0.05, seed
    assert mask[-1].any() or mask[:, 0].any() or mask[:, -1].any(), seed
    assert not mask[:int(landmarks[17:27, 1].min())].any(), seed  # brows up
  assert entries == {"below", "left", "right"}


def test_hair_falls_over_the_upper_face_only():
  landmarks = face()
  eye_line = max(eye_centres(landmarks)[0][1], eye_centres(landmarks)[1][1])
  mouth_top = landmarks[48:68, 1].min()
  for seed in SEEDS:
    _, alpha = occluders.draw_occluders(one("hair", seed), landmarks, 224)
    mask = occluders.occlusion_mask(alpha)
    upper = mask[:int(eye_line), int(landmarks[0, 0]):int(landmarks[16, 0])]
    assert upper.sum() > 30, seed
    assert not mask[int(np.ceil(mouth_top)):].any(), seed


def test_object_overlaps_the_face_box():
  landmarks = face()
  for seed in SEEDS:
    _, alpha = occluders.draw_occluders(one("object", seed), landmarks, 224)
    mask = occluders.occlusion_mask(alpha)
    assert box_pixels(mask, landmarks.min(0), landmarks.max(0)).sum() > 50, seed


@pytest.mark.parametrize("yaw", [-75.0, 75.0])
def test_turned_faces_still_get_occluders_on_the_face(yaw):
  landmarks = face(224, yaw)
  for kind in occluders.KINDS:
    for seed in range(6):
      _, alpha = occluders.draw_occluders(one(kind, seed), landmarks, 224)
      on_face = box_pixels(occluders.occlusion_mask(alpha), landmarks.min(0),
                           landmarks.max(0))
      assert on_face.sum() > 20, (kind, seed)


# --- geometry of the drawing --------------------------------------------------
def test_occluders_move_with_the_face():
  """Landmarks shifted by whole pixels shift the drawing by as much."""
  shift_x, shift_y = 9, -6
  for seed in range(3):
    group = every_kind(seed)
    rgb, alpha = occluders.draw_occluders(group, face(), 224)
    rgb2, alpha2 = occluders.draw_occluders(group, face() + [shift_x, shift_y],
                                            224)
    moved = (slice(20 + shift_y, 200 + shift_y),
             slice(20 + shift_x, 200 + shift_x))
    np.testing.assert_allclose(alpha2[moved], alpha[20:200, 20:200], atol=1e-5)
    np.testing.assert_allclose(rgb2[moved], rgb[20:200, 20:200], atol=1e-4)
    assert np.abs(alpha2 - alpha).max() > 0.5


def test_masks_agree_across_resolutions():
  for seed in range(4):
    group = every_kind(seed)
    _, alpha_224 = occluders.draw_occluders(group, face(224), 224)
    _, alpha_112 = occluders.draw_occluders(group, face(112), 112)
    down = cv2.resize(alpha_224, (112, 112), interpolation=cv2.INTER_AREA)
    big, small = occluders.occlusion_mask(down), occluders.occlusion_mask(
        alpha_112)
    assert (big == small).mean() >= 0.95, seed
    assert (big & small).sum() / (big | small).sum() >= 0.9, seed
    assert np.abs(down - alpha_112).mean() < 0.02, seed


@pytest.mark.parametrize("kind", occluders.KINDS)
def test_edges_are_antialiased(kind):
  _, alpha = occluders.draw_occluders(one(kind, 4), face(), 224)
  edge = (alpha > 0.02) & (alpha < 0.98)
  # Along a drawn border (inside pixels next to outside ones), most pixels
  # are partly covered; a hard-edged drawing would have none.
  inside = alpha > 0
  border = inside & ~cv2.erode(inside.astype(np.uint8), np.ones([3, 3])).astype(
      bool)
  assert edge.sum() > 20
  assert (edge & border).sum() > 0.3 * border.sum()


# --- sampling -----------------------------------------------------------------
def test_clean_fraction_is_documented_and_sampled():
  documented = re.search(r"prod\(1 - p\) = .* = (0\.\d+)",
                         occluders.__doc__).group(1)
  assert occluders.clean_fraction() == pytest.approx(float(documented),
                                                     abs=5e-4)
  assert occluders.clean_fraction() == pytest.approx(
      0.75**4 * 0.88, abs=1e-9)
  rng = np.random.default_rng(0)
  drawn = [occluders.sample_occluders(rng) for _ in range(2000)]
  empty = np.mean([not d for d in drawn])
  assert empty == pytest.approx(occluders.clean_fraction(), abs=0.03)
  flags = np.array([occluders.kind_flags(d) for d in drawn])
  for i, kind in enumerate(occluders.KINDS):
    assert flags[:, i].mean() == pytest.approx(
        occluders.DEFAULT_PROBABILITIES[kind], abs=0.03), kind
  for d in drawn:  # drawing order, each kind at most once
    order = [occluders.DRAW_ORDER.index(o.kind) for o in d]
    assert order == sorted(set(order))


def test_probabilities_choose_the_kinds():
  rng = np.random.default_rng(1)
  assert all(occluders.sample_occluders(rng, {}) == [] for _ in range(20))
  everything = occluders.sample_occluders(rng,
                                          {k: 1.0 for k in occluders.KINDS})
  assert [o.kind for o in everything] == list(occluders.DRAW_ORDER)
  only_hair = [occluders.sample_occluders(rng, {"hair": 1.0})
               for _ in range(5)]
  assert all([o.kind for o in d] == ["hair"] for d in only_hair)


def test_names_of_the_kinds_present():
  group = one("glasses", 0) + one("hand", 0) + one("glasses", 1)
  assert occluders.describe(group) == "glasses, hand, glasses"
  assert occluders.describe([]) == "none"
  assert occluders.kinds_present(group) == ("hand", "glasses")
  np.testing.assert_array_equal(occluders.kind_flags(group),
                                [True, False, True, False, False])
  assert occluders.kind_flags([]).shape == (len(occluders.KINDS),)


# --- compositing --------------------------------------------------------------
def test_composite_matches_numpy_float_and_uint8():
  rng = np.random.default_rng(5)
  rgb, alpha = occluders.draw_occluders(every_kind(5), face(64), 64)
  image = rng.uniform(0.0, 1.0, [64, 64, 3])
  expected = np.empty_like(image)
  for c in range(3):
    expected[..., c] = image[..., c] + alpha * (rgb[..., c] - image[..., c])
  out = occluders.composite(image, rgb, alpha)
  assert out.dtype == np.float64
  np.testing.assert_allclose(out, expected, atol=1e-6)
  out32 = occluders.composite(image.astype(np.float32), rgb, alpha)
  assert out32.dtype == np.float32
  np.testing.assert_allclose(out32, expected, atol=1e-5)
  image8 = rng.integers(0, 256, [64, 64, 3]).astype(np.uint8)
  out8 = occluders.composite(image8, rgb, alpha)
  assert out8.dtype == np.uint8
  reference = image8 / 255.0 * (1 - alpha[..., None]) + rgb * alpha[..., None]
  assert np.abs(out8.astype(int) - np.round(reference * 255)).max() <= 1
  np.testing.assert_array_equal(out8[alpha == 0], image8[alpha == 0])
  with pytest.raises(ValueError, match="share"):
    occluders.composite(image[:32], rgb, alpha)


def test_occlusion_mask_thresholds_alpha():
  alpha = np.array([[0.0, 0.2, 0.5], [0.51, 0.9, 1.0]], np.float32)
  np.testing.assert_array_equal(occluders.occlusion_mask(alpha),
                                [[False, False, False], [True, True, True]])
  np.testing.assert_array_equal(occluders.occlusion_mask(alpha, 0.0),
                                [[False, True, True], [True, True, True]])
