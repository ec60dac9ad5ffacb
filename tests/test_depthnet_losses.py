"""Shu et al.'s terms (losses/parameters.py, losses/depth_map.py) on cases
with a known answer, the occlusion mask against NumPy on a yaw +/-40 pair,
and finite-difference gradients of the normal and warping terms."""

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import geometry
from mgc_tf.facemodel import coefficients as coefficients_lib
from mgc_tf.facemodel import decoder as decoder_lib
from mgc_tf.facemodel import loaders
from mgc_tf.geometry import depth_map as depth_map_lib
from mgc_tf.losses import depth_map
from mgc_tf.losses import parameters
from mgc_tf.render import renderer

LAYOUT = coefficients_lib.CoefficientLayout(id_rank=4, albedo_rank=2, exp_rank=3)


def _k(focal, size, batch=1):
  return tf.broadcast_to(geometry.intrinsics(float(focal), image_size=size),
                         [batch, 3, 3])


# --- eq. 3 and 4 -----------------------------------------------------------

def test_coefficient_l1_is_zero_on_truth_and_weights_its_groups():
  rng = np.random.default_rng(0)
  truth = rng.normal(size=[2, LAYOUT.size]).astype(np.float32)
  np.testing.assert_allclose(parameters.coefficient_l1(truth, truth, LAYOUT),
                             [0.0, 0.0])
  groups = LAYOUT.split(tf.constant(truth))
  moved = dict(groups, identity=groups["identity"] + 0.5,
               expression=groups["expression"] - 2.0,
               albedo=groups["albedo"] + 9.0)  # albedo is not supervised
  predicted = LAYOUT.join(moved)
  got = parameters.coefficient_l1(predicted, truth, LAYOUT,
                                  identity_weight=2.0, expression_weight=0.1)
  np.testing.assert_allclose(got, [2.0 * 0.5 + 0.1 * 2.0] * 2, rtol=1e-6)
  # Real data: lambda_2 = 0 leaves identity only.
  np.testing.assert_allclose(parameters.coefficient_l1(
      predicted, truth, LAYOUT, expression_weight=0.0), [0.5, 0.5], rtol=1e-6)


def test_parameter_consistency_over_view_pairs():
  base = np.random.default_rng(1).normal(size=[1, 1, LAYOUT.size])
  same = np.repeat(base, 3, axis=1).astype(np.float32)
  np.testing.assert_allclose(parameters.parameter_consistency(same, LAYOUT),
                             [0.0])
  changed = same.copy()
  changed[0, 1, :4] += 1.0  # identity of view 1 only
  changed[:, :, 4:6] += [[[0], [5], [9]]]  # albedo may differ freely
  # Pairs (0, 1) and (1, 2) differ by 1, (0, 2) by 0: mean 2/3.
  np.testing.assert_allclose(parameters.parameter_consistency(changed, LAYOUT),
                             [2.0 / 3.0], rtol=1e-6)
  np.testing.assert_allclose(parameters.parameter_consistency(
      same[:, :1], LAYOUT), [0.0])


# --- eq. 7 -----------------------------------------------------------------

def test_normalisation_round_trip_and_the_face_range():
  xi = 1108.6
  depth = np.array([0.0, xi - 150.0, xi - 124.0, xi, xi + 90.0],
                   np.float32).reshape([1, 1, 5, 1])
  normalized = depth_map_lib.normalize_depth(depth, [xi]).numpy().ravel()
  np.testing.assert_allclose(normalized, [0.0, 0.1, 0.6 - 124 / 300, 0.6,
                                          0.9], rtol=1e-5, atol=1e-6)
  assert (normalized[1:] > depth_map_lib.FACE_THRESHOLD).all()
  back = depth_map_lib.denormalize_depth(normalized.reshape(depth.shape), [xi])
  np.testing.assert_allclose(back.numpy(), depth, rtol=1e-6, atol=1e-3)


# --- eq. 8 -----------------------------------------------------------------

def test_depth_l1_on_face_pixels_only():
  truth = np.zeros([2, 4, 4, 1], np.float32)
  truth[:, 1:3, 1:3] = 0.5
  np.testing.assert_allclose(depth_map.depth_l1(truth, truth), [0.0, 0.0])
  predicted = truth + 0.1
  predicted[:, 0, 0] = 7.0  # background: not supervised
  np.testing.assert_allclose(depth_map.depth_l1(predicted, truth), [0.1, 0.1],
                             rtol=1e-5)
  empty = np.zeros_like(truth)
  np.testing.assert_allclose(depth_map.depth_l1(predicted, empty), [0.0, 0.0])


# --- eq. 9 -----------------------------------------------------------------

def _plane(size, focal, normal, distance):
  """Depth of the plane n.X = -distance (n towards the camera), mm."""
  k = np.array([[focal, 0, (size - 1) / 2], [0, focal, (size - 1) / 2],
                [0, 0, 1]])
  ys, xs = np.mgrid[0:size, 0:size]
  rays = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(k).T
  depth = -distance / (rays @ np.asarray(normal))
  return depth[None, ..., None].astype(np.float32), k[None].astype(np.float32)


