"""The PGN's closed-form pose (mgc_tf.geometry.landmark_pose): exact on a
known similarity, differentiable (finite differences), and the conversion
to our perspective camera on synthetic ground truth."""

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import geometry
from mgc_tf.facemodel import decoder as decoder_lib
from mgc_tf.facemodel import loaders
from mgc_tf.geometry import landmark_pose


def _rotation(rz, ry, rx):
  """R = Rx Ry Rz written out in NumPy (independent of the code)."""
  def rot(axis, a):
    c, s = np.cos(a), np.sin(a)
    m = np.eye(3)
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    if axis == 1:
      m[0, 2], m[2, 0] = s, -s
    return m
  return rot(0, rx) @ rot(1, ry) @ rot(2, rz)


def test_recovers_a_known_similarity_exactly():
  rng = np.random.default_rng(0)
  model = rng.normal(0.0, 60.0, [2, 68, 3])
  scales = np.array([0.15, 4.0])
  rotations = np.stack([_rotation(0.3, -1.1, 0.2), _rotation(-2.0, 0.4, 2.5)])
  shifts = np.array([[112.0, 90.0, -3.0], [20.0, 30.0, 7.0]])
  target = scales[:, None, None] * np.einsum("bij,blj->bli", rotations,
                                             model) + shifts[:, None]
  affine = landmark_pose.affine_from_landmarks(tf.constant(model),
                                               tf.constant(target))
  f, r, t = landmark_pose.similarity_from_affine(affine)
  np.testing.assert_allclose(f.numpy(), scales, rtol=1e-10)
  np.testing.assert_allclose(r.numpy(), rotations, atol=1e-10)
  np.testing.assert_allclose(t.numpy(), shifts, atol=1e-8)
  # float32 as training runs it: close to float32 precision.
  f32, r32, _ = landmark_pose.similarity_from_affine(
      landmark_pose.affine_from_landmarks(tf.constant(model, tf.float32),
                                          tf.constant(target, tf.float32)))
  np.testing.assert_allclose(f32.numpy(), scales, rtol=1e-4)
  np.testing.assert_allclose(r32.numpy(), rotations, atol=1e-4)


def test_affine_is_the_least_squares_solution_with_noise():
  rng = np.random.default_rng(1)
  model = rng.normal(0.0, 50.0, [1, 30, 3])
  target = rng.normal(0.0, 80.0, [1, 30, 3])
  affine = landmark_pose.affine_from_landmarks(tf.constant(model),
                                               tf.constant(target)).numpy()[0]
  xh = np.concatenate([model[0], np.ones([30, 1])], 1)
  expected = np.linalg.lstsq(xh, target[0], rcond=None)[0].T
  np.testing.assert_allclose(affine, expected, atol=1e-8)


def test_pose_is_differentiable_by_finite_differences():
  rng = np.random.default_rng(2)
  model = rng.normal(0.0, 50.0, [1, 12, 3])
  r = _rotation(0.2, 0.5, -0.3)
  target = 0.2 * model @ r.T + np.array([100.0, 110.0, 0.0])
  target = target + rng.normal(0.0, 0.5, target.shape)
  weights = rng.normal(size=[1, 6])

  def objective(x, y):
    pose = landmark_pose.pose_from_landmarks(x, y, focal_length=1000.0,
                                             principal_point=112.0)
    return tf.reduce_sum(pose * weights)

  for which in (0, 1):
    args = [tf.constant(model), tf.constant(target)]
    with tf.GradientTape() as tape:
      tape.watch(args[which])
      value = objective(*args)
    analytic = tape.gradient(value, args[which]).numpy()
    numeric = np.zeros_like(analytic)
    base = args[which].numpy()
    eps = 1e-5
    for index in np.ndindex(*base.shape):
      plus, minus = base.copy(), base.copy()
      plus[index] += eps
      minus[index] -= eps
      a = list(args)
      a[which] = tf.constant(plus)
      up = objective(*a).numpy()
      a[which] = tf.constant(minus)
      down = objective(*a).numpy()
      numeric[index] = (up - down) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4,
                               atol=1e-6 * np.abs(numeric).max())


