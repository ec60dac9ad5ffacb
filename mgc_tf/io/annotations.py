"""Readers for the annotation files of real face datasets.

Every reader returns landmarks in the mgc_tf pixel convention (OpenCV,
0-based: the centre of pixel [i, j] is at (x, y) = (j, i)) and raises
`BadExampleError` for a file that is missing, cannot be parsed or holds the
wrong number of points, so a dataset build skips and counts it.

Formats:
  * iBUG `.pts` (300-W, LS3D-W, Menpo): a `version: 1` / `n_points: 68` header
    and one "x y" line per point between braces. The iBUG annotations are
    1-based (MATLAB: the top-left pixel centre is (1, 1)); menpo, the iBUG
    group's own library, subtracts 1 on import, and so do we by default.
  * plain text `.txt`: 68 lines "x y" (spaces, tabs or commas), 0-based, as
    written by dlib/OpenCV tools and by `mgc_tf` itself.
  * NumPy `.npy`: a float array [68, 2] (or [68, 3]; z is dropped), 0-based.
  * MATLAB `.mat` (v5/v7 through scipy.io.loadmat), e.g. 300W-LP and
    AFLW2000-3D; v7.3 (HDF5) files are reported as unsupported.

A landmark file sits beside its image with the same stem
(`img_001.jpg` -> `img_001.pts` / `img_001.txt` / `img_001.npy`).

Paths may be local or URLs (`gs://...`; see `mgc_tf.io.files`).
"""

import io
import os
import struct
import zlib
from typing import Dict, Optional

import numpy as np

from mgc_tf.io import files
from mgc_tf.io.bad_input import (NUM_LANDMARKS, BadExampleError,
                                 check_landmarks)

# Tried in this order when several landmark files share an image's stem.
LANDMARK_EXTENSIONS = (".pts", ".npy", ".txt")


def find_landmark_file(image_path: str) -> Optional[str]:
  """The landmark file beside `image_path` (same stem), or None.

  Extensions are matched case-insensitively and tried in the order of
  LANDMARK_EXTENSIONS (.pts, then .npy, then .txt).
  """
  folder, name = os.path.split(image_path)
  stem = os.path.splitext(name)[0]
  try:
    siblings = files.listdir(folder or ".")
  except OSError:
    return None
  by_extension = {}
  for sibling in siblings:
    sibling_stem, extension = os.path.splitext(sibling)
    if sibling_stem == stem:
      by_extension.setdefault(extension.lower(), sibling)
  for extension in LANDMARK_EXTENSIONS:
    if extension in by_extension:
      return files.join(folder, by_extension[extension])
  return None


def _read_text(path: str) -> str:
  try:
    with files.open_file(path, "r", encoding="utf-8", errors="strict") as f:
      return f.read()
  except (OSError, UnicodeDecodeError) as error:
    raise BadExampleError("unreadable landmarks", f"{path}: {error}") from error


def read_pts(path: str, one_based: bool = True,
             num_landmarks: int = NUM_LANDMARKS) -> np.ndarray:
  """Reads an iBUG `.pts` file.

  Args:
    path: the file.
    one_based: the file uses MATLAB pixel coordinates (iBUG convention);
      1 is subtracted to return 0-based coordinates.
    num_landmarks: expected point count.

  Returns:
    float32 [num_landmarks, 2] (x, y) pixels, 0-based.

  Raises:
    BadExampleError: "unreadable landmarks" (missing file, no braces, a
      non-numeric line, n_points disagreeing with the body), "wrong landmark
      count", "non-finite landmarks".
  """
  text = _read_text(path)
  start, end = text.find("{"), text.rfind("}")
  if start < 0 or end < start:
    raise BadExampleError("unreadable landmarks",
                          f"{path}: no '{{ ... }}' block of points")
  declared = None
  for line in text[:start].splitlines():
    key, _, value = line.partition(":")
    if key.strip().lower() == "n_points":
      try:
        declared = int(value.strip())
      except ValueError as error:
        raise BadExampleError("unreadable landmarks",
                              f"{path}: bad n_points {value!r}") from error
  rows = []
  for line in text[start + 1:end].splitlines():
    if not line.strip():
      continue
    try:
      rows.append([float(v) for v in line.replace(",", " ").split()])
    except ValueError as error:
      raise BadExampleError("unreadable landmarks",
                            f"{path}: bad point line {line!r}") from error
  if any(len(row) != 2 for row in rows):
    raise BadExampleError("unreadable landmarks",
                          f"{path}: every point line must hold 'x y'")
  if declared is not None and declared != len(rows):
    raise BadExampleError(
        "unreadable landmarks",
        f"{path}: header says n_points {declared} but lists {len(rows)}")
  points = check_landmarks(np.array(rows, np.float64).reshape(-1, 2),
                           num_landmarks, source=path)
  return points - 1.0 if one_based else points


def read_landmarks_txt(path: str,
                       num_landmarks: int = NUM_LANDMARKS) -> np.ndarray:
  """Reads a plain-text landmark file: one "x y" line per point, 0-based.

  Blank lines and lines starting with '#' are ignored; values may be
  separated by spaces, tabs or commas.

  Returns:
    float32 [num_landmarks, 2].

  Raises:
    BadExampleError: "unreadable landmarks", "wrong landmark count",
      "non-finite landmarks".
  """
  rows = []
  for line in _read_text(path).splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
      continue
    try:
      rows.append([float(v) for v in line.replace(",", " ").split()])
    except ValueError as error:
      raise BadExampleError("unreadable landmarks",
                            f"{path}: bad line {line!r}") from error
  if not rows or any(len(row) not in (2, 3) for row in rows):
    raise BadExampleError("unreadable landmarks",
                          f"{path}: expected lines of 'x y'")
  return check_landmarks(np.array([row[:2] for row in rows]), num_landmarks,
                         source=path)


