"""LFW-style face verification pair lists (`pairs.txt`).

The format of LFW's `pairs.txt` / `pairsDevTest.txt`:

    10 300             first line: "folds n" (or just "n": one fold)
    Abel_Pacheco 1 4   same person: name, image i, image j
    ...                (n same lines, then n different lines, per fold)
    Abdel_Madi_Shabneh 1 Dean_Barker 1
                       different people: name1, i, name2, j

Images are ROOT/name/name_%04d.jpg, 1-based as in LFW. Fields are split on
any whitespace. `read_pairs` checks the header against the number of lines;
`image_path` names an image; `read_image` loads it as RGB uint8.
"""

import dataclasses
import os
from typing import List

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class Pair:
  """One listed pair: (name1, index1) vs (name2, index2), same or not."""
  name1: str
  index1: int
  name2: str
  index2: int
  same: bool
  fold: int


@dataclasses.dataclass
class PairList:
  """A read pairs file.

  Attributes:
    folds: number of folds.
    pairs_per_fold_and_kind: n, the same (and the different) pairs per fold.
    pairs: every pair in file order (fold by fold: n same, then n different).
  """
  folds: int
  pairs_per_fold_and_kind: int
  pairs: List[Pair]


def image_path(root: str, name: str, index: int) -> str:
  """ROOT/name/name_%04d.jpg (LFW's layout)."""
  return os.path.join(root, name, f"{name}_{index:04d}.jpg")


def _int(text: str, path: str, line_number: int) -> int:
  try:
    return int(text)
  except ValueError:
    raise ValueError(f"{path}:{line_number}: expected an integer. Received: "
                     f"{text!r}") from None


def read_pairs(path: str) -> PairList:
  """Reads an LFW-style pairs file (module docstring).

  Raises:
    FileNotFoundError: no such file.
    ValueError: a malformed header or line, or a line count that does not
      match "folds n" (folds x 2n pair lines); the message names the line.
  """
  with open(path, encoding="utf-8") as f:
    lines = [(number, line.split()) for number, line in enumerate(f, 1)]
  lines = [(number, fields) for number, fields in lines if fields]
  if not lines:
    raise ValueError(f"{path} is empty: expected a 'folds n' or 'n' header")
  number, header = lines[0]
  if len(header) == 1:
    folds, per_kind = 1, _int(header[0], path, number)
  elif len(header) == 2:
    folds, per_kind = (_int(header[0], path, number),
                       _int(header[1], path, number))
  else:
    raise ValueError(f"{path}:{number}: expected 'folds n' or 'n'. Received: "
                     f"{' '.join(header)!r}")
  if folds < 1 or per_kind < 1:
    raise ValueError(f"{path}:{number}: folds and n must be >= 1. Received: "
                     f"folds={folds}, n={per_kind}")
  body = lines[1:]
  if len(body) != folds * 2 * per_kind:
    raise ValueError(
        f"{path}: the header says {folds} fold(s) of {per_kind} same and "
        f"{per_kind} different pairs ({folds * 2 * per_kind} lines); "
        f"found {len(body)} pair lines")
  pairs = []
  for position, (number, fields) in enumerate(body):
    fold = position // (2 * per_kind)
    if len(fields) == 3:
      name, i, j = fields
      pair = Pair(name, _int(i, path, number), name, _int(j, path, number),
                  True, fold)
    elif len(fields) == 4:
      name1, i, name2, j = fields
      pair = Pair(name1, _int(i, path, number), name2, _int(j, path, number),
                  False, fold)
    else:
      raise ValueError(f"{path}:{number}: expected 'name i j' or 'name1 i "
                       f"name2 j'. Received: {' '.join(fields)!r}")
    pairs.append(pair)
  return PairList(folds, per_kind, pairs)


def read_image(root: str, name: str, index: int) -> np.ndarray:
  """The image ROOT/name/name_%04d.jpg as [H, W, 3] RGB uint8.

  Raises:
    FileNotFoundError: the file is missing or unreadable (named).
  """
  path = image_path(root, name, index)
  image = cv2.imread(path, cv2.IMREAD_COLOR) if os.path.isfile(path) else None
  if image is None:
    raise FileNotFoundError(
        f"Pair image {name} {index} not found or unreadable: {path}")
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
