"""The GitLab template (gitlab/templates/ci-cache/template.yml), end to end under gitlab-ci-local.

gitlab-ci-local (npm, installed by scripts/setup-gitlab-ci-local.sh) runs tests/gitlab's pipelines with
the shell executor, every job in the one checkout, and says GITLAB_CI=false (ci-cache recognises it as
GitLab by its CI_JOB_ID and CI_PROJECT_DIR). Three concurrent jobs install packages with the real uv from
a local index through the real ci-cache (this Python's bin dir comes first on PATH), into a temporary
CI_CACHE_ROOT. One job fails in `script:`; with `merge: success` only the two others may reach the shared
cache. The one template file is included both as a file with inputs and as a CI/CD component.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_cache_index import IndexServer, PackageSpec, build_index

REPO = Path(__file__).resolve().parents[2]
GITLAB_DIR = REPO / "gitlab"
TEMPLATE = GITLAB_DIR / "templates" / "ci-cache" / "template.yml"
PIPELINES = REPO / "tests" / "gitlab"
DOC = REPO / "docs" / "gitlab.md"
BIN = str(Path(sys.executable).parent)
UV = shutil.which("uv", path=BIN) or shutil.which("uv")
GIT = shutil.which("git")
RSYNC = shutil.which("rsync")
TIMEOUT = 600
HIDDEN_JOBS = (".ci-cache", ".ci-cache-windows")

SPECS = [
    PackageSpec("e2e-common", "1.0.0", deps=("e2e-dep",)),
    PackageSpec("e2e-dep", "2.0.0", files=2),
    PackageSpec("e2e-only-a", "1.0.0"),
    # sdist-only: job-b's cache gets a built wheel (sdists-v*), merged like the rest.
    PackageSpec("e2e-only-b", "0.5.0", sdist=True, wheel=False),
    PackageSpec("e2e-only-fail", "3.0.0"),
]
JOBS = ("job-a", "job-b", "job-fail")


def _gitlab_ci_local() -> Path:
    dev_home = os.environ.get("CI_CACHE_DEV_HOME") or str(Path.home() / ".cache" / "ci-cache-dev")
    return Path(dev_home) / "gitlab-ci-local" / "node_modules" / ".bin" / "gitlab-ci-local"


GCL = _gitlab_ci_local()
needs_gitlab_ci_local = pytest.mark.skipif(
    not GCL.is_file() or GIT is None or RSYNC is None or shutil.which("node") is None,
    reason=f"gitlab-ci-local ({GCL}), node, git or rsync missing: run scripts/setup-gitlab-ci-local.sh",
)


# ---------------------------------------------------------------------------------------------------------
# One file serves as the template and as the component


class _GitlabLoader(yaml.SafeLoader):
    """Safe YAML plus GitLab's !reference tag, loaded as the plain list it holds."""


def _reference(loader: yaml.SafeLoader, node: yaml.Node) -> list[Any]:
    assert isinstance(node, yaml.SequenceNode)
    return loader.construct_sequence(node)


_GitlabLoader.add_constructor("!reference", _reference)


def _load_all(path: Path) -> list[Any]:
    return list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_GitlabLoader))


SETTING_INPUTS = ("mode", "tools", "config", "merge", "strict", "remote-url", "remote-endpoint", "remote-push")


def test_one_template_file_has_inputs_for_every_setting() -> None:
    # The scripts exist once: gitlab/ holds the one file, included as a component or as a file.
    assert sorted(p.relative_to(GITLAB_DIR).as_posix() for p in GITLAB_DIR.rglob("*") if p.is_file()) == [
        "templates/ci-cache/template.yml"
    ]
    spec, template = _load_all(TEMPLATE)
    inputs = spec["spec"]["inputs"]
    assert set(inputs) == {*SETTING_INPUTS, "install", "stage"}
    assert set(template) == set(HIDDEN_JOBS)
    flags = [f"--{name}=$[[ inputs.{name} ]]" for name in SETTING_INPUTS]
    for job in HIDDEN_JOBS:
        # No `variables:`: job variables would override the pipeline's own CI_CACHE_* variables even when
        # an input is empty. The inputs reach ci-cache as flags instead, the same for setup and finish: the
        # first item of both scripts is the one line that lists them.
        assert set(template[job]) == {"stage", "before_script", "after_script"}
        assert template[job]["stage"] == "$[[ inputs.stage ]]"
        first = template[job]["before_script"][0]
        assert template[job]["after_script"][0] == first
        assert [f for f in flags if f"'{f}'" in first] == flags, first
        assert "$[[ inputs.install ]]" in template[job]["before_script"][1]
    # Empty inputs must leave the setting to CI_CACHE_* variables and ci-cache.yml, and the install to what
    # is on PATH: only stage has a value.
    assert {k for k, v in inputs.items() if v["default"] != ""} == {"stage"}
    # A free-form input cannot hold a quote that would end the script's quoted flag.
    for name in ("tools", "config", "install", "remote-url", "remote-endpoint"):
        assert re.fullmatch(inputs[name]["regex"], "") and not re.search(inputs[name]["regex"], "it's")


