"""Rasterizer, shading and renderer against NumPy references and known cases."""

import math

import numpy as np
import pytest
import tensorflow as tf

from conftest import grid_sheet
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import shading
from mgc_tf.render import rasterizer
from mgc_tf.render import renderer

SIZE = 32
FOCAL = 40.0


def k_matrix(batch=1, focal=FOCAL, size=SIZE):
  k = np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]],
               np.float32)
  return tf.constant(np.tile(k[None], [batch, 1, 1]))


def project_np(points, focal=FOCAL, size=SIZE):
  return focal * points[:, :2] / points[:, 2:] + size / 2


def plane_quad(depths=(100.0, 100.0, 100.0, 100.0), half=30.0):
  """Camera-space quad (2 triangles, CCW on the displayed image)."""
  corners = np.array([[-half, -half], [half, -half], [half, half],
                      [-half, half]], np.float32)  # TL, TR, BR, BL on screen
  vertices = np.concatenate([corners, np.array(depths)[:, None]], 1)
  # On screen (y down) TL -> BL -> BR is counter-clockwise.
  triangles = np.array([[0, 3, 2], [0, 2, 1]], np.int32)
  return vertices.astype(np.float32), triangles


def inside_triangle_np(pixels, a, b, c):
  def edge(p, q, r):
    return (q[0] - p[0]) * (r[:, 1] - p[1]) - (q[1] - p[1]) * (r[:, 0] - p[0])
  e0, e1, e2 = edge(a, b, pixels), edge(b, c, pixels), edge(c, a, pixels)
  return ((e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((e0 <= 0) & (e1 <= 0) &
                                                  (e2 <= 0))


def pixel_grid(size=SIZE):
  v, u = np.mgrid[0:size, 0:size]
  return np.stack([u.ravel(), v.ravel()], -1).astype(np.float64)


def test_single_triangle_coverage_matches_numpy():
  vertices = np.array([[-20.3, -15.2, 100.0], [18.7, -9.9, 110.0],
                       [-4.1, 21.6, 95.0]], np.float32)
  # Screen winding: pick the visible (counter-clockwise on screen) order.
  tri = np.array([[0, 2, 1]], np.int32)
  raster = rasterizer.rasterize(vertices[None], tri, k_matrix(), (SIZE, SIZE))
  p = project_np(vertices.astype(np.float64))
  expected = inside_triangle_np(pixel_grid(), p[0], p[1], p[2])
  got = raster.mask.numpy()[0, ..., 0].ravel() > 0
  assert expected.sum() > 100
  np.testing.assert_array_equal(got, expected)
  ids = raster.triangle_ids.numpy()[0].ravel()
  assert set(ids[got]) == {0} and set(ids[~got]) == {-1}


def test_culling_keeps_front_faces_and_drops_back_faces():
  vertices, tris = plane_quad()
  flipped = tris[:, ::-1].copy()
  k = k_matrix()
  def covered(t, culling):
    r = rasterizer.rasterize(vertices[None], t, k, (SIZE, SIZE),
                             culling=culling)
    return int(tf.reduce_sum(r.mask))
  full = covered(tris, rasterizer.FaceCulling.NONE)
  assert full > 300
  assert covered(tris, rasterizer.FaceCulling.BACK) == full
  assert covered(flipped, rasterizer.FaceCulling.BACK) == 0
  assert covered(flipped, rasterizer.FaceCulling.FRONT) == full
  assert covered(flipped, rasterizer.FaceCulling.NONE) == full


def test_depth_and_colour_of_tilted_plane_match_ray_intersection():
  vertices, tris = plane_quad(depths=(90.0, 130.0, 120.0, 80.0))
  # The quad is not planar in general; use one triangle to have a plane.
  tri = tris[:1]
  a, b, c = vertices[tri[0]].astype(np.float64)
  normal = np.cross(b - a, c - a)
  offset = normal @ a
  # A colour field linear in 3D: perspective-correct interpolation is exact.
  colour_of = lambda x: np.stack([0.01 * x[..., 0] + 0.5, 0.01 * x[..., 1],
                                  0.005 * x[..., 2]], -1)
  colors = colour_of(vertices.astype(np.float64)).astype(np.float32)
  out = renderer.render_mesh(vertices[None], colors[None], tri, k_matrix(),
                             (SIZE, SIZE))
  mask = out.mask.numpy()[0, ..., 0] > 0
  pixels = pixel_grid()[mask.ravel()]
  rays = np.concatenate([(pixels - SIZE / 2) / FOCAL,
                         np.ones([len(pixels), 1])], 1)
  z = offset / (rays @ normal)
  points = rays * z[:, None]
  np.testing.assert_allclose(out.depth.numpy()[0, ..., 0][mask], z, rtol=1e-4)
  np.testing.assert_allclose(out.rendered.numpy()[0][mask], colour_of(points),
                             atol=2e-4)
  assert np.all(out.depth.numpy()[0, ..., 0][~mask] == 0)


def test_nearer_triangle_wins_whatever_the_order():
  near, tris = plane_quad(depths=(100.0,) * 4, half=20.0)
  far, _ = plane_quad(depths=(150.0,) * 4, half=40.0)
  vertices = np.concatenate([far, near])
  for triangles in (np.concatenate([tris, tris + 4]),
                    np.concatenate([tris + 4, tris])):
    colors = np.concatenate([np.zeros([4, 3]), np.ones([4, 3])]).astype(
        np.float32)
    out = renderer.render_mesh(vertices[None], colors[None], triangles,
                               k_matrix(), (SIZE, SIZE))
    centre = out.rendered.numpy()[0, SIZE // 2, SIZE // 2]
    np.testing.assert_allclose(centre, [1, 1, 1], atol=1e-5)
    assert out.depth.numpy()[0, SIZE // 2, SIZE // 2, 0] == pytest.approx(100)
    assert out.depth.numpy()[0, 6, 6, 0] == pytest.approx(150, rel=1e-4)
    np.testing.assert_allclose(out.rendered.numpy()[0, 6, 6], 0, atol=1e-6)


def test_pixel_and_tfg_barycentrics_agree():
  vertices, triangles = grid_sheet(6, 6, 60.0, 60.0, bulge=15.0)
  cam = vertices * [1, -1, -1] + [0, 0, 120]  # Rx(pi), in front of the camera
  args = (cam[None].astype(np.float32), triangles, k_matrix(), (SIZE, SIZE))
  fast = rasterizer.rasterize(*args, barycentrics=rasterizer.Barycentrics.PIXEL)
  ref = rasterizer.rasterize(*args, barycentrics=rasterizer.Barycentrics.TFG)
  assert float(tf.reduce_sum(fast.mask)) > 200
  np.testing.assert_allclose(fast.barycentrics, ref.barycentrics, atol=1e-5)
  sums = tf.reduce_sum(fast.barycentrics, -1)[..., None] * fast.mask
  np.testing.assert_allclose(sums, fast.mask, atol=1e-5)


def test_composite_over_background():
  vertices, tris = plane_quad(half=10.0)
  background = tf.fill([1, SIZE, SIZE, 3], 0.25)
  colors = tf.ones([1, 4, 3])
  out = renderer.render_mesh(vertices[None], colors, tris, k_matrix(),
                             (SIZE, SIZE), background=background)
  image, mask = out.image.numpy()[0], out.mask.numpy()[0, ..., 0] > 0
  np.testing.assert_allclose(image[mask], 1.0)
  np.testing.assert_allclose(image[~mask], 0.25)


def sh_basis_np(n):
  """Deep3D's SH basis, written from the constants (normals y up, z to cam)."""
  a0, a1, a2 = np.pi, 2 * np.pi / np.sqrt(3), 2 * np.pi / np.sqrt(8)
  c0 = 1 / np.sqrt(4 * np.pi)
  c1 = np.sqrt(3) / np.sqrt(4 * np.pi)
  c2 = 3 * np.sqrt(5) / np.sqrt(12 * np.pi)
  x, y, z = n[..., 0], n[..., 1], n[..., 2]
  return np.stack([a0 * c0 * np.ones_like(x), -a1 * c1 * y, a1 * c1 * z,
                   -a1 * c1 * x, a2 * c2 * x * y, -a2 * c2 * y * z,
                   a2 * c2 * 0.5 / np.sqrt(3) * (3 * z * z - 1),
                   -a2 * c2 * x * z, a2 * c2 * 0.5 * (x * x - y * y)], -1)


def test_sh_shading_matches_numpy_reference():
  rng = np.random.default_rng(0)
  normals_cv = rng.normal(size=[2, 50, 3])
  normals_cv /= np.linalg.norm(normals_cv, axis=-1, keepdims=True)
  albedo = rng.uniform(size=[2, 50, 3])
  light = rng.normal(0, 0.3, size=[2, 27])
  got = shading.sh_shade(tf.constant(albedo, tf.float32),
                         tf.constant(normals_cv, tf.float32),
                         tf.constant(light, tf.float32)).numpy()
  basis = sh_basis_np(normals_cv * [1, -1, -1])  # OpenCV -> y up, z to camera
  gamma = light.reshape([2, 3, 9]) + np.eye(9)[0] * 0.8
  expected = albedo * np.einsum("bvk,bck->bvc", basis, gamma)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  # Known case: zero lighting, a normal facing the camera -> 0.8 * pi * c0.
  facing = shading.sh_shade(tf.ones([1, 1, 3]), tf.constant([[[0., 0., -1.]]]),
                            tf.zeros([1, 27]))
  np.testing.assert_allclose(facing, 0.8 * math.pi / math.sqrt(4 * math.pi),
                             rtol=1e-6)


def test_vertex_normals_of_a_sphere_point_outwards():
  # An octahedron subdivided once is enough: normals ~ radial directions.
  theta, phi = np.meshgrid(np.linspace(0.3, np.pi - 0.3, 10),
                           np.linspace(0, 2 * np.pi, 21)[:-1], indexing="ij")
  points = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                     np.cos(theta)], -1).reshape([-1, 3])
  tris = []
  for r in range(9):
    for c in range(20):
      a, b = r * 20 + c, r * 20 + (c + 1) % 20
      d, e = a + 20, b + 20
      tris += [[a, d, e], [a, e, b]]
  tris = np.array(tris, np.int32)
  normals = shading.vertex_normals(tf.constant(points[None], tf.float32),
                                   tris).numpy()[0]
  cosine = np.sum(normals * points, -1)
  # Outward or inward consistently (winding decides); interior rows are radial.
  interior = slice(20, 160)
  assert np.all(np.abs(cosine[interior]) > 0.99)
  np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1, atol=1e-5)


def test_vertex_normals_match_numpy_on_a_mesh_with_high_valence():
  """ICT-FaceKit Light: vertices of valence 2 to 32; the reference sums each
  vertex's face normals over its triangle list (`compute_vertex_triangles`)."""
  from mgc_tf.facemodel import face_model as face_model_lib  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import loaders  # pylint: disable=g-import-not-at-top
  model = loaders.load_face_model("embedded-ict-light-v1")
  rng = np.random.default_rng(0)
  points = (model.mean_shape[None] +
            rng.normal(0, 0.5, [2, model.num_vertices, 3])).astype(np.float32)
  adjacency = face_model_lib.compute_vertex_triangles(model.triangles,
                                                      model.num_vertices)
  assert adjacency.shape[1] >= 32
  corners = points[:, model.triangles]  # [B, F, 3, 3]
  face = np.cross(corners[:, :, 1] - corners[:, :, 0],
                  corners[:, :, 2] - corners[:, :, 0])
  face /= np.maximum(np.linalg.norm(face, axis=-1, keepdims=True), 1e-12)
  face = np.concatenate([face, np.zeros([2, 1, 3])], 1)  # padding id F
  expected = face[:, adjacency].sum(2)
  expected /= np.maximum(np.linalg.norm(expected, axis=-1, keepdims=True),
                         1e-12)
  normals = shading.vertex_normals(tf.constant(points),
                                   model.triangles).numpy()
  np.testing.assert_allclose(normals, expected, atol=1e-5)


def test_decoder_matches_numpy_face_model(tiny_face_model):
  fm = tiny_face_model
  decoder = face_decoder.FaceDecoder(fm)
  rng = np.random.default_rng(3)
  coeffs = rng.normal(0, 0.5, [2, decoder.layout.size]).astype(np.float32)
  coeffs[:, decoder.layout.slices()["pose"]] *= [0.2, 0.2, 0.2, 5, 5, 20]
  face = decoder.decode(tf.constant(coeffs))
  groups = {k: coeffs[:, s] for k, s in decoder.layout.slices().items()}
  for b in range(2):
    shape = fm.shape_np(groups["identity"][b], groups["expression"][b])
    np.testing.assert_allclose(face.shape[b], shape, atol=1e-3)
    np.testing.assert_allclose(face.albedo[b], fm.albedo_np(groups["albedo"][b]),
                               atol=1e-5)
    rz, ry, rx = groups["pose"][b, :3] + fm.default_pose[:3]
    def rot(axis, a):
      c, s = np.cos(a), np.sin(a)
      m = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]],
           "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
           "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
      return np.array(m)
    r = rot("x", rx) @ rot("y", ry) @ rot("z", rz)
    t = groups["pose"][b, 3:] + fm.default_pose[3:]
    cam = shape @ r.T + t
    np.testing.assert_allclose(face.vertices[b], cam, atol=2e-2)
    lms = cam[fm.landmark_indices]
    uv = fm.focal_length * lms[:, :2] / lms[:, 2:] + fm.image_size / 2
    np.testing.assert_allclose(face.landmarks_2d[b], uv, atol=1e-2)


