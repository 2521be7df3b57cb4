"""The patient entity from FHIR: age band at the time, sex, earlier Conditions, the latest
earlier Observation, keyed by patient_key and never by the patient's id."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from medops.features.asof import TIMESTAMP, parse_timestamps
from medops.features.patient_context import age_band, patient_context, read_context
from medops.privacy.keys import patient_key
from medops.recipe import Recipe
from tests.features.conftest import FUTURE_OBSERVATION, KEY, PLANTED_VALUE

AS_OF = pd.Timestamp("2026-01-01", tz="UTC")


@pytest.fixture
def context(fhir_recipe: Callable[..., Recipe]) -> pd.DataFrame:
    return patient_context(read_context(fhir_recipe()), KEY.encode(), AS_OF)


def _as_of(frame: pd.DataFrame, patient: str, when: str) -> dict[str, object]:
    at = parse_timestamps([when]).iloc[0]
    key = patient_key(KEY.encode(), patient)
    rows = frame[(frame["patient_key"] == key) & (frame[TIMESTAMP] <= at)]
    assert not rows.empty
    return rows.iloc[-1].to_dict()


def test_each_note_sees_only_what_was_known_before_it(context: pd.DataFrame) -> None:
    doc1 = _as_of(context, "Patient/p1", "2024-03-01T09:30:00Z")
    # the 2020 Condition only: the one recorded at doc-1's instant is not earlier
    assert doc1["conditions_before"] == 1
    assert (doc1["last_observation_code"], doc1["last_observation_value"]) == (
        "Hemoglobin A1c",
        7.1,
    )
    assert (doc1["age_band"], doc1["sex"]) == ("70-79", "female")
    doc2 = _as_of(context, "Patient/p1", "2024-05-01")
    assert doc2["conditions_before"] == 3
    assert (doc2["last_observation_code"], doc2["last_observation_value"]) == (
        FUTURE_OBSERVATION,
        PLANTED_VALUE,
    )
    doc3 = _as_of(context, "Patient/p2", "2024-04-01")
    assert doc3["conditions_before"] == 0
    assert pd.isna(doc3["last_observation_code"]) and pd.isna(doc3["last_observation_value"])
    assert (doc3["age_band"], doc3["sex"]) == ("30-39", "male")


def test_a_date_without_time_is_known_the_next_day(context: pd.DataFrame) -> None:
    """p1's 2024-04-15 Condition has no time: a note at noon that day must not count it."""
    assert _as_of(context, "Patient/p1", "2024-04-15T12:00:00Z")["conditions_before"] == 2
    assert _as_of(context, "Patient/p1", "2024-04-16")["conditions_before"] == 3


def test_repeated_resources_count_once_and_undated_ones_nowhere(
    fhir_recipe: Callable[..., Recipe], context: pd.DataFrame
) -> None:
    counts = read_context(fhir_recipe()).counts
    assert counts["repeated_resources"] == 3
    assert counts["condition"] == 4 and counts["condition_undated"] == 1
    assert _as_of(context, "Patient/p2", "2030-01-01")["conditions_before"] == 1


def test_the_rows_hold_no_patient_id_and_no_free_text(context: pd.DataFrame) -> None:
    text = context.astype(str).to_csv()
    assert "p1" not in text and "p2" not in text and "Patient/" not in text
    assert "free text" not in text
    assert set(context["patient_key"]) == {
        patient_key(KEY.encode(), "Patient/p1"),
        patient_key(KEY.encode(), "Patient/p2"),
    }


def test_today_is_a_row_so_the_online_store_has_the_current_age(context: pd.DataFrame) -> None:
    today = _as_of(context, "Patient/p1", "2026-01-01")
    assert today[TIMESTAMP] == AS_OF and today["age_band"] == "70-79"


@pytest.mark.parametrize(
    ("birth", "when", "band"),
    [
        ("1950-06-15", "2024-06-14", "70-79"),  # 73, the day before the birthday
        ("1950-06-15", "2030-06-15", "80-89"),
        ("1930-01-01", "2020-01-01", "90+"),  # ages over 89 are one band (Safe Harbor)
        ("2020-01-01", "2020-06-01", "0-9"),
        ("2020-01-01", "2019-06-01", None),  # before birth
        (None, "2020-06-01", None),
    ],
)
def test_age_bands(birth: str | None, when: str, band: str | None) -> None:
    born = pd.Timestamp(birth, tz="UTC") if birth else None
    assert age_band(born, pd.Timestamp(when, tz="UTC")) == band
