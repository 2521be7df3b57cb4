"""Validate a custom resource against its CRD's openAPIV3Schema, as the API server does.

kubernetes-validate knows only built-in kinds, and kmock checks no schema at all, so the
objects medops generates (RayJob, InferenceService) and the medops CRs themselves are
checked here: schema defaults are applied first, then every value is validated. Unknown
fields are errors (the API server's ``fieldValidation=Strict``; by default it would prune
them silently) and so are nulls in non-nullable fields (the server would prune those too):
a builder that emits either has a bug. CEL rules (``x-kubernetes-validations``) are not
evaluated.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from medops.errors import MedopsError

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# upstream CRDs are megabytes of YAML: libyaml's loader reads them ~6x faster
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
}


class SchemaError(MedopsError, ValueError):
    """An object the API server would reject; ``errors`` name each offending path."""

    def __init__(self, what: str, errors: list[str]) -> None:
        super().__init__(f"{what} is invalid:\n  " + "\n  ".join(errors))
        self.errors = errors


def load_crds(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in the given YAML files (multi-document aware)."""
    crds = []
    for path in paths:
        for doc in yaml.load_all(Path(path).read_text(encoding="utf-8"), Loader=_LOADER):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    return crds


def schema_for(crds: Iterable[dict[str, Any]], api_version: str, kind: str) -> dict[str, Any]:
    """The openAPIV3Schema that governs ``apiVersion``/``kind``; KeyError when none is known."""
    group, _, version = api_version.rpartition("/")
    for crd in crds:
        spec = crd["spec"]
        if spec["group"] != group or spec["names"]["kind"] != kind:
            continue
        for served in spec["versions"]:
            if served["name"] == version and served.get("served", True):
                return served["schema"]["openAPIV3Schema"]
    raise KeyError(f"no CRD serves {kind} in {api_version}")


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """A copy of ``value`` with schema defaults filled in where fields are absent.

    Defaults apply top-down, so a defaulted ``{}`` gets its own children's defaults, the
    same order the API server uses.
    """
    value = copy.deepcopy(value)
    _default_in_place(value, schema)
    return value


