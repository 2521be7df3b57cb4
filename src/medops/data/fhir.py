"""FHIR R4 sources: each DocumentReference becomes one row of fields for the ingest mapping.

A DocumentReference is flattened into dotted paths (``type.coding.0.display``) so the recipe
maps it like a table. Keys starting with ``@`` are not FHIR paths but what ingest needs and
FHIR nests: the inline note text, the subject, the date and the linked Condition's code.
Other resources (Patient, Condition, Encounter...) are context, never rows. Attachments that
only point at a ``url`` are not fetched: reading stays offline and reproducible.
"""

from __future__ import annotations

import base64
import codecs
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from medops.errors import MedopsError
from medops.recipe import Columns

TEXT = "@text"
PATIENT = "@patient"
TIMESTAMP = "@timestamp"
CONDITION = "@condition"
LINKED_CONDITION = "condition"  # the columns.label value that asks for CONDITION

NOT_FHIR = "not_fhir"
NO_TEXT = "fhir_no_text"
URL_ONLY = "fhir_attachment_url_only"
BAD_ATTACHMENT = "fhir_bad_attachment"
AMBIGUOUS_CONDITION = "fhir_condition_ambiguous"

# subject reference -> (encounter reference or "", condition label) of each coded Condition
Conditions = dict[str, list[tuple[str, str]]]
# "http://server/fhir/Patient/123/_history/2" -> "Patient/123" (FHIR R4 3.1.1.6.1 literal refs)
_ABSOLUTE = re.compile(r"^\w+://.+?/([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


class FhirError(MedopsError, ValueError):
    """A file that is not FHIR at all; names the problem, never a resource's content."""


def columns_for(columns: Columns) -> Columns:
    """The recipe's mapping, read against a flattened DocumentReference."""
    label = CONDITION if columns.label == LINKED_CONDITION else columns.label
    return columns.model_copy(
        update={
            "id": "id",
            "text": TEXT,
            "label": label,
            "patient": columns.patient or PATIENT,
            "timestamp": columns.timestamp or TIMESTAMP,
        }
    )


def bundle_resources(bundle: Any) -> list[Any]:
    """The entries' resources in order (None for an entry without one); a lone resource is
    read as a Bundle of one.

    References to another entry by its ``fullUrl`` (``urn:uuid:...`` in transaction
    bundles, or an absolute URL) are rewritten to that entry's ``Type/id``, so a document
    and a Condition that name one patient differently still link, and the patient id used
    for the split and for erasure is the same whichever form a source used.
    """
    if not isinstance(bundle, dict) or not isinstance(bundle.get("resourceType"), str):
        raise FhirError("the top level is not a FHIR resource (no resourceType)")
    if bundle["resourceType"] != "Bundle":
        return [bundle]
    entries = [e if isinstance(e, dict) else {} for e in bundle.get("entry") or []]
    aliases = {
        str(entry["fullUrl"]): f"{resource['resourceType']}/{resource['id']}"
        for entry in entries
        if entry.get("fullUrl")
        and isinstance(resource := entry.get("resource"), dict)
        and isinstance(resource.get("resourceType"), str)
        and resource.get("id")
    }
    return [_resolved(entry.get("resource"), aliases) for entry in entries]


def _resolved(value: Any, aliases: dict[str, str]) -> Any:
    """``value`` with every ``reference`` that names a bundle entry's fullUrl replaced."""
    if isinstance(value, list):
        return [_resolved(item, aliases) for item in value]
    if not isinstance(value, dict):
        return value
    return {
        key: aliases.get(child, child)
        if key == "reference" and isinstance(child, str)
        else _resolved(child, aliases)
        for key, child in value.items()
    }


def _reference(flat: dict[str, Any], path: str) -> str:
    """A literal reference, relative: an absolute URL's server base is dropped."""
    value = _value(flat, path)
    absolute = _ABSOLUTE.match(value)
    return absolute.group(1) if absolute else value


def document_id(resource: dict[str, Any]) -> str:
    """A DocumentReference's id ("" for other resources): names its row or its quarantine."""
    named = resource.get("resourceType") == "DocumentReference" and resource.get("id")
    return str(named) if named else ""


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"type": {"coding": [{"display": "x"}]}}`` -> ``{"type.coding.0.display": "x"}``."""
    children: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, child in children:
        flat.update(_flatten(child, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _value(flat: dict[str, Any], path: str) -> str:
    value = flat.get(path)
    return "" if value is None else str(value)


def linked_conditions(resources: list[dict[str, Any]]) -> Conditions:
    """Index the coded Conditions by subject, for ``columns.label: condition``."""
    index: Conditions = defaultdict(list)
    for resource in resources:
        if resource.get("resourceType") != "Condition":
            continue
        flat = _flatten(resource)
        label = _value(flat, "code.coding.0.display") or _value(flat, "code.text")
        if label:
            index[_reference(flat, "subject.reference")].append(
                (_reference(flat, "encounter.reference"), label)
            )
    return index


def _content_type(attachment: dict[str, Any]) -> tuple[str, str]:
    """("text/plain", "utf-8") from "text/plain; charset=utf-8"; FHIR's default charset is UTF-8."""
    mime, *params = str(attachment.get("contentType") or "").split(";")
    charset = "utf-8"
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"')
    return mime.strip().lower(), charset


