"""The commands in process: the root parser, the registry, each command's handler with a fake env and a
temp root, and the one error handler of cli.main.

Tests that start a process (the lease holder of `setup`, the command of `run`) are marked `spawns`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from ci_cache import cli, config, job, osapi
from ci_cache.commands import COMMANDS, options
from ci_cache.errors import ConfigError, JobBusy, StoreError, UsageError, VerifyFailed

COMMANDS_DIR = Path(cli.__file__).parent / "commands"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ci-cache.yml upward from the cwd but the ones a test writes."""
    monkeypatch.chdir(tmp_path)


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def invoke(env: Mapping[str, str], *argv: str) -> int:
    """Run a command's handler as cli.main would, but with `env` as given and errors raised."""
    args = parse(*argv)
    return COMMANDS[args.command].run(args, env)


def root_env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"CI_CACHE_ROOT": str(tmp_path / "root"), "PATH": os.environ.get("PATH", ""), **more}


# ---------------------------------------------------------------------------------------------------------
# The registry and the root parser


def test_every_command_module_is_registered_under_its_own_name() -> None:
    modules = {p.stem for p in COMMANDS_DIR.glob("*.py")} - {"__init__", "options"}
    assert {name.lstrip("_") for name in COMMANDS} == modules
    assert list(COMMANDS) == ["run", "setup", "finish", "status", "gc", "verify", "prune", "doctor", "remote",
                              "config", "demo", "_shim"]


