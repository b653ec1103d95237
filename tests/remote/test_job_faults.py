"""The fleet tier's faults through real jobs: the endpoint down, a 5 s stall, a 403 on push, a corrupted
blob, kill -9 during a pull and during a push; and an untrusted job. Each time: the job's exit code is
its command's, the agent's cache passes `ci-cache verify`, nothing wrong is installed, and the remote
passes `ci-cache remote verify` (after kill -9 during a push, it only reports garbage, blobs no entry
names, which `ci-cache remote gc` reclaims once older than `remote.gc_grace`; a corrupted blob is a
problem until `remote verify --fix` deletes it, and the next push publishes it again).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ci_cache.remote import layout
from ci_cache.remote.budget import run
from ci_cache.remote.cas import Cas
from ci_cache.remote.obstore_store import open_store
from ci_cache_index import IndexServer, PackageSpec, build_index
from tests.remote import faults, servers
from tests.remote.fleet import UV, Agent, fleet_specs, install_job, remote_env, remote_warnings
from tests.remote.servers import Server

pytestmark = pytest.mark.integration

if UV is None:
    pytest.skip("uv not found next to sys.executable or on PATH", allow_module_level=True)

SMALL = ["fleet-p00", "fleet-p02", "fleet-src"]  # p00 needs p05; fleet-src (built from its sdist) needs p01
# Big enough that a pull or push behind a slow link takes seconds: random bytes do not compress.
BIG = [PackageSpec(f"big-p{i}", "1.0.0", files=2, size=100_000, ext=True) for i in range(6)]
BIG_NAMES = [s.project for s in BIG]
SLOW_LINK = 250_000  # bytes per second, both ways together


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root = build_index(tmp_path_factory.mktemp("faults-index"), [*fleet_specs(), *BIG])
    with IndexServer(root) as srv:
        yield srv


def _cas(server: Server, prefix: str) -> Cas:
    return Cas(open_store(servers.settings_for(server, prefix), servers.env_for(server), request_timeout=30))


def _objects(server: Server, prefix: str) -> list[str]:
    cas = _cas(server, prefix)
    return sorted(m.key for m in run(lambda: cas.store.list("")))


def _fill(server: Server, prefix: str, tmp: Path, index: IndexServer, names: list[str]) -> None:
    """A trusted agent installs `names` and pushes them."""
    agent = Agent(tmp / "filler", index.url, remote_env(server, prefix, "publish"))
    job = install_job(agent, names)
    assert job.proc.returncode == 0 and not remote_warnings(job), job.describe()
    assert job.pushed["entries_pushed"] > 0


def _assert_sound(agent: Agent, server: Server, prefix: str) -> None:
    """The agent's cache passes `ci-cache verify`; the remote passes `ci-cache remote verify`."""
    checked = agent.cli("verify")
    assert checked.returncode == 0, checked.stderr
    verified = agent.cli("remote", "verify", env=remote_env(server, prefix))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _push_again_then_install_offline(agent: Agent, server: Server, prefix: str, index: IndexServer,
                                     names: list[str]) -> None:
    """`ci-cache remote push` from `agent`; then a new, empty agent installs `names` --offline from the remote."""
    pushed = agent.cli("remote", "push", env=remote_env(server, prefix, "publish"))
    assert pushed.returncode == 0, pushed.stderr
    fresh = Agent(agent.folder.parent / f"{agent.folder.name}-fresh", index.url, remote_env(server, prefix, "read"))
    index.clear_requests()
    job = install_job(fresh, names, offline=True)
    assert job.proc.returncode == 0 and not remote_warnings(job), job.describe()
    assert index.requests == []
    _assert_sound(fresh, server, prefix)


def test_the_endpoint_down(seaweedfs: Server, prefix: str, tmp_path: Path, index: IndexServer) -> None:
    env = remote_env(seaweedfs, prefix, endpoint=f"http://127.0.0.1:{faults.closed_port()}")
    agent = Agent(tmp_path / "a", index.url, env)
    job = install_job(agent, SMALL, then="exit 3")
    assert job.proc.returncode == 3, job.describe()
    warnings = remote_warnings(job)
    assert any("unreachable" in w and "Connection refused" in w for w in warnings), warnings
    assert job.summary["phases"]["pull"] < 5 and job.summary["phases"]["push"] < 5
    assert agent.cli("verify").returncode == 0


