"""Watching a served model after release: how its recorded traffic drifts from its training."""