def test_weak_perspective_conversion_on_synthetic_ground_truth():
  """Decode a face at known poses with the face model, make X_UV as the PGN
  is trained to predict it (projected x, y and weak-perspective z), solve,
  convert: the true pose comes back up to the weak-perspective error."""
  decoder = decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  layout = decoder.layout
  size = 64
  rng = np.random.default_rng(3)
  groups = {name: np.zeros([3, k], np.float32)
            for name, k in zip(layout.names, layout.sizes)}
  groups["identity"] = rng.normal(0, 1, groups["identity"].shape).astype(
      np.float32)
  groups["pose"] = np.array([[0.1, 0.6, -0.1, 8.0, -5.0, 40.0],
                             [-0.2, -1.0, 0.2, -10.0, 4.0, -30.0],
                             [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
  coefficients = layout.join({k: tf.constant(v) for k, v in groups.items()})
  face = decoder.decode(coefficients, image_size=size)
  focal = float(face.intrinsics[0, 0, 0])
  z = landmark_pose.weak_perspective_depth(face.landmarks_3d, focal)
  target = tf.concat([face.landmarks_2d, z[..., None]], axis=-1)
  model_points = tf.gather(face.shape, decoder.landmark_indices, axis=1)
  pose = landmark_pose.pose_from_landmarks(model_points, target, focal,
                                           size / 2.0)
  true_pose = face.pose.numpy()
  depth = true_pose[:, 5]
  # The weak-perspective error is of the order of the landmarks' relief
  # over the distance (~40 mm / 1109 mm here): rotation within 3 degrees
  # (geodesic angle), lateral translation within 1 % of the distance,
  # distance within 3 %.
  r_pred = geometry.euler_to_rotation(pose[:, :3]).numpy()
  r_true = face.rotation.numpy()
  cos = (np.trace(np.einsum("bji,bjk->bik", r_pred, r_true), axis1=1,
                  axis2=2) - 1) / 2
  np.testing.assert_array_less(np.arccos(np.clip(cos, -1, 1)),
                               np.radians(3.0))
  np.testing.assert_array_less(np.abs(pose[:, 3:5] - true_pose[:, 3:5]),
                               np.repeat(0.01 * depth[:, None], 2, 1))
  np.testing.assert_array_less(np.abs(pose[:, 5] - depth), 0.03 * depth)
  # Re-projecting the model with the converted pose lands on the labels.
  rotation, translation = geometry.pose_to_rotation_translation(pose)
  projected = geometry.project(geometry.transform(model_points, rotation,
                                                  translation),
                               face.intrinsics)
  error = np.abs(projected - face.landmarks_2d.numpy()).max()
  assert error < 0.03 * size, error  # 3 % of the crop at most


def test_2d_affine_completes_a_known_similarity_exactly():
  """Scaled orthographic projections of a known similarity: the x, y rows
  are the least-squares ones and the completed third row gives back f, R
  and t_xy exactly."""
  rng = np.random.default_rng(4)
  model = rng.normal(0.0, 60.0, [2, 68, 3])
  scales = np.array([0.15, 4.0])
  rotations = np.stack([_rotation(0.3, -1.1, 0.2), _rotation(-0.4, 0.8, 2.9)])
  shifts = np.array([[112.0, 90.0], [20.0, 30.0]])
  projected = scales[:, None, None] * np.einsum(
      "bij,blj->bli", rotations, model)[..., :2] + shifts[:, None]
  affine = landmark_pose.affine_from_2d_landmarks(
      tf.constant(model, tf.float32), tf.constant(projected, tf.float32))
  f, r, t = landmark_pose.similarity_from_affine(affine)
  np.testing.assert_allclose(f.numpy(), scales, rtol=1e-4)
  np.testing.assert_allclose(r.numpy(), rotations, atol=1e-4)
  np.testing.assert_allclose(t.numpy()[:, :2], shifts, atol=1e-2)
  with pytest.raises(ValueError):
    landmark_pose.affine_from_2d_landmarks(tf.zeros([1, 68, 3]),
                                           tf.zeros([1, 68, 3]))


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="model_points"):
    landmark_pose.affine_from_landmarks(tf.zeros([1, 5, 2]), tf.zeros([1, 5,
                                                                       3]))
  with pytest.raises(ValueError, match="at least 4"):
    landmark_pose.affine_from_landmarks(tf.zeros([1, 3, 3]), tf.zeros([1, 3,
                                                                       3]))
