"""Training: configuration, distribution strategies and the custom loop."""
