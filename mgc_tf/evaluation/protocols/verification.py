"""Face verification: are two faces the same person, judged from the
reconstruction (docs/evaluation.md, "Face verification").

Pairs come from a multi-view builder with identity labels (`pairs_from_builder`:
same = two views of one identity, different = views of two identities,
balanced and seeded) or from an LFW-style pairs.txt over aligned crops
(`pairs_from_file`). Each image is reconstructed once; each pair is scored
by four representations:

  coefficients: cosine of the predicted identity coefficients (the layout's
    "identity" group);
  coefficients_euclidean: minus their Euclidean distance (in standard
    deviations), the distance SIR (Jiang et al.) verifies with: with an
    orthonormal basis it is proportional to the shapes' vertex distance;
  vertices: minus the mean vertex distance (mm) between the two neutral
    identity shapes (expression and pose zeroed) after rigid alignment;
  render_embedding: cosine of the face embeddings (dlib's ResNet by default)
    of the renders composited over the input crops, at the crop size.

Metrics: verification/{representation}/{accuracy,accuracy_std,auc} (LFW
10-fold accuracy and its std over folds, ROC AUC; `evaluation.verification`)
and verification/pairs.
"""

import dataclasses
from typing import List, Optional, Union

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.data import features as features_lib
from mgc_tf.evaluation import verification
from mgc_tf.evaluation.protocols import common
from mgc_tf.evaluation.results import EvaluationResult
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.io import lfw_pairs
from mgc_tf.io.progress import ProgressLog
from mgc_tf.models import dlib_resnet
from mgc_tf.models.face_embedding import FaceEmbedding

#: The representations, in the order they are reported.
REPRESENTATIONS = ("coefficients", "coefficients_euclidean", "vertices",
                   "render_embedding")
#: LFW's number of folds.
DEFAULT_FOLDS = 10
#: At most this many pairs from a builder (LFW has 6000).
DEFAULT_MAX_PAIRS = 6000
#: `embedding` value for dlib's face-recognition ResNet.
DLIB = "dlib"


@dataclasses.dataclass
class VerificationPairs:
  """Images and the pairs over them.

  Attributes:
    images: [N, S, S, 3] uint8 aligned crops, each used by some pair.
    labels: [N] a name for each image (for the per-pair details).
    first: [P] int, index into `images` of each pair's first image.
    second: [P] int, of its second image.
    same: [P] bool, True for a same-identity pair.
    folds: [P] int, the fold of each pair.
    dataset: what the pairs come from (the JSON's "dataset").
    split: the split (or "pairs" for a pairs file).
  """
  images: np.ndarray
  labels: List[str]
  first: np.ndarray
  second: np.ndarray
  same: np.ndarray
  folds: np.ndarray
  dataset: str
  split: str


def _compact(images, labels, first, second):
  """Keeps only the images some pair uses; re-indexes the pairs."""
  used, inverse = np.unique(np.concatenate([first, second]),
                            return_inverse=True)
  inverse = inverse.reshape(-1)
  return (np.stack([images[i] for i in used]), [labels[i] for i in used],
          inverse[:len(first)], inverse[len(first):])


