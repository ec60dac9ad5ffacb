"""A stop signal ends a one-shot command cleanly: exit 0, one line, no traceback.

evaluate, export and infer call `exit_cleanly_on_stop(command)` first thing,
before TensorFlow is imported (a SIGTERM during start-up is common: a job
cancelled while it loads). The handler raises SystemExit(0) in the main
thread, so `finally` blocks still run (export removes its staging folder;
nothing half-written is left where a reader looks) and the process exits
0, as a training run stopped by a signal does, instead of 143 with a
traceback. (`mgc_tf.train` has its own handler: it saves a checkpoint.)

This module imports nothing heavy, so that it can run first.
"""

import signal
import sys


def exit_cleanly_on_stop(command: str, what_is_kept: str = "") -> None:
  """Installs a SIGTERM handler that exits 0 with one line.

  Ctrl-C (SIGINT) keeps Python's KeyboardInterrupt: a user at the terminal
  asked for it.

  Args:
    command: the command's name for the message, e.g. "mgc_tf.export".
    what_is_kept: what the user finds afterwards, e.g. "no version was
      written"; appended to the message.
  """
  def stop(signum, unused_frame):
    # Once: a second signal during the unwinding must not interrupt it.
    signal.signal(signum, signal.SIG_IGN)
    name = signal.Signals(signum).name
    tail = f"; {what_is_kept}" if what_is_kept else ""
    print(f"{command}: stopped by {name} before it finished{tail}",
          file=sys.stderr, flush=True)
    raise SystemExit(0)

  signal.signal(signal.SIGTERM, stop)
