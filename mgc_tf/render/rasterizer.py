"""Rasterization of camera-space triangle meshes with differentiable barycentrics.

Visibility (which triangle covers each pixel) comes from one of two backends
(`Backend`), which give the same triangle on every pixel and have no gradient:
`kernel`, tensorflow-graphics' CPU `RasterizeTriangles` kernel, compiled by
`mgc_tf.render.kernel` on first use; or `xla`, the same arithmetic in core
TensorFlow ops (`mgc_tf.render.xla_visibility`), which XLA compiles for CPU,
GPU and TPU and which needs no C++ compiler. `auto` picks xla on a GPU or
TPU, else the kernel (faster on CPU), else xla when the kernel cannot be
built. The barycentric coordinates are then recomputed differentiably from
the clip-space vertices with `tensorflow_graphics.rendering.barycentrics`, so
gradients reach vertex positions through everything interpolated with them.

Camera: pinhole with OpenCV axes (x right, y down, z forward) and OpenCV pixel
coordinates, where the centre of the top-left pixel is (0, 0). The kernel
samples pixel centres at NDC ((ix + 0.5) / (W / 2) - 1, (iy + 0.5) / (H / 2) - 1),
so `projection_matrix` shifts by half a pixel to make column ix sample u = ix.
"""

import contextlib
import enum
import logging
from typing import NamedTuple, Optional, Tuple, Union

import tensorflow as tf
from tensorflow_graphics.rendering import barycentrics as tfg_barycentrics
from tensorflow_graphics.rendering import framebuffer as tfg_framebuffer

from mgc_tf.render import kernel
from mgc_tf.render import xla_visibility

DEFAULT_NEAR_MM = 10.0
DEFAULT_FAR_MM = 20000.0


class FaceCulling(enum.Enum):
  """Which triangles to drop.

  Front faces are counter-clockwise as seen on the displayed image.
  """
  NONE = "none"
  BACK = "back"
  FRONT = "front"


# The kernel's FaceCullingMode values (0 none, 1 back, 2 front) assume NDC y
# pointing up; ours points down like image rows, which mirrors the winding.
class Barycentrics(enum.Enum):
  """How differentiable barycentrics are computed (same maths, same values).

  PIXEL evaluates tensorflow-graphics' formula on each pixel's visible
  triangle (fast: cost grows with pixels). TFG calls tensorflow-graphics'
  `differentiable_barycentrics`, which builds a matrix for every triangle.
  """
  PIXEL = "pixel"
  TFG = "tfg"


_KERNEL_CULLING_MODE = {FaceCulling.NONE: 0, FaceCulling.BACK: 2,
                        FaceCulling.FRONT: 1}


class Backend(str, enum.Enum):
  """Which implementation finds the visible triangle (same pixels)."""
  AUTO = "auto"
  KERNEL = "kernel"
  XLA = "xla"


_default_backend = Backend.AUTO
_warned_fallback = False


def set_default_backend(backend: Union[Backend, str]) -> Backend:
  """Sets the backend `rasterize` uses when given none; returns the old one.

  Entry points call this once from their `--rasterizer` flag (the trainer
  from `TrainConfig.rasterizer`), so that losses and evaluators that render
  need no extra argument. Library code passes `backend=` instead.
  """
  global _default_backend
  previous = _default_backend
  _default_backend = parse_backend(backend)
  return previous


def get_default_backend() -> Backend:
  return _default_backend


@contextlib.contextmanager
def default_backend(backend: Union[Backend, str]):
  """Context manager: `set_default_backend` within, restored after."""
  previous = set_default_backend(backend)
  try:
    yield
  finally:
    set_default_backend(previous)


def parse_backend(backend: Union[Backend, str]) -> Backend:
  """`Backend` from its name, with one clear error listing the choices."""
  try:
    return Backend(backend)
  except ValueError:
    choices = ", ".join(b.value for b in Backend)
    raise ValueError(f"Unknown rasterizer backend {backend!r}; choose one of "
                     f"{choices}.") from None


