"""Held-out evaluation: metrics, the same-run baseline, and the report."""
