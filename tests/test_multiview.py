"""Bilinear sampling, view synthesis, covisible maps and consistency terms.

Checked against NumPy references, known cases (identical views, a known
relative pose, a hand-made mesh) and finite differences. Small images (64 px,
128 px for the large-yaw covisibility case) keep the module fast on CPU.
"""

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import geometry
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import load_face_model
from mgc_tf.losses import consistency
from mgc_tf.render import covisibility
from mgc_tf.render import renderer
from mgc_tf.render import sampling
from mgc_tf.render import view_synthesis

SIZE = 64


# --- helpers ---


def bilinear_np(image, coords):
  """Zero-padded bilinear sampling and validity, written per point."""
  batch, height, width, channels = image.shape
  out = np.zeros(coords.shape[:-1] + (channels,))
  valid = np.zeros(coords.shape[:-1] + (1,))
  for index in np.ndindex(*coords.shape[:-1]):
    x, y = coords[index]
    b = index[0]
    valid[index] = float(0 <= x <= width - 1 and 0 <= y <= height - 1)
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    for xi in (x0, x0 + 1):
      for yi in (y0, y0 + 1):
        if 0 <= xi < width and 0 <= yi < height:
          weight = (1 - abs(x - xi)) * (1 - abs(y - yi))
          out[index] += weight * image[b, yi, xi]
  return out, valid


def scaled_intrinsics(face_model, size, batch=1):
  """The model's camera for a size x size crop (focal scaled with the crop)."""
  focal = face_model.focal_length * size / face_model.image_size
  k = geometry.intrinsics(focal, image_size=size)
  return tf.broadcast_to(k, [batch, 3, 3])


def smooth_colours(face_model):
  """[V, 3] colour field, smooth in model space (view independent)."""
  x, y = face_model.mean_shape[:, 0], face_model.mean_shape[:, 1]
  return np.stack([0.5 + 0.3 * np.sin(x / 12.0), 0.5 + 0.3 * np.cos(y / 15.0),
                   0.5 + 0.2 * np.sin((x + y) / 20.0)], -1).astype(np.float32)


def render_yaws(face_model, yaws_deg, size=SIZE):
  """Renders the mean face at the given yaws (added to the default pose).

  Returns:
    (DecodedFace, RenderOutput, K) for a batch of len(yaws_deg) views.
  """
  decoder = face_decoder.FaceDecoder(face_model)
  coeffs = np.zeros([len(yaws_deg), decoder.layout.size], np.float32)
  pose = decoder.layout.slices()["pose"]
  coeffs[:, pose.start + 1] = np.deg2rad(yaws_deg)  # (rz, ry, rx, ...)
  face = decoder.decode(tf.constant(coeffs))
  k = scaled_intrinsics(face_model, size, len(yaws_deg))
  colours = np.tile(smooth_colours(face_model)[None], [len(yaws_deg), 1, 1])
  out = renderer.render_mesh(face.vertices, colours, decoder.triangles, k,
                             (size, size))
  return face, out, k


def take(structure, index):
  """Picks views `index` (a list) out of every tensor of a NamedTuple."""
  return type(structure)(*[tf.gather(t, index) for t in structure])


def pair(face, out, target, source):
  """Relative pose and the two renders for views (target, source)."""
  r_rel, t_rel = geometry.relative_pose(
      face.rotation[target:target + 1], face.translation[target:target + 1],
      face.rotation[source:source + 1], face.translation[source:source + 1])
  return r_rel, t_rel, take(out, [target]), take(out, [source])


def covisible_np(target_ids, source_ids, triangles, num_vertices):
  """Covisible map of one image pair, from vertex sets (NumPy)."""
  def seen(ids):
    flags = np.zeros(num_vertices, bool)
    flags[triangles[np.unique(ids[ids >= 0])].ravel()] = True
    return flags
  both = seen(target_ids) & seen(source_ids)
  tri_flags = both[triangles].any(-1)
  return np.where(target_ids >= 0, tri_flags[np.maximum(target_ids, 0)], False)


@pytest.fixture(scope="module")
def embedded_model():
  return load_face_model("embedded-synthetic-v1")


