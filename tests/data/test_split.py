from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from medops.data.ingest import Record
from medops.data.split import SPLITS, SplitError, leakage, split_rows


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


def test_split_without_patient_ids_is_the_row_level_split():
    validation = ids(split_rows(dataset(), CLASSES, 0.25, seed=13))["validation"]
    assert validation == [
        "train:Acne0",
        "train:Acne10",
        "train:Acne8",
        "train:Gout2",
        "train:Pain2",
        "train:Pain5",
    ]


def with_patients(rows: list[Record], patient: Callable[[int], str]) -> list[Record]:
    return [replace(r, patient=patient(i)) for i, r in enumerate(rows)]


def test_patients_are_never_on_both_sides_and_leaks_into_test_are_reported():
    rows = with_patients(dataset(), lambda i: f"p{i % 9}" if i % 5 else "")
    split = split_rows(rows, CLASSES, 0.25, seed=13)
    assert split == split_rows(list(reversed(rows)), CLASSES, 0.25, seed=13)
    assert {r.label for r in split["validation"]} == set(CLASSES)
    report = leakage(split)
    assert report["patients_train"] + report["patients_validation"] == 9
    # p4, p5, p6 and p8 wrote test rows and train rows: reported, the test set is not touched
    assert ids(split)["test"] == sorted(f"test:{i}" for i in range(5))
    assert report["patients_test"] == 4  # the 5th test row has no patient id
    assert report["patients_in_two_splits"] == 4
    shared = {r.patient for r in split["test"] if r.patient}
    assert report["rows_of_shared_patients"] == sum(r.patient in shared for r in rows)


def test_leakage_counts_patients_in_each_split():
    def row(id_: str, patient: str) -> Record:
        return Record(id_, "s", "train", "text", "Acne", patient=patient)

    splits = {
        "train": [row("1", "a"), row("2", "a"), row("3", "b"), row("4", "")],
        "validation": [row("5", "c"), row("6", "b")],
        "test": [row("7", "b"), row("8", "d")],
    }
    assert leakage(splits) == {
        "patients_train": 2,
        "patients_validation": 2,
        "patients_test": 2,
        "patients_in_two_splits": 1,
        "rows_of_shared_patients": 3,
    }


def test_a_class_from_one_patient_cannot_be_split_by_patient():
    rows = with_patients(dataset(), lambda i: "gout-patient" if i >= 18 else f"p{i}")
    with pytest.raises(SplitError, match=r"\['Gout'\] have fewer than 2 train patients"):
        split_rows(rows, CLASSES, 0.25, seed=13)


def test_too_few_patients_for_the_validation_fraction():
    rows = with_patients(dataset(), lambda i: f"p{i % 3}")
    with pytest.raises(SplitError, match="3 train patients cannot be split 4 ways"):
        split_rows(rows, CLASSES, 0.25, seed=13)


labelled_rows = st.lists(
    st.tuples(st.sampled_from(["", *(f"p{i}" for i in range(12))]), st.sampled_from("AB")),
    min_size=16,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(train=labelled_rows, test=labelled_rows, fraction=st.sampled_from([0.15, 0.25, 0.4]))
def test_split_by_patient_properties(train, test, fraction):
    rows = [
        Record(f"{role}:{i}", "s", role, "text", label, patient=patient)
        for role, drawn in (("train", train), ("test", test))
        for i, (patient, label) in enumerate(drawn)
    ]
    try:
        split = split_rows(rows, ["A", "B"], fraction, seed=3)
    except SplitError:
        assume(False)
    patients = {name: {r.patient for r in split[name] if r.patient} for name in SPLITS}
    assert not patients["train"] & patients["validation"]
    train_ids = sorted(r.id for r in rows if r.role == "train")
    assert sorted(r.id for r in split["train"] + split["validation"]) == train_ids
    assert split["test"] == sorted((r for r in rows if r.role == "test"), key=lambda r: r.id)
    assert leakage(split)["patients_in_two_splits"] == len(
        patients["test"] & (patients["train"] | patients["validation"])
    )
