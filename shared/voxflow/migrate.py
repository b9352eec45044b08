"""Run the Alembic migrations programmatically (one command, also at stack start)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from voxflow.db import normalize_url


def alembic_config(url: str) -> Config:
    """Alembic configuration for the migrations shipped inside the `voxflow` package."""
    config = Config()
    config.set_main_option("script_location", "voxflow:migrations")
    # Alembic's config is an INI file: a literal % must be doubled.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision`."""
    command.upgrade(alembic_config(url), revision)
