"""MGCNet loss terms, one module per family; each returns per-sample values.

Every loss here is a pure function of tensors (or a small callable object)
returning a `[B]` tensor, so that the combinator can gate samples by their
view flag and scale by the global batch. Formulas, units and default weights:
docs/losses.md and DESIGN.md section 5.

Modules:
  photometric:     skin-weighted render loss inside the rendered face mask.
  landmark:        weighted 2D landmark loss in crop pixels.
  regularization:  weighted squared norms of the 3DMM coefficients.
  identity:        1 - cos of face embeddings from a frozen, user-supplied
                   network (off when none is given); the network wrapper,
                   `FaceEmbedding`, lives in `mgc_tf.models.face_embedding`
                   and is re-exported here.
  epipolar:        symmetric epipolar distance of ground-truth landmarks
                   under the predicted relative pose.
  census:          soft census transform and Hamming distance (PGN eq. 9).
"""

from mgc_tf.losses.epipolar import epipolar_loss
from mgc_tf.losses.epipolar import epipolar_loss_from_poses
from mgc_tf.losses.identity import cosine_distance
from mgc_tf.losses.identity import IdentityLoss
from mgc_tf.losses.landmark import DEFAULT_NOSE_MOUTH_WEIGHT
from mgc_tf.losses.landmark import landmark_loss
from mgc_tf.losses.landmark import landmark_weights
from mgc_tf.losses.photometric import render_loss
from mgc_tf.losses.regularization import regularization_loss
from mgc_tf.models.face_embedding import FaceEmbedding

__all__ = [
    "DEFAULT_NOSE_MOUTH_WEIGHT",
    "FaceEmbedding",
    "IdentityLoss",
    "cosine_distance",
    "epipolar_loss",
    "epipolar_loss_from_poses",
    "landmark_loss",
    "landmark_weights",
    "regularization_loss",
    "render_loss",
]
