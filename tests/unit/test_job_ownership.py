"""One owner per allocation: the CIs' status words, setup's token, finish's token rules, a busy job id.

setup runs in process here (`in_process=True`, as `run` does) unless a test goes through the CLI entry
(`cli.main`), which starts the real lease holder. Every test may spawn: finish deletes the job dir in a
background process.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ci_cache import cli, job, jobdirs, jobstatus, osapi
from ci_cache.commands import options
from ci_cache.errors import AllocationMissing, JobBusy, NothingAllocated, StoreError, UsageError
from ci_cache.tools.generic import GenericTool

pytestmark = pytest.mark.spawns

GITLAB_JOB = {"GITLAB_CI": "true", "CI_SERVER_HOST": "gitlab.example", "CI_PROJECT_ID": "7", "CI_JOB_ID": "1001",
              "CI_PROJECT_DIR": "/builds/p"}


def context(root: Path, env: dict[str, str] | None = None, *, job: str | None = "build-1",
            mode: str = "isolated", strict: bool | None = None) -> job.Context:
    args = argparse.Namespace(config=None, root=str(root), job=job, mode=mode, tools="pip,temp", merge="always",
                              strict=strict)
    return options.make_context(args, env or {})


def read_record(ctx: job.Context) -> dict[str, object]:
    record = jobdirs.current_record(ctx.store, ctx.key)
    assert record is not None
    return record


# ---------------------------------------------------------------------------------------------------------
# The status words of every CI


@pytest.mark.parametrize(
    ("word", "status"),
    [
        # GitHub's ${{ job.status }}
        ("success", "success"), ("failure", "failure"), ("cancelled", "cancelled"),
        # GitLab's $CI_JOB_STATUS
        ("failed", "failure"), ("canceled", "cancelled"),
        # Jenkins' currentBuild.currentResult
        ("SUCCESS", "success"), ("UNSTABLE", "failure"), ("FAILURE", "failure"), ("NOT_BUILT", "failure"),
        ("ABORTED", "cancelled"),
        # as a wrapper may pass them: case and surrounding blanks do not matter
        (" Failure ", "failure"), ("CANCELLED", "cancelled"),
    ],
)
def test_every_ci_word_maps_to_its_status(word: str, status: str) -> None:
    assert jobstatus.resolve(word) == (status, None)


@pytest.mark.parametrize("word", ["neutral", "running", "timedout", "", "succes"])
def test_an_unknown_word_is_a_failure_with_a_warning_naming_it(word: str) -> None:
    status, warning = jobstatus.resolve(word)
    assert status == "failure"
    assert warning is not None
    assert repr(word) in warning and "nothing unverified is merged" in warning


def test_every_word_maps_to_a_status_finish_knows() -> None:
    assert set(jobstatus.WORDS.values()) == set(jobstatus.STATUSES)
    assert all(word == word.lower() for word in jobstatus.WORDS)


# ---------------------------------------------------------------------------------------------------------
# setup's token


def test_setup_exports_a_fresh_token_and_keeps_it_in_the_record(tmp_path: Path) -> None:
    tokens = []
    for _ in range(2):
        ctx = context(tmp_path)
        alloc = job.setup(ctx, in_process=True)
        token = alloc.env[job.TOKEN_VAR]
        assert len(token) == 32 and token != job.NO_TOKEN
        assert read_record(ctx)["token"] == token
        assert alloc.as_json()["env"][job.TOKEN_VAR] == token
        tokens.append(token)
        job.finish(ctx, "success", held=alloc.lease)
    assert tokens[0] != tokens[1]


def test_setup_in_mode_off_exports_the_no_token_word(tmp_path: Path) -> None:
    alloc = job.setup(context(tmp_path, mode="off"), in_process=True)
    assert alloc.env == {job.TOKEN_VAR: job.NO_TOKEN}
    assert not (tmp_path / "jobs").exists()


# ---------------------------------------------------------------------------------------------------------
# finish's token rules


def test_finish_with_the_setups_token_finalises_and_merges(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    alloc = job.setup(ctx, in_process=True)
    assert alloc.lease is not None
    alloc.lease.release()  # as if setup's holder had kept it: finish takes it over
    (Path(alloc.caches["pip"]) / "wheel.whl").write_text("w")
    result = job.finish(context(tmp_path, {job.TOKEN_VAR: alloc.env[job.TOKEN_VAR]}), "success")
    assert result.merged["pip"]
    assert (tmp_path / "shared" / "pip" / "wheel.whl").read_text() == "w"
    assert jobdirs.current_record(ctx.store, ctx.key) is None
    assert not alloc.job_dir.exists()


@pytest.mark.parametrize("carried", ["someone-elses-token", "a" * 32])
def test_finish_with_another_token_leaves_the_allocation_alone(tmp_path: Path, carried: str) -> None:
    ctx = context(tmp_path)
    alloc = job.setup(ctx, in_process=True)
    before = read_record(ctx)
    with pytest.raises(AllocationMissing) as info:
        job.finish(context(tmp_path, {job.TOKEN_VAR: carried}), "success")
    assert not isinstance(info.value, NothingAllocated)
    message = str(info.value)
    assert "'build-1'" in message and "another setup" in message and "left alone" in message
    assert "give each job its own id with --job / CI_CACHE_JOB" in message
    assert read_record(ctx) == before
    assert alloc.job_dir.is_dir()
    assert osapi.try_lock(ctx.store.lease(ctx.key)) is None  # still held by its owner
    job.finish(ctx, "success", held=alloc.lease)


@pytest.mark.parametrize("carried", [job.NO_TOKEN, "", "  "])
def test_finish_that_carries_no_allocation_finishes_nothing(tmp_path: Path, carried: str) -> None:
    ctx = context(tmp_path)
    alloc = job.setup(ctx, in_process=True)
    with pytest.raises(NothingAllocated) as info:
        job.finish(context(tmp_path, {job.TOKEN_VAR: carried}), "success")
    assert "allocated nothing" in str(info.value) and "'build-1'" in str(info.value)
    assert alloc.job_dir.is_dir() and jobdirs.current_record(ctx.store, ctx.key) is not None
    job.finish(ctx, "success", held=alloc.lease)


def test_run_holds_its_lease_and_needs_no_token_even_under_a_foreign_one(tmp_path: Path) -> None:
    ctx = context(tmp_path, {job.TOKEN_VAR: "the-outer-jobs-token"})
    alloc = job.setup(ctx, in_process=True)
    result = job.finish(ctx, "success", held=alloc.lease)
    assert result.job == "build-1"
    assert not alloc.job_dir.exists()


def test_without_a_token_finish_goes_by_identity_but_never_takes_another_ci_jobs_allocation(
    tmp_path: Path,
) -> None:
    first = context(tmp_path, {**GITLAB_JOB, "CI_CACHE_JOB": "shared-name"}, job=None)
    alloc = job.setup(first, in_process=True)
    assert read_record(first)["ci_job_id"] == "gitlab:gitlab.example/7/1001"
    other_job = context(tmp_path, {**GITLAB_JOB, "CI_JOB_ID": "1002", "CI_CACHE_JOB": "shared-name"}, job=None)
    assert other_job.key == first.key
    with pytest.raises(AllocationMissing) as info:
        job.finish(other_job, "failure")
    assert "another CI job (gitlab:gitlab.example/7/1001, not gitlab:gitlab.example/7/1002)" in str(info.value)
    assert alloc.job_dir.is_dir()
    assert alloc.lease is not None
    alloc.lease.release()
    # The job's own after_script (a fresh shell: no token) finds and finishes it.
    job.finish(context(tmp_path, {**GITLAB_JOB, "CI_CACHE_JOB": "shared-name"}, job=None), "success")
    assert not alloc.job_dir.exists()


def test_outside_a_ci_finish_by_identity_alone_still_works(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    alloc = job.setup(ctx, in_process=True)
    assert alloc.lease is not None
    alloc.lease.release()
    job.finish(context(tmp_path), "success")
    assert not alloc.job_dir.exists()


# ---------------------------------------------------------------------------------------------------------
# A busy job id, and a failed setup


def test_a_second_setup_of_a_live_job_id_is_refused_with_its_own_error(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    alloc = job.setup(ctx, in_process=True)
    before = read_record(ctx)
    with pytest.raises(JobBusy) as info:
        job.setup(context(tmp_path), in_process=True)
    assert info.value.exit_code == 6
    assert isinstance(info.value, UsageError)  # `run` and `setup` fail on it instead of running without ci-cache
    message = str(info.value)
    assert "\n" not in message
    assert "'build-1'" in message and str(ctx.store.lease(ctx.key)) in message
    assert "give each job its own id with --job / CI_CACHE_JOB" in message
    assert read_record(ctx) == before
    assert alloc.job_dir.is_dir()
    job.finish(ctx, "success", held=alloc.lease)


def test_a_failed_setup_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_seed(self: GenericTool, request: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(GenericTool, "seed", broken_seed)
    ctx = context(tmp_path, strict=True)
    with pytest.raises(StoreError, match="No space left"):
        job.setup(ctx, in_process=True)
    assert jobdirs.current_record(ctx.store, ctx.key) is None
    assert not ctx.store.job_dir(ctx.key).exists()
    free = osapi.try_lock(ctx.store.lease(ctx.key))
    assert free is not None
    free.release()
    with pytest.raises(AllocationMissing):
        job.finish(ctx, "failure")


# ---------------------------------------------------------------------------------------------------------
# Through the CLI entry: exit codes and what is printed


def cli_run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
            *argv: str) -> tuple[int, str, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    for name in env:
        monkeypatch.delenv(name)
    return code, out, err


def test_cli_setup_of_a_busy_id_fails_with_exit_6_and_never_degrades_to_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = {"CI_CACHE_ROOT": str(tmp_path), "CI_CACHE_JOB": "busy", "CI_CACHE_TOOLS": "temp"}
    code, out, _ = cli_run(capsys, monkeypatch, base, "setup", "--mode", "isolated", "--format", "json")
    assert code == 0
    token = json.loads(out)["env"][job.TOKEN_VAR]
    code, out, err = cli_run(capsys, monkeypatch, base, "setup", "--mode", "isolated", "--format", "bash")
    assert code == 6
    assert out == ""
    assert "without ci-cache" not in err
    (line,) = err.strip().splitlines()
    assert "already set up and still running" in line and "give each job its own id" in line
    # The winner's finish still finds its own allocation.
    code, _, err = cli_run(capsys, monkeypatch, {**base, job.TOKEN_VAR: token}, "finish")
    assert code == 0, err
    assert not list((tmp_path / "jobs").glob("j*"))  # its dir, record and lease are gone


@pytest.mark.parametrize("fmt", ["bash", "powershell", "cmd", "dotenv", "json", "github", "gitlab"])
def test_every_setup_format_carries_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    files = {"GITHUB_ENV": str(tmp_path / "github_env"), "GITHUB_PATH": str(tmp_path / "github_path")}
    base = {"CI_CACHE_ROOT": str(tmp_path / "root"), "CI_CACHE_JOB": "fmt", "CI_CACHE_TOOLS": "temp", **files}
    code, out, err = cli_run(capsys, monkeypatch, base, "setup", "--mode", "isolated", "--format", fmt)
    assert code == 0, err
    record = json.loads(next((tmp_path / "root" / "jobs").glob("*.json")).read_text())
    printed = out + (Path(files["GITHUB_ENV"]).read_text() if fmt == "github" else "")
    assert f"{job.TOKEN_VAR}" in printed and record["token"] in printed
    if fmt in ("json", "github"):
        assert json.loads(out)["env"][job.TOKEN_VAR] == record["token"]
        assert json.loads(out)["job"] == "fmt"
    code, _, err = cli_run(capsys, monkeypatch, {**base, job.TOKEN_VAR: record["token"]}, "finish")
    assert code == 0, err


@pytest.mark.parametrize("strict", [[], ["--strict"]])
def test_cli_finish_after_an_off_setup_exits_0_even_when_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, strict: list[str]
) -> None:
    env = {"CI_CACHE_ROOT": str(tmp_path), "CI_CACHE_JOB": "off-job", job.TOKEN_VAR: job.NO_TOKEN}
    code, out, err = cli_run(capsys, monkeypatch, env, "finish", "--json", *strict)
    assert code == 0, err
    # Said as information, not as a warning: finishing nothing is what this job needs.
    assert "ci-cache: job 'off-job': its setup allocated nothing" in err and "nothing to finish" in err
    assert "warning: job 'off-job'" not in err
    assert json.loads(out)["status"] == "success"


def test_cli_finish_with_a_foreign_token_warns_and_fails_only_when_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = context(tmp_path, job="theirs")
    alloc = job.setup(ctx, in_process=True)
    env = {"CI_CACHE_ROOT": str(tmp_path), "CI_CACHE_JOB": "theirs", job.TOKEN_VAR: "mine"}
    code, _, err = cli_run(capsys, monkeypatch, env, "finish")
    assert code == 0
    assert "warning" in err and "left alone" in err
    code, _, err = cli_run(capsys, monkeypatch, env, "finish", "--strict")
    assert code == AllocationMissing.exit_code
    assert alloc.job_dir.is_dir()
    job.finish(ctx, "success", held=alloc.lease)


def test_cli_finish_maps_the_ci_word_and_warns_about_an_unknown_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for word, status in (("FAILURE", "failure"), ("canceled", "cancelled"), ("neutral", "failure")):
        ctx = context(tmp_path, job=f"status-{status}")
        alloc = job.setup(ctx, in_process=True)
        assert alloc.lease is not None
        alloc.lease.release()
        env = {"CI_CACHE_ROOT": str(tmp_path), "CI_CACHE_JOB": f"status-{status}", "CI_CACHE_MERGE": "success",
               job.TOKEN_VAR: alloc.env[job.TOKEN_VAR]}
        code, out, err = cli_run(capsys, monkeypatch, env, "finish", "--status", word, "--json")
        assert code == 0, err
        result = json.loads(out)
        assert result["status"] == status
        assert result["merge_decision"] == f"merge: success, and the job's status is {status}"
        unknown = [w for w in result["warnings"] if "unknown job status" in w]
        assert (unknown != []) == (word == "neutral")
        assert ("'neutral'" in err) == (word == "neutral")



def test_finish_in_mode_off_without_a_token_finds_nothing_and_says_it_is_no_surprise(tmp_path: Path) -> None:
    # GitLab's after_script is a fresh shell: no token reaches it, and in mode off setup made no record.
    with pytest.raises(NothingAllocated, match="mode off allocates nothing"):
        job.finish(context(tmp_path, mode="off"), "success")
    # In another mode a missing record stays the warning (or, with --strict, the error) it was.
    with pytest.raises(AllocationMissing) as info:
        job.finish(context(tmp_path), "success")
    assert not isinstance(info.value, NothingAllocated)
