"""Erasure (GDPR Art. 17): remove one patient's rows from every prepared dataset in a store.

Prepared rows never hold a patient id. When ``MEDOPS_DEID_KEY`` is set, prepare writes a
keyed hash of it instead (``patient_key``), so whoever holds the key can find one
patient's rows again and nobody else can link them to a person. ``forget`` rewrites the
split files without those rows, updates each manifest (counts, dataset hash), marks the
registered model versions trained on the old data for retraining, removes the patient
from every patient feature store (``medops.features``: offline parquet and online store),
and appends one audit line that names no patient and no patient key. It never reads out,
logs or prints a record's text. See docs/privacy.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medops.data.card import CARD, RECIPE, dataset_card
from medops.data.dataset import dataset_hash
from medops.data.split import SPLITS
from medops.errors import MedopsError, MissingInputError
from medops.features.erasure import FeatureErasure, erase_entity, feature_repos
from medops.features.store import FeatureRepo
from medops.manifest import MANIFEST, read_manifest
from medops.privacy.keys import PATIENT_KEY, key_id, patient_key
from medops.recipe import build_recipe

AUDIT = "erasure-audit.jsonl"
LOCK = ".erasure.lock"
MLFLOW_DB = Path("mlflow") / "mlflow.db"  # medops' default store under an output_dir


class ErasureError(MedopsError, ValueError):
    """An erasure that cannot run as asked; names the store or file, never a patient."""


@dataclass
class DatasetErasure:
    """What one prepared dataset lost; counts and hashes only."""

    path: str  # relative to the store
    old_dataset_hash: str
    new_dataset_hash: str
    rows_removed: dict[str, int]
    rows_without_patient_key: int = 0  # cannot be matched to any patient
    other_key: bool = False  # keyed under another key: not searched

    @property
    def removed(self) -> int:
        return sum(self.rows_removed.values())


@dataclass
class ForgetReport:
    """The outcome of one erasure request: also the audit entry (without the patient)."""

    request: str
    when: str
    datasets: list[DatasetErasure]
    models_to_retrain: list[dict[str, Any]] = field(default_factory=list)
    models_checked: bool = False
    feature_stores: list[FeatureErasure] = field(default_factory=list)

    @property
    def rows_removed(self) -> int:
        return sum(d.removed for d in self.datasets)

    @property
    def feature_rows_removed(self) -> int:
        return sum(f.offline_rows_removed for f in self.feature_stores)

    @property
    def complete(self) -> bool:
        """Every row of every dataset and feature store could be tested against the key."""
        datasets = any(d.other_key or d.rows_without_patient_key for d in self.datasets)
        return not datasets and not any(f.other_key for f in self.feature_stores)

    def to_dict(self) -> dict[str, Any]:
        return {
            "when": self.when,
            "request": self.request,
            "rows_removed": self.rows_removed,
            "complete": self.complete,
            "datasets": [asdict(d) for d in self.datasets],
            "models_checked": self.models_checked,
            "models_to_retrain": self.models_to_retrain,
            "feature_rows_removed": self.feature_rows_removed,
            "feature_stores": [asdict(f) for f in self.feature_stores],
        }

    def warnings(self) -> list[str]:
        """What an operator must act on; names datasets and models, never the patient."""
        lines = []
        if not self.rows_removed and not any(
            f.offline_rows_removed or f.online_entities_removed for f in self.feature_stores
        ):
            lines.append("no row of this patient was found in any searchable dataset")
        for f in self.feature_stores:
            if f.other_key:
                lines.append(
                    f"{f.path}: feature store built under another key, not searched; rerun "
                    "forget with that key or rebuild the feature store"
                )
        for d in self.datasets:
            if d.other_key:
                lines.append(
                    f"{d.path}: prepared under another key, not searched; rerun forget with "
                    "that key or re-prepare the dataset"
                )
            elif d.rows_without_patient_key:
                lines.append(
                    f"{d.path}: {d.rows_without_patient_key} row(s) carry no patient key "
                    "(no patient id, or prepared without a key) and could not be searched"
                )
        if not self.models_checked:
            lines.append(
                "no MLflow store found: registered models were not checked; pass "
                "--tracking-uri or set MEDOPS_MLFLOW_TRACKING_URI"
            )
        for model in self.models_to_retrain:
            if model["aliases"]:
                lines.append(
                    f"model {model['name']} version {model['version']} is still alias "
                    f"{', '.join(model['aliases'])} and was trained on erased rows: retrain it"
                )
        return lines


@contextmanager
def _locked(store: Path) -> Iterator[None]:
    """One erasure at a time per store: two would each rewrite a file the other just read."""
    with (store / LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _replace(path: Path, data: bytes) -> None:
    """Write beside ``path``, fsync, rename: a crash leaves the old file or the new, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself must survive a crash
    finally:
        os.close(directory)


