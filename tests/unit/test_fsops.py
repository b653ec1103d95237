"""ci_cache.fsops: retries on sharing violations, deletes that never follow links, atomic writes, clones."""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

from ci_cache import fsops, osapi
from ci_cache.errors import StoreError

needs_symlinks = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need a privilege on Windows")


def sharing_violation() -> PermissionError:
    """What Windows raises when another process holds the file: errno 13, winerror 32."""
    exc = PermissionError(errno.EACCES, "The process cannot access the file because it is being used")
    exc.winerror = 32  # type: ignore[attr-defined]
    return exc


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays with_retry asked for, without sleeping."""
    asked: list[float] = []
    monkeypatch.setattr(fsops, "_sleep", asked.append)
    return asked


def no_space(*args: object, **kwargs: object) -> NoReturn:
    raise OSError(errno.ENOSPC, "No space left on device")


def flaky(failures: int, exc_factory: Callable[[], OSError], result: str = "done") -> Callable[[], str]:
    calls = {"n": 0}

    def op() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise exc_factory()
        return result

    return op


# ---------------------------------------------------------------------------------------------------
# Transient errors and with_retry.


def test_transient_error_classification() -> None:
    assert osapi.is_transient_error(sharing_violation())
    for code in (5, 32, 33):
        exc = PermissionError(errno.EACCES, "x")
        exc.winerror = code  # type: ignore[attr-defined]
        assert osapi.is_transient_error(exc)
    not_sharing = FileNotFoundError(errno.ENOENT, "x")
    not_sharing.winerror = 2  # type: ignore[attr-defined]
    assert not osapi.is_transient_error(not_sharing)
    assert osapi.is_transient_error(OSError(errno.EBUSY, "busy"))
    assert not osapi.is_transient_error(PermissionError(errno.EACCES, "plain POSIX permission error"))
    assert not osapi.is_transient_error(OSError(errno.ENOSPC, "full"))


def test_with_retry_succeeds_after_a_few_sharing_violations(sleeps: list[float]) -> None:
    assert fsops.with_retry(flaky(3, sharing_violation), "rename a -> b") == "done"
    assert len(sleeps) == 3
    # Backoff: each wait is jittered around a doubling base.
    budget = fsops.DEFAULT_BUDGET
    for n, delay in enumerate(sleeps):
        base = min(budget.first_delay * 2**n, budget.max_delay)
        assert 0.5 * base <= delay <= 1.5 * base


def test_with_retry_gives_up_past_the_budget_with_a_clear_store_error(sleeps: list[float]) -> None:
    budget = fsops.RetryBudget(attempts=4, first_delay=0.01, max_delay=0.02)
    with pytest.raises(StoreError) as info:
        fsops.with_retry(flaky(100, sharing_violation), "rename C:\\cache\\a -> C:\\cache\\b", budget)
    message = str(info.value)
    assert "rename C:\\cache\\a -> C:\\cache\\b" in message
    assert "4 attempts" in message
    assert "another process" in message
    assert "antivirus" in message  # says what to do
    assert isinstance(info.value.__cause__, PermissionError)
    assert info.value.exit_code == 4
    assert len(sleeps) == 3  # no pointless wait after the last attempt
    assert all(d <= 1.5 * budget.max_delay for d in sleeps)


@pytest.mark.parametrize(
    "exc_factory",
    [lambda: FileNotFoundError(errno.ENOENT, "gone"), lambda: OSError(errno.ENOSPC, "No space left on device"),
     lambda: PermissionError(errno.EACCES, "denied")],
)
def test_with_retry_does_not_retry_other_errors(sleeps: list[float], exc_factory: Callable[[], OSError]) -> None:
    expected = type(exc_factory())
    with pytest.raises(expected):
        fsops.with_retry(flaky(1, exc_factory), "op")
    assert sleeps == []


def test_replace_retries_while_the_target_is_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    src, dst = tmp_path / "new", tmp_path / "target"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    real_replace = os.replace
    held = {"n": 2}

    def replace(a: str, b: str) -> None:
        if held["n"]:
            held["n"] -= 1
            raise sharing_violation()
        real_replace(a, b)

    monkeypatch.setattr(os, "replace", replace)
    fsops.replace(src, dst)
    assert dst.read_bytes() == b"new" and not src.exists()
    assert len(sleeps) == 2


# ---------------------------------------------------------------------------------------------------
# rmtree.


@needs_symlinks
def test_rmtree_never_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "shared-cache"
    (outside / "archive-v0" / "abc").mkdir(parents=True)
    (outside / "archive-v0" / "abc" / "module.py").write_text("precious")
    (outside / "file.txt").write_text("precious too")

    tree = tmp_path / "job"
    (tree / "deep" / "er").mkdir(parents=True)
    (tree / "deep" / "er" / "f.txt").write_text("x")
    os.symlink(outside, tree / "link-to-dir")
    os.symlink(outside / "archive-v0", tree / "deep" / "er" / "link-to-bucket")
    os.symlink(outside / "file.txt", tree / "deep" / "link-to-file")
    os.symlink(tmp_path / "nowhere", tree / "dangling")

    fsops.rmtree(tree)
    assert not os.path.lexists(tree)
    assert (outside / "archive-v0" / "abc" / "module.py").read_text() == "precious"
    assert (outside / "file.txt").read_text() == "precious too"


@needs_symlinks
def test_rmtree_of_a_link_removes_only_the_link(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    link = tmp_path / "link"
    os.symlink(target, link)
    fsops.rmtree(link)
    assert not os.path.lexists(link)
    assert (target / "keep.txt").read_text() == "keep"


def test_rmtree_removes_read_only_files_and_dirs(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "ro-dir" / "sub").mkdir(parents=True)
    for path in (tree / "a.txt", tree / "ro-dir" / "b.txt", tree / "ro-dir" / "sub" / "c.txt"):
        path.write_text("x")
        os.chmod(path, stat.S_IREAD)
    os.chmod(tree / "ro-dir" / "sub", stat.S_IREAD | stat.S_IEXEC)
    os.chmod(tree / "ro-dir", stat.S_IREAD | stat.S_IEXEC)
    try:
        fsops.rmtree(tree)
    finally:
        if tree.exists():  # leave nothing pytest cannot clean
            for dirpath, _dirs, _files in os.walk(tree):
                os.chmod(dirpath, 0o755)
    assert not tree.exists()


def test_rmtree_of_a_missing_path_and_of_a_file(tmp_path: Path) -> None:
    fsops.rmtree(tmp_path / "missing")
    single = tmp_path / "single"
    single.write_text("x")
    fsops.rmtree(single)
    assert not single.exists()


def test_rmtree_retries_a_file_held_by_a_scanner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "scanned.dll").write_bytes(b"MZ")
    real_unlink = os.unlink
    held = {"n": 3}

    def unlink(path: str, *args: object, **kwargs: object) -> None:
        if path.endswith("scanned.dll") and held["n"]:
            held["n"] -= 1
            raise sharing_violation()
        real_unlink(path)

    monkeypatch.setattr(os, "unlink", unlink)
    fsops.rmtree(tree)
    assert not tree.exists()
    assert len(sleeps) == 3


# ---------------------------------------------------------------------------------------------------
# write_atomic.


def test_write_atomic_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "record.json"
    fsops.write_atomic(target, b"first")
    fsops.write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["record.json"]


def test_write_atomic_leaves_no_temp_file_and_the_old_content_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "record.json"
    target.write_bytes(b"old")

    monkeypatch.setattr(fsops, "replace", no_space)
    with pytest.raises(OSError, match="No space left"):
        fsops.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["record.json"]


def test_write_atomic_leaves_no_temp_file_when_the_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "record.json"

    def fail(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="I/O error"):
        fsops.write_atomic(target, b"new")
    assert os.listdir(tmp_path) == []


def test_write_atomic_cleans_up_on_keyboard_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(src: Path, dst: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fsops, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fsops.write_atomic(tmp_path / "x", b"data")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------------
# put_file, stage_tree, remove_whole: whole files and folders, or nothing.


def test_put_file_replaces_or_keeps_the_target(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"new")
    dst = tmp_path / "out" / "dst"
    dst.parent.mkdir()
    assert fsops.put_file(src, dst)
    assert dst.read_bytes() == b"new"
    src.write_bytes(b"newer")
    assert not fsops.put_file(src, dst, overwrite=False)
    assert dst.read_bytes() == b"new"
    assert fsops.put_file(src, dst)
    assert dst.read_bytes() == b"newer"
    assert os.listdir(dst.parent) == ["dst"]


@needs_symlinks
def test_put_file_recreates_a_symlink_with_rewritten_text(tmp_path: Path) -> None:
    src = tmp_path / "link"
    os.symlink("/old/root/archive-v0/abc", src)
    dst = tmp_path / "copy"
    fsops.put_file(src, dst, link_text=lambda text: text.replace("/old/root", "/new/root"))
    assert os.readlink(dst) == "/new/root/archive-v0/abc"
    fsops.put_file(src, tmp_path / "verbatim")
    assert os.readlink(tmp_path / "verbatim") == "/old/root/archive-v0/abc"


def test_put_file_leaves_no_temp_file_and_the_old_content_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"new")
    dst = tmp_path / "dst"
    dst.write_bytes(b"old")

    monkeypatch.setattr(fsops, "replace", no_space)
    with pytest.raises(OSError, match="No space left"):
        fsops.put_file(src, dst)
    assert dst.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["dst", "src"]


def tree_with_a_lock(top: Path) -> Path:
    make_tree(top)
    (top / "pkg" / "x.lock").write_text("")
    return top


def test_stage_tree_renames_the_whole_tree_in(tmp_path: Path) -> None:
    src = tree_with_a_lock(tmp_path / "src")
    dst = tmp_path / "bucket" / "entry"
    prepared: list[Path] = []
    count = fsops.stage_tree(src, dst, link=False, skip=lambda name: name.endswith(".lock"),
                             prepare=prepared.append)
    assert count is not None and count.files == 3 and count.linked == 0
    assert count.bytes == sum(os.path.getsize(src / rel) for rel in ("pkg/__init__.py", "pkg/sub/data.bin",
                                                                     "pkg-1.0.dist-info/RECORD"))
    assert (dst / "pkg" / "sub" / "data.bin").read_bytes() == (src / "pkg" / "sub" / "data.bin").read_bytes()
    assert not (dst / "pkg" / "x.lock").exists()
    assert len(prepared) == 1 and prepared[0].parent == dst.parent and prepared[0].name.startswith(".tmp")
    assert os.listdir(dst.parent) == ["entry"]


def test_stage_tree_keeps_what_a_concurrent_writer_put_there(tmp_path: Path) -> None:
    src = tree_with_a_lock(tmp_path / "src")
    dst = tmp_path / "bucket" / "entry"
    (dst / "theirs").mkdir(parents=True)
    (dst / "theirs" / "t.py").write_text("theirs")
    assert fsops.stage_tree(src, dst, link=True) is None
    assert os.listdir(dst) == ["theirs"]
    assert os.listdir(dst.parent) == ["entry"]


def test_stage_tree_that_fails_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tree_with_a_lock(tmp_path / "src")
    dst = tmp_path / "bucket" / "entry"

    monkeypatch.setattr(fsops, "copy_file", no_space)
    with pytest.raises(OSError, match="No space left"):
        fsops.stage_tree(src, dst, link=False)
    assert os.listdir(dst.parent) == []


def test_rename_away_moves_a_folder_to_a_temp_name_beside_it(tmp_path: Path) -> None:
    folder = tree_with_a_lock(tmp_path / "entry")
    moved = fsops.rename_away(folder)
    assert not folder.exists() and moved.parent == tmp_path and fsops.is_temp_name(moved.name)
    assert (moved / "pkg" / "x.lock").is_file()


def test_remove_whole_renames_away_before_deleting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tree_with_a_lock(tmp_path / "entry")
    seen: list[str] = []
    real_rmtree = fsops.rmtree

    def rmtree(path: Path) -> None:
        seen.append(path.name)
        assert not folder.exists()  # by the time anything is deleted, the real name is gone
        real_rmtree(path)

    monkeypatch.setattr(fsops, "rmtree", rmtree)
    fsops.remove_whole(folder)
    assert seen and seen[0].startswith(fsops.TEMP_PREFIX)
    assert os.listdir(tmp_path) == []


def test_temp_siblings_are_temp_names_in_the_same_folder(tmp_path: Path) -> None:
    a, b = fsops.temp_sibling(tmp_path / "t"), fsops.temp_sibling(tmp_path / "t")
    assert a != b
    assert a.parent == tmp_path
    assert a.name.startswith(fsops.TEMP_PREFIX)
    assert fsops.is_temp_name(a.name)
    assert fsops.is_temp_name(".tmpXyZ12") and not fsops.is_temp_name("tmp") and not fsops.is_temp_name("a.tmp")


# ---------------------------------------------------------------------------------------------------
# Links, copies, clones.


def make_tree(top: Path) -> None:
    (top / "pkg" / "sub").mkdir(parents=True)
    (top / "pkg" / "__init__.py").write_text("x = 1\n")
    (top / "pkg" / "sub" / "data.bin").write_bytes(os.urandom(3000))
    (top / "pkg-1.0.dist-info").mkdir()
    (top / "pkg-1.0.dist-info" / "RECORD").write_text("pkg/__init__.py,,\n")
    (top / "empty").mkdir()


def test_clone_tree_links_files_and_recreates_dirs(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    count = fsops.clone_tree(src, dst, link=True)
    for rel in ("pkg/__init__.py", "pkg/sub/data.bin", "pkg-1.0.dist-info/RECORD"):
        assert os.stat(src / rel).st_ino == os.stat(dst / rel).st_ino
        assert (dst / rel).read_bytes() == (src / rel).read_bytes()
    assert (dst / "empty").is_dir()
    assert os.stat(src / "pkg").st_ino != os.stat(dst / "pkg").st_ino  # dirs are new, not links
    assert (count.files, count.linked) == (3, 3)
    assert count.bytes == 0  # hardlinks take no space: only copied bytes count
    copied = fsops.clone_tree(src, tmp_path / "copy", link=False)
    assert copied.bytes == sum((src / r).stat().st_size for r in ("pkg/__init__.py", "pkg/sub/data.bin",
                                                                   "pkg-1.0.dist-info/RECORD"))


def test_clone_tree_copies_when_asked(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    count = fsops.clone_tree(src, dst, link=False)
    assert os.stat(src / "pkg/__init__.py").st_ino != os.stat(dst / "pkg/__init__.py").st_ino
    assert (dst / "pkg/sub/data.bin").read_bytes() == (src / "pkg/sub/data.bin").read_bytes()
    assert (count.files, count.linked) == (3, 0)


@needs_symlinks
def test_clone_tree_recreates_symlinks_with_the_same_text(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    os.symlink("../pkg/__init__.py", src / "empty" / "rel-link")
    fsops.clone_tree(src, dst, link=True)
    assert os.readlink(dst / "empty" / "rel-link") == "../pkg/__init__.py"


def test_clone_tree_refuses_an_existing_target(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    dst.mkdir()
    with pytest.raises(FileExistsError):
        fsops.clone_tree(src, dst, link=True)


def test_link_or_copy_falls_back_to_a_copy_across_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "a"
    src.write_bytes(b"payload")

    def no_link(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    assert fsops.link_or_copy(src, tmp_path / "b", link=True) is False
    assert (tmp_path / "b").read_bytes() == b"payload"
    assert os.stat(src).st_ino != os.stat(tmp_path / "b").st_ino


def test_link_or_copy_links_when_it_can(tmp_path: Path) -> None:
    src = tmp_path / "a"
    src.write_bytes(b"payload")
    assert fsops.link_or_copy(src, tmp_path / "b", link=True) is True
    assert os.stat(src).st_ino == os.stat(tmp_path / "b").st_ino
    assert fsops.link_or_copy(src, tmp_path / "c", link=False) is False
    assert os.stat(src).st_ino != os.stat(tmp_path / "c").st_ino


def test_copy_file_keeps_the_mtime(tmp_path: Path) -> None:
    src = tmp_path / "a"
    src.write_bytes(b"x")
    os.utime(src, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    fsops.copy_file(src, tmp_path / "b")
    assert os.stat(tmp_path / "b").st_mtime_ns == os.stat(src).st_mtime_ns


def test_rename_new_never_replaces(tmp_path: Path) -> None:
    src = tmp_path / "staged"
    src.mkdir()
    (src / "f").write_text("new")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "f").write_text("old")
    assert fsops.rename_new(src, taken) is False
    assert (taken / "f").read_text() == "old"
    assert (src / "f").read_text() == "new"
    assert fsops.rename_new(src, tmp_path / "free") is True
    assert (tmp_path / "free" / "f").read_text() == "new"
    assert not src.exists()


def test_rename_new_does_not_replace_a_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_text("new")
    dst.write_text("old")
    assert fsops.rename_new(src, dst) is False
    assert dst.read_text() == "old"


def test_unlink_missing_ok(tmp_path: Path) -> None:
    fsops.unlink(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        fsops.unlink(tmp_path / "missing", missing_ok=False)


def test_walk_files_and_tree_size(tmp_path: Path) -> None:
    make_tree(tmp_path / "t")
    rels = sorted(rel for rel, _entry in fsops.walk_files(tmp_path / "t"))
    assert rels == ["pkg-1.0.dist-info/RECORD", "pkg/__init__.py", "pkg/sub/data.bin"]
    files, size = fsops.tree_size(tmp_path / "t")
    assert files == 3 and size == sum(e.stat().st_size for _r, e in fsops.walk_files(tmp_path / "t"))
    assert list(fsops.walk_files(tmp_path / "missing")) == []


def test_disk_free_of_a_path_that_does_not_exist_yet(tmp_path: Path) -> None:
    assert fsops.disk_free(tmp_path / "not" / "yet") > 0


# ---------------------------------------------------------------------------------------------------
# The unit-test guard itself (tests/conftest.py): writes below the real home dir fail.


def test_the_guard_blocks_writes_below_the_real_home(side_effect_guard: Any) -> None:
    homes: tuple[str, ...] = side_effect_guard.real_homes
    if not homes:
        pytest.skip("this machine's home dir is `/`: nothing to guard")
    target = Path(homes[0]) / f"ci-cache-guard-probe-{os.getpid()}"
    with pytest.raises(AssertionError, match="real home"):
        target.write_text("must not happen")
    with pytest.raises(AssertionError, match="real home"):
        os.mkdir(target)
    assert not target.exists()
    assert str(Path.home()) not in homes
    assert len(side_effect_guard.violations) == 2
    side_effect_guard.violations.clear()  # caught on purpose: do not fail this test at teardown
