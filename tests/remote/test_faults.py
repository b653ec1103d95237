"""Failures of the remote, each classified, bounded in time, scrubbed and never turned into bad data."""

from __future__ import annotations

import time

import pytest

from ci_cache.errors import RemoteError
from ci_cache.remote import layout
from ci_cache.remote.budget import Budget, run
from ci_cache.remote.cas import Cas
from ci_cache.remote.obstore_store import open_store
from ci_cache.remote.settings import RemoteConfig
from ci_cache.remote.transfer import run_all
from tests.remote import faults, servers
from tests.remote.servers import Server

SECRET = "fault-test-secret-value-0123456789"
ENV = {"AWS_ACCESS_KEY_ID": "AKIAFAULTTEST0001", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": "tok-" + SECRET}

pytestmark = pytest.mark.integration


def _cas(port: int, *, budget: float = 2.0) -> Cas:
    settings = RemoteConfig(url="s3://bucket/ci", endpoint=f"http://127.0.0.1:{port}", allow_http=True,
                            connect_timeout=1, retries=1)
    return Cas(open_store(settings, ENV, request_timeout=budget))


def _assert_clean(error: RemoteError) -> None:
    text = f"{error} {error!r}"
    for value in ENV.values():
        assert value not in text
    assert "\n" not in str(error)


def test_endpoint_down_is_unreachable_and_fast() -> None:
    cas = _cas(faults.closed_port())
    started = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        run(lambda: cas.get_entry("uv/wheels-v5", "abc"))
    assert caught.value.kind == "unreachable"
    assert "Connection refused" in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert time.monotonic() - started < 5
    _assert_clean(caught.value)


def test_a_stalled_server_is_bounded_by_the_budget() -> None:
    """A server that accepts and never answers: the whole batch ends when its budget does."""
    with faults.tcp_server(None) as port:
        cas = _cas(port, budget=30)  # requests alone would wait 30 s: the batch budget must cut them
        budget = Budget(1.5, what="remote pull")
        started = time.monotonic()
        batch = run(lambda: run_all([f"{i:064x}" for i in range(20)], cas.has_blob, concurrency=4,
                                    budget=budget, where=cas.store.where))
        elapsed = time.monotonic() - started
    assert elapsed < 4, elapsed
    assert len(batch.failed) == 20
    assert {o.error.kind for o in batch.failed if o.error} == {"timeout"}
    assert "1.5 s budget" in str(batch.failed[0].error)


def test_a_stalled_server_without_batch_budget_times_out_per_request() -> None:
    with faults.tcp_server(None) as port:
        cas = _cas(port, budget=1.0)
        started = time.monotonic()
        with pytest.raises(RemoteError) as caught:
            run(lambda: cas.get_entry("ns", "key"))
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 4
    _assert_clean(caught.value)


@pytest.mark.parametrize(("answer", "kind"), [(faults.JUNK_NOT_HTTP, "garbage"), (faults.JUNK_HTML_200, "garbage"),
                                              (faults.JUNK_500, "server")])
def test_garbage_answers_are_errors_never_data(answer: bytes, kind: str) -> None:
    with faults.tcp_server(answer) as port:
        cas = _cas(port)
        with pytest.raises(RemoteError) as caught:
            run(lambda: cas.get_entry("uv/wheels-v5", "abc"))
        assert caught.value.kind == kind, caught.value
        _assert_clean(caught.value)
        ref = layout.BlobRef("a" * 64, 25)
        with pytest.raises(RemoteError) as blob_error:
            run(lambda: cas.get_blob(ref))
        assert blob_error.value.kind in (kind, "corrupt")
        with pytest.raises(RemoteError) as put_error:
            run(lambda: cas.put_blob(b"payload"))
        assert put_error.value.kind in (kind, "garbage")


def test_corrupted_blob_is_refused(seaweedfs: Server, prefix: str) -> None:
    """The admin identity overwrites a blob's bytes: a download refuses it, verify reports it."""
    _corrupt_and_check(seaweedfs, prefix)


def test_corrupted_blob_is_refused_on_azure(azurite: Server, prefix: str) -> None:
    _corrupt_and_check(azurite, prefix)


def _corrupt_and_check(server: Server, prefix: str) -> None:
    from ci_cache.remote import ops
    from ci_cache.remote.layout import Entry

    cas = Cas(open_store(servers.settings_for(server, prefix), servers.env_for(server), request_timeout=10))
    ref, _ = run(lambda: cas.put_blob(b"the real archive bytes"))
    run(lambda: cas.put_entry(Entry("uv/wheels-v5", "k1", {"archive": ref})))
    servers.raw_put(server, f"{prefix}/{layout.blob_key(ref.digest)}", b"the fake archive bytes")
    with pytest.raises(RemoteError) as caught:
        run(lambda: cas.get_blob(ref))
    assert caught.value.kind == "corrupt"
    report = run(lambda: ops.verify(cas))
    assert not report.ok
    assert any(ref.digest in p and "sha256" in p for p in report.problems), report.problems
