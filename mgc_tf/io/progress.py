"""Console progress, the one home of progress printing.

  progress(items, total, description)   a bar for inference loops: tqdm when
                                        installed, else a \\r line
  ProgressLog(label, total, unit)       a line now and then, for evaluation:
                                        'evaluate NAME: done/total UNIT
                                        rate/s  ETA'
  format_duration(seconds)              '2h 05m', for ETAs (the trainer's
                                        step/loss line uses it too)

tqdm is not a dependency of mgc-tf; it is used when the environment has it
(TensorFlow Datasets usually brings it).
"""

import sys
import time
from typing import Iterable, Iterator, Optional, TypeVar

Item = TypeVar("Item")

#: Seconds between ProgressLog lines.
PROGRESS_EVERY_SECONDS = 10.0


def format_duration(seconds: float) -> str:
  """'1d 03h', '2h 05m', '4m 09s', '12s'."""
  seconds = int(max(seconds, 0))
  days, rest = divmod(seconds, 86400)
  hours, rest = divmod(rest, 3600)
  minutes, secs = divmod(rest, 60)
  if days:
    return f"{days}d {hours:02d}h"
  if hours:
    return f"{hours}h {minutes:02d}m"
  if minutes:
    return f"{minutes}m {secs:02d}s"
  return f"{secs}s"


class ProgressLog:
  """Prints 'evaluate NAME: done/total UNIT  rate/s  ETA' now and then.

  Args:
    label: what is evaluated.
    total: items expected (0: unknown).
    unit: the items' name.
    enabled: print only when True.
    every_seconds: seconds between lines.
  """

  def __init__(self, label: str, total: int, unit: str, enabled: bool = True,
               every_seconds: float = PROGRESS_EVERY_SECONDS):
    self.label, self.total, self.unit = label, int(total), unit
    self.enabled = enabled
    self.every_seconds = every_seconds
    self.start = time.perf_counter()
    self.last = self.start

  def update(self, done: int, final: bool = False) -> None:
    now = time.perf_counter()
    if not self.enabled or (not final and now - self.last < self.every_seconds):
      return
    self.last = now
    rate = done / max(now - self.start, 1e-9)
    total = f"/{self.total}" if self.total else ""
    eta = ""
    if self.total and not final and rate > 0:
      eta = "  ETA " + format_duration((self.total - done) / rate)
    print(f"evaluate {self.label}: {done}{total} {self.unit}  "
          f"{rate:.2f} {self.unit}/s{eta}", flush=True)


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
