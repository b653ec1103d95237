"""The obstore client against real SeaweedFS and Azurite: create-if-absent, permissions, races, secrets."""

from __future__ import annotations

import asyncio
import os

import pytest

from ci_cache.errors import RemoteError
from ci_cache.remote.budget import run
from ci_cache.remote.obstore_store import ObstoreStore, open_store
from tests.remote import servers
from tests.remote.servers import BUCKET, Server

SERVERS = ["seaweedfs", "azurite"]

pytestmark = pytest.mark.integration


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def store_for(server: Server, prefix: str, identity: str = "admin", **overrides: object) -> ObstoreStore:
    settings = servers.settings_for(server, prefix, **overrides)
    return open_store(settings, servers.env_for(server, identity), request_timeout=10)


def test_put_if_absent_get_head_list_delete(server: Server, prefix: str) -> None:
    store = store_for(server, prefix)

    async def scenario() -> None:
        assert await store.put_if_absent("a/one", b"first") is True
        assert await store.put_if_absent("a/one", b"second") is False  # already there: success, not overwritten
        assert await store.get("a/one", max_size=100) == b"first"
        assert await store.get_range("a/one", 1, 3) == b"ir"
        meta = await store.head("a/one")
        assert meta is not None and meta.size == 5 and meta.key == "a/one"
        assert await store.head("a/none") is None
        await store.put_if_absent("a/two", b"x")
        await store.put_if_absent("b/three", b"")
        assert sorted(m.key for m in await store.list("a/")) == ["a/one", "a/two"]
        assert len(await store.list("")) == 3
        await store.delete("a/one")
        await store.delete("a/one")  # deleting what is gone is fine
        assert await store.head("a/one") is None

    run(scenario)
    assert store.where.startswith(f"{'az' if server.name == 'Azurite' else 's3'}://{BUCKET}/{prefix} at http://")


def test_missing_object_is_not_found(server: Server, prefix: str) -> None:
    store = store_for(server, prefix)
    with pytest.raises(RemoteError) as caught:
        run(lambda: store.get("nothing/here", max_size=10))
    assert caught.value.kind == "not_found"
    assert "nothing/here" in str(caught.value) and store.where in str(caught.value)


def test_get_refuses_objects_over_the_size_limit(server: Server, prefix: str) -> None:
    store = store_for(server, prefix)
    run(lambda: store.put_if_absent("big", b"x" * 1000))
    with pytest.raises(RemoteError) as caught:
        run(lambda: store.get("big", max_size=999))
    assert caught.value.kind == "garbage"


def test_create_if_absent_race_has_exactly_one_creator(server: Server, prefix: str) -> None:
    """16 writers publish the same key at once: one creates it, 15 see "already there", none fails."""
    stores = [store_for(server, prefix) for _ in range(16)]

    async def race() -> list[bool]:
        return await asyncio.gather(*(s.put_if_absent("raced", f"writer {i}".encode()) for i, s in enumerate(stores)))

    results = run(race)
    assert results.count(True) == 1, results
    winner = results.index(True)
    assert run(lambda: stores[0].get("raced", max_size=100)) == f"writer {winner}".encode()


def test_read_only_identity_cannot_write(seaweedfs: Server, prefix: str) -> None:
    store = store_for(seaweedfs, prefix, identity="read")
    with pytest.raises(RemoteError) as caught:
        run(lambda: store.put_if_absent("x", b"data"))
    error = caught.value
    assert error.kind == "forbidden"
    assert "AWS_ACCESS_KEY_ID" in str(error)  # names where the credentials came from
    assert seaweedfs.identities["read"].secret_key not in str(error)
    assert seaweedfs.identities["read"].access_key not in str(error)
    # ... but reading works with the same credentials.
    run(lambda: store_for(seaweedfs, prefix).put_if_absent("y", b"ok"))
    assert run(lambda: store.get("y", max_size=10)) == b"ok"


def test_wrong_secret_is_forbidden_and_never_echoed(server: Server, prefix: str) -> None:
    if server.name == "Azurite":
        secret = "V3J5b25nS2V5Rm9yQXp1cml0ZVRlc3RzMDEyMzQ1Njc4OWFiY2RlZg=="
        env = {"AZURE_STORAGE_ACCOUNT_NAME": "devstoreaccount1", "AZURE_STORAGE_ACCOUNT_KEY": secret}
        settings = servers.settings_for(server, prefix, endpoint=server.endpoint + "/devstoreaccount1",
                                        allow_http=True)
    else:
        secret = "wrong-secret-never-shown-123"
        env = {"AWS_ACCESS_KEY_ID": "ADMINKEY0123", "AWS_SECRET_ACCESS_KEY": secret}
        settings = servers.settings_for(server, prefix)
    store = open_store(settings, env, request_timeout=10)
    for op in (lambda: store.get("k", max_size=10), lambda: store.put_if_absent("k", b"v"), lambda: store.list("")):
        with pytest.raises(RemoteError) as caught:
            run(op)
        assert caught.value.kind == "forbidden", caught.value
        text = f"{caught.value} {caught.value.hint} {caught.value!r}"
        assert secret not in text
        assert "ADMINKEY0123" not in text


def test_process_environment_does_not_override_the_env_given(
    seaweedfs: Server, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """obstore reads os.environ itself; the explicit settings from `env` must win over all of it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "READONLYKEY1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "totally-wrong")
    monkeypatch.setenv("AWS_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_SKIP_SIGNATURE", "true")
    monkeypatch.setenv("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "true")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "false")
    assert os.environ["AWS_ENDPOINT"] == "http://127.0.0.1:9"
    store = store_for(seaweedfs, prefix, identity="publish")
    assert run(lambda: store.put_if_absent("k", b"v")) is True  # publish identity, right endpoint, signed
