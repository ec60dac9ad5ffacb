"""Covisible maps: target pixels whose surface is also seen by a source view.

MGCNet section 3.4 and DESIGN.md section 5: a vertex is *seen* in a view when
it is a corner of a triangle visible in that view's render (its id appears in
the `triangle_ids` buffer); *covisible* vertices are seen in both the target
and the source render; *covisible triangles* are all triangles with at least
one covisible corner (the covisible vertices dilated to the triangles around
them); and the covisible map is C(p) = 1 where the target's visible triangle
at pixel p is covisible, else 0 (background included).

Everything is integer bookkeeping with scatters and gathers, so the cost is
O(B (H W + F)) and no [B, H W, F] or [B, V, M] tensor is built. There is no
gradient through C (it is piecewise constant in the geometry).

Shapes: B batch, H x W the target render, H_s x W_s the source render,
V vertices, F triangles.
"""

import tensorflow as tf


def visible_triangles(triangle_ids: tf.Tensor,
                      num_triangles: int,
                      name: str = "visible_triangles") -> tf.Tensor:
  """Which triangles cover at least one pixel of a render.

  Args:
    triangle_ids: [B, H, W] int32 visible triangle per pixel, -1 on
      background (`RenderOutput.triangle_ids`).
    num_triangles: F, the number of triangles of the mesh.
    name: name scope of the ops.

  Returns:
    [B, F] bool, True for the triangles that cover a pixel.
  """
  with tf.name_scope(name):
    ids = tf.cast(triangle_ids, tf.int32)
    batch = tf.shape(ids)[0]
    ids = tf.reshape(ids, tf.stack([batch, -1]))  # [B, HW]
    # Background (and any out-of-range id) goes to an extra segment F.
    in_range = tf.logical_and(ids >= 0, ids < num_triangles)
    ids = tf.where(in_range, ids, num_triangles)
    segments = ids + (num_triangles + 1) * tf.range(batch)[:, tf.newaxis]
    segments = tf.reshape(segments, [-1])
    counts = tf.math.unsorted_segment_sum(
        tf.ones_like(segments), segments, batch * (num_triangles + 1))
    counts = tf.reshape(counts, tf.stack([batch, num_triangles + 1]))
    return counts[:, :num_triangles] > 0


def triangles_to_vertices(triangle_flags: tf.Tensor,
                          triangles: tf.Tensor,
                          num_vertices: int,
                          name: str = "triangles_to_vertices") -> tf.Tensor:
  """Flags the vertices that are a corner of at least one flagged triangle.

  Args:
    triangle_flags: [B, F] bool.
    triangles: [F, 3] int32 vertex ids.
    num_vertices: V.
    name: name scope of the ops.

  Returns:
    [B, V] bool.
  """
  with tf.name_scope(name):
    triangles = tf.cast(triangles, tf.int32)
    flags = tf.cast(triangle_flags, tf.int32)  # [B, F]
    corners = tf.repeat(tf.transpose(flags), 3, axis=0)  # [3F, B]
    per_vertex = tf.math.unsorted_segment_max(
        corners, tf.reshape(triangles, [-1]), num_vertices)  # [V, B]
    # Vertices in no triangle get the lowest int32: not flagged.
    return tf.transpose(per_vertex) > 0


def vertices_to_triangles(vertex_flags: tf.Tensor,
                          triangles: tf.Tensor,
                          name: str = "vertices_to_triangles") -> tf.Tensor:
  """Flags the triangles with at least one flagged corner.

  Args:
    vertex_flags: [B, V] bool.
    triangles: [F, 3] int32 vertex ids.
    name: name scope of the ops.

  Returns:
    [B, F] bool.
  """
  with tf.name_scope(name):
    corners = tf.gather(vertex_flags, tf.cast(triangles, tf.int32),
                        axis=1)  # [B, F, 3]
    return tf.reduce_any(corners, axis=-1)


def covisible_triangles(target_triangle_ids: tf.Tensor,
                        source_triangle_ids: tf.Tensor,
                        triangles: tf.Tensor,
                        num_vertices: int,
                        name: str = "covisible_triangles") -> tf.Tensor:
  """Triangles adjacent to a vertex seen in both the target and the source.

  Args:
    target_triangle_ids: [B, H, W] int32, -1 on background.
    source_triangle_ids: [B, H_s, W_s] int32, -1 on background.
    triangles: [F, 3] int32 vertex ids of the mesh both views render.
    num_vertices: V.
    name: name scope of the ops.

  Returns:
    [B, F] bool.
  """
  with tf.name_scope(name):
    triangles = tf.convert_to_tensor(triangles, tf.int32)
    num_triangles = triangles.shape[0]
    if num_triangles is None:
      raise ValueError(f"`triangles` must have a static shape [F, 3]. "
                       f"Received: triangles.shape={triangles.shape}")
    seen = []
    for ids in (target_triangle_ids, source_triangle_ids):
      flags = visible_triangles(ids, num_triangles)
      seen.append(triangles_to_vertices(flags, triangles, num_vertices))
    covisible_vertices = tf.logical_and(seen[0], seen[1])
    return vertices_to_triangles(covisible_vertices, triangles)


def covisible_map(target_triangle_ids: tf.Tensor,
                  source_triangle_ids: tf.Tensor,
                  triangles: tf.Tensor,
                  num_vertices: int,
                  name: str = "covisible_map") -> tf.Tensor:
  """The covisible map C of a (target, source) pair of renders of one mesh.

  C(p) = 1 where the target's visible triangle at p has a corner that is seen
  in both renders (see the module docstring), 0 elsewhere and on background.
  Pixels whose synthesized coordinates fall outside the source image are NOT
  removed here: multiply by `SynthesizedView.valid`.

  Args:
    target_triangle_ids: [B, H, W] int32 triangle ids of the target render,
      -1 on background.
    source_triangle_ids: [B, H_s, W_s] int32 triangle ids of the source
      render, -1 on background.
    triangles: [F, 3] int32 vertex ids (static F), e.g. `FaceModel.triangles`.
    num_vertices: V, the number of mesh vertices.
    name: name scope of the ops.

  Returns:
    [B, H, W, 1] float32 in {0, 1}, without gradient.
  """
  with tf.name_scope(name):
    target_ids = tf.cast(target_triangle_ids, tf.int32)
    if target_ids.shape.rank is not None and target_ids.shape.rank != 3:
      raise ValueError(f"`target_triangle_ids` must have shape [B, H, W]. "
                       f"Received: shape={target_triangle_ids.shape}")
    source_ids = tf.cast(source_triangle_ids, tf.int32)
    if source_ids.shape.rank is not None and source_ids.shape.rank != 3:
      raise ValueError(f"`source_triangle_ids` must have shape [B, H, W]. "
                       f"Received: shape={source_triangle_ids.shape}")
    flags = covisible_triangles(target_ids, source_ids, triangles,
                                num_vertices)  # [B, F]
    num_triangles = flags.shape[-1]
    # Extra column F (always False) for background pixels.
    padded = tf.pad(flags, [[0, 0], [0, 1]])
    in_range = tf.logical_and(target_ids >= 0, target_ids < num_triangles)
    pixel_ids = tf.where(in_range, target_ids, num_triangles)
    covisible = tf.gather(padded, pixel_ids, batch_dims=1)  # [B, H, W]
    return tf.stop_gradient(tf.cast(covisible, tf.float32)[..., tf.newaxis])
