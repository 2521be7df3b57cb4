"""The validator itself, on small schemas: each rule both accepts and rejects."""

from __future__ import annotations

import pytest

from medops.operator.schema import apply_defaults, errors, schema_for

QUANTITY = {
    "x-kubernetes-int-or-string": True,
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": r"^[0-9]+(m|Gi)?$",
}
SCHEMA = {
    "type": "object",
    "properties": {
        "size": QUANTITY,
        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
        "count": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 3},
        "ratio": {"type": "number", "nullable": True},
        "when": {"type": "string", "format": "date-time"},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "items": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "on": {"type": "boolean"}},
            },
        },
        "inner": {
            "type": "object",
            "default": {},
            "properties": {"depth": {"type": "integer", "default": 2}},
        },
    },
}


@pytest.mark.parametrize(
    "value",
    [
        {"size": 3},
        {"size": "500m"},
        {"count": 3, "ratio": None, "tags": {"k": "v"}},
        {"ratio": 0.5, "when": "2026-11-25T10:00:00Z"},
        {"free": {"anything": {"goes": [1, 2]}}},
        {"items": [{"name": "x", "on": True}, {"name": "y"}]},
    ],
)
def test_valid_values_pass(value):
    assert errors(apply_defaults(value, SCHEMA), SCHEMA) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"size": 1.5}, "size: must be an integer or a string, got number"),
        ({"size": "lots"}, "size: 'lots' does not match"),
        ({"mode": "c"}, 'mode: "c" is not one of "a", "b"'),
        ({"count": 0}, "count: 0 is less than the minimum 1"),
        ({"count": 4}, "count: 4 is greater than the maximum 3"),
        ({"count": True}, "count: must be integer, got boolean"),
        ({"count": "2"}, "count: must be integer, got string"),
        ({"mode": None}, "mode: must not be null"),
        ({"when": "yesterday"}, "when: 'yesterday' is not an RFC 3339 date-time"),
        ({"tags": {"k": 1}}, "tags.k: must be string, got integer"),
        ({"typo": 1}, "typo: unknown field; allowed here: count, free, inner"),
        ({"items": [{"on": False}]}, "items[0].name: required field is missing"),
        ({"items": [{"name": "x"}, {"name": "x"}]}, "items: duplicate entries for key ['name']"),
        ({"inner": {"depth": "deep"}}, "inner.depth: must be integer, got string"),
    ],
)
def test_invalid_values_name_the_path(value, message):
    found = errors(apply_defaults(value, SCHEMA), SCHEMA)
    assert any(problem.startswith(message) for problem in found), found


def test_defaults_apply_top_down_and_never_overwrite():
    assert apply_defaults({}, SCHEMA) == {"mode": "a", "inner": {"depth": 2}}
    assert apply_defaults({"mode": "b", "inner": {"depth": 5}}, SCHEMA) == {
        "mode": "b",
        "inner": {"depth": 5},
    }
    original = {"inner": {}}
    apply_defaults(original, SCHEMA)
    assert original == {"inner": {}}  # a copy is defaulted, not the caller's object


def test_one_of_needs_exactly_one_branch():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
    }
    assert errors({"a": "x"}, schema) == []
    assert "(0 match)" in errors({}, schema)[0]
    assert "(2 match)" in errors({"a": "x", "b": "y"}, schema)[0]


def test_schema_for_picks_the_served_version(medops_crds):
    schema = schema_for(medops_crds, "medops.dev/v1alpha1", "FineTune")
    assert "recipeRef" in schema["properties"]["spec"]["properties"]
    with pytest.raises(KeyError, match="no CRD serves FineTune in medops.dev/v1"):
        schema_for(medops_crds, "medops.dev/v1", "FineTune")
