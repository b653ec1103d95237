"""Zip a cache folder and back, keeping symlinks, as GitLab's `cache:` archiver does.

Run as its own process (`python -m bench.archive zip|unzip SRC DEST`), so a job's archiving competes
for the CPU like the runner's helper process does, not for the bench's interpreter lock.
"""

from __future__ import annotations

import os
import stat
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

_LINK = stat.S_IFLNK | 0o777


def zip_tree(src: Path, archive: Path) -> int:
    """Deflate every file, folder and symlink under `src` into `archive`; returns the entry count."""
    count = 0
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(src):
            rel_dir = os.path.relpath(dirpath, src)
            for name in [*dirnames, *filenames]:
                path = os.path.join(dirpath, name)
                arc = os.path.normpath(os.path.join(rel_dir, name)).replace(os.sep, "/")
                if os.path.islink(path):
                    info = zipfile.ZipInfo(arc)
                    info.create_system = 3
                    info.external_attr = _LINK << 16
                    zf.writestr(info, os.readlink(path))
                elif os.path.isdir(path):
                    zf.write(path, arc + "/")
                else:
                    zf.write(path, arc)
                count += 1
            # os.walk would not descend into symlinked folders anyway; keep them as links only.
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return count


def unzip_tree(archive: Path, dest: Path) -> int:
    """Extract `archive` into `dest`, recreating symlinks; returns the entry count."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode()
                path = dest / info.filename
                path.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(target, path)
            else:
                extracted = zf.extract(info, dest)
                if mode & 0o777 and not info.is_dir():
                    os.chmod(extracted, mode & 0o777)  # zipfile drops permission bits itself
    return len(infos)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] not in ("zip", "unzip"):
        print("usage: python -m bench.archive zip SRC_DIR ARCHIVE | unzip ARCHIVE DEST_DIR", file=sys.stderr)
        return 2
    if args[0] == "zip":
        zip_tree(Path(args[1]), Path(args[2]))
    else:
        unzip_tree(Path(args[1]), Path(args[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
