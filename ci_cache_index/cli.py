"""``python -m ci_cache_index build|serve``: generate an index into a folder, or serve one."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ci_cache_index.build import build_index
from ci_cache_index.fsutil import write_if_changed
from ci_cache_index.network import NetworkProfile, parse_bandwidth
from ci_cache_index.server import IndexServer
from ci_cache_index.specs import PackageSpec, demo_specs, scale_specs

_DESCRIPTION = "Generate and serve a local package index (wheels, offline-buildable sdists, PEP 503)."


def _cmd_build(args: argparse.Namespace) -> int:
    specs: list[PackageSpec] = []
    if args.demo or args.scale is None:
        specs += demo_specs()
    if args.scale is not None:
        specs += scale_specs(args.scale, args.files_per_package)
    root = build_index(Path(args.dir), specs)
    print(f"built {len(specs)} package specs into {root / 'simple'}", file=sys.stderr)
    return 0


def server_from_args(args: argparse.Namespace) -> IndexServer:
    """The (not yet started) server that ``serve``'s flags describe."""
    return IndexServer(
        Path(args.dir),
        access_log=Path(args.access_log) if args.access_log else None,
        port=args.port,
        simple_max_age=args.simple_max_age,
        network=NetworkProfile(latency=args.latency_ms / 1000, bandwidth=args.bandwidth),
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not (root / "simple").is_dir():
        print(f"error: {root / 'simple'} does not exist; run `build {root}` first", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if hasattr(signal, "SIGBREAK"):  # Windows: what CTRL_BREAK_EVENT delivers to a console process group
        signal.signal(signal.SIGBREAK, on_signal)
    with server_from_args(args) as srv:
        if args.port_file:
            write_if_changed(Path(args.port_file), f"{srv.port}\n".encode())
        if srv.network.active:
            print(f"network profile: {srv.network.describe()}", file=sys.stderr, flush=True)
        print(srv.url, flush=True)
        while not stop.wait(0.5):  # a timed wait keeps Ctrl-C deliverable on Windows
            pass
    return 0


def _latency_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds >= 0, such as 30")
    return value


def _bandwidth(text: str) -> int:
    try:
        return parse_bandwidth(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m ci_cache_index", description=_DESCRIPTION)
    sub = root.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="generate packages and a PEP 503 index under DIR")
    build.add_argument("dir")
    build.add_argument("--demo", action="store_true", help="the demo package set (default without --scale)")
    build.add_argument("--scale", type=int, metavar="N", help="N generated scale-pkg-NNNN packages")
    build.add_argument("--files-per-package", type=int, default=10, metavar="M")
    build.set_defaults(func=_cmd_build)
    serve = sub.add_parser("serve", help="serve DIR on 127.0.0.1 until SIGTERM/SIGINT")
    serve.add_argument("dir")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--port-file", help="write the port here once listening")
    serve.add_argument("--access-log", help="append each requested path to this file")
    serve.add_argument(
        "--simple-max-age", type=int, default=600, metavar="S", help="Cache-Control max-age of /simple pages"
    )
    serve.add_argument(
        "--latency-ms",
        type=_latency_ms,
        default=0.0,
        metavar="MS",
        help="add this many milliseconds before every response (one round trip per request; default 0)",
    )
    serve.add_argument(
        "--bandwidth",
        type=_bandwidth,
        metavar="RATE",
        help="cap what the server sends at RATE bytes/s, shared by all connections (e.g. 500k, 12.5M, 1G; "
        "decimal units; default: no cap)",
    )
    serve.set_defaults(func=_cmd_serve)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result
