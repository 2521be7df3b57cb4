"""MLflow logging, the promotion gate and model registration."""