def prepared_datasets(store: Path) -> list[Path]:
    """Directories under ``store`` with a prepare manifest beside the three split files (the
    manifest copies MLflow keeps as artifacts have no split files and are skipped)."""
    found = []
    for manifest in sorted(store.rglob(MANIFEST)):
        directory = manifest.parent
        if not all((directory / f"{name}.jsonl").is_file() for name in SPLITS):
            continue
        if read_manifest(manifest.parent).get("stage") == "prepare":
            found.append(directory)
    return found


def _split_rows(path: Path) -> list[tuple[bytes, dict[str, Any]]]:
    """(line as written, parsed row): kept lines are written back byte for byte."""
    rows = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append((line, json.loads(line)))
            except json.JSONDecodeError:
                raise ErasureError(f"{path}: line {number} is not JSON") from None
    return rows


def _forget_patient_counts(counts: dict[str, int], removed: dict[str, int]) -> None:
    """One patient fewer in each split that held them (prepare's leakage counts)."""
    hit = [name for name in SPLITS if removed[name]]
    for name in hit:
        if f"patients_{name}" in counts:
            counts[f"patients_{name}"] -= 1
    if len(hit) > 1 and "patients_in_two_splits" in counts:
        counts["patients_in_two_splits"] -= 1
        counts["rows_of_shared_patients"] -= sum(removed.values())


def _update_manifest(
    data: dict[str, Any],
    kept: dict[str, list[dict[str, Any]]],
    removed: dict[str, int],
    new_hash: str,
    request: str,
) -> None:
    """Counts from the rows left (so a rerun after a crash still adds up), hashes chained."""
    counts, extra = data["counts"], data["extra"]
    rows_kept = sum(len(rows) for rows in kept.values())
    counts["rows_erased"] = counts.get("rows_erased", 0) + counts["rows_kept"] - rows_kept
    counts["rows_kept"] = rows_kept
    counts.update({name: len(kept[name]) for name in SPLITS})
    _forget_patient_counts(counts, removed)
    extra["label_counts"] = {
        name: dict(sorted(Counter(row["label"] for row in kept[name]).items())) for name in SPLITS
    }
    extra["earlier_dataset_hashes"] = [
        *extra.get("earlier_dataset_hashes", []),
        extra["dataset_hash"],
    ]
    extra["erased_from_dataset_hash"] = extra["dataset_hash"]
    extra["dataset_hash"] = new_hash
    extra["erasure_requests"] = [*extra.get("erasure_requests", []), request]


def _kept_rows(directory: Path, wanted: str) -> dict[str, list[tuple[bytes, dict[str, Any]]]]:
    """Each split's rows not keyed ``wanted``, as written and parsed."""
    return {
        name: [
            (line, row)
            for line, row in _split_rows(directory / f"{name}.jsonl")
            if row.get(PATIENT_KEY) != wanted
        ]
        for name in SPLITS
    }


def _scan(
    directory: Path, store: Path, wanted: str, key_name: str
) -> tuple[DatasetErasure, list[str]]:
    """What erasing ``wanted`` would remove (nothing is written), and every hash the dataset
    had while it held those rows: models trained on any of them are affected."""
    data = read_manifest(directory)
    extra = data["extra"]
    outcome = DatasetErasure(
        path=directory.relative_to(store).as_posix(),
        old_dataset_hash=extra["dataset_hash"],
        new_dataset_hash=extra["dataset_hash"],
        rows_removed=dict.fromkeys(SPLITS, 0),
    )
    if extra.get("patient_key_id") not in (None, key_name):
        outcome.other_key = True
        return outcome, []
    for name in SPLITS:
        rows = [row for _, row in _split_rows(directory / f"{name}.jsonl")]
        outcome.rows_removed[name] = sum(row.get(PATIENT_KEY) == wanted for row in rows)
        outcome.rows_without_patient_key += sum(PATIENT_KEY not in row for row in rows)
    if not outcome.removed:
        return outcome, []
    return outcome, [*extra.get("earlier_dataset_hashes", []), extra["dataset_hash"]]


def _erase(directory: Path, wanted: str, outcome: DatasetErasure, request: str) -> None:
    """Rewrite the splits that held ``wanted``, then the manifest; sets the new hash."""
    manifest_path = directory / MANIFEST
    data = read_manifest(directory)
    kept = _kept_rows(directory, wanted)
    for name in SPLITS:
        if outcome.rows_removed[name]:
            _replace(directory / f"{name}.jsonl", b"".join(line for line, _ in kept[name]))
    outcome.new_dataset_hash = dataset_hash(directory)
    rows = {name: [row for _, row in kept[name]] for name in SPLITS}
    _update_manifest(data, rows, outcome.rows_removed, outcome.new_dataset_hash, request)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"  # as write_manifest writes it
    _replace(manifest_path, text.encode("utf-8"))
    _refresh_card(directory, data)


