"""Tests for goal 1's accounting: the subreaper wrapper of bench.rusage and the probes of bench.fixedcost."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from bench import fixedcost, rusage
from bench.model import CpuSample

linux_only = pytest.mark.skipif(not rusage.available(), reason="PR_SET_CHILD_SUBREAPER is Linux only")

# A child that starts a detached grandchild (its own session, not waited for) and exits at once. The
# grandchild burns CPU for a while and writes how much it used, by its own clock, to a file.
_DETACHING_PARENT = """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""
_BUSY_GRANDCHILD = """
import sys, time
while time.process_time() < 0.3:
    pass
open(sys.argv[1], "w").write(repr(time.process_time()))
"""


@linux_only
@pytest.mark.spawns
def test_the_cpu_of_a_detached_grandchild_is_counted(tmp_path: Path) -> None:
    report = tmp_path / "grandchild-cpu.txt"
    cmd = [sys.executable, "-c", _DETACHING_PARENT, _BUSY_GRANDCHILD, str(report)]
    sample = rusage.measure([cmd], {"PATH": "/usr/bin:/bin"}, tmp_path, tmp_path / "scratch")
    # The wrapper waited for the grandchild, which outlived its parent: it wrote its report first.
    grandchild_cpu = float(report.read_text())
    assert sample.processes == 1
    assert sample.total >= grandchild_cpu >= 0.3  # its CPU is in the sum (CPU time, not a wall clock)


@linux_only
@pytest.mark.spawns
def test_commands_run_in_turn_and_all_count(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    first = [sys.executable, "-c", "open('first', 'w').write('1')"]
    second = [sys.executable, "-c", "import os; assert os.path.exists('first')"]  # same cwd, after the first
    sample = rusage.measure([first, second], {"PATH": "/usr/bin:/bin"}, tmp_path / "ws", tmp_path / "scratch")
    assert sample.processes == 0  # nothing detached
    assert sample.user > 0 and sample.total == sample.user + sample.sys


@linux_only
@pytest.mark.spawns
def test_a_failing_command_is_an_error_naming_it(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(rusage.RusageError, match=r"exited 3: boom"):
        rusage.measure([cmd], {"PATH": "/usr/bin:/bin"}, tmp_path, tmp_path / "scratch")


@linux_only
@pytest.mark.spawns
def test_a_descendant_that_never_ends_is_killed_and_reported(tmp_path: Path) -> None:
    pid_file = tmp_path / "stuck.pid"
    stuck = "import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\nwhile True:\n    time.sleep(0.05)\n"
    cmd = [sys.executable, "-c", _DETACHING_PARENT, stuck, str(pid_file)]
    with pytest.raises(rusage.RusageError, match=r"still ran after 2 s \(killed\)"):
        rusage.measure([cmd], {"PATH": "/usr/bin:/bin"}, tmp_path, tmp_path / "scratch", drain_timeout=2.0)
    with pytest.raises(ProcessLookupError):  # killed and reaped: nothing is left running
        os.kill(int(pid_file.read_text()), 0)


@linux_only
@pytest.mark.spawns
def test_children_are_found_in_proc() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert proc.pid in rusage.children(os.getpid())
        assert proc.pid not in rusage.children(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_wrapper_usage() -> None:
    assert rusage.main([]) == 2


def test_interpreter_of_reads_the_shebang(tmp_path: Path) -> None:
    python = tmp_path / "bin" / "python3.11"
    python.parent.mkdir()
    python.write_text("")
    script = tmp_path / "bin" / "ci-cache"
    script.write_text(f"#!{python}\n# -*- coding: utf-8 -*-\n")
    assert fixedcost.interpreter_of(script) == python
    script.write_text("#!/bin/sh\nexec x\n")  # not Python: fall back to the running interpreter
    assert fixedcost.interpreter_of(script) == Path(sys.executable)
    assert fixedcost.interpreter_of(tmp_path / "missing") == Path(sys.executable)


def test_probe_commands() -> None:
    cli, py, root = Path("/v/bin/ci-cache"), Path("/v/bin/python"), Path("/w/root")
    assert fixedcost.commands("python", cli, py, root, "j") == [["/v/bin/python", "-c", "import sys"]]
    assert fixedcost.commands("run", cli, py, root, "j") == [
        ["/v/bin/ci-cache", "run", "--job", "j", "--root", "/w/root", "--mode", "isolated", "--", "true"]
    ]
    setup, finish = fixedcost.commands("steps", cli, py, root, "j")
    assert setup[1:3] == ["setup", "--format"] and "--mode" in setup
    assert finish[1] == "finish" and finish[-4:] == ["--job", "j", "--root", "/w/root"]
    with pytest.raises(ValueError, match="unknown fixed-cost probe"):
        fixedcost.commands("nope", cli, py, root, "j")


def test_fixed_cost_interleaves_probes_and_drops_the_warm_up(tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []

    def fake(commands: list[list[str]], env: Mapping[str, str], cwd: Path, scratch: Path) -> CpuSample:
        probe = "python" if commands[0][1] == "-c" else commands[0][1]
        job = commands[0][commands[0].index("--job") + 1] if "--job" in commands[0] else "-"
        calls.append((probe, job))
        return CpuSample(user=0.1 * len(calls), sys=0.0, processes=len(commands) - 1)

    cli = tmp_path / "ci-cache"
    cli.write_text(f"#!{sys.executable}\n")
    result = fixedcost.measure(cli, {}, tmp_path / "work", samples=3, sample=fake)
    assert [p for p, _ in calls] == ["python", "run", "setup"] * 4  # one round of warm-up, then 3 rounds
    assert len({job for _, job in calls if job != "-"}) == 8  # every ci-cache job has its own id
    assert {k: len(v) for k, v in result.samples.items()} == {"python": 3, "run": 3, "steps": 3}
    assert result.samples["python"][0].user == pytest.approx(0.4)  # the 4th call: the warm-up's 3 are dropped
    assert result.samples["steps"][0].processes == 1
    assert result.interpreter == sys.executable and "subreaper" in result.method
