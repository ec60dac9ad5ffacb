"""Runs an entry point's main with flag errors as one line and exit 2.

absl's own parser answers a misspelled flag or a value outside an enum
(`--rasterizer=opengl`) with a two-line "FATAL Flags parsing error" and exit
1. Every `python -m mgc_tf.<command>` goes through `run` instead, so a bad
flag reads like every other bad input: `error: <what is wrong> ...` on
stderr, exit status 2, nothing started.
"""

import sys

from absl import app
from absl import flags


def parse_or_exit(argv):
  """absl's parse, with a flags.Error as one line and SystemExit(2)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"error: {message} (--helpfull lists every flag)", file=sys.stderr)
    sys.exit(2)


def run(main) -> None:
  """`app.run(main)` with `parse_or_exit` as the flag parser."""
  app.run(main, flags_parser=parse_or_exit)
