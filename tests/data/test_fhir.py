from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from medops.data.ingest import Ingested, SourceError, ingest_source
from medops.recipe import Columns, Source

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLE = FIXTURES / "fhir_bundle.json"
NDJSON = FIXTURES / "fhir_documents.ndjson"
# id and text are not read from FHIR: the DocumentReference id and its attachment are
BY_CONDITION = Columns(id="id", text="text", label="condition")
BY_TYPE = Columns(id="id", text="text", label="type.coding.0.display")


def read(path: Path, columns: Columns, fmt: str = "fhir", role: str = "train") -> Ingested:
    result = ingest_source(Source(uri=str(path), format=fmt, role=role), columns, set())
    assert result.rows_in == len(result.records) + len(result.quarantined)
    return result


def reasons(result: Ingested) -> dict[str, str]:
    return {q.id: q.reason for q in result.quarantined}


def document(id_: str, text: str | None = None, **fields: Any) -> dict[str, Any]:
    """A DocumentReference of Patient/p1 with one inline text/plain note (none if no text)."""
    data = base64.b64encode(text.encode()).decode() if text is not None else None
    content = [{"attachment": {"contentType": "text/plain", "data": data}}] if data else []
    return {
        "resourceType": "DocumentReference",
        "id": id_,
        "subject": {"reference": "Patient/p1"},
        "content": content,
        **fields,
    }


def condition(label: str, encounter: str | None = None) -> dict[str, Any]:
    linked = {"encounter": {"reference": encounter}} if encounter else {}
    code = {"coding": [{"display": label}]}
    return {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "code": code,
    } | linked


def write_bundle(path: Path, *resources: Any) -> Path:
    entries = [{"resource": r} for r in resources]
    path.write_text(json.dumps({"resourceType": "Bundle", "entry": entries}), encoding="utf-8")
    return path


def test_bundle_documents_are_rows_labelled_by_their_linked_condition():
    result = read(BUNDLE, BY_CONDITION)
    assert result.rows_in == 3  # the Patients, Encounter and Conditions are not rows
    first, second = result.records
    assert (first.id, first.label, first.patient) == ("train:doc-1", "Angina", "Patient/p1")
    assert first.text == "Admitted with chest pain on exertion; naïve to nitrates."  # ISO-8859-1
    assert first.timestamp == "2024-03-01T09:30:00Z"
    assert (second.id, second.label) == ("train:doc-2", "Type 2 diabetes")  # code.text
    assert second.text.startswith("Patiente suivie pour diabète de type 2 : glycémie élevée")
    assert reasons(result) == {"train:doc-3": "fhir_attachment_url_only"}
    assert result.encoding == "utf-8"


def test_bundle_label_from_a_dotted_path_and_extra_fields():
    columns = BY_TYPE.model_copy(update={"extra": {"status": "status"}})
    result = read(BUNDLE, columns, role="test")
    assert [(r.id, r.label) for r in result.records] == [
        ("test:doc-1", "Discharge summary"),
        ("test:doc-2", "Progress note"),
    ]
    assert result.records[0].fields == {"status": "current"}


def test_ndjson_quarantines_broken_lines_non_resources_and_documents_without_text():
    result = read(NDJSON, BY_CONDITION, fmt="fhir-ndjson")
    assert result.rows_in == 6  # 4 DocumentReferences, a broken line, a non-resource
    [record] = result.records
    assert (record.id, record.label, record.patient) == ("train:n-1", "Asthma", "Patient/p3")
    assert reasons(result) == {
        "train:n-2": "fhir_no_text",
        "train:n-3": "fhir_no_text",  # a PDF is not text
        "train:line-6": "bad_json",
        "train:line-7": "not_fhir",
        "train:n-5": "missing_label",  # no Condition for Patient/p9
    }


