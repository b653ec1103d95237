"""ci-cache's settings: the models of ci-cache.yml, and precedence (defaults < file < env < flags).

Precedence is decided here and only here, and every value remembers where it came from so that
`ci-cache config` can show it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from ci_cache import configfile, schema
from ci_cache.errors import ConfigError
from ci_cache.remote.settings import RemoteConfig, credential_refusal
from ci_cache.schema import Model, Parse, Pattern, Setting, ValidationError, setting
from ci_cache.units import Duration, Size

ENV_PREFIX = "CI_CACHE_"
KeyPath = schema.KeyPath  # ("retry", "attempts"): a key inside its sections

# Env vars that belong to ci-cache but are not config keys.
NON_CONFIG_ENV = frozenset(
    {"CI_CACHE_CONFIG", "CI_CACHE_JOB", "CI_CACHE_DEBUG", "CI_CACHE_TRUSTED", "CI_CACHE_JOB_DIR",
     "CI_CACHE_QUIET", "CI_CACHE_TOKEN"}
)


def _yaml_off(value: object) -> object:
    """YAML 1.1 reads a bare `off` as False; `mode: off` means the mode."""
    return "off" if value is False else value


Mode = Annotated[Literal["isolated", "shared", "direct", "off", "auto"], Parse(_yaml_off)]
SeedMode = Literal["link", "copy", "none"]
MergePolicy = Literal["always", "success", "never", "protected"]
UvLinkMode = Literal["auto", "copy", "hardlink", "clone", "symlink", "unset"]
ToolName = Annotated[str, Pattern(r"^[a-z][a-z0-9_-]{0,31}$")]


class RetryConfig(Model):
    """How `run` retries a command that failed on a transient cache error."""

    attempts: int = setting("total attempts, the first one included", default=3, ge=1, le=50)
    backoff: Duration = setting("delay before the first retry; doubles each time, with jitter", default=2.0)
    max_backoff: Duration = setting("the longest delay between two attempts", default=30.0)
    # Regexes may hold commas: as text (a variable), one per line.
    patterns: tuple[str, ...] = setting("extra regexes that mark an output as transient", default=(),
                                        separator="\n")


class GcConfig(Model):
    """Reclaiming the directories of crashed jobs."""

    grace: Duration = setting("a dead job's dir is reclaimed only when older than this", default=3600.0)
    interval: Duration = setting("automatic gc at setup runs at most this often", default=600.0)
    on_setup: bool = setting("run a cheap gc at setup", default=True)


class PruneConfig(Model):
    """Bounding the shared caches."""

    max_size: Size | None = setting("evict least recently used entries above this size", default=None)
    max_age: Duration | None = setting("evict entries unused for longer than this", default=None)
    on_finish: bool = setting("prune at finish when a bound is exceeded", default=False)
    uv_ci: bool = setting("use `uv cache prune --ci` (drops pre-built wheels)", default=False)


class PoolConfig(Model):
    """Finished job caches kept for the next job to refresh instead of seeding anew (`ci_cache.pool`)."""

    size: int = setting("job caches kept per tool (isolated jobs that seed by link); 0 turns the pool off",
                        default=4, ge=0, le=64)
    max_age: Duration = setting("a kept cache older than this is not used, and gc deletes it", default=86400.0)


class CustomTool(Model):
    """A tool ci-cache does not know: a name, env vars templated with its dir, and a merge policy."""

    name: ToolName = setting("the tool's name: lowercase letters, digits, _ and -")
    env: dict[str, str] = setting("env vars to set; '{dir}' becomes the tool's cache dir")
    merge: Literal["add_missing", "never"] = setting("whether finish adds the job's new files to the shared cache",
                                                     default="add_missing")
    seed: SeedMode | None = setting("overrides the global seed mode for this tool", default=None)


ToolEntry = ToolName | CustomTool


class Config(Model):
    """Everything ci-cache.yml can say. Every key has a default: no file is needed."""

    root: Path | None = setting("where shared caches and job dirs live", default=None)
    mode: Mode = setting("auto = isolated on Windows, direct elsewhere", default="auto")
    tools: tuple[ToolEntry, ...] = setting("built-ins: uv, pip, temp", default=("uv", "pip", "temp"))
    seed: SeedMode = setting("how isolated jobs get the warm cache", default="link")
    key_files: tuple[str, ...] = setting("globs of the job's lock/requirements files; seed only what they need",
                                         default=())
    merge: MergePolicy = setting("when finish merges a job's new entries back", default="always")
    lock_timeout: Duration = setting("how long to wait for a lock", default=600.0)
    retry: RetryConfig = setting("retries of transient cache errors", default=RetryConfig())
    uv_link_mode: UvLinkMode = setting("UV_LINK_MODE for isolated jobs; auto = copy on Windows, unset elsewhere",
                                       default="auto")
    strict: bool = setting("a seed or merge failure fails the job instead of warning", default=False)
    lease_ttl: Duration = setting("the longest a setup/finish job can live", default=86400.0)
    gc: GcConfig = setting("reclaiming what crashed jobs left", default=GcConfig())
    prune: PruneConfig = setting("bounds of the shared caches", default=PruneConfig())
    pool: PoolConfig = setting("warm job caches kept for the next job", default=PoolConfig())
    remote: RemoteConfig = setting("the fleet tier: a cache shared by every agent, in object storage",
                                   default=RemoteConfig())

    def resolved_mode(self, windows: bool) -> str:
        if self.mode == "auto":
            return "isolated" if windows else "direct"
        return self.mode

    def resolved_uv_link_mode(self, windows: bool) -> str | None:
        if self.uv_link_mode == "unset":
            return None
        if self.uv_link_mode == "auto":
            return "copy" if windows else None
        return self.uv_link_mode


def auto_notes(cfg: Config, windows: bool) -> dict[KeyPath, tuple[str, str]]:
    """For each key left to `auto`: what it resolves to on this machine, and a note that says so and what it
    resolves to on the other platforms (`ci-cache config` shows both)."""
    there = "Linux and macOS" if windows else "Windows"
    resolvers: dict[KeyPath, tuple[str, Callable[[bool], str | None]]] = {
        ("mode",): (cfg.mode, cfg.resolved_mode),
        ("uv_link_mode",): (cfg.uv_link_mode, cfg.resolved_uv_link_mode),
    }
    notes: dict[KeyPath, tuple[str, str]] = {}
    for key, (value, resolve) in resolvers.items():
        if value == "auto":
            mine, other = resolve(windows) or "unset", resolve(not windows) or "unset"
            notes[key] = (mine, f"auto = {mine} on this machine ({other} on {there})")
    return notes


# ---------------------------------------------------------------------------------------------------
# Layers and provenance.

# The keys a command-line flag can set, by the flag's name. Each command offers the flags it uses;
# `ci-cache config` offers them all, to show how each one ranks.
FLAGS: dict[KeyPath, str] = {
    ("root",): "--root",
    ("mode",): "--mode",
    ("tools",): "--tools",
    ("merge",): "--merge",
    ("strict",): "--strict",
    ("gc", "grace"): "--grace",
    ("prune", "max_size"): "--max-size",
    ("prune", "max_age"): "--max-age",
    ("prune", "uv_ci"): "--ci",
    ("remote", "url"): "--remote-url",
    ("remote", "endpoint"): "--remote-endpoint",
    ("remote", "push"): "--remote-push",
}


def env_name(path: KeyPath) -> str:
    """CI_CACHE_MODE for ("mode",), CI_CACHE_RETRY_ATTEMPTS for ("retry", "attempts"), ..."""
    return ENV_PREFIX + "_".join(path).upper()


# Every key that holds a value (sections walked into), with its declaration and type; and its variable.
KEYS: dict[KeyPath, tuple[Setting, Any]] = {path: (spec, tp) for path, spec, tp in schema.leaves(Config)}
ENV_KEYS: dict[str, KeyPath] = {env_name(path): path for path in KEYS}


def choices(path: KeyPath) -> tuple[str, ...]:
    """The words a key takes when it is one of a few (`mode`: isolated, shared, ...), else ()."""
    return tuple(str(c) for c in schema.choices_of(KEYS[path][1]))


class Layer:
    """One source of values: nested data plus, for each leaf, a label saying where it came from."""

    # Not a dataclass (nor LoadedConfig): `dataclasses` imports `inspect`, which every process would pay for.
    def __init__(self, name: str, data: dict[str, Any] | None = None) -> None:
        self.name = name
        self.data: dict[str, Any] = data if data is not None else {}
        self.labels: dict[KeyPath, str] = {}

    def set(self, path: KeyPath, value: Any, label: str) -> None:
        node = self.data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        self.labels[path] = label


class LoadedConfig(NamedTuple):
    """The effective config, where each key's value came from, and the file read (if any)."""

    config: Config
    sources: Mapping[KeyPath, str]
    file: Path | None

    def source_of(self, path: KeyPath) -> str:
        return self.sources.get(path, "default")


