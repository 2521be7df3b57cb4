from __future__ import annotations

import json
from pathlib import Path

from medops.data.card import dataset_card
from medops.data.prepare import prepare
from medops.manifest import Manifest
from medops.recipe import build_recipe

SECTIONS = (
    "# Dataset card: card-unit",
    "## Sources",
    "## Counts",
    "### Quarantine by reason",
    "## Labels",
    "## De-identification",
    "### Spans per category",
    "### Detections kept as non-PHI by a filter",
    "## Measured de-identification quality",
    "## Token lengths",
    "## Known limitations",
)
PLANTED_ID = "planted-7f3c"
PLANTED_TEXT = "Zebulon Quaxley from 14 Mulberry Lane says this cream cured his acne"


def _recipe():
    return build_recipe(
        {
            "name": "card-unit",
            "data": {
                "sources": [
                    {"uri": "train.zip", "member": "train.tsv", "format": "tsv", "role": "train"},
                    {"uri": "test.tsv", "format": "tsv", "role": "test"},
                ],
                "columns": {"id": "id", "text": "text", "label": "label"},
            },
            "deid": {"keep_terms_from": ["drug"]},
            "model": {"max_length": 128},
        }
    )


def _manifest() -> dict:
    return {
        "stage": "prepare",
        "recipe_hash": "abc123recipe",
        "inputs": {
            "train.zip#train.tsv": {"path": "train.zip#train.tsv", "sha256": "feed" * 16},
            "test.tsv": {"path": "test.tsv", "sha256": "beef" * 16},
        },
        "outputs": {},
        "counts": {
            "rows_in": 1234,
            "rows_kept": 1100,
            "rows_quarantined": 134,
            "quarantined_label_out_of_scope": 120,
            "quarantined_near_duplicate": 14,
            "train": 800,
            "validation": 140,
            "test": 160,
            "deid_NAME": 77,
            "deid_DATE": 303,
            "deid_rows_with_phi": 321,
            "deid_language_en": 1100,
            "deid_known_terms": 42,
            "deid_dropped_not_a_date": 55,
            "tokens_p50": 111,
            "tokens_p95": 222,
            "tokens_max": 333,
            "rows_over_max_length": 9,
        },
        "extra": {
            "dataset_hash": "d" * 64,
            "label_counts": {
                "train": {"Acne": 500, "Pain": 300},
                "validation": {"Acne": 90, "Pain": 50},
                "test": {"Acne": 100, "Pain": 60},
            },
        },
    }


def _row(card: str, *cells: object) -> bool:
    return "| " + " | ".join(str(c) for c in cells) + " |" in card


def test_card_holds_every_section_and_the_manifest_numbers(tmp_path: Path):
    card = dataset_card(_manifest(), _recipe(), quality_path=tmp_path / "absent.json")
    positions = [card.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert _row(card, "`train.zip`", "train.tsv", "train", f"`{'feed' * 16}`")
    assert _row(card, "`test.tsv`", "-", "test", f"`{'beef' * 16}`")
    for cells in [
        ("rows in", 1234),
        ("rows kept", 1100),
        ("rows quarantined", 134),
        ("kept in validation", 140),
        ("Acne", 500, 90, 100),
        ("Pain", 300, 50, 60),
        ("NAME", 77),
        ("DATE", 303),
        ("LOCATION", 0),
        ("not_a_date", 55),
        ("median", 111),
        ("95th percentile", 222),
        ("max", 333),
        ("rows over model.max_length (128)", 9),
    ]:
        assert _row(card, *cells), cells
    assert "| near_duplicate | 14 |" in card and "| duplicate | 0 |" in card
    assert "| label_out_of_scope | 120 |" in card
    assert "d" * 64 in card and "42 terms" in card and "drug" in card
    assert "policy: `redact`" in card and "rows per language: en 1100" in card
    assert "at least one PHI span: 321" in card and "not shifted" not in card
    assert "truncated at training" in card
    assert "Not measured: this installation has no" in card and "recall is not measured" in card


def test_card_shows_the_measured_deid_quality(tmp_path: Path):
    overall = {"precision": 0.8182, "recall": 0.9565, "gold": 46}
    per_category = {"NAME": {"recall": 0.9667, "gold": 30}, "AGE": {"recall": 0.0, "gold": 0}}
    covered = {"overall": overall, "per_category": per_category}
    measured = {
        "medops": "detect_phi",
        "philter_i2b2": {"notes": 5, "caveat": "seen", "medops": {"covered": covered}},
    }
    path = tmp_path / "deid_recall.json"
    path.write_text(json.dumps(measured), encoding="utf-8")
    manifest = Manifest(stage="prepare", recipe_hash="r", counts=_manifest()["counts"])
    card = dataset_card(manifest, _recipe(), quality_path=path)
    assert _row(card, "philter-lite i2b2-style notes (English)", 5, 46, 0.8182, 0.9565)
    assert _row(card, "NAME", "0.9667 (30)") and _row(card, "AGE", "–")
    assert "measured recall 0.9565" in card and "Not measured" not in card


def test_card_of_a_pseudonymized_dataset_says_how_and_counts_unshifted_dates(tmp_path: Path):
    recipe = _recipe()
    recipe = recipe.model_copy(
        update={"deid": recipe.deid.model_copy(update={"policy": "pseudonymize"})}
    )
    manifest = _manifest()
    manifest["counts"]["deid_dates_redacted_unparsed"] = 4
    card = dataset_card(manifest, recipe, quality_path=tmp_path / "absent.json")
    assert "policy: `pseudonymize`" in card and "shifted by a per-patient" in card
    assert "dates not shifted but redacted (form not parsed reliably): 4" in card


def test_card_of_a_real_prepare_holds_no_record_text(tmp_path: Path, small_recipe):
    planted = {"id": PLANTED_ID, "text": PLANTED_TEXT, "label": "Acne"}
    out = tmp_path / "prepared"
    prepare(small_recipe(train_extra=[planted]), out)
    card = (out / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert all(section.split(": ")[0] in card for section in SECTIONS)
    for fragment in (PLANTED_ID, "Zebulon", "Quaxley", "Mulberry", "cured his acne"):
        assert fragment not in card


def test_the_shipped_quality_figures_are_the_bench_results() -> None:
    """The card quotes package data (an installed wheel has no bench/); both must agree."""
    from medops.data.card import DEID_RECALL

    bench = Path(__file__).parents[2] / "bench" / "results" / "deid_recall.json"
    assert json.loads(DEID_RECALL.read_text()) == json.loads(bench.read_text())
