"""ci-cache's own Windows code paths, run by the lab's Windows Python under Wine.

Two Windows processes (tests/windows/winside/agent.py, driven step by step) meet on the same files:
one takes a lock, holds a file open the way Python's open() does (no FILE_SHARE_DELETE) or keeps a
.pyd loaded; the other runs ci_cache.osapi / ci_cache.fsops against it. Every ordering is made
explicit (the holder lets go only after the other side has failed once), so nothing depends on timing.
The CLI-level tests run `python.exe -m ci_cache` with uv.exe and cmd.exe.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_cache.providers import job_key
from ci_cache_index import IndexServer

from .winagent import Agent, ci_cache_argv, job_dir_of, record_of, run_to_exit
from .winlab import EnvValue, Lab, from_windows, to_windows

pytestmark = pytest.mark.windows

PRELUDE = ("import os, sys, time, threading; from pathlib import Path; "
           "from ci_cache import errors, fsops, lease, osapi")

# Counts fsops' backoff sleeps, and signals the first one: that is "the first attempt failed".
# `speed` scales the sleeps (1: real backoff; 0.01: the whole retry budget in a fraction of a second).
COUNT_SLEEPS = """
sleeps = []
first_wait = threading.Event()
def _counting_sleep(seconds):
    sleeps.append(seconds)
    first_wait.set()
    time.sleep(seconds * speed)
