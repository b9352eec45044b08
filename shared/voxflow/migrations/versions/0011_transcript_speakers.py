"""transcripts.speakers: a diarized transcript's speakers (labels, names, talk time)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

Segments and words carry a speaker label (`A`, `B`, ...); this column lists the speakers
with their talk time and the names given to them (by a known voice, or renamed by the
tenant). NULL for a transcript made without diarization.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "transcripts",
        sa.Column("speakers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("transcripts", "speakers")