# --- bilinear sampling ---


def test_sampler_matches_numpy_reference():
  rng = np.random.default_rng(0)
  image = rng.uniform(size=[2, 7, 9, 3])
  coords = np.stack([rng.uniform(-1.5, 9.5, [2, 5, 6]),
                     rng.uniform(-1.5, 7.5, [2, 5, 6])], -1)
  values, valid = sampling.bilinear_sample(tf.constant(image),
                                           tf.constant(coords))
  ref_values, ref_valid = bilinear_np(image, coords)
  assert 0 < ref_valid.sum() < ref_valid.size  # inside and outside samples
  assert values.dtype == tf.float64 and values.shape == (2, 5, 6, 3)
  np.testing.assert_allclose(values, ref_values, atol=1e-12)
  np.testing.assert_array_equal(valid, ref_valid)


def test_sampler_integer_coordinates_return_exact_pixels():
  rng = np.random.default_rng(1)
  image = rng.uniform(size=[1, 5, 6, 2]).astype(np.float32)
  ys, xs = np.meshgrid(np.arange(5), np.arange(6), indexing="ij")
  order = rng.permutation(30)
  coords = np.stack([xs.ravel()[order], ys.ravel()[order]], -1)
  coords = coords.reshape([1, 5, 6, 2]).astype(np.float32)
  values, valid = sampling.bilinear_sample(image, coords)
  expected = image[0, coords[0, ..., 1].astype(int), coords[0, ..., 0].astype(
      int)]
  np.testing.assert_array_equal(values.numpy()[0], expected)
  np.testing.assert_array_equal(valid, 1.0)  # last row and column included