def test_condition_link_narrows_by_encounter_and_refuses_to_guess(tmp_path: Path):
    path = write_bundle(
        tmp_path / "b.json",
        condition("Asthma", "Encounter/1"),
        condition("Gout", "Encounter/2"),
        document("a", "Seen for wheezing.", context={"encounter": [{"reference": "Encounter/1"}]}),
        document("b", "Seen again, no encounter given."),
    )
    result = read(path, BY_CONDITION)
    assert [(r.id, r.label) for r in result.records] == [("train:a", "Asthma")]
    assert reasons(result) == {"train:b": "fhir_condition_ambiguous"}


def test_undecodable_attachments_and_documents_without_id(tmp_path: Path):
    bad_base64 = document("b64")
    bad_base64["content"] = [{"attachment": {"contentType": "text/plain", "data": "%%%"}}]
    bad_charset = document("charset", "note")
    bad_charset["content"][0]["attachment"]["contentType"] = "text/plain; charset=klingon"
    no_id = document("", "A note without an id.")
    path = write_bundle(tmp_path / "b.json", bad_base64, bad_charset, no_id, {"id": "x"}, None)
    result = read(path, BY_CONDITION)
    assert result.records == []
    assert reasons(result) == {
        "train:b64": "fhir_bad_attachment",
        "train:charset": "fhir_bad_attachment",
        "train:row-3": "missing_id",
        "train:entry-4": "not_fhir",
        "train:entry-5": "not_fhir",
    }


def test_a_label_path_no_document_has_is_a_source_error(tmp_path: Path):
    path = write_bundle(tmp_path / "b.json", document("a", "Secret note text."))
    columns = Columns(id="id", text="text", label="type.text")
    with pytest.raises(SourceError, match="'type.text'") as error:
        read(path, columns)
    assert "Secret note text" not in str(error.value)


@pytest.mark.parametrize("text", ["{not json", '{"entry": []}', "[]"])
def test_a_file_that_is_not_a_bundle_is_a_source_error(tmp_path: Path, text: str):
    path = tmp_path / "b.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError, match="not a FHIR Bundle"):
        read(path, BY_CONDITION)


def test_mapped_patient_and_timestamp_paths_override_the_defaults(tmp_path: Path):
    path = write_bundle(
        tmp_path / "b.json",
        condition("Asthma"),
        document(
            "a",
            "Seen for wheezing.",
            identifier=[{"value": "MRN-1"}],
            date="2024-01-01",
            meta={"lastUpdated": "2024-01-02"},
        ),
    )
    columns = BY_CONDITION.model_copy(
        update={"patient": "identifier.0.value", "timestamp": "meta.lastUpdated"}
    )
    [record] = read(path, columns).records
    assert (record.patient, record.timestamp) == ("MRN-1", "2024-01-02")


def test_urn_uuid_and_absolute_references_resolve_to_the_entry_they_name(tmp_path: Path):
    """A transaction bundle names its patient by fullUrl; a server export by absolute URL."""
    patient = {"resourceType": "Patient", "id": "p1"}
    by_urn = document("d-urn", "note one") | {"subject": {"reference": "urn:uuid:1f0e"}}
    by_url = document("d-url", "note two") | {
        "subject": {"reference": "https://fhir.example.org/r4/Patient/p1/_history/3"}
    }
    unnamed = document("d-orphan", "note three") | {"subject": {"reference": "urn:uuid:none"}}
    entries = [
        {"fullUrl": "urn:uuid:1f0e", "resource": patient},
        {"resource": condition("Asthma")},
        {"resource": by_urn},
        {"resource": by_url},
        {"resource": unnamed},
        "not an entry",
    ]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "entry": entries}), encoding="utf-8")
    result = read(path, BY_CONDITION)
    rows = {r.id: (r.patient, r.label) for r in result.records}
    assert rows == {
        "train:d-urn": ("Patient/p1", "Asthma"),
        "train:d-url": ("Patient/p1", "Asthma"),
    }
    # an unresolvable urn stays as written: no Condition links to it
    assert reasons(result) == {"train:d-orphan": "missing_label", "train:entry-6": "not_fhir"}
