"""The fleet tier through real jobs: `ci-cache run` processes on several agents (roots), real uv against
the local index, one object store shared by all. The issue's acceptance: a fleet of 6 agents runs 3 waves
of concurrent jobs, each with its own mix of packages, with 0 failures; the remote ends with one blob per
distinct archive and passes `ci-cache remote verify`; a 7th, empty agent then installs `--offline` from what
it pulled, downloading nothing from the index. And the same round trip against Azurite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_cache.remote import ops
from ci_cache.remote.budget import run
from ci_cache.remote.cas import Cas
from ci_cache.remote.obstore_store import open_store
from ci_cache_index import IndexServer, build_index
from tests.remote import servers
from tests.remote.fleet import (
    NAMES,
    UV,
    Agent,
    JobRun,
    concurrently,
    fleet_specs,
    install_job,
    mixes,
    remote_env,
    remote_warnings,
)
from tests.remote.servers import Server

pytestmark = pytest.mark.integration

if UV is None:
    pytest.skip("uv not found next to sys.executable or on PATH", allow_module_level=True)

AGENTS = 6
WAVES = 3
MODES = ("isolated", "isolated", "shared", "shared", "direct", "direct")  # every mode that has a shared cache


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root = build_index(tmp_path_factory.mktemp("fleet-index"), fleet_specs())
    with IndexServer(root, access_log=root / "access.log") as srv:
        yield srv


def test_six_agents_three_waves_then_an_empty_agent_installs_offline(seaweedfs: Server, prefix: str,
                                                                     tmp_path: Path, index: IndexServer) -> None:
    env = remote_env(seaweedfs, prefix, "publish")
    agents = [Agent(tmp_path / f"agent{i}", index.url, env, mode=MODES[i]) for i in range(AGENTS)]
    plan = mixes(AGENTS * WAVES, 4)
    jobs: list[JobRun] = []
    for wave in range(WAVES):
        jobs += concurrently([(agent, plan[wave * AGENTS + i]) for i, agent in enumerate(agents)])
    failed = [j.describe() for j in jobs if j.proc.returncode != 0 or remote_warnings(j)]
    assert failed == [], "\n\n".join(failed)
    assert sum(j.pushed.get("entries_pushed", 0) for j in jobs) > 0
    assert sum(j.pulled.get("entries_installed", 0) for j in jobs[AGENTS:]) > 0  # later waves got from the remote

    verified = agents[0].cli("remote", "verify")
    assert verified.returncode == 0 and verified.stdout.rstrip().endswith("OK"), verified.stdout + verified.stderr
    for agent in agents:
        checked = agent.cli("verify")
        assert checked.returncode == 0, checked.stderr

    # One blob per distinct archive content: every agent made its own archives (random ids) of the same
    # wheels; the remote holds each content once.
    store = open_store(servers.settings_for(seaweedfs, prefix), servers.env_for(seaweedfs), request_timeout=30)
    cas = Cas(store)
    listing = ops.sort_listing(run(lambda: store.list("")))
    entries = [run(lambda i=entry_id: cas.get_entry(*i)) for entry_id in listing.entries]  # type: ignore[misc]
    wheels = {e.meta["filename"]: e.blobs["archive"].digest for e in entries if e is not None and e.blobs}
    assert len(set(wheels.values())) == len(wheels) == len(listing.blobs)
    archives = sum(len(list((a.shared_uv / "archive-v0").iterdir())) for a in agents)
    assert archives > len(listing.blobs)  # the same content under many random ids, one blob each

    # A 7th, empty agent: its job pulls what it names and installs everything with --offline.
    seventh = Agent(tmp_path / "agent7", index.url, remote_env(seaweedfs, prefix, "read"))
    index.clear_requests()
    log = Path(index.root) / "access.log"
    log.write_text("")
    job = install_job(seventh, NAMES, offline=True)
    assert job.proc.returncode == 0, job.describe()
    assert job.pulled["missing"] == [] and job.pulled["entries_installed"] >= len(NAMES), job.pulled
    assert index.file_downloads() == [] and index.requests == []
    assert not [line for line in log.read_text().splitlines() if line.startswith("/files/")]
    assert seventh.cli("verify").returncode == 0


def test_the_round_trip_through_azurite(azurite: Server, prefix: str, tmp_path: Path, index: IndexServer) -> None:
    env = remote_env(azurite, prefix)
    first = Agent(tmp_path / "a", index.url, env, mode="isolated")
    names = ["fleet-p00", "fleet-p04", "fleet-src"]
    job = install_job(first, names)
    assert job.proc.returncode == 0 and not remote_warnings(job), job.describe()
    assert job.pushed["entries_pushed"] > 0

    empty = Agent(tmp_path / "b", index.url, env, mode="direct")
    index.clear_requests()
    again = install_job(empty, names, offline=True)
    assert again.proc.returncode == 0, again.describe()
    assert again.pulled["missing"] == [] and again.pulled["entries_installed"] > 0
    assert index.requests == []
    assert empty.cli("verify").returncode == 0
    verified = empty.cli("remote", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    status = empty.cli("remote", "status", "--json")
    assert '"blobs": ' in status.stdout