def file_layer(path: Path) -> Layer:
    data, lines = configfile.read(path)
    layer = Layer("file", data=data)

    def label_leaves(node: Any, at: KeyPath) -> None:
        if isinstance(node, dict) and at[:1] not in (("tools",),):
            for key, value in node.items():
                label_leaves(value, (*at, key))
            return
        layer.labels[at] = f"{path}:{lines.get(at, 1)}"

    label_leaves(data, ())
    for key_path, line in lines.items():
        layer.labels.setdefault(key_path, f"{path}:{line}")
    return layer


def from_text(path: KeyPath, text: str) -> Any:
    """A value as a variable or a flag gives it, for the model to check; None when it is empty, which
    means "not given" (CI templates pass "" to leave a setting to the next layer down)."""
    if not text.strip():
        return None
    spec, tp = KEYS[path]
    if not schema.is_list(tp):
        return text
    parts = text.splitlines() if spec.separator == "\n" else [p.strip() for p in text.split(spec.separator)]
    return [part for part in parts if part.strip()]


def env_layer(env: Mapping[str, str]) -> tuple[Layer, list[str]]:
    """Values from CI_CACHE_* variables, and warnings for the ones ci-cache does not know."""
    layer = Layer("env")
    warnings = []
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in NON_CONFIG_ENV or not value.strip():
            continue
        path = ENV_KEYS.get(name)
        if path is None:
            warnings.append(_unknown_variable(name))
            continue
        layer.set(path, from_text(path, value), f"env {name}")
    return layer, warnings


