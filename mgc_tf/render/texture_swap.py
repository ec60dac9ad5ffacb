"""Visible texture swapping (PGN, Liu et al. section 3.3, eqs. 5-6).

Two views of one person are reconstructed as meshes with the same vertex
semantics. Each view's *texture* is its image sampled at its projected
vertices (no albedo, no lighting: `sample_vertex_colors`). A vertex is
*visible* in a view when it is a corner of a triangle whose normal faces the
camera (`facing_vertices`, eq. 5's M_i; the paper's "n_z > 0" for a camera
looking along -z; ours looks along +z, so a triangle faces the camera when
n . centroid < 0). The common visibility M12 = M1 * M2 (eq. 5), and the
swapped texture C_1->2 = C1 M12 + C2 (1 - M12) (eq. 6) is rendered with view
2's geometry over image 2 (`swap_render`): where the texture came from view
1, a correct geometry reproduces image 2 up to illumination change.

Shapes: B batch, V vertices, F triangles, H x W the crop; vertices in camera
space (OpenCV axes), mm; images RGB in [0, 1].
"""

from typing import NamedTuple

import tensorflow as tf

from mgc_tf import geometry
from mgc_tf.facemodel import shading
from mgc_tf.render import covisibility
from mgc_tf.render import renderer
from mgc_tf.render import sampling


def facing_vertices(vertices: tf.Tensor, triangles: tf.Tensor,
                    name: str = "facing_vertices") -> tf.Tensor:
  """Eq. 5's M: [B, V] float32, 1 on corners of camera-facing triangles.

  Args:
    vertices: [B, V, 3] camera-space vertices, mm.
    triangles: [F, 3] int32, counter-clockwise seen from the front.

  Returns:
    [B, V] float32 in {0, 1}; no gradient (piecewise constant).
  """
  with tf.name_scope(name):
    vertices = tf.stop_gradient(tf.convert_to_tensor(vertices, tf.float32))
    normals = shading.face_normals(vertices, triangles)
    centroids = tf.reduce_mean(tf.gather(vertices, triangles, axis=1),
                               axis=2)
    facing = tf.reduce_sum(normals * centroids, axis=-1) < 0.0  # [B, F]
    flags = covisibility.triangles_to_vertices(facing, triangles,
                                               vertices.shape[1])
    return tf.cast(flags, tf.float32)


def sample_vertex_colors(image: tf.Tensor, vertices: tf.Tensor,
                         intrinsics: tf.Tensor,
                         name: str = "sample_vertex_colors"):
  """A view's texture: its image at its projected vertices (eq. 2).

  Args:
    image: [B, H, W, 3] RGB in [0, 1].
    vertices: [B, V, 3] camera-space vertices, mm.
    intrinsics: [B, 3, 3] the crop's K, pixels.

  Returns:
    (colors [B, V, 3], inside [B, V] float32: 1 where the vertex projects
    into the image). Differentiable in the image and the vertices.
  """
  with tf.name_scope(name):
    pixels = geometry.project(vertices, intrinsics)  # [B, V, 2]
    values, valid = sampling.bilinear_sample(image, pixels[:, :, None, :])
    return values[:, :, 0, :], valid[:, :, 0, 0]


def swap_colors(colors_1: tf.Tensor, colors_2: tf.Tensor,
                common: tf.Tensor) -> tf.Tensor:
  """Eq. 6: C_1->2 = C1 M12 + C2 (1 - M12); [B, V, 3] x 2, [B, V]."""
  m = tf.cast(common, colors_1.dtype)[..., None]
  return colors_1 * m + colors_2 * (1.0 - m)


class SwapRender(NamedTuple):
  """I_1->2 and what goes with it.

  Attributes:
    image: [B, H, W, 3] the swapped render composited over image 2.
    mask: [B, H, W, 1] M_2^2d, 1 where view 2's face is rendered.
    common: [B, V] M12.
    triangle_ids: [B, H, W] int32 view 2's visible triangle, -1 off it.
  """
  image: tf.Tensor
  mask: tf.Tensor
  common: tf.Tensor
  triangle_ids: tf.Tensor


def swap_render(image_1: tf.Tensor, vertices_1: tf.Tensor,
                image_2: tf.Tensor, vertices_2: tf.Tensor,
                triangles: tf.Tensor, intrinsics: tf.Tensor,
                name: str = "swap_render") -> SwapRender:
  """Renders view 1's commonly visible texture with view 2's geometry.

  Args:
    image_1, image_2: [B, H, W, 3] the two views' crops, RGB in [0, 1].
    vertices_1, vertices_2: [B, V, 3] their camera-space meshes, mm.
    triangles: [F, 3] int32.
    intrinsics: [B, 3, 3] K of the crops (the same camera for both).

  Returns:
    A `SwapRender`. A vertex that projects outside image 1 counts as not
    visible there.
  """
  with tf.name_scope(name):
    colors_1, inside_1 = sample_vertex_colors(image_1, vertices_1, intrinsics)
    colors_2, inside_2 = sample_vertex_colors(image_2, vertices_2, intrinsics)
    common = (facing_vertices(vertices_1, triangles) * inside_1 *
              facing_vertices(vertices_2, triangles) * inside_2)
    swapped = swap_colors(colors_1, colors_2, tf.stop_gradient(common))
    size = (image_2.shape[1], image_2.shape[2])
    output = renderer.render_mesh(vertices_2, swapped, triangles, intrinsics,
                                  size, background=image_2)
    return SwapRender(image=output.image, mask=output.mask, common=common,
                      triangle_ids=output.triangle_ids)
