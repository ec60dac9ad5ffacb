"""Face verification metrics and pair scores, in NumPy.

A verification set is a list of image pairs, each labelled same identity or
not; a representation gives every pair a score (higher: more alike). Two
metrics summarise the scores (docs/evaluation.md, "Face verification"):

  roc_auc: the area under the ROC curve, by the Mann-Whitney rank formula
    (tied scores count one half): the probability that a random same pair
    scores above a random different pair.
  verification_accuracy: the LFW protocol. The pairs are cut into folds; for
    each fold the threshold that maximises accuracy on the OTHER folds is
    applied to it; reported are the mean and standard deviation of the
    held-out accuracies.

Pair scores of the representations the protocol compares
(`protocols/verification.py`): `cosine_scores` of identity coefficients or
of face embeddings, `euclidean_scores` of identity coefficients (SIR's
measure), and `vertex_scores`, the negative mean vertex distance
(mm) after rigid alignment of two neutral identity shapes.
"""

from typing import Sequence, Tuple, Union

import numpy as np

from mgc_tf.evaluation import metrics


def _scores_and_labels(scores, same) -> Tuple[np.ndarray, np.ndarray]:
  scores = np.asarray(scores, np.float64).reshape(-1)
  same = np.asarray(same).reshape(-1).astype(bool)
  if scores.shape != same.shape:
    raise ValueError("One label per score. Received: "
                     f"{scores.size} scores and {same.size} labels")
  if not np.all(np.isfinite(scores)):
    raise ValueError("Verification scores must be finite. Received: "
                     f"{int(np.sum(~np.isfinite(scores)))} non-finite")
  return scores, same


