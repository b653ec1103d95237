"""Which archive format the remote tier stores: tar+gzip levels, zip and plain tar, side by side.

Each real wheel is unpacked (as uv's `archive-v0/<id>` holds it), then every format packs and unpacks
it, interleaved in rounds so that machine noise hits all formats alike. Reported per format: bytes
stored, CPU seconds to pack, seconds to unpack, and the time to move the bytes over a few link speeds.

    python -m bench.remote_archive [--wheels DIR] [--rounds 3]

Without --wheels it uses the bench's realistic wheel set (downloaded once into the dev home).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ci_cache.remote import archive

LINKS_MB_S = (25, 100, 500)  # a site link to a cloud region, a good one, a same-region VM


def _zip_pack(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                zf.write(path, os.path.relpath(path, folder).replace(os.sep, "/"))
    return buf.getvalue()


def _zip_unpack(data: bytes, dest: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(dest)


def _tar(level: int) -> tuple[Callable[[Path], bytes], Callable[[bytes, Path], None]]:
    def pack(folder: Path) -> bytes:
        return archive.pack_bytes(folder, level=level)[0]

    def unpack(data: bytes, dest: Path) -> None:
        archive.unpack(io.BytesIO(data), dest, what="bench")

    return pack, unpack


FORMATS: dict[str, tuple[Callable[[Path], bytes], Callable[[bytes, Path], None]]] = {
    "tar": _tar(0), "tar.gz-1": _tar(1), "tar.gz-3": _tar(3), "tar.gz-6": _tar(6),
    "zip-deflate-1": (_zip_pack, _zip_unpack),
}


def _unpack_wheels(wheels: Sequence[Path], into: Path) -> list[Path]:
    folders = []
    for wheel in wheels:
        folder = into / wheel.stem
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(folder)
        folders.append(folder)
    return folders


def _wheels(args: argparse.Namespace) -> list[Path]:
    if args.wheels:
        return sorted(Path(args.wheels).glob("*.whl"))
    from bench import wheels

    root, names = wheels.ensure_realistic(wheels.dev_home(os.environ))
    return [root / "files" / name for name in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", help="a folder of .whl files (default: the bench's realistic set)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    wheel_files = _wheels(args)
    if not wheel_files:
        print("bench: no wheels found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ci-cache-bench-archive-") as tmp:
        work = Path(tmp)
        folders = _unpack_wheels(wheel_files, work / "src")
        raw = sum(f.stat().st_size for folder in folders for f in folder.rglob("*") if f.is_file())
        files = sum(1 for folder in folders for f in folder.rglob("*") if f.is_file())
        sizes: dict[str, int] = {}
        pack_cpu: dict[str, list[float]] = {name: [] for name in FORMATS}
        unpack_s: dict[str, list[float]] = {name: [] for name in FORMATS}
        for round_no in range(args.rounds):
            for name, (pack, unpack) in FORMATS.items():  # interleaved: every format in every round
                cpu = time.process_time()
                blobs = [pack(folder) for folder in folders]
                pack_cpu[name].append(time.process_time() - cpu)
                if name.startswith("tar"):
                    assert blobs == [pack(folder) for folder in folders], f"{name} is not deterministic"
                sizes[name] = sum(len(b) for b in blobs)
                dest = work / f"out-{round_no}-{name}"
                dest.mkdir()
                cpu = time.process_time()  # CPU (user + system), not wall time: the machine may be shared
                for i, blob in enumerate(blobs):
                    unpack(blob, dest / str(i))
                unpack_s[name].append(time.process_time() - cpu)
                shutil.rmtree(dest)
    print(f"{len(folders)} wheels unpacked: {files} files, {raw / 1e6:.1f} MB; median of {args.rounds} rounds\n")
    header = f"{'format':<15}{'stored MB':>10}{'ratio':>7}{'pack cpu s':>11}{'unpack cpu':>11}"
    header += "".join(f"{f'@{mb}MB/s s':>12}" for mb in LINKS_MB_S)
    print(header)
    for name in FORMATS:
        pack_s, unpack_t = statistics.median(pack_cpu[name]), statistics.median(unpack_s[name])
        row = f"{name:<15}{sizes[name] / 1e6:>10.1f}{sizes[name] / raw:>7.2f}{pack_s:>11.2f}{unpack_t:>11.2f}"
        # A pull costs transfer + unpack; compare formats per link speed.
        row += "".join(f"{sizes[name] / (mb * 1e6) + unpack_t:>12.2f}" for mb in LINKS_MB_S)
        print(row)
    print("\n@N MB/s = seconds to download at N MB/s, plus the unpack CPU time (what a pull costs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
