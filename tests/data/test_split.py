from __future__ import annotations

import pytest

from medops.data.ingest import Record
from medops.data.split import SplitError, split_rows


def dataset() -> list[Record]:
    rows = []
    for label, count in (("Acne", 12), ("Pain", 6), ("Gout", 4)):
        rows += [Record(f"train:{label}{i}", "s", "train", "text", label) for i in range(count)]
    rows += [Record(f"test:{i}", "s", "test", "text", "Acne") for i in range(5)]
    return rows


CLASSES = ["Acne", "Gout", "Pain"]


def ids(split: dict[str, list[Record]]) -> dict[str, list[str]]:
    return {name: [r.id for r in rows] for name, rows in split.items()}


def test_split_is_deterministic_for_a_seed_and_changes_with_it():
    first = ids(split_rows(dataset(), CLASSES, 0.25, seed=13))
    assert first == ids(split_rows(list(reversed(dataset())), CLASSES, 0.25, seed=13))
    assert first != ids(split_rows(dataset(), CLASSES, 0.25, seed=14))


def test_split_is_disjoint_stratified_and_keeps_test_apart():
    split = split_rows(dataset(), CLASSES, 0.25, seed=13)
    train, validation = ids(split)["train"], ids(split)["validation"]
    assert not set(train) & set(validation)
    assert sorted(train + validation) == sorted(r.id for r in dataset() if r.role == "train")
    assert ids(split)["test"] == sorted(f"test:{i}" for i in range(5))
    assert len(validation) == 6  # ceil(22 * 0.25)
    assert {r.label for r in split["validation"]} == set(CLASSES)
    assert train == sorted(train)


def test_split_names_a_class_too_thin_to_stratify():
    rows = [*dataset(), Record("train:lonely", "s", "train", "text", "Rare")]
    with pytest.raises(SplitError, match="Rare"):
        split_rows(rows, [*CLASSES, "Rare"], 0.25, seed=13)


def test_split_needs_two_classes():
    rows = [Record(f"train:{i}", "s", "train", "text", "Acne") for i in range(8)]
    with pytest.raises(SplitError, match="needs 2"):
        split_rows(rows, ["Acne"], 0.25, seed=13)
