"""The Alembic migrations against the SQLAlchemy models, on a real PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from tests.support.servers import Servers, scratch_database
from voxflow.apikeys import issue_key
from voxflow.db import Base, make_engine, session_scope
from voxflow.jobs import reads
from voxflow.migrate import alembic_config, upgrade


def test_the_migrations_build_exactly_what_the_models_declare(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_every_migration_downgrades_and_upgrades_again(servers: Servers) -> None:
    with scratch_database(servers.postgres_admin_url) as url:
        upgrade(url)
        config = alembic_config(url)
        command.downgrade(config, "base")
        engine = make_engine(url)
        try:
            assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
            upgrade(url)
            tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
    assert set(Base.metadata.tables) <= tables


def test_an_api_key_is_found_through_the_prefix_index(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        issued = issue_key(session, tenant="index-test", name="plan")
    with engine.connect() as connection:
        # The planner prefers a sequential scan on a small table; forbid it to see whether
        # an index can serve the lookup every authenticated request makes.
        connection.execute(text("SET enable_seqscan = off"))
        plan = connection.execute(
            text("EXPLAIN SELECT * FROM api_keys WHERE prefix = :prefix AND revoked_at IS NULL"),
            {"prefix": issued.prefix},
        ).scalars()
        assert "ix_api_keys_prefix" in "\n".join(plan)


def test_the_upload_quota_count_reads_only_the_index_of_unfinished_jobs(engine: Engine) -> None:
    """The statement the ingestion API prepares for every upload, planned generically (as
    a prepared statement is after a few runs), still matches the partial index."""
    with engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        connection.execute(text("SET plan_cache_mode = force_generic_plan"))
        connection.exec_driver_sql(f"PREPARE quota AS {reads.ACTIVE_JOBS.sql}")
        plan = "\n".join(connection.exec_driver_sql("EXPLAIN EXECUTE quota('t')").scalars())
        connection.exec_driver_sql("DEALLOCATE quota")
    assert "ix_jobs_tenant_active" in plan, plan
