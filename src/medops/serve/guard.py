"""PHI guards around a served model: de-identify what goes in, redact what comes out.

Input goes through the recipe's own ``deid`` policy and the training run's non-PHI
vocabulary, so the model sees text in the form it was trained on (a classifier trained on
``[NAME]`` tags answers differently when it meets a real-looking name). Output is scanned
by the same detector and PHI-looking spans become ``[CATEGORY]`` tags; only counts are
kept (metrics), never the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from medops.deid.policy import apply_policy
from medops.deid.pseudonyms import Pseudonymizer
from medops.privacy.keys import load_key
from medops.recipe import Deid
from medops.serve import metrics

# where a streamed text may be cut for scanning: a line end, a sentence end, a JSON field
# end; a span (a name, a date) seldom crosses one of these
_BOUNDARY = re.compile(r'\n|[.!?;]\s|",\s*')


@dataclass
class Guard:
    deid: Deid
    known: frozenset[str] = frozenset()
    inputs: bool = True
    outputs: bool = True
    _pseudonymizer: Pseudonymizer | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.inputs and self.deid.policy == "pseudonymize":
            self._pseudonymizer = Pseudonymizer(load_key())  # fails at startup, not per request

    def clean(self, texts: Sequence[str]) -> list[str]:
        """``texts`` as training saw them (the policy applied), or unchanged when off."""
        if not self.inputs or not texts:
            return list(texts)
        applied = apply_policy(
            texts,
            [""] * len(texts),
            self.deid,
            self.known,
            self.deid.language,
            self._pseudonymizer,
        )
        metrics.count_redactions("input", sum(len(s) for s in applied.spans))
        return applied.texts

    def redact(self, text: str) -> tuple[str, int]:
        """``text`` with PHI-looking spans replaced by typed tags, and how many there were."""
        if not self.outputs or not text.strip():
            return text, 0
        applied = apply_policy(
            [text],
            [""],
            self.deid.model_copy(update={"policy": "redact"}),
            self.known,
            self.deid.language,
        )
        found = len(applied.spans[0])
        metrics.count_redactions("output", found)
        return applied.texts[0], found

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


@dataclass
class StreamRedactor:
    """Redacts a streamed answer segment by segment: text is held until a boundary, so a
    span is scanned whole; what was released is exactly the final text."""

    guard: Guard
    pending: str = ""
    released: list[str] = field(default_factory=list)
    redactions: int = 0

    def feed(self, piece: str) -> str:
        if not self.guard.outputs:
            self.released.append(piece)
            return piece
        self.pending += piece
        cut = 0
        for match in _BOUNDARY.finditer(self.pending):
            cut = match.end()
        if not cut:
            return ""
        segment, self.pending = self.pending[:cut], self.pending[cut:]
        return self._release(segment)

    def flush(self) -> str:
        segment, self.pending = self.pending, ""
        return self._release(segment) if segment else ""

    def _release(self, segment: str) -> str:
        clean, found = self.guard.redact(segment)
        self.redactions += found
        self.released.append(clean)
        return clean

    @property
    def text(self) -> str:
        return "".join(self.released)
