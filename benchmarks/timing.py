"""Shared timing helpers for the benchmark scripts."""

import time
from typing import Callable, Dict

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


def interleaved_median_ms(fns: Dict[str, Callable[[], object]],
                          repeats: int) -> Dict[str, float]:
  """Median wall time (ms) of each fn, timed round-robin.

  Each round times every fn once, so a load change on a shared machine
  affects all of them alike and their ratios stay meaningful; each round
  starts with the next fn, so none is always first. One warm-up call each.
  """
  for fn in fns.values():
    fn()
  names = list(fns)
  times = {name: [] for name in names}
  for round_index in range(repeats):
    shift = round_index % len(names)
    for name in names[shift:] + names[:shift]:
      start = time.perf_counter()
      fns[name]()
      times[name].append(time.perf_counter() - start)
  return {name: 1000.0 * float(np.median(values))
          for name, values in times.items()}
