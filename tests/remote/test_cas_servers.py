"""The content-addressed layout end to end on real servers: pack, publish, pull, unpack, status, verify, gc."""

from __future__ import annotations

import filecmp
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ci_cache.errors import RemoteError
from ci_cache.remote import archive, layout, ops
from ci_cache.remote.budget import Budget, run
from ci_cache.remote.cas import Cas
from ci_cache.remote.layout import Entry
from ci_cache.remote.obstore_store import open_store
from ci_cache.remote.transfer import run_all
from tests.remote import servers
from tests.remote.servers import Server

pytestmark = pytest.mark.integration


@pytest.fixture(params=["seaweedfs", "azurite"])
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def _cas(server: Server, prefix: str, identity: str = "admin") -> Cas:
    return Cas(open_store(servers.settings_for(server, prefix), servers.env_for(server, identity), request_timeout=10))


def _tree(root: Path, name: str, files: int) -> Path:
    top = root / name
    (top / name / "sub").mkdir(parents=True)
    for i in range(files):
        (top / name / ("sub" if i % 2 else "") / f"m{i}.py").write_bytes(f"# {name} {i}\n".encode() * (i + 1))
    (top / f"{name}-1.0.dist-info").mkdir()
    (top / f"{name}-1.0.dist-info" / "RECORD").write_text("RECORD\n")
    script = top / name / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    return top


def _same_tree(a: Path, b: Path) -> None:
    cmp = filecmp.dircmp(a, b)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files, (cmp.left_only, cmp.right_only)
    for sub in cmp.common_dirs:
        _same_tree(a / sub, b / sub)


def test_publish_then_pull_round_trip(server: Server, prefix: str, tmp_path: Path) -> None:
    cas = _cas(server, prefix)
    trees = [_tree(tmp_path / "src", f"pkg{i}", files=5 + i) for i in range(6)]

    async def publish(tree: Path) -> bool:
        data, _ = archive.pack_bytes(tree)
        ref, _ = await cas.put_blob(data)
        return await cas.put_entry(Entry("uv/wheels-v5/archive-v0", tree.name, {"archive": ref},
                                         files={f"{tree.name}.http": b"\x93\x01pointer"}, meta={"version": "1.0"}))

    pushed = run(lambda: run_all(trees, publish, concurrency=4, budget=Budget(30, what="push"), where=cas.store.where))
    assert all(o.ok and o.result for o in pushed.outcomes)

    # A second agent publishes the same content: nothing new, nothing overwritten.
    again = run(lambda: run_all(trees, publish, concurrency=4, budget=Budget(30, what="push"), where=cas.store.where))
    assert all(o.ok and o.result is False for o in again.outcomes)

    reader = _cas(server, prefix, identity="read") if server.name != "Azurite" else cas
    dest = tmp_path / "dest"
    dest.mkdir()

    async def pull(tree: Path) -> int:
        entry = await reader.get_entry("uv/wheels-v5/archive-v0", tree.name)
        assert entry is not None and entry.files == {f"{tree.name}.http": b"\x93\x01pointer"}
        blob = dest / f".tmp-{tree.name}.blob"
        await reader.get_blob_to(entry.blobs["archive"], blob)
        with open(blob, "rb") as fh:
            archive.unpack(fh, dest / f".tmp-{tree.name}", what=entry.blobs["archive"].digest)
        os.rename(dest / f".tmp-{tree.name}", dest / tree.name)
        blob.unlink()
        # Used marks are writes: a read-only (untrusted) job cannot leave them, a trusted one does.
        await cas.mark_used(entry.namespace, entry.key, date.today())
        return entry.blobs["archive"].size

    pulled = run(lambda: run_all(trees, pull, concurrency=4, budget=Budget(30, what="pull"), where=cas.store.where))
    assert all(o.ok for o in pulled.outcomes), [o.error for o in pulled.failed]
    for tree in trees:
        _same_tree(tree, dest / tree.name)
        assert os.access(dest / tree.name / tree.name / "tool", os.X_OK)

    if reader is not cas:
        with pytest.raises(RemoteError) as caught:
            run(lambda: reader.mark_used("uv/wheels-v5/archive-v0", "pkg0", date.today()))
        assert caught.value.kind == "forbidden"

    status = run(lambda: ops.status(cas))
    assert status.blobs == 6 and status.entries == {"uv/wheels-v5/archive-v0": 6}
    assert status.used_marks == 6 and status.other_objects == 0
    report = run(lambda: ops.verify(cas))
    assert report.ok and report.blobs_hashed == 6 and report.entries == 6
    sampled = run(lambda: ops.verify(cas, sample=2, seed=1))
    assert sampled.ok and sampled.blobs_hashed == 2


def test_gc_keeps_used_entries_and_drops_stale_ones(server: Server, prefix: str) -> None:
    cas = _cas(server, prefix)

    async def setup() -> None:
        for key in ("used", "stale"):
            ref, _ = await cas.put_blob(f"blob of {key}".encode())
            await cas.put_entry(Entry("ns", key, {"archive": ref}))
        await cas.put_blob(b"orphan blob: an upload whose entry never came")

    run(setup)
    later = datetime.now(UTC) + timedelta(days=40)
    run(lambda: cas.mark_used("ns", "used", later.date() - timedelta(days=3)))

    dry = run(lambda: ops.gc(cas, keep_days=30, grace=timedelta(hours=6), now=later, dry_run=True))
    assert dry.entries_deleted == ["ns/stale"] and dry.blobs_deleted == 2
    assert run(lambda: ops.status(cas)).blobs == 3  # a dry run deletes nothing

    report = run(lambda: ops.gc(cas, keep_days=30, grace=timedelta(hours=6), now=later))
    assert report.entries_deleted == ["ns/stale"] and report.blobs_deleted == 2 and report.blobs_kept == 1
    assert run(lambda: cas.get_entry("ns", "stale")) is None
    entry = run(lambda: cas.get_entry("ns", "used"))
    assert entry is not None
    assert run(lambda: cas.get_blob(entry.blobs["archive"])) == b"blob of used"
    assert run(lambda: ops.verify(cas)).ok


def test_gc_spares_fresh_uploads(server: Server, prefix: str) -> None:
    """An unreferenced blob younger than the grace period is an upload in flight: never deleted."""
    cas = _cas(server, prefix)
    run(lambda: cas.put_blob(b"just uploaded, entry not yet written"))
    report = run(lambda: ops.gc(cas, keep_days=1, grace=timedelta(hours=1)))
    assert report.blobs_deleted == 0 and report.blobs_kept == 1


def test_publish_identity_cannot_delete_what_read_cannot_write(seaweedfs: Server, prefix: str) -> None:
    """Read-only credentials (untrusted jobs) can pull, never push."""
    writer, reader = _cas(seaweedfs, prefix, "publish"), _cas(seaweedfs, prefix, "read")
    ref, created = run(lambda: writer.put_blob(b"published"))
    assert created
    assert run(lambda: reader.get_blob(ref)) == b"published"
    with pytest.raises(RemoteError) as caught:
        run(lambda: reader.put_entry(Entry("ns", "k", {"archive": ref})))
    assert caught.value.kind == "forbidden"
    with pytest.raises(RemoteError):
        run(lambda: reader.store.delete(layout.blob_key(ref.digest)))
