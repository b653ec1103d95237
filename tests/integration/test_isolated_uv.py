"""Isolated mode with real uv, real concurrent processes and a real local index."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_cache import jobdirs
from ci_cache.providers import job_key
from ci_cache.store import Store
from ci_cache_index import IndexServer, PackageSpec, build_index, demo_specs
from tests.integration.uvjobs import UV, Lab, offline_install, tree_digest, venv_python

pytestmark = [pytest.mark.integration, pytest.mark.skipif(UV is None, reason="uv not installed (scripts/test)")]

SETS = (
    ("demo-alpha",),
    ("demo-eta",),
    ("demo-alpha", "demo-theta"),
    ("demo-gamma", "demo-zeta", "demo-eta"),
    ("extra-one",),
    ("extra-two", "demo-beta"),
    ("demo-theta", "extra-one"),
    ("demo-delta", "extra-two"),
)
UNION = sorted({p for s in SETS for p in s})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    specs = [*demo_specs(), PackageSpec("extra-one", "1.0.0", files=20), PackageSpec("extra-two", "2.1.0")]
    # max-age 0: every warm install revalidates the index, so uv rewrites its .rkyv files in place.
    with IndexServer(build_index(tmp_path_factory.mktemp("index"), specs), simple_max_age=0) as srv:
        yield srv


def _wave(lab: Lab, prefix: str, *flags: str) -> list[tuple[str, int, str]]:
    procs = [(f"{prefix}{i}", lab.start_job(f"{prefix}{i}", SETS[i], "--mode", "isolated", *flags))
             for i in range(len(SETS))]
    results = []
    for name, proc in procs:
        out, _ = proc.communicate(timeout=600)
        results.append((name, proc.returncode, out))
    return results


def test_eight_concurrent_jobs_then_a_warm_wave_then_offline(lab: Lab, server: IndexServer) -> None:
    first = _wave(lab, "a")
    assert [(n, c) for n, c, _ in first] == [(n, 0) for n, _, _ in first], "\n".join(o for _, _, o in first)
    merged = sum(lab.summary(n)["merged"]["uv"]["entries"] for n, _, _ in first)
    assert merged >= len(UNION)  # every package reached the shared cache, sdist-built ones included

    # The shared cache alone serves every package, with no index: nothing is missing or dangling.
    offline = offline_install(lab, UNION, lab.shared_uv)
    assert offline.returncode == 0, offline.stdout + offline.stderr

    server.clear_requests()
    second = _wave(lab, "b")
    assert all(c == 0 for _, c, _ in second), "\n".join(o for _, _, o in second)
    downloads = server.file_downloads()
    assert downloads == [], f"a warm wave downloaded {downloads}"
    for name, _, _ in second:
        assert lab.summary(name)["seeded"]["uv"]["linked"] > 0


def test_a_job_cannot_change_the_shared_cache(lab: Lab) -> None:
    """Warm installs rewrite index files in place, and jobs run `uv cache clean`/`prune --ci`: none of
    that may reach the shared cache."""
    proc = lab.start_job("seed", UNION, "--mode", "isolated")
    assert proc.wait(timeout=600) == 0
    before = tree_digest(lab.shared_uv)
    venv = lab.venv("meddler")
    script = (
        "set -e\n"
        f"{' '.join(lab.install_cmd(venv, UNION, '--reinstall'))}\n"
        "uv cache prune --ci\n"
        "uv cache clean\n"
    )
    job = lab.cli("run", "--job", "meddler", "--mode", "isolated", "--merge", "never", "--", "sh", "-c", script)
    assert job.returncode == 0, job.stderr
    after = tree_digest(lab.shared_uv)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k) and not k.endswith(".lock")}
    assert changed == set()


def test_setup_and_finish_in_separate_processes(lab: Lab) -> None:
    env = lab.env(CI_CACHE_JOB="split-job")
    setup = lab.cli("setup", "--mode", "isolated", "--format", "json", env=env)
    assert setup.returncode == 0, setup.stderr
    alloc = json.loads(setup.stdout)
    job_dir = Path(alloc["job_dir"])
    assert Path(alloc["env"]["UV_CACHE_DIR"]).is_relative_to(job_dir)
    assert Path(alloc["env"]["TMPDIR"]).is_dir()
    status = json.loads(lab.cli("status", "--json", env=env).stdout)
    assert [j["key"] for j in status["live_jobs"]] == [alloc["job_key"]]

    install_env = {**env, **alloc["env"]}
    venv = lab.venv("split")
    step = subprocess.run(lab.install_cmd(venv, ["extra-one"]), env=install_env, capture_output=True, text=True,
                          check=False)
    assert step.returncode == 0, step.stderr

    finish = lab.cli("finish", "--status", "success", "--json", env=env)
    assert finish.returncode == 0, finish.stderr
    result = json.loads(finish.stdout)
    assert result["merged"]["uv"]["entries"] >= 1
    assert not job_dir.exists()
    # The dir was renamed away at once and is deleted in the background.
    deadline = time.monotonic() + 30
    while list((lab.root / "jobs").glob(".tmp*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list((lab.root / "jobs").glob(".tmp*")) == []
    status = json.loads(lab.cli("status", "--json", env=env).stdout)
    assert status["live_jobs"] == [] and status["stale_jobs"] == []
    assert offline_install(lab, ["extra-one"], lab.shared_uv).returncode == 0


def test_finish_without_setup_warns_and_succeeds(lab: Lab) -> None:
    proc = lab.cli("finish", "--job", "never-set-up")
    assert proc.returncode == 0
    assert "no allocation found" in proc.stderr
    strict = lab.cli("finish", "--job", "never-set-up", "--strict")
    assert strict.returncode == 7


def test_merge_success_policy_skips_failed_jobs(lab: Lab) -> None:
    venv = lab.venv("failing")
    script = f"{' '.join(lab.install_cmd(venv, ['extra-two']))} && exit 3"
    proc = lab.cli("run", "--job", "failing", "--mode", "isolated", "--merge", "success", "--", "sh", "-c", script)
    assert proc.returncode == 3
    assert not (lab.shared_uv / "archive-v0").exists() or not any((lab.shared_uv / "archive-v0").iterdir())


def test_exit_codes_pass_through(lab: Lab) -> None:
    for code in (0, 1, 7, 42):
        proc = lab.cli("run", "--job", f"exit{code}", "--mode", "isolated", "--",
                       sys.executable, "-c", f"raise SystemExit({code})")
        assert proc.returncode == code
    missing = lab.cli("run", "--job", "missing", "--", "no-such-command-xyz")
    assert missing.returncode == 127
    assert "command not found: no-such-command-xyz" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_job_env_points_at_private_dirs(lab: Lab) -> None:
    code = "import os,json; print(json.dumps({k: os.environ.get(k) for k in ('UV_CACHE_DIR','TMPDIR','TEMP')}))"
    proc = lab.cli("run", "--job", "envcheck", "--mode", "isolated", "--", sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    env = json.loads(proc.stdout)
    assert Path(env["UV_CACHE_DIR"]).is_relative_to(lab.root / "jobs")
    assert env["TMPDIR"] == env["TEMP"] and Path(env["TMPDIR"]).name == "tmp"


def test_untrusted_gitlab_job_leaves_shared_cache_identical(lab: Lab) -> None:
    assert lab.start_job("warm", ["demo-alpha"], "--mode", "isolated").wait(timeout=600) == 0
    before = tree_digest(lab.shared_uv)
    env = lab.env(GITLAB_CI="true", CI_JOB_ID="991", CI_PROJECT_ID="5", CI_COMMIT_REF_NAME="feature",
                  CI_COMMIT_REF_PROTECTED="false", CI_CACHE_MERGE="protected")
    venv = lab.venv("untrusted")
    proc = lab.cli("run", "--mode", "shared", "--", *lab.install_cmd(venv, ["extra-one", "demo-alpha"]), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "untrusted job" in proc.stderr
    after = tree_digest(lab.shared_uv)
    assert {k: v for k, v in after.items() if not k.endswith(".lock")} == {
        k: v for k, v in before.items() if not k.endswith(".lock")
    }
    assert venv_python(venv).exists()


def test_a_job_id_already_running_is_refused_and_a_dead_ones_leftovers_are_reclaimed(lab: Lab) -> None:
    env = lab.env(CI_CACHE_JOB="twice")
    assert lab.cli("setup", "--mode", "isolated", "--format", "json", env=env).returncode == 0
    again = lab.cli("run", "--mode", "isolated", "--", sys.executable, "-c", "pass", env=env)
    assert again.returncode == 6  # JobBusy: its own exit code (docs/cli.md)
    assert "already set up and still running" in again.stderr
    record = jobdirs.current_record(Store(lab.root), job_key("twice"))
    assert record is not None
    os.kill(record["holder_pid"], 9)  # the job dies without finish
    time.sleep(0.2)
    rerun = lab.cli("run", "--mode", "isolated", "--", sys.executable, "-c", "pass", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "reclaiming the dir of an earlier, dead run" in rerun.stderr


# Run by `python -c` in front of the CLI: counts what finish's own process deletes below the root's jobs dir.
_COUNT_DELETES = """
import os, sys
jobs = os.path.join(os.environ['CI_CACHE_ROOT'], 'jobs') + os.sep
deleted = []
def hook(event, args):
    if event in ('os.remove', 'os.rmdir', 'shutil.rmtree') and str(args[0]).startswith(jobs):
        deleted.append(str(args[0]))
