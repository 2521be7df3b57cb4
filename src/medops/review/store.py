"""The feedback store: every pulled review, across rounds and versions, and the review queue.

SQLite under the recipe's output_dir when embedded, PostgreSQL on a cluster
(``MEDOPS_FEEDBACK_DB``, a SQLAlchemy URL). The schema is owned by Alembic migrations
(``review/migrations``), applied on open, so an older store is upgraded in place. Review
rows hold ids, verdicts and accepted flags, never the item's text: the text stays in the
versioned feedback dataset beside its card. The queue holds what the server recorded
(``serve.review_queue``): de-identified turns and released answers, deleted after their
retention.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
)

from medops.migrations import migrate as upgrade
from medops.recipe import Recipe

DB_ENV = "MEDOPS_FEEDBACK_DB"
VERSION_TABLE = "medops_feedback_version"
METADATA = MetaData()
REVIEWS = Table(
    "reviews",
    METADATA,
    Column("project", String(200), primary_key=True),
    Column("ls_annotation_id", Integer, primary_key=True),
    Column("ls_task_id", Integer, nullable=False),
    Column("item_id", String(200), nullable=False),
    Column("model_uri", String(300)),
    Column("reviewer", String(200)),
    Column("verdict", String(20), nullable=False),
    Column("reason", String(2000)),
    Column("lead_time_s", Float),
    Column("fields", JSON, nullable=False),
    Column("reviewed_at", DateTime(timezone=True)),
    Column("feedback_version", String(500), nullable=False),
    Column("pulled_at", DateTime(timezone=True), nullable=False),
)

QUEUE = Table(
    "review_queue",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("served_model", String(200), nullable=False),
    Column("model_uri", String(300), nullable=False),
    Column("messages", JSON, nullable=False),
    Column("answer", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


def store_url(recipe: Recipe) -> str:
    return os.environ.get(DB_ENV) or f"sqlite:///{(recipe.out / 'feedback.db').resolve()}"


def migrate(engine: Engine) -> None:
    """Bring the store's schema to the latest migration (a new one is created)."""
    upgrade(engine, Path(__file__).parent / "migrations")


class FeedbackStore:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url)
        migrate(self.engine)

    def record(self, project: str, rows: list[dict[str, Any]], version: str) -> int:
        """Store ``rows`` (``review.pull.feedback_rows``); a review pulled again is replaced."""
        now = datetime.now(UTC)
        values = [
            {
                "project": project,
                "ls_annotation_id": row["ls_annotation_id"],
                "ls_task_id": row["ls_task_id"],
                "item_id": row["id"],
                "model_uri": row["model_uri"],
                "reviewer": str(row["reviewer"]),
                "verdict": row["verdict"],
                "reason": row["reason"],
                "lead_time_s": row["lead_time_s"],
                "fields": {k: {"accepted": v["accepted"]} for k, v in row["fields"].items()},
                "reviewed_at": _when(row.get("reviewed_at")),
                "feedback_version": version,
                "pulled_at": now,
            }
            for row in rows
        ]
        ids = [v["ls_annotation_id"] for v in values]
        with self.engine.begin() as connection:
            if ids:
                connection.execute(
                    delete(REVIEWS).where(
                        REVIEWS.c.project == project, REVIEWS.c.ls_annotation_id.in_(ids)
                    )
                )
                connection.execute(insert(REVIEWS), values)
        return len(values)

    def enqueue(
        self,
        served_model: str,
        model_uri: str,
        messages: list[dict[str, str]],
        answer: str,
        retention: timedelta,
    ) -> None:
        """Queue one de-identified exchange for review; expired ones are deleted on the way."""
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            connection.execute(delete(QUEUE).where(QUEUE.c.expires_at <= now))
            connection.execute(
                insert(QUEUE),
                {
                    "served_model": served_model,
                    "model_uri": model_uri,
                    "messages": messages,
                    "answer": answer,
                    "created_at": now,
                    "expires_at": now + retention,
                },
            )

    def queued(self) -> list[dict[str, Any]]:
        """Unexpired queued exchanges, oldest first."""
        now = datetime.now(UTC)
        query = select(QUEUE).where(QUEUE.c.expires_at > now).order_by(QUEUE.c.id)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def reviews(self, project: str) -> list[dict[str, Any]]:
        query = select(REVIEWS).where(REVIEWS.c.project == project)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
