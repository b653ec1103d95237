"""ci_cache.tools.uv.layout: buckets, links, pointers and revisions, as uv 0.13.8 writes them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ci_cache.tools.uv.layout import archive_id_of_link, bucket_kind
from tests.unit.uvcache import write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the synthetic caches use POSIX symlinks")


# ---------------------------------------------------------------------------------------------------
# Classification.


@pytest.mark.parametrize(
    ("name", "kind"),
    [("archive-v0", "archive"), ("wheels-v7", "wheels"), ("sdists-v10", "sdists"), ("simple-v27", "index"),
     ("flat-index-v2", "index"), ("git-v0", "other"), ("builds-v0", "never"), ("environments-v2", "never"),
     ("interpreter-v5", "interpreter"), (".tmpXYZ", "never"), (".lock", "never"), ("CACHEDIR.TAG", "never"),
     (".gitignore", "never"), ("random-folder", "never")],
)
def test_bucket_kind(name: str, kind: str) -> None:
    assert bucket_kind(name) == kind


def test_archive_id_of_links(tmp_path: Path) -> None:
    rel = tmp_path / "rel"
    os.symlink("../../../../archive-v0/abcDEF_123-x", rel)
    absolute = tmp_path / "abs"
    os.symlink("/cache/archive-v0/abcDEF_123-x", absolute)
    windows = write(tmp_path / "win", "archive-v0\\abcDEF_123-x")
    elsewhere = tmp_path / "elsewhere"
    os.symlink("../../../../wheels-v7/abcDEF_123-x", elsewhere)
    big = write(tmp_path / "big", "x" * 2000 + "archive-v0/abcDEF_123-x")
    assert archive_id_of_link(str(rel), is_symlink=True) == "abcDEF_123-x"
    assert archive_id_of_link(str(absolute), is_symlink=True) == "abcDEF_123-x"
    assert archive_id_of_link(str(windows), is_symlink=False) == "abcDEF_123-x"
    assert archive_id_of_link(str(elsewhere), is_symlink=True) is None
    assert archive_id_of_link(str(big), is_symlink=False) is None
    assert archive_id_of_link(str(tmp_path / "missing"), is_symlink=False) is None