def pairs_from_builder(builder, split: str = "test", max_pairs: int =
                       DEFAULT_MAX_PAIRS, seed: int = 0,
                       folds: int = DEFAULT_FOLDS,
                       max_examples: int = 0) -> VerificationPairs:
  """A balanced, deterministic pair list from a builder's identity labels.

  Every view of every example is an image; examples with the same
  `identity` label pool their views. Same candidates: any two different
  images of one identity; different candidates: any two images of
  different identities. min(#same, #different, max_pairs // 2) of each kind
  are drawn without replacement by a NumPy generator seeded with `seed`,
  then interleaved (same, different, same, ...) so that `folds` contiguous
  folds are balanced.

  Args:
    builder: prepared TFDS builder with `images` [V, S, S, 3] and
      `identity` (synthetic_multiview and the other multi-view sets).
    split: TFDS split.
    max_pairs: at most this many pairs (0: no limit).
    seed: the draw's seed.
    folds: number of folds (capped at the number of pairs).
    max_examples: read at most this many examples (0: all).

  Raises:
    ValueError: no `identity` feature, or no pair of one of the kinds
      (fewer than two identities, or no identity with two views).
  """
  if features_lib.IDENTITY_KEY not in builder.info.features:
    raise ValueError(f"{builder.info.full_name} has no "
                     f"`{features_lib.IDENTITY_KEY}` feature: face "
                     "verification needs identity labels")
  images, labels, identities = [], [], []
  examples = common.examples_of(builder, split, max_examples,
                                {"skin": tfds.decode.SkipDecoding()} if "skin" in
                                builder.info.features else None)
  for example in examples:
    identity = example[features_lib.IDENTITY_KEY]
    identity = (identity.decode("utf-8") if isinstance(identity, bytes)
                else str(identity))
    for view, image in enumerate(example["images"]):
      images.append(image)
      labels.append(f"{identity}/view{view}")
      identities.append(identity)
  common.check_not_empty(len(images), builder, split)
  _, identity_index = np.unique(identities, return_inverse=True)
  first, second = np.triu_indices(len(images), k=1)
  is_same = identity_index[first] == identity_index[second]
  same_candidates = np.flatnonzero(is_same)
  diff_candidates = np.flatnonzero(~is_same)
  count = min(same_candidates.size, diff_candidates.size)
  if max_pairs:
    count = min(count, max_pairs // 2)
  if count == 0:
    raise ValueError(
        f"No {'same' if not same_candidates.size else 'different'}-identity "
        f"pair in {builder.info.full_name} [{split}]: face verification needs "
        "identities with two or more views and at least two identities")
  rng = np.random.default_rng(seed)
  chosen_same = rng.choice(same_candidates, count, replace=False)
  chosen_diff = rng.choice(diff_candidates, count, replace=False)
  order = np.stack([chosen_same, chosen_diff], axis=1).reshape(-1)
  images, labels, first, second = _compact(images, labels, first[order],
                                           second[order])
  return VerificationPairs(
      images=images, labels=labels, first=first, second=second,
      same=is_same[order],
      folds=verification.fold_indices(order.size, min(folds, order.size)),
      dataset=builder.info.full_name, split=split)


def pairs_from_file(pairs_file: str, images_dir: str,
                    folds: int = DEFAULT_FOLDS) -> VerificationPairs:
  """The pairs of an LFW-style pairs.txt (`io.lfw_pairs`) over aligned crops.

  The images (IMAGES_DIR/name/name_%04d.jpg) must be aligned square crops
  of one size (as `reconstruct` takes them; no face finding here). A file
  with several folds keeps them; a one-fold file is cut into `folds` folds,
  each with its share of the same and of the different pairs.

  Raises:
    FileNotFoundError: the file or an image is missing (named).
    ValueError: a malformed file, or images that are not square crops of
      one size.
  """
  listed = lfw_pairs.read_pairs(pairs_file)
  keys, images = {}, []
  first, second = [], []
  for pair in listed.pairs:
    for name, index, out in ((pair.name1, pair.index1, first),
                             (pair.name2, pair.index2, second)):
      key = (name, index)
      if key not in keys:
        keys[key] = len(images)
        images.append(lfw_pairs.read_image(images_dir, name, index))
      out.append(keys[key])
  shapes = {image.shape for image in images}
  if len(shapes) != 1 or images[0].shape[0] != images[0].shape[1]:
    raise ValueError(
        "The pairs-file protocol takes aligned square crops of one size "
        f"(no face finding). Received sizes: {sorted(shapes)}")
  same = np.array([pair.same for pair in listed.pairs])
  if listed.folds > 1:
    fold = np.array([pair.fold for pair in listed.pairs])
  else:
    count = min(folds, listed.pairs_per_fold_and_kind)
    if count < 2:
      raise ValueError(f"{pairs_file}: one same and one different pair "
                       "cannot be cut into folds; list at least two of each")
    rank = np.zeros([same.size], np.int64)  # position among its own kind
    for kind in (True, False):
      rank[same == kind] = np.arange(int(np.sum(same == kind)))
    fold = rank * count // listed.pairs_per_fold_and_kind
  labels = [f"{name}_{index:04d}" for name, index in keys]
  return VerificationPairs(
      images=np.stack(images), labels=labels, first=np.array(first),
      second=np.array(second), same=same, folds=fold,
      dataset=pairs_file, split="pairs")


def _embedding_of(embedding) -> Optional[FaceEmbedding]:
  if embedding is None or isinstance(embedding, FaceEmbedding):
    return embedding
  if embedding == DLIB:
    try:
      return FaceEmbedding.dlib_resnet()
    except dlib_resnet.FaceEmbeddingDependencyError as error:
      logging.warning("render_embedding left out: %s", error)
      print(f"render_embedding left out: {error}", flush=True)
      return None
  return FaceEmbedding.from_path(embedding)


def image_features(predictor: reconstructor_lib.Reconstructor,
                   images: np.ndarray,
                   embedding: Optional[FaceEmbedding],
                   batch_size: int = common.DEFAULT_BATCH_SIZE,
                   progress: Optional[ProgressLog] = None) -> dict:
  """Per-image features of the representations.

  Args:
    predictor: the model.
    images: [N, S, S, 3] uint8 aligned crops.
    embedding: face-embedding network for render_embedding (None: skip).
    batch_size: images per model/render call.
    progress: updated after each batch.

  Returns:
    {"coefficients" and "coefficients_euclidean": [N, K_id] identity
    coefficients, "vertices": [N, V, 3]
    neutral identity shapes (mm, model space), "render_embedding": [N, D]
    (when `embedding`)}.
  """
  decoder = predictor.decoder
  slices = decoder.layout.slices()
  out = {name: [] for name in REPRESENTATIONS}
  for start in range(0, len(images), batch_size):
    crops = images[start:start + batch_size]
    coefficients = predictor.coefficients(
        reconstructor_lib.model_inputs(crops, predictor.image_size))
    identity = coefficients[:, slices["identity"]]
    out["coefficients"].append(identity)
    out["coefficients_euclidean"].append(identity)
    expression = np.zeros_like(coefficients[:, slices["expression"]])
    # The face region only (all of the synthetic model; ICT's face, not
    # the back of its head), as the vertex error measures it.
    out["vertices"].append(decoder.shape(
        tf.constant(identity, tf.float32),
        tf.constant(expression, tf.float32)).numpy()[
            :, np.asarray(decoder.face_model.front_mask, bool)])
    if embedding is not None:
      _, _, rendered = common.render_over(decoder, coefficients,
                                          common.as_float_images(crops))
      out["render_embedding"].append(np.asarray(
          embedding(tf.constant(rendered, tf.float32))))
    if progress is not None:
      progress.update(start + len(crops))
  return {name: np.concatenate(parts) for name, parts in out.items() if parts}


def evaluate_verification(
    predictor: reconstructor_lib.Reconstructor,
    builder_or_pairs: Union[VerificationPairs, object],
    split: str = "test",
    batch_size: int = common.DEFAULT_BATCH_SIZE,
    max_examples: int = 0,
    progress: bool = True,
    embedding: Union[str, FaceEmbedding, None] = DLIB,
    max_pairs: int = DEFAULT_MAX_PAIRS,
    seed: int = 0,
    folds: int = DEFAULT_FOLDS) -> EvaluationResult:
  """Verification accuracy and ROC AUC of the representations.

  Args:
    predictor: the model.
    builder_or_pairs: a prepared multi-view TFDS builder with identity
      labels (pairs drawn by `pairs_from_builder`) or `VerificationPairs`
      (e.g. `pairs_from_file`).
    split: TFDS split (builders only).
    batch_size: images per model/render call.
    max_examples: read at most this many examples (builders only; 0: all).
    progress: print progress lines.
    embedding: "dlib" (dlib's ResNet; left out with a warning when its
      extra is not installed), a `FaceEmbedding`, a network's path, or None
      to leave render_embedding out.
    max_pairs, seed, folds: of `pairs_from_builder` (folds also cuts a
      one-fold pairs file).

  Returns:
    An `EvaluationResult` with verification/{coefficients, vertices,
    render_embedding}/{accuracy, accuracy_std, auc} and verification/pairs;
    counts: pairs, same_pairs, different_pairs, images, folds; details: one
    record per pair with its images, label, fold and scores.
  """
  if isinstance(builder_or_pairs, VerificationPairs):
    pairs = builder_or_pairs
  else:
    pairs = pairs_from_builder(builder_or_pairs, split, max_pairs=max_pairs,
                               seed=seed, folds=folds,
                               max_examples=max_examples)
  network = _embedding_of(embedding)
  log = ProgressLog(f"verification {pairs.dataset} {pairs.split}",
                    len(pairs.images), "images", enabled=progress)
  per_image = image_features(predictor, pairs.images, network, batch_size,
                             log)
  log.update(len(pairs.images), final=True)
  scores = {}
  for name in REPRESENTATIONS:
    if name not in per_image:
      continue
    score = {"vertices": verification.vertex_scores,
             "coefficients_euclidean": verification.euclidean_scores}.get(
                 name, verification.cosine_scores)
    scores[name] = score(per_image[name], pairs.first, pairs.second)
  result = {}
  for name, values in scores.items():
    accuracy, accuracy_std = verification.verification_accuracy(
        values, pairs.same, pairs.folds)
    result[f"verification/{name}/accuracy"] = accuracy
    result[f"verification/{name}/accuracy_std"] = accuracy_std
    result[f"verification/{name}/auc"] = verification.roc_auc(values,
                                                              pairs.same)
  result["verification/pairs"] = float(pairs.same.size)
  counts = {"pairs": int(pairs.same.size),
            "same_pairs": int(pairs.same.sum()),
            "different_pairs": int((~pairs.same).sum()),
            "images": int(len(pairs.images)),
            "folds": int(np.unique(pairs.folds).size)}
  details = []
  for k in range(pairs.same.size):
    record = {"first": pairs.labels[pairs.first[k]],
              "second": pairs.labels[pairs.second[k]],
              "same": bool(pairs.same[k]), "fold": int(pairs.folds[k])}
    record.update({name: float(values[k]) for name, values in scores.items()})
    details.append(record)
  return EvaluationResult(dataset=pairs.dataset, split=pairs.split,
                          metrics=result, counts=counts, details=details)
