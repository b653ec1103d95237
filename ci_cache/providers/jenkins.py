"""Jenkins: identity from BUILD_TAG and the executor; fork pull requests are untrusted."""

from __future__ import annotations

from collections.abc import Mapping

from ci_cache.digest import sha256_hex
from ci_cache.providers.base import JobIdentity, pick

TRUST_VAR = "CI_CACHE_TRUSTED"


class JenkinsProvider:
    name = "jenkins"

    def detect(self, env: Mapping[str, str]) -> bool:
        return bool(env.get("JENKINS_URL") or env.get("JENKINS_HOME")) and bool(env.get("BUILD_TAG"))

    def identity(self, env: Mapping[str, str]) -> JobIdentity:
        trusted, reason = _trust(env)
        # The workspace tells apart parallel branches on one executor; hashed, since it is a path.
        job_id = (f"jenkins:{env.get('NODE_NAME', '')}/{env.get('BUILD_TAG', '')}/"
                  f"{env.get('EXECUTOR_NUMBER', '')}/{_short_hash(env.get('WORKSPACE', ''))}")
        return JobIdentity(
            provider=self.name,
            job_id=job_id,
            ci_job_id=job_id,
            trusted=trusted,
            trust_reason=reason,
            workspace=env.get("WORKSPACE"),
            runner_temp=env.get("WORKSPACE_TMP"),
            details=pick(env, ("BUILD_TAG", "EXECUTOR_NUMBER", "NODE_NAME", "WORKSPACE", "BRANCH_NAME",
                               "CHANGE_ID", "CHANGE_FORK")),
        )


def _short_hash(text: str) -> str:
    return sha256_hex(text)[:10] if text else ""


def _trust(env: Mapping[str, str]) -> tuple[bool, str]:
    # Jenkins has no single notion of a protected ref: the admin decides through CI_CACHE_TRUSTED.
    explicit = env.get(TRUST_VAR, "").strip().lower()
    if explicit:
        trusted = explicit in ("1", "true", "yes")
        return trusted, f"{TRUST_VAR}={explicit}"
    if env.get("CHANGE_FORK"):
        return False, f"pull request from the fork {env['CHANGE_FORK']}"
    return True, "not a fork pull request"
