"""The xla rasterizer backend sees the same triangle as the C++ kernel everywhere.

Parity is exact: triangle ids and depths equal on 100 % of pixels on CPU,
eagerly, in tf.function and compiled with XLA; renders, depths and gradients
then equal too.
"""

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_with_two_logical_cpus
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import loaders
from mgc_tf.render import kernel
from mgc_tf.render import rasterizer
from mgc_tf.render import renderer
from mgc_tf.render import xla_visibility


def kernel_visibility(clip, triangles, image_size, mode):
  """Reference: ids [B, H, W] (-1 on background) and z [B, H, W]."""
  ops = kernel.load_rasterizer_module()
  height, width = image_size
  ids, depths = [], []
  for image in np.asarray(clip):
    _, t, z = ops.rasterize_triangles(image, triangles, width, height, 1, mode)
    z = z[0].numpy()
    ids.append(np.where(z != 1.0, t[0].numpy(), -1))
    depths.append(z)
  return np.stack(ids), np.stack(depths)


def xla_ids(result):
  return np.where(result.mask.numpy(), result.triangle_ids.numpy(), -1)


def random_clip_mesh(rng, batch=2, num_vertices=40, num_triangles=60,
                     spread=0.6):
  """Random clip-space soup: large and small triangles, overlaps, off-screen,
  behind the camera (w <= 0), beyond near/far, degenerate, both windings."""
  clip = rng.normal(0.0, spread, [batch, num_vertices, 4]).astype(np.float32)
  clip[..., 3] = rng.uniform(-0.2, 1.0, [batch, num_vertices])
  clip[..., 2] = (rng.uniform(-1.2, 1.2, [batch, num_vertices]) *
                  np.abs(clip[..., 3]))
  # A few tiny triangles around one vertex, a few far off screen.
  clip[:, :6, :2] = clip[:, :1, :2] + rng.normal(
      0.0, 0.01, [batch, 6, 2]).astype(np.float32)
  clip[:, 6:9, :2] *= 8.0
  triangles = rng.integers(0, num_vertices, [num_triangles, 3]).astype(
      np.int32)
  triangles[:6] = rng.integers(0, 6, [6, 3])
  triangles[6:9, 2] = triangles[6:9, 1]  # Degenerate: a repeated corner.
  # Shared edges: fans around vertex 10 with equal depth at the hub.
  triangles[9:15] = [[10, 11 + i, 12 + i] for i in range(6)]
  return clip, triangles


@pytest.mark.parametrize("mode", [
    pytest.param(0, marks=pytest.mark.slow),
    pytest.param(1, marks=pytest.mark.slow),
    2])  # 2 is what FaceCulling.BACK, our default, asks of the kernel.
def test_random_meshes_match_the_kernel_exactly(mode):
  size = (24, 32)
  graph = tf.function(
      lambda c, t: xla_visibility.visibility(c, t, size, mode))
  compiled = tf.function(
      lambda c, t: xla_visibility.visibility(c, t, size, mode),
      jit_compile=True)
  for seed in range(3):
    clip, triangles = random_clip_mesh(np.random.default_rng(seed))
    expected_ids, expected_z = kernel_visibility(clip, triangles, size, mode)
    assert (expected_ids >= 0).mean() > 0.2  # The scene covers the image.
    for fn in (graph, compiled):
      result = fn(tf.constant(clip), tf.constant(triangles))
      np.testing.assert_array_equal(xla_ids(result), expected_ids)
      np.testing.assert_array_equal(result.z_buffer.numpy(), expected_z)
  eager = xla_visibility.visibility(clip, triangles, size, mode)
  np.testing.assert_array_equal(xla_ids(eager), expected_ids)


