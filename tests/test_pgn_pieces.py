"""PGN's pure pieces against independent references: soft census and
Hamming distance (NumPy), the Lucas-Kanade default flow (known shifts, and a
pair rendered by our renderer with a known image motion), visible texture
swapping on identical views, eq. 12's L1 regulariser, the region weights."""

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf.facemodel import decoder as decoder_lib
from mgc_tf.facemodel import loaders
from mgc_tf.losses import census
from mgc_tf.losses import identity
from mgc_tf.losses import landmark
from mgc_tf.losses import regularization
from mgc_tf.models import flow
from mgc_tf.render import renderer
from mgc_tf.render import texture_swap


def _np_census(grey255, window):
  """Per-pixel soft census with zero padding, written with loops."""
  h, w = grey255.shape
  r = window // 2
  padded = np.zeros([h + 2 * r, w + 2 * r])
  padded[r:r + h, r:r + w] = grey255
  out = np.zeros([h, w, window * window])
  for i in range(h):
    for j in range(w):
      k = 0
      for di in range(window):
        for dj in range(window):
          d = padded[i + di, j + dj] - grey255[i, j]
          out[i, j, k] = d / np.sqrt(0.81 + d * d)
          k += 1
  return out


def test_census_and_hamming_match_numpy():
  rng = np.random.default_rng(0)
  a = rng.uniform(size=[1, 12, 10, 3]).astype(np.float32)
  b = rng.uniform(size=[1, 12, 10, 3]).astype(np.float32)
  grey = lambda x: (x[0] @ np.array([0.299, 0.587, 0.114])) * 255.0
  ca, cb = _np_census(grey(a), 7), _np_census(grey(b), 7)
  np.testing.assert_allclose(census.soft_census(a).numpy()[0], ca,
                             atol=1e-4)
  d = (ca - cb)**2
  hamming = np.sum(d / (0.1 + d), axis=-1)
  got = census.soft_hamming(census.soft_census(a), census.soft_census(b))
  np.testing.assert_allclose(got.numpy()[0, ..., 0], hamming, rtol=1e-4,
                             atol=1e-3)
  # Eq. 9 with a mask and weights: the weighted mean over valid pixels.
  mask = np.zeros([1, 12, 10, 1], np.float32)
  mask[0, 2:10, 1:9] = 1.0
  weights = np.ones_like(mask)
  weights[0, 5, 5] = 5.0
  valid = np.zeros_like(mask)
  valid[0, 3:9, 3:7] = 1.0
  m = (mask * weights * valid)[0, ..., 0]
  expected = np.sum(hamming * m) / np.sum(m)
  loss = census.census_loss(a, b, mask, weights)
  np.testing.assert_allclose(loss.numpy(), [expected], rtol=1e-4)
  # Invariant to a brightness gain and offset; empty mask gives 0.
  brighter = np.clip(a * 0.8 + 0.1, 0, 1)
  assert float(census.census_loss(a, brighter, mask)[0]) < 0.02 * float(
      census.census_loss(a, b, mask)[0])
  assert float(census.census_loss(a, b, np.zeros_like(mask))[0]) == 0.0
  with pytest.raises(ValueError, match="odd"):
    census.soft_census(a, window=4)


def _pattern(x, y):
  return (0.5 + 0.15 * np.sin(x / 5.1 + 0.3) * np.cos(y / 6.3) +
          0.1 * np.sin((x + 2 * y) / 7.7) + 0.08 * np.cos((x - y) / 4.3))


