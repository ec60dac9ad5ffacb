"""Smooth building blocks of the synthetic face: Hermite curves, Gaussian
bumps, smoothsteps and ramps, colour blending (NumPy, elementwise)."""

import numpy as np


def hermite(x, knots_x, knots_y):
  """C1 piecewise-cubic interpolation (Catmull-Rom tangents), clamped outside.

  Args:
    x: array of query points.
    knots_x: [n] increasing knot positions.
    knots_y: [n] knot values.

  Returns:
    Array shaped like `x`.
  """
  kx = np.asarray(knots_x, np.float64)
  ky = np.asarray(knots_y, np.float64)
  slopes = np.empty_like(ky)
  slopes[1:-1] = (ky[2:] - ky[:-2]) / (kx[2:] - kx[:-2])
  slopes[0] = (ky[1] - ky[0]) / (kx[1] - kx[0])
  slopes[-1] = (ky[-1] - ky[-2]) / (kx[-1] - kx[-2])
  x = np.clip(np.asarray(x, np.float64), kx[0], kx[-1])
  i = np.clip(np.searchsorted(kx, x, side="right") - 1, 0, len(kx) - 2)
  h = kx[i + 1] - kx[i]
  t = (x - kx[i]) / h
  t2, t3 = t * t, t * t * t
  return ((2 * t3 - 3 * t2 + 1) * ky[i] + (t3 - 2 * t2 + t) * h * slopes[i] +
          (-2 * t3 + 3 * t2) * ky[i + 1] + (t3 - t2) * h * slopes[i + 1])


def gauss(u, v, cu, cv, su, sv):
  """Anisotropic Gaussian bump exp(-((u-cu)/su)^2/2 - ((v-cv)/sv)^2/2)."""
  return np.exp(-0.5 * (((u - cu) / su)**2 + ((v - cv) / sv)**2))


def mirror_gauss(u, v, cu, cv, su, sv):
  """A Gaussian bump at (cu, cv) plus its mirror image at (-cu, cv)."""
  return gauss(u, v, cu, cv, su, sv) + gauss(u, v, -cu, cv, su, sv)


def smoothstep(x, lo, hi):
  """0 below `lo`, 1 above `hi`, C1 cubic in between."""
  t = np.clip((np.asarray(x, np.float64) - lo) / (hi - lo), 0.0, 1.0)
  return t * t * (3.0 - 2.0 * t)


def ramp(x, width, sharpness=1.5):
  """0 for x <= 0, 1 for x >= width, linear in between, corners rounded.

  Unlike a smoothstep its slope never exceeds 1 / width, which bounds how
  much a displacement built from it compresses the surface (so a motion of
  amplitude A along it cannot fold the mesh while A < width).
  """
  x = np.asarray(x, np.float64)
  return (np.logaddexp(0.0, sharpness * x) -
          np.logaddexp(0.0, sharpness * (x - width))) / (sharpness * width)


def softplus(x):
  return np.logaddexp(0.0, x)


def blend(base, colour, weight):
  """[..., 3]: base * (1 - weight) + colour * weight."""
  weight = np.asarray(weight)[..., None]
  return base * (1.0 - weight) + np.asarray(colour, np.float64) * weight