sys.addaudithook(hook)
from ci_cache.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], 'w') as fh:
    fh.write('\\n'.join(deleted))
sys.exit(code)
"""


def test_a_warm_jobs_cleanup_deletes_nothing_inline(lab: Lab) -> None:
    """The job never waits for its dir's delete: finish renames it away and a detached `rm` deletes it.

    The bound that cannot flake is structural: finish's own process deletes no file of the job dir (an
    audit hook counts them), the dir is gone when finish returns, and the trash goes afterwards.
    """
    assert lab.start_job("cold", ["demo-alpha", "demo-theta", "extra-one"], "--mode", "isolated").wait(600) == 0
    env = lab.env(CI_CACHE_JOB="warm-cleanup")
    setup = lab.cli("setup", "--mode", "isolated", "--format", "json", env=env)
    assert setup.returncode == 0, setup.stderr
    alloc = json.loads(setup.stdout)
    job_dir = Path(alloc["job_dir"])
    venv = lab.venv("warm-cleanup")
    step = subprocess.run(lab.install_cmd(venv, ["demo-alpha", "extra-one"]), env={**env, **alloc["env"]},
                          capture_output=True, text=True, check=False)
    assert step.returncode == 0, step.stderr
    files = sum(len(names) for _, _, names in os.walk(job_dir))
    deleted_log = lab.tmp / "deleted.txt"
    finish = subprocess.run([sys.executable, "-c", _COUNT_DELETES, str(deleted_log), "finish", "--json"],
                            env=env, capture_output=True, text=True, check=False, timeout=300, cwd=lab.tmp)
    assert finish.returncode == 0, finish.stderr
    result = json.loads(finish.stdout)
    assert result["seeded"]["uv"]["files"] > 20 and files > 20  # a warm job: there was much to delete
    # Not one entry of the job dir deleted by finish itself: only the record and (after its release) the lease.
    key = alloc["job_key"]
    assert sorted(deleted_log.read_text().splitlines()) == [f"{job_dir}.json", str(lab.root / "jobs" / f"{key}.lease")]
    assert not job_dir.exists() and "cleanup" in result["phases"] and result["warnings"] == []
    deadline = time.monotonic() + 30
    while list((lab.root / "jobs").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list((lab.root / "jobs").iterdir()) == []  # the detached delete took it all, record and lease too


@pytest.mark.skipif(not shutil.which("bash") or not shutil.which("mktemp"), reason="needs bash and mktemp")
def test_after_finish_the_shell_has_its_temp_dirs_back(lab: Lab) -> None:
    """The README's setup/finish in one shell: after finish, mktemp works and TMPDIR is the shell's own again."""
    own_tmp = lab.tmp / "own-tmp"
    own_tmp.mkdir()
    cli = f"{shlex.quote(sys.executable)} -m ci_cache"
    script = (f'eval "$({cli} setup --mode isolated --format bash)" && echo "job: $TMPDIR" && mktemp >/dev/null && '
              f'eval "$({cli} finish --format bash)" && echo "after: $TMPDIR ${{UV_CACHE_DIR-unset}}" && mktemp')
    proc = subprocess.run(["bash", "-c", script], env=lab.env(CI_CACHE_JOB="shell-job", TMPDIR=str(own_tmp)),
                          capture_output=True, text=True, check=False, cwd=lab.tmp, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"job: {lab.root / 'jobs'}")
    assert lines[1] == f"after: {own_tmp} unset"
    assert Path(lines[2]).parent == own_tmp