def _note(document: dict[str, Any]) -> tuple[str, str]:
    """(text, "") of the first inline text attachment, text/plain first; else ("", reason).

    An attachment without contentType is tried as text: strict decoding rejects binary.
    """
    contents = document.get("content")
    attachments = [
        content["attachment"]
        for content in (contents if isinstance(contents, list) else [])
        if isinstance(content, dict) and isinstance(content.get("attachment"), dict)
    ]
    typed = [(_content_type(a)[0], a) for a in attachments]
    textual = [a for mime, a in typed if mime in ("", "text/plain")]
    textual += [a for mime, a in typed if mime.startswith("text/") and mime != "text/plain"]
    inline = [a for a in textual if a.get("data")]
    if not inline:
        return "", URL_ONLY if any(a.get("url") for a in textual) else NO_TEXT
    charset = _content_type(inline[0])[1]
    try:
        if codecs.lookup(charset).name == "utf-8":
            charset = "utf-8-sig"
        return base64.b64decode(inline[0]["data"], validate=True).decode(charset), ""
    except (LookupError, TypeError, ValueError):  # unknown charset, bad base64, bad bytes
        return "", BAD_ATTACHMENT


def _condition(flat: dict[str, Any], conditions: Conditions) -> tuple[str, str]:
    """(label, "") of the Condition linked to a document, ("", reason) if several disagree.

    Linked: same subject and, when the document names an encounter, that encounter. No link
    gives an empty label, which ingest quarantines as missing_label.
    """
    encounter = _reference(flat, "context.encounter.0.reference")
    labels = {
        label
        for linked_encounter, label in conditions.get(_reference(flat, "subject.reference"), [])
        if not encounter or linked_encounter == encounter
    }
    if len(labels) > 1:
        return "", AMBIGUOUS_CONDITION
    return next(iter(labels), ""), ""


def document_row(
    resource: dict[str, Any], conditions: Conditions | None
) -> dict[str, Any] | str | None:
    """A DocumentReference's fields; a quarantine reason; or None for a resource that is not a
    row. ``conditions`` is given when the label is the linked Condition."""
    kind = resource.get("resourceType")
    if not isinstance(kind, str) or not kind:
        return NOT_FHIR
    if kind != "DocumentReference":
        return None
    text, reason = _note(resource)
    if reason:
        return reason
    flat = _flatten(resource)
    row = {
        **flat,
        TEXT: text,
        PATIENT: _reference(flat, "subject.reference"),
        TIMESTAMP: _value(flat, "date"),
    }
    if conditions is not None:
        row[CONDITION], reason = _condition(flat, conditions)
    return reason or row