def test_wrappers_call_only_documented_commands() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert 'setup --format bash "$@")"' in text
    assert "setup --format powershell @ciCacheFlags | Out-String" in text
    assert 'finish "$@" --status "$CI_JOB_STATUS"' in text
    assert "finish @ciCacheFlags --status $env:CI_JOB_STATUS" in text
    doc = DOC.read_text(encoding="utf-8")
    for needle in ("!reference [.ci-cache, before_script]", "cache:", ".ci-cache-windows", "component:"):
        assert needle in doc


# ---------------------------------------------------------------------------------------------------------
# gitlab-ci-local end to end


def _git(repo: Path, *args: str) -> None:
    assert GIT is not None
    subprocess.run(
        [GIT, *args],
        cwd=repo,
        check=True,
        capture_output=True,
        env={
            **_base_env(repo),
            "GIT_AUTHOR_NAME": "e2e",
            "GIT_AUTHOR_EMAIL": "e2e@localhost",
            "GIT_COMMITTER_NAME": "e2e",
            "GIT_COMMITTER_EMAIL": "e2e@localhost",
        },
    )


def _base_env(tmp: Path) -> dict[str, str]:
    keep = ("LANG", "LC_ALL", "TERM")
    env = {k: v for k, v in os.environ.items() if k in keep}
    home = tmp / "home"
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        PATH=os.pathsep.join([BIN, os.environ.get("PATH", "")]),
    )
    return env


def _project(tmp: Path, pipeline: str) -> Path:
    """A git repo holding the pipeline, the jobs and the template (at the repo root's templates/, where
    GitLab and gitlab-ci-local look for a component)."""
    repo = tmp / "project"
    (repo / "templates" / "ci-cache").mkdir(parents=True)
    shutil.copy(PIPELINES / pipeline, repo / ".gitlab-ci.yml")
    shutil.copy(PIPELINES / "jobs.yml", repo / "jobs.yml")
    shutil.copy(TEMPLATE, repo / "templates" / "ci-cache" / "template.yml")
    _git(repo, "init", "-q", "-b", "main")
    # gitlab-ci-local derives CI_SERVER_FQDN and CI_PROJECT_PATH from the remote (never contacted).
    _git(repo, "remote", "add", "origin", "git@gitlab.invalid:e2e/project.git")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "e2e")
    return repo


