"""transcript_segments: segments published while a job is transcribed (the live streams)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

The worker appends each decoded segment here (with its lease renewal) so that the job's live
stream and OpenAI's `stream=true` can send the words before the transcript exists, and a
listener that reconnects catches up from the store. The transcript replaces them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transcript_segments",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("segment", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "position"),
    )


def downgrade() -> None:
    op.drop_table("transcript_segments")
