"""Face verification: the metrics' maths, the pair lists, the protocol and
`python -m mgc_tf.evaluate --protocol=verification`.

The data is synthetic_multiview/tiny (3 test identities x 3 views, 64 px),
built into a temporary data_dir; the model is the `trained_model_dir`
fixture (random weights).
"""

import itertools
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from mgc_tf.evaluation import protocols
from mgc_tf.evaluation import verification
from mgc_tf.evaluation.protocols import verification as protocol
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.io import lfw_pairs
from tfds_builders.synthetic_multiview import (
    synthetic_multiview_dataset_builder)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "synthetic_multiview/tiny"
KEYS = {f"verification/{name}/{metric}"
        for name in protocol.REPRESENTATIONS
        for metric in ("accuracy", "accuracy_std", "auc")} | {
            "verification/pairs"}


# ------------------------------------------------------------------ metrics

def brute_force_auc(scores, same):
  """P(same score > different score) + P(tie) / 2, over all pairs of pairs."""
  total = 0.0
  positives = [s for s, y in zip(scores, same) if y]
  negatives = [s for s, y in zip(scores, same) if not y]
  for p in positives:
    for n in negatives:
      total += 1.0 if p > n else 0.5 if p == n else 0.0
  return total / (len(positives) * len(negatives))


def brute_force_accuracy(scores, same, fold_of):
  """Every fold: try every threshold in a fine grid of the training scores'
  midpoints and ends, keep the lowest most accurate, test on the fold."""
  accuracies = []
  for fold in sorted(set(fold_of)):
    train = [(s, y) for s, y, f in zip(scores, same, fold_of) if f != fold]
    test = [(s, y) for s, y, f in zip(scores, same, fold_of) if f == fold]
    values = sorted({s for s, _ in train})
    thresholds = ([-np.inf] + [(a + b) / 2 for a, b in zip(values, values[1:])]
                  + [np.inf])
    best, best_correct = None, -1
    for t in thresholds:
      correct = sum((s > t) == y for s, y in train)
      if correct > best_correct:
        best, best_correct = t, correct
    accuracies.append(sum((s > best) == y for s, y in test) / len(test))
  return np.mean(accuracies), np.std(accuracies)


def test_auc_of_perfect_inverted_random_and_tied_scores():
  same = np.array([1, 1, 1, 0, 0, 0], bool)
  assert verification.roc_auc([0.9, 0.8, 0.7, 0.3, 0.2, 0.1], same) == 1.0
  assert verification.roc_auc([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], same) == 0.0
  # All tied: every comparison counts one half.
  assert verification.roc_auc(np.ones(6), same) == 0.5
  # By hand: same {3, 1}, different {2, 1}: 3>2, 3>1, 1<2, 1=1 -> 2.5 / 4.
  assert verification.roc_auc([3, 1, 2, 1], [1, 1, 0, 0]) == 0.625
  # Random scores: near 0.5, and equal to the brute force exactly.
  rng = np.random.default_rng(3)
  scores = rng.integers(0, 20, 400).astype(float)  # many ties
  labels = rng.uniform(size=400) < 0.5
  auc = verification.roc_auc(scores, labels)
  assert auc == pytest.approx(brute_force_auc(scores, labels), abs=1e-12)
  assert abs(auc - 0.5) < 0.08
  assert np.isnan(verification.roc_auc([1.0, 2.0], [True, True]))


def test_average_ranks_share_ties():
  np.testing.assert_array_equal(
      verification.average_ranks(np.array([10.0, 20.0, 10.0, 30.0, 20.0])),
      [1.5, 3.5, 1.5, 5.0, 3.5])


