"""A row's point-in-time context features as numbers beside its text embedding.

The classifier's head is a logistic regression over the pooled embedding; context features
(a drug's earlier reviews, a patient's age band; ``medops.features``) join it as more
columns. Numbers are standardised on the training rows, strings one-hot over the values
training saw most often, and every feature gets a "missing" column, so a row with no
history yet (null) is scored as such rather than as an average. Fitted once on the
training rows and saved with the model, so evaluation and serving encode alike.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np

MAX_VALUES = 32  # one-hot columns per string feature; rarer values share the zero row
Context = Mapping[str, Any] | None


def _present(value: Any) -> TypeGuard[str | float | int]:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class SideInputs:
    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)  # mean, std
    categorical: dict[str, list[str]] = field(default_factory=dict)  # values, most frequent first

    @classmethod
    def fit(cls, contexts: Sequence[Context]) -> SideInputs:
        """Columns for every feature the training rows carry, typed by their values."""
        values: dict[str, list[Any]] = {}
        for context in contexts:
            for name, value in (context or {}).items():
                values.setdefault(name, [])
                if _present(value):
                    values[name].append(value)
        numeric, categorical = {}, {}
        for name, seen in values.items():
            if seen and all(isinstance(v, int | float) and not isinstance(v, bool) for v in seen):
                array = np.asarray(seen, dtype=np.float64)
                numeric[name] = (float(array.mean()), float(array.std()) or 1.0)
            elif seen:
                counts = Counter(str(v) for v in seen)
                ranked = sorted(counts, key=lambda v: (-counts[v], v))
                categorical[name] = ranked[:MAX_VALUES]
        return cls(numeric, categorical)

    @property
    def names(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def width(self) -> int:
        return 2 * len(self.numeric) + sum(1 + len(v) for v in self.categorical.values())

    def transform(self, contexts: Sequence[Context]) -> np.ndarray:
        """One row of ``width`` float32 columns per context (None: no context at all)."""
        out = np.zeros((len(contexts), self.width), dtype=np.float32)
        for row, context in enumerate(contexts):
            context = context or {}
            column = 0
            for name, (mean, std) in self.numeric.items():
                value = context.get(name)
                if _present(value):
                    out[row, column] = (float(value) - mean) / std
                else:
                    out[row, column + 1] = 1.0
                column += 2
            for name, known in self.categorical.items():
                value = context.get(name)
                if not _present(value):
                    out[row, column] = 1.0
                elif str(value) in known:
                    out[row, column + 1 + known.index(str(value))] = 1.0
                column += 1 + len(known)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": {name: list(stats) for name, stats in self.numeric.items()},
            "categorical": self.categorical,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SideInputs:
        numeric = {name: (float(m), float(s)) for name, (m, s) in data["numeric"].items()}
        return cls(numeric, {name: list(v) for name, v in data["categorical"].items()})
