"""Renderer speed beside ResNet50, in one run, printed as ratios.

  python benchmarks/render.py [--batch=15] [--size=224] [--repeats=5]
      [--face_model=PATH]   # a real BFM file; else a synthetic mesh of BFM size
      [--rasterizer=kernel,xla]   # backends to time (auto|kernel|xla)

For the embedded face model and for a mesh of BFM's size (35,709 vertices,
70,789 triangles), prints milliseconds per view for raw rasterization (the
visibility pass alone), render forward and render forward+backward, beside
ResNet50 forward+backward per image on the same machine, and their ratios.
One row per backend: the kernel (tf.function), xla in a tf.function, and
xla compiled with XLA (jit_compile=True); the last column is the raw
visibility time over the kernel's.
"""

import sys


from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf
from timing import median_ms

from mgc_tf.facemodel import crop
from mgc_tf.facemodel import loaders
from mgc_tf.render import rasterizer
from mgc_tf.render import renderer
from mgc_tf.render import xla_visibility

_BATCH = flags.DEFINE_integer("batch", 15, "Views per batch (5 x 3 views).")
_SIZE = flags.DEFINE_integer("size", 224, "Image side, pixels.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions (median).")
_RASTERIZER = flags.DEFINE_list(
    "rasterizer", ["kernel", "xla"],
    "Rasterizer backends to time, comma-separated: auto, kernel, xla.")
_FACE_MODEL = flags.DEFINE_string(
    "face_model", None, "Optional real face model for the BFM-size row.")

BFM_VERTICES = 35709
BFM_TRIANGLES = 70789


def bfm_size_mesh():
  """A smooth closed-front sheet with BFM's vertex and triangle counts."""
  rows, cols = 189, 189  # 35,721 vertices >= 35,709
  u, v = np.meshgrid(np.linspace(-1, 1, cols), np.linspace(-1, 1, rows))
  x, y = 75.0 * u, 100.0 * v
  z = 60.0 * np.sqrt(np.clip(1.0 - 0.6 * u**2 - 0.4 * v**2, 0.0, None))
  vertices = np.stack([x, y, z], -1).reshape([-1, 3])[:BFM_VERTICES]
  quads = []
  for r in range(rows - 1):
    for c in range(cols - 1):
      a, b = r * cols + c, r * cols + c + 1
      d, e = (r + 1) * cols + c, (r + 1) * cols + c + 1
      quads += [[a, b, e], [a, e, d]]
  triangles = np.array(quads, np.int32)
  triangles = triangles[np.all(triangles < BFM_VERTICES, axis=1)]
  # The sheet has ~100 triangles fewer than BFM: repeat some to match the count.
  extra = BFM_TRIANGLES - len(triangles)
  triangles = np.concatenate([triangles, triangles[:max(extra, 0)]])
  triangles = triangles[:BFM_TRIANGLES]
  return vertices.astype(np.float32), triangles


def camera_batch(vertices, batch, size):
  """Places B copies of a mesh 1 m in front of a 224-crop camera, random yaw."""
  rng = np.random.default_rng(0)
  out = []
  for _ in range(batch):
    yaw = rng.uniform(-1.0, 1.0)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, s], [0, -1, 0], [s, 0, -c]])  # Rx(pi) Ry(yaw)
    out.append(vertices @ rot.T + [0.0, 0.0, 1000.0])
  focal = crop.DEFAULT_FOCAL_LENGTH * size / crop.CROP_SIZE
  k = np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]])
  return (tf.constant(np.array(out, np.float32)),
          tf.constant(np.tile(k[None], [batch, 1, 1]).astype(np.float32)))


