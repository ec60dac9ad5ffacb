"""Visibility in core TensorFlow ops: the `xla` rasterizer backend.

Finds which triangle is seen at each pixel, like tensorflow-graphics' C++
`RasterizeTriangles` kernel (`mgc_tf.render.kernel`), with only core ops, so
it compiles with XLA (`tf.function(jit_compile=True)`), runs on GPU and TPU,
and needs no C++ compiler. It reproduces the kernel's arithmetic step by step
so that both give the same triangle on every pixel:

- the screen bounding box of each triangle, with the kernel's float
  arithmetic and its near-plane intersections for triangles that cross it;
- the unnormalised inverse of the matrix of clip (x, y, w) corners in 16.16
  fixed point (int64), including the kernel's sign flip by a *float*
  multiplier in its `none` and `front` culling modes, which rounds every
  entry to float32 (near-ties on shared edges depend on that rounding);
- the edge functions at the pixel centres, whose fixed-point values are
  precomputed here in NumPy float32 (inside `tf.function` and XLA a division
  by a constant becomes a multiplication by its reciprocal, which moves the
  centres);
- the inside test (all edge values >= 0, one > 0), the depth z = clip z /
  clip w, the near/far test, and the depth test where an equal depth keeps
  the lower triangle id.

How: triangles that provably pass no pixel of their box are dropped first
(exact integer bounds on their edge functions at the box corners: back faces
in the kernel's culling modes, slivers); every other triangle's bounding box
is cut into candidate (pixel, triangle) pairs, laid end to end over the whole
batch (no loop over images). Pass p
handles candidates [p C, (p + 1) C) for a capacity C sized from the inputs:
a scatter of each triangle's first candidate plus a cumulative sum says
which triangle owns each candidate (`tf.searchsorted` would make XLA compare
every candidate with every triangle). Each accepted candidate packs
(depth, triangle id) into one int64 whose order is depth first, then id, and
a segment minimum per pixel keeps the nearest; rejected candidates go to no
pixel at all (segment -1), not to a shared dump pixel, so GPU atomics do not
contend on it. A while loop runs as many passes as the candidates need, so
no candidate is ever dropped: the capacity bounds memory, not correctness.
"""

from typing import NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf

# The kernel's fixed point: 16 fractional bits.
_FIXED_ONE = 65536
# The kernel's `FaceCullingMode`: 0 none, 1 back, 2 front (its y axis up).
KERNEL_NONE, KERNEL_BACK, KERNEL_FRONT = 0, 1, 2
_EMPTY = np.iinfo(np.int64).max
# Default candidates per pass, per image, in units of max(H x W, F).
DEFAULT_CAPACITY_FACTOR = 2


class Visibility(NamedTuple):
  """What `visibility` returns for B images of H x W pixels.

  Attributes:
    triangle_ids: [B, H, W] int32 id of the visible triangle, 0 on background
      (as the kernel writes it; use `mask`).
    mask: [B, H, W] bool, True where a triangle is visible.
    z_buffer: [B, H, W] float32 NDC depth z / w of the visible point, in
      [-1, 1); 1 on background, as the kernel's z buffer.
    num_candidates: [] int64, the (pixel, triangle) candidates examined.
    num_passes: [] int64, the passes of `capacity` candidates that took.
  """
  triangle_ids: tf.Tensor
  mask: tf.Tensor
  z_buffer: tf.Tensor
  num_candidates: tf.Tensor
  num_passes: tf.Tensor


def default_capacity(batch_size: int, image_size: Tuple[int, int],
                     num_triangles: int) -> int:
  """Candidates per pass, sized from the inputs: 2 B max(H W, F).

  A face at 224 px makes about 2-4 candidates per visible triangle; more
  passes run when a batch needs more, so this bounds memory (about 100 bytes
  a candidate), not correctness.
  """
  height, width = image_size
  per_image = DEFAULT_CAPACITY_FACTOR * max(height * width, num_triangles, 1)
  return int(max(batch_size, 1) * per_image)


