"""Per-person fitting of 3DMM coefficients to photos, photo sets and videos.

  fitter    `Fitter.fit(images, landmarks, mode, initial)`: the MGCNet
            objective on variables (one photo, a set with shared identity
            and albedo and multi-view terms, a video with temporal
            smoothness).
  people    which faces of a photo set are the majority person.

Files in, files out (detection, skip-and-count, infer's outputs):
`mgc_tf.inference.fit_files`. See docs/fitting.md.
"""

from mgc_tf.fitting.fitter import FitConfig
from mgc_tf.fitting.fitter import FitMode
from mgc_tf.fitting.fitter import FitResult
from mgc_tf.fitting.fitter import Fitter
from mgc_tf.fitting.fitter import FitVariables
from mgc_tf.fitting.fitter import pose_from_landmarks

__all__ = ["FitConfig", "FitMode", "FitResult", "Fitter", "FitVariables",
           "pose_from_landmarks"]