fsops._sleep = _counting_sleep
"""

# Run `code` in a thread of the agent, so that the test can act while it retries. Returns once the
# code has failed a first attempt (True), or has finished without any (False).
IN_BACKGROUND = """
outcome = {}
def _work():
    try:
        exec(code, globals())
        outcome["ok"] = True
    except BaseException as exc:
        outcome["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        first_wait.set()
worker = threading.Thread(target=_work)
worker.start()
first_wait.wait(120)
result = bool(sleeps)
"""
JOIN = "worker.join(300); result = {'outcome': outcome, 'sleeps': len(sleeps)}"

Spawn = Callable[[str], Agent]


@pytest.fixture
def spawn(wine_lab: Lab) -> Iterator[Spawn]:
    """Start named agents (Windows python.exe processes with ci_cache imported); all end with the test."""
    agents: list[Agent] = []

    def start(name: str) -> Agent:
        agent = Agent(wine_lab, name)
        agents.append(agent)
        agent.call(PRELUDE)
        return agent

    yield start
    for agent in agents:
        agent.close()


# ---------------------------------------------------------------------------------------------------
# Locks: LockFileEx between two Windows processes.


def test_exclusive_lock_keeps_another_process_out(spawn: Spawn, tmp_path: Path) -> None:
    a, b = spawn("a"), spawn("b")
    lock = tmp_path / "x.lock"
    assert a.call("held = osapi.try_lock(Path(p)); result = held is not None", p=lock)
    probe = ("result = {'exclusive': osapi.try_lock(Path(p)) is None, "
             "'shared': osapi.try_lock(Path(p), shared=True) is None, 'lease_held': lease.is_held(Path(p))}")
    assert b.call(probe, p=lock) == {"exclusive": True, "shared": True, "lease_held": True}
    a.call("held.release()")
    assert b.call("h = osapi.try_lock(Path(p)); result = h is not None\nif h: h.release()", p=lock)


def test_shared_locks_coexist_and_keep_an_exclusive_one_out(spawn: Spawn, tmp_path: Path) -> None:
    a, b, c = spawn("a"), spawn("b"), spawn("c")
    lock = tmp_path / "uv-cache" / ".lock"  # try_lock makes the folder, as for uv's root lock
    take_shared = "held = osapi.try_lock(Path(p), shared=True); result = held is not None"
    assert a.call(take_shared, p=lock)
    assert b.call(take_shared, p=lock)
    exclusive = "h = osapi.try_lock(Path(p)); result = h is not None\nif h: h.release()"
    assert c.call(exclusive, p=lock) is False
    a.call("held.release()")
    assert c.call(exclusive, p=lock) is False  # b still holds it shared
    b.call("held.release()")
    assert c.call(exclusive, p=lock) is True


def test_a_crashed_holder_releases_its_lock(spawn: Spawn, tmp_path: Path) -> None:
    """A job's lease is an OS lock: killing its process (no cleanup at all) must free it."""
    a, b = spawn("a"), spawn("b")
    lock = tmp_path / "job.lease"
    assert a.call("held = osapi.try_lock(Path(p)); result = held is not None", p=lock)
    assert b.call("result = lease.is_held(Path(p))", p=lock) is True
    a.kill()
    # The wineserver drops a dead process's handles as it notices the death: wait for that, boundedly.
    freed = b.call("deadline = time.monotonic() + 60\n"
                   "while lease.is_held(Path(p)) and time.monotonic() < deadline: time.sleep(0.05)\n"
                   "result = not lease.is_held(Path(p))", p=lock)
    assert freed is True


# ---------------------------------------------------------------------------------------------------
# fsops.replace over a file another process holds open.


def test_python_open_holds_files_without_delete_sharing(spawn: Spawn, tmp_path: Path) -> None:
    """The premise of the holders below, checked under Wine: open() blocks rename-over and delete."""
    target, new = tmp_path / "target.txt", tmp_path / "new.txt"
    target.write_text("old")
    new.write_text("new")
    holder, other = spawn("holder"), spawn("other")
    holder.call("fh = open(t, 'rb')", t=target)
    replaced = other.failure("os.replace(s, t)", s=new, t=target)
    deleted = other.failure("os.unlink(t)", t=target)
    assert (replaced.type, replaced.info["winerror"]) == ("PermissionError", 5), replaced.info
    assert (deleted.type, deleted.info["winerror"]) == ("PermissionError", 32), deleted.info
    assert target.read_text() == "old"


def test_replace_waits_for_a_process_that_lets_go_of_the_target(spawn: Spawn, tmp_path: Path) -> None:
    target, new = tmp_path / "target.txt", tmp_path / "new.txt"
    target.write_text("old")
    new.write_text("new")
    holder, writer = spawn("holder"), spawn("writer")
    holder.call("fh = open(t, 'rb')", t=target)
    writer.call(COUNT_SLEEPS, speed=1.0)
    code = f"fsops.replace(Path({to_windows(new)!r}), Path({to_windows(target)!r}))"
    assert writer.call(IN_BACKGROUND, code=code) is True, "replace never had to wait"
    holder.call("time.sleep(1.0); fh.close()")  # held about a second longer, then let go
    done = writer.call(JOIN)
    assert done["outcome"] == {"ok": True}
    assert done["sleeps"] >= 1
    assert target.read_text() == "new"
    assert not new.exists()


def test_replace_over_a_file_held_for_good_fails_clearly_and_loses_nothing(spawn: Spawn, tmp_path: Path) -> None:
    target, new = tmp_path / "target.txt", tmp_path / "new.txt"
    target.write_text("old")
    new.write_text("new")
    holder, writer = spawn("holder"), spawn("writer")
    holder.call("fh = open(t, 'rb')", t=target)
    writer.call(COUNT_SLEEPS, speed=0.01)
    failed = writer.failure("fsops.replace(Path(s), Path(t))", s=new, t=target)
    assert failed.type == "StoreError", failed
    assert "still locked by another process after 8 attempts" in failed.message
    assert to_windows(target) in failed.message
    assert "antivirus" in str(failed.info["hint"])
    assert failed.info["cause"]["winerror"] in (5, 32), failed.info
    assert writer.call("result = len(sleeps)") == 7
    assert (target.read_text(), new.read_text()) == ("old", "new")


# ---------------------------------------------------------------------------------------------------
# fsops.rmtree: read-only files, and a .pyd that another process has loaded.

MAKE_READ_ONLY_TREE = """
for i in range(n):
    folder = os.path.join(top, f"d{i % 4}", "sub")
    os.makedirs(folder, exist_ok=True)
    name = os.path.join(folder, f"f{i}.txt")
    with open(name, "w") as fh:
        fh.write("x")
    os.chmod(name, 0o444)
result = all(os.stat(os.path.join(top, "d0", "sub", "f0.txt")).st_file_attributes & 1 for _ in [0])
"""


def test_rmtree_removes_read_only_files(spawn: Spawn, tmp_path: Path) -> None:
    top = tmp_path / "tree"
    remover = spawn("remover")
    assert remover.call(MAKE_READ_ONLY_TREE, top=top, n=12) is True  # FILE_ATTRIBUTE_READONLY is set
    assert remover.failure("os.unlink(os.path.join(top, 'd0', 'sub', 'f0.txt'))", top=top).info["winerror"] == 5
    remover.call(COUNT_SLEEPS, speed=1.0)
    remover.call("fsops.rmtree(Path(top))", top=top)
    assert not top.exists()


def test_rmtree_of_read_only_files_does_not_back_off(spawn: Spawn, tmp_path: Path) -> None:
    """A read-only file is not held by anyone: clear the bit and delete it, no retry delay.

    Git checkouts (uv's git cache too) are full of read-only files; a backoff sleep for each one makes
    deleting a job dir take minutes.
    """
    top = tmp_path / "tree"
    remover = spawn("remover")
    remover.call(MAKE_READ_ONLY_TREE, top=top, n=12)
    remover.call(COUNT_SLEEPS, speed=0.01)
    remover.call("fsops.rmtree(Path(top))", top=top)
    assert not top.exists()
    assert remover.call("result = len(sleeps)") == 0, "fsops slept before deleting read-only files"


@pytest.fixture
def pyd_tree(wine_lab: Lab, tmp_path: Path) -> Path:
    """markupsafe's win_amd64 wheel unpacked: a package with a .pyd extension, in a tree to delete."""
    wheel = next(wine_lab.index_dir.glob("files/markupsafe-*-win_amd64.whl"))
    tree = tmp_path / "tree"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tree)
    return tree


