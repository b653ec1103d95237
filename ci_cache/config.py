"""ci-cache's settings: the models of ci-cache.yml, and precedence (defaults < file < env < flags).

Precedence is decided here and only here, and every value remembers where it came from so that
`ci-cache config` can show it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ci_cache import configfile
from ci_cache.errors import ConfigError

ENV_PREFIX = "CI_CACHE_"

# Env vars that belong to ci-cache but are not config keys.
NON_CONFIG_ENV = frozenset(
    {"CI_CACHE_CONFIG", "CI_CACHE_JOB", "CI_CACHE_DEBUG", "CI_CACHE_TRUSTED", "CI_CACHE_JOB_DIR",
     "CI_CACHE_QUIET", "CI_CACHE_TOKEN"}
)

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}


def parse_duration(value: object) -> float:
    """'90s', '10m', '1.5h', '2d' or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration, like 30s, 10m or 2h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*", str(value).lower())
        if not match:
            raise ValueError(f"{value!r} is not a duration; use a number with s, m, h or d, like 30s or 10m")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_size(value: object) -> int:
    """'500MB', '10GiB', '1.5g' or a number of bytes."""
    if isinstance(value, bool):
        raise ValueError("a size, like 500MB or 10GiB")
    if isinstance(value, int):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", str(value).lower())
        if not match or match.group(2) not in _SIZE_UNITS:
            raise ValueError(f"{value!r} is not a size; use a number with KB, MB, GB, MiB or GiB, like 10GB")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size < 0:
        raise ValueError("a size cannot be negative")
    return size


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]

def _yaml_off(value: object) -> object:
    """YAML 1.1 reads a bare `off` as False; `mode: off` means the mode."""
    return "off" if value is False else value


Mode = Annotated[Literal["isolated", "shared", "direct", "off", "auto"], BeforeValidator(_yaml_off)]
SeedMode = Literal["link", "copy", "none"]
MergePolicy = Literal["always", "success", "never", "protected"]
UvLinkMode = Literal["auto", "copy", "hardlink", "clone", "symlink", "unset"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(_Strict):
    """How `run` retries a command that failed on a transient cache error."""

    attempts: int = Field(3, ge=1, le=50, description="total attempts, the first one included")
    backoff: Duration = Field(2.0, description="delay before the first retry; doubles each time, with jitter")
    max_backoff: Duration = Field(30.0, description="the longest delay between two attempts")
    patterns: tuple[str, ...] = Field((), description="extra regexes that mark an output as transient")


class GcConfig(_Strict):
    """Reclaiming the directories of crashed jobs."""

    grace: Duration = Field(3600.0, description="a dead job's dir is reclaimed only when older than this")
    interval: Duration = Field(600.0, description="automatic gc at setup runs at most this often")
    on_setup: bool = Field(True, description="run a cheap gc at setup")


class PruneConfig(_Strict):
    """Bounding the shared caches."""

    max_size: Size | None = Field(None, description="evict least recently used entries above this size")
    max_age: Duration | None = Field(None, description="evict entries unused for longer than this")
    on_finish: bool = Field(False, description="prune at finish when a bound is exceeded")
    uv_ci: bool = Field(False, description="use `uv cache prune --ci` (drops pre-built wheels)")


class CustomTool(_Strict):
    """A tool ci-cache does not know: a name, env vars templated with its dir, and a merge policy."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    env: dict[str, str] = Field(description="env vars to set; '{dir}' becomes the tool's cache dir")
    merge: Literal["add_missing", "never"] = "add_missing"
    seed: SeedMode | None = Field(None, description="overrides the global seed mode for this tool")


ToolEntry = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] | CustomTool


class Config(_Strict):
    """Everything ci-cache.yml can say. Every key has a default: no file is needed."""

    root: Path | None = Field(None, description="where shared caches and job dirs live")
    mode: Mode = Field("auto", description="auto = isolated on Windows, direct elsewhere")
    tools: tuple[ToolEntry, ...] = Field(("uv", "pip", "temp"), description="built-ins: uv, pip, temp")
    seed: SeedMode = Field("link", description="how isolated jobs get the warm cache")
    key_files: tuple[str, ...] = Field(
        (), description="globs of the job's lock/requirements files; seed only what they need"
    )
    merge: MergePolicy = Field("always", description="when finish merges a job's new entries back")
    lock_timeout: Duration = Field(600.0, description="how long to wait for a lock")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    uv_link_mode: UvLinkMode = Field(
        "auto", description="UV_LINK_MODE for isolated jobs; auto = copy on Windows, unset elsewhere"
    )
    strict: bool = Field(False, description="a seed or merge failure fails the job instead of warning")
    lease_ttl: Duration = Field(86400.0, description="the longest a setup/finish job can live")
    gc: GcConfig = Field(default_factory=GcConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)

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


# ---------------------------------------------------------------------------------------------------
# Layers and provenance.

KeyPath = tuple[str, ...]

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
}


def choices(path: KeyPath) -> tuple[str, ...]:
    """The words a top-level key takes when it is one of a few (`mode`: isolated, shared, ...), else ()."""
    annotation = Config.model_fields[path[0]].annotation if len(path) == 1 else None
    return tuple(get_args(annotation)) if get_origin(annotation) is Literal else ()


@dataclass
class Layer:
    """One source of values: nested data plus, for each leaf, a label saying where it came from."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    labels: dict[KeyPath, str] = field(default_factory=dict)

    def set(self, path: KeyPath, value: Any, label: str) -> None:
        node = self.data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        self.labels[path] = label


@dataclass(frozen=True)
class LoadedConfig:
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


def _env_keys() -> dict[str, KeyPath]:
    """CI_CACHE_MODE -> ("mode",), CI_CACHE_RETRY_ATTEMPTS -> ("retry", "attempts"), ..."""
    keys: dict[str, KeyPath] = {}
    for name, info in Config.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            for sub_name in sub.model_fields:
                keys[f"{ENV_PREFIX}{name}_{sub_name}".upper()] = (name, sub_name)
        else:
            keys[f"{ENV_PREFIX}{name}".upper()] = (name,)
    return keys


ENV_KEYS = _env_keys()
_LIST_KEYS = {("tools",), ("key_files",)}
_LINE_LIST_KEYS = {("retry", "patterns")}


def from_text(path: KeyPath, text: str) -> Any:
    """A value as a variable or a flag gives it, for the model to check; None when it is empty, which
    means "not given" (CI templates pass "" to leave a setting to the next layer down)."""
    if not text.strip():
        return None
    if path in _LIST_KEYS:
        return [part.strip() for part in text.split(",") if part.strip()]
    if path in _LINE_LIST_KEYS:
        return [line for line in text.splitlines() if line]
    return text


def env_layer(env: Mapping[str, str]) -> tuple[Layer, list[str]]:
    """Values from CI_CACHE_* variables, and warnings for the ones ci-cache does not know."""
    layer = Layer("env")
    warnings = []
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in NON_CONFIG_ENV or not value.strip():
            continue
        path = ENV_KEYS.get(name)
        if path is None:
            known = {k.removeprefix(ENV_PREFIX): k for k in [*ENV_KEYS, *NON_CONFIG_ENV]}
            close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), list(known), n=1, cutoff=0.75)
            hint = f"; did you mean {known[close[0]]}?" if close else ""
            warnings.append(f"ignoring unknown variable {name}{hint}")
            continue
        layer.set(path, from_text(path, value), f"env {name}")
    return layer, warnings


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


