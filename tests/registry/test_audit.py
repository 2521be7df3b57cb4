"""The audit log on SQLite and on the machine's PostgreSQL: a hash chain that names the first
entry edited, deleted or reordered, on a table ordinary clients cannot change."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from medops.registry.audit import DB_ENV, GENESIS, VERSION_TABLE, AuditError, AuditLog, audit_url

POSTGRES = os.environ.get(
    "MEDOPS_TEST_POSTGRES_DSN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TEST_DB = "medops_audit_test"
# what someone with write access to the database would do to get past the triggers
_DROP_TRIGGERS = {
    "sqlite": ["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"],
    "postgresql": ["DROP TRIGGER audit_log_no_change ON audit_log"],
}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'audit.db'}"
        return
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {TEST_DB} WITH (FORCE)"))
        connection.execute(sa.text(f"CREATE DATABASE {TEST_DB}"))
    try:
        yield sa.make_url(POSTGRES).set(database=TEST_DB).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE {TEST_DB} WITH (FORCE)"))
        admin.dispose()


def _three(log: AuditLog) -> None:
    subject = "models:/condition-classifier/3"
    log.append("medops (register stage)", "gate", subject, "macro_f1 0.81 >= 0.75", {"v": 0.81})
    log.append("dr.lee", "approve", subject, "reviewed the error analysis", {"run": "abc"})
    log.append("dr.lee", "alias", subject, "approved in entry 2", {"alias": "champion"})


def _tamper(log: AuditLog, *statements: str) -> None:
    """Run SQL past the append-only triggers, as a database administrator could."""
    with log.engine.begin() as connection:
        for statement in _DROP_TRIGGERS[connection.dialect.name]:
            connection.execute(sa.text(statement))
        for statement in statements:
            connection.execute(sa.text(statement))


def test_entries_chain_and_verify(url: str) -> None:
    log = AuditLog(url)
    assert log.verify().ok and log.verify().head == GENESIS
    _three(log)
    entries = AuditLog(url).entries()  # opening again migrates nothing twice
    assert [e.seq for e in entries] == [1, 2, 3]
    assert [e.action for e in entries] == ["gate", "approve", "alias"]
    assert entries[0].prev_hash == GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:2]]
    assert all(e.hash == e.expected_hash() for e in entries)
    assert entries[0].at.endswith("Z") and entries[0].details == {"v": 0.81}
    result = log.verify(anchors=[entries[1].hash])
    assert result.ok and result.entries == 3 and result.head == entries[2].hash
    assert "approve models:/condition-classifier/3 by dr.lee: reviewed the" in entries[1].line()
    with log.engine.connect() as connection:
        assert connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def test_an_edited_reason_is_named(url: str) -> None:
    log = AuditLog(url)
    _three(log)
    _tamper(log, "UPDATE audit_log SET reason = 'looked fine' WHERE seq = 2")
    result = log.verify()
    assert not result.ok and result.broken == 2
    assert "entry 2: its hash does not match its content: edited" in result.problem


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(url: str) -> None:
    log = AuditLog(url)
    _three(log)
    forged = dataclasses.replace(log.entries()[1], reason="looked fine")
    _tamper(
        log,
        f"UPDATE audit_log SET reason = 'looked fine', hash = '{forged.expected_hash()}' "
        "WHERE seq = 2",
    )
    result = log.verify()
    assert result.broken == 3 and "prev_hash does not match entry 2's hash" in result.problem


def test_a_deleted_entry_is_named(url: str) -> None:
    log = AuditLog(url)
    _three(log)
    _tamper(log, "DELETE FROM audit_log WHERE seq = 2")
    result = log.verify()
    assert not result.ok and result.broken == 3
    assert result.problem.startswith("entry 3: entry 2 is missing (deleted")


def test_reordered_entries_are_named(url: str) -> None:
    log = AuditLog(url)
    _three(log)
    _tamper(
        log,
        "UPDATE audit_log SET seq = 99 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 99",
    )
    result = log.verify()
    assert result.broken == 2 and "entry 2: its prev_hash does not match" in result.problem


def test_a_truncated_tail_is_caught_by_the_registry_anchor(url: str) -> None:
    log = AuditLog(url)
    _three(log)
    anchor = log.entries()[2].hash  # what an approval tag on the version keeps
    _tamper(log, "DELETE FROM audit_log WHERE seq = 3")
    assert log.verify().ok, "the chain alone cannot see its end cut off"
    result = log.verify(anchors=[anchor])
    assert not result.ok and f"hash {anchor} recorded in the model registry" in result.problem


def test_ordinary_updates_and_deletes_are_refused(url: str) -> None:
    log = AuditLog(url)
    _three(log)
    for statement in ("UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log"):
        with (
            pytest.raises(sa.exc.DatabaseError, match="append-only"),
            log.engine.begin() as connection,
        ):
            connection.execute(sa.text(statement))
    assert log.verify().ok and len(log.entries()) == 3


def test_an_entry_needs_an_actor_and_a_reason(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    with pytest.raises(AuditError, match="actor"):
        log.append(" ", "approve", "models:/m/1", "why", {})
    with pytest.raises(AuditError, match="reason"):
        log.append("dr.lee", "approve", "models:/m/1", "  ", {})
    with pytest.raises(ValueError, match="gate, approve, reject, alias"):
        log.append("dr.lee", "promote", "models:/m/1", "why", {})
    assert log.entries() == []


def test_where_the_log_lives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DB_ENV, raising=False)
    store = tmp_path / "run" / "mlflow"
    beside = f"sqlite:///{(store / 'audit.db').resolve()}"
    assert audit_url(f"sqlite:///{store / 'mlflow.db'}") == beside
    assert audit_url("http://mlflow:5000", store) == beside
    with pytest.raises(AuditError, match=f"set {DB_ENV}"):
        audit_url("http://mlflow:5000")
    monkeypatch.setenv(DB_ENV, "postgresql+psycopg://audit@db/audit")
    assert audit_url(f"sqlite:///{store / 'mlflow.db'}") == "postgresql+psycopg://audit@db/audit"
    monkeypatch.delenv(DB_ENV)
    with pytest.raises(AuditError, match="no audit log at"):
        AuditLog(beside, create=False)
    assert not store.exists(), "a missing log is not created beside the real one"


def test_an_unreachable_log_is_one_error_without_its_password() -> None:
    with pytest.raises(AuditError, match="cannot open the audit log") as error:
        AuditLog("postgresql+psycopg://audit:s3cret-pw@127.0.0.1:1/audit")
    assert "s3cret-pw" not in str(error.value) and "audit:***@127.0.0.1" in str(error.value)
