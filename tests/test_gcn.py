"""Chebyshev graph convolutions and the mesh Laplacian (models/gcn.py,
facemodel/graph.py), against dense NumPy evaluation."""

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf.facemodel import graph
from mgc_tf.models import gcn
from mgc_tf.models import registry

from conftest import grid_sheet


@pytest.fixture(scope="module")
def mesh():
  _, triangles = grid_sheet(4, 5, 10.0, 8.0)
  return np.asarray(triangles, np.int64), 20


def _dense_scaled_laplacian(triangles, v):
  """Independent dense construction from the definition."""
  a = np.zeros([v, v])
  for i, j, k in triangles:
    for p, q in ((i, j), (j, k), (k, i)):
      a[p, q] = a[q, p] = 1.0
  d = a.sum(1)
  inv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1e-12)), 0)
  lap = np.eye(v) - inv[:, None] * a * inv[None, :]
  lam = np.linalg.eigvalsh(lap)[-1]
  return 2 * lap / lam - np.eye(v)


def test_scaled_laplacian_matches_dense_definition(mesh):
  triangles, v = mesh
  ours = graph.scaled_laplacian(triangles, v).to_dense()
  np.testing.assert_allclose(ours, _dense_scaled_laplacian(triangles, v),
                             atol=1e-6)
  eig = np.linalg.eigvalsh(ours)
  assert eig[-1] == pytest.approx(1.0, abs=1e-5)
  assert eig[0] >= -1.0 - 1e-5


def test_eigsh_path_on_a_larger_mesh():
  _, triangles = grid_sheet(12, 12, 10.0, 10.0)
  ours = graph.scaled_laplacian(np.asarray(triangles), 144).to_dense()
  np.testing.assert_allclose(ours, _dense_scaled_laplacian(triangles, 144),
                             atol=1e-4)


def test_chebyshev_recursion_matches_dense_polynomials(mesh):
  triangles, v = mesh
  dense = _dense_scaled_laplacian(triangles, v)
  rng = np.random.default_rng(0)
  x = rng.normal(size=[2, v, 3])
  order = 5
  terms = gcn.chebyshev_terms(
      gcn.laplacian_tensor(graph.scaled_laplacian(triangles, v)),
      tf.constant(x, tf.float32), order)
  # T_k(L) through the closed form cos(k arccos(lambda)) on the eigenbasis.
  lam, vec = np.linalg.eigh(dense)
  lam = np.clip(lam, -1, 1)
  for k, term in enumerate(terms):
    t_k = vec @ np.diag(np.cos(k * np.arccos(lam))) @ vec.T
    np.testing.assert_allclose(term.numpy(), np.einsum("uv,bvf->buf", t_k, x),
                               atol=1e-4)


def test_chebconv_equals_dense_filter(mesh):
  triangles, v = mesh
  dense = _dense_scaled_laplacian(triangles, v)
  layer = gcn.ChebConv(3, 4, order=3)
  x = np.random.default_rng(1).normal(size=[2, v, 3]).astype(np.float32)
  lap = gcn.laplacian_tensor(graph.scaled_laplacian(triangles, v))
  y = layer(tf.constant(x), lap).numpy()
  kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
  t = [np.eye(v), dense, 2 * dense @ dense - np.eye(v)]
  expected = sum(np.einsum("uv,bvf,fg->bug", t[k], x, kernel[k])
                 for k in range(3)) + bias
  np.testing.assert_allclose(y, expected, atol=1e-4)


@pytest.mark.parametrize("builder", ["robust_mesh_refiner",
                                     "robust_faid_refiner"])