def test_default_pose_renders_the_mean_face_centred(tiny_face_model):
  decoder = face_decoder.FaceDecoder(tiny_face_model)
  coeffs = tf.zeros([1, decoder.layout.size])
  _, out = renderer.render_face(decoder, coeffs)
  mask = out.mask.numpy()[0, ..., 0] > 0
  assert mask[112, 112]
  ys, xs = np.nonzero(mask)
  assert abs(xs.mean() - 111.5) < 3 and abs(ys.mean() - 111.5) < 3
  depth = out.depth.numpy()[0, 112, 112, 0]
  assert 900 < depth < 1000  # the bulge comes towards the camera at 1 m


def test_works_in_tf_function(tiny_face_model):
  decoder = face_decoder.FaceDecoder(tiny_face_model)
  coeffs = tf.random.normal([2, decoder.layout.size], stddev=0.1, seed=1)
  eager = renderer.render_face(decoder, coeffs, image_size=(64, 64))[1]
  graph = tf.function(lambda c: renderer.render_face(
      decoder, c, image_size=(64, 64))[1])(coeffs)
  for a, b in zip(eager, graph):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def finite_difference_check(loss_fn, variable, indices, eps, rtol, atol):
  """Central differences of loss_fn at `indices` of `variable` vs autodiff."""
  with tf.GradientTape() as tape:
    loss = loss_fn()
  grad = tape.gradient(loss, variable).numpy()
  base = variable.numpy()
  for index in indices:
    plus, minus = base.copy(), base.copy()
    plus[index] += eps
    minus[index] -= eps
    variable.assign(plus)
    up = float(loss_fn())
    variable.assign(minus)
    down = float(loss_fn())
    variable.assign(base)
    numeric = (up - down) / (2 * eps)
    assert grad[index] == pytest.approx(numeric, rel=rtol, abs=atol), index


