"""`medops data forget`: one patient's rows leave every prepared dataset, models are marked.

Datasets come from the real prepare stage on a tiny TSV source with a patient column, and
the models from a real SQLite MLflow registry.
"""

from __future__ import annotations

import csv
import json
import shutil
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from medops.cli import main
from medops.data.dataset import dataset_hash
from medops.data.prepare import prepare
from medops.manifest import write_manifest
from medops.privacy.erasure import AUDIT, LOCK, ErasureError, forget
from medops.privacy.keys import PseudonymKeyError, key_id, load_key, patient_key
from medops.recipe import Recipe, build_recipe, load_recipe

KEY = "a-test-key-of-more-than-sixteen-bytes"
PATIENT = "PAT-7731-SECRET"  # a planted id: must never appear in a prepared file or the audit
SPLITS = ("train", "validation", "test")
# as forget lists them (sorted): a kfp.local run's output, then `medops train`'s
DATASETS = ("pipeline/unit-2026-11-25-10-00-00-000000/prepare/prepared", "prepare")
MODEL = "condition-classifier"


def _patients(extra: int) -> list[str]:
    ids = [f"P{i:02d}" for i in range(1, 13 + extra)]
    ids[2] = PATIENT
    return ids


def _source(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text", "label", "pid"], delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _recipe(directory: Path, extra: int = 0) -> Recipe:
    """Two notes per train patient, one test note for each of the first six (the planted
    patient is in train or validation and in test); ``extra`` patients change the hash."""
    directory.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for i, pid in enumerate(_patients(extra), start=1):
        label = "Acne" if i % 2 else "Pain"
        for side in "ab":
            row_id = f"t{i}{side}"
            train.append({"id": row_id, "text": f"Review number {row_id} about {label}"})
            train[-1].update(label=label, pid=pid)
        if i <= 6:
            test.append({"id": f"s{i}", "text": f"Review number s{i} about {label}"})
            test[-1].update(label=label, pid=pid)
    sources = [
        {"uri": str(_source(directory / f"{role}.tsv", rows)), "format": "tsv", "role": role}
        for role, rows in (("train", train), ("test", test))
    ]
    return build_recipe(
        {
            "name": "unit",
            "data": {
                "sources": sources,
                "columns": {"id": "id", "text": "text", "label": "label", "patient": "pid"},
                "top_k_classes": 2,
                "min_chars": 10,
                "validation_fraction": 0.25,
            },
        }
    )


def _prepare(recipe: Recipe, out: Path) -> None:
    write_manifest(prepare(recipe, out), out)


def _rows(directory: Path, split: str) -> list[dict[str, Any]]:
    text = (directory / f"{split}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _manifest(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "manifest.json").read_text(encoding="utf-8"))


def _all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def built_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two prepared datasets (a `medops train` one, a kfp.local one), keyed under KEY."""
    root = tmp_path_factory.mktemp("forget")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDOPS_DEID_KEY", KEY)
        for extra, relative in enumerate(DATASETS):
            _prepare(_recipe(root / f"sources-{extra}", extra), root / "store" / relative)
    return root / "store"


@pytest.fixture
def store(built_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy per test: forget rewrites it."""
    monkeypatch.setenv("MEDOPS_DEID_KEY", KEY)
    monkeypatch.delenv("MEDOPS_MLFLOW_TRACKING_URI", raising=False)
    return Path(shutil.copytree(built_store, tmp_path / "store"))


@pytest.fixture
def registry(store: Path) -> Any:
    """A real SQLite registry at medops' default place: version 1 trained on the first
    dataset (champion), version 2 on data this store does not hold."""
    from mlflow import MlflowClient

    database = store / "mlflow" / "mlflow.db"
    database.parent.mkdir()
    uri = f"sqlite:///{database}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    trained_on = _manifest(store / DATASETS[0])["extra"]["dataset_hash"]
    for dataset in (trained_on, "0" * 64):
        source = store / "mlflow" / "artifacts" / dataset[:8]
        client.create_model_version(MODEL, str(source), tags={"dataset_hash": dataset})
    client.set_registered_model_alias(MODEL, "champion", "1")
    return client


def test_prepare_writes_patient_keys_and_never_the_patient_id(built_store: Path):
    assert PATIENT.encode() in (built_store.parent / "sources-0" / "train.tsv").read_bytes()
    for relative in DATASETS:
        directory = built_store / relative
        assert PATIENT.encode() not in _all_bytes(directory)
        rows = [row for split in SPLITS for row in _rows(directory, split)]
        assert all(len(row["patient_key"]) == 32 for row in rows)
        planted = patient_key(KEY.encode(), PATIENT)
        assert {row["id"] for row in rows if row["patient_key"] == planted} == {
            "train:t3a",
            "train:t3b",
            "test:s3",
        }
        manifest = _manifest(directory)
        assert manifest["counts"]["patient_keys"] == manifest["counts"]["rows_kept"] == len(rows)
        assert manifest["counts"]["patient_keys_unavailable"] == 0
        assert manifest["extra"]["patient_key_id"] == key_id(KEY.encode())
        assert KEY not in json.dumps(manifest)


def test_prepare_without_a_key_writes_no_patient_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("MEDOPS_DEID_KEY", raising=False)
    out = tmp_path / "prepared"
    manifest = prepare(_recipe(tmp_path / "sources"), out)
    assert not any("patient_key" in row for split in SPLITS for row in _rows(out, split))
    assert manifest.counts["patient_keys_unavailable"] == manifest.counts["rows_kept"] > 0
    assert manifest.counts["patient_keys"] == 0 and "patient_key_id" not in manifest.extra
    assert PATIENT.encode() not in _all_bytes(out)


def test_prepare_refuses_a_short_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MEDOPS_DEID_KEY", "short")
    with pytest.raises(PseudonymKeyError, match="MEDOPS_DEID_KEY holds fewer than 16 bytes"):
        prepare(_recipe(tmp_path / "sources"), tmp_path / "prepared")


def test_forget_removes_the_patient_everywhere_and_marks_models(store: Path, registry: Any):
    before = {d: {s: _rows(store / d, s) for s in SPLITS} for d in DATASETS}
    old_hashes = {d: _manifest(store / d)["extra"]["dataset_hash"] for d in DATASETS}
    planted = patient_key(KEY.encode(), PATIENT)
    when = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    report = forget(PATIENT, store, KEY.encode(), now=when)

    assert report.complete and report.models_checked
    for relative, outcome in zip(DATASETS, report.datasets, strict=True):
        directory = store / relative
        assert outcome.path == relative and outcome.old_dataset_hash == old_hashes[relative]
        for split in SPLITS:
            after = _rows(directory, split)
            gone = [r for r in before[relative][split] if r["patient_key"] == planted]
            assert after == [r for r in before[relative][split] if r["patient_key"] != planted]
            assert len(before[relative][split]) == len(after) + outcome.rows_removed[split]
            assert outcome.rows_removed[split] == len(gone)
        assert outcome.rows_removed["test"] == 1 and outcome.removed == 3
        manifest = _manifest(directory)
        counts, extra = manifest["counts"], manifest["extra"]
        assert extra["dataset_hash"] == dataset_hash(directory) == outcome.new_dataset_hash
        assert extra["erased_from_dataset_hash"] == old_hashes[relative] != outcome.new_dataset_hash
        assert extra["erasure_requests"] == [report.request]
        assert counts["rows_erased"] == 3
        assert counts["rows_kept"] == sum(counts[s] for s in SPLITS)
        assert counts["rows_in"] == counts["rows_kept"] + counts["rows_quarantined"] + 3
        assert sum(sum(c.values()) for c in extra["label_counts"].values()) == counts["rows_kept"]
        assert counts["patients_test"] == counts["patients_in_two_splits"] == 5
        card = (directory / "DATASET_CARD.md").read_text(encoding="utf-8")
        assert f"| rows kept | {counts['rows_kept']} |" in card
        assert "| rows erased on request after preparation (GDPR Art. 17) | 3 |" in card
        assert outcome.new_dataset_hash in card and old_hashes[relative] not in card
    assert report.models_to_retrain == [{"name": MODEL, "version": "1", "aliases": ["champion"]}]
    tags = registry.get_model_version(MODEL, "1").tags
    assert tags["retrain_required"] == "true"
    assert tags["retrain_reason"] == f"erasure {report.request}"
    assert "retrain_required" not in registry.get_model_version(MODEL, "2").tags
    assert any("alias champion" in line for line in report.warnings())

    audit = (store / AUDIT).read_text(encoding="utf-8")
    entry = json.loads(audit)
    assert entry["when"] == "2026-11-25T12:00:00+00:00" and entry["request"] == report.request
    assert [d["rows_removed"] for d in entry["datasets"]] == [
        d.rows_removed for d in report.datasets
    ]
    assert entry["models_to_retrain"] == report.models_to_retrain
    for secret in (PATIENT, planted, KEY):
        assert secret not in audit


def test_a_card_without_its_recipe_is_marked_stale(store: Path):
    directory = store / DATASETS[0]
    (directory / "recipe.json").unlink()
    before = (directory / "DATASET_CARD.md").read_text(encoding="utf-8")
    forget(PATIENT, store, KEY.encode())
    after = (directory / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert after.startswith(before)
    assert "3 rows were erased after this card was written" in after


def test_a_second_erasure_reaches_models_of_every_earlier_version(store: Path, registry: Any):
    first = forget(PATIENT, store, KEY.encode())
    second = forget("P01", store, KEY.encode())
    assert second.rows_removed == 2 * 3 and second.request != first.request
    extra = _manifest(store / DATASETS[0])["extra"]
    assert extra["earlier_dataset_hashes"] == [
        first.datasets[0].old_dataset_hash,
        first.datasets[0].new_dataset_hash,
    ]
    # version 1 was trained on the original data, which held P01 too
    assert [m["version"] for m in second.models_to_retrain] == ["1"]
    tags = registry.get_model_version(MODEL, "1").tags
    assert tags["retrain_reason"] == f"erasure {second.request}"
    assert len((store / AUDIT).read_text().splitlines()) == 2


def test_forgetting_an_unknown_patient_changes_nothing_and_is_audited(store: Path):
    before = _files(store)
    report = forget("nobody-here", store, KEY.encode())
    assert report.rows_removed == 0 and report.models_to_retrain == []
    after = _files(store)
    assert set(after) - set(before) == {AUDIT, LOCK}
    assert {name: after[name] for name in before} == before
    entry = json.loads((store / AUDIT).read_text())
    assert [sum(d["rows_removed"].values()) for d in entry["datasets"]] == [0, 0]
    assert entry["models_checked"] is False  # this store has no MLflow database
    warnings = report.warnings()
    assert any("no row of this patient" in line for line in warnings)
    assert any("registered models were not checked" in line for line in warnings)


def test_another_key_finds_nothing_and_says_so(store: Path):
    report = forget(PATIENT, store, b"another-key-sixteen-bytes-long")
    assert report.rows_removed == 0 and not report.complete
    assert all(d.other_key for d in report.datasets)
    assert any("prepared under another key" in line for line in report.warnings())


def test_an_unreachable_registry_erases_nothing(store: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    before = _files(store)
    with pytest.raises(ErasureError, match="could not mark the registered models.*nothing was"):
        forget(PATIENT, store, KEY.encode(), tracking_uri=closed)
    after = _files(store)
    assert set(after) - set(before) == {LOCK}
    assert {name: after[name] for name in before} == before


def test_a_store_without_datasets_or_a_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with pytest.raises(ErasureError, match=f"store {tmp_path} holds no prepared dataset"):
        forget(PATIENT, tmp_path, KEY.encode())
    with pytest.raises(FileNotFoundError, match="no such directory"):
        forget(PATIENT, tmp_path / "absent", KEY.encode())
    monkeypatch.delenv("MEDOPS_DEID_KEY", raising=False)
    with pytest.raises(PseudonymKeyError, match="MEDOPS_DEID_KEY is not set"):
        load_key()
    assert not (tmp_path / AUDIT).exists()


def test_cli_forget_end_to_end(
    store: Path, registry: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    assert main(["data", "forget", "--patient", PATIENT, "--store", str(store)]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["rows_removed"] == 6 and report["complete"] is True
    assert [d["path"] for d in report["datasets"]] == list(DATASETS)
    assert report["models_to_retrain"][0]["aliases"] == ["champion"]
    assert "alias champion" in captured.err
    assert PATIENT not in captured.out + captured.err

    monkeypatch.delenv("MEDOPS_DEID_KEY")
    assert main(["data", "forget", "--patient", PATIENT, "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medops: environment variable MEDOPS_DEID_KEY is not set")
    monkeypatch.setenv("MEDOPS_DEID_KEY", KEY)
    assert main(["data", "forget", "--patient", PATIENT, "--store", str(store / "nope")]) == 2
    assert capsys.readouterr().err.startswith(f"medops: store {store / 'nope'}: no such directory")


def test_forget_on_the_demo_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The real demo recipe maps each review's id as its author's patient id: with a key,
    one author's review can be erased from the prepared demo data."""
    monkeypatch.setenv("MEDOPS_DEID_KEY", KEY)
    recipe = load_recipe(Path(__file__).parents[2] / "recipes" / "condition-demo.yaml")
    store = tmp_path / "demo"
    _prepare(recipe, store / "prepare")
    before = _manifest(store / "prepare")
    assert before["counts"]["patient_keys"] == before["counts"]["rows_kept"]
    row_id = _rows(store / "prepare", "validation")[0]["id"]  # "train:<review id>"
    author = row_id.split(":", 1)[1]

    report = forget(author, store, KEY.encode())

    assert report.rows_removed == 1 and report.complete and not report.models_checked
    after = _manifest(store / "prepare")
    assert after["counts"]["validation"] == before["counts"]["validation"] - 1
    assert after["counts"]["rows_erased"] == 1
    assert row_id not in {r["id"] for split in SPLITS for r in _rows(store / "prepare", split)}
    assert "| rows erased on request after preparation (GDPR Art. 17) | 1 |" in (
        store / "prepare" / "DATASET_CARD.md"
    ).read_text(encoding="utf-8")
