"""Builds the rasterizer kernel ahead of time and prints where it is.

  python -m mgc_tf.build_kernel [--force]

The kernel otherwise builds itself on first use; building it ahead of time is
useful in a Docker image or before starting many workers at once.
"""

from mgc_tf import _quiet  # pylint: disable=g-bad-import-order
_quiet.quiet_start()  # before anything imports TensorFlow

import sys

from absl import app
from absl import flags

from mgc_tf import _flags
from mgc_tf.render import kernel

_FORCE = flags.DEFINE_bool("force", False,
                           "Rebuild even if a cached library exists.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Print the compiler command.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    path = kernel.build_kernel(force=_FORCE.value, verbose=_VERBOSE.value)
    kernel.load_rasterizer_module(path)
  except kernel.KernelBuildError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(path)
  return 0


def run():
  _flags.run(main)


if __name__ == "__main__":
  run()