def _default_in_place(value: Any, schema: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default_in_place(value[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in value:
                if name not in schema.get("properties", {}):
                    _default_in_place(value[name], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default_in_place(item, schema["items"])


def validate_resource(obj: dict[str, Any], crds: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The object with defaults applied; SchemaError listing every violation otherwise."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    try:
        schema = schema_for(list(crds), obj.get("apiVersion", ""), obj.get("kind", ""))
    except KeyError as missing:
        raise SchemaError(name, [str(missing.args[0])]) from None
    defaulted = apply_defaults(obj, schema)
    problems = errors(defaulted, schema, root=True)
    if problems:
        raise SchemaError(name, problems)
    return defaulted


def errors(
    value: Any, schema: dict[str, Any], path: str = "", root: bool = False, closed: bool = True
) -> list[str]:
    """Every violation of ``schema`` by ``value``, each prefixed with its field path.

    ``closed=False`` evaluates an allOf/anyOf/oneOf/not branch: structural schemas declare
    fields outside those branches, so a branch never makes a field unknown.
    """
    where = path or "<root>"
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: must not be null"]
    type_error = _type_error(value, schema)
    if type_error:
        return [f"{where}: {type_error}"]
    found = _value_errors(value, schema)
    found = [f"{where}: {message}" for message in found]
    found += _junctor_errors(value, schema, path)
    if isinstance(value, dict):
        found += _object_errors(value, schema, path, root, closed)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += errors(item, schema["items"], f"{path}[{index}]", closed=closed)
    return found


def _type_error(value: Any, schema: dict[str, Any]) -> str | None:
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
        return None if ok else f"must be an integer or a string, got {_kind(value)}"
    wanted = schema.get("type")
    if wanted is None:
        return None
    if wanted == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif wanted == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, _TYPES[wanted])
    return None if ok else f"must be {wanted}, got {_kind(value)}"


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "integer" if isinstance(value, int) else "number"
    )


def _value_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    """Enum, bounds, lengths, pattern and format: the checks on one value itself."""
    found = []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        found.append(f"{json.dumps(value)} is not one of {allowed}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        found += _number_errors(value, schema)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            found.append(f"must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"must be at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{value!r} does not match {schema['pattern']!r}")
        if schema.get("format") == "date-time" and not _is_datetime(value):
            found.append(f"{value!r} is not an RFC 3339 date-time")
    if isinstance(value, list):
        found += _array_errors(value, schema)
    if isinstance(value, dict):
        if len(value) < schema.get("minProperties", 0):
            found.append(f"must have at least {schema['minProperties']} fields")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            found.append(f"must have at most {schema['maxProperties']} fields")
    return found


def _number_errors(value: float, schema: dict[str, Any]) -> list[str]:
    found = []
    if "minimum" in schema:
        low, exclusive = schema["minimum"], schema.get("exclusiveMinimum", False)
        if value < low or (exclusive and value == low):
            found.append(f"{value} is less than the minimum {low}")
    if "maximum" in schema:
        high, exclusive = schema["maximum"], schema.get("exclusiveMaximum", False)
        if value > high or (exclusive and value == high):
            found.append(f"{value} is greater than the maximum {high}")
    if "multipleOf" in schema and value % schema["multipleOf"]:
        found.append(f"{value} is not a multiple of {schema['multipleOf']}")
    if schema.get("format") in _INT_RANGES and isinstance(value, int):
        low, high = _INT_RANGES[schema["format"]]
        if not low <= value <= high:
            found.append(f"{value} does not fit {schema['format']}")
    return found


def _array_errors(value: list[Any], schema: dict[str, Any]) -> list[str]:
    found = []
    if len(value) < schema.get("minItems", 0):
        found.append(f"must have at least {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        found.append(f"must have at most {schema['maxItems']} items")
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen = [tuple(item.get(k) for k in keys) for item in value if isinstance(item, dict)]
        duplicates = sorted({str(k) for k in seen if seen.count(k) > 1})
        if duplicates:
            found.append(f"duplicate entries for key {keys}: {', '.join(duplicates)}")
    elif list_type == "set" or schema.get("uniqueItems"):
        canonical = [json.dumps(item, sort_keys=True) for item in value]
        if len(set(canonical)) != len(canonical):
            found.append("items must be unique")
    return found


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return "T" in text.upper()


def _junctor_errors(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """allOf / anyOf / oneOf / not: structural schemas use them for value checks only."""
    where = path or "<root>"

    def fails(sub: dict[str, Any]) -> list[str]:
        return errors(value, sub, path, closed=False)

    found = [problem for sub in schema.get("allOf", []) for problem in fails(sub)]
    int_or_string = schema.get("x-kubernetes-int-or-string")  # its anyOf is the type itself
    if "anyOf" in schema and not int_or_string and all(fails(sub) for sub in schema["anyOf"]):
        found.append(f"{where}: matches none of the anyOf alternatives")
    if "oneOf" in schema:
        matching = sum(not fails(sub) for sub in schema["oneOf"])
        if matching != 1:
            alternatives = "; ".join(_describe(sub) for sub in schema["oneOf"])
            found.append(f"{where}: must match exactly one of: {alternatives} ({matching} match)")
    if "not" in schema and not fails(schema["not"]):
        found.append(f"{where}: must not match {_describe(schema['not'])}")
    return found


def _describe(schema: dict[str, Any]) -> str:
    if set(schema) == {"required"}:
        return "set " + " and ".join(schema["required"])
    return json.dumps(schema, sort_keys=True)


def _object_errors(
    value: dict[str, Any], schema: dict[str, Any], path: str, root: bool, closed: bool
) -> list[str]:
    found = []
    prefix = f"{path}." if path else ""
    properties = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            found.append(f"{prefix}{name}: required field is missing")
    if root or schema.get("x-kubernetes-embedded-resource"):
        # apiVersion/kind/metadata of a (embedded) resource: ObjectMeta has its own rules
        found += _meta_errors(value, prefix)
        value = {k: v for k, v in value.items() if k not in ("apiVersion", "kind", "metadata")}
    extra = schema.get("additionalProperties")
    open_object = not closed or schema.get("x-kubernetes-preserve-unknown-fields") or extra is True
    for name, item in value.items():
        if name in properties:
            found += errors(item, properties[name], f"{prefix}{name}", closed=closed)
        elif isinstance(extra, dict):
            found += errors(item, extra, f"{prefix}{name}", closed=closed)
        elif not open_object:
            allowed = ", ".join(sorted(properties)) or "none"
            found.append(f"{prefix}{name}: unknown field; allowed here: {allowed}")
    return found


def _meta_errors(value: dict[str, Any], prefix: str) -> list[str]:
    metadata = value.get("metadata", {})
    if not isinstance(metadata, dict):
        return [f"{prefix}metadata: must be object"]
    found = []
    for key in ("name", "namespace", "generateName"):
        if key in metadata and not isinstance(metadata[key], str):
            found.append(f"{prefix}metadata.{key}: must be string")
    for key in ("labels", "annotations"):
        entries = metadata.get(key, {})
        if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
            found.append(f"{prefix}metadata.{key}: must map strings to strings")
    return found
