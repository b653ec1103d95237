"""Fixtures the unit tests of the store's users share."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_cache.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "root")
    s.ensure()
    return s
