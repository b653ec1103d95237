"""ci_cache.summary: the job summary as terminal text and as GitHub/GitLab markdown."""

from __future__ import annotations

from typing import Any

import pytest

from ci_cache import summary
from ci_cache.job import FinishResult
from ci_cache.tools.base import MergeStats, SeedStats


def finished(**extra: Any) -> dict[str, Any]:
    """A summary shaped as `run`/`finish` build it: FinishResult.as_json() plus the run's fields."""
    result = FinishResult(
        job="github:acme/widgets/99/1/test/win-3",
        key="j0123456789a",
        mode="isolated",
        status="success",
        merge_decision="merge: always",
        seeded={
            "uv": SeedStats(files=7300, bytes=512 * 1024**2, linked=7000, copied=300, entries=59).as_dict(),
            "pip": SeedStats(files=3, bytes=1536, linked=0, copied=3, scope="key files").as_dict(),
            "temp": SeedStats(scope="none").as_dict(),
        },
        merged={
            "uv": MergeStats(files=120, bytes=3 * 1024**2, entries=4, kept_existing=2).as_dict(),
            "pip": {"failed": "No space left on device"},
        },
        phases={"seed": 0.4321, "run": 12.5, "merge": 0.25},
        warnings=["seeding the pip cache was partial"],
    )
    data = result.as_json()
    data.update(extra)
    return data


def test_text_summary_has_one_line_per_tool_and_the_numbers() -> None:
    text = summary.text(finished(retries=["os error 32"]))
    lines = text.splitlines()
    assert lines[0].startswith("ci-cache: job github:acme/widgets/99/1/test/win-3 (isolated, status success)")
    assert "merge: always" in lines[0]
    uv_line = next(line for line in lines if line.strip().startswith("uv:"))
    assert "7300 files" in uv_line and "512.0 MiB" in uv_line and "7000 linked" in uv_line
    assert "300 copied" in uv_line and "full" in uv_line
    assert "4 entries" in uv_line and "120 files" in uv_line and "3.0 MiB" in uv_line and "2 already there" in uv_line
    pip_line = next(line for line in lines if line.strip().startswith("pip:"))
    assert "1.5 KiB" in pip_line and "key files" in pip_line
    assert "merged failed: No space left on device" in pip_line
    temp_line = next(line for line in lines if line.strip().startswith("temp:"))
    assert "seeded -" in temp_line and "merged -" in temp_line
    assert any("seed 0.43s" in line and "run 12.50s" in line for line in lines)
    assert any("1 retry on transient cache errors: os error 32" in line for line in lines)
    assert lines[-1] == "  warning: seeding the pip cache was partial"


def test_the_counts_say_what_they_count() -> None:
    """Files linked, files copied, and bytes copied: a link takes no space, so the bytes are the copies'."""
    lines = summary.text(finished()).splitlines()
    assert ("  uv: seeded 7300 files: 7000 linked, 300 copied, 512.0 MiB copied (full); merged 4 entries (120 "
            "files, 3.0 MiB copied); 2 already there") in lines
    assert ("  pip: seeded 3 files: 0 linked, 3 copied, 1.5 KiB copied (key files); merged failed: No space left "
            "on device") in lines


def test_markdown_summary_is_a_table() -> None:
    md = summary.markdown(finished(retries=["os error 32", "Access is denied"]))
    lines = md.splitlines()
    assert lines[0] == "### ci-cache: isolated job, status success"
    assert "| tool | seeded | merged back |" in lines
    assert "| --- | --- | --- |" in lines
    rows = [line for line in lines if line.startswith("| ") and not line.startswith(("| tool", "| ---"))]
    assert [row.split(" | ")[0] for row in rows] == ["| pip", "| temp", "| uv"]
    assert all(row.count(" | ") == 2 and row.endswith(" |") for row in rows)
    assert "2 retries on transient cache errors: os error 32, Access is denied" in md
    assert "> warning: seeding the pip cache was partial" in md
    assert md.endswith("\n")


def test_a_seed_failure_is_shown() -> None:
    data = finished(seeded={"uv": {"failed": "Permission denied"}}, merged={})
    assert "seeded failed: Permission denied" in summary.text(data)
    assert "failed: Permission denied" in summary.markdown(data)


def test_a_minimal_summary_renders() -> None:
    data: dict[str, Any] = {"job": "local:/src", "mode": "direct", "status": "failure",
                            "merge_decision": "mode direct: nothing to merge"}
    text = summary.text(data)
    assert text == "ci-cache: job local:/src (direct, status failure): mode direct: nothing to merge"
    md = summary.markdown(data)
    assert "status failure" in md and "time:" not in md.lower() and "retr" not in md


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 * 1024**2, "5.0 MiB"),
     (3 * 1024**3, "3.0 GiB"), (5 * 1024**4, "5120.0 GiB")],
)
def test_sizes_are_human(size: int, shown: str) -> None:
    data = finished(merged={"uv": MergeStats(bytes=size).as_dict()}, seeded={})
    assert f", {shown} copied);" in summary.text(data)


def test_markdown_keeps_pipes_in_messages_from_breaking_the_table() -> None:
    data = finished(merged={"uv": {"failed": "a | b"}}, seeded={})
    row = next(line for line in summary.markdown(data).splitlines() if line.startswith("| uv"))
    assert row.count(" | ") == 2


REMOTE = {
    "pull": {"key_files": ["/w/uv.lock"], "tools": {"uv": {
        "entries_installed": 12, "blobs": 8, "bytes": 3 * 1024**2, "seconds": 1.234, "entries_present": 4,
        "missing": ["demo-x: no entry on the remote"], "warnings": []}}},
    "push_decision": "remote.push: always",
    "push": {"uv": {"entries_pushed": 2, "blobs_pushed": 1, "bytes": 2048, "seconds": 0.4, "entries_present": 1}},
}


def test_the_summary_says_what_came_from_the_remote_and_what_went_to_it() -> None:
    data = finished(remote=REMOTE)
    line = next(x for x in summary.text(data).splitlines() if x.strip().startswith("remote (uv)"))
    assert ("pulled 12 entries (8 blobs, 3.0 MiB) in 1.23s, 4 already here, 1 not on the remote; pushed 2 entries "
            "(1 blobs, 2.0 KiB) in 0.40s, 1 already there") in line
    md = summary.markdown(data)
    assert "| remote | pulled at setup | pushed at finish |" in md
    assert "| uv | pulled 12 entries" in md


@pytest.mark.parametrize(("remote", "shown"), [
    ({"pull": {"skipped": "no lock, requirements or pyproject file in /w names a package"},
      "push_decision": "remote.push: never"},
     "nothing pulled (no lock, requirements or pyproject file in /w names a package); not pushed (remote.push: never)"),
    ({"pull": {"tools": {}}, "push_decision": "remote.push: always", "push": {}}, "pull failed; nothing new to push"),
    ({"pull": {"tools": {}}, "push_decision": "remote.push: success, and the job's status is failure"},
     "pull failed; not pushed (remote.push: success, and the job's status is failure)"),
])
def test_the_remote_line_says_why_nothing_moved(remote: dict[str, Any], shown: str) -> None:
    assert f"remote (uv): {shown}" in summary.text(finished(remote=remote))


def test_no_remote_no_remote_line() -> None:
    assert "remote" not in summary.text(finished()) and "remote" not in summary.markdown(finished())
