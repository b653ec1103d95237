"""`ci-cache remote status|verify|gc|push` in process, over obstore's in-memory store: reports on stdout,
`--json`, exit 5 when verify finds a problem, a usage error when no remote is configured."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_cache import cli
from ci_cache.commands import COMMANDS
from ci_cache.errors import UsageError, VerifyFailed
from ci_cache.remote import layout, obstore_store, progress
from ci_cache.remote.budget import run
from ci_cache.remote.obstore_store import ObstoreStore
from ci_cache.tools.uv import UvTool
from ci_cache.tools.uv.remote import UvRemote
from tests.unit.test_uv_remote import LINUX, agent_a, do_push, memory
from tests.unit.uvremote import BUCKETS

ENV = {"CI_CACHE_REMOTE_URL": "s3://fleet/team"}


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ObstoreStore]:
    monkeypatch.chdir(tmp_path)
    mem = memory()
    monkeypatch.setattr(obstore_store, "open_store", lambda settings, env, request_timeout: mem)
    monkeypatch.setattr(UvTool, "remote", lambda self, env: UvRemote({}, machine=LINUX, buckets=BUCKETS))
    yield mem


def invoke(*argv: str, env: dict[str, str] | None = None) -> int:
    args = cli.build_parser().parse_args(["remote", *argv])
    return COMMANDS["remote"].run(args, env if env is not None else ENV)


def test_without_a_remote_it_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="no remote is configured") as caught:
        invoke("status", env={})
    assert caught.value.exit_code == 2 and "CI_CACHE_REMOTE_URL" in str(caught.value)


def test_status_and_verify_report_on_stdout(store: ObstoreStore, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    do_push(store, agent_a(tmp_path))
    assert invoke("status") == 0
    out = capsys.readouterr().out
    assert "memory://test: " in out and "blobs: 4" in out and "uv-wheels-v7-archive-v0: 3" in out
    assert invoke("status", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["blobs"] == 4 and data["entries_by_version"]["uv-simple-v27"] == 2
    assert invoke("verify") == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")


def test_verify_fails_with_exit_5_and_fix_deletes_what_is_broken(store: ObstoreStore, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    do_push(store, agent_a(tmp_path))
    [blob] = [m for m in run(lambda: store.list(layout.BLOBS))][:1]
    run(lambda: store.delete(blob.key))
    with pytest.raises(VerifyFailed) as caught:
        invoke("verify")
    assert caught.value.exit_code == 5
    assert "is missing" in capsys.readouterr().out
    assert invoke("verify", "--fix", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fixed"] and not data["ok"]  # what it found, and what it deleted
    assert invoke("verify") == 0


def test_gc_dry_run_then_for_real(store: ObstoreStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    do_push(store, agent_a(tmp_path))
    run(lambda: store.put_if_absent(layout.blob_key("0" * 64), b"orphan"))
    grace = {**ENV, "CI_CACHE_REMOTE_GC_GRACE": "0s"}
    assert invoke("gc", "--dry-run", env=grace) == 0
    assert "would delete 0 entries, 1 blobs" in capsys.readouterr().out
    assert run(lambda: store.head(layout.blob_key("0" * 64))) is not None
    assert invoke("gc", "--keep-days", "7", "--json", env=grace) == 0
    assert json.loads(capsys.readouterr().out)["blobs_deleted"] == 1
    with pytest.raises(UsageError, match="keep at least 1 day"):
        invoke("gc", "--keep-days", "0")


def test_push_publishes_the_agents_shared_cache(store: ObstoreStore, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    root = tmp_path / "root"
    shutil.copytree(agent_a(tmp_path), root / "shared" / "uv", symlinks=True)
    env = {**ENV, "CI_CACHE_ROOT": str(root), "CI_CACHE_TOOLS": "uv"}
    assert invoke("push", env=env) == 0
    assert "uv: 6 entries in the cache: 6 pushed" in capsys.readouterr().out
    assert invoke("push", "--json", env=env) == 0
    assert json.loads(capsys.readouterr().out)["uv"]["entries_present"] == 6


def test_progress_stays_quiet_when_asked() -> None:
    assert progress.on(sys.stderr, quiet=True) is None
    factory = progress.on(sys.stderr)
    assert factory is not None and factory("pulling", 3, 100).total == 3