def test_refiners_are_permutation_equivariant(mesh, builder):
  triangles, v = mesh
  tf.keras.utils.set_random_seed(0)
  rng = np.random.default_rng(2)
  perm = rng.permutation(v)
  inverse = np.argsort(perm)
  # Relabel: new vertex i is old vertex perm[i].
  relabelled = inverse[triangles]
  lap = gcn.laplacian_tensor(graph.scaled_laplacian(triangles, v))
  lap_p = gcn.laplacian_tensor(graph.scaled_laplacian(relabelled, v))
  if builder == "robust_mesh_refiner":
    net = registry.build(registry.NetworkSpec(builder, {
        "channels": 8, "order": 3, "blocks": 4}))
    x = rng.uniform(size=[2, v, 3]).astype(np.float32)
    out = net(x, lap).numpy()
    out_p = net(x[:, perm], lap_p).numpy()
  else:
    net = registry.build(registry.NetworkSpec(builder, {
        "num_vertices": v, "feature_dim": 5, "channels": 8, "order": 3,
        "blocks": 4}))
    features = rng.normal(size=[2, 5]).astype(np.float32)
    out = net(features, lap).numpy()
    # Relabelling the vertices permutes the per-vertex code with them.
    net.vertex_code.assign(net.vertex_code.numpy()[perm])
    out_p = net(features, lap_p).numpy()
  assert out.shape == (2, v, 3)
  np.testing.assert_allclose(out_p, out[:, perm], atol=1e-5)
  # Not trivially equivariant: the output varies across vertices.
  assert np.std(out[0, :, 0]) > 1e-4


def test_laplacian_is_cached_per_face_model(tiny_face_model):
  first = graph.scaled_laplacian_of(tiny_face_model)
  assert graph.scaled_laplacian_of(tiny_face_model) is first
  assert first.size == tiny_face_model.num_vertices


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="order"):
    gcn.ChebConv(3, 4, order=0)
  with pytest.raises(ValueError, match="triangles"):
    graph.scaled_laplacian(np.zeros([3, 2], np.int64), 4)


def test_symmetric_sparse_product_and_its_gradient_match_dense(mesh):
  """The CSR product with its symmetric gradient: values and gradients of a
  weighted sum through two products, against the dense matrix, in a
  tf.function (where the CSR handle is built), and by finite differences."""
  triangles, v = mesh
  dense = _dense_scaled_laplacian(triangles, v)
  lap = gcn.laplacian_tensor(graph.scaled_laplacian(triangles, v))
  rng = np.random.default_rng(1)
  x = tf.constant(rng.normal(size=[v, 6]), tf.float32)
  weights = tf.constant(rng.normal(size=[v, 6]), tf.float32)

  @tf.function
  def value_and_gradient(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      product = gcn.SymmetricSparse(lap)
      y = product.matmul(product.matmul(x))
      total = tf.reduce_sum(weights * y)
    return y, tape.gradient(total, x)

  y, gradient = value_and_gradient(x)
  np.testing.assert_allclose(y.numpy(), dense @ dense @ x.numpy(), atol=1e-4)
  # d/dx sum(W * L L x) = (L L)^T W.
  np.testing.assert_allclose(gradient.numpy(),
                             (dense @ dense).T @ weights.numpy(), atol=1e-4)
  x64, w64 = x.numpy().astype(np.float64), weights.numpy().astype(np.float64)
  eps = 1e-3
  for i, j in ((0, 0), (7, 3), (19, 5)):
    step = np.zeros_like(x64)
    step[i, j] = eps
    plus = np.sum(w64 * (dense @ dense @ (x64 + step)))
    minus = np.sum(w64 * (dense @ dense @ (x64 - step)))
    assert gradient.numpy()[i, j] == pytest.approx(
        (plus - minus) / (2 * eps), rel=1e-3, abs=1e-4)


def test_laplacian_tensor_rejects_a_non_symmetric_matrix():
  matrix = graph.SparseMatrix(indices=np.array([[0, 1], [1, 0]], np.int64),
                              values=np.array([1.0, 0.5], np.float32), size=2)
  with pytest.raises(ValueError, match="not symmetric"):
    gcn.laplacian_tensor(matrix)
