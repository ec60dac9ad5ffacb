"""`_signals.exit_cleanly_on_stop`: a SIGTERM exits 0 with one line, wherever
in the main thread it lands, including inside a weakref callback, where
Python swallows exceptions (CI caught one in importlib's module-lock
callback while TensorFlow imported)."""

import subprocess
import sys
import textwrap

_PROGRAM = textwrap.dedent("""
    import os, signal, sys, time, weakref
    from mgc_tf import _signals
    _signals.exit_cleanly_on_stop("demo", "nothing was written")

    def send_stop(*unused):
      os.kill(os.getpid(), signal.SIGTERM)
      # The handler runs at one of these bytecodes, inside the callback.
      total = 0
      for i in range(100000):
        total += i

    class Thing:
      pass

    where = sys.argv[1]
    try:
      if where == "weakref_callback":
        thing = Thing()
        ref = weakref.ref(thing, send_stop)
        del thing
      elif where == "del":
        Thing.__del__ = send_stop
        Thing()
      else:
        send_stop()
      for _ in range(200):
        time.sleep(0.01)
      print("ran on", flush=True)
      sys.exit(3)
    finally:
      print("finally ran", flush=True)
""")


def _run(where):
  return subprocess.run([sys.executable, "-c", _PROGRAM, where],
                        capture_output=True, text=True, timeout=60)


def test_stop_in_ordinary_code_exits_0_with_one_line_and_runs_finally():
  result = _run("plain")
  assert result.returncode == 0, result.stderr
  assert result.stderr == (
      "demo: stopped by SIGTERM before it finished; nothing was written\n")
  assert result.stdout == "finally ran\n"


def test_stop_swallowed_by_a_weakref_callback_is_raised_again():
  result = _run("weakref_callback")
  assert result.returncode == 0, result.stderr
  assert "Traceback" not in result.stderr
  assert "Exception ignored" not in result.stderr
  assert result.stderr.count("demo: stopped by SIGTERM") == 1
  assert result.stdout == "finally ran\n"


def test_stop_swallowed_by_a_finaliser_is_raised_again():
  result = _run("del")
  assert result.returncode == 0, result.stderr
  assert "Traceback" not in result.stderr
  assert result.stderr.count("demo: stopped by SIGTERM") == 1
  assert result.stdout == "finally ran\n"


def test_other_unraisable_exceptions_are_still_reported():
  program = textwrap.dedent("""
      import weakref
      from mgc_tf import _signals
      _signals.exit_cleanly_on_stop("demo")
      class Thing: pass
      def broken(*unused): raise ValueError("from a callback")
      thing = Thing(); ref = weakref.ref(thing, broken); del thing
  """)
  result = subprocess.run([sys.executable, "-c", program],
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 0
  assert "ValueError: from a callback" in result.stderr
