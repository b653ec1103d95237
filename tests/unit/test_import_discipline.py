"""What a job's ci-cache process imports: only what its command uses (the fixed cost of issue 14, goal 1).

Each case runs in a fresh interpreter, as the CLI does: `import ci_cache.cli` alone, and the job commands
themselves (`run -- CMD`, `setup`, `finish`) on an empty root with no config file, the commands every CI
job pays for. What each may never load is listed here: what costs the most CPU to import (dataclasses with
inspect, hashlib with OpenSSL, shutil with the compression modules, subprocess with threading), and what
only another command or the fleet tier needs. How much CPU that saves is the bench's to show (G1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.spawns

# Never in a job's process, whatever its command.
HEAVY = {"dataclasses", "inspect", "hashlib", "_hashlib", "socket", "secrets", "random", "shutil", "bz2", "lzma",
         "tarfile", "zipfile", "asyncio", "concurrent.futures", "obstore", "yaml", "email", "http", "urllib.request"}
FLEET = {"ci_cache.remote.archive", "ci_cache.remote.sync", "ci_cache.remote.transfer", "ci_cache.remote.budget",
         "ci_cache.remote.cas", "ci_cache.remote.ops", "ci_cache.remote.obstore_store", "ci_cache.remote.cloudenv",
         "ci_cache.remote.layout", "ci_cache.remote.reports", "ci_cache.tools.uv.remote",
         "ci_cache.tools.uv.remote_import", "ci_cache.tools.uv.remote_export", "ci_cache.tools.uv.remote_names",
         "ci_cache.tools.uv.pointers", "ci_cache.tools.uv.buckets"}
OTHER_COMMANDS = {"ci_cache.tools.uv.prune", "ci_cache.tools.uv.verify", "ci_cache.prune", "ci_cache.verify",
                  "ci_cache.doctor", "ci_cache.status", "ci_cache.demo", "ci_cache.configfile_writer",
                  *(f"ci_cache.commands.{c}" for c in ("status", "gc", "verify", "prune", "doctor", "remote",
                                                          "config", "demo", "shim"))}
NEVER = HEAVY | FLEET | OTHER_COMMANDS
# The job's steps that only the other half (or another mode, or a warm cache) needs.
NOT_IN_SETUP = {"subprocess", "threading", "ci_cache.job.merge", "ci_cache.job.owner", "ci_cache.tools.uv.merge",
                "ci_cache.summary", "ci_cache.shims", "ci_cache.tools.uv.warm", "ci_cache.runner"}
NOT_IN_FINISH = {"subprocess", "threading", "ci_cache.job.seed", "ci_cache.tools.uv.seed", "ci_cache.tools.uv.warm",
                 "ci_cache.keyfiles", "ci_cache.gc", "ci_cache.shims", "ci_cache.runner"}


def modules_after(tmp_path: Path, code: str) -> set[str]:
    """sys.modules at the end of `code`, run by a fresh interpreter in an empty dir (no ci-cache.yml)."""
    out = tmp_path / "modules.json"
    script = f"{code}\nimport json, sys\nopen({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules)))\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_CACHE_", "PYTHON"))}
    env["CI_CACHE_ROOT"] = str(tmp_path / "root")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found: list[str] = json.loads(out.read_text())
    return set(found)


def job(*argv: str) -> str:
    return f"from ci_cache.cli import main\nassert main({list(argv)!r}) == 0"


def test_importing_the_cli_loads_no_command_and_nothing_heavy(tmp_path: Path) -> None:
    loaded = modules_after(tmp_path, "import ci_cache.cli")
    assert loaded & NEVER == set()
    assert {m for m in loaded if m.startswith("ci_cache.commands.")} == {"ci_cache.commands.options"}
    assert {"subprocess", "threading", "ci_cache.job.seed", "ci_cache.job.merge"} & loaded == set()


def test_run_loads_only_what_a_job_uses(tmp_path: Path) -> None:
    loaded = modules_after(tmp_path, job("run", "--job", "j1", "--mode", "isolated", "--", sys.executable, "-c", ""))
    assert loaded & NEVER == set()
    assert {"ci_cache.commands.run", "ci_cache.job.seed", "ci_cache.job.merge", "subprocess"} <= loaded
    assert {"ci_cache.shims", "ci_cache.tools.uv.warm"} & loaded == set()  # shared mode, a warm cache


def test_setup_and_finish_load_only_their_own_half(tmp_path: Path) -> None:
    setup = modules_after(tmp_path, job("setup", "--job", "j2", "--mode", "isolated", "--format", "json"))
    assert setup & (NEVER | NOT_IN_SETUP) == set()
    assert {"ci_cache.job.seed", "ci_cache.tools.uv.seed", "ci_cache.envformat"} <= setup
    finish = modules_after(tmp_path, job("finish", "--job", "j2", "--json"))
    assert finish & (NEVER | NOT_IN_FINISH) == set()
    assert {"ci_cache.job.merge", "ci_cache.tools.uv.merge", "ci_cache.summary"} <= finish


def test_the_lease_holder_imports_nothing_of_ci_cache(tmp_path: Path) -> None:
    from ci_cache import oslock

    source = Path(oslock.__file__).read_text(encoding="utf-8")
    assert "import ci_cache" not in source and "from ci_cache" not in source
    # What `python -I -S oslock.py` loads to take a lock and hold it: the module's code, run as the holder runs
    # it, and what it imports beyond what this probe itself needs.
    code = ("import sys; before = set(sys.modules); g = {'__name__': 'holder'}; "
            f"exec(compile(open({oslock.__file__!r}).read(), 'oslock.py', 'exec'), g); "
            f"g['try_lock']({str(tmp_path / 'x.lease')!r}, shared=True).release(); "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert {m for m in loaded if m.startswith("ci_cache")} == set()
    # os (which -S leaves out), the lock calls, and on Windows ctypes for LockFileEx.
    assert loaded <= {"__future__", "os", "os.path", "_collections_abc", "posixpath", "ntpath", "genericpath", "stat",
                      "_stat", "errno", "fcntl", "nt", "msvcrt", "ctypes", "ctypes.wintypes", "_ctypes", "struct",
                      "_struct"}, loaded
