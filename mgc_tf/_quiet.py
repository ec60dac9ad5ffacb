"""Keeps TensorFlow's C++ start-up logs out of an entry point's console.

Every command (`python -m mgc_tf.<command>`, the `mgc-*` scripts) calls
`quiet_start()` first, before anything imports TensorFlow:

  from mgc_tf import _quiet  # pylint: disable=g-bad-import-order
  _quiet.quiet_start()  # before TensorFlow is imported

What the user sees then:

* By default: our progress lines, Python warnings, absl WARNING and ERROR
  lines, TensorFlow's C++ errors. Not shown: TensorFlow's C++ INFO and
  WARNING lines ("oneDNN custom operations are on", "Could not find cuda
  drivers", "This TensorFlow binary is optimized ...") and absl INFO.
* `--verbosity=N` / `-v N` (absl's own flag, which every command has): N >= 0
  brings back TensorFlow's C++ INFO lines as well as absl INFO (N = 1 adds
  absl DEBUG); N = -1 (WARNING), -2 (ERROR), -3 (FATAL) raise the threshold.
* `TF_CPP_MIN_LOG_LEVEL` set in the environment always wins for the C++ side
  (0 all, 1 no INFO, 2 no INFO or WARNING, 3 errors hidden too).

Why more than the environment variable: with TensorFlow >= 2.18 the lines
that the shared libraries log while `import tensorflow` loads them are written
before absl::InitializeLog() runs, so TF_CPP_MIN_LOG_LEVEL does not filter
them (tensorflow/tensorflow#100442). `quiet_start` therefore imports
TensorFlow itself with file descriptor 2 sent to a temporary file, and writes
back to stderr every captured line that the chosen level keeps (errors,
Python warnings, anything that is not a C++ log line).

absl's Python logging: `app.run` raises it to INFO when `--verbosity` is
not given (absl-py 2.x), which prints every TFDS and TensorFlow INFO line;
`quiet_start` registers a callback (`app.call_after_init`) that sets it back
to WARNING unless `--verbosity` / `-v` is on the command line. `--verbosity` given only in a
`--flagfile` is not seen here (the C++ level is chosen before flags are
parsed); give it on the command line, or set TF_CPP_MIN_LOG_LEVEL.

This module imports nothing from mgc_tf and nothing heavy, so that it can run
first. (It relies on `mgc_tf/__init__.py` not importing TensorFlow.)
"""

import os
import re
import sys
import tempfile
from typing import Optional, Sequence

ENV_VAR = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LEVEL = 2  # C++ INFO and WARNING hidden, errors shown.

# absl's spellings of its verbosity flag (one or two dashes; "v" is the
# short name).
_VERBOSITY_NAMES = ("verbosity", "v")
# A C++ (absl / TensorFlow) log line: severity letter, date, time, thread id,
# file:line], e.g. "I0000 00:00:1796286198.620425    7458 port.cc:153] ...",
# (before absl::InitializeLog() the time is seconds since the epoch),
# or TensorFlow's older "2025-09-17 14:44:05.157831: I external/...".
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]")
_TSL_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) \S+\]")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog()"
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}


def requested_verbosity(argv: Sequence[str]) -> Optional[int]:
  """absl's --verbosity / -v value on the command line, or None.

  The last occurrence wins, as in absl. Parsing stops at "--".
  """
  verbosity = None
  args = list(argv[1:])
  i = 0
  while i < len(args):
    arg = args[i]
    if arg == "--":
      break
    name, has_value, value = arg.lstrip("-").partition("=")
    if arg.startswith("-") and name in _VERBOSITY_NAMES:
      if not has_value and i + 1 < len(args):
        i += 1
        value = args[i]
      try:
        verbosity = int(value)
      except ValueError:
        pass  # absl reports the bad value when it parses the flags.
    i += 1
  return verbosity


def cpp_log_level(argv: Sequence[str],
                  environ: Optional[dict] = None) -> int:
  """The TF_CPP_MIN_LOG_LEVEL an entry point runs with (see module doc)."""
  environ = os.environ if environ is None else environ
  if environ.get(ENV_VAR, "").strip().isdigit():
    return int(environ[ENV_VAR])
  verbosity = requested_verbosity(argv)
  if verbosity is None:
    return DEFAULT_LEVEL
  # absl: 0 = INFO (1 = DEBUG), -1 = WARNING, -2 = ERROR, -3 = FATAL.
  return min(3, max(0, -verbosity))


def keep_line(line: str, level: int) -> bool:
  """Whether a line captured while importing TensorFlow goes to stderr."""
  if level <= 0:
    return True
  if line.startswith(_ABSL_PREAMBLE):
    return False
  match = _ABSL_LINE.match(line) or _TSL_LINE.match(line)
  if match is None:
    return True  # Not a C++ log line: Python warnings, tracebacks, ...
  return _SEVERITY[match.group(1)] >= level


def _keep_absl_at_warning() -> None:
  """absl's `app.run` raises Python logging to INFO when --verbosity is not
  given (so TFDS and TensorFlow print every INFO line); put it back to
  WARNING once flags are parsed, unless the user asked for a level."""
  # pylint: disable=g-import-not-at-top
  from absl import app
  from absl import logging as absl_logging

  def back_to_warning():
    absl_logging.set_verbosity(absl_logging.WARNING)

  app.call_after_init(back_to_warning)


def quiet_start(argv: Optional[Sequence[str]] = None) -> None:
  """Sets the C++ log level and imports TensorFlow with its start-up lines
  filtered. Call it before anything imports TensorFlow; once TensorFlow is
  imported it does nothing.

  Args:
    argv: the command line (default sys.argv), read for --verbosity / -v.
  """
  if "tensorflow" in sys.modules:
    return  # Too late to change anything (a test, a notebook, a library).
  argv = sys.argv if argv is None else argv
  if requested_verbosity(argv) is None:
    _keep_absl_at_warning()
  level = cpp_log_level(argv)
  os.environ.setdefault(ENV_VAR, str(level))
  if level <= 0:
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
    return
  with tempfile.TemporaryFile() as captured:
    sys.stderr.flush()
    saved_fd = os.dup(2)
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow  # pylint: disable=g-import-not-at-top,unused-import,redefined-outer-name
    finally:
      sys.stderr.flush()
      os.dup2(saved_fd, 2)
      os.close(saved_fd)
      captured.seek(0)
      text = captured.read().decode("utf-8", errors="replace")
      out = "".join(line for line in text.splitlines(keepends=True)
                    if keep_line(line, level))
      if out:
        sys.stderr.write(out)
        sys.stderr.flush()
