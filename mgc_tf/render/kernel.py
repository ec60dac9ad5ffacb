"""Builds and loads tensorflow-graphics' CPU `RasterizeTriangles` kernel.

The `.so` shipped in the tensorflow-graphics 2021.12.3 wheel was linked against
an old TensorFlow and fails to load on TF 2.21 (undefined symbol), so we never
load it. Instead we compile the C++ sources that the same wheel ships
(`tensorflow_graphics/rendering/kernels/*.cc`) against the installed
TensorFlow, on first use, and cache the library:

  <cache>/<tf version>-<hash of sources, flags and compiler>/rasterizer_op.so

`<cache>` is `$MGC_TF_KERNEL_CACHE`, else `$XDG_CACHE_HOME/mgc_tf/kernels`,
else `~/.cache/mgc_tf/kernels`. A file lock makes concurrent first uses (several
workers starting at once) build once; the others wait and load the result.
`python -m mgc_tf.build_kernel` builds ahead of time and prints the path.
"""

import hashlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import List, Optional

import filelock

CACHE_ENV_VAR = "MGC_TF_KERNEL_CACHE"
COMPILER_ENV_VAR = "CXX"
LIBRARY_NAME = "rasterizer_op.so"
SOURCE_FILES = ("rasterize_triangles_impl.cc", "rasterize_triangles_impl.h",
                "rasterize_triangles_op.cc")
# Bump when the build command changes in a way the hash does not see.
BUILD_RECIPE_VERSION = "1"
LOCK_TIMEOUT_S = 600

_loaded_module = None
_load_lock = threading.Lock()


class KernelBuildError(RuntimeError):
  """The rasterizer kernel could not be built; the message says what to do."""


def kernel_source_dir() -> str:
  """Folder of the kernel sources inside the installed tensorflow-graphics."""
  spec = importlib.util.find_spec("tensorflow_graphics")
  if spec is None or not spec.submodule_search_locations:
    raise KernelBuildError(
        "tensorflow-graphics is not installed, so the rasterizer kernel "
        "sources are missing. Install it with: "
        "pip install 'tensorflow-graphics==2021.12.3'")
  source_dir = os.path.join(spec.submodule_search_locations[0], "rendering",
                            "kernels")
  missing = [f for f in SOURCE_FILES
             if not os.path.exists(os.path.join(source_dir, f))]
  if missing:
    raise KernelBuildError(
        f"The tensorflow-graphics install at {source_dir} lacks the kernel "
        f"sources {missing}. Reinstall it: pip install --force-reinstall "
        "'tensorflow-graphics==2021.12.3'")
  return source_dir


def find_compiler() -> str:
  """Path of the C++ compiler ($CXX, else g++, else c++)."""
  candidates = [os.environ.get(COMPILER_ENV_VAR), "g++", "c++"]
  for candidate in candidates:
    if candidate:
      path = shutil.which(candidate)
      if path:
        return path
  raise KernelBuildError(
      "No C++ compiler found, and mgc_tf must compile tensorflow-graphics' "
      "rasterizer kernel once against your TensorFlow. Install g++ (C++17), "
      "for example `apt-get install g++` (Debian/Ubuntu), `dnf install "
      "gcc-c++` (Fedora/RHEL) or `conda install -c conda-forge gxx`, or point "
      f"${COMPILER_ENV_VAR} at a compiler; then run `python -m "
      "mgc_tf.build_kernel`.")


def _tensorflow_flags():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return (tf.__version__, list(tf.sysconfig.get_compile_flags()),
          list(tf.sysconfig.get_link_flags()))


def build_command(compiler: str, source_dir: str, output: str,
                  compile_flags: List[str], link_flags: List[str]) -> List[str]:
  """The g++ command line that builds the kernel library."""
  sources = [os.path.join(source_dir, f) for f in SOURCE_FILES
             if f.endswith(".cc")]
  return ([compiler, "-std=c++17", "-shared", "-fPIC", "-O2"] + sources +
          ["-o", output] + compile_flags + link_flags)


