"""Logging setup shared by every process (structured JSON logs come with observability)."""

from __future__ import annotations

import logging
import os


def configure_logging(service: str) -> None:
    """Log to stderr with the service name, at VOXFLOW_LOG_LEVEL (default INFO)."""
    level = os.environ.get("VOXFLOW_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
        force=False,
    )