def test_a_five_second_stall_is_cut_by_the_budget_or_waited_out(seaweedfs: Server, prefix: str, tmp_path: Path,
                                                                index: IndexServer) -> None:
    _fill(seaweedfs, prefix, tmp_path, index, SMALL)
    port = int(seaweedfs.endpoint.rsplit(":", 1)[1])
    with faults.Proxy(port, stall=5) as stalled:
        short = remote_env(seaweedfs, prefix, endpoint=stalled.endpoint, pull_budget="2s", push_budget="2s")
        agent = Agent(tmp_path / "a", index.url, short)
        job = install_job(agent, [*SMALL, "fleet-p07"])
        assert job.proc.returncode == 0, job.describe()
        warnings = remote_warnings(job)
        assert any("remote pull" in w and "2 s budget" in w for w in warnings), warnings
        assert any("remote push" in w and "2 s budget" in w for w in warnings), warnings
        assert job.summary["phases"]["pull"] < 4 and job.summary["phases"]["push"] < 4
        _assert_sound(agent, seaweedfs, prefix)

        patient = Agent(tmp_path / "b", index.url, remote_env(seaweedfs, prefix, endpoint=stalled.endpoint))
        index.clear_requests()
        waited = install_job(patient, SMALL, offline=True)
        assert waited.proc.returncode == 0 and not remote_warnings(waited), waited.describe()
        assert waited.pulled["missing"] == [] and index.requests == []
        assert waited.summary["phases"]["pull"] >= 5
    _assert_sound(patient, seaweedfs, prefix)


@pytest.mark.parametrize(("fault", "says"), [("503", "server"), ("truncate", "remote get")])
def test_a_5xx_or_a_truncated_download_installs_nothing_wrong(seaweedfs: Server, prefix: str, tmp_path: Path,
                                                              index: IndexServer, *, fault: str, says: str) -> None:
    _fill(seaweedfs, prefix, tmp_path, index, SMALL)
    port = int(seaweedfs.endpoint.rsplit(":", 1)[1])
    with faults.Proxy(port, blob_fault=fault) as faulty:
        agent = Agent(tmp_path / "a", index.url, remote_env(seaweedfs, prefix, "publish", endpoint=faulty.endpoint))
        job = install_job(agent, SMALL, then="exit 4")  # the wheels come from the index instead
        assert faulty.faults > 0
    assert job.proc.returncode == 4, job.describe()
    warnings = remote_warnings(job)
    assert len(warnings) == 1 and says in warnings[0], warnings
    assert job.pulled["entries_installed"] == 3  # the index listings, which are inside their entries
    assert job.pulled["blobs"] == 0
    assert job.pushed["entries_present"] > 0 and job.pushed["bytes"] == 0  # nothing sent that the fleet has
    _assert_sound(agent, seaweedfs, prefix)


def test_a_403_on_push_with_read_only_credentials(seaweedfs: Server, prefix: str, tmp_path: Path,
                                                  index: IndexServer) -> None:
    _fill(seaweedfs, prefix, tmp_path, index, SMALL)
    before = _objects(seaweedfs, prefix)
    agent = Agent(tmp_path / "a", index.url, remote_env(seaweedfs, prefix, "read"))
    job = install_job(agent, [*SMALL, "fleet-p09"], then="exit 5")
    assert job.proc.returncode == 5, job.describe()
    assert job.pulled["entries_installed"] > 0
    warnings = remote_warnings(job)
    assert len(warnings) == 1 and "forbidden" in warnings[0] and "AWS_ACCESS_KEY_ID" in warnings[0], warnings
    assert _objects(seaweedfs, prefix) == before  # not even a used mark
    _assert_sound(agent, seaweedfs, prefix)


def test_a_corrupted_blob_is_never_installed_and_verify_fix_lets_it_be_published_again(
        seaweedfs: Server, prefix: str, tmp_path: Path, index: IndexServer) -> None:
    _fill(seaweedfs, prefix, tmp_path, index, SMALL)
    cas = _cas(seaweedfs, prefix)
    [meta] = run(lambda: cas.store.list(f"{layout.ENTRIES}uv-wheels-v7-archive-v0/fleet-p02/"))
    entry_id = layout.parse_entry_key(meta.key)
    assert entry_id is not None
    entry = run(lambda: cas.get_entry(*entry_id))
    assert entry is not None
    ref = entry.blobs["archive"]
    servers.raw_put(seaweedfs, f"{prefix}/{layout.blob_key(ref.digest)}", os.urandom(ref.size))

    agent = Agent(tmp_path / "a", index.url, remote_env(seaweedfs, prefix, "read"))
    job = install_job(agent, SMALL)  # imports fleet_p02: what it installed is the index's, and whole
    assert job.proc.returncode == 0, job.describe()
    assert any("do not match its sha256" in w for w in remote_warnings(job))
    assert agent.cli("verify").returncode == 0
    admin = remote_env(seaweedfs, prefix)
    verified = agent.cli("remote", "verify", env=admin)
    assert verified.returncode == 5 and ref.digest in verified.stdout, verified.stdout
    fixed = agent.cli("remote", "verify", "--fix", env=admin)
    assert fixed.returncode == 0 and "deleted" in fixed.stdout, fixed.stdout + fixed.stderr
    assert agent.cli("remote", "verify", env=admin).returncode == 0

    # The next push of the same content publishes it again, and a new agent gets it whole.
    _push_again_then_install_offline(agent, seaweedfs, prefix, index, SMALL)