def test_small_capacity_runs_more_passes_and_drops_nothing():
  rng = np.random.default_rng(3)
  clip, triangles = random_clip_mesh(rng)
  size = (16, 20)
  expected_ids, _ = kernel_visibility(clip, triangles, size, 2)
  big = xla_visibility.visibility(clip, triangles, size, 2, capacity=10**5)
  small = tf.function(
      lambda c: xla_visibility.visibility(c, triangles, size, 2, capacity=37)
  )(tf.constant(clip))
  assert int(big.num_passes) == 1
  assert int(small.num_passes) == -(-int(small.num_candidates) // 37) > 10
  assert int(small.num_candidates) == int(big.num_candidates)
  np.testing.assert_array_equal(xla_ids(big), expected_ids)
  np.testing.assert_array_equal(xla_ids(small), expected_ids)


def test_candidates_are_the_bounding_box_pixels():
  # One triangle covering NDC [-0.5, 0.5]^2 of a 10 x 10 image: its box is
  # pixels 2..7 in x and y, 6 x 6 = 36 candidates.
  clip = np.array([[[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0],
                    [-0.5, 0.5, 0.0, 1.0]]], np.float32)
  triangles = np.array([[0, 1, 2], [0, 2, 1]], np.int32)
  result = xla_visibility.visibility(clip, triangles, (10, 10), 0)
  assert int(result.num_candidates) == 2 * 36
  ids, _ = kernel_visibility(clip, triangles, (10, 10), 0)
  np.testing.assert_array_equal(xla_ids(result), ids)
  # Both windings cover the same pixels at the same depth: the lower id wins.
  assert set(np.unique(ids)) == {-1, 0}


def test_dynamic_batch_and_bad_input():
  rng = np.random.default_rng(4)
  clip, triangles = random_clip_mesh(rng, batch=3)
  spec = tf.TensorSpec([None, clip.shape[1], 4], tf.float32)
  fn = tf.function(
      lambda c: xla_visibility.visibility(c, triangles, (8, 8), 2).mask,
      input_signature=[spec])
  assert fn(tf.constant(clip)).shape == (3, 8, 8)
  with pytest.raises(ValueError, match="clip must be"):
    xla_visibility.visibility(clip[..., :3], triangles, (8, 8))
  with pytest.raises(ValueError, match="capacity"):
    xla_visibility.visibility(clip, triangles, (8, 8), capacity=0)


def test_pixel_centres_are_the_kernels_float32_arithmetic():
  centres = xla_visibility.pixel_centres_fixed(7)
  half = np.float32(3.5)
  for i, value in enumerate(centres):
    ndc = (np.float32(i) + np.float32(0.5)) / half - np.float32(1.0)
    assert value == int(ndc * np.float32(65536.0))


def decoder_and_coefficients(batch, seed=0):
  decoder = face_decoder.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  rng = np.random.default_rng(seed)
  coefficients = np.zeros([batch, decoder.layout.size], np.float32)
  coefficients[:, :decoder.layout.id_rank] = rng.normal(
      0.0, 0.5, [batch, decoder.layout.id_rank])
  pose = decoder.layout.slices()["pose"].start
  coefficients[:, pose + 1] = np.deg2rad(rng.uniform(-70, 70, batch))  # yaw
  coefficients[:, pose] = np.deg2rad(rng.uniform(-20, 20, batch))  # pitch
  return decoder, tf.constant(coefficients)


def render_and_gradients(decoder, coefficients, size, backend):
  with tf.GradientTape() as tape:
    tape.watch(coefficients)
    _, out = renderer.render_face(decoder, coefficients, image_size=(size, size),
                                  backend=backend)
    total = tf.reduce_sum(out.image) + 1e-3 * tf.reduce_sum(out.depth)
  return out, tape.gradient(total, coefficients)


@pytest.mark.parametrize("size", [
    64, pytest.param(224, marks=pytest.mark.slow),
    pytest.param(512, marks=pytest.mark.slow)])
def test_face_renders_match_the_kernel(size):
  decoder, coefficients = decoder_and_coefficients(3)
  by_kernel, grad_kernel = render_and_gradients(decoder, coefficients, size,
                                                "kernel")
  by_xla, grad_xla = render_and_gradients(decoder, coefficients, size, "xla")
  np.testing.assert_array_equal(by_xla.triangle_ids.numpy(),
                                by_kernel.triangle_ids.numpy())
  assert by_kernel.mask.numpy().mean() > 0.1
  np.testing.assert_array_equal(by_xla.image.numpy(), by_kernel.image.numpy())
  np.testing.assert_array_equal(by_xla.depth.numpy(), by_kernel.depth.numpy())
  np.testing.assert_allclose(grad_xla.numpy(), grad_kernel.numpy(), rtol=1e-6,
                             atol=1e-6)


@pytest.mark.slow
def test_face_render_compiled_with_xla_matches_the_kernel():
  decoder, coefficients = decoder_and_coefficients(2, seed=1)
  by_kernel, grad_kernel = render_and_gradients(decoder, coefficients, 64,
                                                "kernel")
  compiled = tf.function(
      lambda c: render_and_gradients(decoder, c, 64, "xla"), jit_compile=True)
  by_xla, grad_xla = compiled(coefficients)
  np.testing.assert_array_equal(by_xla.triangle_ids.numpy(),
                                by_kernel.triangle_ids.numpy())
  # Same triangles; XLA fuses the barycentrics and shading differently
  # (FMA contraction), so values agree to float32 tolerance, not bits.
  np.testing.assert_allclose(by_xla.image.numpy(), by_kernel.image.numpy(),
                             atol=1e-3)
  np.testing.assert_allclose(by_xla.depth.numpy(), by_kernel.depth.numpy(),
                             rtol=1e-5)
  print("grad max diff", np.abs(grad_xla.numpy() - grad_kernel.numpy()).max(),
        np.abs(grad_kernel.numpy()).max())
  np.testing.assert_allclose(grad_xla.numpy(), grad_kernel.numpy(), rtol=1e-3,
                             atol=1e-3 * np.abs(grad_kernel.numpy()).max())


def test_backend_choice():
  assert rasterizer.parse_backend("xla") == rasterizer.Backend.XLA
  with pytest.raises(ValueError, match="choose one of auto, kernel, xla"):
    rasterizer.parse_backend("opengl")
  with rasterizer.default_backend("xla"):
    assert rasterizer.resolve_backend() == rasterizer.Backend.XLA
    assert rasterizer.resolve_backend("kernel") == rasterizer.Backend.KERNEL
  assert rasterizer.get_default_backend() == rasterizer.Backend.AUTO
  # On this CPU machine with a compiler, auto keeps the (faster) kernel.
  assert rasterizer.resolve_backend("auto") == rasterizer.Backend.KERNEL


def test_auto_falls_back_to_xla_without_the_kernel(monkeypatch):
  def unavailable(path=None):
    raise kernel.KernelBuildError("No C++ compiler found (test).")
  monkeypatch.setattr(kernel, "load_rasterizer_module", unavailable)
  assert rasterizer.resolve_backend("auto") == rasterizer.Backend.XLA
  decoder, coefficients = decoder_and_coefficients(1)
  _, out = renderer.render_face(decoder, coefficients, image_size=(32, 32),
                                backend="auto")
  assert out.mask.numpy().mean() > 0.1
  with pytest.raises(kernel.KernelBuildError):
    renderer.render_face(decoder, coefficients, image_size=(32, 32),
                         backend="kernel")


MIRRORED_SCRIPT = """
import numpy as np
from conftest import make_tiny_face_model
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.render import rasterizer
from mgc_tf.render import renderer

decoder = face_decoder.FaceDecoder(make_tiny_face_model())
k = decoder.layout.size
coeffs = np.zeros([4, k], np.float32)
coeffs[:, decoder.layout.slices()["pose"].start + 1] = np.deg2rad(
    [-30, -5, 10, 40])
single = renderer.render_face(decoder, coeffs, image_size=(48, 48),
                              backend="kernel")[1].image.numpy()
rasterizer.set_default_backend("xla")
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
dataset = tf.data.Dataset.from_tensor_slices(coeffs).batch(4)
batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

@tf.function(jit_compile=True)
def replica_fn(c):
  return renderer.render_face(decoder, c, image_size=(48, 48))[1].image

@tf.function
def step(c):
  return strategy.gather(strategy.run(replica_fn, args=(c,)), axis=0)

distributed = step(batch).numpy()
np.testing.assert_allclose(distributed, single, atol=1e-4)
print("MIRRORED_XLA_OK")
"""


@pytest.mark.slow
def test_xla_backend_under_mirrored_strategy_with_jit():
  run_with_two_logical_cpus(MIRRORED_SCRIPT, "MIRRORED_XLA_OK")
