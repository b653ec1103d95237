"""ci_cache.config: defaults, where the file is found, precedence with provenance, and every error."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ci_cache import config, units
from ci_cache.config import Config, CustomTool, KeyPath, LoadedConfig
from ci_cache.errors import ConfigError, UsageError
from ci_cache.tools import from_config
from ci_cache.tools.generic import GenericTool


def load(
    cwd: Path,
    env: Mapping[str, str] | None = None,
    *,
    explicit: str | None = None,
    flags: Mapping[KeyPath, Any] | None = None,
) -> LoadedConfig:
    loaded, _warnings = config.load(env=env or {}, cwd=cwd, explicit_file=explicit, flags=flags)
    return loaded


def tool_names(cfg: Config) -> list[str]:
    return [t if isinstance(t, str) else t.name for t in cfg.tools]


def rows(loaded: LoadedConfig) -> dict[str, tuple[Any, str]]:
    return {key: (value, source) for key, value, source in config.describe(loaded)}


def write(folder: Path, text: str, name: str = "ci-cache.yml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(cwd: Path, env: Mapping[str, str] | None = None, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(cwd, env, **kwargs)
    assert info.value.exit_code == 2
    return str(info.value)


# ---------------------------------------------------------------------------------------------------
# Defaults.


def test_no_file_no_env_gives_the_model_defaults_all_labelled_default(tmp_path: Path) -> None:
    loaded = load(tmp_path)
    assert loaded.file is None
    assert loaded.config == Config()
    table = rows(loaded)
    assert {source for _value, source in table.values()} == {"default"}
    assert table["mode"][0] == "auto"
    assert table["tools"][0] == ["uv", "pip", "temp"]
    assert table["retry.attempts"][0] == 3
    assert table["gc.grace"][0] == 3600.0
    # Every leaf of every section is listed, so `ci-cache config` shows the whole picture.
    assert {"retry.backoff", "retry.max_backoff", "retry.patterns", "gc.interval", "gc.on_setup",
            "prune.max_size", "prune.max_age", "prune.on_finish", "prune.uv_ci", "remote.url", "remote.push",
            "remote.pull_budget"} <= set(table)


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    loaded = load(tmp_path)
    assert loaded.file == path
    assert loaded.config == Config()


@pytest.mark.parametrize(("windows", "mode", "link_mode"), [(True, "isolated", "copy"), (False, "direct", None)])
def test_auto_mode_and_link_mode_depend_on_the_platform(windows: bool, mode: str, link_mode: str | None) -> None:
    cfg = Config()
    assert cfg.resolved_mode(windows) == mode
    assert cfg.resolved_uv_link_mode(windows) == link_mode


@pytest.mark.parametrize("text", ["mode: off\n", "mode: 'off'\n", "mode: Off\n"])
def test_mode_off_as_the_docs_write_it(tmp_path: Path, text: str) -> None:
    # YAML 1.1 reads a bare `off` as the boolean false; `mode: off` must still mean the mode "off".
    write(tmp_path, text)
    assert load(tmp_path).config.mode == "off"


def test_explicit_mode_and_link_mode_are_kept() -> None:
    cfg = Config(mode="shared", uv_link_mode="hardlink")
    assert cfg.resolved_mode(True) == "shared"
    assert cfg.resolved_uv_link_mode(True) == "hardlink"
    assert Config(uv_link_mode="unset").resolved_uv_link_mode(True) is None


# ---------------------------------------------------------------------------------------------------
# Precedence: defaults < file < CI_CACHE_* env < flags, each value with its source.


def test_precedence_and_source_labels(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mode: shared\n"
        "merge: success\n"
        "retry:\n"
        "  attempts: 5\n"
        "  backoff: 10s\n"
        "tools: [uv, pip]\n",
    )
    env = {"CI_CACHE_MODE": "isolated", "CI_CACHE_MERGE": "never", "CI_CACHE_RETRY_BACKOFF": "1m"}
    loaded = load(tmp_path, env, flags={("mode",): "direct", ("root",): None, ("strict",): None})
    table = rows(loaded)

    assert table["mode"] == ("direct", "flag --mode")  # flag beats env and file
    assert table["merge"] == ("never", "env CI_CACHE_MERGE")  # env beats file
    assert table["retry.backoff"] == (60.0, "env CI_CACHE_RETRY_BACKOFF")
    assert table["retry.attempts"] == (5, f"{path}:4")  # file beats default, with the key's line
    assert table["tools"] == (["uv", "pip"], f"{path}:6")
    assert table["retry.max_backoff"] == (30.0, "default")
    # A flag that was not given (None) changes nothing.
    assert table["root"] == (None, "default")
    assert table["strict"] == (False, "default")
    assert loaded.source_of(("gc", "grace")) == "default"


def test_env_lists_and_nested_keys(tmp_path: Path) -> None:
    env = {
        "CI_CACHE_TOOLS": " uv , temp,",
        "CI_CACHE_KEY_FILES": "uv.lock,requirements/*.txt",
        "CI_CACHE_RETRY_PATTERNS": "Resource busy\nos error 1224\n",
        "CI_CACHE_GC_GRACE": "2h",
        "CI_CACHE_PRUNE_MAX_SIZE": "10GiB",
        "CI_CACHE_STRICT": "true",
    }
    cfg = load(tmp_path, env).config
    assert tool_names(cfg) == ["uv", "temp"]
    assert cfg.key_files == ("uv.lock", "requirements/*.txt")
    assert cfg.retry.patterns == ("Resource busy", "os error 1224")
    assert cfg.gc.grace == 7200.0
    assert cfg.prune.max_size == 10 * 1024**3
    assert cfg.strict is True


def test_env_overrides_one_nested_key_and_keeps_the_file_siblings(tmp_path: Path) -> None:
    path = write(tmp_path, "gc:\n  grace: 5m\n  interval: 1m\n")
    table = rows(load(tmp_path, {"CI_CACHE_GC_GRACE": "10m"}))
    assert table["gc.grace"] == (600.0, "env CI_CACHE_GC_GRACE")
    assert table["gc.interval"] == (60.0, f"{path}:3")


def test_non_config_ci_cache_vars_are_neither_keys_nor_warnings(tmp_path: Path) -> None:
    env = {"CI_CACHE_JOB": "build-1", "CI_CACHE_TRUSTED": "1", "CI_CACHE_DEBUG": "1"}
    loaded, warnings = config.load(env=env, cwd=tmp_path)
    assert warnings == []
    assert loaded.config == Config()


def test_unknown_ci_cache_variable_warns_with_did_you_mean(tmp_path: Path) -> None:
    env = {"CI_CACHE_MOD": "shared", "CI_CACHE_RETRY_ATEMPTS": "4", "CI_CACHE_ZZZZZZZZ": "1", "OTHER": "x"}
    loaded, warnings = config.load(env=env, cwd=tmp_path)
    assert loaded.config == Config()  # ignored, not applied
    text = "\n".join(warnings)
    assert "CI_CACHE_MOD" in text and "did you mean CI_CACHE_MODE?" in text
    assert "did you mean CI_CACHE_RETRY_ATTEMPTS?" in text
    assert any("CI_CACHE_ZZZZZZZZ" in w and "did you mean" not in w for w in warnings)
    assert "OTHER" not in text
    assert len(warnings) == 3


# ---------------------------------------------------------------------------------------------------
# Finding the file.


def test_file_is_found_upward_from_the_cwd(tmp_path: Path) -> None:
    path = write(tmp_path, "mode: shared\n")
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    loaded = load(deep)
    assert loaded.file == path
    assert loaded.config.mode == "shared"


def test_the_nearest_file_wins(tmp_path: Path) -> None:
    write(tmp_path, "mode: shared\n")
    inner = tmp_path / "sub"
    inner.mkdir()
    near = write(inner, "mode: direct\n", name=".ci-cache.yml")
    loaded = load(inner)
    assert loaded.file == near
    assert loaded.config.mode == "direct"


def test_explicit_file_and_ci_cache_config(tmp_path: Path) -> None:
    write(tmp_path, "mode: shared\n")
    other = write(tmp_path, "mode: isolated\n", name="other.yml")
    via_env = write(tmp_path, "mode: direct\n", name="env.yml")
    assert load(tmp_path, explicit=str(other)).config.mode == "isolated"
    assert load(tmp_path, {"CI_CACHE_CONFIG": str(via_env)}).config.mode == "direct"
    # --config beats CI_CACHE_CONFIG.
    assert load(tmp_path, {"CI_CACHE_CONFIG": str(via_env)}, explicit=str(other)).config.mode == "isolated"


def test_missing_explicit_file_is_an_error_naming_the_option_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    message = config_error(tmp_path, explicit=str(missing))
    assert "--config" in message and str(missing) in message


def test_missing_ci_cache_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "ci-cache.yml"
    message = config_error(tmp_path, {"CI_CACHE_CONFIG": str(missing)})
    assert "CI_CACHE_CONFIG" in message and str(missing) in message


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    (tmp_path / "ci-cache.yml").mkdir()
    assert load(tmp_path).file is None
    message = config_error(tmp_path, explicit=str(tmp_path / "ci-cache.yml"))
    assert "--config" in message


# ---------------------------------------------------------------------------------------------------
# Errors: file, line, key, and what to do.


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("mode: isolated\n  extra: indented\n", 2),
        ("mode: isolated\nretry:\n  attempts: 3\n    backoff: 2s\n", 4),
        ("mode: isolated\ntools: [uv, pip\n", 3),
        ("mode: 'unterminated\n", 2),
    ],
)
def test_malformed_yaml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    message = config_error(tmp_path)
    assert f"{path}:{line}" in message
    assert "malformed YAML" in message


def test_a_list_at_the_top_is_not_a_config(tmp_path: Path) -> None:
    path = write(tmp_path, "- mode\n- shared\n")
    message = config_error(tmp_path)
    assert str(path) in message and "mapping" in message


def test_unknown_top_level_key_has_line_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "mode: shared\nmerg: always\n")
    message = config_error(tmp_path)
    assert f"{path}:2" in message
    assert "unknown key `merg`" in message
    assert "did you mean `merge`?" in message


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path: Path) -> None:
    write(tmp_path, "colour: red\n")
    message = config_error(tmp_path)
    assert "unknown key `colour`" in message
    assert "known keys:" in message and "lock_timeout" in message


@pytest.mark.parametrize(
    ("text", "key", "suggestion", "line"),
    [
        ("retry:\n  attempts: 3\n  backof: 5s\n", "retry.backof", "backoff", 3),
        ("gc:\n  grase: 1h\n", "gc.grase", "grace", 2),
        ("prune:\n  max_sise: 1GB\n", "prune.max_sise", "max_size", 2),
    ],
)
def test_unknown_nested_key_has_line_and_suggestion(
    tmp_path: Path, text: str, key: str, suggestion: str, line: int
) -> None:
    path = write(tmp_path, text)
    message = config_error(tmp_path)
    assert f"{path}:{line}" in message
    assert f"unknown key `{key}`" in message
    assert f"did you mean `{suggestion}`?" in message


def test_unknown_key_in_a_custom_tool_has_a_suggestion(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tools:\n"
        "  - uv\n"
        "  - name: conda\n"
        "    env: {CONDA_PKGS_DIRS: '{dir}'}\n"
        "    merg: never\n",
    )
    message = config_error(tmp_path)
    assert f"{path}:5" in message
    assert "merg" in message
    assert "did you mean `merge`?" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("mode: sideways\n", "mode"),
        ("seed: hardlink\n", "seed"),
        ("merge: sometimes\n", "merge"),
        ("uv_link_mode: reflink\n", "uv_link_mode"),
    ],
)
def test_bad_enum_names_the_key_the_value_and_the_choices(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, "strict: false\n" + text)
    message = config_error(tmp_path)
    assert f"{path}:2" in message
    assert f"`{key}`" in message
    bad = text.split(": ", 1)[1].strip()
    assert repr(bad) in message
    assert "Input should be" in message


@pytest.mark.parametrize("value", ["10 parsecs", "-5s", "soon", "5 minutes ago"])
def test_bad_duration_in_the_file(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"lock_timeout: '{value}'\n")
    message = config_error(tmp_path)
    assert f"{path}:1" in message and "`lock_timeout`" in message
    assert "not a duration" in message


@pytest.mark.parametrize("value", ["lots", "10 parsecs", "-1GB", "1.5 zettabytes"])
def test_bad_size_in_the_file(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"prune:\n  max_size: '{value}'\n")
    message = config_error(tmp_path)
    assert f"{path}:2" in message and "`prune.max_size`" in message
    assert "not a size" in message


def test_bad_value_from_env_names_the_variable(tmp_path: Path) -> None:
    message = config_error(tmp_path, {"CI_CACHE_LOCK_TIMEOUT": "forever"})
    assert "env CI_CACHE_LOCK_TIMEOUT" in message and "not a duration" in message
    message = config_error(tmp_path, {"CI_CACHE_MODE": "sideways"})
    assert "env CI_CACHE_MODE" in message


def test_bad_value_from_a_flag_names_the_flag(tmp_path: Path) -> None:
    message = config_error(tmp_path, flags={("mode",): "sideways"})
    assert "flag --mode" in message


def test_out_of_range_attempts(tmp_path: Path) -> None:
    path = write(tmp_path, "retry:\n  attempts: 0\n")
    message = config_error(tmp_path)
    assert f"{path}:2" in message and "`retry.attempts`" in message


def test_config_error_is_a_usage_error() -> None:
    assert issubclass(ConfigError, UsageError)


# ---------------------------------------------------------------------------------------------------
# Durations and sizes.


@pytest.mark.parametrize(
    ("given", "seconds"),
    [(45, 45.0), (1.5, 1.5), ("90", 90.0), ("90s", 90.0), ("250ms", 0.25), ("10m", 600.0), ("1.5h", 5400.0),
     ("2d", 172800.0), ("1w", 604800.0), (" 3 M ", 180.0)],
)
def test_parse_duration(given: object, seconds: float) -> None:
    assert units.parse_duration(given) == pytest.approx(seconds)


@pytest.mark.parametrize("given", [True, "", "s", "10 parsecs", "-1s", -1, "1e3s", "10mins"])
def test_parse_duration_rejects(given: object) -> None:
    with pytest.raises(ValueError):
        units.parse_duration(given)


@pytest.mark.parametrize(
    ("given", "size"),
    [(123, 123), ("123", 123), ("500MB", 500 * 1000**2), ("10GiB", 10 * 1024**3), ("1.5g", 1_500_000_000),
     ("64 kib", 64 * 1024), ("2TB", 2 * 1000**4), ("7b", 7)],
)
def test_parse_size(given: object, size: int) -> None:
    assert units.parse_size(given) == size


@pytest.mark.parametrize("given", [False, "", "lots", "10 parsecs", "-1", -5, "1.5 zettabytes", "GB"])
def test_parse_size_rejects(given: object) -> None:
    with pytest.raises(ValueError):
        units.parse_size(given)


# ---------------------------------------------------------------------------------------------------
# Tools: built-ins, custom tools, unknown names.


def test_custom_tool_from_the_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "tools:\n"
        "  - uv\n"
        "  - name: conda\n"
        "    env:\n"
        "      CONDA_PKGS_DIRS: '{dir}/pkgs'\n"
        "    merge: never\n"
        "    seed: none\n",
    )
    cfg = load(tmp_path).config
    assert tool_names(cfg) == ["uv", "conda"]
    tools = from_config(cfg)
    assert [t.name for t in tools] == ["uv", "conda"]
    conda = tools[1]
    assert isinstance(conda, GenericTool)
    assert conda.merge_policy == "never"
    assert conda.seed_override == "none"
    job_dir = tmp_path / "jobs" / "j1" / "conda"
    assert conda.env(job_dir, windows=False, link_mode=None) == {"CONDA_PKGS_DIRS": f"{job_dir}/pkgs"}


def test_builtin_tools_and_their_env(tmp_path: Path) -> None:
    tools = {t.name: t for t in from_config(Config())}
    assert set(tools) == {"uv", "pip", "temp"}
    cache = tmp_path / "c"
    assert tools["uv"].env(cache, windows=True, link_mode="copy") == {
        "UV_CACHE_DIR": str(cache), "UV_LINK_MODE": "copy"}
    assert tools["uv"].env(cache, windows=False, link_mode=None) == {"UV_CACHE_DIR": str(cache)}
    assert tools["pip"].env(cache, windows=False, link_mode=None) == {"PIP_CACHE_DIR": str(cache)}
    assert tools["temp"].env(cache, windows=False, link_mode=None) == dict.fromkeys(
        ("TEMP", "TMP", "TMPDIR"), str(cache))
    assert tools["temp"].has_shared_cache is False


def test_unknown_tool_name_suggests_the_builtin() -> None:
    with pytest.raises(ConfigError) as info:
        from_config(Config(tools=("uv", "pipp")))
    assert "unknown tool `pipp`" in str(info.value)
    assert "did you mean `pip`?" in str(info.value)


def test_unknown_tool_name_without_a_close_match_says_how_to_define_one() -> None:
    with pytest.raises(ConfigError) as info:
        from_config(Config(tools=("cargo",)))
    assert "unknown tool `cargo`" in str(info.value)
    assert "name:" in str(info.value) and "env:" in str(info.value)


def test_custom_tool_cannot_take_a_builtin_name() -> None:
    with pytest.raises(ConfigError) as info:
        from_config(Config(tools=(CustomTool(name="uv", env={"X": "{dir}"}),)))
    assert "`uv` is a built-in" in str(info.value)


@pytest.mark.parametrize("name", ["Conda", "1tool", "my tool", "x" * 40, "../evil"])
def test_bad_tool_names_are_config_errors(tmp_path: Path, name: str) -> None:
    write(tmp_path, f"tools:\n  - name: '{name}'\n    env: {{X: '{{dir}}'}}\n")
    message = config_error(tmp_path)
    assert "tools.0" in message


def test_tools_from_a_flag_replace_the_file_list(tmp_path: Path) -> None:
    path = write(tmp_path, "tools: [uv, pip, temp]\n")
    table = rows(load(tmp_path, flags={("tools",): ["temp"]}))
    assert table["tools"] == (["temp"], "flag --tools")
    assert str(path) not in table["tools"][1]


# ---------------------------------------------------------------------------------------------------
# remote: a section like the others (file < env, provenance, durations), and credentials are never keys.

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_remote_defaults_mean_no_remote_and_every_key_is_listed(tmp_path: Path) -> None:
    loaded = load(tmp_path)
    assert loaded.config.remote.location is None
    table = rows(loaded)
    assert table["remote.url"] == (None, "default")
    assert table["remote.pull_budget"] == (30.0, "default")
    assert {f"remote.{key}" for key in loaded.config.remote.model_fields} <= set(table)


def test_remote_from_the_file_and_the_env_with_sources_and_durations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "merge: protected\n"
        "remote:\n"
        "  url: S3://ci-cache/team/\n"
        "  endpoint: https://minio.example.com:9000/\n"
        "  pull_budget: 45s\n"
        "  max_blob_size: 512MiB\n",
    )
    env = {"CI_CACHE_REMOTE_PUSH": "never", "CI_CACHE_REMOTE_CONNECT_TIMEOUT": "500ms",
           "CI_CACHE_REMOTE_PUSH_BUDGET": "1m", "CI_CACHE_REMOTE_ALLOW_HTTP": "false",
           "CI_CACHE_REMOTE_KEEP_DAYS": "7", "CI_CACHE_REMOTE_GC_GRACE": "2h"}
    loaded = load(tmp_path, env)
    remote = loaded.config.remote
    assert str(remote.location) == "s3://ci-cache/team"
    assert remote.endpoint == "https://minio.example.com:9000"
    assert (remote.pull_budget, remote.push_budget, remote.connect_timeout) == (45.0, 60.0, 0.5)
    assert remote.max_blob_size == 512 * 1024**2 and remote.keep_days == 7 and remote.gc_grace == 7200.0
    assert remote.resolved_push(loaded.config.merge) == "never"
    table = rows(loaded)
    assert table["remote.url"] == ("s3://ci-cache/team", f"{path}:3")
    assert table["remote.pull_budget"] == (45.0, f"{path}:5")
    assert table["remote.push"] == ("never", "env CI_CACHE_REMOTE_PUSH")
    assert table["remote.connect_timeout"] == (0.5, "env CI_CACHE_REMOTE_CONNECT_TIMEOUT")
    assert table["remote.concurrency"] == (16, "default")
    # Unset, push follows the merge policy: trust is configured once.
    assert load(tmp_path).config.remote.resolved_push("protected") == "protected"


@pytest.mark.parametrize(("text", "line", "key", "says"), [
    ("remote:\n  url: ftp://bkt/x\n", 2, "remote.url", "unsupported scheme ftp://"),
    ("remote:\n  url: s3://bkt/x\n  pull_budget: forever\n", 3, "remote.pull_budget", "not a duration"),
    ("remote:\n  url: s3://bkt/x\n  pull_budget: 20m\n", 3, "remote.pull_budget", "less than or equal to 600"),
    ("remote:\n  push: sometimes\n", 2, "remote.push", "Input should be 'always', 'success', 'protected' or"),
    ("remote:\n  max_blob_size: 1KB\n", 2, "remote.max_blob_size", "greater than or equal to 1048576"),
    ("remote:\n  endpoint: http://127.0.0.1:9000\n", 2, "remote.endpoint", "allow_http: true"),
    ("remote: s3://bkt/x\n", 1, "remote", "Input should be a mapping of keys"),
])
def test_bad_remote_values_name_the_file_line_and_key(tmp_path: Path, text: str, line: int, key: str,
                                                      says: str) -> None:
    path = write(tmp_path, text)
    message = config_error(tmp_path)
    assert f"{path}:{line}: `{key}`: " in message and says in message


def test_unknown_remote_key_has_line_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "remote:\n  url: s3://bkt/x\n  pul_budget: 10s\n")
    message = config_error(tmp_path)
    assert f"{path}:3: unknown key `remote.pul_budget`; did you mean `pull_budget`?" in message


@pytest.mark.parametrize("key", ["secret_access_key", "aws_session_token", "account_key", "password"])
def test_a_credential_in_the_file_is_refused_by_line_without_echoing_it(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, f"remote:\n  url: s3://bkt/x\n  {key}: '{SECRET}'\n")
    message = config_error(tmp_path)
    assert SECRET not in message
    assert f"{path}:3: `remote.{key}`: credentials are never read from ci-cache.yml" in message
    assert "AWS_ACCESS_KEY_ID" in message


@pytest.mark.parametrize(("name", "value"), [
    ("CI_CACHE_REMOTE_URL", f"s3://AKIA:{SECRET}@bkt/x"),
    ("CI_CACHE_REMOTE_ENDPOINT", f"https://acct.blob.core.windows.net/?sv=2022&sig={SECRET}"),
    ("CI_CACHE_REMOTE_PROXY", f"http://me:{SECRET}@proxy:3128"),
])
def test_a_credential_in_a_url_from_the_env_is_refused_by_variable_without_echoing_it(
    tmp_path: Path, name: str, value: str
) -> None:
    message = config_error(tmp_path, {name: value})
    assert SECRET not in message
    assert f"env {name}: " in message and "do not belong" in message


def test_a_credential_variable_of_ours_is_ignored_with_a_warning_that_never_shows_it(tmp_path: Path) -> None:
    env = {"CI_CACHE_REMOTE_SECRET_ACCESS_KEY": SECRET, "CI_CACHE_REMOTE_URLL": "s3://bkt/x"}
    loaded, warnings = config.load(env=env, cwd=tmp_path)
    assert loaded.config.remote == Config().remote
    text = "\n".join(warnings)
    assert SECRET not in text
    assert "ignoring CI_CACHE_REMOTE_SECRET_ACCESS_KEY: credentials are never read" in text
    assert "ignoring unknown variable CI_CACHE_REMOTE_URLL; did you mean CI_CACHE_REMOTE_URL?" in text


def test_every_remote_key_has_its_variable() -> None:
    remote_vars = {name: path for name, path in config.ENV_KEYS.items() if path[0] == "remote"}
    assert {path[1] for path in remote_vars.values()} == set(Config().remote.model_fields)
    assert remote_vars["CI_CACHE_REMOTE_URL"] == ("remote", "url")
    assert remote_vars["CI_CACHE_REMOTE_PULL_BUDGET"] == ("remote", "pull_budget")


# ---------------------------------------------------------------------------------------------------
# What `auto` means on this machine.


@pytest.mark.parametrize(("windows", "mode_note", "link_note"), [
    (False, ("direct", "auto = direct on this machine (isolated on Windows)"),
     ("unset", "auto = unset on this machine (copy on Windows)")),
    (True, ("isolated", "auto = isolated on this machine (direct on Linux and macOS)"),
     ("copy", "auto = copy on this machine (unset on Linux and macOS)")),
])
def test_auto_notes_say_what_auto_resolves_to_here_and_elsewhere(
    windows: bool, mode_note: tuple[str, str], link_note: tuple[str, str]
) -> None:
    assert config.auto_notes(Config(), windows) == {("mode",): mode_note, ("uv_link_mode",): link_note}
    assert config.auto_notes(Config(mode="shared", uv_link_mode="copy"), windows) == {}
