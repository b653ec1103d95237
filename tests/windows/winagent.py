"""Drive Windows Python processes under Wine step by step, from the test process.

`Agent` runs tests/windows/winside/agent.py in the lab's python.exe: every `call(code, **vars)` runs code
in that one Windows process and returns its `result`, so a test can make a process take a lock, open a
file or load a .pyd, then make another process try something, in a fixed order rather than by timing.
`run_to_exit` runs a Windows program to its exit (`python.exe -m ci_cache ...`, `cmd.exe /c x.bat`);
`scanning` runs the simulated on-access scanner (winside/scanner.py) around a block.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import selectors
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ci_cache import jobdirs
from ci_cache.providers import job_key
from ci_cache.store import Store

from .winlab import Arg, EnvValue, Lab, from_windows, start_windows, to_windows

WINSIDE = Path(__file__).resolve().parent / "winside"
AGENT_SCRIPT = WINSIDE / "agent.py"
SCANNER_SCRIPT = WINSIDE / "scanner.py"
CALL_TIMEOUT = 120.0


class AgentError(Exception):
    """The code raised in the Windows process; `info` has its type, message, winerror and cause."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self.info = dict(info)
        super().__init__(f"{info.get('type')}: {info.get('message')}\n{info.get('traceback', '')}")

    @property
    def type(self) -> str:
        return str(self.info.get("type"))

    @property
    def message(self) -> str:
        return str(self.info.get("message"))


class Agent:
    """One Windows python.exe serving calls on stdin; ends (releasing what it holds) on close()."""

    def __init__(self, lab: Lab, name: str, env: Mapping[str, EnvValue] | None = None) -> None:
        self.name = name
        self._proc = start_windows([lab.python_exe, AGENT_SCRIPT], env=env, stdin=subprocess.PIPE, the_lab=lab)
        self._replies: queue.Queue[str] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        hello = self._reply(CALL_TIMEOUT)
        if hello.get("value") != "ready":
            raise RuntimeError(f"agent {name} did not start: {hello}")

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._replies.put(line)
        self._replies.put("")  # EOF

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def _reply(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            self._proc.kill()
            raise TimeoutError(f"agent {self.name} gave no answer in {timeout:g}s; stderr:\n{self.stderr}") from None
        if not line:
            raise RuntimeError(f"agent {self.name} exited ({self._proc.wait()}); stderr:\n{self.stderr}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def call(self, source: str, /, timeout: float = CALL_TIMEOUT, **variables: Any) -> Any:
        """Run source in the agent; Path values arrive as Windows path strings. Returns its `result`."""
        sent = {k: to_windows(v) if isinstance(v, Path) else v for k, v in variables.items()}
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"code": source, "vars": sent}) + "\n")
        self._proc.stdin.flush()
        reply = self._reply(timeout)
        if not reply.get("ok"):
            raise AgentError(reply)
        return reply.get("value")

    def failure(self, source: str, /, timeout: float = CALL_TIMEOUT, **variables: Any) -> AgentError:
        """Run source that must raise; returns what it raised (an AssertionError if it did not)."""
        try:
            value = self.call(source, timeout, **variables)
        except AgentError as exc:
            return exc
        raise AssertionError(f"agent {self.name}: expected an exception, got result {value!r}")

    def kill(self) -> None:
        """End the process abruptly (what a crashed job looks like); the OS drops its handles and locks."""
        self._proc.kill()
        self._proc.wait()

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.close()
                self._proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@contextmanager
