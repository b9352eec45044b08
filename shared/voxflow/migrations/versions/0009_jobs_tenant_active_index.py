"""jobs: partial index of unfinished jobs per tenant (the upload quota counts them)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Every upload counts the tenant's unfinished jobs. Over the (tenant, created_at) index that
count visited every job the tenant ever had; this index holds only unfinished jobs, so the
count reads at most the quota's worth of index entries.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_tenant_active",
        "jobs",
        ["tenant"],
        unique=False,
        postgresql_where=sa.text("status NOT IN ('canceled', 'completed', 'failed')"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_active", table_name="jobs")
