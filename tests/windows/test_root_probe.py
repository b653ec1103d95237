"""The root's writability probe (Store.ensure) under a scanner that holds fresh files, under Wine.

An on-access scanner opens every newly written file without delete sharing, so deleting the probe file
fails with a sharing violation. That once made ci-cache call a perfectly writable root "not usable" and
run the job unprotected (1 run in 184). The probe's write is what proves the root writable; the file a
scanner holds is left for gc. Repeated 200 times, with every probe file held (the held open happens right
after the write, as a scanner's does), and again with the real simulated scanner (winside/scanner.py)
watching the root: never "not usable", and gc takes the leftovers once they are let go.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .winagent import WINSIDE, Agent, scanning
from .winlab import Lab

pytestmark = pytest.mark.windows

REPEATS = 200

PRELUDE = """
import os, threading, time
from pathlib import Path
from ci_cache import fsops, gc
from ci_cache.errors import StoreError
from ci_cache.store import Store
"""

# Every file written straight into the jobs dir (the probe) is opened at once, without delete sharing, by
# the scanner's own CreateFileW call, and let go `hold` seconds later.
HOLD_EVERY_PROBE = """
import sys
sys.path.insert(0, winside)  # the embeddable Python does not put a script's folder on sys.path
import scanner
open_entry, close_entry = scanner._win_api()
held = []
real_write_new = fsops.write_new
def write_new_then_held(path, data, **kwargs):
    real_write_new(path, data, **kwargs)
    if Path(path).parent == store.jobs_dir:
        handle = open_entry(str(path))
        assert handle is not None, f"could not hold {path}"
        held.append(str(path))
        threading.Timer(hold, close_entry, [handle]).start()
fsops.write_new = write_new_then_held
"""

PROBE_REPEATEDLY = """
failures = []
started = time.monotonic()
for _ in range(repeats):
    try:
        store.ensure()
    except StoreError as exc:
        failures.append(str(exc))
result = {"failures": failures, "seconds": time.monotonic() - started,
          "left": sorted(n for n in os.listdir(store.jobs_dir) if fsops.is_temp_name(n))}
"""

# Once the holds are over, gc deletes what was left (after its quiet time: `now` is moved past it).
GC_LATER = """
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    report = gc.collect(store, grace=3600, now=time.time() + 2 * gc.TRASH_QUIET_SECONDS)
    if not os.listdir(store.jobs_dir):
        break
    time.sleep(0.5)
result = {"left": os.listdir(store.jobs_dir), "keys": store.job_keys()}
"""


@pytest.fixture
def agent(wine_lab: Lab) -> Iterator[Agent]:
    with Agent(wine_lab, "prober") as started:
        started.call(PRELUDE)
        yield started


def test_the_probe_under_a_held_file_never_calls_the_root_unusable(agent: Agent, tmp_path: Path,
                                                                    tier_report: list[str]) -> None:
    root = tmp_path / "root"
    agent.call("store = Store(Path(root))", root=root)
    agent.call(HOLD_EVERY_PROBE, hold=1.0, winside=WINSIDE)
    outcome = agent.call(PROBE_REPEATEDLY, repeats=REPEATS, timeout=600)
    held = agent.call("result = len(held)")
    tier_report.append(f"root probe, every probe file held without delete sharing: {REPEATS} probes, "
                       f"{len(outcome['failures'])} 'not usable', {held} held, {len(outcome['left'])} left for gc, "
                       f"{outcome['seconds']:.1f}s")
    assert outcome["failures"] == [], outcome["failures"][:3]
    assert held == REPEATS
    # The deletes really met the held files (else this proved nothing), and did not wait for them.
    assert len(outcome["left"]) >= REPEATS // 2, outcome
    assert outcome["seconds"] < REPEATS * 0.5, outcome
    agent.call("time.sleep(hold + 0.5)", hold=1.0)
    later = agent.call(GC_LATER, timeout=120)
    assert later == {"left": [], "keys": []}


def test_the_probe_under_the_simulated_scanner_never_calls_the_root_unusable(
    wine_lab: Lab, agent: Agent, tmp_path: Path, tier_report: list[str]
) -> None:
    root = tmp_path / "root"
    agent.call("store = Store(Path(root)); store.ensure()", root=root)
    with scanning(wine_lab, root, hold=2.0, poll=0.001) as counts:
        outcome = agent.call(PROBE_REPEATEDLY, repeats=REPEATS, timeout=600)
    probes_held = [p for p in counts.get("held_paths", []) if ".tmp-cicache-" in p]
    tier_report.append(f"root probe under the simulated scanner (hold 2s): {REPEATS} probes, "
                       f"{len(outcome['failures'])} 'not usable', {len(probes_held)} probe files held by it")
    assert outcome["failures"] == [], outcome["failures"][:3]
    later = agent.call(GC_LATER, timeout=120)
    assert later == {"left": [], "keys": []}
