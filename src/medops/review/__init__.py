"""Clinician review in Label Studio: push model answers, pull corrections as a dataset.

``push`` sends de-identified held-out items with the registered version's own answers as
pre-annotations; ``pull`` turns the reviewers' verdicts and corrections into a versioned
feedback dataset (JSONL, manifest, card) whose every row names the version it judged and
the Label Studio task and annotation it came from. docs/review.md.
"""
