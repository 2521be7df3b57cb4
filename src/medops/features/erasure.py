"""Erase one entity (a patient, by ``patient_key``) from a feature repository: its rows
in the offline parquet and its entry in the online store, with counts.

``medops data forget`` calls this for every patient repository under a store
(``medops.privacy.erasure``). The online store is cleared first: it is the part that can
fail (a Redis that does not answer), and failing before the parquet is rewritten leaves
a clean rerun. Nothing here logs or returns the key.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from medops.features.files import write_json, write_table
from medops.features.spec import SPEC, RepoSpec, read_spec
from medops.features.store import FeatureRepo
from medops.manifest import MANIFEST, sha256_path


@dataclass
class FeatureErasure:
    """What one repository lost; counts only."""

    path: str
    offline_rows_removed: int = 0
    online_entities_removed: int = 0
    other_key: bool = False  # made under another key: not searched


def feature_repos(store: Path, entity: str | None = None) -> list[Path]:
    """Generated repositories under ``store`` (of ``entity``, if given), sorted."""
    found = []
    for spec_file in sorted(Path(store).rglob(SPEC)):
        if entity is None or read_spec(spec_file.parent).entity == entity:
            found.append(spec_file.parent)
    return found


def _entity_key(spec: RepoSpec, value: str, version: int) -> bytes:
    """The entity's key as Feast's online stores serialize it."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    entity = EntityKey(join_keys=[spec.join_key], entity_values=[Value(string_val=value)])
    return serialize_entity_key(entity, entity_key_serialization_version=version)


def _erase_online(repo: FeatureRepo, value: str) -> int:
    """Delete the entity from Redis (its hash, all views) or SQLite; 1 if it was there."""
    config = repo.store.config
    key = _entity_key(repo.spec, value, config.entity_key_serialization_version)
    client = repo.online_client()
    if client is not None:  # Feast's Redis key: entity key, then the project
        return int(client.delete(key + repo.spec.project.encode("utf-8")))
    path = Path(config.online_store.path)
    if not path.is_file():
        return 0  # never materialized
    table = f"{repo.spec.project}_{repo.spec.view}".replace('"', '""')
    with sqlite3.connect(path) as connection:
        try:
            # the table is Feast's name from the project and view (letters, digits, _)
            delete = f'DELETE FROM "{table}" WHERE entity_key = ?'  # noqa: S608
            cursor = connection.execute(delete, (key,))
        except sqlite3.OperationalError:  # no such table: never materialized
            return 0
        return int(cursor.rowcount > 0)


def _erase_offline(repo: FeatureRepo, value: str) -> int:
    path = Path(repo.spec.data)
    table = pq.read_table(path)
    keep = pc.fill_null(pc.not_equal(table[repo.spec.join_key], value), True)
    kept = table.filter(keep)
    removed = table.num_rows - kept.num_rows
    if removed:
        write_table(kept, path)
        _update_manifest(repo, kept.num_rows, removed)
    return removed


def _update_manifest(repo: FeatureRepo, rows: int, removed: int) -> None:
    path = repo.directory / MANIFEST
    if not path.is_file():
        return
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    counts = data.setdefault("counts", {})
    counts["feature_rows"] = rows
    counts["feature_rows_erased"] = counts.get("feature_rows_erased", 0) + removed
    data.setdefault("extra", {})["offline_sha256"] = sha256_path(Path(repo.spec.data))
    write_json(data, path)


def erase_entity(repo: FeatureRepo, value: str, key_name: str | None = None) -> FeatureErasure:
    """Remove entity ``value`` from ``repo``. ``key_name`` (``key_id`` of the key that made
    ``value``): a repository made under another key is not searched, and says so."""
    outcome = FeatureErasure(path=str(repo.directory))
    if key_name is not None and repo.spec.key_id not in (None, key_name):
        outcome.other_key = True
        return outcome
    outcome.online_entities_removed = _erase_online(repo, value)
    outcome.offline_rows_removed = _erase_offline(repo, value)
    return outcome