@pytest.mark.parametrize("shift", [(0.5, -0.3), (1.3, -0.8), (3.6, 2.2)])
def test_lucas_kanade_recovers_a_known_shift(shift):
  ys, xs = np.mgrid[0:64, 0:64].astype(np.float64)
  a = np.repeat(_pattern(xs, ys)[None, ..., None], 3, -1).astype(np.float32)
  b = np.repeat(_pattern(xs - shift[0], ys - shift[1])[None, ..., None], 3,
                -1).astype(np.float32)
  estimated = flow.LucasKanadeFlow()(a, b).numpy()[0, 8:-8, 8:-8]
  error = np.abs(estimated - np.array(shift))
  np.testing.assert_array_less(np.abs(estimated.reshape(-1, 2).mean(0) -
                                      shift), 0.2)
  assert np.median(error) < 0.2
  # Differentiable with respect to both images.
  ta, tb = tf.constant(a), tf.constant(b)
  with tf.GradientTape() as tape:
    tape.watch([ta, tb])
    magnitude = tf.reduce_mean(tf.norm(flow.LucasKanadeFlow()(ta, tb),
                                       axis=-1))
  grads = tape.gradient(magnitude, [ta, tb])
  assert all(g is not None and np.isfinite(g.numpy()).all() and
             np.abs(g.numpy()).sum() > 0 for g in grads)


def test_lucas_kanade_on_a_rendered_pair_with_known_motion():
  """Our renderer moves the face by a known lateral translation dt, which
  moves every pixel by F dt / Z ~ the same amount; the flow on the face
  recovers it."""
  decoder = decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  layout, size = decoder.layout, 64
  rng = np.random.default_rng(1)
  groups = {n: np.zeros([2, k], np.float32)
            for n, k in zip(layout.names, layout.sizes)}
  groups["albedo"] = np.repeat(rng.normal(0, 1.5, [1, layout.sizes[
      layout.names.index("albedo")]]), 2, 0).astype(np.float32)
  distance = float(decoder.default_pose[5])
  focal = decoder.focal_length * size / decoder.image_size
  shift_px = 1.5
  groups["pose"][1, 3] = shift_px * distance / focal  # mm
  coefficients = layout.join({k: tf.constant(v) for k, v in groups.items()})
  _, render = renderer.render_face(decoder, coefficients,
                                   image_size=(size, size))
  image = render.image + (1 - render.mask) * 0.5
  estimated = flow.LucasKanadeFlow()(image[:1], image[1:]).numpy()[0]
  inner = tf.nn.erosion2d(render.mask[:1] * render.mask[1:],
                          tf.zeros([7, 7, 1]), [1, 1, 1, 1], "SAME",
                          "NHWC", [1, 1, 1, 1]).numpy()[0, ..., 0] > 0.5
  assert inner.sum() > 100
  mean = estimated[inner].mean(0)
  np.testing.assert_allclose(mean, [shift_px, 0.0], atol=0.2)


def test_texture_swap_on_identical_views_reproduces_the_image():
  decoder = decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  layout, size = decoder.layout, 64
  coefficients = tf.zeros([1, layout.size])
  face = decoder.decode(coefficients, image_size=size)
  ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
  # A linear image: bilinear sampling and barycentric interpolation of it
  # are (nearly) exact, so the swapped render equals the image on M12.
  image = np.stack([xs / size, ys / size, 0.5 + 0 * xs], -1)[None]
  image = tf.constant(image, tf.float32)
  out = texture_swap.swap_render(image, face.vertices, image, face.vertices,
                                 decoder.triangles, face.intrinsics)
  facing = texture_swap.facing_vertices(face.vertices, decoder.triangles)
  _, inside = texture_swap.sample_vertex_colors(image, face.vertices,
                                                face.intrinsics)
  np.testing.assert_array_equal(out.common.numpy(),
                                facing.numpy() * inside.numpy())
  assert 0.2 < float(tf.reduce_mean(facing)) < 1.0  # a face seen from front
  # Pixels whose visible triangle has all three corners in M12.
  corners = decoder.triangles.numpy()
  whole = out.common.numpy()[0][corners].min(-1) > 0  # [F]
  ids = out.triangle_ids.numpy()[0]
  mask = (ids >= 0) & whole[np.maximum(ids, 0)]
  assert mask.sum() > 200
  difference = np.abs(out.image.numpy()[0] - image.numpy()[0])[mask]
  assert difference.mean() < 2e-3 and difference.max() < 0.02
  # Eq. 6 itself.
  c1, c2 = tf.fill([1, 3, 3], 1.0), tf.fill([1, 3, 3], 0.0)
  np.testing.assert_array_equal(
      texture_swap.swap_colors(c1, c2, tf.constant([[1.0, 0.0, 1.0]]))[0, :,
                                                                       0],
      [1.0, 0.0, 1.0])