def test_accuracy_by_hand():
  # Separable: every fold's threshold from the others separates it too.
  scores = np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4])
  same = np.array([1, 0, 1, 0, 1, 0, 1, 0], bool)
  assert verification.verification_accuracy(scores, same, 4) == (1.0, 0.0)
  # Inverted: training on the other folds says "everything different"
  # (tie with "everything same", the lowest threshold wins: -inf, so
  # "everything same"); half of each held-out fold is right.
  mean, std = verification.verification_accuracy(-scores, same, 4)
  assert (mean, std) == (0.5, 0.0)
  # Two folds by hand: fold 0 = pairs 0-1, fold 1 = pairs 2-3.
  scores = np.array([0.3, 0.1, 0.5, 0.6])
  same = np.array([1, 0, 1, 0], bool)
  # fold 0 trains on (0.5 same, 0.6 diff): t=-inf 1/2, t=0.55 0/2, t=inf 1/2
  # -> -inf -> fold 0 (0.3 same, 0.1 diff): 1/2.
  # fold 1 trains on (0.3 same, 0.1 diff): t=0.2 gives 2/2 -> fold 1:
  # 0.5 > 0.2 right, 0.6 > 0.2 wrong: 1/2.
  assert verification.verification_accuracy(scores, same, 2) == (0.5, 0.0)
  assert verification.best_threshold([0.3, 0.1], [True, False]) == 0.2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_matches_a_brute_force(seed):
  rng = np.random.default_rng(seed)
  same = rng.uniform(size=60) < 0.5
  scores = np.round(rng.normal(same * 0.8, 1.0), 1)  # ties on purpose
  for folds in (2, 5, 10):
    fold_of = verification.fold_indices(60, folds)
    expected = brute_force_accuracy(scores, same, fold_of)
    got = verification.verification_accuracy(scores, same, folds)
    assert got == pytest.approx(expected, abs=1e-12)
  # Explicit fold indices give the same as the brute force over them.
  fold_of = rng.integers(0, 3, 60)
  assert verification.verification_accuracy(scores, same, fold_of) == (
      pytest.approx(brute_force_accuracy(scores, same, fold_of), abs=1e-12))


def test_fold_and_score_checks():
  np.testing.assert_array_equal(verification.fold_indices(5, 2),
                                [0, 0, 0, 1, 1])
  with pytest.raises(ValueError, match="folds"):
    verification.fold_indices(5, 1)
  with pytest.raises(ValueError, match="finite"):
    verification.roc_auc([np.nan, 1.0], [True, False])


