"""Temporal smoothing of per-frame values (pose, expression) with gaps.

Values come as a [T, D] array over the T frames of a video and a [T] bool
`valid` mask; a frame without a face is invalid and its row is ignored (it
may hold NaN). Smoothed frames that are invalid come out as NaN: there is no
face there to draw.

Methods (`SmoothingConfig.method`):

  none    the values unchanged (invalid rows set to NaN).
  ema     causal exponential moving average with strength a in [0, 1):
            s_t = a^dt s_prev + (1 - a^dt) x_t,
          dt = frames since the previous valid frame (1 without a gap), so a
          gap of dt frames forgets as much as dt frames of new data would:
          after a long gap the filter effectively restarts. The first valid
          frame starts the filter (s = x). a = 0 is no smoothing; the
          filter lags by about a / (1 - a) frames.
  window  centred moving average over the `window` (odd) frames
          t - h .. t + h, h = window // 2, averaging the valid frames among
          them (a gap or a video end shrinks the average, it never pulls in
          values from frames without a face). No lag; needs the whole video,
          which `mgc_tf.inference.video` has.
"""

import dataclasses
import enum

import numpy as np


class SmoothingMethod(enum.Enum):
  NONE = "none"
  EMA = "ema"
  WINDOW = "window"


@dataclasses.dataclass(frozen=True)
class SmoothingConfig:
  """How per-frame pose and expression are smoothed.

  Attributes:
    method: a SmoothingMethod (or its name).
    strength: EMA strength a in [0, 1) (used by EMA only).
    window: odd number of frames of the centred average (WINDOW only).
  """
  method: SmoothingMethod = SmoothingMethod.WINDOW
  strength: float = 0.6
  window: int = 5

  def __post_init__(self):
    try:
      method = SmoothingMethod(self.method)
    except ValueError as error:
      raise ValueError(
          f"Unknown smoothing method; use one of "
          f"{[m.value for m in SmoothingMethod]}. "
          f"Received: method={self.method!r}") from error
    object.__setattr__(self, "method", method)
    if not 0.0 <= self.strength < 1.0:
      raise ValueError("Smoothing strength must be in [0, 1). "
                       f"Received: strength={self.strength}")
    if self.window < 1 or self.window % 2 == 0:
      raise ValueError("The smoothing window must be an odd number >= 1 of "
                       f"frames. Received: window={self.window}")

  def describe(self) -> str:
    if self.method == SmoothingMethod.EMA:
      return f"ema (strength {self.strength:g})"
    if self.method == SmoothingMethod.WINDOW:
      return f"centred moving average over {self.window} frames"
    return "none"


def _check(values, valid):
  values = np.asarray(values, np.float64)
  valid = np.asarray(valid, bool)
  if values.ndim != 2 or valid.shape != values.shape[:1]:
    raise ValueError("Expected values [T, D] and valid [T]. Received: "
                     f"values.shape={values.shape}, valid.shape={valid.shape}")
  if not np.all(np.isfinite(values[valid])):
    raise ValueError("Valid frames hold non-finite values.")
  return values, valid


def ema(values: np.ndarray, valid: np.ndarray, strength: float) -> np.ndarray:
  """Causal exponential moving average that steps over gaps.

  Args:
    values: [T, D] per-frame values (rows of invalid frames are ignored).
    valid: [T] bool, True where the frame has a face.
    strength: a in [0, 1); the weight of the past per frame.

  Returns:
    [T, D] float64 smoothed values, NaN on invalid frames.
  """
  values, valid = _check(values, valid)
  out = np.full_like(values, np.nan)
  state, last = None, None
  for t in np.flatnonzero(valid):
    if state is None:
      state = values[t].copy()
    else:
      keep = strength ** (t - last)
      state = keep * state + (1.0 - keep) * values[t]
    out[t] = state
    last = t
  return out


def centred_mean(values: np.ndarray, valid: np.ndarray,
                 window: int) -> np.ndarray:
  """Centred moving average over the valid frames of each window.

  Args:
    values: [T, D] per-frame values (rows of invalid frames are ignored).
    valid: [T] bool, True where the frame has a face.
    window: odd number of frames, centred on each frame.

  Returns:
    [T, D] float64, NaN on invalid frames.
  """
  values, valid = _check(values, valid)
  half = window // 2
  weights = valid.astype(np.float64)
  filled = np.where(valid[:, None], values, 0.0)
  # Prefix sums give each window's sum and count in O(T D).
  sums = np.concatenate([np.zeros_like(filled[:1]), np.cumsum(filled, 0)])
  counts = np.concatenate([[0.0], np.cumsum(weights)])
  t = np.arange(len(values))
  lo = np.clip(t - half, 0, len(values))
  hi = np.clip(t + half + 1, 0, len(values))
  window_counts = counts[hi] - counts[lo]
  out = np.full_like(values, np.nan)
  out[valid] = ((sums[hi] - sums[lo])[valid] /
                window_counts[valid, None])
  return out


def smooth(values: np.ndarray, valid: np.ndarray,
           config: SmoothingConfig) -> np.ndarray:
  """Smooths [T, D] `values` over frames with `config`; NaN where invalid."""
  if config.method == SmoothingMethod.EMA:
    return ema(values, valid, config.strength)
  if config.method == SmoothingMethod.WINDOW:
    return centred_mean(values, valid, config.window)
  values, valid = _check(values, valid)
  return np.where(valid[:, None], values, np.nan)