def _model_at(loc: KeyPath) -> type[BaseModel] | None:
    if len(loc) == 2 and loc[0] == "tools" and loc[1].isdigit():
        return CustomTool
    model: type[BaseModel] = Config
    for part in loc:
        info = model.model_fields.get(part)
        if info is None:
            return model
        sub = info.annotation
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            return None
        model = sub
    return model


def _explain(exc: ValidationError, labels: Mapping[KeyPath, str]) -> ConfigError:
    lines = []
    errors = exc.errors()
    # A tool entry is a name or a mapping: when the mapping branch has errors, the name branch's
    # "should be a string" only adds noise.
    mapping_branch = {tuple(str(p) for p in e["loc"][:2]) for e in errors if "CustomTool" in map(str, e["loc"])}
    for err in errors:
        raw = tuple(str(p) for p in err["loc"])
        if raw[:2] in mapping_branch and ("str" in raw or "constrained-str" in raw):
            continue
        loc = raw
        # pydantic adds union-branch names (e.g. `str`, `CustomTool`) to the path; drop them.
        loc = tuple(p for p in loc if not p[:1].isupper() and p not in ("str", "constrained-str"))
        key = ".".join(loc) or "(top level)"
        where = _label_for(loc, labels)
        if err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            known = list(parent.model_fields) if parent else []
            close = difflib.get_close_matches(loc[-1], known, n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(known)}"
            lines.append(f"{where}: unknown key `{key}`; {hint}")
        else:
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: `{key}`: {message} (got {err.get('input')!r})")
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
    """(key, value, source) for every leaf, for `ci-cache config`."""
    rows: list[tuple[str, Any, str]] = []
    data = loaded.config.model_dump(mode="json")

    def walk(node: Any, at: KeyPath) -> None:
        if isinstance(node, dict) and _model_at(at) is not None and at != ("tools",):
            for key, value in node.items():
                walk(value, (*at, key))
            return
        rows.append((".".join(at), node, loaded.source_of(at)))

    walk(data, ())
    return rows