def time_mesh(vertices, triangles, batch, size, repeats, backend,
              jit_compile=False):
  """(raw, forward, forward+backward) ms per view for one backend."""
  verts, k = camera_batch(vertices, batch, size)
  tris = tf.constant(triangles)
  colors = tf.random.uniform(verts.shape, seed=1)
  clip = rasterizer.clip_space_vertices(verts, k, (size, size))
  mode = rasterizer.kernel_culling_mode(rasterizer.FaceCulling.BACK)
  compile_fn = lambda f: tf.function(f, jit_compile=jit_compile or None)  # pylint: disable=g-long-lambda

  if backend == rasterizer.Backend.KERNEL:
    ops = rasterizer.kernel.load_rasterizer_module()

    @compile_fn
    def raw():
      return [ops.rasterize_triangles(clip[i], tris, size, size, 1, mode)[1]
              for i in range(batch)]
  else:
    @compile_fn
    def raw():
      return xla_visibility.visibility(clip, tris, (size, size),
                                       mode).triangle_ids

  @compile_fn
  def forward():
    return renderer.render_mesh(verts, colors, tris, k, (size, size),
                                backend=backend).image

  @compile_fn
  def forward_backward():
    with tf.GradientTape() as tape:
      tape.watch([verts, colors])
      out = renderer.render_mesh(verts, colors, tris, k, (size, size),
                                 backend=backend)
      loss = tf.reduce_sum(out.image) + 1e-3 * tf.reduce_sum(out.depth)
    return tape.gradient(loss, [verts, colors])

  return tuple(median_ms(f, repeats) / batch
               for f in (raw, forward, forward_backward))


def backend_rows(vertices, triangles, batch, size, repeats, backends):
  """[(label, (raw, fwd, fwd+bwd))] for the chosen backends."""
  rows = []
  for backend in backends:
    if backend == rasterizer.Backend.KERNEL:
      rows.append(("kernel", time_mesh(vertices, triangles, batch, size,
                                       repeats, backend)))
    else:
      rows.append(("xla (tf.function)", time_mesh(
          vertices, triangles, batch, size, repeats, backend)))
      rows.append(("xla (jit_compile)", time_mesh(
          vertices, triangles, batch, size, repeats, backend,
          jit_compile=True)))
  return rows


def time_resnet(batch, size, repeats):
  """ResNet50 (no weights) forward+backward, ms per image."""
  model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3),
                                      classes=257, classifier_activation=None)
  images = tf.random.uniform([batch, size, size, 3], seed=2)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(model(images, training=True) ** 2)
    return tape.gradient(loss, model.trainable_variables)

  return median_ms(step, repeats) / batch


def main(argv):
  del argv
  batch, size, repeats = _BATCH.value, _SIZE.value, _REPEATS.value
  try:
    backends = []
    for name in _RASTERIZER.value:
      backend = rasterizer.resolve_backend(rasterizer.parse_backend(name))
      if backend not in backends:
        backends.append(backend)
  except ValueError as e:
    print(f"error: --rasterizer: {e}", file=sys.stderr)
    return 2
  meshes = []
  embedded = loaders.load_face_model(None)
  meshes.append((f"embedded ({embedded.num_vertices} v, "
                 f"{embedded.num_triangles} f)", embedded.mean_shape,
                 embedded.triangles))
  if _FACE_MODEL.value:
    real = loaders.load_face_model(_FACE_MODEL.value)
    meshes.append((f"{real.name} ({real.num_vertices} v, "
                   f"{real.num_triangles} f)", real.mean_shape,
                   real.triangles))
  else:
    vertices, triangles = bfm_size_mesh()
    meshes.append((f"BFM-size synthetic ({len(vertices)} v, "
                   f"{len(triangles)} f)", vertices, triangles))
  results = [(name, backend_rows(v, t, batch, size, repeats, backends))
             for name, v, t in meshes]
  resnet = time_resnet(batch, size, repeats)

  print(f"\nbatch {batch} views, {size}x{size}, median of {repeats}; "
        f"ResNet50 fwd+bwd: {resnet:.1f} ms/image\n")
  header = (f"{'mesh / rasterizer':<42} {'raster ms':>9} {'fwd ms':>8} "
            f"{'fwd+bwd ms':>10} {'raster/R50':>10} {'fwd/R50':>8} "
            f"{'fwd+bwd/R50':>11} {'raster/kernel':>13}")
  print(header)
  print("-" * len(header))
  for name, rows in results:
    print(name)
    kernel_raw = dict(rows).get("kernel", (None,))[0]
    for label, (raw, fwd, fwd_bwd) in rows:
      versus = f"{raw / kernel_raw:>13.2f}" if kernel_raw else f"{'-':>13}"
      print(f"  {label:<40} {raw:>9.2f} {fwd:>8.2f} {fwd_bwd:>10.2f} "
            f"{raw / resnet:>10.3f} {fwd / resnet:>8.3f} "
            f"{fwd_bwd / resnet:>11.3f} {versus}")
  print("\ntargets: render fwd+bwd per view <= 0.25x ResNet50 fwd+bwd per "
        "image at BFM size; on CPU xla raster <= 4x the kernel's")


if __name__ == "__main__":
  app.run(main)
