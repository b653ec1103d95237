"""GitLab CI: identity from CI_JOB_ID; trusted only on protected refs."""

from __future__ import annotations

from collections.abc import Mapping

from ci_cache.providers.base import JobIdentity, pick


class GitLabProvider:
    name = "gitlab"

    def detect(self, env: Mapping[str, str]) -> bool:
        return env.get("GITLAB_CI") == "true"

    def identity(self, env: Mapping[str, str]) -> JobIdentity:
        protected = env.get("CI_COMMIT_REF_PROTECTED") == "true"
        ref = env.get("CI_COMMIT_REF_NAME", "?")
        return JobIdentity(
            provider=self.name,
            job_id=f"gitlab:{env.get('CI_SERVER_HOST', '')}/{env.get('CI_PROJECT_ID', '')}/"
            f"{env.get('CI_JOB_ID', '')}",
            trusted=protected,
            trust_reason=f"ref {ref} is {'protected' if protected else 'not protected'}",
            workspace=env.get("CI_PROJECT_DIR"),
            runner_temp=env.get("CI_BUILDS_DIR"),
            details=pick(env, ("CI_PROJECT_PATH", "CI_PIPELINE_ID", "CI_JOB_ID", "CI_JOB_NAME",
                               "CI_COMMIT_REF_NAME", "CI_COMMIT_REF_PROTECTED", "CI_RUNNER_ID")),
        )