def resolve_backend(backend: Optional[Union[Backend, str]] = None) -> Backend:
  """`kernel` or `xla`: the given backend (default: the process default),
  with `auto` resolved.

  auto: xla when TensorFlow sees a GPU or TPU (the kernel is a CPU op that
  runs image by image); on CPU the kernel, which is faster there
  (benchmarks/render.py), unless it cannot be built (no compiler), then xla.
  """
  global _warned_fallback
  backend = parse_backend(_default_backend if backend is None else backend)
  if backend != Backend.AUTO:
    return backend
  if (tf.config.list_logical_devices("GPU") or
      tf.config.list_logical_devices("TPU")):
    return Backend.XLA
  try:
    tf.autograph.experimental.do_not_convert(kernel.load_rasterizer_module)()
  except kernel.KernelBuildError as e:
    if not _warned_fallback:
      logging.warning("mgc_tf: the rasterizer kernel is unavailable, so "
                      "--rasterizer=auto uses the xla backend (slower on "
                      "CPU). Reason: %s", str(e).splitlines()[0])
      _warned_fallback = True
    return Backend.XLA
  return Backend.KERNEL


class Rasterized(NamedTuple):
  """What `rasterize` returns, for a batch of B images of H x W pixels.

  Attributes:
    triangle_ids: [B, H, W] int32, id of the visible triangle, -1 on background.
    vertex_ids: [B, H, W, 3] int32, its three vertex ids (0 on background).
    mask: [B, H, W, 1] float32, 1 where a triangle is visible.
    barycentrics: [B, H, W, 3] float32, perspective-correct barycentric
      coordinates of the pixel centre in the visible triangle (0 on
      background), differentiable with respect to the vertices.
  """
  triangle_ids: tf.Tensor
  vertex_ids: tf.Tensor
  mask: tf.Tensor
  barycentrics: tf.Tensor


def projection_matrix(intrinsics: tf.Tensor,
                      image_size: Tuple[int, int],
                      near: float = DEFAULT_NEAR_MM,
                      far: float = DEFAULT_FAR_MM) -> tf.Tensor:
  """OpenCV intrinsics -> 4x4 matrices mapping camera points to clip space.

  Args:
    intrinsics: [B, 3, 3] pinhole matrices K (pixels).
    image_size: (height, width) in pixels.
    near, far: clipping distances along z, same units as the vertices.

  Returns:
    [B, 4, 4] float32. Clip w is the camera z; after the division x, y fall in
    [-1, 1] across the image with y growing downwards like image rows, and z in
    [-1, 1] between near and far.
  """
  height, width = image_size
  k = tf.convert_to_tensor(intrinsics, tf.float32)
  fx, fy = k[:, 0, 0], k[:, 1, 1]
  skew = k[:, 0, 1]
  # +0.5: OpenCV puts pixel centres at integers, the kernel at half-integers.
  cx, cy = k[:, 0, 2] + 0.5, k[:, 1, 2] + 0.5
  zeros, ones = tf.zeros_like(fx), tf.ones_like(fx)
  a = (far + near) / (far - near) * ones
  b = -2.0 * far * near / (far - near) * ones
  rows = [
      [2.0 * fx / width, 2.0 * skew / width, 2.0 * cx / width - 1.0, zeros],
      [zeros, 2.0 * fy / height, 2.0 * cy / height - 1.0, zeros],
      [zeros, zeros, a, b],
      [zeros, zeros, ones, zeros],
  ]
  return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)


def clip_space_vertices(vertices: tf.Tensor,
                        intrinsics: tf.Tensor,
                        image_size: Tuple[int, int],
                        near: float = DEFAULT_NEAR_MM,
                        far: float = DEFAULT_FAR_MM) -> tf.Tensor:
  """[B, V, 3] camera points -> [B, V, 4] clip coordinates the kernel can take.

  The kernel works in 16.16 fixed point and multiplies pairs of clip
  coordinates: with w in mm (~1000) those products overflow. Clip space is
  homogeneous, so dividing each image's clip vectors by their largest w
  changes no pixel and keeps the products below 1.
  """
  matrices = projection_matrix(intrinsics, image_size, near, far)
  ones = tf.ones_like(vertices[..., :1])
  clip = tf.matmul(tf.concat([vertices, ones], -1), matrices,
                   transpose_b=True)  # [B, V, 4]
  scale = tf.reduce_max(tf.abs(clip[..., 3:]), axis=1, keepdims=True)
  return clip / tf.stop_gradient(tf.maximum(scale, 1e-12))


def kernel_culling_mode(culling: FaceCulling) -> int:
  """The kernel's `face_culling_mode` attribute for our culling choice."""
  return _KERNEL_CULLING_MODE[FaceCulling(culling)]


