"""The review queue: de-identified conversations and answers the server recorded.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "review_queue",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("served_model", sa.String(200), nullable=False),
        sa.Column("model_uri", sa.String(300), nullable=False),
        sa.Column("messages", sa.JSON, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("review_queue_by_expiry", "review_queue", ["expires_at"])


def downgrade() -> None:
    op.drop_table("review_queue")