def test_pair_scores():
  features = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
  np.testing.assert_allclose(
      verification.cosine_scores(features, np.array([0, 0, 0]),
                                 np.array([1, 2, 3])), [1.0, 0.0, 0.0])
  # The Euclidean score sees the norm the cosine ignores: [1, 0] and [2, 0]
  # are 1 apart.
  np.testing.assert_allclose(
      verification.euclidean_scores(features, np.array([0, 0, 3]),
                                    np.array([1, 2, 3])),
      [-1.0, -np.sqrt(10.0), 0.0])
  # A rotated and shifted copy scores 0 mm; a scaled one does not.
  rng = np.random.default_rng(0)
  shape = rng.normal(0, 50, [30, 3])
  angle = 0.4
  rotation = np.array([[np.cos(angle), -np.sin(angle), 0],
                       [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
  shapes = np.stack([shape, shape @ rotation.T + [5, -3, 2], shape * 1.1])
  scores = verification.vertex_scores(shapes, np.array([0, 0]),
                                      np.array([1, 2]))
  assert scores[0] == pytest.approx(0.0, abs=1e-9)
  assert scores[1] < -1.0


# -------------------------------------------------------------------- pairs

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("tfds"))
  synthetic_multiview_dataset_builder.Builder(
      config="tiny", data_dir=directory).download_and_prepare()
  return directory


@pytest.fixture(scope="module")
def builder(data_dir):
  return protocols.load_dataset_builder(TINY, data_dir)


@pytest.fixture(scope="module")
def predictor(trained_model_dir):
  return reconstructor_lib.Reconstructor.from_run(trained_model_dir)


def test_builder_pairs_are_balanced_and_deterministic(builder):
  pairs = protocol.pairs_from_builder(builder, "test", seed=0)
  # 3 identities x 3 views: 9 same candidates (3 per identity), 27
  # different; balanced: 9 of each, interleaved.
  assert pairs.same.size == 18
  assert pairs.same.sum() == 9
  np.testing.assert_array_equal(pairs.same, np.tile([True, False], 9))
  assert len(pairs.images) == 9
  identities = [label.split("/")[0] for label in pairs.labels]
  for a, b, same in zip(pairs.first, pairs.second, pairs.same):
    assert a != b
    assert (identities[a] == identities[b]) == same
  listed = {(pairs.labels[a], pairs.labels[b])
            for a, b in zip(pairs.first, pairs.second)}
  assert len(listed) == 18  # no pair twice
  # Folds: contiguous, each holding same and different pairs.
  assert np.unique(pairs.folds).size == 10
  again = protocol.pairs_from_builder(builder, "test", seed=0)
  for field in ("first", "second", "same", "folds"):
    np.testing.assert_array_equal(getattr(pairs, field),
                                  getattr(again, field))
  assert pairs.labels == again.labels
  # Capped and reseeded: still balanced, a different draw.
  small = protocol.pairs_from_builder(builder, "test", max_pairs=8, seed=1,
                                      folds=4)
  assert small.same.size == 8 and small.same.sum() == 4
  assert np.unique(small.folds).size == 4
  other = protocol.pairs_from_builder(builder, "test", seed=1)
  assert [(other.labels[a], other.labels[b]) for a, b in
          zip(other.first, other.second)] != [
              (pairs.labels[a], pairs.labels[b])
              for a, b in zip(pairs.first, pairs.second)]


class TableLookupPredictor(reconstructor_lib.Reconstructor):
  """Returns the ground-truth coefficients of each image, found by its
  pixels (the protocol reorders images)."""

  def __init__(self, decoder, images, rows, image_size=64):
    super().__init__(self._lookup, decoder, image_size, "coefficient table")
    self.keys = [self._key(image) for image in
                 reconstructor_lib.model_inputs(images, image_size)]
    self.rows = np.asarray(rows, np.float32)

  @staticmethod
  def _key(image):
    return np.round(np.asarray(image) * 255).astype(np.uint8).tobytes()

  def _lookup(self, images):
    rows = [self.rows[self.keys.index(self._key(image))]
            for image in images.numpy()]
    return {"coefficients": np.stack(rows)}


def test_ground_truth_coefficients_verify_perfectly(builder, predictor):
  examples = list(tfds.as_numpy(builder.as_dataset(split="test",
                                                   shuffle_files=False)))
  images = np.concatenate([e["images"] for e in examples])
  rows = np.concatenate([e["coefficients"] for e in examples])
  truth = TableLookupPredictor(predictor.decoder, images, rows)
  result = protocols.evaluate_verification(truth, builder, "test",
                                           batch_size=4, progress=False,
                                           embedding=None)
  m = result.metrics
  assert set(m) == KEYS - {f"verification/render_embedding/{metric}"
                           for metric in ("accuracy", "accuracy_std", "auc")}
  # Every view of an identity has the same identity coefficients: cosine 1
  # and 0 mm, above every different pair.
  assert m["verification/coefficients/auc"] == 1.0
  assert m["verification/vertices/auc"] == 1.0
  assert m["verification/coefficients/accuracy"] == 1.0
  assert m["verification/coefficients_euclidean/auc"] == 1.0
  assert m["verification/pairs"] == 18
  same = [r for r in result.details if r["same"]]
  assert all(r["coefficients"] == pytest.approx(1.0) for r in same)
  assert all(r["vertices"] == pytest.approx(0.0, abs=1e-3) for r in same)
  assert result.counts == {"pairs": 18, "same_pairs": 9,
                           "different_pairs": 9, "images": 9, "folds": 10}


def test_the_model_scores_every_representation(builder, predictor):
  result = protocols.evaluate_verification(predictor, builder, "test",
                                           progress=False)
  assert set(result.metrics) == KEYS
  assert all(np.isfinite(v) for v in result.metrics.values())
  for name in protocol.REPRESENTATIONS:
    assert 0.0 <= result.metrics[f"verification/{name}/auc"] <= 1.0


# --------------------------------------------------------------- pairs.txt

def _write_pairs_set(root, lines, names_and_counts, size=32):
  rng = np.random.default_rng(0)
  images = os.path.join(root, "images")
  for name, count in names_and_counts.items():
    os.makedirs(os.path.join(images, name))
    for index in range(1, count + 1):
      cv2.imwrite(lfw_pairs.image_path(images, name, index),
                  rng.integers(0, 255, [size, size, 3], np.uint8))
  path = os.path.join(root, "pairs.txt")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path, images


PAIRS_LINES = ["2 2",
               "Ann_A 1 2", "Bob_B 1 2", "Ann_A 1 Bob_B 1", "Cy_C 1 Ann_A 2",
               "Cy_C 1 2", "Ann_A 2 3", "Bob_B 2 Cy_C 2", "Ann_A 3 Cy_C 1"]
PEOPLE = {"Ann_A": 3, "Bob_B": 2, "Cy_C": 2}


def test_pairs_file_reader(tmp_path):
  path, images = _write_pairs_set(str(tmp_path), PAIRS_LINES, PEOPLE)
  listed = lfw_pairs.read_pairs(path)
  assert (listed.folds, listed.pairs_per_fold_and_kind) == (2, 2)
  assert listed.pairs[0] == lfw_pairs.Pair("Ann_A", 1, "Ann_A", 2, True, 0)
  assert listed.pairs[3] == lfw_pairs.Pair("Cy_C", 1, "Ann_A", 2, False, 0)
  assert [p.same for p in listed.pairs] == [True, True, False, False] * 2
  assert [p.fold for p in listed.pairs] == [0] * 4 + [1] * 4
  assert lfw_pairs.image_path(images, "Ann_A", 3).endswith(
      os.path.join("Ann_A", "Ann_A_0003.jpg"))
  pairs = protocol.pairs_from_file(path, images)
  assert len(pairs.images) == 7  # each image read once
  assert pairs.images.shape[1:] == (32, 32, 3)
  np.testing.assert_array_equal(pairs.folds, [0] * 4 + [1] * 4)
  assert pairs.labels[pairs.first[3]] == "Cy_C_0001"
  assert pairs.labels[pairs.second[3]] == "Ann_A_0002"


def test_one_fold_pairs_file_is_cut_into_balanced_folds(tmp_path):
  lines = (["3"] + [f"Ann_A {i} {j}" for i, j in
                    itertools.combinations([1, 2, 3], 2)] +
           ["Ann_A 1 Bob_B 1", "Ann_A 2 Bob_B 2", "Ann_A 3 Bob_B 1"])
  path, images = _write_pairs_set(str(tmp_path), lines, PEOPLE)
  pairs = protocol.pairs_from_file(path, images, folds=3)
  np.testing.assert_array_equal(pairs.folds, [0, 1, 2, 0, 1, 2])


def test_pairs_file_errors(tmp_path):
  path, images = _write_pairs_set(str(tmp_path), PAIRS_LINES,
                                  {"Ann_A": 3, "Bob_B": 2, "Cy_C": 1})
  with pytest.raises(FileNotFoundError, match="Cy_C_0002.jpg"):
    protocol.pairs_from_file(path, images)
  bad = tmp_path / "bad.txt"
  bad.write_text("1 2\nAnn_A 1 2\n")
  with pytest.raises(ValueError, match="2 different pairs.*found 1"):
    lfw_pairs.read_pairs(str(bad))
  bad.write_text("1\nAnn_A 1\nAnn_A 1 Bob_B 1\n")
  with pytest.raises(ValueError, match=r"bad.txt:2: expected 'name i j'"):
    lfw_pairs.read_pairs(str(bad))
  bad.write_text("1\nAnn_A one 2\nAnn_A 1 Bob_B 1\n")
  with pytest.raises(ValueError, match="integer"):
    lfw_pairs.read_pairs(str(bad))


# --------------------------------------------------------------------- CLI

@pytest.mark.slow
def test_cli_verification_prints_every_representation(
    data_dir, trained_model_dir, tmp_path):
  model_dir = str(tmp_path / "run")
  shutil.copytree(trained_model_dir, model_dir)
  result = subprocess.run(
      [sys.executable, "-m", "mgc_tf.evaluate", f"--model_dir={model_dir}",
       f"--dataset={TINY}", f"--data_dir={data_dir}",
       "--protocol=verification"],
      capture_output=True, text=True, timeout=300, cwd=REPO,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert result.returncode == 0, result.stderr[-3000:]
  print(result.stdout)
  path = os.path.join(model_dir,
                      "eval_synthetic_multiview-tiny_verification_test.json")
  assert f"Wrote {path}" in result.stdout
  with open(path) as f:
    written = json.load(f)
  assert set(written["metrics"]) == KEYS
  assert written["counts"]["pairs"] == 18
  assert len(written["details"]) == 18
  for name, value in written["metrics"].items():
    assert f"{name} " in result.stdout
    assert f"{value:.4f}" in result.stdout
