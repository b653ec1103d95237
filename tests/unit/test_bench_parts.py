"""Tests for the bench's helpers: its index server, zip archiver, disk accounting, env and options."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from bench import archive, cic, cli, index, jobs, plan, runner, strategies, wheels
from bench.model import Variant
from ci_cache_index import server


def test_dev_home_and_interpreter_tag() -> None:
    assert wheels.dev_home({"CI_CACHE_DEV_HOME": "/x/dev"}) == Path("/x/dev")
    assert wheels.interpreter_tag().startswith("cp3")


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_zip_round_trip_keeps_files_modes_and_symlinks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "archive-v0" / "abc").mkdir(parents=True)
    (src / "archive-v0" / "abc" / "mod.py").write_text("x = 1\n")
    tool = src / "archive-v0" / "abc" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (src / "empty").mkdir()
    (src / "wheels-v5").mkdir()
    os.symlink("../archive-v0/abc", src / "wheels-v5" / "link")
    zpath = tmp_path / "c.zip"
    assert archive.zip_tree(src, zpath) == 7  # 4 folders, 2 files, 1 symlink
    dest = tmp_path / "dest"
    archive.unzip_tree(zpath, dest)
    assert (dest / "archive-v0" / "abc" / "mod.py").read_text() == "x = 1\n"
    assert os.readlink(dest / "wheels-v5" / "link") == "../archive-v0/abc"
    assert (dest / "wheels-v5" / "link" / "mod.py").is_file()
    assert (dest / "empty").is_dir()
    assert (dest / "archive-v0" / "abc" / "tool").stat().st_mode & 0o777 == 0o755


def test_archive_main_usage() -> None:
    assert archive.main(["frobnicate"]) == 2


def test_disk_bytes_counts_hardlinks_once_and_excludes_shared(tmp_path: Path) -> None:
    shared, job = tmp_path / "shared", tmp_path / "job"
    shared.mkdir()
    job.mkdir()
    (shared / "big").write_bytes(b"x" * 100_000)
    os.link(shared / "big", job / "big")
    (job / "own").write_bytes(b"y" * 50_000)
    os.link(job / "own", job / "own2")
    private = jobs.disk_bytes([job], jobs.inodes([shared]))
    everything = jobs.disk_bytes([job])
    assert 50_000 <= private < 100_000  # `own` once; the hardlink to `big` is free
    assert everything >= 150_000
    assert jobs.count_files(job) == 3
    assert jobs.disk_bytes([tmp_path / "missing"]) == 0


def test_clean_env_drops_what_would_steer_uv_or_ci_cache() -> None:
    env = jobs.clean_env(
        {"PATH": "/bin", "UV_CACHE_DIR": "x", "CI_CACHE_ROOT": "y", "GITHUB_ACTIONS": "true", "CI": "1", "HOME": "/h"}
    )
    assert env == {"PATH": "/bin", "HOME": "/h", "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}


def test_job_timed_accumulates(tmp_path: Path) -> None:
    job = jobs.Job("b1", tmp_path, tmp_path)
    with job.timed("save"):
        pass
    with job.timed("save"):
        pass
    assert set(job.phases) == {"save"} and job.phases["save"] >= 0.0
    assert job.venv == tmp_path / "venv"


def test_quick_defaults_and_variant_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strategies, "available", lambda name: True)  # as if tar and zstd were installed
    args = plan.parse_args(["--quick"])
    # The scale set of the goal 2 (52,000 files) even in --quick; the 10x point only on demand.
    assert (args.n, args.repeats, args.requirements, args.scale_packages) == ([4], 3, "realistic", 500)
    assert args.big_scale is False and args.cpu_samples == 20
    notes: list[str] = []
    keys = [v.key for v in plan.variants(args, notes)]
    # Quick runs what the targets compare: copy mode only where P1/G3 need it, the network profile
    # where G5 needs it (and the shared reference), each next to its loopback variant.
    assert keys == [
        "shared", "shared+copy", "shared@net", "empty", "empty@net", "tar-zstd", "tar-zstd@net", "cp-al",
        "cic-iso-link", "cic-iso-link+copy", "cic-iso-link@net",
    ]
    full = plan.parse_args([])
    assert (full.n, full.repeats, full.requirements, full.big_scale) == ([1, 2, 4, 8], 3, "realistic", True)
    full_keys = [v.key for v in plan.variants(full, notes)]
    assert "cic-iso-copy+copy" in full_keys and "zip" in full_keys and "cp-al@net" in full_keys
    assert Variant("empty", "copy").key not in full_keys  # no strategy runs in a mode it does not list
    assert not any(k.endswith("+copy@net") for k in full_keys)  # the network profile in uv's default mode only
    assert plan.variants(plan.parse_args(["--quick", "--net-for", ""]), notes)[2].key == "empty"
    assert plan.networks(plan.variants(plan.parse_args(["--net-for", ""]), notes)) == ["loopback"]


def test_network_profile_options() -> None:
    default = plan.parse_args([]).network
    assert (default.latency, default.bandwidth) == (index.DEFAULT_LATENCY_MS / 1000, index.DEFAULT_BANDWIDTH)
    assert index.default_profile() == default
    custom = plan.parse_args(["--latency-ms", "80", "--bandwidth", "3.5M"]).network
    assert (custom.latency, custom.bandwidth) == (0.08, 3_500_000)
    with pytest.raises(SystemExit):
        plan.parse_args(["--bandwidth", "fast"])
    with pytest.raises(SystemExit):
        plan.parse_args(["--latency-ms", "-1"])


def test_scratch_is_on_the_disk_unless_tmpfs_is_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dev"
    assert plan.work_parent(plan.parse_args([]), home) == home / "bench-work"
    assert plan.work_parent(plan.parse_args(["--work", str(tmp_path / "w")]), home) == tmp_path / "w"
    monkeypatch.setattr(plan, "TMPFS", tmp_path / "no-such-tmpfs")
    with pytest.raises(ValueError, match="--tmpfs needs"):
        plan.work_parent(plan.parse_args(["--tmpfs"]), home)
    with pytest.raises(SystemExit):  # one place or the other
        plan.parse_args(["--tmpfs", "--work", "x"])


def test_strategies_whose_tools_are_missing_are_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strategies, "available", lambda name: name != "tar-zstd")
    notes: list[str] = []
    keys = [v.key for v in plan.variants(plan.parse_args(["--quick"]), notes)]
    assert "tar-zstd" not in keys and "empty" in keys
    assert notes == ["tar-zstd skipped: its tools are not installed here"]


def test_options_are_validated() -> None:
    with pytest.raises(SystemExit):
        plan.parse_args(["--strategies", "shared,nope"])
    with pytest.raises(SystemExit):
        plan.parse_args(["--n", "0,2"])
    assert plan.parse_args(["--n", "2, 3"]).n == [2, 3]


def test_registry_names_match_and_describe_themselves() -> None:
    for name, strategy in strategies.REGISTRY.items():
        assert strategy.name == name
        assert strategy.models
        assert "default" in strategy.link_modes


def test_index_server_backlog_fits_concurrent_uv_processes() -> None:
    assert server._IndexHTTPServer.request_queue_size >= index.BACKLOG


class _BrokenBegin:
    """A strategy whose setup step blows up: the wave must record it, not lose the job."""

    name = "broken"
    models = "fails before installing"
    link_modes: tuple[str, ...] = ("default",)

    def prepare(self, state: Path, setup: jobs.Setup) -> None:
        state.mkdir(parents=True)

    def begin(self, job: jobs.Job, setup: jobs.Setup) -> dict[str, str]:
        with job.timed("restore"):
            raise ValueError("archive is garbage")

    def end(self, job: jobs.Job, setup: jobs.Setup, ok: bool) -> None:
        raise AssertionError("end must not run when begin failed")

    def shared(self, state: Path) -> list[Path]:
        return []

    def command_prefix(self, job: jobs.Job, setup: jobs.Setup) -> list[str]:
        return []

    def probe(self) -> _BrokenBegin:
        return self


@pytest.mark.spawns  # the wave's cleanup runs `rm -rf`
def test_a_failing_job_fails_its_wave_without_losing_it(tmp_path: Path) -> None:
    setup = jobs.Setup(Path("uv"), Path("python"), "http://127.0.0.1:9/simple", tmp_path / "r.txt", {}, Path("x"))
    bed = runner.Bed(_BrokenBegin(), Variant("broken"), tmp_path / "state", tmp_path / "jobs", setup)
    bed.prepare()
    wave = runner.run_wave(bed, 3, warm=True, repeat=1)
    assert [j.ok for j in wave.jobs] == [False, False, False]
    assert all(j.error == "ValueError: archive is garbage" for j in wave.jobs)
    assert all("restore" in j.phases for j in wave.jobs)
    assert not wave.ok and wave.makespan >= 0.0
    assert list((tmp_path / "jobs").iterdir()) == []  # job dirs are cleaned up after the wave


def test_cic_via_picks_how_ci_cache_jobs_are_driven() -> None:
    steps = cli._strategy("cic-shared", plan.parse_args(["--cic-via", "steps"]))
    run_ = cli._strategy("cic-iso-link", plan.parse_args([]))
    assert isinstance(steps, cic.CiCache) and steps.via == "steps" and steps.mode == "shared"
    assert isinstance(run_, cic.CiCache) and run_.via == "run"
    assert cli._strategy("zip", plan.parse_args(["--cic-via", "steps"])) is strategies.REGISTRY["zip"]
    # The disk probe pauses between install and merge, which only setup/finish steps allow.
    assert run_.probe().via == "steps"


def test_each_network_gets_its_own_index_server(tmp_path: Path) -> None:
    args = plan.parse_args(["--latency-ms", "5", "--bandwidth", "1M"])
    (tmp_path / "simple").mkdir()
    with cli.serve_networks(tmp_path, args, ["loopback", "net"]) as servers:
        assert set(servers) == {"loopback", "net"}
        assert not servers["loopback"].network.active  # plain loopback, as before
        assert servers["net"].network == args.network  # the run's profile, for every @net variant alike
        assert servers["net"].url != servers["loopback"].url and servers["net"].root == tmp_path
    with cli.serve_networks(tmp_path, args, ["loopback"]) as servers:
        assert list(servers) == ["loopback"]  # no profile server when no variant needs it


def test_every_network_variant_uses_the_profile_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strategies, "available", lambda name: True)
    args = plan.parse_args(["--quick"])
    variants = plan.variants(args, [])
    assert plan.networks(variants) == ["loopback", "net"]
    setup = jobs.Setup(Path("uv"), Path("python"), "", tmp_path / "r.txt", {}, Path("ci-cache"))
    setups = {"loopback": replace(setup, index_url="http://loop/simple"), "net": replace(setup, index_url="http://net/simple")}
    beds = cli.beds(args, setups, variants, tmp_path)
    assert {b.variant.key: b.setup.index_url for b in beds if b.variant.strategy == "empty"} == {
        "empty": "http://loop/simple",
        "empty@net": "http://net/simple",
    }
    assert all(b.setup.index_url == "http://net/simple" for b in beds if b.variant.network == "net")
    assert len({b.state for b in beds}) == len(beds)  # a network variant keeps its own state