def test_the_help_lists_every_command_but_the_hidden_shim(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert (f"    {name} " in out) == (command.brief is not None), name
    assert "_shim" not in out


def test_debug_and_quiet_go_before_or_after_the_command() -> None:
    assert parse("--debug", "status").debug is True
    assert parse("status", "--debug").debug is True
    assert parse("status").debug is False
    assert parse("-q", "gc").quiet is True and parse("gc", "--quiet").quiet is True


def test_every_config_flag_is_offered_by_a_command_and_all_by_config() -> None:
    offered: set[str] = set()
    for name, command in COMMANDS.items():
        if command.brief is None:
            continue
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        flags = {s for action in parser._actions for s in action.option_strings}
        offered |= flags & set(config.FLAGS.values())
        if name == "config":
            assert set(config.FLAGS.values()) <= flags
    assert offered == set(config.FLAGS.values())


# ---------------------------------------------------------------------------------------------------------
# config: every flag through the one precedence resolver

# A valid value for every key a flag sets, and what the config then holds; and another one for its variable.
ENV_VALUES: dict[config.KeyPath, str] = {
    ("root",): "/env/root", ("mode",): "isolated", ("tools",): "pip", ("merge",): "success", ("strict",): "false",
    ("gc", "grace"): "5m", ("prune", "max_size"): "1GB", ("prune", "max_age"): "1d", ("prune", "uv_ci"): "false",
    ("remote", "url"): "s3://env-bucket/ci", ("remote", "endpoint"): "https://env.example:9000",
    ("remote", "push"): "never",
}
FLAG_VALUES: dict[config.KeyPath, tuple[str, object]] = {
    ("root",): ("/somewhere/root", "/somewhere/root"),
    ("mode",): ("shared", "shared"),
    ("tools",): ("uv,temp", ["uv", "temp"]),
    ("merge",): ("never", "never"),
    ("strict",): ("true", True),
    ("gc", "grace"): ("2h", 7200.0),
    ("prune", "max_size"): ("2GB", 2 * 1000**3),
    ("prune", "max_age"): ("30d", 30 * 86400.0),
    ("prune", "uv_ci"): ("true", True),
    ("remote", "url"): ("az://flag-container/team", "az://flag-container/team"),
    ("remote", "endpoint"): ("https://flag.example:9000/", "https://flag.example:9000"),
    ("remote", "push"): ("protected", "protected"),
}


def config_table(env: Mapping[str, str], *argv: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert invoke(env, "config", "--json", *argv) == 0
    table: dict[str, object] = json.loads(capsys.readouterr().out)
    return table


@pytest.mark.parametrize("key", list(config.FLAGS))
def test_config_shows_every_flag_above_the_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: config.KeyPath
) -> None:
    assert set(FLAG_VALUES) == set(ENV_VALUES) == set(config.FLAGS)
    text, value = FLAG_VALUES[key]
    name = ".".join(key)
    env_name = next(e for e, k in config.ENV_KEYS.items() if k == key)
    env = {env_name: ENV_VALUES[key]}
    table = config_table(env, f"{config.FLAGS[key]}={text}", capsys=capsys)
    assert table[name] == {"value": value, "source": f"flag {config.FLAGS[key]}"}
    # An empty value is "not given": the env decides, as without the flag.
    without = config_table(env, capsys=capsys)
    assert config_table(env, f"{config.FLAGS[key]}=", capsys=capsys)[name] == without[name]
    assert without[name]["source"] == f"env {env_name}"  # type: ignore[index]


def test_an_empty_flag_leaves_the_setting_to_the_file_then_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "ci-cache.yml"
    file.write_text("mode: isolated\n")
    table = config_table({}, "--mode=", "--merge", "", "--strict=", "--tools= ", "--root=", "--job=",
                         "--config=", capsys=capsys)
    assert table["mode"] == {"value": "isolated", "source": f"{file}:1"}
    assert table["merge"] == {"value": "always", "source": "default"}
    assert table["strict"] == {"value": False, "source": "default"}


def test_a_boolean_flag_alone_is_true_and_false_turns_the_file_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ci-cache.yml").write_text("strict: true\nprune:\n  uv_ci: true\n")
    table = config_table({}, "--strict=false", "--ci=no", capsys=capsys)
    assert table["strict"] == {"value": False, "source": "flag --strict"}
    assert table["prune.uv_ci"] == {"value": False, "source": "flag --ci"}
    assert config_table({}, "--strict", capsys=capsys)["strict"] == {"value": True, "source": "flag --strict"}
    assert parse("run", "--strict", "--", "uv").argv == ["--", "uv"]  # `--` is never taken for its value


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("prune", "--max-size", "3XB"), "flag --max-size: `prune.max_size`: '3XB' is not a size"),
        (("gc", "--grace", "soon"), "flag --grace: `gc.grace`: 'soon' is not a duration"),
        (("config", "--mode", "sideways"), "flag --mode: `mode`"),
        (("config", "--strict=maybe"), "flag --strict: `strict`"),
    ],
)
def test_a_bad_flag_value_is_a_config_error_naming_the_flag(
    tmp_path: Path, argv: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        invoke(root_env(tmp_path), *argv)
    assert message in str(info.value)


def test_config_text_names_the_file_and_the_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke({"CI_CACHE_ROOT": str(tmp_path / "r")}, "config", "--max-age", "1d") == 0
    out = capsys.readouterr().out
    assert out.startswith("# config file: none (defaults)\n")
    assert f"# root: {tmp_path / 'r'}" in out
    assert "prune.max_age = 86400.0  # flag --max-age" in out


def test_config_schema_is_the_models_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke({}, "config", "--schema") == 0
    schema = json.loads(capsys.readouterr().out)
    assert set(schema["properties"]) == set(config.Config.model_fields)


def test_resolve_root_defaults_per_platform_and_makes_it_absolute(tmp_path: Path) -> None:
    cfg = config.Config()
    assert options.resolve_root(cfg, {"XDG_CACHE_HOME": str(tmp_path), "LOCALAPPDATA": str(tmp_path)}) == (
        tmp_path / "ci-cache")
    assert options.resolve_root(config.Config(root=Path("rel")), {}) == tmp_path / "rel"  # the cwd's
    home = {"HOME": str(tmp_path / "home"), "USERPROFILE": str(tmp_path / "home")}
    assert options.resolve_root(config.Config(root=Path("~/cc")), home) == tmp_path / "home" / "cc"
    assert options.resolve_root(config.Config(), {**home, "XDG_CACHE_HOME": "", "LOCALAPPDATA": ""}) == (
        tmp_path / "home" / ("AppData/Local" if osapi.IS_WINDOWS else ".cache") / "ci-cache")


def test_make_context_gives_each_local_run_its_own_id_unless_one_is_given(tmp_path: Path) -> None:
    args = parse("run", "--", "x")
    first = options.make_context(args, {}, unique_local=True).identity.job_id
    assert first.startswith("local-run:") and first != options.make_context(args, {}, unique_local=True).identity.job_id
    assert options.make_context(args, {}).identity.job_id == f"local:{os.getcwd()}"
    assert options.make_context(parse("run", "--job", "j1", "--", "x"), {}, unique_local=True).identity.job_id == "j1"
    assert options.make_context(args, {"CI_CACHE_JOB": "j2"}, unique_local=True).identity.job_id == "j2"
    # An empty --job is not given.
    assert options.make_context(parse("run", "--job=", "--", "x"), {"CI_CACHE_JOB": "j3"}).identity.job_id == "j3"


# ---------------------------------------------------------------------------------------------------------
# status, gc, verify, prune, doctor, demo


def dead_job(root: Path, key: str = "jdead0000000", *, age: float = 7200.0) -> Path:
    job_dir = root / "jobs" / key
    (job_dir / "uv").mkdir(parents=True)
    (job_dir / "uv" / "f").write_bytes(b"x" * 100)
    (root / "jobs" / f"{key}.json").write_text(json.dumps({"job": "crashed", "mode": "isolated"}))
    old = time.time() - age
    for path in (job_dir, root / "jobs" / f"{key}.json"):
        os.utime(path, (old, old))
    return job_dir


def test_status_json_lists_the_shared_caches_and_the_stale_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    (root / "shared" / "pip").mkdir(parents=True)
    (root / "shared" / "pip" / "wheel").write_bytes(b"w" * 10)
    dead_job(root)
    assert invoke(root_env(tmp_path), "status", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["root"] == str(root)
    assert data["shared"]["pip"]["files"] == 1 and data["shared"]["pip"]["bytes"] == 10
    assert [j["job"] for j in data["stale_jobs"]] == ["crashed"] and data["live_jobs"] == []
    assert invoke(root_env(tmp_path), "status") == 0
    out, err = capsys.readouterr()
    # The report is the command's output, so that `ci-cache status | grep` finds it.
    assert "stale jobs: 1 (run `ci-cache gc`)" in out and err == ""


@pytest.mark.parametrize(("argv", "env", "reclaimed"), [
    ((), {}, True),  # default grace 1h: a 2h old dead job goes
    (("--grace", "3h"), {}, False),
    ((), {"CI_CACHE_GC_GRACE": "3h"}, False),
    (("--grace", "1m"), {"CI_CACHE_GC_GRACE": "3h"}, True),  # the flag beats the env
    (("--grace=",), {"CI_CACHE_GC_GRACE": "3h"}, False),  # an empty flag leaves it to the env
])
def test_gc_grace_comes_from_the_config_resolver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], env: dict[str, str],
    reclaimed: bool,
) -> None:
    job_dir = dead_job(tmp_path / "root")
    assert invoke(root_env(tmp_path, **env), "gc", "--json", *argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["reclaimed_jobs"] == ["jdead0000000"]) == reclaimed
    assert job_dir.exists() != reclaimed


