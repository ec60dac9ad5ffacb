"""Per-pixel skin probability from colour (Deep3DFaceReconstruction's model).

MGCNet weights its render loss by a per-pixel skin confidence "as in" Deng et
al., "Accurate 3D Face Reconstruction with Weakly-Supervised Learning" (CVPR-W
2019, Deep3DFaceReconstruction; its robust photometric loss): a naive Bayes
classifier whose two class likelihoods are Gaussian mixtures over the pixel
colour. We evaluate that same classifier with the mixture parameters published
in Deep3DFaceRecon_pytorch (`util/skin_mask.py`, MIT licence, (c) 2022 Sicheng
Xu), so skin maps made here match the ones Deep3D's released code makes:

  feature  x = (Y, Cb, Cr) of the pixel, ITU-R BT.601 with the studio range
           (Y in [16, 235], Cb and Cr in [16, 240]) computed from 8-bit RGB;
  skin     p(x | skin)     = sum_k w_k N(x; mu_k, Sigma_k), 4 full-covariance
           components;
  non-skin p(x | non-skin) = the same form, 4 other components;
  prior    P(skin) = 0.8 (the crops are mostly face);
  output   P(skin | x) = P(skin) p(x|skin) / (P(skin) p(x|skin) +
           P(non-skin) p(x|non-skin)).

The parameters are stored as published: weights, means, inverse covariances
and covariance determinants (`test_preprocessing.py` checks that each inverse
and determinant agree). We evaluate the mixtures as log likelihoods with
log-sum-exp, which cannot underflow to 0 / 0 for any colour; over all 8-bit
colours it agrees with a direct evaluation of the densities to 1e-7.

Being a colour model, it marks every skin-coloured pixel (orange clothes,
light hair, wooden walls) as skin; on aligned face crops that mostly matters
outside the face, where the render loss does not look.
"""

import numpy as np

# RGB in [0, 255] -> (Y, Cb, Cr), ITU-R BT.601 studio range:
# [Y, Cb, Cr] = RGB_TO_YCBCR @ [R, G, B] + YCBCR_OFFSET.
RGB_TO_YCBCR = np.array([
    [65.481, 128.553, 24.966],
    [-37.797, -74.203, 112.0],
    [112.0, -93.786, -18.214],
], dtype=np.float64) / 255.0
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)

DEFAULT_SKIN_PRIOR = 0.8


class ColourMixture:
  """A Gaussian mixture over 3-D colour features, given in inverse form.

  Attributes:
    weights: [K] mixture weights, summing to 1.
    means: [K, 3] component means (Y, Cb, Cr).
    inverse_covariances: [K, 3, 3] Sigma_k^-1.
    covariance_determinants: [K] det(Sigma_k).
  """

  def __init__(self, weights, means, inverse_covariances,
               covariance_determinants):
    self.weights = np.asarray(weights, np.float64)
    self.means = np.asarray(means, np.float64)
    self.inverse_covariances = np.asarray(inverse_covariances, np.float64)
    self.covariance_determinants = np.asarray(covariance_determinants,
                                              np.float64)
    # log(w_k) - log((2 pi)^(3/2) sqrt(det Sigma_k)), per component.
    self._log_normaliser = (
        np.log(self.weights) - 1.5 * np.log(2.0 * np.pi)
        - 0.5 * np.log(self.covariance_determinants))

  def log_likelihood(self, features: np.ndarray) -> np.ndarray:
    """log p(x) for [N, 3] features -> [N] float64."""
    centred = features[None, :, :] - self.means[:, None, :]  # [K, N, 3]
    # (x - mu)^T Sigma^-1 (x - mu) per component; a batched matmul is ~2x
    # faster than the equivalent einsum.
    mahalanobis = np.sum((centred @ self.inverse_covariances) * centred,
                         axis=-1)
    per_component = self._log_normaliser[:, None] - 0.5 * mahalanobis
    # log-sum-exp over the components, stable for far-away colours.
    largest = per_component.max(axis=0)
    return largest + np.log(np.exp(per_component - largest).sum(axis=0))


