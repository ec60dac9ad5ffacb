"""Landmark epipolar loss against an independent NumPy reference.

The reference builds R from explicit cos/sin matrices, the relative pose,
E = [t]x R, F = K_s^-T E K_t^-1 (with np.linalg.inv) and the point-to-line
distances in plain NumPy.
"""

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import losses

# --- NumPy reference --------------------------------------------------------


def np_rotation(rz, ry, rx):
  """MGCNet order R = Rx(rx) Ry(ry) Rz(rz)."""
  cz, sz, cy, sy, cx, sx = (np.cos(rz), np.sin(rz), np.cos(ry), np.sin(ry),
                            np.cos(rx), np.sin(rx))
  r_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
  r_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
  r_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
  return r_x @ r_y @ r_z


def np_k(f, cx=112.0, cy=112.0):
  return np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])


def np_epipolar_loss(r_t, t_t, r_s, t_s, k_t, k_s, p_t, p_s, weights=None):
  """One sample: mean over landmarks of the symmetric epipolar distance."""
  r_rel = r_s @ r_t.T
  t_rel = t_s - r_rel @ t_t
  t_x = np.array([[0, -t_rel[2], t_rel[1]], [t_rel[2], 0, -t_rel[0]],
                  [-t_rel[1], t_rel[0], 0]])
  e = t_x @ r_rel
  f = np.linalg.inv(k_s).T @ e @ np.linalg.inv(k_t)
  distances = []
  for a, b in zip(p_t, p_s):
    x_t, x_s = np.append(a, 1.0), np.append(b, 1.0)
    line_s, line_t = f @ x_t, f.T @ x_s
    residual = abs(x_s @ f @ x_t)
    distances.append(0.5 * (residual / np.hypot(line_s[0], line_s[1]) +
                            residual / np.hypot(line_t[0], line_t[1])))
  distances = np.array(distances)
  if weights is None:
    return distances.mean()
  return (weights * distances).sum() / weights.sum()


def random_pose(rng):
  angles = rng.uniform([-0.6, -0.8, np.pi - 0.4], [0.6, 0.8, np.pi + 0.4])
  translation = rng.uniform([-40, -40, 900], [40, 40, 1100])
  return np.concatenate([angles, translation])


def random_case(rng, batch, num=68):
  poses_t = np.stack([random_pose(rng) for _ in range(batch)])
  poses_s = np.stack([random_pose(rng) for _ in range(batch)])
  k_t = np.stack([np_k(rng.uniform(800, 1200)) for _ in range(batch)])
  k_s = np.stack([np_k(rng.uniform(800, 1200)) for _ in range(batch)])
  p_t = rng.uniform(20, 200, [batch, num, 2])
  p_s = rng.uniform(20, 200, [batch, num, 2])
  return poses_t, poses_s, k_t, k_s, p_t, p_s


def rotations(poses):
  return np.stack([np_rotation(*p[:3]) for p in poses])


# --- tests ------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_epipolar_loss_matches_numpy(batch, dtype):
  rng = np.random.default_rng(batch)
  poses_t, poses_s, k_t, k_s, p_t, p_s = random_case(rng, batch)
  r_t, r_s = rotations(poses_t), rotations(poses_s)
  expected = np.array([
      np_epipolar_loss(r_t[b], poses_t[b, 3:], r_s[b], poses_s[b, 3:], k_t[b],
                       k_s[b], p_t[b], p_s[b]) for b in range(batch)
  ])
  assert expected.min() > 1.0  # random landmarks: far from their lines
  args = [tf.constant(x, dtype) for x in
          (r_t, poses_t[:, 3:], r_s, poses_s[:, 3:], k_t, k_s, p_t, p_s)]
  got = losses.epipolar_loss(*args)
  assert got.shape == (batch,) and got.dtype == dtype
  rtol = 1e-4 if dtype == np.float32 else 1e-10
  np.testing.assert_allclose(got.numpy(), expected, rtol=rtol)
  got_fn = tf.function(losses.epipolar_loss)(*args)
  np.testing.assert_allclose(got_fn.numpy(), expected, rtol=rtol)
  got_poses = losses.epipolar_loss_from_poses(
      tf.constant(poses_t, dtype), tf.constant(poses_s, dtype), *args[4:])
  np.testing.assert_allclose(got_poses.numpy(), expected, rtol=rtol)


