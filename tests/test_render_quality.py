"""Render PSNR / SSIM on the face mask, on cases with known answers."""

import numpy as np
import pytest
from skimage import metrics as skimage_metrics

from mgc_tf.evaluation import render_quality


def _images(seed=0, batch=2, size=32):
  rng = np.random.default_rng(seed)
  image = rng.uniform(0.1, 0.9, [batch, size, size, 3])
  mask = np.zeros([batch, size, size, 1])
  mask[:, 8:24, 6:26] = 1.0
  return image, mask


def test_identical_images_score_infinite_psnr_and_ssim_one():
  image, mask = _images()
  assert np.all(np.isinf(render_quality.masked_psnr(image, image, mask)))
  np.testing.assert_allclose(render_quality.masked_ssim(image, image, mask),
                             1.0, atol=1e-12)


def test_psnr_of_a_known_error_counts_the_mask_only():
  image, mask = _images()
  rng = np.random.default_rng(1)
  # +-0.05 on every masked value: MSE = 0.0025, PSNR = 10 log10(1 / 0.0025).
  signs = rng.choice([-1.0, 1.0], image.shape)
  rendered = image + 0.05 * signs * mask
  # Anything may happen outside the mask.
  rendered = rendered + (1.0 - mask) * 0.5
  np.testing.assert_allclose(
      render_quality.masked_psnr(rendered, image, mask),
      10.0 * np.log10(1.0 / 0.0025), rtol=1e-10)
  # The data range enters as max_value^2.
  np.testing.assert_allclose(
      render_quality.masked_psnr(255.0 * rendered, 255.0 * image, mask,
                                 max_value=255.0),
      10.0 * np.log10(1.0 / 0.0025), rtol=1e-10)
  # [B, H, W] masks work too.
  np.testing.assert_allclose(
      render_quality.masked_psnr(rendered, image, mask[..., 0]),
      10.0 * np.log10(1.0 / 0.0025), rtol=1e-10)


def test_ssim_map_matches_skimage():
  image, mask = _images(seed=2, batch=1)
  rng = np.random.default_rng(3)
  rendered = np.clip(image + rng.normal(0, 0.1, image.shape), 0, 1)
  _, reference = skimage_metrics.structural_similarity(
      rendered[0], image[0], channel_axis=-1, gaussian_weights=True,
      sigma=1.5, use_sample_covariance=False, data_range=1.0, full=True)
  ours = render_quality.ssim_map(rendered, image)[0]
  np.testing.assert_allclose(ours, reference, atol=1e-10)
  # The masked score is the map's mean over the masked pixels.
  expected = reference[mask[0, ..., 0] > 0].mean()
  assert render_quality.masked_ssim(rendered, image, mask)[0] == (
      pytest.approx(expected))
  assert expected < 0.95


def test_empty_mask_and_bad_shapes():
  image, mask = _images()
  empty = np.zeros_like(mask)
  assert np.all(np.isnan(render_quality.masked_psnr(image, image + 0.1,
                                                    empty)))
  assert np.all(np.isnan(render_quality.masked_ssim(image, image, empty)))
  with pytest.raises(ValueError, match="rendered and image"):
    render_quality.masked_psnr(image[0], image[0], mask[0])
  with pytest.raises(ValueError, match="mask"):
    render_quality.masked_ssim(image, image, mask[:, :8])