def rasterize(vertices: tf.Tensor,
              triangles: tf.Tensor,
              intrinsics: tf.Tensor,
              image_size: Tuple[int, int],
              culling: FaceCulling = FaceCulling.BACK,
              near: float = DEFAULT_NEAR_MM,
              far: float = DEFAULT_FAR_MM,
              barycentrics: Barycentrics = Barycentrics.PIXEL,
              backend: Optional[Union[Backend, str]] = None,
              name: str = "rasterize") -> Rasterized:
  """Finds the visible triangle per pixel and its barycentric coordinates.

  Args:
    vertices: [B, V, 3] float32 camera-space points (OpenCV axes, e.g. mm).
      B must be static with the kernel backend (it runs once per image).
    triangles: [F, 3] int32 vertex ids, counter-clockwise seen from the side
      that faces the camera (the other side is culled with `BACK`).
    intrinsics: [B, 3, 3] float32 pinhole matrices, pixels.
    image_size: (height, width) in pixels.
    culling: which triangles to drop.
    near, far: clipping distances along z.
    barycentrics: which implementation computes them (see `Barycentrics`).
    backend: visibility backend (see `Backend`); None uses the process
      default (`set_default_backend`, initially auto).
    name: op name scope.

  Returns:
    A `Rasterized` tuple.
  """
  with tf.name_scope(name):
    vertices = tf.convert_to_tensor(vertices, tf.float32)
    triangles = tf.convert_to_tensor(triangles, tf.int32)
    if vertices.shape.rank != 3 or vertices.shape[-1] != 3:
      raise ValueError(f"vertices must be [B, V, 3]. Received: "
                       f"vertices.shape={vertices.shape}")
    if triangles.shape.rank != 2 or triangles.shape[-1] != 3:
      raise ValueError(f"triangles must be [F, 3]. Received: "
                       f"triangles.shape={triangles.shape}")
    height, width = int(image_size[0]), int(image_size[1])
    clip = clip_space_vertices(vertices, intrinsics, (height, width), near,
                               far)
    mode = kernel_culling_mode(culling)
    if resolve_backend(backend) == Backend.XLA:
      visible = xla_visibility.visibility(clip, triangles, (height, width),
                                          mode)
      triangle_ids = visible.triangle_ids
      mask = tf.cast(visible.mask, tf.float32)[..., tf.newaxis]
    else:
      triangle_ids, mask = _kernel_visibility(clip, triangles,
                                              (height, width), mode)
    vertex_ids = tf.gather(triangles, triangle_ids)  # [B, H, W, 3]

    if Barycentrics(barycentrics) == Barycentrics.TFG:
      bary = _tfg_barycentrics(clip, triangles, triangle_ids, vertex_ids, mask)
    else:
      bary = pixel_barycentrics(clip, vertex_ids, mask, (height, width))
    triangle_ids = tf.where(mask[..., 0] > 0, triangle_ids, -1)
    return Rasterized(triangle_ids=triangle_ids, vertex_ids=vertex_ids,
                      mask=mask, barycentrics=bary)


def _kernel_visibility(clip, triangles, image_size, mode):
  """Triangle ids [B, H, W] (0 on background) and mask [B, H, W, 1]."""
  height, width = image_size
  batch_size = clip.shape[0]
  if batch_size is None:
    raise ValueError(
        "The batch size must be static (the CPU kernel loops over images); "
        "use drop_remainder=True in tf.data, or the xla backend. Received: "
        f"vertices.shape={clip.shape[:2]}")
  # Plain Python (file checks, compiler, load_op_library): keep AutoGraph
  # from trying to convert it when the renderer is traced.
  ops = tf.autograph.experimental.do_not_convert(
      kernel.load_rasterizer_module)()
  ids, masks = [], []
  clip_const = tf.stop_gradient(clip)
  for index in range(batch_size):
    _, triangle_ids, z_buffer = ops.rasterize_triangles(
        clip_const[index], triangles, width, height, 1, mode)
    ids.append(tf.ensure_shape(triangle_ids[0], [height, width]))
    z_buffer = tf.ensure_shape(z_buffer[0], [height, width])
    masks.append(tf.not_equal(z_buffer, 1.0))
  triangle_ids = tf.stack(ids)  # [B, H, W]
  mask = tf.cast(tf.stack(masks), tf.float32)[..., tf.newaxis]
  return triangle_ids, mask


