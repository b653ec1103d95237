"""The uv side of the fleet tier end to end: real uv, the local package index, real object storage.

Agent A installs real packages (wheels, and an sdist-only package uv builds), pushes them; an empty
agent B pulls what its uv.lock and requirements files name, then installs `--offline` with no request
to the index. A corrupted blob is refused; two agents pushing the same content end as one entry and
one blob per distinct archive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_cache import keyfiles, verify
from ci_cache.remote import layout, ops
from ci_cache.remote.budget import Budget, run
from ci_cache.remote.cas import Cas
from ci_cache.remote.obstore_store import ObstoreStore, open_store
from ci_cache.remote.reports import PullReport, PushReport
from ci_cache.remote.sync import pull, push
from ci_cache.tools.base import Wanted
from ci_cache.tools.uv import UvTool
from ci_cache.tools.uv.remote import UvRemote
from ci_cache_index import IndexServer, build_index, demo_specs
from tests.remote import servers
from tests.remote.servers import Server

pytestmark = pytest.mark.integration

UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
WANTED = ["demo-alpha", "demo-eta"]  # alpha pulls in beta, gamma, delta, epsilon, zeta; eta (sdist) needs theta
MODULES = ["demo_alpha", "demo_beta", "demo_gamma", "demo_delta", "demo_epsilon", "demo_zeta", "demo_eta", "demo_theta"]

if UV is None:
    pytest.skip("uv not found next to sys.executable or on PATH", allow_module_level=True)


@pytest.fixture(params=["seaweedfs", "azurite"])
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root = build_index(tmp_path_factory.mktemp("index"), demo_specs())
    with IndexServer(root, access_log=root / "access.log") as srv:
        yield srv


class Agent:
    """One machine: its uv cache, its home, its venvs, and the env its uv runs with."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.cache = root / "shared" / "uv"
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "VIRTUAL_ENV"))}
        env.update(UV_CACHE_DIR=str(self.cache), UV_NO_CONFIG="1", UV_NO_PROGRESS="1", UV_PYTHON_DOWNLOADS="never",
                   HOME=str(self.root / "home"), TMPDIR=str(self.root / "tmp"),
                   PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        return env

    def uv(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        assert UV is not None
        return subprocess.run([UV, *args], env=self.env(), capture_output=True, text=True, check=False,
                              cwd=cwd, timeout=300)

    def install(self, *args: str) -> subprocess.CompletedProcess[str]:
        venv = self.root / f"venv{len(list(self.root.glob('venv*')))}"
        made = self.uv("venv", "-q", "--python", sys.executable, str(venv))
        assert made.returncode == 0, made.stderr
        python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        proc = self.uv("pip", "install", "--python", str(python), "--index-url", self.url, *args)
        if proc.returncode == 0:
            check = subprocess.run([str(python), "-c", f"import {','.join(MODULES)}"], capture_output=True,
                                   text=True, check=False)
            assert check.returncode == 0, check.stderr
        return proc


def _store(server: Server, prefix: str, identity: str = "admin") -> ObstoreStore:
    return open_store(servers.settings_for(server, prefix), servers.env_for(server, identity), request_timeout=20)


def _push(server: Server, prefix: str, agent: Agent) -> PushReport:
    store = _store(server, prefix)
    return run(lambda: push(store, UvRemote(agent.env()), agent.cache, None, Budget(120, what="push")))


def _pull(server: Server, prefix: str, agent: Agent, wanted: Wanted) -> PullReport:
    store = _store(server, prefix, "read" if server.name != "Azurite" else "admin")
    return run(lambda: pull(store, UvRemote(agent.env()), agent.cache, wanted, Budget(120, what="pull")))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, index: IndexServer) -> Path:
    """A project with a uv.lock and its requirements export (with hashes), locked against the index."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "0.1"\nrequires-python = ">=3.11"\n'
                                           f"dependencies = {WANTED!r}\n".replace("'", '"'))
    agent = Agent(tmp_path_factory.mktemp("locker"), index.url)
    for args in (["lock", "--index-url", index.url],
                 ["export", "--format", "requirements-txt", "--no-emit-project", "-o", "requirements.txt"]):
        proc = agent.uv(*args, cwd=folder)
        assert proc.returncode == 0, proc.stderr
    return folder


def _objects(server: Server, prefix: str) -> ops.Status:
    return run(lambda: ops.status(Cas(_store(server, prefix))))


def test_an_empty_agent_installs_offline_from_what_it_pulled(server: Server, prefix: str, tmp_path: Path,
                                                              index: IndexServer, project: Path) -> None:
    a = Agent(tmp_path / "a", index.url)
    assert a.install(*WANTED).returncode == 0
    pushed = _push(server, prefix, a)
    assert not pushed.warnings, pushed.warnings
    # 7 wheels downloaded, 1 wheel built from demo-eta's sdist, and the 8 packages' index listings.
    assert (pushed.entries_pushed, pushed.blobs_pushed, pushed.entries_present) == (16, 8, 0), pushed
    assert pushed.skipped == []

    b = Agent(tmp_path / "b", index.url)
    found = keyfiles.read(["uv.lock", "requirements.txt"], project)
    pulled = _pull(server, prefix, b, Wanted.from_key_files(found))
    assert not pulled.warnings and not pulled.missing, pulled
    assert (pulled.entries_installed, pulled.blobs) == (16, 8), pulled
    assert verify.check(UvTool(), b.cache).ok

    index.clear_requests()
    offline = b.install("--offline", "-r", str(project / "requirements.txt"))
    assert offline.returncode == 0, offline.stderr
    assert index.requests == []  # nothing asked of the index, let alone downloaded
    assert verify.check(UvTool(), b.cache).ok

    # B already has everything: a second pull makes no request at all, and installs nothing.
    again = _pull(server, prefix, b, Wanted.from_key_files(found))
    assert (again.lookups, again.entries_read, again.entries_installed) == (0, 0, 0)
    assert run(lambda: ops.verify(Cas(_store(server, prefix)))).ok


def test_uv_sync_offline_from_the_lock_alone(server: Server, prefix: str, tmp_path: Path, index: IndexServer,
                                            project: Path) -> None:
    """A uv.lock names exact files: no index listing is needed, and none is pulled."""
    a = Agent(tmp_path / "a", index.url)
    assert a.install(*WANTED).returncode == 0
    _push(server, prefix, a)
    b = Agent(tmp_path / "b", index.url)
    pulled = _pull(server, prefix, b, Wanted.from_key_files(keyfiles.read(["uv.lock"], project)))
    assert (pulled.entries_installed, pulled.missing, pulled.warnings) == (8, [], []), pulled
    work = tmp_path / "work"
    shutil.copytree(project, work)
    index.clear_requests()
    synced = b.uv("sync", "--offline", "--frozen", "--index-url", index.url, cwd=work)
    assert synced.returncode == 0, synced.stderr
    assert index.file_downloads() == []


def test_a_job_that_names_packages_pulls_them_and_their_dependencies(server: Server, prefix: str, tmp_path: Path,
                                                                      index: IndexServer) -> None:
    a = Agent(tmp_path / "a", index.url)
    assert a.install(*WANTED).returncode == 0
    _push(server, prefix, a)
    b = Agent(tmp_path / "b", index.url)
    (tmp_path / "requirements.txt").write_text("demo-alpha\ndemo-eta\n")
    pulled = _pull(server, prefix, b, Wanted.from_key_files(keyfiles.read(["requirements.txt"], tmp_path)))
    assert (pulled.entries_installed, pulled.missing) == (16, []), pulled
    index.clear_requests()
    assert b.install("--offline", *WANTED).returncode == 0
    assert index.requests == []


def test_a_corrupted_blob_is_refused_and_nothing_wrong_is_installed(server: Server, prefix: str, tmp_path: Path,
                                                                     index: IndexServer, project: Path) -> None:
    a = Agent(tmp_path / "a", index.url)
    assert a.install(*WANTED).returncode == 0
    _push(server, prefix, a)
    store = _store(server, prefix)
    entries = run(lambda: store.list(layout.ENTRIES + "uv-wheels-v7-archive-v0/demo-zeta/"))
    assert len(entries) == 1
    entry_id = layout.parse_entry_key(entries[0].key)
    assert entry_id is not None
    entry = run(lambda: Cas(store).get_entry(*entry_id))
    assert entry is not None
    ref = entry.blobs["archive"]
    servers.raw_put(server, f"{prefix}/{layout.blob_key(ref.digest)}", b"\x1f\x8b" + b"\0" * (ref.size - 2))

    b = Agent(tmp_path / "b", index.url)
    pulled = _pull(server, prefix, b, Wanted.from_key_files(keyfiles.read(["uv.lock"], project)))
    assert pulled.entries_installed == 7
    assert any("do not match its sha256" in w for w in pulled.warnings), pulled.warnings
    assert pulled.missing == ["demo-zeta: no entry on the remote"]
    assert not list(b.cache.glob("wheels-v7/*/*/demo-zeta/*"))
    assert not [p for p in b.cache.rglob("*") if p.name.startswith(".tmp")]
    assert verify.check(UvTool(), b.cache).ok
    assert not run(lambda: ops.verify(Cas(store))).ok


def test_two_agents_pushing_the_same_packages_leave_one_entry_and_one_blob_each(
        server: Server, prefix: str, tmp_path: Path, index: IndexServer) -> None:
    a, a2 = Agent(tmp_path / "a", index.url), Agent(tmp_path / "a2", index.url)
    for agent in (a, a2):
        assert agent.install(*WANTED).returncode == 0
    archives = {p.name for p in (a.cache / "archive-v0").iterdir()}
    assert archives.isdisjoint(p.name for p in (a2.cache / "archive-v0").iterdir())  # random ids
    store_a, store_a2 = _store(server, prefix), _store(server, prefix)

    async def both() -> tuple[PushReport, PushReport]:
        import asyncio

        return await asyncio.gather(
            push(store_a, UvRemote(a.env()), a.cache, None, Budget(120, what="push")),
            push(store_a2, UvRemote(a2.env()), a2.cache, None, Budget(120, what="push")))

    first, second = run(both)
    assert not first.warnings and not second.warnings
    assert first.entries_pushed + second.entries_pushed + first.entries_present + second.entries_present == 32
    status = _objects(server, prefix)
    assert sum(status.entries.values()) == 16
    assert status.blobs == 8  # one per distinct archive content, whoever published it
    assert run(lambda: ops.verify(Cas(store_a))).ok
    # A third push finds everything there.
    third = _push(server, prefix, a2)
    assert (third.entries_pushed, third.entries_present, third.blobs_pushed) == (0, 16, 0)
