"""`ci-cache config`: what `auto` means on the machine, the JSON schema (valid, every key described), and the
README's configuration reference (every key documented, and a file that loads)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ci_cache import cli, config, configfile, osapi
from ci_cache.commands import COMMANDS

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ci-cache.yml upward from the cwd but the ones a test writes."""
    monkeypatch.chdir(tmp_path)


def invoke(env: Mapping[str, str], *argv: str) -> int:
    args = cli.build_parser().parse_args(list(argv))
    return COMMANDS[args.command].run(args, env)


def schema(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert invoke({}, "config", "--schema") == 0
    parsed: dict[str, Any] = json.loads(capsys.readouterr().out)
    return parsed


# ---------------------------------------------------------------------------------------------------
# `auto`, resolved for this machine.


AUTO_HERE = {
    False: {"mode": "direct on this machine (isolated on Windows)",
            "uv_link_mode": "unset on this machine (copy on Windows)"},
    True: {"mode": "isolated on this machine (direct on Linux and macOS)",
           "uv_link_mode": "copy on this machine (unset on Linux and macOS)"},
}


@pytest.mark.parametrize("windows", [False, True])
def test_config_says_what_auto_means_on_this_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, windows: bool
) -> None:
    monkeypatch.setattr(osapi, "IS_WINDOWS", windows)
    env = {"CI_CACHE_ROOT": str(tmp_path / "root")}
    assert invoke(env, "config") == 0
    lines = capsys.readouterr().out.splitlines()
    assert invoke(env, "config", "--json") == 0
    table = json.loads(capsys.readouterr().out)
    for key, meaning in AUTO_HERE[windows].items():
        assert f'{key} = "auto"  # default; auto = {meaning}' in lines
        assert table[key] == {"value": "auto", "source": "default", "resolved": meaning.split(maxsplit=1)[0]}


def test_a_key_set_to_something_else_has_no_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "ci-cache.yml"
    file.write_text("mode: isolated\nuv_link_mode: copy\n")
    assert invoke({"CI_CACHE_ROOT": str(tmp_path / "root")}, "config") == 0
    out = capsys.readouterr().out
    assert f'mode = "isolated"  # {file}:1\n' in out
    assert f'uv_link_mode = "copy"  # {file}:2\n' in out
    assert "auto =" not in out


def test_config_shows_the_remote_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"CI_CACHE_ROOT": str(tmp_path / "root"), "CI_CACHE_REMOTE_URL": "az://fleet-cache/ci",
           "CI_CACHE_REMOTE_PULL_BUDGET": "20s"}
    assert invoke(env, "config") == 0
    out = capsys.readouterr().out
    assert 'remote.url = "az://fleet-cache/ci"  # env CI_CACHE_REMOTE_URL\n' in out
    assert "remote.pull_budget = 20.0  # env CI_CACHE_REMOTE_PULL_BUDGET\n" in out
    assert "remote.push = null  # default\n" in out


# ---------------------------------------------------------------------------------------------------
# The JSON schema.


def test_the_schema_is_a_valid_json_schema_with_every_key_described(capsys: pytest.CaptureFixture[str]) -> None:
    found = schema(capsys)
    jsonschema.Draft202012Validator.check_schema(found)
    assert found["title"] == "ci-cache.yml"
    sections = {"": found, **found["$defs"]}
    for name, section in sections.items():
        assert section["additionalProperties"] is False, name
        for key, prop in section["properties"].items():
            assert prop.get("description"), f"{name}.{key} has no description"
    assert set(found["$defs"]) == {"RetryConfig", "GcConfig", "PruneConfig", "PoolConfig", "CustomTool", "RemoteConfig"}


def test_the_schema_takes_what_the_config_takes_and_refuses_what_it_refuses(
    capsys: pytest.CaptureFixture[str]
) -> None:
    validator = jsonschema.Draft202012Validator(schema(capsys))
    assert not list(validator.iter_errors(config.Config().model_dump()))
    good = {"mode": "shared", "lock_timeout": "10m", "prune": {"max_size": "20GiB"}, "tools": ["uv", {
        "name": "npm", "env": {"npm_config_cache": "{dir}"}}], "remote": {"url": "s3://bkt/p", "pull_budget": "30s"}}
    assert not list(validator.iter_errors(good))
    config.Config.model_validate(good)
    for bad in ({"mode": "sideways"}, {"lock_timeout": "soon"}, {"retry": {"attempts": 0}}, {"merg": "always"},
                {"prune": {"max_size": "lots"}}, {"remote": {"pull_budget": 0}}, {"remote": {"urll": "s3://b"}},
                {"tools": [{"name": "Bad", "env": {}}]}):
        assert list(validator.iter_errors(bad)), bad


# ---------------------------------------------------------------------------------------------------
# The README's reference.


def reference_yaml() -> str:
    section = README.read_text(encoding="utf-8").split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match, "README: the configuration reference has no yaml block"
    return match.group(1)


def test_the_readme_documents_every_key_and_its_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "ci-cache.yml"
    path.write_text(reference_yaml(), encoding="utf-8")
    _data, lines = configfile.read(path)
    documented = {tuple(p for p in key if not p.isdigit()) for key in lines}
    tool_keys = {("tools", key) for key in config.CustomTool.model_fields}
    missing = (set(config.KEYS) | tool_keys) - documented
    assert not missing, f"README's configuration reference lacks {sorted('.'.join(k) for k in missing)}"
    loaded, warnings = config.load(env={}, cwd=tmp_path)
    assert warnings == []
    assert loaded.config.remote.location is not None and loaded.config.prune.max_size == 20 * 1000**3
