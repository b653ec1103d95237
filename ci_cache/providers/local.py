"""Outside any CI: a developer's machine or a plain script. Always trusted."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ci_cache.providers.base import JobIdentity


class LocalProvider:
    name = "local"

    def detect(self, env: Mapping[str, str]) -> bool:
        return True

    def identity(self, env: Mapping[str, str]) -> JobIdentity:
        # A setup/finish pair in one folder agrees on this id; `run` passes a unique one instead.
        return JobIdentity(provider=self.name, job_id=f"local:{os.getcwd()}", trusted=True,
                           trust_reason="local run", workspace=os.getcwd())
