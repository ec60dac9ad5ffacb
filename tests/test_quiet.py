"""Entry points keep TensorFlow's C++ start-up logs off the console."""

import os
import subprocess
import sys

import pytest

from mgc_tf import _quiet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What TensorFlow 2.21 prints on stderr at import (INFO), before any flag.
START_UP = ("oneDNN custom operations are on",
            "This TensorFlow binary is optimized",
            "Could not find cuda drivers",
            "All log messages before absl::InitializeLog()")


@pytest.mark.parametrize("argv, verbosity", [
    (["prog"], None),
    (["prog", "--verbosity=1"], 1),
    (["prog", "-v", "0"], 0),
    (["prog", "--v=-2", "--other=3"], -2),
    (["prog", "-verbosity", "2", "--verbosity=-1"], -1),  # the last wins
    (["prog", "--verbosity=x"], None),  # absl reports it
    (["prog", "--", "--verbosity=1"], None),
    (["prog", "--verbose"], None),  # another flag
])
def test_requested_verbosity(argv, verbosity):
  assert _quiet.requested_verbosity(argv) == verbosity


def test_cpp_log_level_default_flag_and_environment():
  assert _quiet.cpp_log_level(["p"], environ={}) == 2
  assert _quiet.cpp_log_level(["p", "--verbosity=1"], environ={}) == 0
  assert _quiet.cpp_log_level(["p", "--verbosity=0"], environ={}) == 0
  assert _quiet.cpp_log_level(["p", "-v", "-1"], environ={}) == 1
  assert _quiet.cpp_log_level(["p", "-v", "-9"], environ={}) == 3
  # The user's environment wins.
  assert _quiet.cpp_log_level(["p", "--verbosity=1"],
                              environ={"TF_CPP_MIN_LOG_LEVEL": "3"}) == 3
  assert _quiet.cpp_log_level(["p"],
                              environ={"TF_CPP_MIN_LOG_LEVEL": "0"}) == 0


def test_keep_line_filters_cpp_lines_by_severity():
  info = ("I0000 00:00:1796286198.620425    7458 port.cc:153] oneDNN custom "
          "operations are on.\n")
  warning = "W0000 00:00:1796286198.6    7458 some_file.cc:1] careful\n"
  error = ("E0000 00:00:1796286201.548648    7458 cuda_platform.cc:52] failed "
           "call to cuInit\n")
  old_style = ("2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/"
               "cudart_stub.cc:32] Could not find cuda drivers\n")
  preamble = ("WARNING: All log messages before absl::InitializeLog() is "
              "called are written to STDERR\n")
  python_warning = "/x/y.py:3: DeprecationWarning: old\n"
  assert [_quiet.keep_line(line, 2) for line in (
      info, warning, error, old_style, preamble, python_warning)] == [
          False, False, True, False, False, True]
  assert [_quiet.keep_line(line, 1) for line in (info, warning, error)] == [
      False, True, True]
  assert not _quiet.keep_line(error, 3)
  assert all(_quiet.keep_line(line, 0) for line in (info, preamble))


def _run(*args):
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  return subprocess.run(
      [sys.executable, "-m", "mgc_tf.convert_face_model", *args],
      env=env, capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.mark.slow
def test_entry_point_is_quiet_unless_verbosity_is_given():
  quiet = _run("--helpshort")
  assert "--output" in quiet.stdout + quiet.stderr  # the command ran
  for text in START_UP:
    assert text not in quiet.stderr, quiet.stderr
  assert not [line for line in quiet.stderr.splitlines()
              if line[:1] in "IW" and line[1:5].isdigit()], quiet.stderr
  verbose = _run("--helpshort", "--verbosity=1")
  # TensorFlow's C++ INFO lines come back (at least one: which ones depends
  # on the machine).
  assert [line for line in verbose.stderr.splitlines()
          if line.startswith("I") and line[1:5].isdigit()], verbose.stderr


_ABSL_SCRIPT = """
from mgc_tf import _quiet
_quiet.quiet_start()
from absl import app, logging
def main(argv):
  logging.info("absl INFO line")
  logging.warning("absl WARNING line")
app.run(main)
"""


@pytest.mark.slow
def test_absl_info_is_hidden_unless_verbosity_is_given():
  """absl's app.run raises Python logging to INFO by default; quiet_start
  puts it back to WARNING (TFDS and TensorFlow log through it)."""
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  run = lambda *args: subprocess.run(  # pylint: disable=g-long-lambda
      [sys.executable, "-c", _ABSL_SCRIPT, *args], env=env,
      capture_output=True, text=True, timeout=300, cwd=REPO)
  quiet = run()
  assert quiet.returncode == 0, quiet.stderr
  assert "absl WARNING line" in quiet.stderr
  assert "absl INFO line" not in quiet.stderr
  assert "absl INFO line" in run("--verbosity=0").stderr
