"""Alembic environment: migrates the database named in the Alembic config."""

from __future__ import annotations

from alembic import context

from voxflow.db import Base, make_engine
from voxflow.jobs import models  # noqa: F401  (registers the tables on Base.metadata)
from voxflow.webhooks import models as webhook_models  # noqa: F401

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("no database URL given to the migrations")

engine = make_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        # Several processes may start at once (API replicas, the stack): serialise migrations.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(746374)")
        context.run_migrations()
engine.dispose()
