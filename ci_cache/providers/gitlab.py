"""GitLab CI, and gitlab-ci-local running its pipelines: identity from CI_JOB_ID; trusted only on protected refs."""

from __future__ import annotations

from collections.abc import Mapping

from ci_cache.providers.base import JobIdentity, pick


class GitLabProvider:
    name = "gitlab"

    def detect(self, env: Mapping[str, str]) -> bool:
        # A runner says GITLAB_CI=true. gitlab-ci-local says GITLAB_CI=false (it is not GitLab), but it gives
        # every job of a pipeline its own CI_JOB_ID and a CI_PROJECT_DIR, as a runner does: that is all the
        # identity needs, and without it concurrent jobs in one checkout would share one id.
        if env.get("GITLAB_CI") == "true":
            return True
        return "GITLAB_CI" in env and bool(env.get("CI_JOB_ID")) and bool(env.get("CI_PROJECT_DIR"))

    def identity(self, env: Mapping[str, str]) -> JobIdentity:
        protected = env.get("CI_COMMIT_REF_PROTECTED") == "true"
        ref = env.get("CI_COMMIT_REF_NAME", "?")
        job_id = f"gitlab:{env.get('CI_SERVER_HOST', '')}/{env.get('CI_PROJECT_ID', '')}/{env.get('CI_JOB_ID', '')}"
        return JobIdentity(
            provider=self.name,
            job_id=job_id,
            ci_job_id=job_id,
            trusted=protected,
            trust_reason=f"ref {ref} is {'protected' if protected else 'not protected'}",
            workspace=env.get("CI_PROJECT_DIR"),
            runner_temp=env.get("CI_BUILDS_DIR"),
            details=pick(env, ("CI_PROJECT_PATH", "CI_PIPELINE_ID", "CI_JOB_ID", "CI_JOB_NAME",
                               "CI_COMMIT_REF_NAME", "CI_COMMIT_REF_PROTECTED", "CI_RUNNER_ID")),
        )