def _run_pipeline(tmp: Path, pipeline: str, url: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    repo = _project(tmp, pipeline)
    out = tmp / "out"
    out.mkdir()
    env = _base_env(tmp)
    env.update(CI_CACHE_ROOT=str(tmp / "root"), UV_NO_PROGRESS="1", UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
    # No GITLAB_CI override: gitlab-ci-local says GITLAB_CI=false, and ci-cache must still tell its jobs
    # apart (their CI_JOB_IDs) although they all run in the one checkout.
    variables = {"E2E_OUT": str(out), "E2E_INDEX": url, "E2E_PYTHON": sys.executable}
    cmd = [str(GCL), "--shell-executor-no-image", "--no-color", "--concurrency", "3"]
    for name, value in variables.items():
        cmd += ["--variable", f"{name}={value}"]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    return proc, out


def _cli_json(tmp: Path, *args: str) -> Any:
    env = _base_env(tmp)
    env["CI_CACHE_ROOT"] = str(tmp / "root")
    proc = subprocess.run(
        [sys.executable, "-m", "ci_cache", *args], env=env, capture_output=True, text=True, check=True, timeout=TIMEOUT
    )
    return json.loads(proc.stdout)


def _offline_install(tmp: Path, cache: Path, url: str, packages: list[str]) -> subprocess.CompletedProcess[str]:
    assert UV is not None
    venv = tmp / "check-venv"
    env = {**_base_env(tmp), "UV_CACHE_DIR": str(cache), "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}
    if not venv.exists():
        subprocess.run(
            [UV, "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True, capture_output=True
        )
    python = venv / "bin" / "python"
    return subprocess.run(
        [UV, "pip", "install", "--offline", "--python", str(python), "--index-url", url, *packages],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.integration
@pytest.mark.wrappers
@needs_gitlab_ci_local
@pytest.mark.skipif(UV is None, reason="uv is not installed")
@pytest.mark.parametrize("pipeline", ["template.gitlab-ci.yml", "component.gitlab-ci.yml"])
def test_concurrent_jobs_get_private_caches_and_only_successful_ones_merge(tmp_path: Path, pipeline: str) -> None:
    build_index(tmp_path / "index", SPECS)
    with IndexServer(tmp_path / "index") as server:
        proc, out = _run_pipeline(tmp_path, pipeline, server.url)
        log = proc.stdout + proc.stderr
        for job in ("job-a", "job-b"):
            assert f"PASS  {job}" in log, log
        assert "FAIL  job-fail" in log, log
        assert "job-fail fails on purpose" in log, log
        # gitlab-ci-local flags a failing after_script with "WARN  <job>  after_script".
        assert not re.search(r"WARN\s+job-\S+\s+after_script", log), log
        # Each job had its own identity: no job found another's lease, none ran without ci-cache.
        for wrong in ("lease", "without ci-cache", "already set up", "left alone", "no allocation found"):
            assert wrong not in log, log

        # Every job had its own uv cache and temp dir, and job-b's own before_script ran after ci-cache's.
        caches = {job: (out / f"{job}.uv-cache").read_text().strip() for job in JOBS}
        temps = {job: (out / f"{job}.tmpdir").read_text().strip() for job in JOBS}
        assert len(set(caches.values())) == 3, caches
        assert len(set(temps.values())) == 3, temps
        root = (tmp_path / "root").resolve()
        for path in [*caches.values(), *temps.values()]:
            assert Path(path).resolve().is_relative_to(root / "jobs"), path
        assert (out / "job-b.own-before-script").read_text().strip() == caches["job-b"]

        # after_script finished every job (a separate shell: finish found them by CI_JOB_ID) ...
        status = _cli_json(tmp_path, "status", "--json")
        assert status["live_jobs"] == [], (status, log)
        assert status["stale_jobs"] == [], (status, log)
        for path in caches.values():
            assert not Path(path).exists(), f"{path} was not released"
        shared = Path(status["shared"]["uv"]["path"])
        assert shared.resolve().is_relative_to(root)

        # ... and merged the successful jobs' packages, so they install offline from the shared cache,
        ok = _offline_install(tmp_path, shared, server.url, ["e2e-common", "e2e-only-a", "e2e-only-b"])
        assert ok.returncode == 0, ok.stderr
        venv_python = tmp_path / "check-venv" / "bin" / "python"
        imported = subprocess.run(
            [str(venv_python), "-c", "import e2e_common, e2e_dep, e2e_only_a, e2e_only_b; print('ok')"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert imported.stdout.strip() == "ok", imported.stderr
        # ... but not the failed job's.
        refused = _offline_install(tmp_path, shared, server.url, ["e2e-only-fail"])
        assert refused.returncode != 0, refused.stdout
        assert "e2e-only-fail" in refused.stderr


@pytest.mark.integration
@pytest.mark.wrappers
@needs_gitlab_ci_local
@pytest.mark.skipif(UV is None, reason="uv is not installed")
def test_a_busy_job_id_fails_its_job_and_its_after_script_finishes_nothing(tmp_path: Path) -> None:
    build_index(tmp_path / "index", SPECS)
    with IndexServer(tmp_path / "index") as server:
        proc, _out = _run_pipeline(tmp_path, "busy.gitlab-ci.yml", server.url)
        log = proc.stdout + proc.stderr
        assert "PASS  hold" in log, log
        assert "FAIL  busy" in log, log
        # busy's setup failed with ci-cache's own error, and its script never ran ...
        assert "ci-cache: error: job 'one-id' is already set up and still running" in log, log
        assert "give each job its own id with --job / CI_CACHE_JOB" in log, log
        assert "without ci-cache" not in log, log
        assert "busy's script ran" not in log, log
        # ... its after_script left hold's allocation alone (it names another CI_JOB_ID) and did not fail,
        assert re.search(r"busy.*was set up by another CI job \(gitlab:.*\); it is left alone", log), log
        assert not re.search(r"WARN\s+busy\s+after_script", log), log
        assert "hold's cache survived busy's after_script" in log, log
        # ... and hold's own after_script merged it.
        status = _cli_json(tmp_path, "status", "--json")
        assert status["live_jobs"] == [] and status["stale_jobs"] == [], (status, log)
        ok = _offline_install(tmp_path, Path(status["shared"]["uv"]["path"]), server.url, ["e2e-only-a"])
        assert ok.returncode == 0, ok.stderr


@pytest.mark.integration
@pytest.mark.wrappers
@needs_gitlab_ci_local
@pytest.mark.parametrize(("pipeline", "mode"), [("precedence.gitlab-ci.yml", "off"),
                                                ("precedence-input.gitlab-ci.yml", "isolated")])
def test_a_pipeline_variable_reaches_the_job_and_an_input_overrides_it(
    tmp_path: Path, pipeline: str, mode: str
) -> None:
    proc, out = _run_pipeline(tmp_path, pipeline, "http://127.0.0.1:9/unused")
    log = proc.stdout + proc.stderr
    assert "PASS  settings" in log, log
    assert not re.search(r"WARN\s+settings\s+after_script", log), log
    token, job_dir = (out / "settings").read_text().split()
    if mode == "off":
        # The pipeline's CI_CACHE_MODE: off reached setup (the empty input did not hide it) ...
        assert (token, job_dir) == ("none", "none"), log
        # ... and its after_script (a fresh shell: no token) found nothing to finish, and did not warn about it.
        assert "mode off allocates nothing; nothing to finish" in log, log
        assert "warning" not in log, log
    else:
        # ... and the `mode` input, a flag, wins over it.
        assert len(token) == 32 and token != "none", log
        assert Path(job_dir).resolve().is_relative_to((tmp_path / "root" / "jobs").resolve()), job_dir
        assert not Path(job_dir).exists(), f"after_script did not finish {job_dir}"
    status = _cli_json(tmp_path, "status", "--json")
    assert status["live_jobs"] == [] and status["stale_jobs"] == [], (status, log)