def average_ranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks of `values` [P]; tied values share their mean rank."""
  _, inverse, counts = np.unique(values, return_inverse=True,
                                 return_counts=True)
  ends = np.cumsum(counts)  # the rank of each group's last member
  return (ends - (counts - 1) / 2.0)[inverse.reshape(-1)]


def roc_auc(scores, same) -> float:
  """Area under the ROC curve of `scores` for the labels `same`.

  Mann-Whitney: AUC = (R_same - n_same (n_same + 1) / 2) / (n_same n_diff),
  R_same the sum of the same pairs' ranks among all scores (average ranks
  for ties, so a tie counts 1/2).

  Args:
    scores: [P] pair scores, higher = more alike.
    same: [P] bool, True for a same-identity pair.

  Returns:
    AUC in [0, 1]; 1: every same pair scores above every different pair,
    0.5: chance (or all scores equal). NaN without both kinds of pairs.
  """
  scores, same = _scores_and_labels(scores, same)
  n_same = int(same.sum())
  n_diff = same.size - n_same
  if not n_same or not n_diff:
    return float("nan")
  rank_sum = average_ranks(scores)[same].sum()
  return float((rank_sum - n_same * (n_same + 1) / 2.0) / (n_same * n_diff))


def candidate_thresholds(scores: np.ndarray) -> np.ndarray:
  """-inf, the midpoints between consecutive distinct scores, +inf
  (ascending): every distinct split of `scores` by `score > threshold`."""
  distinct = np.unique(scores)
  return np.concatenate([[-np.inf], (distinct[1:] + distinct[:-1]) / 2.0,
                         [np.inf]])


def best_threshold(scores, same) -> float:
  """The threshold t maximising the accuracy of "same iff score > t".

  Candidates are `candidate_thresholds(scores)`; among equally accurate
  ones the lowest wins.
  """
  scores, same = _scores_and_labels(scores, same)
  thresholds = candidate_thresholds(scores)
  same_sorted = np.sort(scores[same])
  diff_sorted = np.sort(scores[~same])
  # Correct calls: same pairs above t plus different pairs at or below t.
  correct = (same_sorted.size -
             np.searchsorted(same_sorted, thresholds, side="right") +
             np.searchsorted(diff_sorted, thresholds, side="right"))
  return float(thresholds[int(np.argmax(correct))])


def accuracy_at(scores, same, threshold: float) -> float:
  """Fraction of pairs called right by "same iff score > threshold"."""
  scores, same = _scores_and_labels(scores, same)
  return float(np.mean((scores > threshold) == same))


def fold_indices(num_pairs: int, folds: Union[int, Sequence[int]]
                 ) -> np.ndarray:
  """[P] fold index of each pair.

  Args:
    num_pairs: P.
    folds: a number of folds k (the pairs, in order, cut into k contiguous
      near-equal blocks, as LFW's pairs.txt lists them; at most P), or the
      [P] fold index of each pair.
  """
  if np.ndim(folds) == 0:
    count = int(folds)
    if count < 2 or count > num_pairs:
      raise ValueError("Need 2 <= folds <= number of pairs. Received: "
                       f"folds={count}, {num_pairs} pairs")
    index = np.zeros([num_pairs], np.int64)
    for fold, block in enumerate(np.array_split(np.arange(num_pairs), count)):
      index[block] = fold
    return index
  index = np.asarray(folds, np.int64).reshape(-1)
  if index.size != num_pairs:
    raise ValueError("One fold index per pair. Received: "
                     f"{index.size} for {num_pairs} pairs")
  if np.unique(index).size < 2:
    raise ValueError("Need at least 2 folds. Received: one")
  return index


def verification_accuracy(scores, same,
                          folds: Union[int, Sequence[int]] = 10
                          ) -> Tuple[float, float]:
  """LFW-protocol accuracy: (mean, std) of held-out fold accuracies.

  For each fold, `best_threshold` on the pairs of all other folds decides
  the fold's pairs ("same iff score > threshold"); the std is NumPy's
  (population, ddof 0) over the folds.

  Args:
    scores: [P] pair scores, higher = more alike.
    same: [P] bool, True for a same-identity pair.
    folds: number of contiguous folds (capped at P), or [P] fold indices
      (`fold_indices`).

  Returns:
    (mean accuracy, std of the accuracies), fractions in [0, 1].
  """
  scores, same = _scores_and_labels(scores, same)
  if np.ndim(folds) == 0:
    folds = min(int(folds), scores.size)
  index = fold_indices(scores.size, folds)
  accuracies = []
  for fold in np.unique(index):
    held_out = index == fold
    threshold = best_threshold(scores[~held_out], same[~held_out])
    accuracies.append(accuracy_at(scores[held_out], same[held_out],
                                  threshold))
  return float(np.mean(accuracies)), float(np.std(accuracies))


def cosine_scores(features: np.ndarray, first: np.ndarray,
                  second: np.ndarray) -> np.ndarray:
  """Cosine of the feature vectors of each pair's two images.

  Args:
    features: [N, D] one vector per image (identity coefficients or face
      embeddings).
    first: [P] index into `features` of each pair's first image.
    second: [P] index of each pair's second image.

  Returns:
    [P] cosines in [-1, 1]; 0 for a zero vector.
  """
  features = np.asarray(features, np.float64)
  norms = np.linalg.norm(features, axis=-1, keepdims=True)
  unit = features / np.maximum(norms, 1e-12)
  return np.sum(unit[first] * unit[second], axis=-1)


def euclidean_scores(features: np.ndarray, first: np.ndarray,
                     second: np.ndarray) -> np.ndarray:
  """Minus the Euclidean distance of each pair's feature vectors.

  SIR (Jiang et al., section IV.A) verifies with the Euclidean distance of
  shape coefficients rather than their cosine: with an orthonormal,
  std-scaled basis it is proportional to the distance of the shapes, and it
  sees the coefficients' norm, which the cosine ignores.

  Args:
    features: [N, D] one vector per image.
    first: [P] index of each pair's first image.
    second: [P] index of each pair's second image.

  Returns:
    [P] -||a - b||_2 (higher = more alike; 0 for equal vectors).
  """
  features = np.asarray(features, np.float64)
  return -np.linalg.norm(features[first] - features[second], axis=-1)


def vertex_scores(shapes: np.ndarray, first: np.ndarray,
                  second: np.ndarray) -> np.ndarray:
  """Minus the mean vertex distance of each pair's shapes, rigidly aligned.

  Args:
    shapes: [N, V, 3] one mesh per image, mm (the protocol passes neutral
      identity shapes: expression and pose removed).
    first: [P] index of each pair's first image.
    second: [P] index of each pair's second image.

  Returns:
    [P] -distance, mm (higher = more alike; 0 for identical shapes). The
    first shape is moved onto the second (`metrics.aligned_vertex_error`;
    the distance is the same the other way round).
  """
  shapes = np.asarray(shapes, np.float64)
  return -np.array([metrics.aligned_vertex_error(shapes[a], shapes[b])
                    for a, b in zip(first, second)], np.float64)