# Deep3DFaceRecon_pytorch, util/skin_mask.py (gmm_skin_*, gmm_nonskin_*).
SKIN_MIXTURE = ColourMixture(
    weights=[0.24063933, 0.16365987, 0.26034665, 0.33535415],
    means=[[113.71862, 103.39613, 164.08226],
           [150.19858, 105.18467, 155.51428],
           [183.92976, 107.62468, 152.71820],
           [114.90524, 113.59782, 151.38217]],
    inverse_covariances=[
        [[0.0019472069, 0.0020450759, -0.00060243998],
         [0.0020450759, 0.017700525, 0.0051420014],
         [-0.00060243998, 0.0051420014, 0.0081308950]],
        [[0.0027110141, 0.0011036990, 0.0023122299],
         [0.0011036990, 0.010707724, 0.010742856],
         [0.0023122299, 0.010742856, 0.017481629]],
        [[0.0048026871, 0.00022935172, 0.0077668377],
         [0.00022935172, 0.011729696, 0.0081661865],
         [0.0077668377, 0.0081661865, 0.025374353]],
        [[0.0011989699, 0.0022453172, -0.0010748957],
         [0.0022453172, 0.047758564, 0.020332102],
         [-0.0010748957, 0.020332102, 0.024502251]]],
    covariance_determinants=[5692842.5, 5851930.5, 2329131.0, 1585971.0])

NON_SKIN_MIXTURE = ColourMixture(
    weights=[0.12791070, 0.31130761, 0.34245777, 0.21832393],
    means=[[99.200851, 112.07533, 140.20602],
           [110.91392, 125.52969, 130.19237],
           [129.75864, 129.96107, 126.96808],
           [112.29587, 128.85121, 129.05431]],
    inverse_covariances=[
        [[0.00085371657, 0.00071197288, 0.00023958916],
         [0.00071197288, 0.0025935620, 0.00076557708],
         [0.00023958916, 0.00076557708, 0.0015042332]],
        [[0.00024650150, 0.00045542428, 0.00015019422],
         [0.00045542428, 0.026412144, 0.018419769],
         [0.00015019422, 0.018419769, 0.037497383]],
        [[0.00037054974, 0.00038146760, 0.00040408765],
         [0.00038146760, 0.0085505722, 0.0079136286],
         [0.00040408765, 0.0079136286, 0.010982352]],
        [[0.00013709733, 0.00051228428, 0.00012777430],
         [0.00051228428, 0.28237113, 0.10528370],
         [0.00012777430, 0.10528370, 0.23468947]]],
    covariance_determinants=[458703648.0, 6466488.0, 90611376.0, 133097.63])


def rgb_to_ycbcr(image_rgb: np.ndarray) -> np.ndarray:
  """[..., 3] RGB in [0, 255] -> [..., 3] float64 (Y, Cb, Cr), BT.601 studio."""
  return np.asarray(image_rgb, np.float64) @ RGB_TO_YCBCR.T + YCBCR_OFFSET


def skin_probability(image_rgb: np.ndarray,
                     prior_skin: float = DEFAULT_SKIN_PRIOR) -> np.ndarray:
  """Posterior probability that each pixel shows skin, from its colour alone.

  Args:
    image_rgb: [H, W, 3] uint8 RGB image.
    prior_skin: P(skin) before seeing the colour, in (0, 1); Deep3D uses 0.8.

  Returns:
    [H, W] float32 in [0, 1].

  Raises:
    ValueError: if the image is not [H, W, 3] uint8 or the prior is not in
      (0, 1).
  """
  image_rgb = np.asarray(image_rgb)
  if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or (
      image_rgb.dtype != np.uint8):
    raise ValueError("skin_probability expects an [H, W, 3] uint8 RGB image; "
                     f"Received: shape={image_rgb.shape}, "
                     f"dtype={image_rgb.dtype}")
  if not 0.0 < prior_skin < 1.0:
    raise ValueError(f"prior_skin must be in (0, 1); Received: {prior_skin}")
  height, width = image_rgb.shape[:2]
  features = rgb_to_ycbcr(image_rgb.reshape(-1, 3))
  log_odds = (np.log(prior_skin) - np.log1p(-prior_skin)
              + SKIN_MIXTURE.log_likelihood(features)
              - NON_SKIN_MIXTURE.log_likelihood(features))
  # Logistic of the log posterior odds; clipped so exp cannot overflow.
  probability = 1.0 / (1.0 + np.exp(-np.clip(log_odds, -60.0, 60.0)))
  return probability.reshape(height, width).astype(np.float32)
