"""What ci-cache needs to know from a CI system: who the job is, and whether it is trusted."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple, Protocol

_NO_DETAILS: Mapping[str, str] = MappingProxyType({})


class JobIdentity(NamedTuple):
    """A job as its CI sees it. `job_id` is the stable text both setup and finish compute."""

    provider: str
    job_id: str
    trusted: bool
    workspace: str | None = None
    runner_temp: str | None = None
    details: Mapping[str, str] = _NO_DETAILS
    trust_reason: str = ""
    # The CI's own id of this job, kept when --job/CI_CACHE_JOB overrides `job_id`: a finish that carries
    # no token refuses an allocation that another CI job made under the same id. Empty outside a CI.
    ci_job_id: str = ""


class Provider(Protocol):
    name: str

    def detect(self, env: Mapping[str, str]) -> bool:
        """True when this process runs inside this CI."""
        ...

    def identity(self, env: Mapping[str, str]) -> JobIdentity:
        ...


def pick(env: Mapping[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    """The subset of `env` named by `keys` that is set, for the job record."""
    return {k: env[k] for k in keys if env.get(k)}
