"""Shared timing helper for the benchmark scripts."""

import time

import numpy as np


def median_ms(fn, repeats: int) -> float:
  """Median wall time of `fn()` in milliseconds, after one warm-up call."""
  fn()  # warm-up: traces tf.functions, builds the kernel
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1000.0 * float(np.median(times))