LOAD_PYD = ("sys.path.insert(0, top); import markupsafe, markupsafe._speedups as speedups; "
            "result = speedups.__file__")


def test_rmtree_waits_for_a_process_that_lets_go_of_a_loaded_pyd(spawn: Spawn, pyd_tree: Path) -> None:
    holder, remover = spawn("holder"), spawn("remover")
    loaded = holder.call(LOAD_PYD, top=pyd_tree)
    assert loaded.endswith(".pyd")
    remover.call(COUNT_SLEEPS, speed=1.0)
    assert remover.call(IN_BACKGROUND, code=f"fsops.rmtree(Path({to_windows(pyd_tree)!r}))") is True
    holder.close()  # a loaded module is unmapped only when its process exits
    done = remover.call(JOIN)
    assert done["outcome"] == {"ok": True}
    assert not pyd_tree.exists()


def test_rmtree_of_a_pyd_loaded_for_good_fails_clearly(spawn: Spawn, pyd_tree: Path) -> None:
    holder, remover = spawn("holder"), spawn("remover")
    loaded = holder.call(LOAD_PYD, top=pyd_tree)
    remover.call(COUNT_SLEEPS, speed=0.01)
    failed = remover.failure("fsops.rmtree(Path(top))", top=pyd_tree)
    assert failed.type == "StoreError", failed
    assert loaded in failed.message and "still locked by another process" in failed.message
    assert "antivirus" in str(failed.info["hint"])
    # The process that loaded it is unharmed.
    assert holder.call("result = str(markupsafe.escape('<&>'))") == "&lt;&amp;&gt;"


def test_rmtree_deletes_everything_else_around_a_locked_file(spawn: Spawn, pyd_tree: Path) -> None:
    """A job dir that cannot be deleted whole should shrink to what is locked, for gc to finish later."""
    holder, remover = spawn("holder"), spawn("remover")
    holder.call(LOAD_PYD, top=pyd_tree)
    remover.call(COUNT_SLEEPS, speed=0.01)
    remover.failure("fsops.rmtree(Path(top))", top=pyd_tree)
    left = sorted(p.relative_to(pyd_tree).as_posix() for p in pyd_tree.rglob("*") if p.is_file())
    assert left == ["markupsafe/_speedups.cp313-win_amd64.pyd"]


# What uv (any Rust program) does: open with FILE_SHARE_DELETE. Deleting another name of that file then
# succeeds but, under Wine (and on Windows without POSIX delete semantics), the name stays until the
# handle closes, so removing its folder fails with "Directory is not empty" (os error 145) meanwhile.
OPEN_SHARING_DELETE = """
import ctypes
from ctypes import wintypes
_k32 = ctypes.WinDLL("kernel32", use_last_error=True)
_k32.CreateFileW.restype = wintypes.HANDLE
_k32.CreateFileW.argtypes = (wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID, wintypes.DWORD,
                             wintypes.DWORD, wintypes.HANDLE)
_k32.CloseHandle.argtypes = (wintypes.HANDLE,)
reader = _k32.CreateFileW(path, 0x80000000, 0x7, None, 3, 0, None)  # GENERIC_READ, share all, OPEN_EXISTING
result = reader not in (None, 0, ctypes.c_void_p(-1).value)
"""


def test_rmtree_waits_for_a_reader_of_a_hardlinked_file(spawn: Spawn, tmp_path: Path) -> None:
    """A job's cache holds hardlinks of the shared archives; another job's uv reads the shared name."""
    shared = tmp_path / "shared" / "module.py"
    shared.parent.mkdir()
    shared.write_text("x = 1\n")
    job_dir = tmp_path / "job"
    (job_dir / "pkg").mkdir(parents=True)
    (job_dir / "pkg" / "module.py").hardlink_to(shared)
    reader, remover = spawn("reader"), spawn("remover")
    assert reader.call(OPEN_SHARING_DELETE, path=shared)
    remover.call(COUNT_SLEEPS, speed=1.0)
    waited = remover.call(IN_BACKGROUND, code=f"fsops.rmtree(Path({to_windows(job_dir)!r}))")
    reader.call("time.sleep(1.0); _k32.CloseHandle(reader)")
    done = remover.call(JOIN)
    assert done["outcome"] == {"ok": True}, done
    assert waited and not job_dir.exists()
    assert shared.read_text() == "x = 1\n"


