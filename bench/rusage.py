"""CPU time of commands and of every process they start, detached ones included (Linux subreaper).

`python -m bench.rusage SPEC.json` marks itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), runs
the spec's commands one after the other, then waits until no descendant is left: a process that
detaches (setup's lease holder, a background `rm -rf`) is re-parented to this wrapper when its parent
exits, instead of to init, and is reaped here. RUSAGE_CHILDREN then holds the user and system CPU of
every process the commands started, and none of the wrapper's own. It prints one JSON object.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.jobs import with_bench_path
from bench.model import CpuSample

_PR_SET_CHILD_SUBREAPER = 36
# A descendant that outlives this is stuck (a lease holder nobody stopped): fail rather than hang.
DRAIN_TIMEOUT = 60.0
METHOD = (
    "user+sys CPU from RUSAGE_CHILDREN of a wrapper process that is a Linux child subreaper and waits "
    "until every descendant has exited, so detached processes (the lease holder, background deletes) count"
)


class RusageError(Exception):
    """A measured command failed, left a process behind, or the platform cannot count descendants."""


def available() -> bool:
    return sys.platform.startswith("linux")


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise RusageError(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}")


def children(parent: int) -> list[int]:
    """Pids whose parent is `parent`, from /proc."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 1 and int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def _kill_descendants() -> list[int]:
    """SIGKILL and reap our children until none is left (orphans of the killed ones come to us too)."""
    killed: list[int] = []
    for _ in range(100):
        pids = children(os.getpid())
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        killed += [p for p in pids if p not in killed]
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        if not pids:
            break
        time.sleep(0.02)
    return killed


def drain(timeout: float = DRAIN_TIMEOUT) -> int:
    """Reap every remaining descendant (re-parented orphans); returns how many there were.

    One still running after `timeout` is killed, with the rest of them, and reported as an error."""
    reaped = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid:
            reaped += 1
        elif time.monotonic() > deadline:
            stuck = _kill_descendants()
            raise RusageError(f"processes {stuck} started by the measured commands still ran after {timeout:g} s "
                              "(killed)")
        else:
            time.sleep(0.01)  # the wrapper's own CPU is not counted, and it barely uses any


def run_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run `spec["commands"]` in `spec["cwd"]` with `spec["env"]`; the CPU of all they started."""
    become_subreaper()
    timeout = float(spec.get("drain_timeout", DRAIN_TIMEOUT))
    env = dict(spec["env"])
    cwd = spec.get("cwd")
    for cmd in spec["commands"]:
        # stdout to a file, never a pipe: a detached child that kept the pipe open would stall us.
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            drain(timeout)
            tail = proc.stderr.decode(errors="replace").strip()[-800:]
            raise RusageError(f"{os.path.basename(cmd[0])} exited {proc.returncode}: {tail}")
    orphans = drain(timeout)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"user": usage.ru_utime, "sys": usage.ru_stime, "processes": orphans}


def measure(commands: Sequence[Sequence[str]], env: Mapping[str, str], cwd: Path, scratch: Path, *,
            drain_timeout: float = DRAIN_TIMEOUT) -> CpuSample:
    """The CPU of `commands` run in turn, counted by a subreaper wrapper process (see the module doc)."""
    if not available():
        raise RusageError("counting the CPU of detached processes needs Linux (PR_SET_CHILD_SUBREAPER)")
    scratch.mkdir(parents=True, exist_ok=True)
    spec_file = scratch / "rusage-spec.json"
    spec = {"commands": [list(c) for c in commands], "env": dict(env), "cwd": str(cwd), "drain_timeout": drain_timeout}
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "bench.rusage", str(spec_file)], env=with_bench_path(env),
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RusageError(proc.stderr.strip()[-1000:] or f"bench.rusage exited {proc.returncode}")
    data = json.loads(proc.stdout)
    return CpuSample(float(data["user"]), float(data["sys"]), int(data["processes"]))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m bench.rusage SPEC.json  (commands, env, cwd)", file=sys.stderr)
        return 2
    try:
        result = run_spec(json.loads(Path(args[0]).read_text(encoding="utf-8")))
    except RusageError as exc:
        print(f"bench.rusage: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
