"""Running the wrapped command: stream its output, pass its exit code and signals, retry cache errors."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any

from ci_cache import log, osapi
from ci_cache.errors import CommandNotFound
from ci_cache.retry import Policy

# Only the end of the output matters for spotting a cache error; keep memory bounded.
TAIL_BYTES = 64 * 1024


class RunOutcome:
    def __init__(self, exit_code: int) -> None:
        self.exit_code = exit_code
        self.attempts = 1
        self.retries: list[str] = []
        self.seconds = 0.0
        self.interrupted = False


class _Tee(threading.Thread):
    """Copy a child's pipe to our own stream as it comes, keeping the tail for inspection."""

    def __init__(self, source: Any, sink: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.source, self.sink = source, sink
        self.tail = bytearray()

    def run(self) -> None:
        for chunk in iter(lambda: self.source.read1(65536), b""):
            with contextlib.suppress(OSError, ValueError):
                self.sink.write(chunk)
                self.sink.flush()
            self.tail += chunk
            del self.tail[:-TAIL_BYTES]


_NOT_FOUND_HINT = "check the job's PATH"


def resolve(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Find the program on the job's PATH (not ours), so `run -- uv` finds the job's uv.

    Windows' CreateProcess searches our PATH, so there it is found here first. On POSIX, Popen searches the
    PATH of the env it is given (`os.get_exec_path(env)`), and a missing program fails its start with the same
    CommandNotFound (`_attempt`); shutil, which would find it here, costs every job its import.
    """
    if not osapi.IS_WINDOWS:
        return list(argv)
    import shutil

    found = shutil.which(argv[0], path=env.get("PATH"))
    if found is None:
        raise CommandNotFound(f"command not found: {argv[0]}", hint=_NOT_FOUND_HINT)
    return [found, *argv[1:]]


@contextlib.contextmanager
def _forward_signals(get_child: Callable[[], subprocess.Popen[bytes] | None], outcome: RunOutcome) -> Iterator[None]:
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT:
            outcome.interrupted = True
        child = get_child()
        if child is not None and child.poll() is None:
            osapi.send_signal(child, signum)

    if threading.current_thread() is threading.main_thread():
        for sig in osapi.forwardable_signals():
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    retry: Policy | None,
    around_attempt: Callable[[], contextlib.AbstractContextManager[object]] | None = None,
) -> RunOutcome:
    """Run the command (no shell); retry only transient cache errors, as the `retry` policy says (None: never).

    `around_attempt` gives the block each attempt runs in (shared mode: the caches' writer locks).
    """
    command = resolve(argv, env)
    outcome = RunOutcome(exit_code=0)
    child: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    with _forward_signals(lambda: child[-1] if child else None, outcome):
        while True:
            guard = around_attempt() if around_attempt else contextlib.nullcontext()
            with guard:
                code, tail = _attempt(command, env, capture=retry is not None and retry.attempts > 1, child=child)
            outcome.exit_code = code
            if code == 0 or outcome.interrupted or retry is None or outcome.attempts >= retry.attempts:
                break
            reason = retry.transient_reason(tail)
            if reason is None:
                break
            delay = retry.delay(outcome.attempts)
            outcome.retries.append(reason)
            log.warn(f"attempt {outcome.attempts} of {retry.attempts} failed on a transient cache error "
                     f"({reason}); retrying in {delay:.1f}s")
            time.sleep(delay)
            outcome.attempts += 1
    outcome.seconds = time.monotonic() - started
    if outcome.interrupted:
        outcome.exit_code = 130
    elif outcome.exit_code < 0:
        outcome.exit_code = 128 - outcome.exit_code  # killed by a signal: the shell's convention
    return outcome


def _attempt(command: list[str], env: Mapping[str, str], *, capture: bool,
             child: list[subprocess.Popen[bytes]]) -> tuple[int, str]:
    pipe = subprocess.PIPE if capture else None
    try:
        proc = subprocess.Popen(command, env=dict(env), stdout=pipe, stderr=pipe,
                                **osapi.child_popen_kwargs())  # type: ignore[call-overload]
    except FileNotFoundError as exc:
        raise CommandNotFound(f"command not found: {command[0]}", hint=_NOT_FOUND_HINT) from exc
    except PermissionError as exc:
        raise CommandNotFound(f"cannot execute {command[0]}: {exc.strerror}") from exc
    child.append(proc)
    if not capture:
        return proc.wait(), ""
    assert proc.stdout is not None and proc.stderr is not None
    tees = [_Tee(proc.stdout, sys.stdout.buffer), _Tee(proc.stderr, sys.stderr.buffer)]
    for tee in tees:
        tee.start()
    code = proc.wait()
    for tee in tees:
        tee.join()
    tail = b"".join(bytes(t.tail) for t in tees).decode("utf-8", "replace")
    return code, tail
