"""A progress bar for inference loops: tqdm when installed, else a \\r line.

tqdm is not a dependency of mgc-tf; it is used when the environment has it
(TensorFlow Datasets usually brings it).
"""

import sys
import time
from typing import Iterable, Iterator, Optional, TypeVar

Item = TypeVar("Item")


def progress(items: Iterable[Item], total: Optional[int], description: str,
             unit: str = "it", enabled: bool = True) -> Iterator[Item]:
  """Yields `items`, drawing a progress bar on stderr.

  Args:
    items: what to iterate.
    total: the number of items when known (None: counts only).
    description: the bar's label.
    unit: what an item is ("image", "frame").
    enabled: False iterates silently.
  """
  if not enabled:
    yield from items
    return
  try:
    import tqdm  # pylint: disable=g-import-not-at-top
  except ImportError:
    tqdm = None
  if tqdm is not None:
    yield from tqdm.tqdm(items, total=total, desc=description, unit=unit,
                         file=sys.stderr, dynamic_ncols=True)
    return
  yield from _line_progress(items, total, description, unit)


def _line_progress(items, total, description, unit):
  """Plain fallback: one line rewritten with \\r, at most 10 times a second."""
  start = last_draw = time.perf_counter()
  count = 0

  def draw():
    elapsed = time.perf_counter() - start
    rate = count / elapsed if elapsed > 0 else 0.0
    of_total = f"/{total}" if total else ""
    sys.stderr.write(f"\r{description}: {count}{of_total} {unit}s "
                     f"({rate:.1f} {unit}/s)")
    sys.stderr.flush()

  for item in items:
    yield item
    count += 1
    now = time.perf_counter()
    if now - last_draw >= 0.1:
      draw()
      last_draw = now
  draw()
  sys.stderr.write("\n")
  sys.stderr.flush()