def test_sampler_flags_outside_and_non_finite_samples():
  image = tf.ones([1, 4, 5, 1])
  x_max, y_max = 4.0, 3.0
  points = [(-0.01, 1.0), (x_max + 0.01, 1.0), (1.0, -0.01),
            (1.0, y_max + 0.01), (np.nan, 1.0), (1.0, np.inf), (1e9, -1e9),
            (0.0, 0.0), (x_max, y_max), (2.5, 1.5)]
  coords = tf.constant(np.array(points, np.float32)[None, None])
  with tf.GradientTape() as tape:
    tape.watch(coords)
    values, valid = sampling.bilinear_sample(image, coords)
    total = tf.reduce_sum(values)
  np.testing.assert_array_equal(valid.numpy().ravel(),
                                [0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
  assert np.all(np.isfinite(values.numpy()))
  assert np.all(np.isfinite(tape.gradient(total, coords).numpy()))
  np.testing.assert_allclose(values.numpy().ravel()[4:], [0, 0, 0, 1, 1, 1])
  # Zero padding: just outside, the value fades linearly to 0.
  np.testing.assert_allclose(values.numpy().ravel()[0], 0.99, atol=1e-5)


def test_sampler_gradients_match_finite_differences():
  rng = np.random.default_rng(2)
  image = tf.constant(rng.uniform(size=[2, 4, 5, 2]))
  # Away from integer kinks: cell + [0.1, 0.9].
  cells = np.stack([rng.integers(0, 4, [2, 2, 3]),
                    rng.integers(0, 3, [2, 2, 3])], -1)
  coords = tf.constant(cells + rng.uniform(0.1, 0.9, cells.shape))

  def by_image(img):
    return sampling.bilinear_sample(img, coords)[0]

  def by_coords(xy):
    return sampling.bilinear_sample(image, xy)[0]

  for fn, arg in ((by_image, image), (by_coords, coords)):
    theoretical, numerical = tf.test.compute_gradient(fn, [arg], delta=1e-4)
    assert np.abs(theoretical[0]).max() > 0.1
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)


# --- view synthesis ---


def test_identical_views_reproduce_the_target(tiny_face_model):
  face, out, k = render_yaws(tiny_face_model, [10.0])
  eye, zero = tf.eye(3, batch_shape=[1]), tf.zeros([1, 3])
  view = view_synthesis.synthesize_view(out.image, out.depth, out.depth, k, k,
                                        eye, zero)
  mask = out.mask.numpy() > 0
  assert mask.sum() > 500
  np.testing.assert_array_equal(view.valid.numpy() > 0, mask)
  grid = view_synthesis.pixel_grid(SIZE, SIZE).numpy()
  np.testing.assert_allclose(view.coords.numpy()[0][mask[0, ..., 0]],
                             grid[mask[0, ..., 0]], atol=1e-3)
  np.testing.assert_allclose(view.image.numpy()[mask[..., 0]],
                             out.image.numpy()[mask[..., 0]], atol=1e-4)
  np.testing.assert_allclose(view.sampled_depth, out.depth, rtol=1e-5)
  np.testing.assert_allclose(view.warped_depth, out.depth, rtol=1e-6)

  cov = covisibility.covisible_map(out.triangle_ids, out.triangle_ids,
                                   tiny_face_model.triangles,
                                   tiny_face_model.num_vertices)
  np.testing.assert_array_equal(cov, out.mask)  # everything seen is covisible
  weights = cov * view.valid
  assert consistency.pixel_consistency(view.image, out.image,
                                       weights).numpy() == pytest.approx(
                                           0, abs=1e-4)
  assert consistency.depth_consistency(view.sampled_depth, out.depth,
                                       weights).numpy() == pytest.approx(
                                           0, abs=2e-2)
  assert consistency.ssim_consistency(view.image, out.image,
                                      weights).numpy() == pytest.approx(
                                          0, abs=1e-3)


def test_known_relative_pose_matches_numpy_warp_and_rendered_target(
    tiny_face_model):
  face, out, k = render_yaws(tiny_face_model, [0.0, 20.0])
  r_rel, t_rel, target, source = pair(face, out, 0, 1)
  view = view_synthesis.synthesize_view(source.image, source.depth,
                                        target.depth, k[:1], k[:1], r_rel,
                                        t_rel)
  # NumPy warp of every foreground pixel.
  k_np = k.numpy()[0].astype(np.float64)
  depth = target.depth.numpy()[0, ..., 0].astype(np.float64)
  rows, cols = np.nonzero(depth > 0)
  rays = np.linalg.solve(k_np, np.stack([cols, rows, np.ones_like(cols)]))
  points = (r_rel.numpy()[0] @ (rays * depth[rows, cols]) +
            t_rel.numpy()[0][:, None])
  pixels = (k_np @ points)[:2] / points[2]
  np.testing.assert_allclose(view.coords.numpy()[0, rows, cols], pixels.T,
                             atol=2e-3)
  np.testing.assert_allclose(view.warped_depth.numpy()[0, rows, cols, 0],
                             points[2], rtol=1e-5)

  cov = covisibility.covisible_map(target.triangle_ids, source.triangle_ids,
                                   tiny_face_model.triangles,
                                   tiny_face_model.num_vertices)
  # Away from the source silhouette (all four bilinear neighbours on the
  # face) the resampled source matches the rendered target closely.
  inner = cov * view.valid * tf.cast(view.source_coverage > 0.999, tf.float32)
  assert float(tf.reduce_sum(inner)) > 0.8 * float(tf.reduce_sum(target.mask))
  error = consistency.pixel_consistency(view.image, target.image, inner)
  assert float(error[0]) < 0.01
  # Consistent geometry: sampled source depth == target depth moved into the
  # source frame, to a fraction of a millimetre.
  depth_error = consistency.depth_consistency(view.sampled_depth,
                                              view.warped_depth, inner)
  assert float(depth_error[0]) < 0.1

  # A wrong relative pose (2 mm sideways, or 1 degree) raises the errors.
  for wrong_r, wrong_t in (
      (r_rel, t_rel + [[2.0, 0.0, 0.0]]),
      (tf.matmul(geometry.euler_to_rotation([[0.0, np.deg2rad(1.0), 0.0]]),
                 r_rel), t_rel)):
    wrong = view_synthesis.synthesize_view(source.image, source.depth,
                                           target.depth, k[:1], k[:1],
                                           wrong_r, wrong_t)
    assert float(consistency.pixel_consistency(
        wrong.image, target.image, inner)[0]) > 3 * float(error[0])
    assert float(consistency.depth_consistency(
        wrong.sampled_depth, wrong.warped_depth, inner)[0]) > 10 * float(
            depth_error[0])


def test_pixel_term_gradient_in_the_pose_matches_finite_differences(
    tiny_face_model):
  face, out, k = render_yaws(tiny_face_model, [0.0, 20.0])
  r_rel, t_rel, target, source = pair(face, out, 0, 1)
  cov = covisibility.covisible_map(target.triangle_ids, source.triangle_ids,
                                   tiny_face_model.triangles,
                                   tiny_face_model.num_vertices)
  shift = tf.Variable([[1.5, 0.0, 0.0]])

  def loss():
    view = view_synthesis.synthesize_view(source.image, source.depth,
                                          target.depth, k[:1], k[:1], r_rel,
                                          t_rel + shift)
    return consistency.pixel_consistency(view.image, target.image,
                                         cov * view.valid)[0]

  with tf.GradientTape() as tape:
    value = loss()
  grad = tape.gradient(value, shift).numpy()[0, 0]
  shift.assign([[2.0, 0.0, 0.0]])
  up = float(loss())
  shift.assign([[1.0, 0.0, 0.0]])
  down = float(loss())
  numeric = (up - down) / 1.0
  assert numeric > 0  # moving back towards the true pose lowers the error
  assert grad == pytest.approx(numeric, rel=0.25)


# --- covisible map ---


def test_covisible_map_of_a_hand_made_strip():
  # A strip of 4 triangles over vertices 0..5:
  #   0 - 2 - 4
  #   | / | / |      t0 = (0, 1, 2), t1 = (1, 3, 2), t2 = (2, 3, 4),
  #   1 - 3 - 5      t3 = (3, 5, 4)
  triangles = np.array([[0, 1, 2], [1, 3, 2], [2, 3, 4], [3, 5, 4]], np.int32)
  target_ids = np.array([[[0, 0, 1, -1], [2, 3, -1, -1]]], np.int32)
  source_ids = np.array([[[3, 3, -1]]], np.int32)  # sees vertices 3, 4, 5
  # Covisible vertices: {3, 4} (t1, t2, t3 seen in the target, t3 in the
  # source). Triangles touching them: t1, t2, t3 - not t0.
  cov = covisibility.covisible_map(target_ids, source_ids, triangles, 6)
  np.testing.assert_array_equal(cov.numpy()[..., 0],
                                [[[0, 0, 1, 0], [1, 1, 0, 0]]])
  assert cov.dtype == tf.float32 and cov.shape == (1, 2, 4, 1)
  # Nothing seen in the source -> nothing covisible.
  empty = covisibility.covisible_map(target_ids, -np.ones_like(source_ids),
                                     triangles, 6)
  np.testing.assert_array_equal(empty, 0.0)


def test_large_yaw_excludes_the_cheek_hidden_in_the_source(embedded_model):
  fm = embedded_model
  size = 128
  face, out, _ = render_yaws(fm, [-60.0, 60.0], size=size)
  _, _, target, source = pair(face, out, 0, 1)
  cov = covisibility.covisible_map(target.triangle_ids, source.triangle_ids,
                                   fm.triangles, fm.num_vertices)
  got = cov.numpy()[0, ..., 0] > 0
  target_ids = target.triangle_ids.numpy()[0]
  expected = covisible_np(target_ids, source.triangle_ids.numpy()[0],
                          fm.triangles, fm.num_vertices)
  np.testing.assert_array_equal(got, expected)

  # Which cheek faces away from the source camera: the direction from the
  # head to the source camera, in model space, is R_s^T (0, 0, -1).
  to_camera = face.rotation.numpy()[1].T @ np.array([0.0, 0.0, -1.0])
  away = -np.sign(to_camera[0])  # sign of model x on the hidden cheek
  centroid_x = fm.mean_shape[fm.triangles].mean(1)[:, 0]  # [F] model x, mm
  seen = target_ids >= 0
  pixel_x = np.where(seen, centroid_x[np.maximum(target_ids, 0)], 0.0)
  hidden_cheek = seen & (away * pixel_x > 40.0)
  midline = seen & (np.abs(pixel_x) < 10.0)
  assert hidden_cheek.sum() > 500 and midline.sum() > 100
  assert not got[hidden_cheek].any()
  assert got[midline].mean() > 0.5
  assert 0.02 < got.sum() / seen.sum() < 0.5


# --- consistency terms ---


def test_terms_match_numpy_formulas():
  rng = np.random.default_rng(4)
  synth = rng.uniform(size=[2, 9, 8, 3]).astype(np.float32)
  target = rng.uniform(size=[2, 9, 8, 3]).astype(np.float32)
  synth_depth = rng.uniform(900, 1100, [2, 9, 8, 1]).astype(np.float32)
  target_depth = rng.uniform(900, 1100, [2, 9, 8, 1]).astype(np.float32)
  cov = (rng.uniform(size=[2, 9, 8, 1]) > 0.4).astype(np.float32)

  norms = np.linalg.norm(synth - target, axis=-1, keepdims=True)
  expected_pixel = (norms * cov).sum((1, 2, 3)) / cov.sum((1, 2, 3))
  np.testing.assert_allclose(
      consistency.pixel_consistency(synth, target, cov), expected_pixel,
      rtol=1e-5)

  scale = (target_depth * cov).sum((1, 2, 3)) / (synth_depth * cov).sum(
      (1, 2, 3))
  residual = np.abs(scale[:, None, None, None] * synth_depth - target_depth)
  expected_depth = (residual * cov).sum((1, 2, 3)) / cov.sum((1, 2, 3))
  np.testing.assert_allclose(
      consistency.depth_consistency(synth_depth, target_depth, cov),
      expected_depth, rtol=1e-4)
  # A pure scale change is rectified away.
  np.testing.assert_allclose(
      consistency.depth_consistency(1.3 * target_depth, target_depth, cov),
      0.0, atol=1e-3)

  def box(a, n):
    h, w = a.shape[1] - n + 1, a.shape[2] - n + 1
    return np.mean([a[:, i:i + h, j:j + w] for i in range(n)
                    for j in range(n)], axis=0)
  for window in (3, 7):
    x, y = synth.astype(np.float64), target.astype(np.float64)
    mx, my = box(x, window), box(y, window)
    sx, sy = box(x * x, window) - mx**2, box(y * y, window) - my**2
    sxy = box(x * y, window) - mx * my
    ssim = ((2 * mx * my + 1e-4) * (2 * sxy + 9e-4) /
            ((mx**2 + my**2 + 1e-4) * (sx + sy + 9e-4)))
    dssim = np.clip((1 - ssim) / 2, 0, 1).mean(-1, keepdims=True)
    weights = box(cov, window)
    expected = (dssim * weights).sum((1, 2, 3)) / weights.sum((1, 2, 3))
    np.testing.assert_allclose(
        consistency.ssim_consistency(synth, target, cov, window=window),
        expected, rtol=1e-4)
  with pytest.raises(ValueError, match="window"):
    consistency.ssim_consistency(synth, target, cov, window=4)


def test_empty_covisible_map_gives_zero_and_finite_gradients():
  rng = np.random.default_rng(5)
  synth = tf.Variable(rng.uniform(size=[2, 8, 8, 3]).astype(np.float32))
  target = tf.constant(synth.numpy())  # identical: norm and |.| at 0
  synth_depth = tf.Variable(tf.zeros([2, 8, 8, 1]))  # 0/0 scale if unguarded
  target_depth = tf.zeros([2, 8, 8, 1])
  cov = np.zeros([2, 8, 8, 1], np.float32)
  cov[1] = 1.0  # sample 0 empty, sample 1 full
  with tf.GradientTape(persistent=True) as tape:
    terms = [
        consistency.pixel_consistency(synth, target, cov),
        consistency.depth_consistency(synth_depth, target_depth, cov),
        consistency.ssim_consistency(synth, target, cov),
    ]
    empty = [
        consistency.pixel_consistency(synth, target + 0.5, tf.zeros_like(cov)),
        consistency.depth_consistency(synth_depth + 1.0, target_depth + 2.0,
                                      tf.zeros_like(cov)),
    ]
  for term in terms + empty:
    assert term.shape == (2,)
    np.testing.assert_allclose(term, 0.0, atol=1e-6)
  for term in terms + empty:
    for variable in (synth, synth_depth):
      grad = tape.gradient(term, variable)
      if grad is not None:
        assert np.all(np.isfinite(grad.numpy()))
  grad = tape.gradient(empty[0], synth)
  np.testing.assert_array_equal(grad, 0.0)


def test_empty_covisibility_through_view_synthesis_has_finite_gradients(
    tiny_face_model):
  face, out, k = render_yaws(tiny_face_model, [0.0, 20.0])
  r_rel, t_rel, target, source = pair(face, out, 0, 1)
  depth = tf.Variable(target.depth)
  translation = tf.Variable(t_rel + [[0.0, 0.0, -2000.0]])  # behind camera
  with tf.GradientTape() as tape:
    view = view_synthesis.synthesize_view(source.image, source.depth, depth,
                                          k[:1], k[:1], r_rel, translation)
    weights = view.valid
    loss = (consistency.pixel_consistency(view.image, target.image, weights) +
            consistency.depth_consistency(view.sampled_depth, depth, weights) +
            consistency.ssim_consistency(view.image, target.image, weights))
  assert float(tf.reduce_sum(view.valid)) == 0.0
  np.testing.assert_array_equal(loss, 0.0)
  assert np.all(np.isfinite(view.coords.numpy()))
  for grad in tape.gradient(loss, [depth, translation]):
    assert grad is not None and np.all(np.isfinite(grad.numpy()))


# --- batches and tf.function ---


def multiview_terms(source_image, source_depth, source_ids, target_image,
                    target_depth, target_ids, k, r_rel, t_rel, triangles,
                    num_vertices):
  view = view_synthesis.synthesize_view(source_image, source_depth,
                                        target_depth, k, k, r_rel, t_rel)
  cov = covisibility.covisible_map(target_ids, source_ids, triangles,
                                   num_vertices) * view.valid
  return tf.stack([
      consistency.pixel_consistency(view.image, target_image, cov),
      consistency.depth_consistency(view.sampled_depth, target_depth, cov),
      consistency.ssim_consistency(view.image, target_image, cov),
      tf.reduce_sum(cov, axis=[1, 2, 3]),
  ], axis=-1)


def test_batch_of_three_in_tf_function_matches_single_samples(
    tiny_face_model):
  fm = tiny_face_model
  face, out, k = render_yaws(fm, [0.0, 0.0, 0.0, 15.0, -10.0, 25.0])
  targets, sources = [0, 1, 2], [3, 4, 5]
  r_rel, t_rel = geometry.relative_pose(
      tf.gather(face.rotation, targets), tf.gather(face.translation, targets),
      tf.gather(face.rotation, sources), tf.gather(face.translation, sources))
  t_rel += [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
  target, source = take(out, targets), take(out, sources)
  args = (source.image, source.depth, source.triangle_ids, target.image,
          target.depth, target.triangle_ids, k[:3], r_rel, t_rel)
  statics = (fm.triangles, fm.num_vertices)

  def image_spec(channels):
    return tf.TensorSpec([None, SIZE, SIZE, channels], tf.float32)
  ids_spec = tf.TensorSpec([None, SIZE, SIZE], tf.int32)
  signature = [image_spec(3), image_spec(1), ids_spec, image_spec(3),
               image_spec(1), ids_spec, tf.TensorSpec([None, 3, 3]),
               tf.TensorSpec([None, 3, 3]), tf.TensorSpec([None, 3])]
  graph_fn = tf.function(lambda *a: multiview_terms(*a, *statics),
                         input_signature=signature)
  batched = graph_fn(*args).numpy()
  assert batched.shape == (3, 4)
  assert np.all(batched[:, 3] > 100) and np.all(batched[:, :3] > 0)
  for index in range(3):
    single = multiview_terms(*[a[index:index + 1] for a in args],
                             *statics).numpy()
    np.testing.assert_allclose(batched[index], single[0], rtol=1e-4,
                               atol=1e-6)