def test_facing_vertices_turn_with_the_head():
  decoder = decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  layout = decoder.layout
  pose = np.zeros([2, layout.size], np.float32)
  yaw = layout.slices()["pose"].start + 1
  pose[1, yaw] = 1.3  # ~75 degrees
  face = decoder.decode(tf.constant(pose))
  m = texture_swap.facing_vertices(face.vertices, decoder.triangles).numpy()
  common = m[0] * m[1]
  assert common.sum() < m[0].sum() and common.sum() < m[1].sum()


def test_l1_regulariser_is_eq_12():
  decoder = decoder_lib.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  layout = decoder.layout
  rng = np.random.default_rng(2)
  c = rng.normal(size=[3, layout.size]).astype(np.float32)
  groups = {n: c[:, s] for n, s in layout.slices().items()}
  expected = (np.abs(groups["identity"]).sum(1) +
              0.5 * np.abs(groups["expression"]).sum(1))
  got = regularization.regularization_loss(
      c, layout, identity_weight=1.0, expression_weight=0.5,
      albedo_weight=0.0, norm="l1")
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
  with pytest.raises(ValueError, match="norm"):
    regularization.regularization_loss(c, layout, norm="l3")


def test_semantic_consistency_is_the_cosine_distance():
  a = np.array([[1.0, 0.0, 0.0], [1.0, 2.0, 2.0]], np.float32)
  b = np.array([[0.0, 3.0, 0.0], [2.0, 4.0, 4.0]], np.float32)
  np.testing.assert_allclose(identity.cosine_distance(a, b).numpy(),
                             [1.0, 0.0], atol=1e-6)


def test_region_weight_map():
  points = np.zeros([1, 68, 2], np.float32) - 100.0
  points[0, 30] = [10.0, 20.0]
  w = landmark.region_weight_map(points, 32, radius=2.0).numpy()[0, ..., 0]
  assert w[20, 10] == 5.0 and w[20, 12] == 5.0 and w[20, 13] == 1.0
  assert (w == 5.0).sum() == 13  # the pixels of a radius-2 disc


def test_flow_network_by_path(tmp_path):
  import keras  # pylint: disable=g-import-not-at-top
  a = keras.Input((16, 16, 3))
  b = keras.Input((16, 16, 3))
  difference = keras.layers.Subtract()([b, a])
  flow_out = keras.layers.Conv2D(2, 1, use_bias=False,
                                 kernel_initializer="ones")(difference)
  path = str(tmp_path / "flow.keras")
  keras.Model([a, b], flow_out).save(path)
  estimator = flow.load_flow_network(path)
  x = tf.zeros([1, 16, 16, 3])
  y = tf.fill([1, 16, 16, 3], 0.5)
  np.testing.assert_allclose(estimator(x, y).numpy(), 1.5, atol=1e-6)
  # Gradients reach the images.
  with tf.GradientTape() as tape:
    tape.watch(y)
    value = tf.reduce_sum(estimator(x, y))
  assert float(tf.reduce_sum(tape.gradient(value, y))) > 0
  with pytest.raises(FileNotFoundError, match="no file or directory"):
    flow.load_flow_network(str(tmp_path / "missing.keras"))
  with pytest.raises(ValueError, match="neither a Keras file"):
    flow.load_flow_network(str(tmp_path))
  with pytest.raises(ValueError, match="Bad LucasKanadeFlow"):
    flow.LucasKanadeFlow(window=4)