def scanning(lab: Lab, *tops: Path, hold: float = 2.0, poll: float = 0.01, folders: bool = True,
             seen_log: Path | None = None, only: str | None = None) -> Iterator[dict[str, Any]]:
    """Run winside/scanner.py on tops while the body runs; the dict gets its counts when it stops.
    `seen_log`: the scanner names there every file it sees appear; `only`: a glob of the paths below a top
    it looks at (all when None)."""
    argv: list[Arg] = [lab.python_exe, SCANNER_SCRIPT, "--hold", str(hold), "--poll", str(poll), "--log"]
    if seen_log is not None:
        argv += ["--seen-log", seen_log]
    if only is not None:
        argv += ["--only", only]
    proc = start_windows([*argv, *(["--folders"] if folders else []), *tops], stdin=subprocess.PIPE, the_lab=lab)
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    # Its stderr (a line per held file) is read as it comes: a full pipe would stop the scanner mid-hold.
    errors: list[str] = []
    drain = threading.Thread(target=lambda: errors.extend(proc.stderr or ()), daemon=True)
    drain.start()
    first = proc.stdout.readline()  # the scanner has taken its first look
    if first.strip() != "scanning":
        proc.kill()
        out = proc.stdout.read()
        drain.join(CALL_TIMEOUT)
        raise RuntimeError(f"the scanner did not start ({proc.returncode}): {first}{out}{''.join(errors)}")
    counts: dict[str, Any] = {}
    try:
        yield counts
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the scanner lets go and reports (one line: nothing fills that pipe)
        try:
            proc.wait(timeout=CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out = proc.stdout.read()
        drain.join(CALL_TIMEOUT)
        lines = out.strip().splitlines()
        err = "".join(errors)
        counts.update(json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"error": out + err})
        counts["held_paths"] = [line[5:].rstrip("\n") for line in errors if line.startswith("held ")]


def run_to_exit(
    lab: Lab,
    argv: Sequence[Arg],
    *,
    env: Mapping[str, EnvValue] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    on_stderr_line: Callable[[str], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Like winlab.run_windows, but done when the program exits, not when its output pipes close.

    Under Wine, a process started by a Windows program keeps that program's Unix stdout and stderr
    open (whatever handles it was given), so the detached lease holder of `ci-cache setup` would keep
    a reader waiting for EOF until `finish`. Output written before the exit is already in the pipe and
    is collected. on_stderr_line sees each stderr line as it arrives (e.g. to release a lock it waits on).
    """
    proc = start_windows(argv, env=env, cwd=cwd, the_lab=lab)
    assert proc.stdout is not None and proc.stderr is not None
    streams = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    pending = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for fd in streams:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            exited = proc.poll() is not None
            events = sel.select(timeout=0 if exited else 0.1)
            if not events and exited:
                break  # exited and nothing left in the pipes: a leftover holder may keep them open
            for key, _mask in events:
                fd = int(key.fd)
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(fd)
                    continue
                chunks[streams[fd]].append(data)
                if streams[fd] == "stderr" and on_stderr_line is not None:
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        on_stderr_line(line.decode("utf-8", "replace"))
            if time.monotonic() > deadline and proc.poll() is None:
                proc.kill()
                proc.wait()
                raise subprocess.TimeoutExpired(proc.args, timeout, b"".join(chunks["stdout"]),
                                                b"".join(chunks["stderr"]))
    proc.stdout.close()
    proc.stderr.close()
    text = {name: b"".join(parts).decode("utf-8", "replace").replace("\r\n", "\n") for name, parts in chunks.items()}
    return subprocess.CompletedProcess(proc.args, proc.wait(), text["stdout"], text["stderr"])


def record_of(root: Path, job: str) -> dict[str, Any] | None:
    """The record of a job's live allocation under `root` (`jobs/<key>.<gen>.json`), if it has one."""
    return jobdirs.current_record(Store(root), job_key(job))


def job_dir_of(root: Path, job: str) -> Path:
    """The dir of a job's live allocation under `root` (`jobs/<key>.<gen>`), as its record names it."""
    record = record_of(root, job)
    assert record is not None, f"job {job!r} has no live allocation under {root}"
    return from_windows(record["dir"])


def ci_cache_argv(lab: Lab, *args: Arg) -> list[Arg]:
    """`python.exe -m ci_cache ARGS` under the lab's Windows Python."""
    return [lab.python_exe, "-m", "ci_cache", *args]
