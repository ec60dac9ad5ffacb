"""The networks SIR trains beside the reconstructor.

  sir_identity_classes  the CosFace class-weight matrix W [D, C] (trained)
                        and the class centres [C, D] of the weighted centre
                        loss (moved by their own update rule, not by the
                        optimizer), D = the identity rank, C = classes
  sir_confidence        ConfNet: image [N, S, S, 3] in [0, 1] -> confidence
                        maps sigma [N, S, S, 2] > 0 (channel 0 for the pixel
                        term, 1 for the perceptual term)

Both are plain Keras models built by name (`mgc_tf.models.registry`), so the
trainer checkpoints them like any network a method owns.
"""

import keras

from mgc_tf.models import registry

#: The smallest confidence (scale) the ConfNet predicts: ln sigma stays
#: bounded below, so a pixel cannot buy an arbitrarily low loss.
MIN_SIGMA = 1e-2


class IdentityClasses(keras.Model):
  """Holds CosFace's class weights and the centre loss's centres.

  Calling it gives the cosine of each feature row with each class:
  [M, D] -> [M, C].

  Args:
    feature_dim: D, the identity rank.
    num_classes: C.
  """

  def __init__(self, feature_dim: int, num_classes: int, **kwargs):
    if feature_dim < 1 or num_classes < 1:
      raise ValueError("feature_dim and num_classes must be >= 1. Received: "
                       f"feature_dim={feature_dim}, num_classes={num_classes}")
    super().__init__(**kwargs)
    self.feature_dim = feature_dim
    self.num_classes = num_classes
    self.class_weights = self.add_weight(
        shape=(feature_dim, num_classes), name="class_weights",
        # Unseeded: drawn from the run's seed (keras.utils.set_random_seed).
        initializer=keras.initializers.RandomNormal(stddev=0.01),
        trainable=True)
    # Moved by mgc_tf.losses.sir.center_update; averaged over replicas like
    # batch-norm statistics.
    self.centers = self.add_weight(
        shape=(num_classes, feature_dim), name="centers",
        initializer="zeros", trainable=False, aggregation="mean")

  def call(self, features):
    normalized = keras.ops.normalize(features, axis=-1)
    weights = keras.ops.normalize(self.class_weights, axis=0)
    return keras.ops.matmul(normalized, weights)

  def get_config(self):
    return {"feature_dim": self.feature_dim, "num_classes": self.num_classes,
            "name": self.name}


@registry.register("sir_identity_classes")
def build_identity_classes(feature_dim: int,
                           num_classes: int) -> keras.Model:
  """CosFace class weights [D, C] and centres [C, D] (see the module doc)."""
  return IdentityClasses(feature_dim, num_classes, name="sir_identity_classes")


@registry.register("sir_confidence")
def build_confidence_net(image_size: int, width: int = 16) -> keras.Model:
  """ConfNet: [N, S, S, 3] in [0, 1] -> sigma [N, S, S, 2] >= MIN_SIGMA.

  A small encoder-decoder (three stride-2 convolutions down, three
  transposed convolutions up) in the spirit of Wu et al.'s ConfNet; S must
  be a multiple of 8. The last layer starts at zero, so sigma starts at
  softplus(0) + MIN_SIGMA (about 0.70) everywhere.
  """
  if image_size % 8:
    raise ValueError("image_size must be a multiple of 8. Received: "
                     f"image_size={image_size}")
  images = keras.Input((image_size, image_size, 3))
  x = keras.layers.Rescaling(2.0, offset=-1.0)(images)
  for scale in (1, 2, 4):
    x = keras.layers.Conv2D(width * scale, 4, strides=2, padding="same",
                            activation="relu")(x)
  for scale in (4, 2):
    x = keras.layers.Conv2DTranspose(width * scale, 4, strides=2,
                                     padding="same", activation="relu")(x)
  x = keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same",
                                   kernel_initializer="zeros")(x)
  x = keras.layers.Activation("softplus")(x)
  sigma = keras.layers.Rescaling(1.0, offset=MIN_SIGMA)(x)
  return keras.Model(images, sigma, name="sir_confidence")