def _unknown_variable(name: str) -> str:
    remote = env_name(("remote",)) + "_"
    refusal = credential_refusal(name.removeprefix(remote)) if name.startswith(remote) else None
    if refusal:  # its value is never read, nor shown
        return f"ignoring {name}: {refusal}"
    import difflib  # only for a misspelt variable

    known = {k.removeprefix(ENV_PREFIX): k for k in [*ENV_KEYS, *NON_CONFIG_ENV]}
    close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), list(known), n=1, cutoff=0.75)
    hint = f"; did you mean {known[close[0]]}?" if close else ""
    return f"ignoring unknown variable {name}{hint}"


def flag_layer(flags: Mapping[KeyPath, Any]) -> Layer:
    """Values from the command line: text as typed (empty: not given), or values already parsed."""
    layer = Layer("flags")
    for path, value in flags.items():
        parsed = from_text(path, value) if isinstance(value, str) else value
        if parsed is not None:
            layer.set(path, parsed, f"flag {FLAGS[path]}")
    return layer


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _label_for(loc: KeyPath, labels: Mapping[KeyPath, str]) -> str:
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in labels:
            return labels[loc[:cut]]
    return "defaults"


def _explain(exc: ValidationError, labels: Mapping[KeyPath, str]) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc) or "(top level)"
        where = _label_for(loc, labels)
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key `{key}`; {err.get('hint', '')}")
        else:
            got = f" (got {err['input']!r})" if "input" in err else ""  # a credential has no input: never shown
            lines.append(f"{where}: `{key}`: {err['msg']}{got}")
    unique = list(dict.fromkeys(lines))
    return ConfigError("; ".join(unique), hint="see `ci-cache config --schema` for every key")


def load(
    *,
    env: Mapping[str, str],
    cwd: Path,
    explicit_file: str | None = None,
    flags: Mapping[KeyPath, Any] | None = None,
) -> tuple[LoadedConfig, list[str]]:
    """The effective config and the warnings met on the way."""
    path = configfile.find(explicit_file, env, cwd)
    layers = []
    if path is not None:
        layers.append(file_layer(path))
    env_values, warnings = env_layer(env)
    layers += [env_values, flag_layer(flags or {})]

    merged: dict[str, Any] = {}
    labels: dict[KeyPath, str] = {}
    for layer in layers:
        merged = _merge(merged, layer.data)
        labels.update(layer.labels)
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        raise _explain(exc, labels) from None
    leaf_sources = {k: v for k, v in labels.items() if not any(p.isdigit() for p in k)}
    return LoadedConfig(config=config, sources=leaf_sources, file=path), warnings


def describe(loaded: LoadedConfig) -> list[tuple[str, Any, str]]:
    """(key, value as JSON data, source) for every key that holds a value, for `ci-cache config`."""
    rows: list[tuple[str, Any, str]] = []
    for path in KEYS:
        value: Any = loaded.config
        for part in path:
            value = getattr(value, part)
        rows.append((".".join(path), schema.to_json(value), loaded.source_of(path)))
    return rows
