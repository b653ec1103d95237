"""Two setups of one job id at the same instant, in real processes: exactly one gets the allocation.

Each round releases two `ci-cache setup` calls at once, in two worker processes that have imported the
CLI already and wait on their stdin, so that the two calls start within microseconds of each other and
their real lease holders race for the one lease. The winner's job then adds a file to its cache, the
loser's failure must not have touched it, and the winner's own finish (carrying its token) merges it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROUNDS = 50
JOB = "race-of-one-id"

# A worker: reads one JSON request per line ({"argv": [...], "env": {...}}), runs the CLI in process,
# answers {"code", "out", "err", "started"} on one line. Importing the CLI first keeps each call fast.
WORKER = r"""
import contextlib, io, json, os, sys, time
from ci_cache import cli
real_out = sys.stdout
for line in sys.stdin:
    request = json.loads(line)
    started = time.monotonic()
    os.environ.clear()
    os.environ.update(request["env"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(request["argv"])
    real_out.write(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                               "started": started}) + "\n")
    real_out.flush()
"""


class Worker:
    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=cwd, env=dict(os.environ))

    def send(self, argv: list[str], env: dict[str, str]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"argv": argv, "env": env}) + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the worker died"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def call(self, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
        self.send(argv, env)
        return self.answer()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Worker, Worker]]:
    pair = (Worker(tmp_path), Worker(tmp_path))
    try:
        yield pair
    finally:
        for worker in pair:
            worker.close()


def test_two_setups_of_one_id_at_once_give_one_allocation_and_one_clear_error(
    tmp_path: Path, workers: tuple[Worker, Worker]
) -> None:
    root = tmp_path / "root"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path / "home"), "CI_CACHE_ROOT": str(root),
           "CI_CACHE_JOB": JOB, "CI_CACHE_MODE": "isolated", "CI_CACHE_TOOLS": "pip,temp",
           "CI_CACHE_MERGE": "always"}
    setup = ["setup", "--format", "json"]
    skews = []
    started = time.monotonic()
    for n in range(ROUNDS):
        for worker in workers:
            worker.send(setup, env)
        answers = [worker.answer() for worker in workers]
        skews.append(abs(answers[0]["started"] - answers[1]["started"]))
        codes = sorted(a["code"] for a in answers)
        assert codes == [0, 6], (n, answers)
        won = next(i for i, a in enumerate(answers) if a["code"] == 0)
        winner, loser = answers[won], answers[1 - won]

        # One clear error: one line, naming the id, the lease and what to do; nothing on stdout.
        assert loser["out"] == ""
        (line,) = loser["err"].strip().splitlines()
        assert line.startswith("ci-cache: error: ") and f"'{JOB}'" in line
        assert str(root / "jobs") in line and ".lease" in line
        assert "give each job its own id with --job / CI_CACHE_JOB" in line

        # One allocation, the winner's, intact: its record carries the token it printed.
        alloc = json.loads(winner["out"])
        token = alloc["env"]["CI_CACHE_TOKEN"]
        records = list((root / "jobs").glob("j*.*.json"))
        assert len(records) == 1, records
        assert json.loads(records[0].read_text())["token"] == token
        cache = Path(alloc["caches"]["pip"])
        assert cache.is_dir()
        (cache / f"round-{n}.whl").write_text(str(n))

        # Its own finish merges what it added.
        done = workers[won].call(["finish", "--json"], {**env, "CI_CACHE_TOKEN": token})
        assert done["code"] == 0, done
        assert json.loads(done["out"])["merged"]["pip"]["files"] == 1, done
        assert (root / "shared" / "pip" / f"round-{n}.whl").read_text() == str(n)
        assert not Path(alloc["job_dir"]).exists()
        assert not list((root / "jobs").glob("j*"))
    elapsed = time.monotonic() - started
    # Not a speed claim: what the log says about how close the two calls came and what 50 rounds cost.
    print(f"{ROUNDS} rounds in {elapsed:.1f}s; start skew median {sorted(skews)[len(skews) // 2] * 1e3:.2f} ms, "
          f"max {max(skews) * 1e3:.2f} ms")
