"""Inference over a trained model: the `Reconstructor` (runs and exports),
face finding for photos and videos, decoded outputs, overlays, video and
temporal smoothing (docs/inference.md)."""
