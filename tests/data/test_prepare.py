from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from medops.data.dataset import read_labels, read_split
from medops.data.ingest import SourceError
from medops.data.prepare import prepare
from medops.deid.pseudonyms import Pseudonymizer
from medops.privacy.keys import PseudonymKeyError
from medops.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
SECRET_EMAIL = "jane.doe@example.com"
TOKEN_COUNTS = ("tokens_p50", "tokens_p95", "tokens_max", "rows_over_max_length")
EXTRA_TRAIN = [
    {"id": "dup", "text": "Review number ta0 about Acne", "label": "Acne"},  # copy of a test row
    {"id": "short", "text": "tiny", "label": "Pain"},
    {"id": "nolabel", "text": "a review with no label", "label": ""},
    {"id": "mail", "text": f"Write me at {SECRET_EMAIL} about this acne cream", "label": "Acne"},
    # a test row again, differing only in case and punctuation
    {"id": "near", "text": "REVIEW number, ta1 -- about Acne!", "label": "Acne"},
]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_prepare_small_end_to_end(tmp_path: Path, small_recipe, caplog):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "prepared"
    manifest = prepare(small_recipe(train_extra=EXTRA_TRAIN), out)
    counts = manifest.counts

    assert read_labels(out) == ["Acne", "Pain"] == manifest.extra["labels"]
    assert counts["rows_in"] == 19 + 5 + 7
    assert counts["rows_in"] == counts["rows_kept"] + counts["rows_quarantined"]
    assert counts["rows_kept"] == counts["train"] + counts["validation"] + counts["test"]
    assert (counts["train"], counts["validation"], counts["test"]) == (12, 5, 6)
    assert {k: v for k, v in counts.items() if k.startswith("quarantined_")} == {
        "quarantined_duplicate": 1,
        "quarantined_label_out_of_scope": 4,
        "quarantined_missing_label": 1,
        "quarantined_near_duplicate": 1,
        "quarantined_text_too_short": 1,
    }
    assert counts["deid_CONTACT"] == 1 and counts["deid_rows_with_phi"] >= 1

    splits = {name: read_split(out, name) for name in ("train", "validation", "test")}
    train_ids = {row["id"] for row in splits["train"] + splits["validation"]}
    test_ids = {row["id"] for row in splits["test"]}
    assert not train_ids & test_ids and not {"train:dup", "train:near"} & train_ids
    assert all(row["id"].startswith("test:") for row in splits["test"])
    mail = next(row for row in splits["train"] + splits["validation"] if row["id"] == "train:mail")
    assert mail["text"] == "Write me at [CONTACT] about this acne cream"

    quarantine = read_jsonl(out / "quarantine.jsonl")
    assert len(quarantine) == counts["rows_quarantined"]
    assert all(set(row) == {"id", "source", "reason"} for row in quarantine)
    assert "tiny" not in (out / "quarantine.jsonl").read_text()

    digest = hashlib.sha256()
    for name in ("train", "validation", "test"):
        digest.update(name.encode() + (out / f"{name}.jsonl").read_bytes())
    assert manifest.extra["dataset_hash"] == digest.hexdigest()
    train_source = str(tmp_path / "train.tsv")
    assert (
        manifest.inputs[train_source]["sha256"]
        == hashlib.sha256(Path(train_source).read_bytes()).hexdigest()
    )
    assert SECRET_EMAIL not in caplog.text and "tiny" not in caplog.text

    assert {k: counts[k] for k in TOKEN_COUNTS} == {
        "tokens_p50": 9,  # [CLS] review number a0 about acne [SEP]
        "tokens_p95": 9,
        "tokens_max": 13,  # the e-mail row, de-identified: "[CONTACT]" is 4 tokens
        "rows_over_max_length": 0,
    }
    assert manifest.extra["label_counts"]["test"] == {"Acne": 3, "Pain": 3}
    card = (out / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert manifest.outputs["card"] == "DATASET_CARD.md"
    assert "| near_duplicate | 1 |" in card and manifest.extra["dataset_hash"] in card
    assert SECRET_EMAIL not in card and "acne cream" not in card and "tiny" not in card


def test_prepare_records_an_unavailable_tokenizer(tmp_path: Path, small_recipe):
    recipe = small_recipe()
    model = recipe.model.model_copy(update={"base": "nobody/not-on-this-machine"})
    counts = prepare(recipe.model_copy(update={"model": model}), tmp_path / "out").counts
    assert counts["tokens_unavailable"] == 1 and not set(TOKEN_COUNTS) & set(counts)
    assert "tokenizer of `nobody/not-on-this-machine` was not available" in (
        tmp_path / "out" / "DATASET_CARD.md"
    ).read_text(encoding="utf-8")


def test_prepare_is_deterministic(tmp_path: Path, small_recipe):
    recipe = small_recipe(train_extra=EXTRA_TRAIN)
    first = prepare(recipe, tmp_path / "one")
    second = prepare(recipe, tmp_path / "two")
    assert first.extra["dataset_hash"] == second.extra["dataset_hash"]
    for name in ("quarantine.jsonl", "DATASET_CARD.md"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_prepare_reports_a_missing_mapped_column(tmp_path: Path, small_recipe):
    recipe = small_recipe(columns={"id": "id", "text": "review", "label": "label"})
    with pytest.raises(SourceError, match="'review'"):
        prepare(recipe, tmp_path / "out")


def test_read_split_rejects_unknown_split(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown split"):
        read_split(tmp_path, "dev")


def test_prepare_on_the_real_demo_recipe(tmp_path: Path):
    recipe = load_recipe(ROOT / "recipes" / "condition-demo.yaml", [f"output_dir={tmp_path}"])
    out = tmp_path / "prepared"
    counts = prepare(recipe, out).counts

    assert read_labels(out) == sorted(
        [
            "Birth Control",
            "Depression",
            "Pain",
            "Acne",
            "Bipolar Disorder",
            "Insomnia",
            "Anxiety",
            "Obesity",
        ]
    )
    assert counts["rows_in"] == 979
    assert counts["rows_in"] == counts["rows_kept"] + counts["rows_quarantined"]
    assert 250 <= counts["train"] + counts["validation"] <= 266
    assert 160 <= counts["test"] <= 169
    train_ids = {r["id"] for split in ("train", "validation") for r in read_split(out, split)}
    test_ids = {r["id"] for r in read_split(out, "test")}
    assert train_ids and test_ids and not train_ids & test_ids
    assert all(i.startswith("train:") for i in train_ids)
    assert all(i.startswith("test:") for i in test_ids)
    assert "quarantined_near_duplicate" not in counts  # its one copy is exact: "duplicate"
    assert counts["tokens_max"] > recipe.model.max_length >= counts["tokens_p95"]
    assert 0 < counts["rows_over_max_length"] < 10


def test_manifest_records_the_patient_leakage_check(tmp_path: Path, small_recipe):
    counts = prepare(small_recipe(), tmp_path / "prepared").counts
    # the synthetic rows carry no patient id: nothing to leak, and it says so
    assert counts["patients_in_two_splits"] == 0
    assert counts["patients_train"] == counts["patients_validation"] == 0
    assert counts["characters_replaced_undecodable"] == 0


PLANTED = {
    "id": "planted",
    "label": "Pain",
    "text": "Mr. Zebulon Quaxley (MRN 00482913, born 04/11/1931) of 14 Birchwood Lane, "
    "Dedham, MA 02026 asked us to call (781) 555-0142 about his Pain",
}
PLANTED_SECRETS = ("Zebulon", "Quaxley", "00482913", "04/11/1931", "Birchwood", "555-0142")


def _with_policy(recipe, policy: str):
    return recipe.model_copy(update={"deid": recipe.deid.model_copy(update={"policy": policy})})


def _everything_written(out: Path, manifest) -> str:
    files = "".join(p.read_text(encoding="utf-8") for p in sorted(out.iterdir()))
    return files + json.dumps(manifest.to_dict())


def test_planted_identifiers_reach_no_log_manifest_or_output(tmp_path, small_recipe, caplog):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "prepared"
    manifest = prepare(small_recipe(train_extra=[PLANTED]), out)
    row = next(
        r
        for split in ("train", "validation")
        for r in read_split(out, split)
        if r["id"] == "train:planted"
    )
    assert row["text"].startswith("Mr. [NAME] (MRN [ID], born [DATE]) of [LOCATION]")
    for secret in PLANTED_SECRETS:
        assert secret not in caplog.text and secret not in _everything_written(out, manifest)
    counts = manifest.counts
    assert counts["deid_NAME"] == counts["deid_ID"] == counts["deid_DATE"] == 1
    assert counts["deid_CONTACT"] == 1 and counts["deid_language_en"] == counts["rows_kept"]


def test_prepare_pseudonymizes_with_the_key_and_refuses_without(
    tmp_path, small_recipe, monkeypatch
):
    recipe = _with_policy(small_recipe(train_extra=[PLANTED]), "pseudonymize")
    monkeypatch.delenv("MEDOPS_DEID_KEY", raising=False)
    with pytest.raises(PseudonymKeyError, match="deid.policy is pseudonymize: .*MEDOPS_DEID_KEY"):
        prepare(recipe, tmp_path / "refused")
    assert not (tmp_path / "refused" / "train.jsonl").exists()

    key = "a-test-key-of-32-bytes-length!!!"
    monkeypatch.setenv("MEDOPS_DEID_KEY", key)
    out = tmp_path / "prepared"
    manifest = prepare(recipe, out)
    row = next(
        r
        for split in ("train", "validation")
        for r in read_split(out, split)
        if r["id"] == "train:planted"
    )
    surrogate = Pseudonymizer(key.encode()).token("NAME", "Zebulon Quaxley")
    assert row["text"].startswith(f"Mr. {surrogate} (MRN [ID-")
    assert "born [DATE]" not in row["text"] and "born 04/11/1931" not in row["text"]
    for secret in PLANTED_SECRETS:
        assert secret not in _everything_written(out, manifest)
    assert "policy: `pseudonymize`" in (out / "DATASET_CARD.md").read_text(encoding="utf-8")


def test_max_tokens_quarantines_the_longest_rows_and_counts_them(tmp_path: Path, small_recipe):
    text = "Dr. Zebulon Quaxley: acne cream review " + "very " * 40 + "long"
    recipe = small_recipe(
        train_extra=[{"id": "long", "text": text, "label": "Acne"}], max_tokens=20
    )
    out = tmp_path / "prepared"
    counts = prepare(recipe, out).counts
    assert counts["quarantined_too_many_tokens"] == 1
    # the de-identification counts describe the rows kept, not the quarantined one
    assert counts["deid_NAME"] == counts["deid_rows_with_phi"] == 0
    assert counts["tokens_max"] <= 20
    assert counts["rows_in"] == counts["rows_kept"] + counts["rows_quarantined"]
    assert "| too_many_tokens | 1 |" in (out / "DATASET_CARD.md").read_text(encoding="utf-8")


def test_max_tokens_without_a_tokenizer_is_an_error_naming_the_key(tmp_path: Path, small_recipe):
    recipe = small_recipe(max_tokens=20)
    model = recipe.model.model_copy(update={"base": "nobody/not-on-this-machine"})
    with pytest.raises(ValueError, match="data.max_tokens needs the tokenizer of model.base"):
        prepare(recipe.model_copy(update={"model": model}), tmp_path / "out")
