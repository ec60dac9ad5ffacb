"""Optical flow estimators for PGN's flow consistency (eq. 10).

The paper used PWC-Net/DDFlow, whose weights we cannot download. Two
estimators share one calling convention, `estimator(image_a, image_b)`:

  LucasKanadeFlow   the offline default, no weights: coarse-to-fine
                    Lucas-Kanade written here in TensorFlow, differentiable
                    with respect to both images.
  load_flow_network a user's network by path: a Keras file (.keras / .h5)
                    with two image inputs, or a SavedModel directory whose
                    serving signature takes two images; its weights are
                    never trained (they are not part of any method's
                    networks), gradients flow through it to the images.

Both take images [B, H, W, 3] RGB in [0, 1] and return the flow
[B, H, W, 2] from a to b in pixels, (x, y) = (column, row): b(p + w(p)) ~
a(p) (the `mgc_tf.render.sampling` pixel convention).
"""

import os
from typing import Callable

import keras
import tensorflow as tf

from mgc_tf.render import sampling

_GREY = (0.299, 0.587, 0.114)
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")

FlowEstimator = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def _grey(image: tf.Tensor) -> tf.Tensor:
  image = tf.convert_to_tensor(image, tf.float32)
  if image.shape.rank != 4 or image.shape[-1] not in (1, 3):
    raise ValueError("Flow inputs must be [B, H, W, 3] or [B, H, W, 1]. "
                     f"Received: shape={image.shape}")
  if image.shape[-1] == 1:
    return image
  return tf.reduce_sum(image * tf.constant(_GREY), axis=-1, keepdims=True)


def _pixel_grid(height: int, width: int) -> tf.Tensor:
  """[1, H, W, 2] (x, y) pixel centres."""
  xs, ys = tf.meshgrid(tf.range(width, dtype=tf.float32),
                       tf.range(height, dtype=tf.float32))
  return tf.stack([xs, ys], axis=-1)[None]


