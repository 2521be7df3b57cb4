"""Fine-tuning on Ray Train: the per-worker loop, its launcher, and the train stage."""