def test_verify_of_a_new_root_is_ok_and_fix_has_nothing_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(root_env(tmp_path), "verify", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {"cache": str(tmp_path / "root" / "shared" / "uv"), "ok": True, "findings": []}
    assert invoke(root_env(tmp_path), "verify") == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{tmp_path / 'root' / 'shared' / 'uv'}: no shared uv cache yet, nothing to check",
                                "  OK"] and err == ""
    assert invoke(root_env(tmp_path), "verify", "--fix") == 0
    (tmp_path / "root" / "shared" / "uv").mkdir(parents=True)  # an empty one: valid too
    assert invoke(root_env(tmp_path), "verify") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "  OK"
    assert not (tmp_path / "root" / "jobs").exists()  # verify creates nothing


def test_verify_of_a_path_with_no_cache_fails_and_does_not_advise_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-cache"
    for argv in ((), ("--fix",)):
        with pytest.raises(VerifyFailed) as info:
            invoke(root_env(tmp_path), "verify", str(missing), *argv)
        assert info.value.exit_code == 5 and "1 broken entry" in str(info.value)
        assert "--fix" not in str(info.value) and "give the path of a uv cache" in str(info.value)
    assert "no cache here" in capsys.readouterr().out
    with pytest.raises(VerifyFailed):
        invoke(root_env(tmp_path), "verify", str(missing), "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["findings"][0]["problem"] == "no cache here"


def test_verify_fix_removes_a_leftover_temp_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    (cache / ".tmpLeft").mkdir(parents=True)
    old = time.time() - 7200
    os.utime(cache / ".tmpLeft", (old, old))
    assert invoke(root_env(tmp_path), "verify", str(cache), "--fix") == 0
    out, err = capsys.readouterr()
    assert "verify --fix: removed 1 broken or leftover item(s)" in err and out.splitlines()[-1] == "  OK"
    assert not (cache / ".tmpLeft").exists()


@pytest.mark.parametrize(("argv", "env", "left"), [
    (("--max-size", "15"), {}, 1),
    ((), {"CI_CACHE_PRUNE_MAX_SIZE": "15"}, 1),
    (("--max-size", "1KB"), {"CI_CACHE_PRUNE_MAX_SIZE": "15"}, 2),  # the flag beats the env
    (("--max-age", "1h"), {}, 1),
    ((), {}, 2),
])
def test_prune_bounds_come_from_the_config_resolver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], env: dict[str, str], left: int
) -> None:
    cache = tmp_path / "root" / "shared" / "pip"
    cache.mkdir(parents=True)
    for name, age in (("old", 7200.0), ("new", 0.0)):
        (cache / name).write_bytes(b"x" * 10)
        os.utime(cache / name, (time.time() - age, time.time() - age))
    assert invoke(root_env(tmp_path, CI_CACHE_TOOLS="pip", **env), "prune", "--json", *argv) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["tool"] == "pip" and report["bytes_before"] == 20
    assert len(list(cache.iterdir())) == left
    assert (cache / "new").exists()