def read_landmarks_npy(path: str,
                       num_landmarks: int = NUM_LANDMARKS) -> np.ndarray:
  """Reads a `.npy` landmark array [68, 2] (or [68, 3]), 0-based.

  Raises:
    BadExampleError: "unreadable landmarks" (missing, not a .npy, pickled
      objects), "wrong landmark count", "non-finite landmarks".
  """
  try:
    # Through a file object: np.load(path) is what tfds' builder tests forbid.
    with files.open_file(path, "rb") as f:
      array = np.load(f, allow_pickle=False)
  except (OSError, ValueError, EOFError) as error:
    raise BadExampleError("unreadable landmarks", f"{path}: {error}") from error
  if not np.issubdtype(array.dtype, np.number):
    raise BadExampleError("unreadable landmarks",
                          f"{path}: dtype {array.dtype} is not numeric")
  return check_landmarks(array, num_landmarks, source=path)


def read_landmark_file(path: str, pts_one_based: bool = True,
                       num_landmarks: int = NUM_LANDMARKS) -> np.ndarray:
  """Reads a `.pts`, `.txt` or `.npy` landmark file by its extension.

  Args:
    path: the file.
    pts_one_based: passed to `read_pts` (text and NumPy files are 0-based).
    num_landmarks: expected point count.

  Returns:
    float32 [num_landmarks, 2], 0-based pixels.

  Raises:
    BadExampleError: as the format's reader; "unreadable landmarks" for an
      unknown extension.
  """
  extension = os.path.splitext(path)[1].lower()
  if extension == ".pts":
    return read_pts(path, one_based=pts_one_based, num_landmarks=num_landmarks)
  if extension == ".txt":
    return read_landmarks_txt(path, num_landmarks)
  if extension == ".npy":
    return read_landmarks_npy(path, num_landmarks)
  raise BadExampleError("unreadable landmarks",
                        f"{path}: unknown landmark format {extension!r}")


def read_mat(path: str) -> Dict[str, np.ndarray]:
  """Reads a MATLAB v5/v7 `.mat` file (a local path or a URL) with
  scipy.io.loadmat.

  Returns:
    {variable name: array}, without scipy's `__header__`-style entries.

  Raises:
    BadExampleError: "unreadable mat file" for a missing, empty, truncated,
      corrupt or v7.3 (HDF5) file.
  """
  # pylint: disable=g-import-not-at-top
  import scipy.io
  from scipy.io.matlab import MatReadError
  # pylint: enable=g-import-not-at-top
  try:
    # scipy opens local paths itself; a URL's bytes are parsed from memory.
    contents = scipy.io.loadmat(
        io.BytesIO(files.read_bytes(path)) if files.is_url(path) else path)
  except NotImplementedError as error:
    # scipy refuses v7.3 files, which are HDF5 containers.
    raise BadExampleError(
        "unreadable mat file",
        f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save it "
        "with save(..., '-v7')") from error
  except (MatReadError, OSError, ValueError, TypeError, EOFError, KeyError,
          IndexError, zlib.error, struct.error) as error:
    # Truncated or corrupt files surface as any of these, depending on where
    # scipy's parser runs out of bytes.
    raise BadExampleError("unreadable mat file", f"{path}: {error}") from error
  return {key: value for key, value in contents.items()
          if not key.startswith("__")}


def mat_variable(contents: Dict[str, np.ndarray], key: str,
                 source: str = "") -> np.ndarray:
  """One variable of a read `.mat` file, as a float64 array.

  Raises:
    BadExampleError: "missing mat variable" when `key` is absent or not
      numeric.
  """
  if key not in contents:
    raise BadExampleError(
        "missing mat variable",
        f"{source} has no '{key}' (has {sorted(contents)})")
  value = np.asarray(contents[key])
  if not np.issubdtype(value.dtype, np.number):
    raise BadExampleError("missing mat variable",
                          f"{source}: '{key}' has dtype {value.dtype}")
  return value.astype(np.float64)


def landmarks_from_matrix(matrix: np.ndarray, source: str = "",
                          one_based: bool = False,
                          num_landmarks: int = NUM_LANDMARKS) -> np.ndarray:
  """Landmarks stored as a point matrix in either orientation.

  MATLAB annotations store points as [2, L] / [3, L] (one point per column,
  e.g. 300W-LP `pt2d`, AFLW2000-3D `pt3d_68`) or [L, 2] / [L, 3] (one per
  row, e.g. 300W-LP `pts_3d`). Rows x, y (and z, dropped) either way.

  Args:
    matrix: [2|3, L] or [L, 2|3].
    source: for messages.
    one_based: subtract 1 (MATLAB pixel coordinates -> 0-based).
    num_landmarks: expected L.

  Returns:
    float32 [num_landmarks, 2].

  Raises:
    BadExampleError: "wrong landmark count", "non-finite landmarks".
  """
  matrix = np.asarray(matrix, np.float64)
  if (matrix.ndim == 2 and matrix.shape[1] == num_landmarks
      and matrix.shape[0] in (2, 3)):
    matrix = matrix.T
  points = check_landmarks(matrix, num_landmarks, source=source)
  return points - 1.0 if one_based else points
