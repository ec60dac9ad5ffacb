"""Console progress: step, loss, examples/s and ETA."""

import time

from mgc_tf.io.progress import format_duration


class Progress:
  """Tracks throughput over a sliding window of steps.

  Args:
    start_step: the step the run (re)started at.
    max_steps: the last step.
    batch_size: global samples per step.
    enabled: print only when True (the chief).
    window: steps in the moving average of the rate.
  """

  def __init__(self, start_step: int, max_steps: int, batch_size: int,
               enabled: bool = True, window: int = 20):
    self.max_steps = max_steps
    self.batch_size = batch_size
    self.enabled = enabled
    self.window = window
    self._times = [(start_step, time.perf_counter())]

  def update(self, step: int) -> float:
    """Records that `step` finished; returns samples per second."""
    self._times.append((step, time.perf_counter()))
    # The first step traces the tf.function; leave it out once others exist.
    if len(self._times) > self.window + 1:
      self._times = self._times[-(self.window + 1):]
    return self.examples_per_second

  @property
  def examples_per_second(self) -> float:
    if len(self._times) < 2:
      return 0.0
    times = self._times[1:] if len(self._times) > 2 else self._times
    (first_step, first_time), (last_step, last_time) = times[0], times[-1]
    if last_step == first_step or last_time <= first_time:
      return 0.0
    return (last_step - first_step) * self.batch_size / (last_time - first_time)

  def log(self, step: int, loss: float) -> None:
    if not self.enabled:
      return
    rate = self.examples_per_second
    if rate > 0:
      eta = format_duration((self.max_steps - step) * self.batch_size / rate)
    else:
      eta = "?"
    print(f"step {step}/{self.max_steps}  loss {loss:.4f}  "
          f"{rate:.2f} examples/s  ETA {eta}", flush=True)