def test_normals_of_planes_and_normal_loss_on_truth():
  normal = np.array([0.3, -0.2, -1.0])
  normal /= np.linalg.norm(normal)
  depth, k = _plane(8, 20.0, normal, 500.0)
  normals, valid = depth_map_lib.depth_normals(depth, k)
  assert valid.numpy()[0, :-1, :-1].all() and not valid.numpy()[0, -1].any()
  np.testing.assert_allclose(normals.numpy()[0, :-1, :-1],
                             np.broadcast_to(normal, [7, 7, 3]), atol=1e-4)
  assert depth_map.normal_loss(depth, depth, k).numpy()[0] == 0.0
  # A fronto-parallel prediction against the tilted truth: |n - (0,0,-1)|_1.
  front, _ = _plane(8, 20.0, [0, 0, -1.0], 500.0)
  expected = np.abs(normal - [0, 0, -1]).sum()
  np.testing.assert_allclose(depth_map.normal_loss(front, depth, k),
                             [expected], rtol=1e-4)


def test_normal_loss_gradient_matches_finite_differences():
  rng = np.random.default_rng(2)
  truth = 100.0 + rng.uniform(0, 3, [1, 5, 5, 1])
  truth[0, 0, 0] = 0.0  # a background pixel
  predicted = 100.0 + rng.uniform(0, 3, [1, 5, 5, 1])
  k = _k(20.0, 5)

  @tf.function
  def loss(depth):
    return tf.reduce_sum(depth_map.normal_loss(depth, truth, k))

  theoretical, numerical = tf.test.compute_gradient(
      loss, [tf.constant(predicted, tf.float32)], delta=1e-2)
  np.testing.assert_allclose(theoretical[0], numerical[0], atol=2e-3)
  assert np.abs(theoretical[0]).max() > 1e-3


# --- eq. 10 ----------------------------------------------------------------

def test_depth_regularizer_is_zero_on_the_render_and_reaches_f_only():
  render = np.zeros([1, 4, 4, 1], np.float32)
  render[:, 1:3, 1:3] = 0.4
  assert depth_map.depth_regularizer(render, render).numpy()[0] == 0.0
  depth = tf.Variable(render + 0.2)
  target = tf.Variable(render)
  with tf.GradientTape() as tape:
    value = depth_map.depth_regularizer(depth, target)
  np.testing.assert_allclose(value, [0.04], rtol=1e-5)  # 0.2^2 everywhere
  gradient_f, gradient_s = tape.gradient(value, [depth, target])
  np.testing.assert_allclose(gradient_f, np.full([1, 4, 4, 1], 0.4 / 16),
                             rtol=1e-5)
  assert gradient_s is None


# --- eqs. 12-13 ------------------------------------------------------------

def _numpy_occlusion(depth_t, depth_s, k_t, k_s, r, t, threshold_mm):
  """The mask by hand: unproject, move, project, bilinear sample, compare."""
  h, w = depth_t.shape
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
  pixels = np.stack([xs, ys, np.ones_like(xs)], -1)
  points = (pixels @ np.linalg.inv(k_t).T) * depth_t[..., None]
  moved = points @ r.T + t
  z = moved[..., 2]
  projected = moved @ k_s.T
  u = projected[..., 0] / np.maximum(projected[..., 2], 1.0)
  v = projected[..., 1] / np.maximum(projected[..., 2], 1.0)
  hs, ws = depth_s.shape
  inside = (u >= 0) & (u <= ws - 1) & (v >= 0) & (v <= hs - 1)
  u0 = np.clip(np.floor(u), 0, ws - 1).astype(int)
  v0 = np.clip(np.floor(v), 0, hs - 1).astype(int)
  fu, fv = u - u0, v - v0
  def at(yy, xx):
    return depth_s[np.clip(yy, 0, hs - 1), np.clip(xx, 0, ws - 1)]
  sampled = ((1 - fu) * (1 - fv) * at(v0, u0) + fu * (1 - fv) * at(v0, u0 + 1)
             + (1 - fu) * fv * at(v0 + 1, u0) + fu * fv * at(v0 + 1, u0 + 1))
  valid = (depth_t > 0) & (z > 1.0) & inside
  return (valid & (np.abs(sampled - z) <= threshold_mm)).astype(np.float32)


@pytest.fixture(scope="module")
def yaw_pair():
  """3DMM depth of the embedded face model at yaw +40 and -40, 64 px."""
  decoder = decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  layout = decoder.layout
  zeros = tf.zeros([2, layout.size])
  groups = layout.split(zeros)
  yaw = np.deg2rad([40.0, -40.0]).astype(np.float32)
  pose = tf.stack([tf.zeros(2), yaw, tf.zeros(2), tf.zeros(2), tf.zeros(2),
                   tf.zeros(2)], -1)
  coefficients = layout.join(dict(groups, pose=pose))
  face, out = renderer.render_face(decoder, coefficients, image_size=(64, 64))
  r_rel, t_rel = geometry.relative_pose(face.rotation[:1], face.translation[:1],
                                        face.rotation[1:], face.translation[1:])
  return out.depth, face.intrinsics, r_rel, t_rel


