"""ci_cache.providers: each CI faked by a dict of env vars; job ids, trust, overrides, hostile ids."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from ci_cache import jobdirs
from ci_cache.errors import UsageError
from ci_cache.providers import MAX_JOB_ID, PROVIDERS, detect, job_identity, job_key, validate_job_id
from ci_cache.store import Store

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "acme/widgets",
    "GITHUB_RUN_ID": "9876543210",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_JOB": "test",
    "RUNNER_NAME": "win-agent-3",
    "GITHUB_WORKSPACE": "C:\\actions-runner\\_work\\widgets\\widgets",
    "RUNNER_TEMP": "C:\\actions-runner\\_work\\_temp",
    "GITHUB_EVENT_NAME": "push",
    "GITHUB_REF": "refs/heads/main",
}
GITLAB = {
    "GITLAB_CI": "true",
    "CI_SERVER_HOST": "gitlab.example.test",
    "CI_PROJECT_ID": "42",
    "CI_JOB_ID": "1001",
    "CI_JOB_NAME": "test: [3.12]",
    "CI_PIPELINE_ID": "500",
    "CI_PROJECT_DIR": "C:\\GitLab-Runner\\builds\\abc\\0\\acme\\widgets",
    "CI_BUILDS_DIR": "C:\\GitLab-Runner\\builds",
    "CI_COMMIT_REF_NAME": "main",
    "CI_COMMIT_REF_PROTECTED": "true",
}
JENKINS = {
    "JENKINS_URL": "https://jenkins.example.test/",
    "BUILD_TAG": "jenkins-widgets-main-17",
    "NODE_NAME": "win-agent-3",
    "EXECUTOR_NUMBER": "2",
    "WORKSPACE": "C:\\jenkins\\workspace\\widgets_main@2",
    "BRANCH_NAME": "main",
}


def _event_file(tmp_path: Path, head_repo: str | None) -> str:
    event: dict[str, object] = {"pull_request": {"number": 7, "head": {"ref": "feature"}}}
    if head_repo is not None:
        event = {"pull_request": {"number": 7, "head": {"ref": "feature", "repo": {"full_name": head_repo}}}}
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------------------------------
# Detection.


@pytest.mark.parametrize(("env", "name"), [(GITHUB, "github"), (GITLAB, "gitlab"), (JENKINS, "jenkins"), ({}, "local")])
def test_detect(env: dict[str, str], name: str) -> None:
    assert detect(env).name == name


def test_jenkins_needs_a_build_tag_to_be_detected() -> None:
    assert detect({"JENKINS_URL": "https://jenkins.example.test/"}).name == "local"
    assert detect({"JENKINS_HOME": "/var/jenkins", "BUILD_TAG": "jenkins-x-1"}).name == "jenkins"


def test_values_other_than_true_do_not_detect() -> None:
    assert detect({"GITHUB_ACTIONS": "false", "GITLAB_CI": "1"}).name == "local"


def test_every_provider_is_registered_under_its_name() -> None:
    assert list(PROVIDERS) == ["github", "gitlab", "jenkins", "local"]
    assert all(p.name == name for name, p in PROVIDERS.items())


# ---------------------------------------------------------------------------------------------------
# Job ids: stable within a job, different between jobs.


def test_github_identity() -> None:
    ident = job_identity(GITHUB, None)
    assert ident.provider == "github"
    for part in ("acme/widgets", "9876543210", "test", "win-agent-3"):
        assert part in ident.job_id
    assert ident.workspace == GITHUB["GITHUB_WORKSPACE"]
    assert ident.runner_temp == GITHUB["RUNNER_TEMP"]
    assert ident.details["GITHUB_RUN_ID"] == "9876543210"
    assert job_identity(dict(GITHUB), None).job_id == ident.job_id


@pytest.mark.parametrize("var", ["GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB", "RUNNER_NAME",
                                 "GITHUB_REPOSITORY"])
def test_github_jobs_that_differ_in_one_variable_get_different_ids(var: str) -> None:
    other = {**GITHUB, var: GITHUB[var] + "x"}
    assert job_identity(other, None).job_id != job_identity(GITHUB, None).job_id


def test_gitlab_identity() -> None:
    ident = job_identity(GITLAB, None)
    assert ident.provider == "gitlab"
    assert "1001" in ident.job_id and "42" in ident.job_id and "gitlab.example.test" in ident.job_id
    assert ident.workspace == GITLAB["CI_PROJECT_DIR"]
    other = {**GITLAB, "CI_JOB_ID": "1002"}
    assert job_identity(other, None).job_id != ident.job_id


# What gitlab-ci-local (4.x) gives a job run with the shell executor: GITLAB_CI=false, a random CI_JOB_ID
# per job, and the checkout as CI_PROJECT_DIR for every job of the pipeline.
GITLAB_CI_LOCAL = {
    "GITLAB_CI": "false",
    "CI_SERVER_HOST": "gitlab.invalid",
    "CI_PROJECT_ID": "1217",
    "CI_JOB_ID": "113162",
    "CI_JOB_NAME": "job-a",
    "CI_PROJECT_DIR": "/home/dev/project",
    "CI_BUILDS_DIR": "/home/dev/project",
}


def test_gitlab_ci_local_is_gitlab_and_tells_the_jobs_of_one_checkout_apart() -> None:
    assert detect(GITLAB_CI_LOCAL).name == "gitlab"
    ident = job_identity(GITLAB_CI_LOCAL, None)
    assert ident.provider == "gitlab"
    assert ident.job_id == "gitlab:gitlab.invalid/1217/113162"
    other = job_identity({**GITLAB_CI_LOCAL, "CI_JOB_ID": "617638", "CI_JOB_NAME": "job-b"}, None)
    assert other.job_id != ident.job_id
    assert job_key(other.job_id) != job_key(ident.job_id)
    assert not ident.trusted  # no protected ref: a local pipeline never writes under merge: protected


@pytest.mark.parametrize(
    "env",
    [
        {"GITLAB_CI": "false", "CI_PROJECT_DIR": "/p"},  # no job id: nothing to tell jobs apart by
        {"GITLAB_CI": "false", "CI_JOB_ID": "7"},  # no project dir: not a job of a pipeline
        {"CI_JOB_ID": "7", "CI_PROJECT_DIR": "/p"},  # no GITLAB_CI at all: some other CI
    ],
)
def test_gitlab_needs_gitlab_ci_and_a_job_id_and_a_project_dir(env: dict[str, str]) -> None:
    assert detect(env).name == "local"


def test_jenkins_identity_tells_executors_apart() -> None:
    ident = job_identity(JENKINS, None)
    assert ident.provider == "jenkins"
    assert "jenkins-widgets-main-17" in ident.job_id
    other_executor = {**JENKINS, "EXECUTOR_NUMBER": "3", "WORKSPACE": JENKINS["WORKSPACE"][:-1] + "3"}
    assert job_identity(other_executor, None).job_id != ident.job_id
    other_node = {**JENKINS, "NODE_NAME": "win-agent-4"}
    assert job_identity(other_node, None).job_id != ident.job_id


def test_local_identity_is_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ident = job_identity({}, None)
    assert ident.provider == "local"
    assert ident.trusted
    assert str(tmp_path) in ident.job_id
    assert ident.workspace == os.getcwd()


# ---------------------------------------------------------------------------------------------------
# Trust.


def test_github_push_is_trusted() -> None:
    ident = job_identity(GITHUB, None)
    assert ident.trusted
    assert "push" in ident.trust_reason


def test_github_pull_request_from_the_same_repo_is_trusted(tmp_path: Path) -> None:
    env = {**GITHUB, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": _event_file(tmp_path, "acme/widgets")}
    ident = job_identity(env, None)
    assert ident.trusted
    assert "acme/widgets" in ident.trust_reason


@pytest.mark.parametrize("event", ["pull_request", "pull_request_target", "pull_request_review"])
def test_github_pull_request_from_a_fork_is_untrusted(tmp_path: Path, event: str) -> None:
    env = {**GITHUB, "GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": _event_file(tmp_path, "mallory/widgets")}
    ident = job_identity(env, None)
    assert not ident.trusted
    assert "fork" in ident.trust_reason and "mallory/widgets" in ident.trust_reason


@pytest.mark.parametrize("event_file", ["missing", "garbage", "no-repo"])
def test_github_pull_request_of_unknown_origin_is_untrusted(tmp_path: Path, event_file: str) -> None:
    env = {**GITHUB, "GITHUB_EVENT_NAME": "pull_request"}
    if event_file == "garbage":
        (tmp_path / "event.json").write_text("{not json", encoding="utf-8")
        env["GITHUB_EVENT_PATH"] = str(tmp_path / "event.json")
    elif event_file == "no-repo":
        env["GITHUB_EVENT_PATH"] = _event_file(tmp_path, None)
    else:
        env["GITHUB_EVENT_PATH"] = str(tmp_path / "nope.json")
    ident = job_identity(env, None)
    assert not ident.trusted
    assert "unknown" in ident.trust_reason


@pytest.mark.parametrize(("protected", "trusted"), [("true", True), ("false", False), (None, False)])
def test_gitlab_trust_follows_protected_refs(protected: str | None, trusted: bool) -> None:
    env = dict(GITLAB)
    if protected is None:
        del env["CI_COMMIT_REF_PROTECTED"]
    else:
        env["CI_COMMIT_REF_PROTECTED"] = protected
    ident = job_identity(env, None)
    assert ident.trusted is trusted
    assert ("not protected" in ident.trust_reason) is not trusted


def test_jenkins_branch_build_is_trusted_and_fork_pr_is_not() -> None:
    assert job_identity(JENKINS, None).trusted
    fork = {**JENKINS, "CHANGE_ID": "12", "CHANGE_FORK": "mallory"}
    ident = job_identity(fork, None)
    assert not ident.trusted
    assert "mallory" in ident.trust_reason


@pytest.mark.parametrize(("value", "trusted"), [("1", True), ("true", True), ("YES", True), ("0", False),
                                                ("false", False), ("no", False)])
def test_jenkins_ci_cache_trusted_decides(value: str, trusted: bool) -> None:
    fork = {**JENKINS, "CHANGE_FORK": "mallory", "CI_CACHE_TRUSTED": value}
    ident = job_identity(fork, None)
    assert ident.trusted is trusted
    assert "CI_CACHE_TRUSTED" in ident.trust_reason


# ---------------------------------------------------------------------------------------------------
# --job / CI_CACHE_JOB.


def test_explicit_job_overrides_the_provider_id_but_not_trust(tmp_path: Path) -> None:
    env = {**GITHUB, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": _event_file(tmp_path, "mallory/w")}
    ident = job_identity(env, "build-42")
    assert ident.job_id == "build-42"
    assert ident.provider == "github"
    assert not ident.trusted  # renaming a job never makes it trusted


def test_ci_cache_job_overrides_the_provider_id_and_the_flag_beats_it() -> None:
    env = {**GITLAB, "CI_CACHE_JOB": "from-env"}
    assert job_identity(env, None).job_id == "from-env"
    assert job_identity(env, "from-flag").job_id == "from-flag"


@pytest.mark.parametrize(("env", "expected"), [(GITHUB, "github:"), (GITLAB, "gitlab:"), (JENKINS, "jenkins:")])
def test_the_ci_job_id_survives_an_override(env: dict[str, str], expected: str) -> None:
    """finish compares it when no token is carried: two CI jobs given one CI_CACHE_JOB stay apart."""
    derived = job_identity(env, None)
    assert derived.ci_job_id == derived.job_id and derived.ci_job_id.startswith(expected)
    overridden = job_identity({**env, "CI_CACHE_JOB": "shared-name"}, "flag-name")
    assert overridden.job_id == "flag-name"
    assert overridden.ci_job_id == derived.ci_job_id


def test_outside_a_ci_there_is_no_ci_job_id() -> None:
    assert job_identity({}, None).ci_job_id == ""
    assert job_identity({"CI_CACHE_JOB": "x"}, None).ci_job_id == ""


def test_bad_ci_cache_job_names_the_variable() -> None:
    with pytest.raises(UsageError) as info:
        job_identity({"CI_CACHE_JOB": "../../etc"}, None)
    assert str(info.value).startswith("CI_CACHE_JOB:")
    with pytest.raises(UsageError) as info:
        job_identity({}, "../../etc")
    assert str(info.value).startswith("--job:")
    assert info.value.exit_code == 2


# ---------------------------------------------------------------------------------------------------
# Hostile job ids.


@pytest.mark.parametrize(
    "job_id",
    ["..", "../../etc", "a/../b", "C:\\x", "c:foo", "Z:", "a\\b", "tab\there", "nl\nhere", "nul\x00",
     "bell\x07", "del\x7f", " ", ""],
)
def test_hostile_job_ids_are_rejected(job_id: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_job_id(job_id, "--job")
    assert info.value.exit_code == 2
    assert "--job" in str(info.value)


@pytest.mark.parametrize(
    "job_id",
    ["build-42", "x" * 500, "x" * MAX_JOB_ID, "Jürgen-日本語-😀", "release.1.2", "job:b@c+d", "1:2",
     "build 42 (windows)"],
)
def test_ordinary_and_long_and_unicode_job_ids_are_accepted(job_id: str) -> None:
    assert validate_job_id(job_id, "--job") == job_id


def test_a_2000_character_job_id_is_rejected_with_its_length() -> None:
    with pytest.raises(UsageError) as info:
        validate_job_id("x" * 2000, "--job")
    assert "2000" in str(info.value)


def test_a_rejected_id_is_shown_shortened() -> None:
    with pytest.raises(UsageError) as info:
        validate_job_id("../" + "y" * 900, "--job")
    assert len(str(info.value)) < 400


KEY = re.compile(r"^[a-z0-9]{12}$")


@pytest.mark.parametrize(
    "job_id",
    ["build-42", "x" * 500, "x" * 2000, "Jürgen 日本語 😀", "..", "../../etc", "C:\\x", "c:foo", "con", "nul",
     "a\x00b", "\udcff-undecodable", "github:acme/widgets/1/1/test/runner"],
)
def test_job_key_is_short_safe_and_stays_inside_the_root(tmp_path: Path, job_id: str) -> None:
    key = job_key(job_id)
    assert KEY.match(key), key
    assert key not in ("con", "nul", "aux", "prn")  # never a Windows device name
    store = Store(tmp_path)
    for path in (store.job_dir(key), store.lease(key), jobdirs.record_of(store.job_dir(key))):
        assert path.resolve().parent == (tmp_path / "jobs").resolve()


def test_job_key_is_stable_and_distinct() -> None:
    ids = [f"build-{n}" for n in range(200)] + ["build-1 ", "Build-1", "build-1\t"]
    keys = {job_key(i) for i in ids}
    assert len(keys) == len(ids)
    assert job_key("build-1") == job_key("build-1")


def test_provider_ids_with_path_characters_still_give_safe_keys() -> None:
    env = {**JENKINS, "BUILD_TAG": "..\\..\\Windows", "WORKSPACE": "C:\\evil\\..\\path"}
    ident = job_identity(env, None)
    assert KEY.match(job_key(ident.job_id))


@pytest.mark.parametrize(
    "env",
    [
        {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "5", "GITHUB_RUN_ATTEMPT": "1",
         "GITHUB_JOB": "build", "RUNNER_NAME": "win runner 2"},
        {"GITLAB_CI": "true", "CI_SERVER_HOST": "gitlab.example", "CI_PROJECT_ID": "7", "CI_JOB_ID": "991"},
        {"JENKINS_URL": "http://j/", "BUILD_TAG": "jenkins-folder-job-12", "EXECUTOR_NUMBER": "1",
         "NODE_NAME": "win-agent", "WORKSPACE": "C:\\jenkins\\workspace\\job@2"},
    ],
    ids=["github", "gitlab", "jenkins"],
)
def test_a_provider_id_exported_as_ci_cache_job_is_accepted_and_names_the_same_job(env: dict[str, str]) -> None:
    """setup exports the id as CI_CACHE_JOB; a later finish must accept it and find the same job."""
    derived = job_identity(env, None)
    again = job_identity({**env, "CI_CACHE_JOB": derived.job_id}, None)
    assert again.job_id == derived.job_id
    assert job_key(again.job_id) == job_key(derived.job_id)
