"""The CIs' words for a job's result, mapped to the three statuses `finish` knows: the only place that maps them."""

from __future__ import annotations

STATUSES = ("success", "failure", "cancelled")

# Each CI's own words, as its status variable holds them (matched case-insensitively):
# GitHub's ${{ job.status }}: success, failure, cancelled;
# GitLab's $CI_JOB_STATUS: success, failed, canceled (after_script also runs for canceled jobs);
# Jenkins' currentBuild.currentResult: SUCCESS, UNSTABLE, FAILURE, NOT_BUILT, ABORTED.
WORDS: dict[str, str] = {
    "success": "success",
    "failure": "failure",
    "failed": "failure",
    "unstable": "failure",
    "not_built": "failure",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "aborted": "cancelled",
}


def resolve(word: str) -> tuple[str, str | None]:
    """The status for a CI's word, and a warning when the word is unknown (then: failure, so nothing
    unverified is merged under `merge: success`)."""
    status = WORDS.get(word.strip().lower())
    if status is not None:
        return status, None
    known = ", ".join(sorted(WORDS))
    return "failure", (f"unknown job status {word!r}: treated as failure, so that nothing unverified is "
                       f"merged (known: {known})")