def test_epipolar_loss_weights_match_numpy():
  rng = np.random.default_rng(11)
  poses_t, poses_s, k_t, k_s, p_t, p_s = random_case(rng, 3)
  weights = rng.uniform(0, 2, [3, 68])
  weights[2] = 0.0  # no valid landmark: contributes 0
  r_t, r_s = rotations(poses_t), rotations(poses_s)
  expected = [
      np_epipolar_loss(r_t[b], poses_t[b, 3:], r_s[b], poses_s[b, 3:], k_t[b],
                       k_s[b], p_t[b], p_s[b], weights[b]) for b in range(2)
  ] + [0.0]
  got = losses.epipolar_loss(r_t, poses_t[:, 3:], r_s, poses_s[:, 3:], k_t,
                             k_s, p_t, p_s, weights=weights)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4)


def test_epipolar_loss_is_zero_for_true_correspondences():
  rng = np.random.default_rng(12)
  batch = 3
  poses_t, poses_s, k_t, k_s, _, _ = random_case(rng, batch)
  points = rng.uniform([-70, -90, -40], [70, 90, 60], [batch, 68, 3])  # mm
  r_t, r_s = rotations(poses_t), rotations(poses_s)

  def project(r, t, k, x):
    cam = x @ r.T + t
    pix = cam @ k.T
    return pix[:, :2] / pix[:, 2:]

  p_t = np.stack([project(r_t[b], poses_t[b, 3:], k_t[b], points[b])
                  for b in range(batch)])
  p_s = np.stack([project(r_s[b], poses_s[b, 3:], k_s[b], points[b])
                  for b in range(batch)])
  got = losses.epipolar_loss_from_poses(
      tf.constant(poses_t), tf.constant(poses_s), k_t, k_s, p_t, p_s)
  np.testing.assert_allclose(got.numpy(), 0.0, atol=1e-8)
  # A wrong source pose moves the landmarks off their epipolar lines.
  wrong = poses_s.copy()
  wrong[:, 1] += 0.05
  got_wrong = losses.epipolar_loss_from_poses(
      tf.constant(poses_t), tf.constant(wrong), k_t, k_s, p_t, p_s)
  assert np.all(got_wrong.numpy() > 0.1)
  # float32 stays close to 0 too.
  got32 = losses.epipolar_loss_from_poses(
      tf.constant(poses_t, tf.float32), tf.constant(poses_s, tf.float32),
      k_t, k_s, p_t, p_s)
  assert np.all(got32.numpy() < 0.05)


def test_epipolar_loss_gradient_matches_finite_differences():
  rng = np.random.default_rng(13)
  poses_t, poses_s, k_t, k_s, p_t, p_s = random_case(rng, 2, num=10)
  k_t, k_s, p_t, p_s = (tf.constant(x) for x in (k_t, k_s, p_t, p_s))

  def loss(pose_t, pose_s):
    return losses.epipolar_loss_from_poses(pose_t, pose_s, k_t, k_s, p_t, p_s)

  theoretical, numerical = tf.test.compute_gradient(
      loss, [tf.constant(poses_t), tf.constant(poses_s)], delta=1e-6)
  for th, nu in zip(theoretical, numerical):
    assert np.abs(th).max() > 1e-3  # the loss does depend on the pose
    np.testing.assert_allclose(th, nu, rtol=1e-5, atol=1e-7)


def test_epipolar_loss_no_translation_is_zero_with_finite_gradient():
  """t_rel = 0 (pure rotation about the camera centre): F = 0, loss 0."""
  rng = np.random.default_rng(14)
  poses_t, _, k_t, k_s, p_t, p_s = random_case(rng, 1)
  r_t = tf.constant(rotations(poses_t))
  t_t = tf.constant(poses_t[:, 3:])
  r_s = tf.constant(np_rotation(0.1, 0.2, 0.05)[None]) @ r_t
  t_s = tf.Variable(tf.linalg.matvec(r_s @ tf.transpose(r_t, [0, 2, 1]), t_t))
  with tf.GradientTape() as tape:
    got = losses.epipolar_loss(r_t, t_t, r_s, t_s, k_t, k_s, p_t, p_s)
  grad = tape.gradient(got, t_s)
  np.testing.assert_allclose(got.numpy(), 0.0, atol=1e-9)
  assert np.all(np.isfinite(grad.numpy()))


def test_epipolar_loss_rejects_bad_shapes():
  with pytest.raises(ValueError, match="points_target"):
    losses.epipolar_loss(tf.eye(3)[None], tf.ones([1, 3]), tf.eye(3)[None],
                         tf.ones([1, 3]), tf.eye(3)[None], tf.eye(3)[None],
                         tf.ones([1, 68, 3]), tf.ones([1, 68, 2]))
