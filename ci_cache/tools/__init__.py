"""The cache tools: a registry of built-ins, plus the user-defined ones from the config."""

from __future__ import annotations

from collections.abc import Callable

from ci_cache.config import Config, CustomTool
from ci_cache.errors import ConfigError
from ci_cache.tools.base import CacheTool
from ci_cache.tools.generic import GenericTool, TempTool
from ci_cache.tools.uv import UvTool

BUILTINS: dict[str, Callable[[], CacheTool]] = {
    "uv": UvTool,
    "pip": lambda: GenericTool("pip", {"PIP_CACHE_DIR": "{dir}"}, commands=("pip", "pip3")),
    "temp": TempTool,
}


def from_config(config: Config) -> list[CacheTool]:
    tools: list[CacheTool] = []
    for entry in config.tools:
        if isinstance(entry, CustomTool):
            if entry.name in BUILTINS:
                raise ConfigError(f"tools: `{entry.name}` is a built-in tool; give your own tool another name")
            tools.append(GenericTool(entry.name, entry.env, merge=entry.merge,
                                     seed=entry.seed or "copy"))
        elif entry in BUILTINS:
            tools.append(BUILTINS[entry]())
        else:
            import difflib

            close = difflib.get_close_matches(entry, list(BUILTINS), n=1)
            hint = f"did you mean `{close[0]}`?" if close else "define it as {name: ..., env: {...}}"
            raise ConfigError(f"tools: unknown tool `{entry}`; {hint}")
    return tools