# ---------------------------------------------------------------------------------------------------
# Long paths.

# Wine has no MAX_PATH limit, so the agent puts Windows' back: with LongPathsEnabled off (the default),
# a path of MAX_PATH (260) characters or more fails unless it has the `\\?\` prefix.
EMULATE_MAX_PATH = r"""
import builtins, functools
def _limited(fn, positions):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        for i in positions:
            if i < len(args) and isinstance(args[i], (str, os.PathLike)):
                text = os.fspath(args[i])
                if isinstance(text, str) and len(text) >= 260 and not text.startswith("\\\\?\\"):
                    raise OSError(0, "The filename or extension is too long (emulated MAX_PATH)", text, 206)
        return fn(*args, **kwargs)
    return call
for _name, _positions in (("mkdir", (0,)), ("open", (0,)), ("stat", (0,)), ("lstat", (0,)), ("unlink", (0,)),
                          ("remove", (0,)), ("rmdir", (0,)), ("rename", (0, 1)), ("replace", (0, 1)),
                          ("link", (0, 1)), ("symlink", (0, 1)), ("scandir", (0,)), ("listdir", (0,)),
                          ("chmod", (0,)), ("utime", (0,))):
    setattr(os, _name, _limited(getattr(os, _name), _positions))
builtins.open = _limited(builtins.open, (0,))
"""

# Each fsops operation on a long path, on its own: what it needs is made first with `\\?\\` paths.
LONG_PATH_OPS = r"""
top = Path(top)
deep = top.joinpath(*(["d" * 60] * 5))
x = osapi.extended_path
def made(*names):
    os.makedirs(x(deep), exist_ok=True)
    for name in names:
        with open(x(deep / name), "wb") as fh:
            fh.write(b"payload")
ops = {
    "write_atomic": lambda: fsops.write_atomic(deep / "new" / "file.txt", b"payload"),
    "copy_file": lambda: (made("a.txt"), fsops.copy_file(deep / "a.txt", deep / "a-copy.txt")),
    "link_or_copy": lambda: (made("b.txt"), fsops.link_or_copy(deep / "b.txt", deep / "b-link.txt", link=True)),
    "replace": lambda: (made("c.txt", "c-old.txt"), fsops.replace(deep / "c.txt", deep / "c-old.txt")),
    "rename_new": lambda: (made("d.txt"), fsops.rename_new(deep / "d.txt", deep / "d-new.txt")),
    "unlink": lambda: (made("e.txt"), fsops.unlink(deep / "e.txt")),
    "clone_tree": lambda: (made("f.txt"), fsops.clone_tree(top / ("d" * 60), top / "twin", link=True)),
    # What is there, counted with the long form from the top, for tree_size and walk_files to match.
    "count": lambda: result.update(files=sum(len(f) for _d, _s, f in os.walk("\\\\?\\" + os.path.abspath(top)))),
    "tree_size": lambda: fsops.tree_size(top),
    "walk_files": lambda: list(fsops.walk_files(top)),
    "rmtree": lambda: fsops.rmtree(top),
}
result = {"length": len(str(deep / "file.txt"))}
for name, op in ops.items():
    try:
        value = op()
        result[name] = "ok"
        if name in ("tree_size", "walk_files"):
            result["found"] = result.get("found", []) + [value[0] if name == "tree_size" else len(value)]
    except Exception as exc:
        result[name] = f"{type(exc).__name__}: {exc}"
result["removed"] = not os.path.lexists(osapi.extended_path(top))
"""


def test_emulated_max_path_refuses_a_plain_long_path(spawn: Spawn, tmp_path: Path) -> None:
    """The emulation below does what Windows does: a plain long path fails, the `\\?\\` form works."""
    agent = spawn("agent")
    agent.call(EMULATE_MAX_PATH)
    deep = tmp_path.joinpath(*(["d" * 60] * 5))
    refused = agent.failure("os.makedirs(p)", p=deep)
    assert refused.info["winerror"] == 206, refused.info
    assert agent.call("os.makedirs(osapi.extended_path(p)); result = os.path.isdir(osapi.extended_path(p))", p=deep)


def test_long_paths_through_fsops(spawn: Spawn, tmp_path: Path) -> None:
    """Every fsops operation works on paths over MAX_PATH (Windows' limit, emulated: Wine has none)."""
    agent = spawn("agent")
    agent.call(EMULATE_MAX_PATH)
    got = agent.call(LONG_PATH_OPS, top=tmp_path / "long")
    assert got["length"] > 300
    failed = {op: outcome for op, outcome in got.items() if op not in ("length", "files", "found", "removed")
              and outcome != "ok"}
    assert not failed, json.dumps(failed, indent=2)
    # Files made by the other operations, 300+ characters deep: tree_size and walk_files must see them.
    assert got["files"] > 8 and got["found"] == [got["files"]] * 2 and got["removed"] is True, got


