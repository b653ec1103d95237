"""bench.remote's logic, without servers: which packages each job needs, and how the targets are computed."""

from __future__ import annotations

from pathlib import Path

from bench import remote
from bench.remote import Dist, Plan, Result, Sample


def dist(name: str, *requires: str) -> Dist:
    return Dist(name, "1.0", Path(f"{name}-1.0-py3-none-any.whl"), "0" * 64, frozenset(requires))


FLEET = {d.name: d for d in (
    dist("web", "http", "json"), dist("http", "idna"), dist("idna"), dist("json"), dist("yaml"),
    dist("cli", "colors"), dist("colors"), dist("leaf-a"), dist("leaf-b"), dist("test", "leaf-a"),
)}


def test_the_ten_percent_job_is_the_closure_of_one_real_requirement_and_the_extra_a_lone_leaf() -> None:
    plan = Plan.of(FLEET, ["web", "cli", "yaml"])
    assert remote.closure(FLEET, ["web"]) == {"web", "http", "idna", "json"}
    assert plan.ten == ["yaml"] and plan.ten_from == "yaml"  # 1 of 10 packages
    assert plan.extra == "leaf-b"  # no requirement, nobody requires it, not in the 10% job
    assert plan.extra not in plan.all and len(plan.all) == 9
    assert FLEET["yaml"].pin() == f"yaml==1.0 --hash=sha256:{'0' * 64}\n"


def test_targets_read_medians_and_back_to_back_pairs() -> None:
    result = Result(samples=[
        Sample("remote", "10%", 1, 2.0, {"pull": 0.5}), Sample("remote", "10%", 2, 2.0, {"pull": 0.7}),
        Sample("tar", "10%", 1, 9.0, {"restore": 6.0}), Sample("tar", "10%", 2, 9.0, {"restore": 6.0}),
        Sample("remote", "push-1", 1, 1.0, {"push": 0.2}), Sample("tar", "push-1", 1, 5.0, {"save": 5.0}),
        # Pairs in either order; the machine slows down between pairs, never within one.
        Sample("warm+remote", "warm", 1, 1.02, cpu=0.51), Sample("warm", "warm", 1, 1.0, cpu=0.5),
        Sample("warm", "warm", 1, 3.0, cpu=1.5), Sample("warm+remote", "warm", 1, 3.03, cpu=1.53),
        Sample("warm+remote", "warm", 2, 2.2, cpu=1.1), Sample("warm", "warm", 2, 2.0, cpu=1.0),
    ])
    found = {t.id: t for t in remote.targets(result)}
    assert round(found["F1"].measured or 0, 6) == 0.1 and found["F1"].passed
    assert round(found["F2"].measured or 0, 6) == 0.04 and found["F2"].passed
    assert round(found["F3"].measured or 0, 3) == 1.02 and found["F3"].passed
    assert round(found["F3.wall"].measured or 0, 3) == 1.02
    # Unpaired medians would have said 2.2 / 2.0 = 1.1: the drift, not the remote.
    assert "F3" in remote.report(result) and "| warm+remote | warm |" in remote.report(result)
    assert Result().paired("cpu") is None and remote.targets(Result())[0].verdict == "FAIL"
