"""What a reviewer sees and edits for one item: the labeling config and its pre-annotation.

Every task reviews the same way: a verdict (accept, correct, reject), one editable value
per answer field pre-filled with the model's answer, and a reason for a rejection. A field
is *accepted* when the submitted value equals the model's, *corrected* otherwise; the
verdict is the reviewer's overall call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

VERDICTS = ("accept", "correct", "reject")
VERDICT, REASON, TEXT = "verdict", "reject_reason", "text"


@dataclass(frozen=True)
class ReviewField:
    """One answer field: free text (``options`` empty) or a choice among ``options``."""

    name: str
    options: tuple[str, ...] = ()

    @property
    def control(self) -> str:
        return f"field_{self.name}"


@dataclass(frozen=True)
class ReviewItem:
    """A de-identified text and the model's answer, one value per review field."""

    id: str
    text: str
    answer: dict[str, str] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)  # what the next training reads


def label_config(fields: list[ReviewField]) -> str:
    """Label Studio's XML for ``fields``: the text, the verdict, each field, the reason."""
    parts = [
        "<View>",
        f'  <Text name="{TEXT}" value="${TEXT}"/>',
        '  <Header value="Verdict on the model\'s answer"/>',
        f'  <Choices name="{VERDICT}" toName="{TEXT}" choice="single" required="true">',
        *(f"    <Choice value={quoteattr(v)}/>" for v in VERDICTS),
        "  </Choices>",
    ]
    for item in fields:
        parts.append(f"  <Header value={quoteattr(item.name)}/>")
        if item.options:
            parts.append(f'  <Choices name="{item.control}" toName="{TEXT}" choice="single">')
            parts += [f"    <Choice value={quoteattr(o)}/>" for o in item.options]
            parts.append("  </Choices>")
        else:
            parts.append(
                f'  <TextArea name="{item.control}" toName="{TEXT}" maxSubmissions="1" '
                'editable="true" rows="2"/>'
            )
    parts += [
        '  <Header value="If rejected: why"/>',
        f'  <TextArea name="{REASON}" toName="{TEXT}" maxSubmissions="1" editable="true"/>',
        "</View>",
    ]
    return "\n".join(parts)


def _value(item: ReviewField, value: str) -> dict[str, Any]:
    kind = "choices" if item.options else "textarea"
    body = {"choices": [value]} if item.options else {"text": [value]}
    return {"from_name": item.control, "to_name": TEXT, "type": kind, "value": body}


def prediction(item: ReviewItem, fields: list[ReviewField], model_version: str) -> dict[str, Any]:
    """The model's answer as a pre-annotation that fills the form (verdict not chosen)."""
    result = [_value(f, item.answer[f.name]) for f in fields if item.answer.get(f.name)]
    return {"model_version": model_version, "result": result}


def read_result(result: list[dict[str, Any]], fields: list[ReviewField]) -> dict[str, Any]:
    """A submitted annotation as ``{"verdict", "reason", "values": {field: value}}``."""
    by_control = {r.get("from_name"): r.get("value", {}) for r in result}
    values = {}
    for item in fields:
        value = by_control.get(item.control, {})
        chosen = value.get("choices") or value.get("text") or [""]
        values[item.name] = str(chosen[0]).strip()
    verdict = (by_control.get(VERDICT, {}).get("choices") or [""])[0]
    reason = (by_control.get(REASON, {}).get("text") or [""])[0]
    return {"verdict": verdict, "reason": str(reason).strip(), "values": values}


def conversation_text(messages: list[dict[str, str]]) -> str:
    """A conversation as a reviewer reads it: one ``role: text`` paragraph per turn."""
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def config_fields(config: str) -> list[ReviewField]:
    """The answer fields of a labeling config ``label_config`` wrote (names only)."""
    return [ReviewField(name) for name in re.findall(r'name="field_([A-Za-z0-9_]+)"', config)]
