"""Expression kinds of a face model, and how raw outputs become blendshape weights.

A `FaceModel` records its expression kind:

  * "pca": the expression basis holds principal components pre-multiplied by
    their standard deviations, so coefficients are ~ N(0, 1) (BFM + Guo et
    al., the embedded synthetic model). The decoder uses the coefficients as
    they are; the regulariser's prior is Gaussian, w_beta ||beta||^2.
  * "blendshape": the basis holds artist-made blendshape deltas (ICT-FaceKit's
    53 ARKit-named shapes), one per name in `expression_names`, meant for
    weights in [0, 1]: 0 is the neutral face, 1 the full expression.

Blendshape weights from raw network outputs r (one per shape):

  w = clip(r, 0, 1), then w[mouthClose] = min(w[mouthClose], w[jawOpen]).

Why a hard clip: outside [0, 1] linear blendshapes leave the range the
artist modelled and fold the mesh quickly (ICT's jawOpen at -0.05 pushes the
lower lip through the upper; many shapes at 1.2 crease the lips or lids), so
the decoder never shows a weight outside [0, 1], whatever the network
outputs, and the mesh for any raw output is one that weights in [0, 1] give.
Raw 0 is exactly the neutral face (the reconstructor's head starts there).
Why the cap: ARKit's mouthClose is a corrective that closes the lips *of an
open jaw*; on its own it drives the lips through each other (ICT: 100 flipped
triangles outside the lips), so it may not exceed jawOpen.

Gradients: inside [0, 1] the gradient is the exact one. Outside, a plain
clip would have none, and a shape whose raw value fell below 0 for every face
would never be learned again (a "dead" output). The TensorFlow decoder
(`mgc_tf.facemodel.decoder`) therefore passes the gradient of a clipped value
when it points back into [0, 1] and blocks it when it points further out;
the regulariser's box term (`mgc_tf.losses.regularization`) pulls raw values
back into [0, 1]. NumPy only here (the decoder holds the TensorFlow version).
"""

from typing import Sequence, Tuple

import numpy as np

PCA = "pca"
BLENDSHAPE = "blendshape"
KINDS = (PCA, BLENDSHAPE)

#: Range the decoder clips blendshape weights to.
BLENDSHAPE_MIN, BLENDSHAPE_MAX = 0.0, 1.0

#: Corrective shapes that may not exceed another shape's weight (ARKit).
BLENDSHAPE_CAPS = {"mouthClose": "jawOpen"}


def check_kind(kind: str, names: Sequence[str], rank: int) -> str:
  """'' if `kind` and `names` fit an expression basis of `rank`, else why."""
  if kind not in KINDS:
    return f"expression_kind must be one of {KINDS}, got {kind!r}"
  if names and len(names) != rank:
    return (f"expression_names holds {len(names)} names for {rank} "
            "expression components")
  if kind == PCA and names:
    return "expression_names are for blendshape models only"
  if len(set(names)) != len(names):
    return "expression_names must be distinct"
  return ""


def cap_indices(names: Sequence[str]) -> Tuple[int, ...]:
  """[K] index of the weight that caps each weight (its own if none)."""
  index = {name: k for k, name in enumerate(names)}
  return tuple(index.get(BLENDSHAPE_CAPS.get(name, ""), k)
               for k, name in enumerate(names))


def blendshape_weights_np(raw, names: Sequence[str] = ()) -> np.ndarray:
  """[..., K] raw outputs -> [..., K] blendshape weights (module docstring).

  Args:
    raw: [..., K] raw expression values.
    names: the K shape names (for the mouthClose <= jawOpen cap); empty
      applies the clip only.

  Returns:
    [..., K] float64 weights in [0, 1].
  """
  weights = np.clip(np.asarray(raw, np.float64), BLENDSHAPE_MIN,
                    BLENDSHAPE_MAX)
  if names:
    weights = np.minimum(weights, weights[..., list(cap_indices(names))])
  return weights


def random_blendshape_weights(rng: np.random.Generator, rank: int,
                              num_shapes: int, low: float = 0.3,
                              high: float = 0.8) -> np.ndarray:
  """An expression as an animator would set it: `num_shapes` of the `rank`
  shapes, chosen at random, at weights uniform in [low, high]; the others 0.

  Returns:
    [rank] float32 weights in [0, 1].
  """
  if not BLENDSHAPE_MIN <= low <= high <= BLENDSHAPE_MAX:
    raise ValueError(f"need {BLENDSHAPE_MIN} <= low <= high <= "
                     f"{BLENDSHAPE_MAX}. Received: low={low}, high={high}")
  weights = np.zeros([rank], np.float32)
  chosen = rng.choice(rank, size=min(int(num_shapes), rank), replace=False)
  weights[chosen] = rng.uniform(low, high, len(chosen))
  return weights
