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
"""

import dataclasses
import os
import struct
import zlib
from typing import (Any, Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple, TypeVar)

import numpy as np

from mgc_tf.data.bad_input import (NUM_LANDMARKS, BadExampleError,
                                   SkipCounter, check_landmarks,
                                   generate_with_skips)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# Tried in this order when several landmark files share an image's stem.
LANDMARK_EXTENSIONS = (".pts", ".npy", ".txt")

# iBUG 68-point index of each point's mirror image (left <-> right), used when
# an image is flipped horizontally: point k of the flipped face is point
# MIRROR_68[k] of the original, moved to x' = width - 1 - x.
MIRROR_68 = np.array(
    list(range(16, -1, -1))                      # jaw 0..16
    + list(range(26, 21, -1))                    # right brow 17..21 <- 26..22
    + list(range(21, 16, -1))                    # left brow 22..26 <- 21..17
    + [27, 28, 29, 30]                           # nose bridge
    + [35, 34, 33, 32, 31]                       # nostrils
    + [45, 44, 43, 42, 47, 46]                   # right eye <- left eye
    + [39, 38, 37, 36, 41, 40]                   # left eye <- right eye
    + [54, 53, 52, 51, 50, 49, 48]               # outer lip, top
    + [59, 58, 57, 56, 55]                       # outer lip, bottom
    + [64, 63, 62, 61, 60]                       # inner lip, top
    + [67, 66, 65],                              # inner lip, bottom
    dtype=np.int64)


def is_image_file(path: str) -> bool:
  """True when `path` has one of IMAGE_EXTENSIONS (case-insensitive)."""
  return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def find_landmark_file(image_path: str) -> Optional[str]:
  """The landmark file beside `image_path` (same stem), or None.

  Extensions are matched case-insensitively and tried in the order of
  LANDMARK_EXTENSIONS (.pts, then .npy, then .txt).
  """
  folder, name = os.path.split(image_path)
  stem = os.path.splitext(name)[0]
  try:
    siblings = os.listdir(folder or ".")
  except OSError:
    return None
  by_extension = {}
  for sibling in siblings:
    sibling_stem, extension = os.path.splitext(sibling)
    if sibling_stem == stem:
      by_extension.setdefault(extension.lower(), sibling)
  for extension in LANDMARK_EXTENSIONS:
    if extension in by_extension:
      return os.path.join(folder, by_extension[extension])
  return None


def _read_text(path: str) -> str:
  try:
    with open(path, "r", encoding="utf-8", errors="strict") as f:
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
    with open(path, "rb") as f:
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
  """Reads a MATLAB v5/v7 `.mat` file with scipy.io.loadmat.

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
    contents = scipy.io.loadmat(path)
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


def mirror_landmarks_68(landmarks: np.ndarray, image_width: int) -> np.ndarray:
  """Landmarks of the horizontally flipped image.

  Args:
    landmarks: [68, 2] 0-based pixels in the original image.
    image_width: width W of the image, pixels.

  Returns:
    float32 [68, 2]: x' = W - 1 - x, and points renumbered with MIRROR_68 so
    that index 36 is again the outer corner of the eye on the image's left.
  """
  landmarks = np.asarray(landmarks, np.float64)
  mirrored = landmarks[MIRROR_68].copy()
  mirrored[:, 0] = (image_width - 1) - mirrored[:, 0]
  return mirrored.astype(np.float32)


def has_mirrored_numbering(landmarks: np.ndarray) -> bool:
  """True when 68 landmarks are numbered as on a mirrored face.

  In iBUG numbering point 36 (outer corner of the eye on the image's left),
  point 45 (the other outer eye corner) and point 8 (chin) run clockwise on
  screen (y down) for any upright face up to 90 degrees of yaw or roll.
  Flipping an image without renumbering its points reverses that turn.

  Args:
    landmarks: [68, 2] pixels.
  """
  points = np.asarray(landmarks, np.float64)
  eye_axis = points[45] - points[36]
  to_chin = points[8] - points[36]
  return float(eye_axis[0] * to_chin[1] - eye_axis[1] * to_chin[0]) < 0.0


