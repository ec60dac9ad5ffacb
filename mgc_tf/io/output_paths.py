"""Checks that an output path can be written, before the work that fills it.

An entry point calls these on its output flags first, so that an unwritable
`--output_json` / `--output_dir` / `--export_dir` fails in a moment with one
line, not after the whole evaluation or export. Nothing is created: a
missing folder is checked through its nearest existing ancestor, with a
probe file that is removed at once.
"""

import os
import tempfile
from typing import Optional


class OutputPathError(ValueError):
  """An output path that cannot be written; the message is one line."""


def _nearest_existing(path: str) -> str:
  """`path` or its nearest ancestor that exists."""
  current = path
  while not os.path.lexists(current):
    parent = os.path.dirname(current)
    if parent == current:
      break
    current = parent
  return current


def _probe(folder: str, flag: str, path: str) -> None:
  """Creates and removes a file in `folder`; OutputPathError if it cannot."""
  try:
    with tempfile.TemporaryFile(dir=folder, prefix=".mgc-write-check-"):
      pass
  except OSError as error:
    raise OutputPathError(
        f"{flag}={path}: cannot write in {folder} "
        f"({error.strerror or error})") from error


def _check_folder_path(path: str, flag: str) -> Optional[str]:
  """The folder the probe goes in, after checking that no file is in the
  way of `path`; None for a remote path (gs://, ...), which is not checked."""
  if "://" in path:
    return None
  absolute = os.path.abspath(os.path.expanduser(path))
  existing = _nearest_existing(absolute)
  if not os.path.isdir(existing):
    raise OutputPathError(
        f"{flag}={path}: {existing} is a file, not a folder")
  return existing


def check_output_dir(path: str, flag: str) -> None:
  """Raises OutputPathError unless folder `path` exists and is writable, or
  can be created (its nearest existing ancestor is a writable folder)."""
  folder = _check_folder_path(path, flag)
  if folder is not None:
    _probe(folder, flag, path)


def check_output_file(path: str, flag: str) -> None:
  """Raises OutputPathError unless file `path` can be written: not a
  folder, and its folder exists and is writable or can be created."""
  if "://" in path:
    return
  absolute = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(absolute):
    raise OutputPathError(f"{flag}={path} is a folder; give a file path")
  if os.path.lexists(absolute) and not os.access(absolute, os.W_OK):
    raise OutputPathError(f"{flag}={path}: the file is not writable")
  folder = _check_folder_path(os.path.dirname(absolute), flag)
  if folder is not None:
    _probe(folder, flag, path)
