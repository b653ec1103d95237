"""GitHub Actions: identity from GITHUB_RUN_ID/JOB/ATTEMPT and the runner; forks are untrusted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ci_cache.providers.base import JobIdentity, pick

_PR_EVENTS = ("pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment")


class GitHubProvider:
    name = "github"

    def detect(self, env: Mapping[str, str]) -> bool:
        return env.get("GITHUB_ACTIONS") == "true"

    def identity(self, env: Mapping[str, str]) -> JobIdentity:
        # RUNNER_NAME tells apart matrix legs of one job that run on runners of one machine.
        parts = [env.get(k, "") for k in ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT",
                                          "GITHUB_JOB", "RUNNER_NAME")]
        trusted, reason = _trust(env)
        job_id = "github:" + "/".join(parts)
        return JobIdentity(
            provider=self.name,
            job_id=job_id,
            ci_job_id=job_id,
            trusted=trusted,
            trust_reason=reason,
            workspace=env.get("GITHUB_WORKSPACE"),
            runner_temp=env.get("RUNNER_TEMP"),
            details=pick(env, ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB",
                               "RUNNER_NAME", "GITHUB_REF", "GITHUB_EVENT_NAME")),
        )


def _trust(env: Mapping[str, str]) -> tuple[bool, str]:
    event = env.get("GITHUB_EVENT_NAME", "")
    if event not in _PR_EVENTS:
        return True, f"event {event or 'unknown'} is not a pull request"
    head_repo = _pull_request_head_repo(env.get("GITHUB_EVENT_PATH"))
    if head_repo is None:
        return False, f"{event} whose source repository is unknown"
    if head_repo == env.get("GITHUB_REPOSITORY"):
        return True, f"{event} from a branch of {head_repo}"
    return False, f"{event} from the fork {head_repo}"


def _pull_request_head_repo(event_path: str | None) -> str | None:
    if not event_path:
        return None
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
        name = event["pull_request"]["head"]["repo"]["full_name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None
