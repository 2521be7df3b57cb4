"""The feedback store on SQLite and on the machine's PostgreSQL: migrated on open, a review
pulled twice stored once, no item text kept."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from medops.review.store import REVIEWS, VERSION_TABLE, FeedbackStore

POSTGRES = os.environ.get(
    "MEDOPS_TEST_POSTGRES_DSN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _row(annotation: int, verdict: str, accepted: bool) -> dict[str, object]:
    return {
        "id": f"item{annotation % 2}",
        "text": "Mr. [NAME] asks about amoxicillin.",
        "model_uri": "models:/m/1",
        "ls_task_id": 10 + annotation % 2,
        "ls_annotation_id": annotation,
        "reviewer": 1,
        "verdict": verdict,
        "reason": "",
        "lead_time_s": 4.5,
        "reviewed_at": "2026-12-06T07:01:29.424959Z",
        "fields": {"answer": {"model": "a", "reviewed": "b", "accepted": accepted}},
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'feedback.db'}"
        return
    name = f"medops_feedback_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield str(sa.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


def test_migrated_on_open_and_a_review_pulled_twice_is_stored_once(url: str):
    store = FeedbackStore(url)
    assert store.record("p", [_row(1, "accept", True), _row(2, "correct", False)], "v1") == 2
    store.record("p", [_row(2, "reject", False)], "v2")  # the reviewer changed their mind
    FeedbackStore(url)  # opening again migrates nothing twice
    rows = sorted(store.reviews("p"), key=lambda r: r["ls_annotation_id"])
    assert [(r["ls_annotation_id"], r["verdict"], r["feedback_version"]) for r in rows] == [
        (1, "accept", "v1"),
        (2, "reject", "v2"),
    ]
    assert rows[0]["fields"] == {"answer": {"accepted": True}}
    assert rows[0]["reviewed_at"].year == 2026
    assert store.reviews("other") == []
    with store.engine.connect() as connection:
        assert (
            connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
            == "0002"
        )
        stored = " ".join(str(v) for row in connection.execute(sa.select(REVIEWS)) for v in row)
    assert "[NAME]" not in stored and "amoxicillin" not in stored, "no item text in the store"
