"""The pool of warm job caches with real uv, real processes and kill -9 (`ci_cache.pool`, `tools/uv/warm.py`).

A job that reinstalls, prunes and cleans its cache gives it back to the pool; the next job that takes it
gets what a fresh seed would give (it installs everything offline from it), and the shared cache never
changes. A kill -9 at any moment of a refresh or a give-back leaves the shared cache valid and each cache
either in the pool, whole, or in a dead job's dir that gc reclaims.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_cache import pool, verify
from ci_cache.store import Store
from ci_cache.tools.base import SeedRequest
from ci_cache.tools.uv import UvTool
from ci_cache_index import IndexServer, PackageSpec, build_index, demo_specs
from tests.integration.uvjobs import UV, Lab, alloc_env, offline_install, tree_digest

pytestmark = [pytest.mark.integration, pytest.mark.skipif(UV is None, reason="uv not installed (scripts/test)")]

PACKAGES = ["demo-alpha", "demo-eta", "demo-theta", "demo-gamma", "extra-one"]
TRIALS = 50 if os.environ.get("CI_CACHE_SLOW") == "1" else 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    specs = [*demo_specs(), PackageSpec("extra-one", "1.0.0", files=20)]
    with IndexServer(build_index(tmp_path_factory.mktemp("index"), specs), simple_max_age=0) as srv:
        yield srv


def _warm(lab: Lab, name: str = "warm") -> None:
    proc = lab.start_job(name, PACKAGES, "--mode", "isolated")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out


def _entries(lab: Lab) -> list[pool.Entry]:
    return pool.entries(Store(lab.root), "uv")


def _fresh_seed_digest(lab: Lab, where: Path) -> dict[str, str]:
    UvTool().seed(SeedRequest(shared=lab.shared_uv, job=where / "uv", link=True, packages=None,
                              manifest=where / "uv.manifest.json"))
    return tree_digest(where / "uv")


def test_a_meddling_jobs_cache_comes_back_as_a_fresh_seed_and_the_shared_cache_never_changes(lab: Lab) -> None:
    _warm(lab)
    assert [e.tag for e in _entries(lab)] == [pool.FULL]
    before = tree_digest(lab.shared_uv)
    venv = lab.venv("meddler")
    script = (
        "set -e\n"
        f"{' '.join(lab.install_cmd(venv, PACKAGES, '--reinstall'))}\n"
        "uv cache prune --ci\n"
        "uv cache clean\n"
    )
    meddler = lab.cli("run", "--job", "meddler", "--mode", "isolated", "--merge", "never", "--summary-json",
                      str(lab.tmp / "meddler.json"), "--", "sh", "-c", script)
    assert meddler.returncode == 0, meddler.stderr
    summary = json.loads((lab.tmp / "meddler.json").read_text())
    assert summary["seeded"]["uv"]["warm"] and summary["pooled"] == ["uv"]
    changed = {k for k in before.keys() | tree_digest(lab.shared_uv).keys()
               if before.get(k) != tree_digest(lab.shared_uv).get(k) and not k.endswith(".lock")}
    assert changed == set()

    # The next job takes the cleaned cache from the pool: refreshed, it is what a fresh seed would be.
    env = lab.env(CI_CACHE_JOB="next")
    setup = lab.cli("setup", "--mode", "isolated", "--format", "json", env=env)
    assert setup.returncode == 0, setup.stderr
    alloc = json.loads(setup.stdout)
    cache = Path(alloc["env"]["UV_CACHE_DIR"])
    record = json.loads(Path(f"{alloc['job_dir']}.json").read_text())
    assert record["seeded"]["uv"]["warm"]
    assert tree_digest(cache) == _fresh_seed_digest(lab, lab.tmp / "fresh")
    offline = subprocess.run(lab.install_cmd(lab.venv("next"), PACKAGES, "--offline"), env=alloc_env(env, alloc),
                             capture_output=True, text=True, check=False)
    assert offline.returncode == 0, offline.stderr
    assert lab.cli("finish", env=env).returncode == 0
    after = tree_digest(lab.shared_uv)
    assert {k for k in before.keys() | after.keys() if before.get(k) != after.get(k) and not k.endswith(".lock")} \
        == set()


def test_kill_minus_nine_during_a_refresh_or_a_give_back(lab: Lab) -> None:
    _warm(lab)
    _warm(lab, "warm2")  # two caches in the pool
    command = [sys.executable, "-c", "pass"]
    # How long a whole warm job takes here, from its process's start to its end.
    started = time.monotonic()
    assert lab.cli("run", "--job", "calibrate", "--mode", "isolated", "--", *command).returncode == 0
    span = time.monotonic() - started
    rng = random.Random(4321)
    killed = 0
    for trial in range(TRIALS):
        job = subprocess.Popen([sys.executable, "-m", "ci_cache", "run", "--job", f"k{trial}", "--mode", "isolated",
                                "--", *command], env=lab.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        time.sleep(rng.uniform(0.1 * span, span))
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        killed += job.returncode == -signal.SIGKILL
        report = verify.check(UvTool(), lab.shared_uv)
        assert report.ok, verify.render(report)
        # Every cache left in the pool is whole: a job that takes it installs everything offline from it.
        for entry in _entries(lab):
            assert (entry.path / "archive-v0").is_dir(), entry.path
    assert killed >= 1, "no trial killed a running job: the calibration is off"
    gc = lab.cli("gc", "--grace", "0s", "--json")
    assert gc.returncode == 0, gc.stderr
    assert json.loads(lab.cli("status", "--json").stdout)["stale_jobs"] == []
    # The killed jobs' dirs are gone (warm caches in them included); what is left is being deleted in the background.
    assert [p.name for p in (lab.root / "jobs").iterdir() if not p.name.startswith(".tmp")] == []
    for trial in range(2):  # warm or fresh, whichever the pool gives: complete
        venv = lab.venv(f"after{trial}")
        proc = lab.cli("run", "--job", f"after{trial}", "--mode", "isolated", "--",
                       *lab.install_cmd(venv, PACKAGES, "--offline"))
        assert proc.returncode == 0, proc.stderr
    assert offline_install(lab, PACKAGES, lab.shared_uv).returncode == 0
