"""The job summary: what was seeded, what was merged, how long each phase took; and where it is shown."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ci_cache import fsops, log

# Where GitHub shows a step's markdown summary; the file is appended to, one step after another.
STEP_SUMMARY_VAR = "GITHUB_STEP_SUMMARY"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _tool_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    seeded: dict[str, Any] = summary.get("seeded", {})
    merged: dict[str, Any] = summary.get("merged", {})
    for tool in sorted(set(seeded) | set(merged)):
        s, m = seeded.get(tool, {}), merged.get(tool, {})
        if "failed" in s:
            seed_text = f"failed: {s['failed']}"
        elif s.get("scope") == "none" or not s:
            seed_text = "-"
        else:
            # A link takes no space: the bytes are those of the copies alone.
            seed_text = (f"{s.get('files', 0)} files: {s.get('linked', 0)} linked, {s.get('copied', 0)} copied, "
                         f"{_size(s.get('bytes', 0))} copied ({s.get('scope')})")
        if "failed" in m:
            merge_text = f"failed: {m['failed']}"
        elif m:
            merge_text = (f"{m.get('entries', 0)} entries ({m.get('files', 0)} files, {_size(m.get('bytes', 0))} "
                          f"copied); {m.get('kept_existing', 0)} already there")
        else:
            merge_text = "-"
        rows.append((tool, seed_text, merge_text))
    return rows


def _pulled(tool: str, pull: dict[str, Any]) -> str:
    report: dict[str, Any] = pull.get("tools", {}).get(tool, {})
    if not pull:
        return "nothing pulled"
    if "skipped" in pull:
        return f"nothing pulled ({pull['skipped']})"
    if not report:
        return "pull failed"
    text = _moved("pulled", report, report.get("entries_installed", 0), report.get("blobs", 0), "already here")
    if report.get("missing"):
        text += f", {len(report['missing'])} not on the remote"
    return text


def _moved(verb: str, report: dict[str, Any], entries: int, blobs: int, present: str) -> str:
    """`pulled 12 entries (8 blobs, 3.0 MiB) in 1.23s, 4 already here`."""
    text = f"{verb} {entries} entries ({blobs} blobs, {_size(report.get('bytes', 0))})"
    text += f" in {report.get('seconds', 0):.2f}s"
    return text + (f", {report['entries_present']} {present}" if report.get("entries_present") else "")


def _pushed(tool: str, remote: dict[str, Any]) -> str:
    decision = remote.get("push_decision", "")
    if "push" not in remote:
        return f"not pushed ({decision})" if decision else "not pushed"
    report: dict[str, Any] = remote["push"].get(tool, {})
    if not report:
        return "nothing new to push"
    return _moved("pushed", report, report.get("entries_pushed", 0), report.get("blobs_pushed", 0), "already there")


def _remote_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(tool, what came from the remote, what went to it), for the tools that travel through one."""
    remote: dict[str, Any] = summary.get("remote", {})
    if not remote:
        return []
    pull: dict[str, Any] = remote.get("pull", {})
    tools = sorted(set(pull.get("tools", {})) | set(remote.get("push", {}))) or ["uv"]
    return [(tool, _pulled(tool, pull), _pushed(tool, remote)) for tool in tools]


def _phases(summary: dict[str, Any]) -> str:
    phases: dict[str, float] = summary.get("phases", {})
    return ", ".join(f"{k} {v:.2f}s" for k, v in phases.items())


def _retries(summary: dict[str, Any]) -> str | None:
    retries: list[str] = summary.get("retries", [])
    if not retries:
        return None
    return f"{len(retries)} retr{'y' if len(retries) == 1 else 'ies'} on transient cache errors: " + ", ".join(
        retries
    )


def text(summary: dict[str, Any]) -> str:
    lines = [f"ci-cache: job {summary.get('job')} ({summary.get('mode')}, status {summary.get('status')}): "
             f"{summary.get('merge_decision', '')}"]
    for tool, seed_text, merge_text in _tool_rows(summary):
        lines.append(f"  {tool}: seeded {seed_text}; merged {merge_text}")
    for tool, pulled, pushed in _remote_rows(summary):
        lines.append(f"  remote ({tool}): {pulled}; {pushed}")
    if summary.get("phases"):
        lines.append(f"  time: {_phases(summary)}")
    retry_line = _retries(summary)
    if retry_line:
        lines.append(f"  {retry_line}")
    left = _left_for_gc(summary)
    if left:
        lines.append(f"  {left}")
    lines.extend(f"  warning: {w}" for w in summary.get("warnings", []))
    return "\n".join(lines)


def _left_for_gc(summary: dict[str, Any]) -> str | None:
    cleanup: dict[str, str] = summary.get("cleanup") or {}
    if "left_for_gc" not in cleanup:
        return None
    return (f"cleanup: the job dir {cleanup['left_for_gc']} was held open ({cleanup.get('reason')}), by a scan or "
            "a process the job left running: it is marked finished, and the next gc deletes it")


def _cell(text: str) -> str:
    """A markdown table cell: a `|` in a message must not end the cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"### ci-cache: {summary.get('mode')} job, status {summary.get('status')}",
        "",
        f"{summary.get('merge_decision', '')}",
        "",
        "| tool | seeded | merged back |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {_cell(t)} | {_cell(s)} | {_cell(m)} |" for t, s, m in _tool_rows(summary)]
    remote_rows = _remote_rows(summary)
    if remote_rows:
        lines += ["", "| remote | pulled at setup | pushed at finish |", "| --- | --- | --- |"]
        lines += [f"| {_cell(t)} | {_cell(pl)} | {_cell(ps)} |" for t, pl, ps in remote_rows]
    if summary.get("phases"):
        lines += ["", f"Time: {_phases(summary)}"]
    retry_line = _retries(summary)
    if retry_line:
        lines += ["", retry_line]
    left = _left_for_gc(summary)
    if left:
        lines += ["", _cell(left)]
    lines += [f"\n> warning: {w}" for w in summary.get("warnings", [])]
    return "\n".join(lines) + "\n"


def report(summary: dict[str, Any], env: Mapping[str, str], *, as_json: bool, json_file: str | None = None,
           show_text: bool = True) -> None:
    """Show the summary: as JSON on stdout or (when `show_text`) as text on stderr, also as JSON in
    `json_file` when given, and as markdown in the CI's step summary when it has one."""
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    elif show_text:
        log.info(text(summary).removeprefix("ci-cache: "))
    if json_file:
        fsops.write_atomic(Path(json_file), json.dumps(summary, indent=2, default=str).encode(), durable=False)
    step_summary = env.get(STEP_SUMMARY_VAR)
    if step_summary:
        with contextlib.suppress(OSError), open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(markdown(summary))
