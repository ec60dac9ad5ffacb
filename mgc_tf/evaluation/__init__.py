"""Evaluation metrics and loops (the papers' protocols)."""