def pixel_barycentrics(clip: tf.Tensor, vertex_ids: tf.Tensor, mask: tf.Tensor,
                       image_size: Tuple[int, int]) -> tf.Tensor:
  """Perspective-correct barycentrics of each pixel centre in its triangle.

  The method of tensorflow-graphics' `differentiable_barycentrics` (Olano and
  Greer's 2D homogeneous rasterization), evaluated per pixel on the visible
  triangle only: with the corners' clip (x, y, w) as the columns c0, c1, c2
  of M, b is proportional to M^-1 p = adj(M) p / det(M) for the pixel's NDC
  point p = (px, py, 1); the rows of adj(M) are c1 x c2, c2 x c0, c0 x c1,
  and normalising b to sum 1 cancels det(M). Working per pixel rather than per
  triangle keeps forward and backward proportional to H x W, not to F.

  Args:
    clip: [B, V, 4] clip-space vertices.
    vertex_ids: [B, H, W, 3] corner ids of the visible triangle.
    mask: [B, H, W, 1] 1 where a triangle is visible.
    image_size: (height, width).

  Returns:
    [B, H, W, 3] barycentrics, 0 on background; differentiable w.r.t. `clip`.
  """
  height, width = image_size
  xyw = tf.gather(clip, [0, 1, 3], axis=-1)  # [B, V, 3]
  corners = tf.gather(xyw, vertex_ids, batch_dims=1)  # [B, H, W, 3, 3]
  # unstack, not three slices: its gradient is one stack, where each
  # slice's gradient writes a zero tensor of the corners' full size.
  c0, c1, c2 = tf.unstack(corners, axis=-2)
  px = (2.0 * tf.range(width, dtype=tf.float32) + 1.0) / width - 1.0
  py = (2.0 * tf.range(height, dtype=tf.float32) + 1.0) / height - 1.0
  px, py = tf.meshgrid(px, py)  # [H, W]
  point = tf.stack([px, py, tf.ones_like(px)], axis=-1)  # [H, W, 3]
  q = tf.stack([
      tf.reduce_sum(tf.linalg.cross(c1, c2) * point, -1),
      tf.reduce_sum(tf.linalg.cross(c2, c0) * point, -1),
      tf.reduce_sum(tf.linalg.cross(c0, c1) * point, -1),
  ], axis=-1)  # [B, H, W, 3]
  total = tf.reduce_sum(q, axis=-1, keepdims=True)
  visible = tf.logical_and(mask > 0, tf.abs(total) > 0)
  # Safe denominator: background pixels see a degenerate "triangle".
  total = tf.where(visible, total, tf.ones_like(total))
  return tf.where(visible, q / total, tf.zeros_like(q))


def _tfg_barycentrics(clip, triangles, triangle_ids, vertex_ids, mask):
  """tensorflow-graphics' `differentiable_barycentrics` (per-triangle form)."""
  # Single-layer framebuffer without the layer axis: [B, H, W, C].
  framebuffer = tfg_framebuffer.Framebuffer(
      foreground_mask=mask,
      triangle_id=triangle_ids[..., tf.newaxis],
      vertex_ids=vertex_ids,
      barycentrics=tfg_framebuffer.RasterizedAttribute(
          value=tf.zeros_like(vertex_ids, tf.float32), d_dx=None, d_dy=None))
  framebuffer = tfg_barycentrics.differentiable_barycentrics(
      framebuffer, clip, triangles)
  return framebuffer.barycentrics.value


def interpolate(attributes: tf.Tensor, rasterized: Rasterized) -> tf.Tensor:
  """Interpolates per-vertex attributes at every pixel.

  Args:
    attributes: [B, V, C] float32 per-vertex values.
    rasterized: the output of `rasterize` for the same vertices.

  Returns:
    [B, H, W, C] float32, 0 on background.
  """
  corner_values = tf.gather(attributes, rasterized.vertex_ids, batch_dims=1)
  # A broadcast product and sum over the 3 corners (an einsum over so short
  # an axis took twice as long, forward and backward, on the CPU).
  return tf.reduce_sum(
      rasterized.barycentrics[..., tf.newaxis] * corner_values, axis=-2)
