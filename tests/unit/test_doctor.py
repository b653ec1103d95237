"""ci_cache.doctor in process: each check on a temp root, and how the diagnosis reads."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from ci_cache import __version__, config, doctor, fsops, jobdirs, osapi, rootlayout, status
from ci_cache.store import Store

NO_UV = {"PATH": ""}


def checks(diagnosis: doctor.Diagnosis) -> dict[str, doctor.Check]:
    return {c.name: c for c in diagnosis.checks}


def test_a_fresh_root_is_fine_but_for_uv(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    diagnosis = doctor.diagnose(store, NO_UV, windows=False)
    found = checks(diagnosis)
    assert list(found) == ["root", "layout", "disk", "paths", "uv", "locks", "jobs", "antivirus"]  # no uv cache
    assert found["layout"].ok and "the next job records layout" in found["layout"].detail
    assert found["root"].ok and (store.root / "CACHEDIR.TAG").is_file()
    assert not found["uv"].ok and "pip install uv" in found["uv"].advice
    assert found["jobs"].detail == "0 live, 0 stale job dir(s)"
    assert not diagnosis.ok
    text = doctor.render(diagnosis)
    assert "[PROBLEM] uv: uv not found on PATH\n      -> install uv" in text
    assert text.endswith("1 problem(s) found")


def test_the_root_s_layout_is_reported_and_a_newer_or_unreadable_one_is_a_problem(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    rootlayout.use(store, timeout=1).release()
    layout = checks(doctor.diagnose(store, NO_UV, windows=False))["layout"]
    assert layout.ok and layout.detail == f"layout {rootlayout.LAYOUT}, written by ci-cache {__version__}"
    rootlayout.write(store, 1)
    assert "the next job migrates it to" in checks(doctor.diagnose(store, NO_UV, windows=False))["layout"].detail
    store.layout_file.write_text(json.dumps({"layout": rootlayout.LAYOUT + 1, "written_by": "ci-cache 9.0"}))
    newer = checks(doctor.diagnose(store, NO_UV, windows=False))["layout"]
    assert not newer.ok and "written by ci-cache 9.0" in newer.detail and "upgrade ci-cache" in newer.advice
    store.layout_file.write_text("{not json")
    unreadable = checks(doctor.diagnose(store, NO_UV, windows=False))["layout"]
    assert not unreadable.ok and "is not a layout record" in unreadable.detail


def test_an_unusable_root_stops_the_checks_with_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    diagnosis = doctor.diagnose(Store(blocker / "root"), NO_UV, windows=False)
    (root,) = diagnosis.checks
    assert not root.ok and "is not usable" in root.detail and "CI_CACHE_ROOT" in root.advice


def test_a_stale_job_and_a_broken_shared_uv_cache_are_problems(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    store.ensure()
    (store.job_dir("jstale000000") / "uv").mkdir(parents=True)
    old = time.time() - 7200
    os.utime(store.job_dir("jstale000000"), (old, old))
    (store.shared_cache("uv") / ".tmpLeft").mkdir(parents=True)
    os.utime(store.shared_cache("uv") / ".tmpLeft", (old, old))
    found = checks(doctor.diagnose(store, NO_UV, windows=False))
    assert not found["jobs"].ok and "1 stale" in found["jobs"].detail and "ci-cache gc" in found["jobs"].advice
    assert "1 leftover temp dir(s)" in found["verify"].detail


def test_a_live_job_is_no_problem(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    store.ensure()
    store.job_dir("jlive0000000").mkdir()
    held = osapi.try_lock(store.lease("jlive0000000"))
    assert held is not None
    try:
        found = checks(doctor.diagnose(store, NO_UV, windows=False))
    finally:
        held.release()
    assert found["jobs"].ok and found["jobs"].detail == "1 live, 0 stale job dir(s)"


@pytest.mark.skipif(sys.platform == "win32", reason="chmod does not make a file unreadable on Windows")
def test_a_lock_file_nobody_can_open_is_named(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root opens any file")
    store = Store(tmp_path / "root")
    store.ensure()
    lock = store.write_lock("uv")
    lock.write_bytes(b"")
    lock.chmod(0)
    try:
        found = checks(doctor.diagnose(store, NO_UV, windows=False))
    finally:
        lock.chmod(0o644)
    assert not found["locks"].ok and str(lock) in found["locks"].detail


def test_on_windows_a_deep_root_needs_long_paths_and_the_antivirus_advice_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(osapi, "long_paths_enabled", lambda: False)
    deep = tmp_path / ("d" * 200) / "root"
    diagnosis = doctor.diagnose(Store(deep), NO_UV, windows=True)
    found = checks(diagnosis)
    assert not found["paths"].ok and "LongPathsEnabled" in found["paths"].advice
    assert found["antivirus"].ok and "Add-MpPreference -ExclusionPath" in found["antivirus"].advice
    assert "Add-MpPreference" in doctor.render(diagnosis)  # shown although it is no problem
    monkeypatch.setattr(osapi, "long_paths_enabled", lambda: True)
    assert checks(doctor.diagnose(Store(deep), NO_UV, windows=True))["paths"].ok


@pytest.mark.spawns
@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX fake uv")
def test_uv_on_the_path_is_asked_its_version(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "uv").write_text("#!/bin/sh\necho 'uv 9.9.9'\n")
    (bin_dir / "uv").chmod(0o755)
    found = checks(doctor.diagnose(Store(tmp_path / "root"), {"PATH": str(bin_dir)}, windows=False))
    assert found["uv"].ok and found["uv"].detail == f"{bin_dir / 'uv'}: uv 9.9.9"


@pytest.mark.parametrize(("case", "level"), [
    (({"uv_link_mode": "hardlink"}, {}, True), "WARNING"),
    (({"uv_link_mode": "unset"}, {}, True), "WARNING"),  # uv's own default on Windows
    (({"uv_link_mode": "unset"}, {"UV_LINK_MODE": "hardlink"}, True), "WARNING"),
    (({"uv_link_mode": "unset"}, {"UV_LINK_MODE": "copy"}, True), None),
    (({}, {"UV_LINK_MODE": "hardlink"}, True), None),  # auto: ci-cache sets copy for its jobs
    (({"uv_link_mode": "hardlink", "mode": "shared"}, {}, True), None),
    (({"uv_link_mode": "hardlink", "mode": "isolated"}, {}, False), None),  # no file sharing rules off Windows
    (({"uv_link_mode": "symlink", "mode": "isolated"}, {}, False), "PROBLEM"),
])
def test_doctor_warns_of_hardlinks_with_isolated_jobs_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: tuple[dict[str, str], dict[str, str], bool],
    level: str | None,
) -> None:
    settings, env, windows = case
    monkeypatch.setattr(osapi, "long_paths_enabled", lambda: True)
    cfg = config.Config.model_validate({"mode": "isolated", **settings})
    diagnosis = doctor.diagnose(Store(tmp_path / "root"), {**NO_UV, **env}, windows=windows, config=cfg)
    found = checks(diagnosis)
    text = doctor.render(diagnosis)
    if level is None:
        assert "link mode" not in found
        return
    assert f"[{level}] link mode: UV_LINK_MODE=" in text
    if level == "WARNING":
        assert found["link mode"].ok and "uv_link_mode: auto" in found["link mode"].advice
        assert "8 of 16 jobs failed" in found["link mode"].detail
        assert text.endswith("1 problem(s) found, 1 warning(s)")  # uv is missing here: that is the problem
    else:
        assert not found["link mode"].ok and "finish deletes" in found["link mode"].detail


def test_a_finished_jobs_held_dir_is_listed_but_no_problem(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    store.ensure()
    job_dir = jobdirs.new_dir(store, "jfin00000000")
    jobdirs.write_record(job_dir, {"job": "build-7", "dir": str(job_dir)})
    jobdirs.mark_finished(job_dir, jobdirs.record_of(job_dir))
    (store.jobs_dir / f"{fsops.TEMP_PREFIX}1-abc").mkdir()  # a dir a background delete works on
    state = status.collect(store)
    assert state["finished_jobs"] == [{"key": "jfin00000000", "job": "build-7", "dir": str(job_dir)}]
    assert state["stale_jobs"] == [] and len(state["trash"]) == 1
    text = status.render(state)
    assert "finished jobs whose dir was held open at finish: 1 (the next gc deletes them)" in text
    assert f"  build-7 {job_dir}" in text and "job dirs being deleted in the background: 1" in text
    found = checks(doctor.diagnose(store, NO_UV, windows=False))
    assert found["jobs"].ok and "1 finished job dir(s) held open at finish, which gc deletes" in found["jobs"].detail
