"""Upgrading an agent: a real root written by the last ci-cache without a layout version, with one of its
jobs still running, taken over by this ci-cache; and a root of a newer layout, refused.

The old ci-cache is the real one: its package, as committed before layouts were recorded, is taken from
this repository's history (skipped, saying why, where the history is not there) and run in its own
processes against the same root, with real uv and the local index.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_cache import __version__, rootlayout, verify
from ci_cache.store import Store
from ci_cache.tools.uv import UvTool
from ci_cache_index import IndexServer, build_index, demo_specs
from tests.integration.uvjobs import UV, Lab, offline_install

pytestmark = [pytest.mark.integration, pytest.mark.skipif(UV is None, reason="uv not installed (scripts/test)")]

REPO = Path(__file__).resolve().parents[2]
# The last commit whose ci-cache wrote roots without a layout version.
UNVERSIONED = "7f7f16d30142042085d5599efd65e60d8e12c5d5"
OLD_PACKAGES = ["demo-gamma"]
OLD_JOB_PACKAGES = ["demo-eta"]
NEW_PACKAGES = ["demo-alpha"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root = build_index(tmp_path_factory.mktemp("index"), demo_specs())
    with IndexServer(root) as srv:
        yield srv


@pytest.fixture(scope="module")
def old_ci_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unversioned ci-cache's package, from git history: a folder to put first on PYTHONPATH."""
    proc = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", UNVERSIONED, "ci_cache"],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"the unversioned ci-cache (commit {UNVERSIONED[:10]}) is not in this checkout's git history: "
                    f"{proc.stderr.decode(errors='replace').strip()[:200]}")
    target = tmp_path_factory.mktemp("old-ci-cache")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(target, filter="data")
    check = subprocess.run([sys.executable, "-c", "import ci_cache.cli, ci_cache; print(ci_cache.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True, text=True,
                           cwd=target, check=False)
    if check.returncode != 0:
        pytest.skip(f"the unversioned ci-cache does not import here: {check.stderr.strip()[-300:]}")
    assert check.stdout.strip().startswith(str(target)), check.stdout
    return target


def old(lab: Lab, old_ci_cache: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return lab.cli(*args, env=lab.env(PYTHONPATH=str(old_ci_cache), **extra))


def test_an_unversioned_root_with_a_job_still_running_is_migrated_in_place(lab: Lab, old_ci_cache: Path) -> None:
    # The old ci-cache warms the shared cache, and sets up a job that is still running at the upgrade.
    warm = old(lab, old_ci_cache, "run", "--job", "old-warm", "--mode", "isolated", "--",
               *lab.install_cmd(lab.venv("old-warm"), OLD_PACKAGES))
    assert warm.returncode == 0, warm.stderr
    setup = old(lab, old_ci_cache, "setup", "--mode", "isolated", "--format", "json", CI_CACHE_JOB="old-live")
    assert setup.returncode == 0, setup.stderr
    old_env = json.loads(setup.stdout)["env"]
    assert not (lab.root / "layout.json").exists()
    assert rootlayout.current(_store(lab)) == 0

    # The agent is upgraded: this ci-cache's first job migrates the root, and works on it.
    new = lab.cli("run", "--job", "new-1", "--mode", "isolated", "--", *lab.install_cmd(lab.venv("new-1"),
                                                                                        NEW_PACKAGES))
    assert new.returncode == 0, new.stderr
    assert "warning" not in new.stderr, new.stderr
    recorded = json.loads((lab.root / "layout.json").read_text())
    assert recorded["layout"] == rootlayout.LAYOUT and recorded["migrated_from"] == 0
    assert recorded["written_by"] == f"ci-cache {__version__}"

    # The old job goes on in its own cache, and its own (old) finish still merges it: layout 1 only added
    # the record, which the old ci-cache never looks at.
    installed = subprocess.run(lab.install_cmd(lab.venv("old-live"), OLD_JOB_PACKAGES),
                               env={**lab.env(), **old_env}, capture_output=True, text=True, check=False)
    assert installed.returncode == 0, installed.stderr
    finish = old(lab, old_ci_cache, "finish", "--json", **old_env)  # its env names the job and its token
    assert finish.returncode == 0, finish.stderr
    assert json.loads(finish.stdout)["merged"]["uv"]["entries"] >= 1

    # Everything any of them merged installs offline; the root is clean, with nothing to tidy by hand.
    report = verify.check(UvTool(), lab.shared_uv)
    assert report.ok, verify.render(report)
    every = [*OLD_PACKAGES, *OLD_JOB_PACKAGES, *NEW_PACKAGES]
    offline = offline_install(lab, every, lab.shared_uv)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    status = json.loads(lab.cli("status", "--json").stdout)
    assert status["live_jobs"] == [] and status["stale_jobs"] == []
    # The new ci-cache's setup/finish pair works on the migrated root too.
    env = lab.env(CI_CACHE_JOB="new-2")
    assert lab.cli("setup", "--mode", "isolated", "--format", "json", env=env).returncode == 0
    assert lab.cli("finish", env=env).returncode == 0
    assert json.loads((lab.root / "layout.json").read_text()) == recorded


def test_a_root_of_a_newer_layout_is_refused_and_the_job_still_runs(lab: Lab) -> None:
    assert lab.cli("run", "--job", "first", "--mode", "isolated", "--",
                   *lab.install_cmd(lab.venv("first"), OLD_PACKAGES)).returncode == 0
    newer = {"layout": rootlayout.LAYOUT + 1, "written_by": "ci-cache 9.0.0"}
    (lab.root / "layout.json").write_text(json.dumps(newer))
    before = sorted(p.name for p in lab.shared_uv.iterdir())
    code = "import sys; sys.exit(3)"
    proc = lab.cli("run", "--job", "refused", "--mode", "isolated", "--", sys.executable, "-c", code)
    assert proc.returncode == 3  # the command's own exit code
    assert (f"has layout {rootlayout.LAYOUT + 1}, written by ci-cache 9.0.0; this ci-cache {__version__} knows "
            f"layouts up to {rootlayout.LAYOUT} and will not write to it") in proc.stderr
    assert "upgrade ci-cache on this agent" in proc.stderr and "the job runs without ci-cache" in proc.stderr
    strict = lab.cli("setup", "--job", "strict", "--mode", "isolated", "--strict")
    assert strict.returncode == 4 and "written by ci-cache 9.0.0" in strict.stderr
    for command in (["gc"], ["prune", "--max-size", "1B"], ["verify", "--fix"]):
        refused = lab.cli(*command)
        assert refused.returncode == 4 and "will not write to it" in refused.stderr, (command, refused.stderr)
    # Nothing was written: no job, no change to the shared cache, the record as it was.
    assert sorted(p.name for p in lab.shared_uv.iterdir()) == before
    assert json.loads((lab.root / "layout.json").read_text()) == newer
    assert [p.name for p in (lab.root / "jobs").iterdir()] == []


def _store(lab: Lab) -> Store:
    return Store(lab.root)
