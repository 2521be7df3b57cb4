"""The patient entity of FHIR sources: each patient's context as of a time.

As of time ``t`` a patient has: an age band at ``t`` (ten-year bands, ``90+`` above 89 as
HIPAA Safe Harbor aggregates them), sex (``Patient.gender``), the number of Conditions
recorded before ``t``, and the latest Observation before ``t`` (its coded name and numeric
value). Strictly earlier (``asof``): a Condition or Observation dated at or after a note,
or dated the note's day without a time, never reaches that note. The entity key is
``patient_key``, the keyed hash prepare writes into each row (``medops.privacy.keys``), so
feature files hold no patient id and erasure finds the patient with the same key. Only
coded values are kept, never free text (``code.text``, notes): these rows leave the
prepare boundary.

Minimal on purpose: one latest Observation of any kind, not one per code, and undated
Conditions and Observations count nowhere (they cannot be placed before or after a note).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medops.features.asof import (
    TIMESTAMP,
    known_by,
    known_from,
    micros,
    parse_timestamps,
    snapshot_times,
)
from medops.features.sources import fhir_resources
from medops.privacy.keys import patient_key
from medops.recipe import Recipe

JOIN_KEY = "patient_key"
# "http://server/fhir/Patient/1/_history/2" -> "Patient/1", as medops.data.fhir reads them
_ABSOLUTE = re.compile(r"^\w+://.+?/([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_CONDITION_TIMES = ("onsetDateTime", "onsetPeriod.start", "recordedDate")
_OBSERVATION_TIMES = ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued")


@dataclass(frozen=True)
class Event:
    at: pd.Timestamp  # when it happened
    known: pd.Timestamp  # from when a feature may show it (``asof``)


@dataclass(frozen=True)
class Observation(Event):
    code: str
    value: float | None


@dataclass
class PatientEvents:
    """What the sources say of one patient, by the patient's source reference."""

    gender: str | None = None
    birth: pd.Timestamp | None = None
    notes: list[pd.Timestamp] = field(default_factory=list)
    conditions: list[Event] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)


@dataclass
class FhirContext:
    patients: dict[str, PatientEvents]
    counts: Counter[str] = field(default_factory=Counter)  # resources read / undated


def _path(resource: dict[str, Any], dotted: str) -> Any:
    value: Any = resource
    for part in dotted.split("."):
        if isinstance(value, list):
            value = value[int(part)] if part.isdigit() and int(part) < len(value) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def reference(resource: dict[str, Any], dotted: str) -> str:
    """A literal reference, relative (the server base of an absolute URL dropped)."""
    value = _path(resource, dotted)
    text = value.strip() if isinstance(value, str) else ""
    absolute = _ABSOLUTE.match(text)
    return absolute.group(1) if absolute else text


def _time(resource: dict[str, Any], paths: Iterable[str]) -> Event | None:
    """The first of ``paths`` that holds a readable FHIR date or dateTime."""
    for dotted in paths:
        value = _path(resource, dotted)
        if isinstance(value, str) and value.strip():
            at = parse_timestamps([value])
            if pd.isna(at.iloc[0]):
                return None
            return Event(at.iloc[0], known_from([value], at).iloc[0])
    return None


def _observation(resource: dict[str, Any], time: Event) -> Observation:
    coding = _path(resource, "code.coding.0") or {}
    code = coding.get("display") or coding.get("code") if isinstance(coding, dict) else None
    value = _path(resource, "valueQuantity.value")
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    number = float(value) if numeric else None
    return Observation(time.at, time.known, str(code) if code else "", number)


def read_context(recipe: Recipe) -> FhirContext:
    """Every FHIR source's Patients, notes, Conditions and Observations, by patient.

    All roles are read: these resources are context, not rows, and a held-out note needs
    its patient's context as much as a training note does.
    """
    context = FhirContext(patients=defaultdict(PatientEvents))
    seen: set[tuple[str, str]] = set()
    for source in recipe.data.sources:
        for resource in fhir_resources(source):
            # sources of one EHR repeat resources (a Patient in every bundle): count once
            named = (str(resource.get("resourceType")), str(resource.get("id") or ""))
            if named[1] and named in seen:
                context.counts["repeated_resources"] += 1
                continue
            seen.add(named)
            _add(context, resource)
    context.patients = dict(context.patients)
    return context


