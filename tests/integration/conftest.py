"""Shared fixtures: each module serves its own index (`server`); every test gets its own Lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_cache_index import IndexServer
from tests.integration.uvjobs import Lab


@pytest.fixture
def lab(tmp_path: Path, server: IndexServer) -> Lab:
    return Lab(tmp_path, server.url)
