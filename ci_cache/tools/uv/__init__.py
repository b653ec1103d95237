"""uv's cache: the one place that knows its layout, and how to seed, merge, prune and verify it.

Each operation's module is imported when it runs: a job seeds and merges, and never loads the code of
prune, verify or the fleet tier unless it uses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ci_cache.tools.uv.layout import DEEPEST_SUFFIX, ROOT_LOCK, archive_ids, find_uv, interpreter_store

if TYPE_CHECKING:
    from ci_cache.tools import base

__all__ = ["DEEPEST_SUFFIX", "UvTool", "archive_ids", "find_uv", "interpreter_store"]


class UvTool:
    """uv and uvx, whose cache `UV_CACHE_DIR` names; `UV_LINK_MODE` as the config resolves it."""

    name = "uv"
    commands: tuple[str, ...] = ("uv", "uvx")
    has_shared_cache = True
    own_lock: str | None = ROOT_LOCK  # every uv command holds it shared for its whole life
    keeps_warm = True

    def env(self, cache_dir: Path, *, windows: bool, link_mode: str | None) -> Mapping[str, str]:
        env = {"UV_CACHE_DIR": str(cache_dir)}
        if link_mode:
            env["UV_LINK_MODE"] = link_mode
        return env

    def seed(self, request: base.SeedRequest) -> base.SeedStats:
        from ci_cache.tools.uv.seed import Seeder

        return Seeder(request).run()

    def merge(self, request: base.MergeRequest) -> base.MergeStats:
        from ci_cache.tools.uv.merge import Merger

        return Merger(request).run()

    def prune(self, request: base.PruneRequest) -> base.PruneReport:
        from ci_cache.tools.uv.prune import prune_cache

        return prune_cache(request)

    def verify(self, cache: Path) -> base.VerifyReport:
        from ci_cache.tools.uv.verify import verify_cache

        return verify_cache(cache)

    def remote(self, env: Mapping[str, str]) -> base.RemoteCodec | None:
        from ci_cache.tools.uv.remote import UvRemote

        return UvRemote(env)