def _add(context: FhirContext, resource: dict[str, Any]) -> None:
    kind = resource.get("resourceType")
    if kind == "Patient" and resource.get("id"):
        events = context.patients[f"Patient/{resource['id']}"]
        gender = resource.get("gender")
        events.gender = gender if isinstance(gender, str) and gender else events.gender
        birth = _time(resource, ("birthDate",))
        events.birth = birth.at if birth else events.birth
        context.counts["patient_resources"] += 1
        return
    if kind not in ("DocumentReference", "Condition", "Observation"):
        return
    subject = reference(resource, "subject.reference")
    if not subject:
        context.counts[f"{kind.lower()}_no_subject"] += 1
        return
    paths = {"DocumentReference": ("date",), "Condition": _CONDITION_TIMES}
    time = _time(resource, paths.get(kind, _OBSERVATION_TIMES))
    if time is None:
        context.counts[f"{kind.lower()}_undated"] += 1
        return
    context.counts[kind.lower()] += 1
    events = context.patients[subject]
    if kind == "DocumentReference":
        events.notes.append(time.at)
    elif kind == "Condition":
        events.conditions.append(time)
    else:
        events.observations.append(_observation(resource, time))


def age_band(birth: pd.Timestamp | None, at: pd.Timestamp) -> str | None:
    """Ten-year band of the age at ``at``; ``90+`` for 90 and over; None before birth."""
    if birth is None:
        return None
    years = at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))
    if years < 0:
        return None
    if years >= 90:
        return "90+"
    low = years // 10 * 10
    return f"{low}-{low + 9}"


def _latest(observations: list[Observation], at: list[pd.Timestamp]) -> list[Observation | None]:
    """At each time, the observation known then that happened last (ties: by code, value)."""
    by_known = sorted(observations, key=lambda o: (o.known, *_rank(o)))
    best: list[Observation | None] = [None]  # best[k]: the latest of the first k known
    for observation in by_known:
        current = best[-1]
        best.append(
            observation if current is None or _rank(observation) >= _rank(current) else current
        )
    return [best[k] for k in known_by(micros(o.known for o in by_known), at)]


def _rank(observation: Observation) -> tuple[pd.Timestamp, str, float]:
    return observation.at, observation.code, observation.value or 0.0


def _patient_rows(key: str, events: PatientEvents, as_of: pd.Timestamp) -> dict[str, list[Any]]:
    conditions = np.sort(micros(c.known for c in events.conditions))
    dated = [*events.conditions, *events.observations]
    at = snapshot_times((e.at for e in dated), (e.known for e in dated), events.notes, [as_of])
    latest = _latest(events.observations, at)
    return {
        JOIN_KEY: [key] * len(at),
        TIMESTAMP: at,
        "age_band": [age_band(events.birth, t) for t in at],
        "sex": [events.gender] * len(at),
        "conditions_before": known_by(conditions, at).tolist(),
        "last_observation_code": [o.code or None if o else None for o in latest],
        "last_observation_value": [o.value if o else None for o in latest],
    }


def patient_context(context: FhirContext, key: bytes, as_of: pd.Timestamp) -> pd.DataFrame:
    """Feature rows keyed by ``patient_key``: at each note, each event and just after it,
    and at ``as_of`` (so the online store holds today's age band)."""
    parts: dict[str, list[Any]] = defaultdict(list)
    for subject in sorted(context.patients):
        rows = _patient_rows(patient_key(key, subject), context.patients[subject], as_of)
        for name, values in rows.items():
            parts[name].extend(values)
    return pd.DataFrame(
        {
            JOIN_KEY: pd.Series(parts[JOIN_KEY], dtype="string"),
            TIMESTAMP: pd.Series(parts[TIMESTAMP], dtype="datetime64[us, UTC]"),
            "age_band": pd.Series(parts["age_band"], dtype="string"),
            "sex": pd.Series(parts["sex"], dtype="string"),
            "conditions_before": pd.Series(parts["conditions_before"], dtype="Int64"),
            "last_observation_code": pd.Series(parts["last_observation_code"], dtype="string"),
            "last_observation_value": pd.Series(parts["last_observation_value"], dtype="Float64"),
        }
    )
