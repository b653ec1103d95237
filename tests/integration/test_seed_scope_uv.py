"""Seeding follows the job, with real uv: the lock or requirements files in a job's workspace scope its seed
with no configuration, and what the job asks for beyond them it downloads, and the merge brings back."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_cache_index import IndexServer, PackageSpec, build_index, demo_specs
from tests.integration.uvjobs import UV, Lab, alloc_env, offline_install

pytestmark = [pytest.mark.integration, pytest.mark.skipif(UV is None, reason="uv not installed (scripts/test)")]

WARM = ["demo-alpha", "demo-eta", "extra-one"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    specs = [*demo_specs(), PackageSpec("extra-one", "1.0.0", files=20), PackageSpec("extra-two", "2.1.0")]
    with IndexServer(build_index(tmp_path_factory.mktemp("index"), specs), simple_max_age=0) as srv:
        yield srv


def _warm(lab: Lab) -> None:
    proc = lab.start_job("warm", WARM, "--mode", "isolated")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out


def _workspace(lab: Lab, name: str, files: dict[str, str]) -> Path:
    workspace = lab.tmp / "workspaces" / name
    workspace.mkdir(parents=True)
    for file_name, text in files.items():
        (workspace / file_name).write_text(text)
    return workspace


def _names(cache: Path) -> set[str]:
    """The packages a uv cache holds entries of (its wheels and sdists buckets, by name)."""
    return {p.name for p in [*cache.glob("wheels-v*/index/*/*"), *cache.glob("sdists-v*/index/*/*")]}


def _setup(lab: Lab, name: str, workspace: Path, **extra: str) -> tuple[dict[str, str], dict[str, object], Path]:
    env = lab.env(CI_CACHE_JOB=name, **extra)
    setup = lab.cli("setup", "--mode", "isolated", "--format", "json", env=env, cwd=workspace)
    assert setup.returncode == 0, setup.stderr
    alloc = json.loads(setup.stdout)
    return env, alloc, Path(alloc["env"]["UV_CACHE_DIR"])


def test_a_requirements_file_in_the_workspace_scopes_the_seed_and_more_is_downloaded_and_merged(
    lab: Lab, server: IndexServer
) -> None:
    _warm(lab)
    workspace = _workspace(lab, "scoped", {"requirements.txt": "demo-alpha\n"})
    env, alloc, cache = _setup(lab, "scoped", workspace)
    record = json.loads(Path(f"{alloc['job_dir']}.json").read_text())
    assert record["seeded"]["uv"]["scope"] == "key files"
    # demo-alpha and its dependencies; not demo-eta, demo-theta nor extra-one.
    assert _names(cache) == {"demo-alpha", "demo-beta", "demo-gamma", "demo-delta", "demo-epsilon", "demo-zeta"}
    assert _names(lab.shared_uv) > _names(cache)

    # The job installs what its file names and more: what was seeded is not downloaded, the rest is.
    server.clear_requests()
    venv = lab.venv("scoped")
    install = subprocess.run(lab.install_cmd(venv, ["demo-alpha", "extra-two"]), env=alloc_env(env, alloc),
                             capture_output=True, text=True, check=False, cwd=workspace)
    assert install.returncode == 0, install.stderr
    downloads = server.file_downloads()
    assert any("extra_two" in d for d in downloads), downloads
    assert not any("demo_alpha" in d for d in downloads), downloads
    finish = lab.cli("finish", "--json", env=env, cwd=workspace)
    assert finish.returncode == 0, finish.stderr
    assert json.loads(finish.stdout)["merged"]["uv"]["entries"] >= 1
    # The merge brought it back: the shared cache alone installs it.
    assert "extra-two" in _names(lab.shared_uv)
    offline = offline_install(lab, ["extra-two", "demo-alpha"], lab.shared_uv)
    assert offline.returncode == 0, offline.stdout + offline.stderr


def test_no_file_or_files_that_name_nothing_seed_the_whole_cache_and_key_files_override(lab: Lab) -> None:
    _warm(lab)
    everything = _names(lab.shared_uv)
    for name, files in (("nothing", {}), ("empty", {"requirements.txt": "# no package\n"}),
                        ("no-deps", {"pyproject.toml": '[project]\nname = "mine"\nversion = "1"\n'})):
        env, _alloc, cache = _setup(lab, name, _workspace(lab, name, files))
        assert _names(cache) == everything, name
        assert lab.cli("finish", env=env).returncode == 0
    # key_files names another file than the one found: it wins.
    workspace = _workspace(lab, "configured", {"requirements.txt": "demo-alpha\n", "other.txt": "extra-one\n"})
    env, _alloc, cache = _setup(lab, "configured", workspace, CI_CACHE_KEY_FILES="other.txt")
    assert _names(cache) == {"extra-one"}
    assert lab.cli("finish", env=env).returncode == 0


def test_a_lock_file_and_a_requirements_file_are_read_together(lab: Lab) -> None:
    _warm(lab)
    lock = ('version = 1\n\n[[package]]\nname = "extra-one"\nversion = "1.0.0"\n'
            'source = { registry = "https://example.invalid/simple" }\n')
    workspace = _workspace(lab, "locked", {"uv.lock": lock, "requirements-ci.txt": "demo-eta\n",
                                           "pyproject.toml": '[project]\ndependencies = ["demo-alpha"]\n'})
    env, _alloc, cache = _setup(lab, "locked", workspace)
    # The lock's and the requirements file's packages, with demo-eta's dependency; the pyproject.toml is not
    # read beside a lock file (the lock names what it resolves to).
    assert _names(cache) == {"extra-one", "demo-eta", "demo-theta"}
    assert lab.cli("finish", env=env).returncode == 0