def test_gradients_reach_vertices_colours_and_lighting(tiny_face_model):
  decoder = face_decoder.FaceDecoder(tiny_face_model)
  rng = np.random.default_rng(5)
  coeffs = np.zeros([1, decoder.layout.size], np.float32)
  coeffs[:, decoder.layout.slices()["lighting"]] = rng.normal(0, 0.2, 27)
  weights = tf.constant(rng.uniform(size=[1, 64, 64, 3]), tf.float32)
  face = decoder.decode(tf.constant(coeffs))
  vertices = tf.Variable(face.vertices)
  colors = tf.Variable(face.colors)
  light = tf.Variable(coeffs[:, decoder.layout.slices()["lighting"]])
  k = face.intrinsics * [[[0.25], [0.25], [1.0]]] + [[[0, 0, 0], [0, 0, 0],
                                                       [0, 0, 0]]]
  k = tf.constant(np.array([[[1015 * 64 / 224, 0, 32], [0, 1015 * 64 / 224, 32],
                             [0, 0, 1]]], np.float32))

  def image_loss(verts, cols):
    out = renderer.render_mesh(verts, cols, decoder.triangles, k, (64, 64))
    # Only interior pixels: silhouette changes are not differentiable.
    inner = tf.nn.erosion2d(out.mask, tf.zeros([5, 5, 1]), [1, 1, 1, 1],
                            "SAME", "NHWC", [1, 1, 1, 1])
    return tf.reduce_sum(out.rendered * weights * inner) + 1e-3 * tf.reduce_sum(
        out.depth * inner)

  centre = tiny_face_model.num_vertices // 2 + 6  # a vertex near the middle
  finite_difference_check(lambda: image_loss(vertices, face.colors), vertices,
                          [(0, centre, 0), (0, centre, 1), (0, centre, 2)],
                          eps=0.2, rtol=0.05, atol=1e-2)
  finite_difference_check(lambda: image_loss(face.vertices, colors), colors,
                          [(0, centre, 0), (0, centre, 2)], eps=0.05,
                          rtol=1e-2, atol=1e-2)

  def light_loss():
    shaded = shading.sh_shade(face.albedo, face.normals, light)
    return image_loss(face.vertices, shaded)
  finite_difference_check(light_loss, light, [(0, 0), (0, 2), (0, 13)],
                          eps=0.05, rtol=1e-2, atol=1e-2)
  with tf.GradientTape() as tape:
    loss = light_loss()
  assert np.all(np.isfinite(tape.gradient(loss, light).numpy()))


def test_static_batch_size_is_required():
  vertices, tris = plane_quad()
  spec = tf.TensorSpec([None, 4, 3], tf.float32)
  fn = tf.function(lambda v: rasterizer.rasterize(v, tris, k_matrix(),
                                                  (SIZE, SIZE)).mask,
                   input_signature=[spec])
  with pytest.raises(ValueError, match="static"):
    fn.get_concrete_function()