def _wait_for(check: Callable[[], bool], proc: subprocess.Popen[str], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"the job ended before any {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.02)


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _killed_midway(server: Server, prefix: str, agent_dir: Path, index: IndexServer, *, identity: str,
                   pushing: bool) -> Agent:
    """An agent whose job, behind a slow link, is killed -9 once its blobs are half way down (or up)."""
    port = int(server.endpoint.rsplit(":", 1)[1])
    with faults.Proxy(port, bandwidth=SLOW_LINK) as slow:
        agent = Agent(agent_dir, index.url, remote_env(server, prefix, identity, endpoint=slow.endpoint))
        proc, _work = agent.start_install(BIG_NAMES)
        moved = (lambda: slow.upstream_bytes > 500_000) if pushing else (lambda: slow.downstream_bytes > 300_000)
        _wait_for(moved, proc, "blob upload" if pushing else "blob download")
        _kill(proc)
    return agent


def test_kill_9_during_a_pull(seaweedfs: Server, prefix: str, tmp_path: Path, index: IndexServer) -> None:
    _fill(seaweedfs, prefix, tmp_path, index, BIG_NAMES)
    agent = _killed_midway(seaweedfs, prefix, tmp_path / "a", index, identity="read", pushing=False)
    _assert_sound(agent, seaweedfs, prefix)
    # The dead job's dir is reclaimed; the next job pulls again and installs offline what it needs.
    assert agent.cli("gc", "--grace=0").returncode == 0
    index.clear_requests()
    job = install_job(agent, BIG_NAMES, offline=True, env=remote_env(seaweedfs, prefix, "read"))
    assert job.proc.returncode == 0 and not remote_warnings(job), job.describe()
    assert index.requests == []
    _assert_sound(agent, seaweedfs, prefix)


def test_kill_9_during_a_push_leaves_only_garbage_that_gc_reclaims(seaweedfs: Server, prefix: str, tmp_path: Path,
                                                                   index: IndexServer) -> None:
    agent = _killed_midway(seaweedfs, prefix, tmp_path / "a", index, identity="publish", pushing=True)
    assert agent.cli("verify").returncode == 0
    admin = remote_env(seaweedfs, prefix)
    # Entries go up after their blobs, each a single PUT: the remote holds whole entries, and perhaps blobs
    # whose entry never came (garbage: verify counts them and passes).
    verified = agent.cli("remote", "verify", env=admin)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    collected = agent.cli("remote", "gc", env={**admin, "CI_CACHE_REMOTE_GC_GRACE": "0s"})
    assert collected.returncode == 0, collected.stderr
    after = agent.cli("remote", "verify", "--json", env=admin)
    assert after.returncode == 0 and '"unreferenced_blobs": 0' in after.stdout, after.stdout

    # What the killed job could not publish, the next push does; an empty agent then installs offline.
    _push_again_then_install_offline(agent, seaweedfs, prefix, index, BIG_NAMES)


def test_an_untrusted_job_pulls_and_never_writes_to_the_remote(seaweedfs: Server, prefix: str, tmp_path: Path,
                                                               index: IndexServer) -> None:
    _fill(seaweedfs, prefix, tmp_path, index, SMALL)
    before = _objects(seaweedfs, prefix)
    # A GitLab job on an unprotected ref, with `merge: protected`, holding the publish credential all the same.
    agent = Agent(tmp_path / "fork", index.url, remote_env(seaweedfs, prefix, "publish"), mode="direct")
    untrusted = {"GITLAB_CI": "true", "CI_SERVER_HOST": "gitlab.example", "CI_PROJECT_ID": "7", "CI_JOB_ID": "901",
                 "CI_PROJECT_DIR": str(agent.next_workspace), "CI_COMMIT_REF_NAME": "fork-patch",
                 "CI_COMMIT_REF_PROTECTED": "false", "CI_CACHE_MERGE": "protected"}
    job = install_job(agent, [*SMALL, "fleet-p11"], env=untrusted)
    assert job.proc.returncode == 0, job.describe()
    assert job.summary["mode"] == "isolated"  # not direct: it must not write the agent's shared cache either
    assert job.pulled["entries_installed"] > 0
    assert "untrusted" in job.summary["remote"]["push_decision"] and "push" not in job.summary["remote"]
    assert _objects(seaweedfs, prefix) == before  # no entry, no blob, not even a used mark
    assert agent.cli("verify").returncode == 0