def test_doctor_names_each_problem_and_fails_with_exit_5(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead_job(tmp_path / "root")
    with pytest.raises(VerifyFailed) as info:
        invoke({"CI_CACHE_ROOT": str(tmp_path / "root"), "PATH": str(tmp_path / "empty")}, "doctor")
    assert info.value.exit_code == 5
    out, err = capsys.readouterr()
    assert "[ok] root:" in out
    assert "[PROBLEM] uv: uv not found on PATH" in out
    assert "[PROBLEM] jobs: 0 live, 1 stale job dir(s)" in out and "run `ci-cache gc`" in out
    assert err == ""  # the report is the command's output (the error line is cli.main's, tested below)


def test_demo_refuses_no_jobs_before_it_builds_anything(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--jobs must be at least 1"):
        invoke({}, "demo", "--jobs", "0", "--root", str(tmp_path / "root"))
    assert not (tmp_path / "root").exists()


# ---------------------------------------------------------------------------------------------------------
# setup and run: the fallback to mode off, and what never falls back


def unusable_root(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a dir")
    return {"CI_CACHE_ROOT": str(blocker / "root"), "CI_CACHE_JOB": "j", "PATH": os.environ.get("PATH", "")}


def test_setup_on_an_unusable_root_runs_off_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(unusable_root(tmp_path), "setup", "--mode", "isolated", "--format", "json") == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["mode"] == "off" and data["env"] == {job.TOKEN_VAR: job.NO_TOKEN}
    assert err.count("is not usable") == 1, err  # said once, with what happens next
    assert "the job runs without ci-cache" in err


def test_setup_strict_on_an_unusable_root_fails_and_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StoreError) as info:
        invoke(unusable_root(tmp_path), "setup", "--mode", "isolated", "--strict", "--format", "bash")
    assert info.value.exit_code == 4
    assert capsys.readouterr().out == ""


def test_setup_with_a_bad_config_fails_instead_of_running_off(tmp_path: Path) -> None:
    (tmp_path / "ci-cache.yml").write_text("mdoe: isolated\n")
    with pytest.raises(ConfigError, match="did you mean `mode`"):
        invoke(root_env(tmp_path), "setup")


def test_setup_mode_off_allocates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(root_env(tmp_path), "setup", "--mode", "off", "--format", "dotenv") == 0
    assert capsys.readouterr().out == f"{job.TOKEN_VAR}={job.NO_TOKEN}\n"
    assert not (tmp_path / "root").exists()


def test_run_without_a_command_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no command given"):
        invoke(root_env(tmp_path), "run", "--")


@pytest.mark.spawns
@pytest.mark.parametrize("env_of", [unusable_root, lambda tmp: {**root_env(tmp), "CI_CACHE_MODE": "off"}])
def test_run_without_ci_cache_runs_the_command_with_the_env_it_was_given(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], env_of: object
) -> None:
    env = env_of(tmp_path)  # type: ignore[operator]
    code = [sys.executable, "-c", "import os, sys; print(sorted(k for k in os.environ if k.startswith('CI_CACHE_')"
            " or k == 'TMPDIR')); sys.exit(3)"]
    assert invoke(env, "run", "--", *code) == 3
    out, err = capfd.readouterr()
    assert out.strip() == repr(sorted(k for k in env if k.startswith("CI_CACHE_")))
    assert "merge" not in err  # no finish, no summary


@pytest.mark.spawns
def test_run_isolated_passes_the_exit_code_and_writes_the_summary(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.json"
    steps = tmp_path / "steps.md"
    env = root_env(tmp_path, CI_CACHE_TOOLS="pip,temp", GITHUB_STEP_SUMMARY=str(steps))
    code = [sys.executable, "-c", "import os, pathlib, sys; pathlib.Path(os.environ['PIP_CACHE_DIR'], 'w.whl')"
            ".write_text('w'); sys.exit(2)"]
    assert invoke(env, "run", "--mode", "isolated", "--merge", "always", "--summary-json", str(summary), "--",
                  *code) == 2
    result = json.loads(summary.read_text())
    assert result["exit_code"] == 2 and result["status"] == "failure" and result["attempts"] == 1
    assert result["merged"]["pip"]["files"] == 1
    assert (tmp_path / "root" / "shared" / "pip" / "w.whl").read_text() == "w"
    assert {"seed", "merge", "cleanup", "command"} <= set(result["phases"])
    assert "### ci-cache: isolated job, status failure" in steps.read_text()
    assert "merge: always" in capfd.readouterr().err


@pytest.mark.spawns
def test_run_shared_holds_the_writer_locks_and_counts_the_wait(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    lock = tmp_path / "root" / "shared" / "pip.write.lock"
    probe = ("import sys; from pathlib import Path; from ci_cache import osapi; "
             f"h = osapi.try_lock(Path({str(lock)!r})); sys.exit(0 if h is None else 9)")
    env = root_env(tmp_path, CI_CACHE_TOOLS="pip,temp")
    assert invoke(env, "run", "--mode", "shared", "--summary-json", str(summary), "--", sys.executable, "-c",
                  probe) == 0  # the child found the lock taken: run holds it around the command
    result = json.loads(summary.read_text())
    assert result["mode"] == "shared" and result["phases"]["lock_wait"] == 0.0


def set_up(tmp_path: Path, capsys: pytest.CaptureFixture[str], before: dict[str, str], *argv: str) -> dict[str, str]:
    """`setup --format json` with the shell's env `before`; returns the env the shell has after it."""
    assert invoke(before, "setup", "--format", "json", *argv) == 0
    alloc = json.loads(capsys.readouterr().out)
    after = {**before, **alloc["env"]}
    if alloc["path_prepend"]:
        after["PATH"] = os.pathsep.join([*alloc["path_prepend"], before["PATH"]])
    return after


@pytest.mark.spawns
@pytest.mark.parametrize(("fmt", "expected"), [
    ("bash", ["export TEMP='/old tmp'", "export CI_CACHE_ROOT='{root}'", "unset TMPDIR", "unset UV_CACHE_DIR",
              "unset CI_CACHE_TOKEN"]),
    ("powershell", ["$env:TEMP = '/old tmp'", "$env:TMPDIR = $null", "$env:UV_CACHE_DIR = $null"]),
    ("cmd", ['set "TEMP=/old tmp"', 'set "TMPDIR="', 'set "UV_CACHE_DIR="']),
    ("dotenv", ["TEMP=/old tmp", "TMPDIR=", "UV_CACHE_DIR="]),
])
def test_finish_gives_the_shell_back_the_env_it_had_before_setup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, expected: list[str]
) -> None:
    """After finish, TEMP/TMP/TMPDIR/UV_CACHE_DIR must not point into the deleted job dir (mktemp fails)."""
    root = tmp_path / "root"
    before = root_env(tmp_path, TEMP="/old tmp", TMP="/old tmp", CI_CACHE_JOB="restore-1", CI_CACHE_ROOT=str(root))
    after = set_up(tmp_path, capsys, before, "--mode", "isolated", "--tools", "uv,temp")
    assert after["TMPDIR"].startswith(str(root / "jobs"))
    assert invoke(after, "finish", "--format", fmt) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    for line in expected:
        assert line.format(root=root) in lines, (line, out)
    assert "merge: always" in err  # the summary still goes to stderr
    restored = {name for name in ("TEMP", "TMP", "TMPDIR", "UV_CACHE_DIR") if any(name in line for line in lines)}
    assert restored == {"TEMP", "TMP", "TMPDIR", "UV_CACHE_DIR"}
    assert not any(str(root / "jobs") in line for line in lines)  # nothing points into the job dir


@pytest.mark.spawns
@pytest.mark.parametrize("fmt", ["json", "github"])
def test_finish_json_has_the_summary_and_what_to_restore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    before = root_env(tmp_path, TMPDIR="/old", CI_CACHE_JOB="restore-2", GITHUB_ENV=str(tmp_path / "github_env"))
    after = set_up(tmp_path, capsys, before, "--mode", "isolated", "--tools", "temp")
    (tmp_path / "github_env").write_text("")
    assert invoke(after, "finish", "--format", fmt) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["job"] == "restore-2" and "cleanup" in data["phases"] and data["merge_decision"]
    assert data["env"]["TMPDIR"] == "/old" and data["env"]["CI_CACHE_JOB"] == "restore-2"  # as they were
    assert {"TEMP", "TMP", "CI_CACHE_TOKEN", "CI_CACHE_JOB_DIR"} <= set(data["unset"])
    assert data["path_prepend"] == [] and data["path_remove"] == []
    assert ("merge" in err) == (fmt == "github")  # json is for machines: no text summary
    if fmt == "github":
        assert "TMPDIR<<ghadelimiter_" in (tmp_path / "github_env").read_text()
    with pytest.raises(UsageError, match="--json and --format bash"):
        invoke(after, "finish", "--json", "--format", "bash")


@pytest.mark.spawns
def test_finish_takes_a_shared_jobs_shims_off_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = root_env(tmp_path, CI_CACHE_JOB="restore-3", PATH=f"/usr/local/bin{os.pathsep}/usr/bin")
    after = set_up(tmp_path, capsys, before, "--mode", "shared", "--tools", "uv,temp")
    assert after["PATH"] != before["PATH"]
    assert invoke(after, "finish", "--format", "bash") == 0
    assert f"export PATH='/usr/local/bin{os.pathsep}/usr/bin'" in capsys.readouterr().out.splitlines()


def test_finish_with_nothing_allocated_prints_nothing_to_restore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = root_env(tmp_path, CI_CACHE_TOKEN=job.NO_TOKEN, CI_CACHE_JOB="off-1")
    assert invoke(env, "finish", "--format", "bash") == 0
    assert capsys.readouterr().out == ""
    assert invoke(env, "finish", "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["env"] == {} and data["unset"] == [] and data["job"] == "off-1"


def test_a_busy_id_fails_setup_in_process(tmp_path: Path) -> None:
    env = root_env(tmp_path, CI_CACHE_JOB="busy", CI_CACHE_TOOLS="temp")
    ctx = options.make_context(parse("setup", "--mode", "isolated"), env)
    ctx.store.ensure()
    held = osapi.try_lock(ctx.store.lease(ctx.key))
    assert held is not None
    try:
        with pytest.raises(JobBusy):
            job.setup(ctx, in_process=True)
    finally:
        held.release()


# ---------------------------------------------------------------------------------------------------------
# The one error handler


def test_main_maps_errors_to_their_exit_codes_and_hides_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI_CACHE_ROOT", str(tmp_path / "root"))
    assert cli.main(["prune", "--max-size", "lots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ci-cache: error: flag --max-size") and "Traceback" not in err
    assert cli.main(["verify", str(tmp_path / "no-cache")]) == 5
    assert "Traceback" not in capsys.readouterr().err
    assert cli.main(["--debug", "verify", str(tmp_path / "no-cache")]) == 5
    assert "Traceback" in capsys.readouterr().err


def test_main_on_ctrl_c_exits_130_and_on_a_bug_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(args: argparse.Namespace, env: Mapping[str, str]) -> int:
        raise KeyboardInterrupt

    def buggy(args: argparse.Namespace, env: Mapping[str, str]) -> int:
        raise ZeroDivisionError("oops")

    status = sys.modules["ci_cache.commands.status"]
    monkeypatch.setattr(status, "run", interrupted)
    assert cli.main(["status"]) == 130
    assert capsys.readouterr().err == "ci-cache: error: interrupted\n"
    monkeypatch.setattr(status, "run", buggy)
    assert cli.main(["status"]) == 1
    assert "internal error: ZeroDivisionError: oops (run again with --debug" in capsys.readouterr().err
    with pytest.raises(ZeroDivisionError):
        cli.main(["status", "--debug"])


def test_main_treats_a_closed_stdout_as_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def closed(args: argparse.Namespace, env: Mapping[str, str]) -> int:
        raise BrokenPipeError

    monkeypatch.setattr(sys.modules["ci_cache.commands.config"], "run", closed)
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # restored after the test: main swaps in os.devnull
    assert cli.main(["config"]) == 0
    assert sys.stdout.name == os.devnull
    sys.stdout.close()


def test_main_reads_quiet_and_debug_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI_CACHE_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("CI_CACHE_QUIET", "1")
    assert cli.main(["gc"]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("CI_CACHE_DEBUG", "1")
    assert cli.main(["verify", str(tmp_path / "no-cache")]) == 5
    assert "Traceback" in capsys.readouterr().err
