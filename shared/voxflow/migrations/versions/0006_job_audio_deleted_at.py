"""jobs.audio_deleted_at: when retention removed a finished job's audio

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("audio_deleted_at", sa.DateTime(timezone=True)))
    # Retention scans finished jobs whose audio is still stored, oldest first.
    op.create_index(
        "ix_jobs_audio_retention", "jobs", ["finished_at"],
        postgresql_where=sa.text("audio_deleted_at IS NULL AND finished_at IS NOT NULL"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_jobs_audio_retention", table_name="jobs")
    op.drop_column("jobs", "audio_deleted_at")