def pixel_centres_fixed(size: int) -> np.ndarray:
  """[size] int64: the kernel's fixed-point NDC pixel centres along one axis.

  The kernel computes `ToFixedPoint(((i + 0.5f) / (0.5f * size)) - 1.0f)` in
  float32 and truncates; NumPy float32 does the same arithmetic exactly.
  """
  i = np.arange(size, dtype=np.float32)
  half = np.float32(0.5) * np.float32(size)
  ndc = (i + np.float32(0.5)) / half - np.float32(1.0)
  return (ndc * np.float32(_FIXED_ONE)).astype(np.int64)


def _mul(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """a * b, rounded to float32 before any addition that follows.

  XLA (CPU and GPU) contracts a multiply feeding an add into one fused
  multiply-add, which rounds once instead of twice and moves depths by a few
  ulps off the kernel's (built without FMA), enough to flip near-ties.
  `multiply_no_nan` lowers to a select around the product, which the
  contraction does not cross; it equals a * b for the finite values used
  here (it returns 0 where b == 0 even for infinite a, which never occurs:
  barycentrics and near-plane parameters are finite).
  """
  return tf.math.multiply_no_nan(a, b)


def _to_fixed(value: tf.Tensor) -> tf.Tensor:
  # float32 times 2^16 is exact; the cast truncates towards 0 like C++.
  return tf.cast(value * float(_FIXED_ONE), tf.int64)


def _bounding_box(x, y, z, w, height: int, width: int):
  """The kernel's `ComputeTriangleBoundingBox`.

  Args:
    x, y, z, w: lists of 3 [...] float32 tensors, the corners' clip values
      (lists, not a [..., 3] tensor: on CPU, slicing or concatenating along a
      short last axis copies with a slow strided loop).
    height, width: the image size.

  Returns:
    (left, right, bottom, top) int32 [...]: pixel columns [left, right) and
    rows [bottom, top), clamped to the image.
  """
  width_f, height_f = float(width), float(height)
  visible = [tf.logical_and(w[i] > 0, z[i] >= -w[i]) for i in range(3)]
  xs, ys, ws, ok = list(x), list(y), list(w), list(visible)
  # Near-plane points of each edge from a visible corner i to a hidden one
  # j, in the kernel's argument order (the visible corner first).
  for i, j in ((0, 1), (0, 2), (1, 2), (1, 0), (2, 0), (2, 1)):
    xi, yi, zi, wi = x[i], y[i], z[i], w[i]
    xj, yj, zj, wj = x[j], y[j], z[j], w[j]
    denom = ((zi - zj) + wi) - wj
    use = tf.logical_and(
        tf.logical_and(visible[i], tf.logical_not(visible[j])),
        tf.not_equal(denom, 0.0))
    t = (zi + wi) / tf.where(use, denom, tf.ones_like(denom))
    xs.append(xi + _mul(t, xj - xi))
    ys.append(yi + _mul(t, yj - yi))
    ws.append(wi + _mul(t, wj - wi))
    ok.append(use)
  left = right = bottom = top = None
  # The kernel takes std::min/max with the running bound, which ignore NaN;
  # NaN and unused points are masked out before an element-wise min/max
  # (order-free on the remaining values, so equal to the kernel's).
  for xk, yk, wk, okk in zip(xs, ys, ws, ok):
    safe_w = tf.where(okk, wk, tf.ones_like(wk))
    px = (0.5 * (xk / safe_w + 1.0)) * width_f
    py = (0.5 * (yk / safe_w + 1.0)) * height_f
    ok_x = tf.logical_and(okk, tf.logical_not(tf.math.is_nan(px)))
    ok_y = tf.logical_and(okk, tf.logical_not(tf.math.is_nan(py)))
    lo_x = tf.where(ok_x, tf.clip_by_value(tf.floor(px), 0.0, width_f),
                    width_f)
    hi_x = tf.where(ok_x, tf.clip_by_value(tf.math.ceil(px), 0.0, width_f),
                    0.0)
    lo_y = tf.where(ok_y, tf.clip_by_value(tf.floor(py), 0.0, height_f),
                    height_f)
    hi_y = tf.where(ok_y, tf.clip_by_value(tf.math.ceil(py), 0.0, height_f),
                    0.0)
    if left is None:
      left, right, bottom, top = lo_x, hi_x, lo_y, hi_y
    else:
      left, right = tf.minimum(left, lo_x), tf.maximum(right, hi_x)
      bottom, top = tf.minimum(bottom, lo_y), tf.maximum(top, hi_y)
  return tuple(tf.cast(v, tf.int32) for v in (left, right, bottom, top))


def _edge_matrix(x, y, w, culling_mode: int):
  """The kernel's `ComputeUnnormalizedMatrixInverse`: a list of 9 int64."""
  x0, x1, x2 = (_to_fixed(v) for v in x)
  y0, y1, y2 = (_to_fixed(v) for v in y)
  w0, w1, w2 = (_to_fixed(v) for v in w)
  m = [
      y1 * w2 - w1 * y2, x2 * w1 - w2 * x1, x1 * y2 - y1 * x2,
      y2 * w0 - w2 * y0, x0 * w2 - w0 * x2, x2 * y0 - y2 * x0,
      y0 * w1 - w0 * y1, x1 * w0 - w1 * x0, x0 * y1 - y0 * x1,
  ]
  if culling_mode == KERNEL_BACK:
    return m
  if culling_mode == KERNEL_NONE:
    det = tf.cast(x0 * m[0] + x1 * m[3] + x2 * m[6], tf.float32)
    multiplier = tf.where(det < 0.0, -1.0, 1.0)
  elif culling_mode == KERNEL_FRONT:
    multiplier = tf.constant(-1.0)
  else:
    raise ValueError(f"culling_mode must be 0, 1 or 2. Received: "
                     f"culling_mode={culling_mode}")
  # `m_inv[i] *= multiplier` in C++: int64 -> float32, multiply, truncate.
  return [tf.cast(tf.cast(v, tf.float32) * multiplier, tf.int64) for v in m]


def _sees_no_pixel(m, left, right, bottom, top, height: int, width: int):
  """[T] bool: triangles that provably pass no pixel of their box.

  Exact culling before candidates are made (back faces, in the kernel's
  culling modes, and slivers whose box misses them): each edge value
  e_k = m[3k] cx + m[3k+1] cy + m[3k+2] 2^16 is affine in the pixel centre,
  so over the box's centres it peaks at a corner. A pixel is inside only if
  every e_k >= 0 and their sum is > 0; a triangle with some e_k < 0 at all
  four corners, or a sum <= 0 at all four, sees no pixel. Integer
  arithmetic on the very matrix the candidates use, so the test is exact; it
  applies only where |m| < 2^43, which keeps these int64 bounds (at most
  9 2^59) from overflowing (the kernel's values do not overflow there either).

  Args:
    m: list of 9 [T] int64, the edge matrices (`_edge_matrix`), flat.
    left, right, bottom, top: [T] int32 boxes (`_bounding_box`), flat.
    height, width: the image size.

  Returns:
    [T] bool, True for triangles that can be dropped.
  """
  centres_x = tf.constant(np.append(pixel_centres_fixed(width), 0))
  centres_y = tf.constant(np.append(pixel_centres_fixed(height), 0))
  # Empty boxes may have right <= left; they are dropped anyway.
  x_lo = tf.gather(centres_x, left)
  x_hi = tf.gather(centres_x, tf.maximum(right - 1, 0))
  y_lo = tf.gather(centres_y, bottom)
  y_hi = tf.gather(centres_y, tf.maximum(top - 1, 0))

  def peak(a, b, c):
    return (tf.maximum(a * x_lo, a * x_hi) + tf.maximum(b * y_lo, b * y_hi) +
            c * _FIXED_ONE)

  small = None
  for v in m:
    ok = tf.logical_and(v > -2**43, v < 2**43)
    small = ok if small is None else tf.logical_and(small, ok)
  empty = peak(m[0] + m[3] + m[6], m[1] + m[4] + m[7],
               m[2] + m[5] + m[8]) <= 0
  for k in range(3):
    empty = tf.logical_or(empty, peak(m[3 * k], m[3 * k + 1], m[3 * k + 2]) < 0)
  return tf.logical_and(small, empty)


def _order_key(z: tf.Tensor) -> tf.Tensor:
  """float32 -> int32 with the same order (-0 and +0 equal, as in C++)."""
  z = tf.where(tf.equal(z, 0.0), tf.zeros_like(z), z)
  bits = tf.bitcast(z, tf.int32)
  return tf.where(bits < 0, tf.bitwise.bitwise_xor(bits, 0x7FFFFFFF), bits)


def _from_order_key(key: tf.Tensor) -> tf.Tensor:
  bits = tf.where(key < 0, tf.bitwise.bitwise_xor(key, 0x7FFFFFFF), key)
  return tf.bitcast(bits, tf.float32)


def visibility(clip: tf.Tensor,
               triangles: tf.Tensor,
               image_size: Tuple[int, int],
               culling_mode: int = KERNEL_FRONT,
               capacity: Optional[int] = None,
               name: str = "xla_visibility") -> Visibility:
  """Which triangle each pixel sees, as the C++ kernel decides it.

  Args:
    clip: [B, V, 4] float32 clip-space vertices (x, y, z, w); NDC x and y in
      [-1, 1] span the image, y growing with rows. B may be dynamic.
    triangles: [F, 3] int32 vertex ids.
    image_size: (height, width) in pixels, static.
    culling_mode: the kernel's `face_culling_mode` (0 none, 1 back, 2 front;
      `rasterizer.kernel_culling_mode` maps ours to it).
    capacity: candidate (pixel, triangle) pairs per pass; None sizes it from
      the inputs (`default_capacity`). More passes run when needed.
    name: op name scope.

  Returns:
    A `Visibility` tuple; no gradient flows through it.
  """
  with tf.name_scope(name):
    clip = tf.stop_gradient(tf.convert_to_tensor(clip, tf.float32))
    triangles = tf.convert_to_tensor(triangles, tf.int32)
    if clip.shape.rank != 3 or clip.shape[-1] != 4:
      raise ValueError(f"clip must be [B, V, 4]. Received: "
                       f"clip.shape={clip.shape}")
    if triangles.shape.rank != 2 or triangles.shape[-1] != 3:
      raise ValueError(f"triangles must be [F, 3]. Received: "
                       f"triangles.shape={triangles.shape}")
    height, width = int(image_size[0]), int(image_size[1])
    if height <= 0 or width <= 0:
      raise ValueError(f"image_size must be positive. Received: "
                       f"image_size={image_size}")
    if capacity is None:
      capacity = default_capacity(clip.shape[0] or 1, (height, width),
                                  triangles.shape[0] or 1)
    capacity = int(capacity)
    if capacity <= 0:
      raise ValueError(f"capacity must be positive. Received: "
                       f"capacity={capacity}")
    batch = tf.shape(clip)[0]
    num_faces = tf.shape(triangles)[0]
    num_pixels = height * width
    if num_pixels >= 2**31:
      raise ValueError(f"image_size too large for int32 pixel ids. Received: "
                       f"image_size={image_size}")

    # Triangle setup, [B, F, ...].
    # Coordinate-major [4, B, V], then one [4, B, F] gather per corner, so
    # every (coordinate, corner) is a contiguous [B, F] slice.
    clip_t = tf.transpose(clip, [2, 0, 1])
    per_corner = [tf.gather(clip_t, triangles[:, c], axis=2)
                  for c in range(3)]
    x, y, z, w = ([per_corner[c][k] for c in range(3)] for k in range(4))
    left, right, bottom, top = _bounding_box(x, y, z, w, height, width)
    box_w, box_h = right - left, top - bottom
    valid = tf.logical_and(box_w > 0, box_h > 0)
    m = [tf.reshape(v, [-1]) for v in _edge_matrix(x, y, w, culling_mode)]
    left, right, bottom, top, box_w = (
        tf.reshape(v, [-1]) for v in (left, right, bottom, top, box_w))
    valid = tf.logical_and(tf.reshape(valid, [-1]),
                           tf.logical_not(_sees_no_pixel(
                               m, left, right, bottom, top, height, width)))
    areas = tf.where(valid, tf.cast(box_w, tf.int64) *
                     tf.cast(tf.reshape(box_h, [-1]), tf.int64),
                     tf.zeros([], tf.int64))

    areas = tf.reshape(areas, [-1])  # [T], T = B F
    ends = tf.cumsum(areas)
    starts = ends - areas
    total = tf.reduce_sum(areas)
    num_triangles_flat = tf.shape(areas)[0]
    # Pixel ids fit int32 when the batch is known to be small enough; int32
    # halves the memory traffic of every per-candidate pixel op.
    static_batch = clip.shape[0]
    if static_batch is not None and static_batch * num_pixels < 2**31:
      pixel_dtype = tf.int32
    else:
      pixel_dtype = tf.int64
    # Per-triangle columns, each gathered on its own: one [T, 14] gather
    # copied 14 int64 per candidate and slicing its columns copied them again.
    edge_x = [m[3 * k] for k in range(3)]
    edge_y = [m[3 * k + 1] for k in range(3)]
    # m[2] * (the fixed-point 1 of the pixel's w) once per triangle instead of
    # once per candidate; int64 products are exact, as in the kernel.
    edge_c = [m[3 * k + 2] * _FIXED_ONE for k in range(3)]
    left_t, bottom_t = left, bottom
    box_w_t = tf.maximum(box_w, 1)
    depth_cols = [tf.reshape(v, [-1]) for v in z + w]  # z0 z1 z2 w0 w1 w2
    # One extra centre per axis: a slot past the last candidate reads its
    # (possibly empty) owner's box origin, which may sit at column `width` or
    # row `height`; it is never accepted, and the padding spares clipping.
    centres_x = tf.constant(np.append(pixel_centres_fixed(width), 0))
    centres_y = tf.constant(np.append(pixel_centres_fixed(height), 0))
    ones = tf.ones_like(starts, tf.int32)
    slots = tf.range(capacity, dtype=tf.int32)
    num_segments = batch * num_pixels
    int32_max = np.iinfo(np.int32).max

    def one_pass(index, best):
      def take(column, index):
        # gather_nd with a trailing index axis: on CPU, TensorFlow's 1-D
        # `tf.gather` runs about twice as long per element.
        return tf.gather_nd(column, index)

      first = index * capacity
      # Which triangle owns each slot: count the triangles that start at or
      # before it. Those that start before the pass count at slot 0, those
      # after it nowhere.
      offset = first - starts  # [T]: slot 0 of the pass in each box
      mark_at = tf.where(offset > 0, tf.zeros_like(offset), -offset)
      mark_at = tf.where(mark_at >= capacity, -tf.ones_like(mark_at), mark_at)
      marks = tf.math.unsorted_segment_sum(ones, tf.cast(mark_at, tf.int32),
                                           capacity)
      owner = tf.cumsum(marks) - 1  # [C] int32
      owner = tf.clip_by_value(owner, 0, num_triangles_flat - 1)
      owner_nd = owner[:, tf.newaxis]
      remaining = tf.cast(tf.minimum(total - first, capacity), tf.int32)
      in_range = slots < remaining
      # The candidate's index in its owner's box, in int32: it is below the
      # box area (<= H W) for candidates in range; the others read 0, the
      # box origin (offsets of boxes outside the pass are clamped, unused).
      offset32 = tf.cast(tf.clip_by_value(offset, -int32_max, int32_max),
                         tf.int32)
      local = slots + take(offset32, owner_nd)
      local = tf.where(in_range, local, tf.zeros_like(local))
      box_width = take(box_w_t, owner_nd)
      row = local // box_width
      col = local - row * box_width
      ix = take(left_t, owner_nd) + col
      iy = take(bottom_t, owner_nd) + row
      cx = tf.gather(centres_x, ix)
      cy = tf.gather(centres_y, iy)
      edges = [take(edge_x[k], owner_nd) * cx +
               take(edge_y[k], owner_nd) * cy + take(edge_c[k], owner_nd)
               for k in range(3)]
      # All three >= 0 and one > 0: no sign bit in their OR, and not all 0.
      inside = tf.logical_and(
          tf.bitwise.bitwise_or(tf.bitwise.bitwise_or(edges[0], edges[1]),
                                edges[2]) > 0, in_range)
      one_over_w = tf.cast(edges[0] + edges[1] + edges[2], tf.float32)
      safe = tf.where(inside, one_over_w, tf.ones_like(one_over_w))
      b = [tf.cast(e, tf.float32) / safe for e in edges]
      t = [take(col_k, owner_nd) for col_k in depth_cols]  # z0 z1 z2 w0 w1 w2
      clip_z = (_mul(b[0], t[0]) + _mul(b[1], t[1])) + _mul(b[2], t[2])
      clip_w = (_mul(b[0], t[3]) + _mul(b[1], t[4])) + _mul(b[2], t[5])
      depth = clip_z / clip_w
      # The kernel skips z < -1 and z > 1, then inserts only if z is below
      # the cleared buffer's 1 (so NaN never enters).
      accept = tf.logical_and(
          inside, tf.logical_and(depth >= -1.0, depth < 1.0))
      # Image and face from the flat triangle id: int32 arithmetic is
      # cheaper than two more gathers.
      image = owner // num_faces
      face = owner - image * num_faces
      key = tf.bitwise.bitwise_or(
          tf.bitwise.left_shift(tf.cast(_order_key(depth), tf.int64), 32),
          tf.cast(face, tf.int64))
      pixel = (tf.cast(image, pixel_dtype) * num_pixels +
               tf.cast(iy * width + ix, pixel_dtype))
      segment = tf.where(accept, pixel, -tf.ones_like(pixel))
      nearest = tf.math.unsorted_segment_min(key, segment, num_segments)
      return index + 1, tf.minimum(best, nearest)

    num_passes = (total + capacity - 1) // capacity
    best = tf.fill(tf.reshape(num_segments, [1]), tf.constant(_EMPTY, tf.int64))
    _, best = tf.while_loop(
        lambda index, _: index < num_passes, one_pass,
        (tf.zeros([], tf.int64), best),
        shape_invariants=(tf.TensorShape([]), best.shape),
        parallel_iterations=1)
    best = tf.reshape(best, [batch, height, width])
    mask = tf.not_equal(best, _EMPTY)
    ids = tf.cast(tf.bitwise.bitwise_and(best, 0xFFFFFFFF), tf.int32)
    ids = tf.where(mask, ids, tf.zeros_like(ids))
    depth_key = tf.cast(tf.bitwise.right_shift(best, 32), tf.int32)
    z_buffer = tf.where(mask, _from_order_key(depth_key),
                        tf.ones_like(ids, tf.float32))
    if clip.shape[0] is not None:
      shape = [clip.shape[0], height, width]
      ids, mask, z_buffer = (tf.ensure_shape(t, shape)
                             for t in (ids, mask, z_buffer))
    return Visibility(triangle_ids=ids, mask=mask, z_buffer=z_buffer,
                      num_candidates=total, num_passes=num_passes)
