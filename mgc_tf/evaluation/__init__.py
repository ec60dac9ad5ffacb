"""Evaluation: metrics (pure functions: `metrics`, `scan_metrics`,
`render_quality`), the papers' protocols (`protocols/`, one module per
dataset, `protocols.evaluate_builder` picks one), what they produce
(`results`) and the trainer's periodic evaluation (`periodic`)."""
