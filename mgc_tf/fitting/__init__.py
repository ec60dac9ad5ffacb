"""Per-person fitting of 3DMM coefficients to photos, photo sets and videos.

  fitter    `Fitter.fit(images, landmarks, mode, initial)`: the MGCNet
            objective on variables (one photo, a set with shared identity
            and albedo and multi-view terms, a video with temporal
            smoothness).
  photos    from image files / video frames to crops, landmarks and a fit
            (detection, same-person check, skip-and-count), and the files.

See docs/fitting.md.
"""

from mgc_tf.fitting.fitter import FitConfig
from mgc_tf.fitting.fitter import FitMode
from mgc_tf.fitting.fitter import FitResult
from mgc_tf.fitting.fitter import Fitter
from mgc_tf.fitting.fitter import FitVariables

__all__ = ["FitConfig", "FitMode", "FitResult", "Fitter", "FitVariables"]