# ---------------------------------------------------------------------------------------------------
# `ci-cache run` with uv.exe while another process holds files of the shared cache.

UV_ENV = {"UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}


def cicache_install(lab: Lab, root: Path, job: str, target: Path, index_url: str, *packages: str,
                    summary: Path) -> tuple[int, str, dict[str, Any]]:
    """`ci-cache run --mode isolated -- uv.exe pip install --target ...`: (exit code, stderr, summary)."""
    argv = ci_cache_argv(lab, "run", "--root", root, "--job", job, "--mode", "isolated", "--summary-json",
                         summary, "--", lab.uv_exe, "pip", "install", "--python", lab.python_exe, "--target",
                         target, "--index-url", index_url, *packages)
    proc = run_to_exit(lab, argv, env=UV_ENV, cwd=target.parent)
    data: dict[str, Any] = json.loads(summary.read_text(encoding="utf-8")) if summary.exists() else {}
    return proc.returncode, proc.stderr, data


@pytest.fixture(scope="module")
def warm_root(wine_lab: Lab, wheel_index: IndexServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ci-cache root whose shared uv cache holds pyyaml and markupsafe (one job, through ci-cache)."""
    base = tmp_path_factory.mktemp("warm")
    root = base / "root"
    code, err, _summary = cicache_install(wine_lab, root, "warm", base / "site", wheel_index.url, "pyyaml",
                                          "markupsafe", summary=base / "summary.json")
    assert code == 0, err
    return root


def copy_root(warm_root: Path, tmp_path: Path) -> Path:
    """The warm root's shared caches (its jobs dir may still hold a dir a detached delete is working on)."""
    root = tmp_path / "root"
    shutil.copytree(warm_root, root, symlinks=True, ignore=lambda d, _names: ["jobs"] if Path(d) == warm_root else [])
    return root


def verify(lab: Lab, root: Path) -> tuple[int, str]:
    proc = run_to_exit(lab, ci_cache_argv(lab, "verify", "--root", root))
    return proc.returncode, proc.stdout + proc.stderr


def shared_index_file(root: Path, package: str) -> Path:
    return next((root / "shared" / "uv").glob(f"simple-v*/index/*/{package}.rkyv"))


# The holder keeps `held` open (no delete sharing) until the merge has tried to replace it (its temp
# file appears beside it) and failed once, then lets go: `release_after` seconds later, or never.
HOLD_UNTIL_MERGE = """
fh = open(held, "rb")
contended = threading.Event()
def _watch():
    folder = os.path.dirname(held)
    while not contended.is_set():
        if any(name.startswith(fsops.TEMP_PREFIX) for name in os.listdir(folder)):
            contended.set()
            if release_after is not None:
                time.sleep(release_after)
                fh.close()
            return
        time.sleep(0.01)
threading.Thread(target=_watch, daemon=True).start()
"""


def test_merge_waits_for_a_reader_of_a_shared_file(wine_lab: Lab, wheel_index: IndexServer, warm_root: Path,
                                                   tmp_path: Path, spawn: Spawn) -> None:
    """A job refreshes pyyaml's index entry; a scanner-like reader holds the shared copy for a while."""
    root = copy_root(warm_root, tmp_path)
    held = shared_index_file(root, "pyyaml")
    before = held.stat().st_mtime_ns
    holder = spawn("holder")
    holder.call(HOLD_UNTIL_MERGE, held=held, release_after=0.5)
    code, err, summary = cicache_install(wine_lab, root, "refresh", tmp_path / "site", wheel_index.url,
                                         "--refresh", "pyyaml", "six", summary=tmp_path / "summary.json")
    assert code == 0, err
    assert holder.call("result = contended.is_set()"), "the merge never tried to replace the held index file"
    assert summary["warnings"] == [], summary["warnings"]
    assert any("/six/" in d for d in summary["merged"]["uv"]["details"]), summary["merged"]
    assert held.stat().st_mtime_ns > before  # the refreshed entry did go in, after the wait
    code, report = verify(wine_lab, root)
    assert code == 0, report


def test_merge_blocked_for_good_keeps_the_exit_code_and_the_new_wheels(
    wine_lab: Lab, wheel_index: IndexServer, warm_root: Path, tmp_path: Path, spawn: Spawn
) -> None:
    """The shared index file stays held to the end: the job still succeeds and the cache stays valid.

    An index file is a cached listing that a later job can fetch again; the wheels the job added are
    what makes the next job warm, and should not be lost because one listing could not be replaced.
    """
    root = copy_root(warm_root, tmp_path)
    held = shared_index_file(root, "pyyaml")
    original = held.read_bytes()
    holder = spawn("holder")
    holder.call(HOLD_UNTIL_MERGE, held=held, release_after=None)
    code, err, summary = cicache_install(wine_lab, root, "blocked", tmp_path / "site", wheel_index.url,
                                         "--refresh", "pyyaml", "six", summary=tmp_path / "summary.json")
    assert holder.call("result = contended.is_set()"), "the merge never tried to replace the held index file"
    assert code == 0, err
    assert summary["exit_code"] == 0
    assert held.read_bytes() == original
    code, report = verify(wine_lab, root)
    assert code == 0, report
    assert list((root / "shared" / "uv").glob("wheels-v*/index/*/six")), (
        "six was not merged: one locked index file cost the job all its new wheels\n" + json.dumps(summary["merged"]))


def test_finish_with_a_shared_archive_file_held_open_keeps_the_exit_code(
    wine_lab: Lab, wheel_index: IndexServer, warm_root: Path, tmp_path: Path, spawn: Spawn
) -> None:
    """Seeding hardlinks the shared archives into the job's cache: one file object, two names. A
    reader holding the shared name open without delete sharing (a scanner, say) makes the job's
    name undeletable too. The job's own result must not change because its dir cannot be deleted yet.
    """
    root = copy_root(warm_root, tmp_path)
    held = next((root / "shared" / "uv").glob("archive-v0/*/yaml/__init__.py"))
    holder = spawn("holder")
    holder.call("fh = open(held, 'rb')", held=held)
    code, err, summary = cicache_install(wine_lab, root, "held", tmp_path / "site", wheel_index.url, "pyyaml",
                                         "six", summary=tmp_path / "summary.json")
    assert code == 0, f"the command succeeded, `ci-cache run` exited {code}:\n{err}"
    assert summary["seeded"]["uv"]["linked"] > 0, summary  # the premise: the job's cache has links
    assert any("/six/" in d for d in summary["merged"]["uv"]["details"]), summary["merged"]
    assert verify(wine_lab, root)[0] == 0
    # Nothing holds the job's lease: gc may take what is left once the reader lets go.
    assert not holder.call("result = lease.is_held(Path(p))", p=root / "jobs" / f"{job_key('held')}.lease")


# ---------------------------------------------------------------------------------------------------
# `setup --format cmd` through Wine's cmd.exe, and the shared-mode .exe shims.

ENVDUMP = Path(__file__).resolve().parent / "winside" / "envdump.py"
DUMPED = ("UV_CACHE_DIR", "UV_LINK_MODE", "PIP_CACHE_DIR", "TEMP", "TMP", "TMPDIR", "CI_CACHE_JOB",
          "CI_CACHE_ROOT", "CI_CACHE_JOB_DIR", "CI_CACHE_TOKEN")
# Characters a Windows folder name may hold that mean something to cmd.
CMD_SPECIAL_ROOT = "ci cache & 100% (x) ^;,='"


def _bare(lab: Lab, path: Path) -> str:
    """A path for a .bat line, unquoted: it must not need quoting (for /f's quote rules are a trap)."""
    text = to_windows(path)
    if any(c in text for c in " &%^()!\"'"):
        pytest.skip(f"the lab path {text} needs quoting inside a .bat; move the lab (CI_CACHE_WINE_LAB)")
    return text


def _bat(tmp_path: Path, name: str, lines: list[str]) -> Path:
    bat = tmp_path / name
    bat.write_bytes(("\r\n".join(["@echo off", *lines]) + "\r\n").encode("ascii"))
    return bat


def _finish(lab: Lab, root: Path, job: str) -> None:
    proc = run_to_exit(lab, ci_cache_argv(lab, "finish"), env={"CI_CACHE_ROOT": root, "CI_CACHE_JOB": job})
    assert proc.returncode == 0, proc.stderr


def test_setup_cmd_format_round_trips_through_cmd_exe(wine_lab: Lab, tmp_path: Path,
                                                      tier_report: list[str]) -> None:
    """The values survive cmd: spaces, &, %, ^, parentheses and the like in the root path."""
    root = tmp_path / CMD_SPECIAL_ROOT
    py, dump = _bare(wine_lab, wine_lab.python_exe), _bare(wine_lab, ENVDUMP)
    setup = f"{py} -m ci_cache setup --format cmd"
    bat = _bat(tmp_path, "setup.bat", [
        "set CI_CACHE_JOB=cmd-documented",
        # The documented idiom (docs/cli.md): the FOR variable is the whole `set "NAME=value"` command.
        f"for /f \"delims=\" %%L in ('{setup}') do %%L",
        f"{py} {dump} {_bare(wine_lab, tmp_path)}\\documented.json {' '.join(DUMPED)}",
        "set CI_CACHE_JOB=cmd-tokens",
        # The same lines with `set` spelt out: Wine's cmd cannot run a command held in a FOR variable.
        f"for /f \"tokens=1,*\" %%A in ('{setup}') do set %%B",
        f"{py} {dump} {_bare(wine_lab, tmp_path)}\\tokens.json {' '.join(DUMPED)}",
        "set UV_CACHE_DIR",
    ])
    proc = run_to_exit(wine_lab, ["cmd.exe", "/d", "/c", bat], env={"CI_CACHE_ROOT": root,
                                                                    "CI_CACHE_MODE": "isolated"})
    try:
        assert proc.returncode == 0, proc.stderr
        records = {job: record_of(root, job) or {} for job in ("cmd-documented", "cmd-tokens")}
        tokens = json.loads((tmp_path / "tokens.json").read_text(encoding="utf-8"))
        expected = records["cmd-tokens"]["env"]
        assert {k: tokens[k] for k in expected} == expected
        assert CMD_SPECIAL_ROOT in tokens["UV_CACHE_DIR"] and tokens["TEMP"] == expected["TEMP"]
        assert f"UV_CACHE_DIR={expected['UV_CACHE_DIR']}" in proc.stdout.splitlines()
        documented = json.loads((tmp_path / "documented.json").read_text(encoding="utf-8"))
        wanted = records["cmd-documented"]["env"]
        if {k: documented[k] for k in wanted} != wanted:
            # Wine 8's cmd: "Can't recognize 'set "UV_CACHE_DIR=..."' as an internal or external command".
            assert "Can't recognize 'set \"" in proc.stderr, proc.stderr
            tier_report.append("setup --format cmd: values round-trip through cmd.exe with the documented "
                               "`do set %%B`; the `do %%L` form cannot run under Wine's cmd (a FOR variable as the "
                               "command)")
    finally:
        for job in ("cmd-documented", "cmd-tokens"):
            _finish(wine_lab, root, job)


def test_setup_leaves_a_detached_lease_holder_that_finish_stops(wine_lab: Lab, tmp_path: Path,
                                                                spawn: Spawn) -> None:
    """setup returns while a detached process holds the job's lease; finish ends it (pid_alive, terminate)."""
    root = tmp_path / "root"
    env: dict[str, EnvValue] = {"CI_CACHE_ROOT": root, "CI_CACHE_JOB": "leased", "CI_CACHE_MODE": "isolated"}
    proc = run_to_exit(wine_lab, ci_cache_argv(wine_lab, "setup", "--format", "json"), env=env)
    assert proc.returncode == 0, proc.stderr
    key = job_key("leased")
    record = record_of(root, "leased")
    assert record is not None
    pid, job_dir = record["holder_pid"], from_windows(record["dir"])
    assert job_dir.is_dir() and job_dir.parent == root / "jobs" and job_dir.name.startswith(f"{key}.")
    probe = spawn("probe")
    state = "result = [osapi.pid_alive(pid), lease.is_held(Path(p))]"
    assert probe.call(state, pid=pid, p=root / "jobs" / f"{key}.lease") == [True, True]
    _finish(wine_lab, root, "leased")
    gone = probe.call("deadline = time.monotonic() + 60\n"
                      "while osapi.pid_alive(pid) and time.monotonic() < deadline: time.sleep(0.05)\n" + state,
                      pid=pid, p=root / "jobs" / f"{key}.lease")
    assert gone == [False, False]
    assert not job_dir.exists() and not Path(f"{job_dir}.json").exists()


@pytest.mark.parametrize(("folder", "what"), [("caché", "non-ASCII"), ("bang!", "'!'")])
def test_setup_cmd_format_refuses_what_cmd_cannot_carry(wine_lab: Lab, tmp_path: Path, folder: str,
                                                        what: str) -> None:
    """Refused with a clear error, and without leaving a half set-up job (and its lease holder) behind."""
    root = tmp_path / folder
    env: dict[str, EnvValue] = {"CI_CACHE_ROOT": root, "CI_CACHE_JOB": "refused", "CI_CACHE_MODE": "isolated"}
    proc = run_to_exit(wine_lab, ci_cache_argv(wine_lab, "setup", "--format", "cmd"), env=env)
    lease_file = root / "jobs" / f"{job_key('refused')}.lease"
    try:
        assert proc.returncode == 2, proc.stderr
        assert what in proc.stderr and "UV_CACHE_DIR" in proc.stderr and "powershell" in proc.stderr, proc.stderr
        assert proc.stdout == ""
        check = run_to_exit(wine_lab, [wine_lab.python_exe, "-c",
                                       "import sys; from pathlib import Path; from ci_cache import lease; "
                                       "print(lease.is_held(Path(sys.argv[1])))", lease_file])
        assert check.stdout.strip() == "False", "the refused setup left its job allocated, lease held"
    finally:
        if record_of(root, "refused") is not None:
            _finish(wine_lab, root, "refused")


def test_setup_powershell_format_round_trips_through_pwsh(wine_lab: Lab, tmp_path: Path) -> None:
    """The Windows Python's `--format powershell` output, evaluated by a real PowerShell, if there is one."""
    pwsh = shutil.which("pwsh")
    if pwsh is None:
        pytest.skip("no PowerShell: Wine has none and no setup script installs pwsh (it is not packaged in "
                    "Debian); the powershell format's quoting is covered by tests/unit")
    root = tmp_path / CMD_SPECIAL_ROOT
    env: dict[str, EnvValue] = {"CI_CACHE_ROOT": root, "CI_CACHE_JOB": "pwsh", "CI_CACHE_MODE": "isolated"}
    proc = run_to_exit(wine_lab, ci_cache_argv(wine_lab, "setup", "--format", "powershell"), env=env)
    try:
        assert proc.returncode == 0, proc.stderr
        script = proc.stdout + "\n" + "@{" + "; ".join(f"'{n}' = $env:{n}" for n in DUMPED) + "} | ConvertTo-Json\n"
        evaluated = subprocess.run([pwsh, "-NoProfile", "-NonInteractive", "-Command", "-"], input=script,
                                   capture_output=True, text=True, timeout=120, check=False)
        assert evaluated.returncode == 0, evaluated.stderr
        record = record_of(root, "pwsh")
        assert record is not None
        got = json.loads(evaluated.stdout)
        assert {k: got[k] for k in record["env"]} == record["env"]
    finally:
        _finish(wine_lab, root, "pwsh")


def test_shared_mode_shim_takes_the_lock_around_uv(wine_lab: Lab, tmp_path: Path, spawn: Spawn) -> None:
    """`setup --mode shared` puts a distlib .exe shim for uv first on PATH; the shim takes the lock."""
    root = tmp_path / "root"
    job = "shim"
    lock = root / "shared" / "uv.write.lock"
    holder = spawn("holder")
    assert holder.call("held = osapi.try_lock(Path(p)); result = held is not None", p=lock)
    py = _bare(wine_lab, wine_lab.python_exe)
    bat = _bat(tmp_path, "shared.bat", [
        f"set \"PATH={_bare(wine_lab, wine_lab.uv_exe.parent)};%PATH%\"",
        f"for /f \"tokens=1,*\" %%A in ('{py} -m ci_cache setup --format cmd') do set %%B",
        "uv --version",
    ])
    waited: list[str] = []

    def on_line(line: str) -> None:
        if "waiting for lock" in line and not waited:
            waited.append(line)
            holder.call("held.release()")  # the shim is now blocked on it: let it through

    env: dict[str, EnvValue] = {"CI_CACHE_ROOT": root, "CI_CACHE_JOB": job, "CI_CACHE_MODE": "shared"}
    proc = run_to_exit(wine_lab, ["cmd.exe", "/d", "/c", bat], env=env, on_stderr_line=on_line)
    try:
        shim = job_dir_of(root, job) / "bin" / "uv.exe"
        assert shim.read_bytes()[:2] == b"MZ", "the shim is not a Windows executable"
        assert waited and "uv.write.lock" in waited[0], proc.stderr
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().startswith("uv 0."), proc.stdout
    finally:
        _finish(wine_lab, root, job)


def test_shared_mode_shim_passes_the_exit_code_of_the_real_command(wine_lab: Lab, tmp_path: Path) -> None:
    """The .exe shim's launcher exits with the real uv's exit code (it once exited 0 whatever uv did)."""
    root = tmp_path / "root"
    job = "shim-exit"
    py = _bare(wine_lab, wine_lab.python_exe)
    bat = _bat(tmp_path, "shim-exit.bat", [
        f"set \"PATH={_bare(wine_lab, wine_lab.uv_exe.parent)};%PATH%\"",
        f"for /f \"tokens=1,*\" %%A in ('{py} -m ci_cache setup --format cmd') do set %%B",
        "uv no-such-subcommand",
        "exit /b %ERRORLEVEL%",
    ])
    env: dict[str, EnvValue] = {"CI_CACHE_ROOT": root, "CI_CACHE_JOB": job, "CI_CACHE_MODE": "shared"}
    proc = run_to_exit(wine_lab, ["cmd.exe", "/d", "/c", bat], env=env)
    try:
        assert (job_dir_of(root, job) / "bin" / "uv.exe").is_file(), proc.stderr
        assert proc.returncode == 2, proc.stderr  # uv's own code for an unknown subcommand
        assert "no-such-subcommand" in proc.stderr, proc.stderr
    finally:
        _finish(wine_lab, root, job)
