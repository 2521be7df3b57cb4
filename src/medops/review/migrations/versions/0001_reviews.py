"""The reviews table: one row per submitted review, keyed by project and annotation.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("ls_annotation_id", sa.Integer, primary_key=True),
        sa.Column("ls_task_id", sa.Integer, nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("model_uri", sa.String(300)),
        sa.Column("reviewer", sa.String(200)),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(2000)),
        sa.Column("lead_time_s", sa.Float),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
        sa.Column("feedback_version", sa.String(500), nullable=False),
        sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("reviews_by_model", "reviews", ["project", "model_uri"])


def downgrade() -> None:
    op.drop_table("reviews")
