"""Differentiable rendering of coloured meshes: RGB, depth, mask, triangle ids.

`render_mesh` takes camera-space vertices and per-vertex colours; `render_face`
decodes 3DMM coefficients with a `FaceDecoder` first. Gradients flow to the
vertices (through the tensorflow-graphics barycentrics), to the colours and so
to albedo and lighting; visibility itself is piecewise constant.
"""

from typing import NamedTuple, Optional, Tuple, Union

import tensorflow as tf

from mgc_tf.facemodel import shading
from mgc_tf.render import rasterizer


class RenderOutput(NamedTuple):
  """Rendered buffers for a batch of B images of H x W pixels.

  Attributes:
    image: [B, H, W, 3] float32 RGB: the render composited over the
      background image (or over black without one).
    rendered: [B, H, W, 3] float32 RGB of the mesh alone (0 on background).
    depth: [B, H, W, 1] float32 camera z in the vertices' units (mm), 0 on
      background.
    mask: [B, H, W, 1] float32, 1 where the mesh is visible.
    triangle_ids: [B, H, W] int32 visible triangle, -1 on background.
  """
  image: tf.Tensor
  rendered: tf.Tensor
  depth: tf.Tensor
  mask: tf.Tensor
  triangle_ids: tf.Tensor


def render_mesh(vertices: tf.Tensor,
                colors: tf.Tensor,
                triangles: tf.Tensor,
                intrinsics: tf.Tensor,
                image_size: Tuple[int, int],
                background: Optional[tf.Tensor] = None,
                culling: rasterizer.FaceCulling = rasterizer.FaceCulling.BACK,
                backend: Optional[Union[rasterizer.Backend, str]] = None,
                name: str = "render_mesh") -> RenderOutput:
  """Renders camera-space meshes with per-vertex colours.

  Args:
    vertices: [B, V, 3] float32 camera-space points (OpenCV axes), mm. B static.
    colors: [B, V, 3] float32 per-vertex RGB.
    triangles: [F, 3] int32, counter-clockwise seen from the visible side.
    intrinsics: [B, 3, 3] float32 pinhole matrices, pixels.
    image_size: (height, width) in pixels.
    background: optional [B, H, W, 3] float32 image to composite over.
    culling: which triangles the rasterizer drops.
    backend: the rasterizer's visibility backend (`rasterizer.Backend`);
      None uses the process default (`rasterizer.set_default_backend`).
    name: op name scope.

  Returns:
    A `RenderOutput`.
  """
  with tf.name_scope(name):
    vertices = tf.convert_to_tensor(vertices, tf.float32)
    colors = tf.convert_to_tensor(colors, tf.float32)
    if colors.shape.rank != 3 or colors.shape[-1] != 3:
      raise ValueError(f"colors must be [B, V, 3]. Received: "
                       f"colors.shape={colors.shape}")
    raster = rasterizer.rasterize(vertices, triangles, intrinsics, image_size,
                                  culling=culling, backend=backend)
    attributes = tf.concat([colors, vertices[..., 2:3]], axis=-1)
    interpolated = rasterizer.interpolate(attributes, raster)
    mask = raster.mask
    rendered = interpolated[..., :3] * mask
    depth = interpolated[..., 3:4] * mask
    if background is None:
      image = rendered
    else:
      background = tf.convert_to_tensor(background, tf.float32)
      image = rendered + (1.0 - mask) * background
    return RenderOutput(image=image, rendered=rendered, depth=depth, mask=mask,
                        triangle_ids=raster.triangle_ids)


def render_face(decoder, coefficients: tf.Tensor,
                background: Optional[tf.Tensor] = None,
                image_size: Optional[Tuple[int, int]] = None,
                backend: Optional[Union[rasterizer.Backend, str]] = None,
                name: str = "render_face"):
  """Decodes coefficients with `decoder` (a `FaceDecoder`) and renders them.

  Args:
    decoder: `mgc_tf.facemodel.decoder.FaceDecoder`.
    coefficients: [B, K] float32 in `decoder.layout`.
    background: optional [B, H, W, 3] image to composite over.
    image_size: (height, width) of the square crop; defaults to the
      background's size, else the face model's crop size. The camera is the
      face model's, scaled to this size.

  Returns:
    (DecodedFace, RenderOutput).
  """
  with tf.name_scope(name):
    if image_size is None:
      if background is not None:
        image_size = tuple(background.shape[1:3])
      else:
        image_size = (decoder.image_size, decoder.image_size)
    if image_size[0] != image_size[1]:
      raise ValueError("Faces render into square crops. Received: "
                       f"image_size={image_size}")
    face = decoder.decode(coefficients, image_size=image_size[0])
    output = render_mesh(face.vertices, face.colors, decoder.triangles,
                         face.intrinsics, image_size, background=background,
                         backend=backend)
    return face, output


def render_with_albedo(face, albedo: tf.Tensor, triangles: tf.Tensor,
                       background: tf.Tensor,
                       backend: Optional[Union[rasterizer.Backend, str]] = None,
                       name: str = "render_with_albedo") -> RenderOutput:
  """Renders a decoded face with another albedo, shaded with its own SH
  lighting (e.g. the robust method's refined texture).

  Args:
    face: a `DecodedFace` at the background's crop size.
    albedo: [B, V, 3] float32 per-vertex albedo in [0, 1].
    triangles: [F, 3] int32, the face model's.
    background: [B, S, S, 3] float32 images to composite over.
    backend: as `render_mesh`.

  Returns:
    A `RenderOutput` at S x S.
  """
  with tf.name_scope(name):
    background = tf.convert_to_tensor(background, tf.float32)
    colors = shading.sh_shade(tf.convert_to_tensor(albedo, tf.float32),
                              face.normals, face.lighting)
    return render_mesh(face.vertices, colors, triangles, face.intrinsics,
                       tuple(background.shape[1:3]), background=background,
                       backend=backend)
