"""A stop signal ends a one-shot command cleanly: exit 0, one line, no traceback.

evaluate, export and infer call `exit_cleanly_on_stop(command)` first thing,
before TensorFlow is imported (a SIGTERM during start-up is common: a job
cancelled while it loads). The handler raises SystemExit(0) in the main
thread, so `finally` blocks still run (export removes its staging folder;
nothing half-written is left where a reader looks) and the process exits
0, as a training run stopped by a signal does, instead of 143 with a
traceback. (`mgc_tf.train` has its own handler: it saves a checkpoint.)

Python runs a signal handler between any two bytecodes of the main thread,
including inside a weakref callback, a `__del__` or a garbage-collector
callback (importlib's module-lock cleanup is one, and runs constantly while
TensorFlow imports). An exception raised there cannot propagate: Python
prints "Exception ignored in ..." with a traceback and carries on. So the
exit is a `StopRequested` exception, and a `sys.unraisablehook` that sees it
swallowed says nothing and raises it again a moment later, from ordinary
code.

This module imports nothing heavy, so that it can run first.
"""

import _thread
import signal
import sys
import threading

# How long after a swallowed stop it is raised again: long enough for the
# callback that swallowed it to return.
_RETRY_DELAY_S = 0.01


class StopRequested(SystemExit):
  """The exit a stop signal raises; SystemExit, so the exit status is 0."""


def exit_cleanly_on_stop(command: str, what_is_kept: str = "") -> None:
  """Installs a SIGTERM handler that exits 0 with one line.

  Ctrl-C (SIGINT) keeps Python's KeyboardInterrupt: a user at the terminal
  asked for it.

  Args:
    command: the command's name for the message, e.g. "mgc_tf.export".
    what_is_kept: what the user finds afterwards, e.g. "no version was
      written"; appended to the message.
  """
  announced = []

  def stop(signum, unused_frame):
    # Once: a second signal during the unwinding must not interrupt it.
    signal.signal(signum, signal.SIG_IGN)
    if not announced:
      announced.append(signum)
      name = signal.Signals(signum).name
      tail = f"; {what_is_kept}" if what_is_kept else ""
      print(f"{command}: stopped by {name} before it finished{tail}",
            file=sys.stderr, flush=True)
    raise StopRequested(0)

  previous_hook = sys.unraisablehook

  def raise_again_if_swallowed(unraisable):
    if not isinstance(unraisable.exc_value, StopRequested):
      previous_hook(unraisable)
      return
    signum = announced[0]
    # Only if nothing replaced our handler meanwhile (the trainer installs
    # its own, which then gets the signal instead).
    if signal.getsignal(signum) is signal.SIG_IGN:
      signal.signal(signum, stop)
    # From another thread: interrupt_main delivers it to the main thread's
    # handler at its next bytecode, which is outside this hook by then.
    threading.Timer(_RETRY_DELAY_S, _thread.interrupt_main,
                    args=(signum,)).start()

  sys.unraisablehook = raise_again_if_swallowed
  signal.signal(signal.SIGTERM, stop)
