"""Face-attribute-aware loss (Mohaghegh et al. eq. 8) with a pluggable network.

  L_att = || F(I) - F(I_re) ||_2

per sample, with F a frozen face-attribute feature network (a
`mgc_tf.models.face_embedding.FaceEmbedding`), I the input and I_re the
render composited over it. The paper used an attribute classifier (Wiles et
al. 2018) that cannot be downloaded here; `AttributeLoss.from_spec("dlib")`
(the default) stands in with mid-level features of dlib's face-recognition
network averaged over space (`FaceEmbedding.dlib_pooled_features`:
"stage64" and "stage128", 192 values); a path loads a user's network
(`.keras` / `.h5` / SavedModel, [B, h, w, 3] in [0, 1] -> [B, D]); "none"
turns the term off. The same features feed the robust method's FAID refiner.
"""

from typing import Optional

import tensorflow as tf

from mgc_tf.losses import identity as identity_lib
from mgc_tf.losses import photometric
from mgc_tf.models.face_embedding import FaceEmbedding


class AttributeLoss:
  """||F(I) - F(I_re)||_2 per sample, or zeros without a network.

  Args:
    embedding: a `FaceEmbedding` giving [B, D] attribute features, or None.
  """

  def __init__(self, embedding: Optional[FaceEmbedding] = None):
    self.embedding = embedding

  @classmethod
  def from_spec(cls, spec: Optional[str] = identity_lib.DLIB,
                **kwargs) -> "AttributeLoss":
    """"dlib" (the stand-in, default), "none" (off), or a network's path."""
    embedding, _ = identity_lib.embedding_from_spec(
        spec, FaceEmbedding.dlib_pooled_features, "Attribute loss", **kwargs)
    return cls(embedding)

  @property
  def enabled(self) -> bool:
    return self.embedding is not None

  def describe(self) -> str:
    if self.embedding is None:
      return "attribute loss off (no attribute network)"
    return f"attribute features from {self.embedding.source}"

  def features(self, images) -> tf.Tensor:
    """[B, H, W, 3] RGB in [0, 1] -> [B, D] float32 attribute features."""
    if self.embedding is None:
      raise ValueError("No attribute network is configured.")
    return tf.cast(self.embedding(images), tf.float32)

  def __call__(self, images, rendered_images,
               name: str = "attribute_loss") -> tf.Tensor:
    """[B] float32 L2 distance of the features (0 when off)."""
    with tf.name_scope(name):
      images = tf.cast(tf.convert_to_tensor(images), tf.float32)
      if self.embedding is None:
        return tf.zeros(tf.shape(images)[:1])
      rendered_images = tf.cast(rendered_images, tf.float32)
      b = tf.shape(images)[0]
      both = self.features(tf.concat([images, rendered_images], 0))
      # Zero (with a zero gradient) where the features agree.
      return photometric.safe_norm(both[:b] - both[b:], axis=-1)
