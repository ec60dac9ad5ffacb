"""Inference: predictors over a reconstructor, face finding, the image and
video loops, outputs, overlays and temporal smoothing."""
