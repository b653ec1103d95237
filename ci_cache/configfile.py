"""ci-cache.yml on disk: where it is found, and its YAML read with the line of every key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ci_cache.errors import ConfigError

CONFIG_NAMES = ("ci-cache.yml", "ci-cache.yaml", ".ci-cache.yml")

def find(explicit: str | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    """--config, then CI_CACHE_CONFIG, then the nearest ci-cache.yml upward from the cwd."""
    for given, origin in ((explicit, "--config"), (env.get("CI_CACHE_CONFIG"), "CI_CACHE_CONFIG")):
        if given:
            path = Path(given)
            if not path.is_file():
                raise ConfigError(f"{origin}: no config file at {path}", hint="fix the path or unset it")
            return path
    for folder in (cwd, *cwd.parents):
        for name in CONFIG_NAMES:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def _yaml_with_lines(text: str, path: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse YAML and remember the line of every key, for error messages."""
    import yaml  # only when there is a file: most jobs have none, and every job pays for imports
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: malformed YAML: {problem}", hint="fix the syntax at that line") from exc
    lines: dict[tuple[str, ...], int] = {}

    def convert(node: Any, at: tuple[str, ...]) -> Any:
        if node is None:
            return None
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*at, key)
                lines[child] = key_node.start_mark.line + 1
                out[key] = convert(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                child = (*at, str(index))
                lines[child] = item.start_mark.line + 1
                items.append(convert(item, child))
            return items
        return yaml.SafeLoader(text).construct_object(node)

    return convert(root, ()), lines


def read(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The file's mapping of keys, and the line of every key in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    data, lines = _yaml_with_lines(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping of keys, like `mode: isolated`")
    return data, lines
