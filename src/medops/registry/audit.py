"""The audit log: who let which model version near patients, when and why, tamper-evident.

An append-only table of entries (a gate decision, an approval or rejection, an alias move).
Each entry's ``hash`` is the sha256 of the canonical JSON of its fields and the previous
entry's hash, so editing, deleting or reordering any entry breaks the chain from there on,
and ``AuditLog.verify`` names the first entry that no longer fits. The approval's hash is
also kept as a tag on the model version, outside this database: a chain rewritten whole
(every hash recomputed) then no longer holds the hashes the registry recorded.

Where it lives: ``MEDOPS_AUDIT_DB`` (a SQLAlchemy URL, PostgreSQL on a cluster) when set,
else ``audit.db`` beside an SQLite MLflow store (``<output_dir>/mlflow/audit.db`` on the
embedded path). The schema is owned by Alembic migrations (``registry/migrations``).

What an entry holds: ids (model URIs, run ids, hashes), metric values, the gate's own
wording and the reason a person typed. Never record text: the register stage writes
metrics and ids only, and a reason is what the approver chose to write.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    make_url,
    select,
    text,
)
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

from medops.errors import MedopsError
from medops.migrations import migrate as upgrade
from medops.registry.tracking import redacted

DB_ENV = "MEDOPS_AUDIT_DB"
VERSION_TABLE = "medops_audit_version"
ACTIONS = ("gate", "approve", "reject", "alias")
GENESIS = "0" * 64  # the prev_hash of the first entry
MAX_REASON = 2000
_APPEND_TRIES = 5

METADATA = MetaData()
ENTRIES = Table(
    "audit_log",
    METADATA,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(20), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("reason", Text, nullable=False),
    Column("details", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)


class AuditError(MedopsError):
    """The audit log cannot be opened or written as asked; the message says what to set."""


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Entry:
    seq: int
    at: str  # ISO 8601, UTC
    actor: str
    action: str
    subject: str  # e.g. models:/condition-classifier/3
    reason: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        """What ``hash`` must be for these fields after ``prev_hash``."""
        fields = {k: v for k, v in asdict(self).items() if k != "hash"}
        return hashlib.sha256(canonical(fields).encode("utf-8")).hexdigest()

    def line(self) -> str:
        """One line for ``medops audit``: the reason last, as it may hold spaces."""
        reason = " ".join(self.reason.split())
        return (
            f"{self.seq:>5} {self.at} {self.action:<7} {self.subject} by {self.actor}: "
            f"{reason} [{self.hash[:12]}]"
        )


@dataclass(frozen=True)
class Verification:
    entries: int
    broken: int | None  # seq of the first entry that does not fit the chain
    problem: str
    head: str  # hash of the last entry that fits (GENESIS for an empty log)

    @property
    def ok(self) -> bool:
        return self.broken is None and not self.problem


def audit_url(tracking_uri: str | None, default_dir: Path | None = None) -> str:
    """``$MEDOPS_AUDIT_DB``, else ``audit.db`` beside an SQLite MLflow store, else
    ``default_dir/audit.db``; an MLflow server with neither is refused (the log must be one
    shared database, not a file on whichever machine ran the command)."""
    if os.environ.get(DB_ENV):
        return os.environ[DB_ENV]
    if tracking_uri and tracking_uri.startswith("sqlite:"):
        database = make_url(tracking_uri).database
        if database and database != ":memory:":
            return f"sqlite:///{Path(database).resolve().with_name('audit.db')}"
    if default_dir is not None:
        return f"sqlite:///{(default_dir / 'audit.db').resolve()}"
    raise AuditError(
        f"no audit log for MLflow store {tracking_uri or '(none given)'}: set {DB_ENV} to the "
        "audit database's SQLAlchemy URL (postgresql+psycopg://user@host/db; password in "
        "PGPASSWORD), or pass --db"
    )


def migrate(engine: Engine) -> None:
    """Bring the log's schema to the latest migration (a new one is created)."""
    upgrade(engine, Path(__file__).parent / "migrations")


def _entry(row: Any) -> Entry:
    values = dict(row._mapping)
    try:
        values["details"] = json.loads(values["details"])
    except ValueError:
        values["details"] = {"unreadable": values["details"]}  # fails its hash check
    return Entry(**values)


