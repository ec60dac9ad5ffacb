"""Renderer speed beside ResNet50, in one run, printed as ratios.

  python benchmarks/render.py [--batch=15] [--size=224] [--repeats=5]
      [--face_model=PATH]   # a real BFM file; else a synthetic mesh of BFM size

For the embedded face model and for a mesh of BFM's size (35,709 vertices,
70,789 triangles), prints milliseconds per view for raw rasterization (the
kernel alone), render forward and render forward+backward, beside ResNet50
forward+backward per image on the same machine, and their ratios.
"""

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

_BATCH = flags.DEFINE_integer("batch", 15, "Views per batch (5 x 3 views).")
_SIZE = flags.DEFINE_integer("size", 224, "Image side, pixels.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions (median).")
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


def time_mesh(vertices, triangles, batch, size, repeats):
  """(raw, forward, forward+backward) ms per view."""
  verts, k = camera_batch(vertices, batch, size)
  tris = tf.constant(triangles)
  colors = tf.random.uniform(verts.shape, seed=1)
  ops = rasterizer.kernel.load_rasterizer_module()
  clip = rasterizer.clip_space_vertices(verts, k, (size, size))
  mode = rasterizer.kernel_culling_mode(rasterizer.FaceCulling.BACK)

  @tf.function
  def raw():
    return [ops.rasterize_triangles(clip[i], tris, size, size, 1, mode)[1]
            for i in range(batch)]

  @tf.function
  def forward():
    return renderer.render_mesh(verts, colors, tris, k, (size, size)).image

  @tf.function
  def forward_backward():
    with tf.GradientTape() as tape:
      tape.watch([verts, colors])
      out = renderer.render_mesh(verts, colors, tris, k, (size, size))
      loss = tf.reduce_sum(out.image) + 1e-3 * tf.reduce_sum(out.depth)
    return tape.gradient(loss, [verts, colors])

  return tuple(median_ms(f, repeats) / batch
               for f in (raw, forward, forward_backward))


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
  rows = []
  embedded = loaders.load_face_model(None)
  rows.append((f"embedded ({embedded.num_vertices} v, "
               f"{embedded.num_triangles} f)",
               time_mesh(embedded.mean_shape, embedded.triangles, batch, size,
                         repeats)))
  if _FACE_MODEL.value:
    real = loaders.load_face_model(_FACE_MODEL.value)
    rows.append((f"{real.name} ({real.num_vertices} v, {real.num_triangles} f)",
                 time_mesh(real.mean_shape, real.triangles, batch, size,
                           repeats)))
  else:
    vertices, triangles = bfm_size_mesh()
    rows.append((f"BFM-size synthetic ({len(vertices)} v, {len(triangles)} f)",
                 time_mesh(vertices, triangles, batch, size, repeats)))
  resnet = time_resnet(batch, size, repeats)

  print(f"\nbatch {batch} views, {size}x{size}, median of {repeats}; "
        f"ResNet50 fwd+bwd: {resnet:.1f} ms/image\n")
  header = (f"{'mesh':<42} {'raster ms':>9} {'fwd ms':>8} {'fwd+bwd ms':>10} "
            f"{'raster/R50':>10} {'fwd/R50':>8} {'fwd+bwd/R50':>11}")
  print(header)
  print("-" * len(header))
  for name, (raw, fwd, fwd_bwd) in rows:
    print(f"{name:<42} {raw:>9.2f} {fwd:>8.2f} {fwd_bwd:>10.2f} "
          f"{raw / resnet:>10.3f} {fwd / resnet:>8.3f} "
          f"{fwd_bwd / resnet:>11.3f}")
  print("\ntarget: render fwd+bwd per view <= 0.25x ResNet50 fwd+bwd per image "
        "at BFM size")


if __name__ == "__main__":
  app.run(main)