@pytest.mark.slow  # loads the embedded face model and the rasterizer
def test_occlusion_mask_matches_numpy_on_a_yaw_pair(yaw_pair):
  depth, k, r_rel, t_rel = yaw_pair
  mask = depth_map.occlusion_mask(depth[:1], depth[1:], k[:1], k[1:], r_rel,
                                  t_rel).numpy()[0, ..., 0]
  threshold_mm = depth_map.OCCLUSION_THRESHOLD / depth_map_lib.DEPTH_SCALE
  expected = _numpy_occlusion(
      depth.numpy()[0, ..., 0].astype(np.float64),
      depth.numpy()[1, ..., 0].astype(np.float64), k.numpy()[0].astype(float),
      k.numpy()[1].astype(float), r_rel.numpy()[0].astype(float),
      t_rel.numpy()[0].astype(float), threshold_mm)
  face = depth.numpy()[0, ..., 0] > 0
  # float32 against float64: a pixel may flip only right at the threshold.
  assert (mask != expected).sum() <= 0.01 * face.sum()
  # 80 degrees apart: much of the target face is hidden from the source (the
  # far cheek behind the nose), and much is seen by both.
  assert 0.15 < mask[face].mean() < 0.85
  # The mask lies on the target face, and never where the warp is invalid.
  assert not mask[~face].any()


# --- eqs. 11, 14, 15 -------------------------------------------------------

def test_photo_consistency_known_values():
  image = np.random.default_rng(3).uniform(size=[1, 4, 4, 3]).astype(
      np.float32)
  mask = np.zeros([1, 4, 4, 1], np.float32)
  mask[:, :2] = 1.0
  assert depth_map.photo_consistency(image, image, mask).numpy()[0] == 0.0
  warped = image.copy()
  warped[..., 0] += 0.1
  np.testing.assert_allclose(depth_map.photo_consistency(image, warped, mask),
                             [0.1], rtol=1e-5)
  half = np.full([1, 4, 4, 1], 0.5, np.float32)
  np.testing.assert_allclose(
      depth_map.photo_consistency(image, warped, mask, half), [0.05],
      rtol=1e-5)
  np.testing.assert_allclose(depth_map.photo_consistency(
      image, warped, np.zeros_like(mask)), [0.0])
  np.testing.assert_allclose(depth_map.suitability_regularizer(half), [0.5])
  np.testing.assert_allclose(
      depth_map.suitability_regularizer(np.ones_like(half)), [0.0])


def _smooth_image(size, channels=3):
  ys, xs = np.mgrid[0:size, 0:size] / size
  return np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (xs + c * 0.3) + ys)
                   for c in range(channels)], -1)[None].astype(np.float32)


def test_warp_with_identity_pose_is_the_source_and_zero_loss():
  image = _smooth_image(8)
  depth = np.full([1, 8, 8, 1], 100.0, np.float32)
  k = _k(20.0, 8)
  warped = depth_map.warp_image(image, depth, k, k, tf.eye(3)[None],
                                tf.zeros([1, 3]))
  np.testing.assert_allclose(warped.image, image, atol=1e-5)
  assert warped.valid.numpy().all()
  assert depth_map.photo_consistency(image, warped.image,
                                     warped.valid).numpy()[0] < 1e-5


def test_warping_term_gradient_matches_finite_differences():
  size = 8
  target, source = _smooth_image(size), _smooth_image(size)[:, :, ::-1]
  rng = np.random.default_rng(4)
  depth = 100.0 + rng.uniform(-5, 5, [1, size, size, 1])
  k = _k(20.0, size)
  angle = np.deg2rad(5.0)
  rotation = tf.constant([[[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                           [-np.sin(angle), 0, np.cos(angle)]]], tf.float32)
  translation = tf.constant([[2.0, -1.0, 0.5]])
  mask = np.ones([1, size, size, 1], np.float32)
  mask[:, :2] = 0.0
  suitability = rng.uniform(0.2, 1.0, [1, size, size, 1]).astype(np.float32)

  @tf.function
  def loss(depth_mm, suit):
    warped = depth_map.warp_image(source, depth_mm, k, k, rotation,
                                  translation)
    return tf.reduce_sum(depth_map.photo_consistency(
        target, warped.image, mask * warped.valid, suit))

  theoretical, numerical = tf.test.compute_gradient(
      loss, [tf.constant(depth, tf.float32), tf.constant(suitability)],
      delta=1e-2)
  for got, want in zip(theoretical, numerical):
    assert np.abs(want).max() > 1e-5
    np.testing.assert_allclose(got, want, atol=2e-4 * max(
        1.0, np.abs(want).max() * 1e3))