class AuditLog:
    def __init__(self, url: str, create: bool = True) -> None:
        """Open (and migrate) the log at ``url``; without ``create`` an SQLite file that does
        not exist is refused rather than started afresh beside the real one."""
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not create and not path.is_file():
                raise AuditError(
                    f"no audit log at {path}: the register stage writes it beside an SQLite "
                    f"MLflow store, or where {DB_ENV} pointed; pass --db with its URL"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = create_engine(url)
            migrate(self.engine)
        except (ArgumentError, OperationalError) as error:
            first = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise AuditError(f"cannot open the audit log {redacted(url)}: {first}") from None

    def append(
        self, actor: str, action: str, subject: str, reason: str, details: dict[str, Any]
    ) -> Entry:
        """Add one entry at the end of the chain and return it (with its hash)."""
        if action not in ACTIONS:
            raise ValueError(f"action {action!r}: use one of {', '.join(ACTIONS)}")
        if not actor.strip():
            raise AuditError("an audit entry needs an actor: who decided")
        if not reason.strip():
            raise AuditError("an audit entry needs a reason: why it was decided")
        if len(reason) > MAX_REASON:
            raise AuditError(f"the reason is {len(reason)} characters; keep it under {MAX_REASON}")
        details = json.loads(canonical(details))  # what is read back is what was hashed
        for attempt in range(_APPEND_TRIES):
            try:
                return self._append_once(actor.strip(), action, subject, reason.strip(), details)
            except (IntegrityError, OperationalError):
                # another writer took this seq (or held SQLite's lock): chain after it
                if attempt == _APPEND_TRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _append_once(
        self, actor: str, action: str, subject: str, reason: str, details: dict[str, Any]
    ) -> Entry:
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # one writer at a time; readers are not blocked
                connection.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
            last = connection.execute(
                select(ENTRIES.c.seq, ENTRIES.c.hash).order_by(ENTRIES.c.seq.desc()).limit(1)
            ).first()
            seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS)
            at = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
            unsigned = Entry(seq, at, actor, action, subject, reason, details, prev_hash, "")
            entry = Entry(**{**asdict(unsigned), "hash": unsigned.expected_hash()})
            connection.execute(
                insert(ENTRIES), {**asdict(entry), "details": canonical(entry.details)}
            )
        return entry

    def entries(self, subject: str | None = None) -> list[Entry]:
        query = select(ENTRIES).order_by(ENTRIES.c.seq)
        if subject is not None:
            query = query.where(ENTRIES.c.subject == subject)
        with self.engine.connect() as connection:
            return [_entry(row) for row in connection.execute(query)]

    def decision(self, subject: str, run_id: str) -> Entry | None:
        """The latest approve or reject entry for ``subject`` made for the MLflow run
        ``run_id`` (a version number reused by a rebuilt registry is another model)."""
        found = [
            entry
            for entry in self.entries(subject)
            if entry.action in ("approve", "reject")
            and entry.details.get("mlflow_run_id") == run_id
        ]
        return found[-1] if found else None

    def verify(self, anchors: Iterable[str] = ()) -> Verification:
        """Walk the chain from the first entry; name the first that does not fit. Each of
        ``anchors`` (hashes recorded elsewhere, e.g. the registry's approval tags) must
        still be in the chain."""
        entries = self.entries()
        expected_seq, head = 1, GENESIS
        for entry in entries:
            problem = ""
            if entry.seq != expected_seq:
                missing = (
                    f"entry {expected_seq} is"
                    if entry.seq == expected_seq + 1
                    else f"entries {expected_seq}..{entry.seq - 1} are"
                )
                problem = f"{missing} missing (deleted, or never written in this order)"
            elif entry.prev_hash != head:
                problem = (
                    f"its prev_hash does not match entry {entry.seq - 1}'s hash: an entry "
                    "before it was deleted, inserted, reordered or rewritten"
                )
            elif entry.hash != entry.expected_hash():
                problem = "its hash does not match its content: edited after it was written"
            if problem:
                return Verification(len(entries), entry.seq, f"entry {entry.seq}: {problem}", head)
            expected_seq, head = entry.seq + 1, entry.hash
        present = {entry.hash for entry in entries}
        lost = sorted(set(anchors) - present)
        if lost:
            return Verification(
                len(entries),
                None,
                f"hash {lost[0]} recorded in the model registry is not in the chain: entries "
                "were removed from its end, the chain was rewritten, or that version was "
                "recorded in another audit database",
                head,
            )
        return Verification(len(entries), None, "", head)
