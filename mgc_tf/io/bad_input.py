"""Bad input during a dataset build: skip the example, count it, report it.

A build never dies halfway over one bad file. Readers raise `BadExampleError`
with a short reason ("unreadable image", "no face found", ...); the builder's
generator goes through `generate_with_skips`, which drops the example, counts
the reason in a `SkipCounter` and logs the totals when the generator ends.

A tally's `state()` (`TallyState`) is what a Beam build carries from its
workers to the driver (`mgc_tf.data.beam_build`), where `restore` refills an
empty tally so that it prints the same report as a single-process build.
"""

import collections
import dataclasses
import logging
import threading
from typing import (Callable, Dict, Iterable, Iterator, List, Optional, Set,
                    Tuple, TypeVar)

import numpy as np

from mgc_tf.io import files

NUM_LANDMARKS = 68

_LOG = logging.getLogger("mgc_tf.data")

Item = TypeVar("Item")


class BadExampleError(ValueError):
  """An input that cannot become a training/evaluation example.

  Attributes:
    reason: short, stable category used for counting, e.g. "unreadable image".
  """

  def __init__(self, reason: str, detail: str = ""):
    self.reason = reason
    self.detail = detail
    super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclasses.dataclass
class TallyState:
  """What a tally holds, as plain data.

  Attributes:
    kept: items kept.
    counts: {reason: items skipped}, in the order each reason first occurred.
    examples: {reason: the first few "key: error" lines, in order}.
  """
  kept: int = 0
  counts: Dict[str, int] = dataclasses.field(default_factory=dict)
  examples: Dict[str, List[str]] = dataclasses.field(default_factory=dict)


class SkipCounter:
  """Thread-safe counts of skipped examples by reason, with a few examples each.

  Attributes:
    name: what is being built (dataset/split), used in the report.
    unit: what is counted ("examples", "views", "videos", ...).
  """

  def __init__(self, name: str, max_examples_per_reason: int = 5,
               unit: str = "examples"):
    self.name = name
    self.unit = unit
    self._max_examples = max_examples_per_reason
    self._counts: Dict[str, int] = collections.Counter()
    self._examples: Dict[str, list] = collections.defaultdict(list)
    self._kept = 0
    self._kept_keys: Set[str] = set()
    self._lock = threading.Lock()

  def skip(self, key: str, error: BadExampleError) -> None:
    """Records that example `key` was skipped because of `error`."""
    with self._lock:
      self._counts[error.reason] += 1
      if len(self._examples[error.reason]) < self._max_examples:
        self._examples[error.reason].append(f"{key}: {error}")
    _LOG.warning("%s: skipped %s (%s)", self.name, key, error)

  def keep(self, key: Optional[str] = None) -> None:
    """Records one kept item; `key` (optional) lets `drop_kept` undo it."""
    with self._lock:
      self._kept += 1
      if key is not None:
        self._kept_keys.add(key)

  @property
  def kept_keys(self) -> Set[str]:
    """The keys given to `keep` that are still counted as kept."""
    with self._lock:
      return set(self._kept_keys)

  def drop_kept(self, key: str, error: BadExampleError) -> None:
    """Moves `key`, kept earlier, to the skipped ones under `error.reason`.

    For an item that was good on its own but is not stored after all (a
    good view of a group dropped for having too few views), so that the
    report equals what is stored.
    """
    with self._lock:
      if key not in self._kept_keys:
        raise KeyError(f"{self.name}: {key!r} was not kept")
      self._kept_keys.discard(key)
      self._kept -= 1
    self.skip(key, error)

  def is_kept(self, key: str) -> bool:
    """Whether `key` was given to `keep` and is still counted as kept."""
    with self._lock:
      return key in self._kept_keys

  @property
  def kept(self) -> int:
    return self._kept

  @property
  def max_examples_per_reason(self) -> int:
    return self._max_examples

  def empty_like(self) -> "SkipCounter":
    """A new, empty counter with this one's name, unit and example limit."""
    return SkipCounter(self.name, self._max_examples, self.unit)

  def state(self) -> TallyState:
    """Kept, counts and examples as plain data (kept keys are left out)."""
    with self._lock:
      return TallyState(self._kept, dict(self._counts),
                        {reason: list(lines)
                         for reason, lines in self._examples.items()})

  def restore(self, state: TallyState) -> None:
    """Replaces the totals with `state` (for an empty counter in the driver
    of a Beam build); reasons keep the order of `state.counts`."""
    with self._lock:
      self._kept = state.kept
      self._kept_keys = set()
      self._counts = collections.Counter()
      self._examples = collections.defaultdict(list)
      for reason, count in state.counts.items():
        self._counts[reason] = count
        self._examples[reason] = list(
            state.examples.get(reason, ()))[:self._max_examples]

  def __getstate__(self):
    # A lock cannot be pickled; a Beam build ships empty counters to its
    # workers as templates.
    state = dict(self.__dict__)
    del state["_lock"]
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._lock = threading.Lock()

  @property
  def skipped(self) -> int:
    return sum(self._counts.values())

  @property
  def counts(self) -> Dict[str, int]:
    return dict(self._counts)

  def summary(self) -> str:
    """One paragraph: kept and skipped totals, each reason with examples."""
    lines = [f"{self.name}: kept {self._kept} {self.unit}, "
             f"skipped {self.skipped}"]
    for reason, count in sorted(self._counts.items(), key=lambda kv: -kv[1]):
      lines.append(f"  {count} x {reason}, e.g.")
      lines.extend(f"    {example}" for example in self._examples[reason])
    return "\n".join(lines)

  def report(self) -> None:
    """Prints the summary to stdout, where `tfds build` output goes.

    Printed rather than logged: the stdlib logger hides INFO records unless
    logging is configured, and the summary must always be seen.
    """
    print(self.summary(), flush=True)


