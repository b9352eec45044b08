"""The `voxflow` command against a real stack: both APIs under uvicorn, real worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner, Result

from ingest_api.app import create_app as create_ingest_app
from status_api.app import create_app as create_status_app
from tests.e2e.conftest import purged_queues, workers  # noqa: F401  (shared fixtures)
from tests.support.served import served
from voxflow.apikeys import IssuedKey
from voxflow_cli.main import app


@dataclass(frozen=True)
class Apis:
    """Base URLs of the two APIs."""

    ingest_url: str
    status_url: str


@dataclass(frozen=True)
class Voxflow:
    """Runs `voxflow ...` in this process with the environment a user would set."""

    apis: Apis
    api_key: str | None

    def __call__(self, *args: str, stdin: str | None = None) -> Result:
        """The command's result: exit code, stdout and stderr apart."""
        env = {
            "VOXFLOW_API_KEY": self.api_key,
            "VOXFLOW_INGEST_URL": self.apis.ingest_url,
            "VOXFLOW_STATUS_URL": self.apis.status_url,
            "COLUMNS": "120",  # rich's width when the output is not a terminal
        }
        return CliRunner().invoke(app, list(args), env=env, input=stdin)


@pytest.fixture(scope="module")
def apis() -> Iterator[Apis]:
    """Both APIs on loopback ports, as `voxflow run` serves them."""
    with served(create_ingest_app()) as ingest, served(create_status_app()) as status:
        yield Apis(f"http://{ingest}", f"http://{status}")


@pytest.fixture
def voxflow(apis: Apis, api_key: IssuedKey) -> Voxflow:
    """The command, with a key of the test's own tenant in VOXFLOW_API_KEY."""
    return Voxflow(apis, api_key.secret)
