"""How well the render reproduces the input: PSNR and SSIM on the face mask.

The render is composited over the input (`RenderOutput.image`), so outside
the mask the two images agree; the scores average over the mask only (the
pixels the rendered face covers). Images are float RGB in [0, max_value].

  PSNR = 10 log10(max_value^2 / MSE),  MSE = mean over masked pixels and the
         3 channels of (render - input)^2;  +inf for identical images.
  SSIM = mean over masked pixels and channels of the SSIM map of Wang et al.
         2004 (Gaussian window sigma 1.5 truncated at 3.5 sigma = 11 x 11
         pixels, K1 = 0.01, K2 = 0.03, population (co)variances), the same
         map as skimage.metrics.structural_similarity(gaussian_weights=True,
         use_sample_covariance=False, full=True).

Shapes: B images of H x W pixels.
"""

import numpy as np
from scipy import ndimage

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _checked(rendered, image, mask):
  rendered = np.asarray(rendered, np.float64)
  image = np.asarray(image, np.float64)
  mask = np.asarray(mask, np.float64)
  if rendered.ndim != 4 or rendered.shape != image.shape:
    raise ValueError("rendered and image must both be [B, H, W, C]. "
                     f"Received: {rendered.shape} and {image.shape}")
  if mask.ndim == 3:
    mask = mask[..., None]
  if mask.shape != rendered.shape[:3] + (1,):
    raise ValueError(f"mask must be [B, H, W] or [B, H, W, 1]. Received: "
                     f"{mask.shape} for images {rendered.shape}")
  return rendered, image, mask


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """[B, H, W, C] values, [B, H, W, 1] mask -> [B] (NaN for an empty mask)."""
  weight = np.broadcast_to(mask, values.shape)
  total = weight.sum(axis=(1, 2, 3))
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(total > 0, (values * weight).sum(axis=(1, 2, 3)) / total,
                    np.nan)


def masked_psnr(rendered, image, mask, max_value: float = 1.0) -> np.ndarray:
  """PSNR of `rendered` against `image` over the mask.

  Args:
    rendered: [B, H, W, C] float in [0, max_value].
    image: [B, H, W, C] float in [0, max_value].
    mask: [B, H, W] or [B, H, W, 1], 1 on the pixels to score.
    max_value: the largest possible pixel value.

  Returns:
    [B] decibels; +inf where the masked pixels agree exactly, NaN for an
    empty mask.
  """
  rendered, image, mask = _checked(rendered, image, mask)
  mse = _masked_mean(np.square(rendered - image), mask)
  with np.errstate(divide="ignore"):
    return 10.0 * np.log10(max_value**2 / mse)


def ssim_map(rendered, image, max_value: float = 1.0) -> np.ndarray:
  """Per-pixel, per-channel SSIM of two image batches.

  Args:
    rendered: [B, H, W, C] float.
    image: [B, H, W, C] float.
    max_value: the data range L (C1 = (K1 L)^2, C2 = (K2 L)^2).

  Returns:
    [B, H, W, C] SSIM in [-1, 1] (borders filtered with reflection).
  """
  x = np.asarray(rendered, np.float64)
  y = np.asarray(image, np.float64)

  def blur(values):
    # Filter along H and W only (sigma 0 leaves batch and channels alone).
    return ndimage.gaussian_filter(values, sigma=(0, SSIM_SIGMA, SSIM_SIGMA, 0),
                                   truncate=SSIM_TRUNCATE, mode="reflect")
  mu_x, mu_y = blur(x), blur(y)
  var_x = blur(x * x) - mu_x * mu_x
  var_y = blur(y * y) - mu_y * mu_y
  cov = blur(x * y) - mu_x * mu_y
  c1 = (SSIM_K1 * max_value)**2
  c2 = (SSIM_K2 * max_value)**2
  return (((2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)) /
          ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)))


def masked_ssim(rendered, image, mask, max_value: float = 1.0) -> np.ndarray:
  """Mean SSIM over the mask (see the module docstring).

  Args:
    rendered: [B, H, W, C] float in [0, max_value].
    image: [B, H, W, C] float in [0, max_value].
    mask: [B, H, W] or [B, H, W, 1], 1 on the pixels to score.
    max_value: the data range.

  Returns:
    [B] in [-1, 1] (1 for identical images); NaN for an empty mask.
  """
  rendered, image, mask = _checked(rendered, image, mask)
  return _masked_mean(ssim_map(rendered, image, max_value), mask)
