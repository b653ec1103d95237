"""kill -9 at random moments of a real merge, a full disk, a failing seed: the shared cache stays valid.

The default run does a few kill trials; CI_CACHE_SLOW=1 runs 50 (the acceptance figure).
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_cache import verify
from ci_cache.tools.uv import UvTool
from ci_cache_index import IndexServer, build_index, demo_specs, scale_specs
from tests.integration.uvjobs import UV, Lab, offline_install, tree_digest

pytestmark = [pytest.mark.integration, pytest.mark.skipif(UV is None, reason="uv not installed (scripts/test)")]

TRIALS = 50 if os.environ.get("CI_CACHE_SLOW") == "1" else 4
WARM = ["demo-alpha", "demo-eta", "demo-theta"]
NEW = [s.name for s in scale_specs(30, 25)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root = build_index(tmp_path_factory.mktemp("index"), [*demo_specs(), *scale_specs(30, 25)])
    with IndexServer(root) as srv:
        yield srv


def _warm_shared(lab: Lab) -> None:
    assert lab.start_job("warm", WARM, "--mode", "isolated").wait(timeout=600) == 0


def _template_job_cache(lab: Lab) -> Path:
    """A job cache holding the NEW packages, made once and copied into each trial's job."""
    env = lab.env(CI_CACHE_JOB="template")
    alloc = json.loads(lab.cli("setup", "--mode", "isolated", "--format", "json", env=env).stdout)
    venv = lab.venv("template")
    proc = subprocess.run(lab.install_cmd(venv, NEW), env={**env, **alloc["env"]}, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    template = lab.tmp / "template-cache"
    shutil.copytree(alloc["env"]["UV_CACHE_DIR"], template, symlinks=True)
    assert lab.cli("finish", "--merge", "never", env=env).returncode == 0
    return template


def _prepared_job(lab: Lab, name: str, template: Path) -> dict[str, str]:
    env = lab.env(CI_CACHE_JOB=name)
    setup = lab.cli("setup", "--mode", "isolated", "--format", "json", env=env)
    assert setup.returncode == 0, setup.stderr
    cache = Path(json.loads(setup.stdout)["env"]["UV_CACHE_DIR"])
    # Add what the seed did not bring: the NEW packages, as if the job had just installed them.
    for dirpath, dirs, files in os.walk(template):
        for entry in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            src = Path(dirpath, entry)
            dst = cache / src.relative_to(template)
            if not os.path.lexists(dst):
                dst.parent.mkdir(parents=True, exist_ok=True)
                if src.is_symlink():
                    os.symlink(os.readlink(src), dst)
                else:
                    shutil.copy2(src, dst)
    return env


def _assert_valid(lab: Lab, packages: list[str]) -> None:
    report = verify.check(UvTool(), lab.shared_uv)
    assert report.ok, verify.render(report)
    offline = offline_install(lab, packages, lab.shared_uv)
    assert offline.returncode == 0, offline.stdout + offline.stderr


def test_kill_minus_nine_during_merge_never_breaks_the_shared_cache(lab: Lab) -> None:
    _warm_shared(lab)
    template = _template_job_cache(lab)
    # Calibrate: how long does a whole finish that merges take here, from its process's start to its end?
    env = _prepared_job(lab, "calibrate", template)
    started = time.monotonic()
    assert subprocess.run([sys.executable, "-m", "ci_cache", "finish"], env=env, capture_output=True,
                          check=False).returncode == 0
    span = time.monotonic() - started
    assert lab.cli("verify", "--fix").returncode == 0  # the merge again in every trial
    rng = random.Random(1234)
    killed_mid_merge = 0
    for trial in range(TRIALS):
        env = _prepared_job(lab, f"crash{trial}", template)
        finish = subprocess.Popen([sys.executable, "-m", "ci_cache", "finish"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        # Anywhere in the finish; its first tenth is the interpreter starting, which kills nothing of ours.
        time.sleep(rng.uniform(0.1 * span, span))
        os.kill(finish.pid, signal.SIGKILL)
        finish.wait()
        killed_mid_merge += finish.returncode == -signal.SIGKILL
        # Whatever instant it died at, everything that was there before still installs offline.
        _assert_valid(lab, WARM)
        # The job is now stale; finishing it again completes the merge.
        again = lab.cli("finish", env=env)
        assert again.returncode == 0, again.stderr
        _assert_valid(lab, [*WARM, *NEW[:5]])
        # Reset the shared cache's new entries so the next trial merges them again, mid-way or not.
        reset = lab.cli("verify", "--fix")
        assert reset.returncode == 0, reset.stderr
    assert killed_mid_merge >= 1, "no trial killed a running finish: the calibration is off"


def test_gc_reclaims_a_killed_job_but_never_a_live_one(lab: Lab) -> None:
    live = lab.env(CI_CACHE_JOB="live")
    assert lab.cli("setup", "--mode", "isolated", "--format", "json", env=live).returncode == 0
    # A job killed -9 with its whole process group, as a CI runner kills a cancelled job.
    dead = subprocess.Popen([sys.executable, "-m", "ci_cache", "run", "--job", "dead", "--mode", "isolated", "--",
                             sys.executable, "-c", "import time; time.sleep(60)"], env=lab.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(json.loads(lab.cli("status", "--json").stdout)["live_jobs"]) < 2:
        time.sleep(0.1)
    assert len(json.loads(lab.cli("status", "--json").stdout)["live_jobs"]) == 2
    os.killpg(dead.pid, signal.SIGKILL)
    dead.wait()
    status = json.loads(lab.cli("status", "--json").stdout)
    assert [j["job"] for j in status["live_jobs"]] == ["live"]
    assert [j["job"] for j in status["stale_jobs"]] == ["dead"]
    # Within the grace period even a dead job's dir is kept.
    assert json.loads(lab.cli("gc", "--json").stdout)["reclaimed_jobs"] == []
    gc = lab.cli("gc", "--grace", "0s", "--json")
    assert gc.returncode == 0, gc.stderr
    report = json.loads(gc.stdout)
    assert len(report["reclaimed_jobs"]) == 1
    status = json.loads(lab.cli("status", "--json").stdout)
    assert [j["job"] for j in status["live_jobs"]] == ["live"] and status["stale_jobs"] == []
    assert lab.cli("finish", env=live).returncode == 0


def test_full_disk_during_merge_leaves_shared_cache_and_exit_code_alone(lab: Lab) -> None:
    _warm_shared(lab)
    before = tree_digest(lab.shared_uv)
    # Inject ENOSPC at the write layer of the merging process: every file copy into the cache fails.
    shim = lab.tmp / "enospc"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import errno, os, shutil\n"
        "from ci_cache import fsops\n"
        "def full(*a, **k):\n"
        "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "fsops.copy_file = full\n"
        "fsops.clone_tree = full\n"
    )
    venv = lab.venv("diskfull")
    env = lab.env()
    script = f"{' '.join(lab.install_cmd(venv, NEW[:3]))} && exit 5"
    wrapper = ("import os, subprocess, sys; os.environ['PYTHONPATH'] = ''; "
               f"sys.exit(subprocess.run(['sh', '-c', {script!r}]).returncode)")
    env_full = {**env, "PYTHONPATH": str(shim)}
    proc = lab.cli("run", "--job", "diskfull", "--mode", "isolated", "--", sys.executable, "-c", wrapper,
                   env=env_full)
    assert proc.returncode == 5  # the job's own exit code, untouched
    assert "merging the uv cache failed" in proc.stderr and os.strerror(errno.ENOSPC) in proc.stderr
    after = tree_digest(lab.shared_uv)
    assert {k: v for k, v in after.items() if not k.endswith(".lock")} == {
        k: v for k, v in before.items() if not k.endswith(".lock")}
    assert verify.check(UvTool(), lab.shared_uv).ok


def test_a_failed_seed_runs_the_job_cold_and_strict_makes_it_fatal(lab: Lab) -> None:
    _warm_shared(lab)
    shim = lab.tmp / "noseed"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import errno, os\n"
        "from ci_cache.tools.uv import seed\n"
        "def broken(self):\n"
        "    raise OSError(errno.EACCES, 'Permission denied', 'archive-v0')\n"
        "seed.Seeder.run = broken\n"
    )
    env = lab.env(PYTHONPATH=str(shim))
    code = "import os; print(os.listdir(os.environ['UV_CACHE_DIR']))"
    proc = lab.cli("run", "--job", "cold", "--mode", "isolated", "--", sys.executable, "-c", code, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "seeding the uv cache failed" in proc.stderr and "empty cache" in proc.stderr
    assert proc.stdout.strip() == "[]"
    strict = lab.cli("run", "--job", "cold2", "--mode", "isolated", "--strict", "--", sys.executable, "-c", code,
                     env=env)
    assert strict.returncode == 4
    assert "seeding the uv cache failed" in strict.stderr