def _gradients(image: tf.Tensor):
  """Central differences of [B, H, W, 1] (replicated edges): (d/dx, d/dy)."""
  padded = tf.pad(image, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
  dx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
  dy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
  return dx, dy


class LucasKanadeFlow:
  """Coarse-to-fine Lucas-Kanade flow, differentiable, no weights.

  At each pyramid level (2 x 2 average pooling, coarsest first) and each of
  `iterations` steps, image b is warped by the current flow, and the flow
  is moved by the least-squares solution of the linearised brightness
  constancy over a `window` x `window` box:

    [sum Ix^2  sum IxIy; sum IxIy  sum Iy^2] dw = -[sum Ix It; sum Iy It],

  with Ix, Iy the mean gradients of a and warped b, It = b(p + w) - a(p),
  and `damping` added to the diagonal (grey levels in [0, 1], per pixel^2),
  which keeps textureless regions at zero update. Each update is clipped to
  `max_step` pixels of its level. The flow is doubled when moving to a finer
  level.

  Args:
    levels: pyramid levels (1 = no pyramid); each level halves the size.
    iterations: warping steps per level.
    window: side of the box over which the normal equations are summed.
    damping: Tikhonov term on the 2 x 2 system.
    max_step: the largest update per step, pixels of the level.
  """

  def __init__(self, levels: int = 3, iterations: int = 3, window: int = 7,
               damping: float = 1e-6, max_step: float = 1.0):
    problems = []
    if levels < 1:
      problems.append(f"levels={levels} (>= 1)")
    if iterations < 1:
      problems.append(f"iterations={iterations} (>= 1)")
    if window < 3 or window % 2 == 0:
      problems.append(f"window={window} (odd, >= 3)")
    if damping <= 0 or max_step <= 0:
      problems.append(f"damping={damping}, max_step={max_step} (> 0)")
    if problems:
      raise ValueError("Bad LucasKanadeFlow arguments. Received: " +
                       ", ".join(problems))
    self.levels, self.iterations = levels, iterations
    self.window, self.damping, self.max_step = window, damping, max_step

  def describe(self) -> str:
    return (f"coarse-to-fine Lucas-Kanade ({self.levels} levels x "
            f"{self.iterations} steps, {self.window}x{self.window} window; "
            "built in, no weights)")

  def _step(self, a, b, flow):
    height, width = a.shape[1], a.shape[2]
    # Clamped to the image (edge pixels repeat): zero padding would put
    # false edges into It, which the box sums spread inwards.
    coords = _pixel_grid(height, width) + flow
    coords = tf.clip_by_value(coords, 0.0, tf.constant(
        [width - 1.0, height - 1.0]))
    warped, _ = sampling.bilinear_sample(b, coords)
    ax, ay = _gradients(a)
    bx, by = _gradients(warped)
    ix, iy = 0.5 * (ax + bx), 0.5 * (ay + by)
    it = warped - a

    def box(t):
      return tf.nn.avg_pool2d(t, self.window, 1, "SAME")

    sxx = box(ix * ix) + self.damping
    syy = box(iy * iy) + self.damping
    sxy, sxt, syt = box(ix * iy), box(ix * it), box(iy * it)
    det = sxx * syy - sxy * sxy
    du = -(syy * sxt - sxy * syt) / det
    dv = -(sxx * syt - sxy * sxt) / det
    update = tf.clip_by_value(tf.concat([du, dv], -1), -self.max_step,
                              self.max_step)
    return flow + update

  def __call__(self, image_a, image_b) -> tf.Tensor:
    """[B, H, W, 3] x 2 in [0, 1] -> [B, H, W, 2] flow a -> b, pixels."""
    a, b = _grey(image_a), _grey(image_b)
    if a.shape[1:3] != b.shape[1:3]:
      raise ValueError("Flow inputs must have the same size. Received: "
                       f"{a.shape} and {b.shape}")
    pyramid = [(a, b)]
    for _ in range(self.levels - 1):
      a, b = (tf.nn.avg_pool2d(t, 2, 2, "VALID") for t in (a, b))
      pyramid.append((a, b))
    flow = None
    for a, b in reversed(pyramid):
      size = a.shape[1:3]
      if flow is None:
        flow = tf.zeros(tf.concat([tf.shape(a)[:3], [2]], 0))
      else:
        flow = 2.0 * tf.image.resize(flow, size, method="bilinear")
      for _ in range(self.iterations):
        flow = self._step(a, b, flow)
    return flow


def load_flow_network(path: str) -> FlowEstimator:
  """A user's flow network by path (module docstring) as an estimator.

  Args:
    path: a `.keras`/`.h5` file (model with two [B, H, W, 3] inputs,
      output [B, H, W, 2]) or a SavedModel directory whose
      `serving_default` signature takes two image tensors (in the order of
      its argument names) and returns the flow (the only output, or the one
      named "flow").

  Raises:
    FileNotFoundError: the path does not exist.
    ValueError: the file is neither, or the network's inputs are not two.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"--flow_network: no file or directory at "
                            f"{path!r}")
  if path.lower().endswith(_KERAS_SUFFIXES):
    model = keras.models.load_model(path, compile=False)
    model.trainable = False
    if len(model.inputs) != 2:
      raise ValueError(f"The flow network {path!r} must take two images. "
                       f"Received inputs: {len(model.inputs)}")
    return lambda a, b: tf.cast(model([a, b], training=False), tf.float32)
  if not os.path.exists(os.path.join(path, "saved_model.pb")):
    raise ValueError(f"--flow_network {path!r} is neither a Keras file "
                     f"({', '.join(_KERAS_SUFFIXES)}) nor a SavedModel "
                     "directory.")
  loaded = tf.saved_model.load(path)
  function = loaded.signatures["serving_default"]
  names = sorted(function.structured_input_signature[1])
  if len(names) != 2:
    raise ValueError(f"The flow SavedModel {path!r} must take two images. "
                     f"Received inputs: {names}")

  def estimate(a, b):
    outputs = function(**{names[0]: a, names[1]: b})
    if len(outputs) == 1:
      return tf.cast(next(iter(outputs.values())), tf.float32)
    return tf.cast(outputs["flow"], tf.float32)

  estimate.owner = loaded  # keeps the SavedModel alive
  return estimate
