"""The cache tools: a registry of built-ins, plus the user-defined ones from the config.

Each built-in's module is imported when the tool is made, so a job loads only the tools it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ci_cache.config import Config, CustomTool
from ci_cache.errors import ConfigError

if TYPE_CHECKING:
    from ci_cache.tools.base import CacheTool


def _uv() -> CacheTool:
    from ci_cache.tools.uv import UvTool

    return UvTool()


def _pip() -> CacheTool:
    from ci_cache.tools.generic import GenericTool

    return GenericTool("pip", {"PIP_CACHE_DIR": "{dir}"}, commands=("pip", "pip3"))


def _temp() -> CacheTool:
    from ci_cache.tools.generic import TempTool

    return TempTool()


BUILTINS: dict[str, Callable[[], CacheTool]] = {"uv": _uv, "pip": _pip, "temp": _temp}


def from_config(config: Config) -> list[CacheTool]:
    tools: list[CacheTool] = []
    for entry in config.tools:
        if isinstance(entry, CustomTool):
            if entry.name in BUILTINS:
                raise ConfigError(f"tools: `{entry.name}` is a built-in tool; give your own tool another name")
            from ci_cache.tools.generic import GenericTool

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
