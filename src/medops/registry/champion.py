"""The current champion, scored beside the candidate by evaluate (``gate.against_champion``).

The version the registry alias points at answers the same held-out rows in the same run, so
the gate decides on the paired interval of candidate minus champion instead of on two
numbers from different test sets or code versions. It is loaded as serving loads it: every
file checked against the digests registration recorded (no pickle, no code; see
``registry.integrity``), then built from its data by medops' own loaders; the version's
pyfunc is never imported.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from medops.errors import ConfigurationError
from medops.evaluate.verdict import Comparison
from medops.model.registered import MissingModelError
from medops.recipe import Recipe
from medops.registry.integrity import fetch_checked
from medops.registry.tracking import tracking_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Champion:
    """The alias's version as evaluate found it."""

    uri: str  # models:/<name>@<alias>
    model: Path | None  # its checked ``model`` artifact; None while no version holds the alias

    def metrics(self) -> dict[str, float]:
        """``champion_exists``: 0 tells the gate there was nothing to beat yet (skipped)."""
        return {"champion_exists": float(self.model is not None)}


def fetch_champion(recipe: Recipe, code_file: str) -> Champion | None:
    """The version holding ``registry.alias``, checked; None unless ``gate.against_champion``.

    ``code_file`` is the task's pyfunc file, the one code file a version may hold (never
    run). A version that fails the integrity checks is refused (``UnsafeArtifactError``)
    rather than skipped: a gate that silently dropped its comparator would promote unchecked.
    """
    if not recipe.gate.against_champion:
        return None
    uri = f"models:/{recipe.registry.model_name}@{recipe.registry.alias}"
    try:
        artifacts = fetch_checked(uri, tracking_uri(recipe), code_file)
    except MissingModelError:
        log.info("evaluate: no version holds %s yet; nothing to beat", uri)
        return Champion(uri, None)
    if "model" not in artifacts:
        raise ConfigurationError(f"{uri} has no 'model' artifact to score as the champion")
    log.info("evaluate: same held-out rows, current champion %s", uri)
    return Champion(uri, artifacts["model"])


def champion_html(flat: Mapping[str, float], names: Iterable[str]) -> str:
    """The paired verdict of candidate minus champion for each of ``names`` that has one,
    for an evaluate report (empty when no champion was scored)."""
    compared = (Comparison.read(flat, name, "champion") for name in names)
    items = "".join(f"<li>{html.escape(c.text())}</li>" for c in compared if c is not None)
    return f"<h2>Against the current champion (paired)</h2><ul>{items}</ul>" if items else ""
