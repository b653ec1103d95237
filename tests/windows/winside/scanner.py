"""A simulated on-access scanner (antivirus, EDR), run by the lab's Windows python.exe under Wine.

    python.exe scanner.py [--hold 2] [--poll 0.1] [--folders] [--log] [--seen-log FILE] [--only GLOB] DIR...

Polls the DIRs (which need not exist yet) and opens every newly seen file, holding it for --hold
seconds WITHOUT delete sharing (CreateFileW with FILE_SHARE_READ | FILE_SHARE_WRITE only), as scanners
do. Renaming or deleting a held file then fails with os error 5 or 32, which is what the reports show.

- On Windows, a file held open inside a folder also blocks renaming that folder (uv's `.tmpXXXX` ->
  `archive-v0\\<id>`: "failed to rename file ... Access is denied"). Wine only refuses to rename a
  folder that is itself open. So --folders also holds, for as long, the folders between a held file
  and the watched DIR: Windows' behaviour, under Wine.
- Like real scanners, it caches verdicts: a file whose name and size it has scanned before is not held
  again. (Without that, every retry's fresh copy of the same wheel would be held like the first.)

--only GLOB: only files whose path below a DIR (with `/` separators) matches GLOB, e.g. `*/uv/*`.

--seen-log FILE: every file it sees for the first time is named there, one a line (what a job created, as
far as a scanner polling every --poll seconds can tell).

Prints "scanning" once it has taken its first look, runs until stdin closes, then prints one JSON line:
files held, files let go at once (scanned before), files missed (gone before it could open them), and
polling passes.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

GENERIC_READ = 0x80000000
FILE_SHARE_READ_WRITE = 0x1 | 0x2  # no FILE_SHARE_DELETE (0x4): that is the point
OPEN_EXISTING = 3
FILE_FLAG_BACKUP_SEMANTICS = 0x02000000  # needed to open a folder

Opener = Callable[[str], "int | None"]
Closer = Callable[[int], None]


def _win_api() -> tuple[Opener, Closer]:
    """CreateFileW with the scanner's share mode, and CloseHandle."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    kernel32.CreateFileW.restype = wintypes.HANDLE
    kernel32.CreateFileW.argtypes = (wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID,
                                     wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE)
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    invalid = ctypes.c_void_p(-1).value

    def open_entry(path: str) -> int | None:
        handle = kernel32.CreateFileW(path, GENERIC_READ, FILE_SHARE_READ_WRITE, None, OPEN_EXISTING,
                                      FILE_FLAG_BACKUP_SEMANTICS, None)
        return None if not handle or handle == invalid else int(handle)

    def close(handle: int) -> None:
        kernel32.CloseHandle(handle)

    return open_entry, close


def _files(top: str) -> Iterator[str]:
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                stack.append(entry.path)
            else:
                yield entry.path


def _folders_between(path: str, top: str) -> list[str]:
    """The folders above path, up to (not including) top."""
    found = []
    folder = os.path.dirname(path)
    while len(folder) > len(top) and folder.startswith(top):
        found.append(folder)
        folder = os.path.dirname(folder)
    return found


def _identity(path: str) -> tuple[str, int] | None:
    """What the scan cache knows a file by: its name and size (a stat, which holds nothing open)."""
    try:
        return os.path.basename(path), os.stat(path).st_size
    except OSError:
        return None


@dataclass
class _Held:
    since: float
    path: str
    handles: list[int]


@dataclass
class Scanner:
    """The scanner's state: what it has seen (by path), scanned (by name and size), and holds now."""

    tops: list[str]
    hold: float
    folders: bool
    log: bool
    open_entry: Opener
    close: Closer
    seen_log: TextIO | None = None
    only: str | None = None
    seen: set[str] = field(default_factory=set)
    scanned: set[tuple[str, int]] = field(default_factory=set)  # (name, size) of files scanned
    held: list[_Held] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"held": 0, "cached": 0, "missed": 0, "passes": 0})

    def look(self) -> None:
        """One pass: take hold of new files not scanned before, let go of the ones held long enough."""
        now = time.monotonic()
        for top in self.tops:
            for path in _files(top):
                if self.only and not fnmatch.fnmatchcase(os.path.relpath(path, top).replace(os.sep, "/"), self.only):
                    continue
                if path in self.seen:
                    continue
                self.seen.add(path)
                if self.seen_log is not None:
                    self.seen_log.write(path + "\n")
                identity = _identity(path)
                if identity in self.scanned:
                    self.counts["cached"] += 1
                    continue
                item = self._take(path, top, now)
                if item is None:
                    continue
                if identity is not None:
                    self.scanned.add(identity)
                self.held.append(item)
                self.counts["held"] += 1
                if self.log:
                    print(f"held {path}", file=sys.stderr, flush=True)
        self._let_go(now)
        self.counts["passes"] += 1

    def _take(self, path: str, top: str, now: float) -> _Held | None:
        handle = self.open_entry(path)
        if handle is None:
            self.counts["missed"] += 1  # gone already, or opened exclusively by its writer
            return None
        handles = [handle]
        for folder in _folders_between(path, top) if self.folders else []:
            folder_handle = self.open_entry(folder)
            if folder_handle is not None:
                handles.append(folder_handle)
        return _Held(now, path, handles)

    def _let_go(self, now: float, everything: bool = False) -> None:
        keep = []
        for item in self.held:
            # What the scan read: the file may have been still growing when it was first seen.
            identity = _identity(item.path)
            if identity is not None:
                self.scanned.add(identity)
            if everything or now - item.since >= self.hold:
                for handle in item.handles:
                    self.close(handle)
            else:
                keep.append(item)
        self.held = keep

    def finish(self) -> None:
        self._let_go(time.monotonic(), everything=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hold", type=float, default=2.0)
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--folders", action="store_true",
                        help="also hold the folders above a held file (Windows blocks renaming them)")
    parser.add_argument("--log", action="store_true", help="name every file it holds on stderr")
    parser.add_argument("--seen-log", help="name every file seen for the first time in this file")
    parser.add_argument("--only", help="only files whose path below a DIR matches this glob")
    parser.add_argument("tops", nargs="+")
    args = parser.parse_args()
    open_entry, close = _win_api()
    seen_log = open(args.seen_log, "w", encoding="utf-8") if args.seen_log else None  # noqa: SIM115
    scanner = Scanner([os.path.abspath(t) for t in args.tops], args.hold, args.folders, args.log, open_entry, close,
                      seen_log=seen_log, only=args.only)
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    scanner.look()
    print("scanning", flush=True)
    while not stop.wait(args.poll):
        scanner.look()
    scanner.finish()
    if seen_log is not None:
        seen_log.close()
    print(json.dumps(scanner.counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