def _refresh_card(directory: Path, data: dict[str, Any]) -> None:
    """Rebuild the dataset card from the erased manifest and the recipe prepare kept; a
    dataset prepared before recipes were kept gets a notice that its counts are stale."""
    card, recipe = directory / CARD, directory / RECIPE
    if recipe.is_file():
        resolved = build_recipe(json.loads(recipe.read_text(encoding="utf-8")))
        _replace(card, dataset_card(data, resolved).encode("utf-8"))
    elif card.is_file():
        notice = (
            f"\n## Erasure\n\n{data['counts']['rows_erased']} rows were erased after this card "
            "was written; the counts above predate it. The manifest holds the current counts.\n"
        )
        _replace(card, card.read_bytes() + notice.encode("utf-8"))


def _model_versions(client: Any, filter_string: str) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_model_versions(filter_string, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _mark_models(tracking_uri: str, hashes: set[str], request: str) -> list[dict[str, Any]]:
    """Tag every registered version trained on an affected dataset; artifacts are untouched."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient  # deferred: mlflow is slow to import
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    marked: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for old_hash in sorted(hashes):  # hex digests: safe inside the quoted filter
            for found in _model_versions(client, f"tags.dataset_hash = '{old_hash}'"):
                name, version = found.name, str(found.version)
                client.set_model_version_tag(name, version, "retrain_required", "true")
                client.set_model_version_tag(name, version, "retrain_reason", f"erasure {request}")
                # search results may leave aliases out: ask for the version itself
                aliases = sorted(client.get_model_version(name, version).aliases)
                marked[name, version] = {"name": name, "version": version, "aliases": aliases}
    except MlflowException as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ErasureError(
            f"could not mark the registered models ({first_line}); nothing was erased: "
            "fix the MLflow store or --tracking-uri and run again"
        ) from None
    return [marked[k] for k in sorted(marked, key=lambda k: (k[0], int(k[1])))]


def _default_tracking_uri(store: Path) -> str | None:
    """medops' own SQLite store under the output_dir, if there is one (never created here)."""
    database = store / MLFLOW_DB
    return f"sqlite:///{database.resolve()}" if database.is_file() else None


def _forget_features(directory: Path, store: Path, wanted: str, key_name: str) -> FeatureErasure:
    """The patient's rows out of one patient feature store, offline and online."""
    outcome = erase_entity(FeatureRepo.open(directory), wanted, key_name)
    outcome.path = directory.relative_to(store).as_posix()
    return outcome


def forget(
    patient_id: str,
    store: Path,
    key: bytes,
    tracking_uri: str | None = None,
    now: datetime | None = None,
) -> ForgetReport:
    """Erase ``patient_id`` from every prepared dataset under ``store``; audit and report it.

    ``tracking_uri`` defaults to ``<store>/mlflow/mlflow.db`` when that file exists; without
    a store the models are not checked (the report says so). A patient found nowhere is
    still audited, with zero rows.
    """
    store = Path(store)
    patient_id = patient_id.strip()
    if not patient_id:
        raise ErasureError("the patient id is empty")
    if not store.is_dir():
        raise MissingInputError(f"store {store}: no such directory")
    datasets = prepared_datasets(store)
    patient_features = feature_repos(store, entity="patient")
    if not datasets and not patient_features:
        raise ErasureError(
            f"store {store} holds no prepared dataset (a manifest.json of stage prepare "
            "beside train/validation/test.jsonl) and no patient feature store: pass a "
            "recipe's output_dir"
        )
    wanted, key_name = patient_key(key, patient_id), key_id(key)
    report = ForgetReport(
        request=str(uuid.uuid4()),
        when=(now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds"),
        datasets=[],
    )
    uri = tracking_uri or _default_tracking_uri(store)
    with _locked(store):
        hashes: set[str] = set()
        for directory in datasets:
            outcome, affected = _scan(directory, store, wanted, key_name)
            report.datasets.append(outcome)
            hashes.update(affected)
        # models first: if MLflow fails, nothing has been erased yet and a rerun is clean
        if uri is not None and hashes:
            report.models_to_retrain = _mark_models(uri, hashes, report.request)
        report.models_checked = uri is not None
        # before the datasets: an online store that does not answer stops a clean rerun
        report.feature_stores = [
            _forget_features(directory, store, wanted, key_name) for directory in patient_features
        ]
        for directory, outcome in zip(datasets, report.datasets, strict=True):
            if outcome.removed:
                _erase(directory, wanted, outcome, report.request)
        with (store / AUDIT).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(report.to_dict(), sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return report