def cache_root() -> str:
  root = os.environ.get(CACHE_ENV_VAR)
  if not root:
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    root = os.path.join(xdg, "mgc_tf", "kernels")
  return root


def library_path() -> str:
  """Where the kernel for the installed TensorFlow and sources lives (or will)."""
  source_dir = kernel_source_dir()
  tf_version, compile_flags, link_flags = _tensorflow_flags()
  digest = hashlib.sha256()
  for name in SOURCE_FILES:
    with open(os.path.join(source_dir, name), "rb") as f:
      digest.update(name.encode() + b"\0" + f.read())
  digest.update(" ".join(compile_flags + link_flags).encode())
  digest.update(BUILD_RECIPE_VERSION.encode())
  digest.update(sys.platform.encode())
  key = f"tf{tf_version}-{digest.hexdigest()[:16]}"
  return os.path.join(cache_root(), key, LIBRARY_NAME)


def build_kernel(force: bool = False, verbose: bool = False) -> str:
  """Compiles the kernel into the cache unless it is there; returns its path.

  Safe to call from many processes at once: a file lock serialises builds, and
  the library is written under a temporary name and renamed into place, so a
  reader never sees a half-written file.
  """
  output = library_path()
  if os.path.exists(output) and not force:
    return output
  out_dir = os.path.dirname(output)
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    raise KernelBuildError(
        f"Cannot create the kernel cache folder {out_dir}: {e}. Set "
        f"${CACHE_ENV_VAR} to a writable folder.") from e
  lock = filelock.FileLock(os.path.join(out_dir, ".build.lock"),
                           timeout=LOCK_TIMEOUT_S)
  try:
    with lock:
      if os.path.exists(output) and not force:
        return output  # Another process built it while we waited.
      compiler = find_compiler()
      _, compile_flags, link_flags = _tensorflow_flags()
      fd, tmp_output = tempfile.mkstemp(suffix=".so", dir=out_dir)
      os.close(fd)
      command = build_command(compiler, kernel_source_dir(), tmp_output,
                              compile_flags, link_flags)
      if verbose:
        print("Building the rasterizer kernel:", shlex.join(command),
              file=sys.stderr)
      else:
        print(f"mgc_tf: compiling the rasterizer kernel into {out_dir} "
              "(once per TensorFlow version, about 10 s)...", file=sys.stderr)
      try:
        result = subprocess.run(command, capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
          raise KernelBuildError(
              "Compiling tensorflow-graphics' rasterizer kernel failed "
              f"(exit {result.returncode}). Command:\n  {shlex.join(command)}\n"
              f"Compiler output (last lines):\n{_tail(result.stderr)}\n"
              "Install a C++17 compiler with the standard headers (e.g. "
              "`apt-get install g++`) and make sure TensorFlow's headers are "
              "installed (they ship in the tensorflow wheel), then run "
              "`python -m mgc_tf.build_kernel`.")
        os.replace(tmp_output, output)
      finally:
        if os.path.exists(tmp_output):
          os.remove(tmp_output)
  except filelock.Timeout as e:
    raise KernelBuildError(
        f"Waited {LOCK_TIMEOUT_S} s for another process building the kernel "
        f"(lock {lock.lock_file}). If no build is running, delete the lock "
        "file and retry.") from e
  return output


def _tail(text: str, lines: int = 20) -> str:
  return "\n".join(text.strip().splitlines()[-lines:])


def load_rasterizer_module(path: Optional[str] = None):
  """Loads the compiled kernel (building it first if needed), once per process.

  Returns:
    The op module; `module.rasterize_triangles(vertices, triangles,
    image_width, image_height, num_layers, face_culling_mode)`.
  """
  global _loaded_module
  with _load_lock:
    if _loaded_module is None:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      library = path or build_kernel()
      try:
        _loaded_module = tf.load_op_library(library)
      except (tf.errors.NotFoundError, OSError) as e:
        raise KernelBuildError(
            f"The compiled rasterizer kernel {library} does not load: {e}. "
            "Rebuild it with `python -m mgc_tf.build_kernel --force`.") from e
    return _loaded_module
