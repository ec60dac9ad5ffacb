"""Reading files by local path or by URL (`gs://`, `s3://`, `ram://`, ...).

The dataset builders' manual folders may sit on a local disk or on any
filesystem that TensorFlow's `tf.io.gfile` reads: Cloud Storage (`gs://`),
S3 and others through a TensorFlow filesystem plugin, and TensorFlow's
in-memory `ram://` (what the tests use). A Beam worker on a cluster can then
read `--manual_dir=gs://bucket/celeba` without a shared mount.

A local path (no `://`) goes through Python's `os` and `open` exactly as
before, so local builds keep their behaviour and their error messages; a URL
goes through `tf.io.gfile` (TensorFlow is imported only then), whose errors
are raised as `OSError` so that callers catch one kind. Decoders that need a
file on disk (OpenCV's video reader) get a temporary local copy of a remote
file (`local_copy`).
"""

import contextlib
import io
import os
import posixpath
import tempfile
from typing import IO, Iterator, List, Tuple


def is_url(path) -> bool:
  """True for `scheme://...` paths, which `tf.io.gfile` reads."""
  return "://" in os.fspath(path)


@contextlib.contextmanager
def _gfile(path: str):
  """`tf.io.gfile` for work on the URL `path`; TensorFlow's errors inside
  are raised as the OSError Python's `open` would raise, with the path in
  the message (some filesystems, ram://, leave the error's own empty)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    yield tf.io.gfile
  except tf.errors.OpError as error:
    detail = getattr(error, "message", "") or type(error).__name__
    if isinstance(error, tf.errors.NotFoundError):
      raise FileNotFoundError(f"{path}: not found ({detail})") from error
    if isinstance(error, tf.errors.PermissionDeniedError):
      raise PermissionError(f"{path}: permission denied ({detail})") from error
    raise OSError(f"{path}: {detail}") from error


def read_bytes(path: str) -> bytes:
  """The whole file.

  Raises:
    OSError: it is missing or cannot be read.
  """
  if not is_url(path):
    with open(path, "rb") as f:
      return f.read()
  with _gfile(path) as gfile, gfile.GFile(path, "rb") as f:
    return f.read()


def open_file(path: str, mode: str = "rb", encoding=None,
              errors=None) -> IO:
  """Opens a file for reading, as `open(path, mode, ...)` does.

  Args:
    path: a local path or a URL.
    mode: "rb" or "r" (text; `encoding` and `errors` as for `open`, UTF-8
      by default for a URL).

  Returns:
    a file object (a context manager). A URL's file is read whole into
    memory: the builders read small files (images, landmarks, `.mat`) this
    way; videos go through `local_copy`.

  Raises:
    OSError: the file is missing or cannot be read.
    ValueError: a mode other than "r" or "rb".
  """
  if mode not in ("r", "rb"):
    raise ValueError(f"open_file reads only ('r' or 'rb'); Received: "
                     f"mode={mode!r}")
  if not is_url(path):
    # pylint: disable-next=consider-using-with,unspecified-encoding
    return open(path, mode, encoding=encoding, errors=errors)
  data = io.BytesIO(read_bytes(path))
  if mode == "rb":
    return data
  # TextIOWrapper decodes and translates newlines as open() in text mode.
  return io.TextIOWrapper(data, encoding=encoding or "utf-8",
                          errors=errors or "strict")


def exists(path: str) -> bool:
  if not is_url(path):
    return os.path.exists(path)
  with _gfile(path) as gfile:
    return gfile.exists(path)


def isfile(path: str) -> bool:
  if not is_url(path):
    return os.path.isfile(path)
  with _gfile(path) as gfile:
    return gfile.exists(path) and not gfile.isdir(path)


def isdir(path: str) -> bool:
  if not is_url(path):
    return os.path.isdir(path)
  with _gfile(path) as gfile:
    return gfile.isdir(path)


def getsize(path: str) -> int:
  """Size in bytes.

  Raises:
    OSError: the file is missing.
  """
  if not is_url(path):
    return os.path.getsize(path)
  with _gfile(path) as gfile:
    return int(gfile.stat(path).length)


def listdir(path: str) -> List[str]:
  """The names in a folder, as `os.listdir` (no trailing "/" on folders,
  which object stores such as Cloud Storage add).

  Raises:
    OSError: the folder is missing or cannot be listed.
  """
  if not is_url(path):
    return os.listdir(path)
  with _gfile(path) as gfile:
    return [name.rstrip("/") for name in gfile.listdir(path)]


def join(folder: str, *names: str) -> str:
  """`os.path.join`, with "/" for URLs whatever the local separator."""
  if is_url(folder):
    return posixpath.join(folder, *names)
  return os.path.join(folder, *names)


def walk(root: str) -> Iterator[Tuple[str, List[str], List[str]]]:
  """`os.walk(root)` (top-down; the caller may prune the subfolder list in
  place), also for URLs. Folder paths never end in "/"."""
  if not is_url(root):
    yield from os.walk(root)
    return
  root = root.rstrip("/")
  names = listdir(root)
  subfolders = [name for name in names if isdir(join(root, name))]
  folder_set = set(subfolders)
  yield root, subfolders, [name for name in names if name not in folder_set]
  for name in subfolders:
    yield from walk(join(root, name))


def relative_path(path: str, root: str) -> str:
  """`path` below `root`, "/"-separated: the same for a folder's local copy
  and its remote copy, so keys derived from it do not depend on where the
  files are.

  Raises:
    ValueError: a URL `path` that is not below the URL `root`.
  """
  if not is_url(path) and not is_url(root):
    return os.path.relpath(path, root).replace(os.path.sep, "/")
  prefix = root.rstrip("/") + "/"
  if not path.startswith(prefix):
    raise ValueError(f"{path} is not below {root}")
  return path[len(prefix):]


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
  """A local path for `path`: itself, or a temporary copy of a URL's file.

  For decoders that only open local files (OpenCV's VideoCapture). The
  copy lives in the temporary folder (`TMPDIR`), keeps the extension (the
  decoder may go by it) and is removed on exit.

  Raises:
    OSError: the URL's file cannot be copied.
  """
  if not is_url(path):
    yield path
    return
  handle, local = tempfile.mkstemp(
      prefix="mgc_tf_", suffix=os.path.splitext(path)[1])
  os.close(handle)
  try:
    with _gfile(path) as gfile:
      gfile.copy(path, local, overwrite=True)
    yield local
  finally:
    os.remove(local)
