"""The prepare stage: raw sources -> clean, de-identified, split JSONL.

Submodules are imported on use so ``import medops.data`` stays cheap; only ``deid`` loads
spaCy and presidio.
"""
