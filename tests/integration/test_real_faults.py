"""Real faults on a real mount: the ci-cache root on a small tmpfs, filled up, or remounted read-only mid-job.

With real uv against the local index, the disk fills up during seeding, during a merge, while writing
the job's record and while creating its lease; a root becomes read-only while a job runs. Each time the
job's exit code is its command's, `ci-cache verify` passes, the shared cache still installs --offline
what it held, and the warning names the full disk (or the read-only one) and what to do. Once there is
space again, the next job works normally, with nothing left to clean by hand.

Needs root and a working `mount -t tmpfs` (skipped, saying why, elsewhere). A mount never outlives its
test: the fixture unmounts it (lazily, if it is busy), and mounts left by a killed earlier run are
unmounted first. Nothing is ever written to fill a disk but inside the mount, whose size is checked.
"""

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

from ci_cache import fsops, verify
from ci_cache.tools.uv import UvTool
from ci_cache_index import IndexServer, build_index, demo_specs
from tests.integration.uvjobs import UV, Lab, offline_install, tree_digest

pytestmark = [pytest.mark.integration, pytest.mark.skipif(UV is None, reason="uv not installed (scripts/test)")]

MOUNT_SIZE = 20 * 2**20
MOUNT_INODES = 4000
MOUNT_MARK = "ci-cache-faults-mnt"  # in every mount point's name, so a leftover is recognisably ours
WARM = ["demo-gamma"]  # and its dependencies: delta, epsilon, zeta
NEW = ["demo-alpha"]  # alpha brings beta, and needs gamma (warm)
FULL_WORDS = ("is full", "ci-cache prune --max-size", "bigger disk")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root = build_index(tmp_path_factory.mktemp("index"), demo_specs())
    with IndexServer(root) as srv:
        yield srv


def _unmount(mount: Path) -> None:
    if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)  # busy: detach it now


def _leftover_mounts() -> list[Path]:
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        points = [line.split()[1] for line in fh]
    return [Path(p.replace("\\040", " ")) for p in points if MOUNT_MARK in p]


