"""The model card: built from the stage results, logged with every registered version,
intervals only where evaluate computed them, HTML that escapes what it shows."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow

from medops.recipe import Recipe
from medops.registry.gate import Decision
from medops.registry.model_card import (
    DEFAULT_INTENDED_USE,
    NO_CI,
    Registration,
    model_card,
    to_html,
    to_markdown,
)
from medops.registry.tracking import tracking_uri
from medops.results import Evaluated, Prepared, Trained
from tests.registry.conftest import Register, with_overrides


def _row(markdown: str, metric: str) -> str:
    [line] = [line for line in markdown.splitlines() if line.startswith(f"| {metric} |")]
    return line


def test_every_version_gets_a_card_with_the_evaluate_metrics(
    tiny_recipe: Recipe, register: Register, prepared_dir: Path
) -> None:
    (prepared_dir / "DATASET_CARD.md").write_text("# Dataset card: condition-demo\n")
    recipe = with_overrides(tiny_recipe, "gate.min_value=0.0", "gate.not_below_baseline=false")
    run = register(recipe)
    extra, out = run["manifest"]["extra"], run["dir"]
    card = (out / "model_card.md").read_text()
    metrics = Evaluated.read(run["evaluated"]).metrics
    assert metrics
    for name in ("macro_f1", "accuracy"):  # bootstrapped by evaluate: each side its interval
        row = _row(card, name)
        for key in (name, f"baseline_{name}", f"{name}_diff"):
            low, high = metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"]
            assert f"{metrics[key]:.4f} [{low:.4f}, {high:.4f}]" in row, (key, row)
    assert f"{metrics['f1_Acne']:.4f} ({NO_CI})" in _row(card, "f1_Acne")
    shown = set(re.findall(r"^\| ([A-Za-z0-9_]+) \|", card, flags=re.M))
    primary = {m for m in metrics if not m.startswith(("baseline_", "slice_"))}
    assert {m for m in primary if not m.endswith(("_ci_low", "_ci_high", "_diff"))} - {
        "ci_level"
    } <= shown
    # the slice the evaluate stage measured (every test row is English), flagged small
    rows = metrics["slice_language_en_rows"]
    assert f"| language_en | {rows:.0f} (SMALL) |" in card
    assert "Subgroups measured: language_en" in card
    assert f"| version | {extra['version']} |" in card
    assert f"| dataset hash | {'d' * 64} |" in card
    assert f"| recipe hash | {recipe.content_hash()} |" in card
    assert DEFAULT_INTENDED_USE in card
    assert "Passed: macro_f1" in card and "At registration: auto-approved (demo)." in card
    assert "SMALL TEST SET: Held out: 9 rows" in card
    assert "de-identification policy: `redact`" in card
    assert "| rows in | 39 |" in card and "| held-out rows scored by evaluate | 9 |" in card

    mlflow_client = mlflow.MlflowClient(tracking_uri(recipe))
    artifacts = mlflow_client.list_artifacts(extra["mlflow_run_id"], "model_card")
    logged = {Path(a.path).name for a in artifacts}
    assert logged == {"model_card.md", "model_card.html", "DATASET_CARD.md"}
    local = mlflow.artifacts.download_artifacts(
        run_id=extra["mlflow_run_id"],
        artifact_path="model_card/model_card.md",
        tracking_uri=tracking_uri(recipe),
    )
    assert Path(local).read_text() == card
    assert run["manifest"]["outputs"]["model_card_html"] == "model_card.html"


def _results(tmp_path: Path, metrics: dict[str, float], test: int) -> tuple:
    prepared = Prepared(tmp_path, "e" * 64, {"rows_in": 900, "rows_kept": 880, "test": test})
    trained = Trained(tmp_path, "run1", None, {"method": "lora", "base_model": "/m/smollm"})
    return prepared, trained, Evaluated(tmp_path, metrics, {"test": test, "test_scored": test})


def _registration(reason: str = "rouge_l 0.4100 >= threshold 0.3000") -> Registration:
    decision = Decision(True, "rouge_l", 0.41, 0.22, 0.3, reason)
    return Registration("assistant", "7", "run1", "abc1234", decision, "pending: run approve")


def test_intervals_are_shown_where_evaluate_computed_them(
    tiny_lm_recipe: Recipe, tmp_path: Path
) -> None:
    metrics = {
        "rouge_l": 0.41,
        "rouge_l_ci_low": 0.35,
        "rouge_l_ci_high": 0.47,
        "baseline_rouge_l": 0.22,
        "baseline_rouge_l_ci_low": 0.18,
        "baseline_rouge_l_ci_high": 0.26,
        "rouge_l_diff": 0.19,
        "rouge_l_diff_ci_low": 0.12,
        "rouge_l_diff_ci_high": 0.25,
        "exact_match": 0.1,
        "champion_exists": 0.0,
    }
    prepared, trained, evaluated = _results(tmp_path, metrics, 400)
    sections = model_card(tiny_lm_recipe, prepared, trained, evaluated, _registration())
    card = to_markdown("t", sections)
    assert _row(card, "rouge_l") == (
        "| rouge_l | 0.4100 [0.3500, 0.4700] | 0.2200 [0.1800, 0.2600] | 0.1900 [0.1200, 0.2500] |"
    )
    assert _row(card, "exact_match") == (
        f"| exact_match | 0.1000 ({NO_CI}) | not reported | not reported |"
    )
    assert "Champion scored on the same rows in this run: no" in card
    assert "SMALL TEST SET" not in card and "Held out: 400 rows" in card
    assert "| base model | /m/smollm |" in card and "| method | lora |" in card
    assert "Other values" not in card, "every metric has its place in the table"


def test_html_escapes_and_fetches_nothing(tiny_lm_recipe: Recipe, tmp_path: Path) -> None:
    recipe = with_overrides(
        tiny_lm_recipe, "registry.intended_use=<script>alert(1)</script> triage support"
    )
    prepared, trained, evaluated = _results(tmp_path, {"rouge_l": 0.4}, 12)
    sections = model_card(recipe, prepared, trained, evaluated, _registration("a <b> & c"))
    page = to_html("Model card: <x>", sections)
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; triage support" in page
    assert "a &lt;b&gt; &amp; c" in page and "<title>Model card: &lt;x&gt;</title>" in page
    assert not re.search(r"(src|href)=|<link|@import|url\(", page), "no external asset"
    assert DEFAULT_INTENDED_USE not in page
