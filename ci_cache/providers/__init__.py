"""CI providers: a registry, and the job identity with the user's overrides applied."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ci_cache.digest import sha256_hex
from ci_cache.errors import UsageError
from ci_cache.providers.base import JobIdentity, Provider
from ci_cache.providers.github import GitHubProvider
from ci_cache.providers.gitlab import GitLabProvider
from ci_cache.providers.jenkins import JenkinsProvider
from ci_cache.providers.local import LocalProvider

__all__ = ["PROVIDERS", "JobIdentity", "Provider", "detect", "job_identity", "job_key", "validate_job_id"]

# Order matters: the first that detects itself wins; local always does.
PROVIDERS: dict[str, Provider] = {
    p.name: p for p in (GitHubProvider(), GitLabProvider(), JenkinsProvider(), LocalProvider())
}

MAX_JOB_ID = 1024
# What a job id may not hold: it must never look like a path that leaves the root. (A `/` is fine:
# providers join their ids with it, and ids are only ever used hashed.)
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]|^[A-Za-z]:|\.\.")


def detect(env: Mapping[str, str]) -> Provider:
    return next(p for p in PROVIDERS.values() if p.detect(env))


def validate_job_id(job_id: str, origin: str) -> str:
    """A job id given by the user: reject what looks like a path, so nobody mistakes it for one."""
    if not job_id.strip():
        raise UsageError(f"{origin}: the job id is empty")
    if len(job_id) > MAX_JOB_ID:
        raise UsageError(f"{origin}: the job id is {len(job_id)} characters long; the limit is {MAX_JOB_ID}")
    if _FORBIDDEN.search(job_id):
        raise UsageError(
            f"{origin}: job id {job_id[:80]!r} contains a backslash, '..', a drive letter or a control "
            "character",
            hint="use letters, digits and - _ . : @ + /, e.g. build-42",
        )
    return job_id


def job_identity(env: Mapping[str, str], explicit_job: str | None) -> JobIdentity:
    """The provider's identity, with --job / CI_CACHE_JOB taking precedence."""
    ident = detect(env).identity(env)
    # The provider's id is exported as CI_CACHE_JOB for later steps, so it must pass the same check.
    ident = ident._replace(job_id=_FORBIDDEN.sub("_", ident.job_id))
    for given, origin in ((explicit_job, "--job"), (env.get("CI_CACHE_JOB"), "CI_CACHE_JOB")):
        if given:
            return ident._replace(job_id=validate_job_id(given, origin))
    return ident


def job_key(job_id: str) -> str:
    """A short, filesystem-safe name for a job: Windows paths stay short whatever the job is called."""
    return "j" + sha256_hex(job_id)[:11]