def _mount_problem(tmp_path: Path) -> str | None:
    """Why a tmpfs cannot be mounted here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "tmpfs mounts are a Linux test"
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    trial = tmp_path / f"{MOUNT_MARK}-trial"
    trial.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(trial)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        return f"`mount -t tmpfs` is not permitted here: {proc.stderr.strip() or proc.returncode}"
    _unmount(trial)
    return None


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    """A fresh 20 MiB tmpfs, unmounted after the test whatever happens."""
    for leftover in _leftover_mounts():
        _unmount(leftover)
    problem = _mount_problem(tmp_path)
    if problem:
        pytest.skip(problem)
    point = tmp_path / MOUNT_MARK
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={MOUNT_SIZE},nr_inodes={MOUNT_INODES},mode=0755", "tmpfs",
                    str(point)], check=True, capture_output=True)
    try:
        yield point
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(point)], capture_output=True, check=False)
        _unmount(point)
        assert not os.path.ismount(point)


def _check_is_our_mount(point: Path) -> None:
    """Refuse to fill anything but a small mount of ours: never the real disk."""
    st = os.statvfs(point)
    assert os.path.ismount(point) and MOUNT_MARK in str(point), point
    assert st.f_blocks * st.f_frsize <= MOUNT_SIZE, f"{point} is not the small tmpfs this test mounted"


FILLER = r"""
import os, sys
point, leave, inodes = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "inodes"
st = os.statvfs(point)
assert os.path.ismount(point) and st.f_blocks * st.f_frsize <= {limit}, point
fd = os.open(os.path.join(point, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
chunk = b"\0" * 65536
while True:
    st = os.statvfs(point)
    room = st.f_bavail * st.f_frsize - leave
    if room <= 0:
        break
    try:
        os.write(fd, chunk[:min(len(chunk), room)])
    except OSError:
        break
os.fsync(fd)
os.close(fd)
if inodes:
    folder = os.path.join(point, "inodes")
    os.makedirs(folder, exist_ok=True)
    n = 0
    while True:
        try:
            os.close(os.open(os.path.join(folder, str(n)), os.O_WRONLY | os.O_CREAT))
        except OSError:
            break
        n += 1
""".replace("{limit}", str(MOUNT_SIZE))


def fill(point: Path, *, leave: int = 0, inodes: bool = False) -> None:
    """Fill the mount until `leave` bytes are free (and, with `inodes`, until no file can be created), once
    the detached deletes of earlier jobs' dirs are done: what they free later would unfill it."""
    _check_is_our_mount(point)
    _settle(point)
    subprocess.run([sys.executable, "-c", FILLER, str(point), str(leave), "inodes" if inodes else "blocks"],
                   check=True)


def _settle(point: Path, *, timeout: float = 20.0) -> None:
    """Wait until no detached delete is at work in the root (no trash left in its jobs dir)."""
    deadline = time.monotonic() + timeout
    jobs = point / "root" / "jobs"
    while time.monotonic() < deadline and jobs.is_dir() and any(
            n.startswith(fsops.TEMP_PREFIX) for n in os.listdir(jobs)):
        time.sleep(0.1)


def free_space(point: Path) -> None:
    _check_is_our_mount(point)
    (point / "filler").unlink(missing_ok=True)
    inodes = point / "inodes"
    if inodes.is_dir():
        for name in os.listdir(inodes):
            os.unlink(inodes / name)
        inodes.rmdir()


def fill_command(point: Path) -> list[str]:
    """A command that fills the mount (run at the end of a job's own command)."""
    return [sys.executable, "-c", FILLER, str(point), "0", "blocks"]


@pytest.fixture
def lab(tmp_path: Path, server: IndexServer, mount: Path) -> Lab:
    return Lab(tmp_path, server.url, root_at=mount / "root")


def _warm(lab: Lab) -> dict[str, str]:
    """A shared cache holding WARM; returns its digest (lock files aside)."""
    proc = lab.cli("run", "--job", "warm", "--mode", "isolated", "--", *lab.install_cmd(lab.venv("warm"), WARM))
    assert proc.returncode == 0, proc.stderr
    return _digest(lab)


def _digest(lab: Lab) -> dict[str, str]:
    return {k: v for k, v in tree_digest(lab.shared_uv).items() if not k.endswith(".lock")}


def _assert_shared_cache_intact(lab: Lab, packages: list[str]) -> None:
    report = verify.check(UvTool(), lab.shared_uv)
    assert report.ok, verify.render(report)
    cli_verify = lab.cli("verify")
    assert cli_verify.returncode == 0, cli_verify.stderr
    # uv writes to a cache it installs from, and the disk may be full (or read-only): install from a copy.
    copy = lab.tmp / f"shared-copy-{len(list(lab.tmp.glob('shared-copy-*')))}"
    shutil.copytree(lab.shared_uv, copy, symlinks=True, ignore=shutil.ignore_patterns("*.lock"))
    offline = offline_install(lab, packages, copy)
    assert offline.returncode == 0, offline.stdout + offline.stderr


def _assert_full_disk_named(lab: Lab, text: str) -> None:
    assert f"the disk holding the ci-cache root {lab.root} is full" in text, text
    for words in FULL_WORDS:
        assert words in text, (words, text)


def _assert_nothing_left_to_clean(lab: Lab) -> None:
    """No job, lease, record, trash or temp file under the root once the next jobs have come and gone."""
    _wait_for_background_deletes(lab)
    status = json.loads(lab.cli("status", "--json").stdout)
    assert status["live_jobs"] == [] and status["stale_jobs"] == [], status
    assert sorted(os.listdir(lab.root / "jobs")) == []
    report = verify.check(UvTool(), lab.shared_uv, grace=0)
    assert [f for f in report.findings if f.kind == "garbage"] == [], verify.render(report)


def _wait_for_background_deletes(lab: Lab, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and os.listdir(lab.root / "jobs"):
        time.sleep(0.1)


def _next_job_works(lab: Lab, mount: Path, name: str) -> None:
    """After space is freed: a job installs NEW, merges it, and leaves nothing behind."""
    proc = lab.cli("run", "--job", name, "--mode", "isolated", "--summary-json", str(lab.tmp / f"{name}.json"), "--",
                   *lab.install_cmd(lab.venv(name), NEW))
    assert proc.returncode == 0, proc.stderr
    assert "ci-cache: warning" not in proc.stderr, proc.stderr
    summary = json.loads((lab.tmp / f"{name}.json").read_text())
    assert summary["merged"]["uv"]["entries"] >= 1, summary
    _assert_shared_cache_intact(lab, [*WARM, *NEW])
    _assert_nothing_left_to_clean(lab)


# ---------------------------------------------------------------------------------------------------------


def test_disk_full_during_seeding(lab: Lab, mount: Path) -> None:
    before = _warm(lab)
    # A copied seed needs about the shared cache's size again; leave less than that, but room for the record.
    fill(mount, leave=64 * 1024)
    env = lab.env(CI_CACHE_SEED="copy")
    code = "import os, sys; print(sorted(os.listdir(os.environ['UV_CACHE_DIR']))); sys.exit(7)"
    proc = lab.cli("run", "--job", "seeding", "--mode", "isolated", "--", sys.executable, "-c", code, env=env)
    assert proc.returncode == 7, proc.stderr
    assert "seeding the uv cache failed: " in proc.stderr and "the job starts with an empty cache" in proc.stderr
    _assert_full_disk_named(lab, proc.stderr)
    assert proc.stdout.strip() == "[]"  # cold, never half a cache
    assert _digest(lab) == before
    _assert_shared_cache_intact(lab, WARM)
    free_space(mount)
    _next_job_works(lab, mount, "after-seeding")


def test_disk_full_during_a_merge(lab: Lab, mount: Path) -> None:
    before = _warm(lab)
    # The job installs NEW into its cache, then the disk fills up (the command's last act); then finish merges.
    script = f"{shlex.join(lab.install_cmd(lab.venv('merging'), NEW))} && {shlex.join(fill_command(mount))} && exit 3"
    proc = lab.cli("run", "--job", "merging", "--mode", "isolated", "--", "sh", "-c", script)
    assert proc.returncode == 3, proc.stderr  # the command's own exit code
    assert "merging the uv cache failed: " in proc.stderr and "the job's result is unaffected" in proc.stderr
    _assert_full_disk_named(lab, proc.stderr)
    # Whole entries or nothing: what was there before is there, untouched.
    after = _digest(lab)
    assert {k: v for k, v in after.items() if k in before} == before
    _assert_shared_cache_intact(lab, WARM)
    free_space(mount)
    _next_job_works(lab, mount, "after-merging")


@pytest.mark.parametrize("how", ["run", "setup"])
def test_disk_full_while_writing_the_job_record(lab: Lab, mount: Path, how: str) -> None:
    before = _warm(lab)
    fill(mount)  # not a byte left; files can still be created (the lease), but not written (the record)
    # The record is setup's last write: a job whose seed writes no byte (a temp dir only) meets the full disk
    # first there. (A uv seed would first fail, or free room: a refresh of a pooled cache drops files.)
    proc = _a_job_that_exits_5(lab, how, "record", CI_CACHE_TOOLS="temp")
    assert "could not write the job's record" in proc.stderr and "the job runs without ci-cache" in proc.stderr
    _assert_full_disk_named(lab, proc.stderr)
    assert proc.stderr.count("warning:") == 1, proc.stderr
    assert _digest(lab) == before
    _assert_shared_cache_intact(lab, WARM)
    free_space(mount)
    _next_job_works(lab, mount, f"after-record-{how}")


@pytest.mark.parametrize("how", ["run", "setup"])
def test_disk_full_while_creating_the_lease(lab: Lab, mount: Path, how: str) -> None:
    before = _warm(lab)
    fill(mount, inodes=True)  # no file can be created at all: the lease is the job's first new file
    proc = _a_job_that_exits_5(lab, how, "lease")
    lease_words = "could not take the lease" if how == "run" else "could not start the lease holder"
    assert lease_words in proc.stderr and "the job runs without ci-cache" in proc.stderr
    _assert_full_disk_named(lab, proc.stderr)
    assert "no free inodes" in proc.stderr
    assert _digest(lab) == before
    _assert_shared_cache_intact(lab, WARM)
    free_space(mount)
    _next_job_works(lab, mount, f"after-lease-{how}")


def _a_job_that_exits_5(lab: Lab, how: str, name: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """`run -- CMD`, or setup / CMD / finish as the wrappers do; CMD exits 5, which is the job's exit code."""
    code = "import sys; sys.exit(5)"
    if how == "run":
        proc = lab.cli("run", "--job", name, "--mode", "isolated", "--", sys.executable, "-c", code,
                       env=lab.env(**settings))
        assert proc.returncode == 5, proc.stderr
        return proc
    env = lab.env(CI_CACHE_JOB=name, **settings)
    setup = lab.cli("setup", "--mode", "isolated", "--format", "json", env=env)
    assert setup.returncode == 0, setup.stderr
    alloc = json.loads(setup.stdout)
    assert alloc["mode"] == "off"
    job = subprocess.run([sys.executable, "-c", code], env={**env, **alloc["env"]}, check=False)
    assert job.returncode == 5
    finish = lab.cli("finish", "--status", "failure", env={**env, **alloc["env"]})
    assert finish.returncode == 0 and "warning" not in finish.stderr, finish.stderr
    return setup


def test_a_root_that_becomes_read_only_mid_job(lab: Lab, mount: Path) -> None:
    before = _warm(lab)
    script = f"{shlex.join(lab.install_cmd(lab.venv('readonly'), NEW))} && mount -o remount,ro {mount} && exit 4"
    proc = lab.cli("run", "--job", "readonly", "--mode", "isolated", "--", "sh", "-c", script)
    assert proc.returncode == 4, proc.stderr
    assert "merging the uv cache failed: " in proc.stderr
    assert f"the ci-cache root {lab.root} is on a read-only file system" in proc.stderr
    assert "remount it read-write" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    # Read-only, the shared cache is still whole, and verify says so.
    assert verify.check(UvTool(), lab.shared_uv).ok
    assert _digest(lab) == before
    subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
    _assert_shared_cache_intact(lab, WARM)
    # What the read-only root kept the finish from deleting, gc reclaims: nobody deletes anything by hand.
    gc = lab.cli("gc", "--grace", "0s", "--json")
    assert gc.returncode == 0, gc.stderr
    _next_job_works(lab, mount, "after-readonly")