View = TypeVar("View")


@dataclasses.dataclass(frozen=True)
class LoadedView:
  """What a dataset's annotation gives for one view, before alignment.

  Attributes:
    image: uint8 RGB [H, W, 3].
    landmarks: float [68, 2] 0-based pixels, or None to detect them.
    info: per-view metadata the builder stores (pose, camera, ...).
  """
  image: np.ndarray
  landmarks: Optional[np.ndarray]
  info: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PreprocessedView:
  """One aligned view of a group.

  Attributes:
    view: the builder's view description (path, name, ...).
    face: mgc_tf.data.preprocessing.PreprocessedFace (crop, landmarks, skin).
    info: LoadedView.info.
    landmarks_detected: the landmarks came from the detector, not a file.
  """
  view: Any
  face: Any
  info: Dict[str, Any]
  landmarks_detected: bool


def preprocess_views(
    views: Sequence[View],
    load: Callable[[View], LoadedView],
    counter: SkipCounter,
    name_of: Callable[[View], str],
    image_size: int,
    landmarker=None,
) -> List[PreprocessedView]:
  """Reads and aligns the views of one group, dropping the bad ones.

  Each view is loaded (image, and landmarks or None to detect them) and
  passed to `mgc_tf.data.preprocessing.preprocess_face`. A view that raises
  BadExampleError (unreadable image or annotation, no face found, bad
  landmarks) is dropped and counted in `counter` under its own reason, a
  good one is counted as kept; the caller decides what to do with a group
  left too small.

  Args:
    views: the group's views, in order.
    load: view -> LoadedView; raises BadExampleError for a bad view.
    counter: where views are counted (kept, or skipped by reason).
    name_of: view -> name used in skip messages.
    image_size: side S of the aligned crop, pixels.
    landmarker: a FaceLandmarker for detection, or None for the default.

  Returns:
    PreprocessedView for each view that worked, in input order.
  """
  from mgc_tf.data import preprocessing  # pylint: disable=g-import-not-at-top
  kept = []
  for view in views:
    try:
      loaded = load(view)
      face = preprocessing.preprocess_face(
          loaded.image, landmarks=loaded.landmarks, landmarker=landmarker,
          image_size=image_size)
    except BadExampleError as error:
      counter.skip(name_of(view), error)
      continue
    counter.keep()
    kept.append(PreprocessedView(view=view, face=face, info=loaded.info,
                                 landmarks_detected=loaded.landmarks is None))
  return kept


# A multi-view group needs a target and at least one source.
MIN_GROUP_VIEWS = 2


def stack_group(kept: Sequence[PreprocessedView], num_views: int,
                identity: str, image_size: int) -> Dict[str, Any]:
  """The core multi-view features of a group's surviving views.

  Args:
    kept: what `preprocess_views` returned for the group.
    num_views: how many views the group had before bad ones were dropped.
    identity: the identity label.
    image_size: side S of the aligned crops, pixels.

  Returns:
    dict with the core keys of `mgc_tf.data.features` filled.

  Raises:
    BadExampleError: "too few views" when fewer than MIN_GROUP_VIEWS survive.
  """
  from mgc_tf.data import features  # pylint: disable=g-import-not-at-top
  if len(kept) < MIN_GROUP_VIEWS:
    raise BadExampleError("too few views",
                          f"{len(kept)} of {num_views} views usable")
  faces = [view.face for view in kept]
  return features.stack_views(
      [face.image for face in faces], [face.landmarks for face in faces],
      [face.skin for face in faces], identity, image_size)


def generate_group_examples(groups: Sequence[Any],
                            make_example: Callable[[Any], Tuple[str, dict]],
                            group_counter: SkipCounter,
                            view_counter: SkipCounter,
                            key_of: Callable[[Any], str]
                            ) -> Iterator[Tuple[str, dict]]:
  """`generate_with_skips` over view groups, then the views' report too.

  Dropped views are counted in `view_counter` (by `preprocess_views`),
  skipped groups in `group_counter`; both print their summary at the end.
  """
  yield from generate_with_skips(groups, make_example, group_counter,
                                 key_of=key_of)
  view_counter.report()
