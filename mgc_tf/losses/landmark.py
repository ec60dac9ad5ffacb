"""Weighted 2D landmark loss in crop pixels.

  L_lm = (1 / L) sum_k c_k ||q_k - q_gt_k||_2^2

per sample, with q the projected model landmarks and q_gt the ground-truth
landmarks, both (x, y) in crop pixels (MGCNet paper section 3.3, DESIGN.md
sections 4-5). The confidences c_k are 10 on the nose (iBUG 27-35) and the
inner mouth (iBUG 60-67) and 1 elsewhere, as in the paper; the MGCNet code
release used 5. The default weight w_lm = 1e-3 is applied by the combinator.

Shape glossary: B batch, L landmarks (68, iBUG order).
"""

import numpy as np
import tensorflow as tf

#: Number of landmarks in the iBUG 68-point scheme.
NUM_LANDMARKS = 68
#: iBUG 68 indices of the nose (bridge and lower nose), 0-based.
NOSE_INDICES = tuple(range(27, 36))
#: iBUG 68 indices of the inner lip contour, 0-based.
INNER_MOUTH_INDICES = tuple(range(60, 68))
#: Confidence of the nose and inner-mouth landmarks (paper; code release: 5).
DEFAULT_NOSE_MOUTH_WEIGHT = 10.0


def landmark_weights(nose_mouth_weight: float = DEFAULT_NOSE_MOUTH_WEIGHT,
                     num_landmarks: int = NUM_LANDMARKS) -> np.ndarray:
  """Per-landmark confidences c_k for the iBUG 68-point scheme.

  Args:
    nose_mouth_weight: c_k of the nose (27-35) and inner-mouth (60-67)
      landmarks; every other landmark has weight 1.
    num_landmarks: must be 68 (the indices above are iBUG-68 indices).

  Returns:
    `[68]` float32 NumPy array.

  Raises:
    ValueError: if `num_landmarks` is not 68 or the weight is negative.
  """
  if num_landmarks != NUM_LANDMARKS:
    raise ValueError(
        f"Default landmark weights are defined for the iBUG 68-point scheme; "
        f"pass `weights` explicitly for other layouts. Received: "
        f"num_landmarks={num_landmarks}")
  if nose_mouth_weight < 0:
    raise ValueError(f"`nose_mouth_weight` must be >= 0. Received: "
                     f"nose_mouth_weight={nose_mouth_weight}")
  weights = np.ones([num_landmarks], np.float32)
  weights[list(NOSE_INDICES + INNER_MOUTH_INDICES)] = nose_mouth_weight
  return weights


def landmark_loss(landmarks,
                  landmarks_gt,
                  weights=None,
                  nose_mouth_weight: float = DEFAULT_NOSE_MOUTH_WEIGHT,
                  name: str = "landmark_loss") -> tf.Tensor:
  """Per-sample weighted mean squared landmark distance.

  Args:
    landmarks: `[B, L, 2]` predicted landmarks q (projected), (x, y) crop
      pixels.
    landmarks_gt: `[B, L, 2]` ground-truth landmarks q_gt, crop pixels.
    weights: optional `[L]` or `[B, L]` confidences c_k (for example the
      default confidences times a per-landmark visibility). None uses
      `landmark_weights(nose_mouth_weight)` (requires L = 68).
    nose_mouth_weight: c_k of nose and inner-mouth landmarks when `weights`
      is None; ignored otherwise.
    name: name scope of the ops.

  Returns:
    `[B]` tensor (1 / L) sum_k c_k ||q_k - q_gt_k||^2, squared pixels, dtype
    of `landmarks`.

  Raises:
    ValueError: on bad static shapes.
  """
  with tf.name_scope(name):
    landmarks = tf.convert_to_tensor(landmarks, name="landmarks")
    if not landmarks.dtype.is_floating:
      landmarks = tf.cast(landmarks, tf.float32)
    landmarks_gt = tf.convert_to_tensor(landmarks_gt, dtype=landmarks.dtype,
                                        name="landmarks_gt")
    for key, value in (("landmarks", landmarks),
                       ("landmarks_gt", landmarks_gt)):
      if value.shape.rank != 3 or value.shape[-1] not in (None, 2):
        raise ValueError(f"`{key}` must have shape [B, L, 2]. "
                         f"Received: {key}.shape={tuple(value.shape)}")
    num = landmarks.shape[1]
    if weights is None:
      if num is None:
        raise ValueError("The number of landmarks must be static when "
                         "`weights` is None.")
      weights = landmark_weights(nose_mouth_weight, num)
    weights = tf.convert_to_tensor(weights, dtype=landmarks.dtype,
                                   name="weights")
    if weights.shape.rank not in (1, 2) or (
        num is not None and weights.shape[-1] not in (None, num)):
      raise ValueError(f"`weights` must have shape [L] or [B, L] with L = "
                       f"{num}. Received: weights.shape={tuple(weights.shape)}")

    squared = tf.reduce_sum(tf.square(landmarks - landmarks_gt), axis=-1)
    return tf.reduce_mean(weights * squared, axis=-1)


#: iBUG 68 indices of the eyes, nose and whole mouth (PGN's weighted regions).
EYES_NOSE_MOUTH_INDICES = tuple(range(27, 48)) + tuple(range(48, 68))


def region_weight_map(landmarks, image_size: int, radius: float,
                      weight: float = 5.0,
                      indices=EYES_NOSE_MOUTH_INDICES,
                      name: str = "region_weight_map") -> tf.Tensor:
  """PGN's W (eqs. 9-10): `weight` near the given landmarks, 1 elsewhere.

  A pixel is in the region when it lies within `radius` pixels of one of
  the landmarks `indices` (by default eyes, nose and mouth), a disc-union
  stand-in for the regions of PRNet's UV weight mask.

  Args:
    landmarks: [B, 68, 2] (x, y) crop pixels.
    image_size: S, the square crop's side.
    radius: pixels.
    weight: the value inside the region.

  Returns:
    [B, S, S, 1] float32, no gradient.
  """
  with tf.name_scope(name):
    points = tf.gather(tf.stop_gradient(tf.cast(landmarks, tf.float32)),
                       list(indices), axis=1)  # [B, L', 2]
    xs, ys = tf.meshgrid(tf.range(image_size, dtype=tf.float32),
                         tf.range(image_size, dtype=tf.float32))
    grid = tf.reshape(tf.stack([xs, ys], -1), [1, -1, 1, 2])
    squared = tf.reduce_sum(tf.square(grid - points[:, None]), -1)
    near = tf.reduce_min(squared, axis=-1) <= radius * radius  # [B, SS]
    values = tf.where(near, float(weight), 1.0)
    return tf.reshape(values, [-1, image_size, image_size, 1])