def skip_bad(
    items: Iterable[Item],
    make_example: Callable[[Item], Tuple[str, dict]],
    counter: SkipCounter,
    key_of: Optional[Callable[[Item], str]] = None,
) -> Iterator[Tuple[str, dict]]:
  """`generate_with_skips` without the report: for one part of a build."""
  key_of = key_of or str
  for item in items:
    try:
      key, example = make_example(item)
    except BadExampleError as error:
      counter.skip(key_of(item), error)
      continue
    counter.keep()
    yield key, example


def generate_with_skips(
    items: Iterable[Item],
    make_example: Callable[[Item], Tuple[str, dict]],
    counter: SkipCounter,
    key_of: Optional[Callable[[Item], str]] = None,
) -> Iterator[Tuple[str, dict]]:
  """Yields `make_example(item)` for each item, skipping bad ones.

  Args:
    items: inputs (paths, groups, ...).
    make_example: item -> (key, example dict); raises BadExampleError for an
      input that must be skipped. Any other exception is a bug and propagates.
    counter: where skips are counted; its report is logged at the end.
    key_of: item -> key used in skip messages (default: str(item)).

  Yields:
    (key, example) pairs, as tfds' `_generate_examples` expects.
  """
  yield from skip_bad(items, make_example, counter, key_of)
  counter.report()


def check_landmarks(landmarks, num_landmarks: int = NUM_LANDMARKS,
                    source: str = "") -> np.ndarray:
  """Validates landmarks: [num_landmarks, 2] finite numbers.

  Args:
    landmarks: array-like [L, 2] or [L, 3] (the third column is dropped).
    num_landmarks: expected L.
    source: where they came from, for the message.

  Returns:
    float32 [num_landmarks, 2].

  Raises:
    BadExampleError: "wrong landmark count" or "non-finite landmarks".
  """
  try:
    array = np.asarray(landmarks, dtype=np.float64)
  except (ValueError, TypeError) as error:
    raise BadExampleError("unparsable landmarks",
                          f"{source}: {error}") from error
  if array.ndim != 2 or array.shape[0] != num_landmarks or array.shape[1] < 2:
    raise BadExampleError(
        "wrong landmark count",
        f"{source} has shape {array.shape}, expected [{num_landmarks}, 2]")
  array = array[:, :2]
  if not np.all(np.isfinite(array)):
    raise BadExampleError("non-finite landmarks", f"{source} contains NaN/inf")
  return array.astype(np.float32)


def read_image_rgb(path: str) -> np.ndarray:
  """Reads an image file (a local path or a URL) as uint8 RGB [H, W, 3].

  Grey images are expanded to 3 channels, alpha is dropped.

  Raises:
    BadExampleError: "unreadable image" when the file is missing, empty or
      cannot be decoded.
  """
  import cv2  # pylint: disable=g-import-not-at-top
  data = None
  try:
    data = files.read_bytes(path)
  except OSError as error:
    raise BadExampleError("unreadable image", f"{path}: {error}") from error
  image = None
  if data:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if image is None:
    raise BadExampleError(
        "unreadable image",
        f"{path} ({files.getsize(path) if files.exists(path) else 0} "
        "bytes) could not be decoded as an image")
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
