"""The fleet tier through a CI wrapper end to end: the GitLab template under gitlab-ci-local, with a SeaweedFS
started by the test. Two jobs on two agents (two ci-cache roots): the first installs and its after_script
pushes; the second, on an empty agent, pulls at setup what its requirements.txt names and installs
--offline. The remote's URL and endpoint reach ci-cache as the template's inputs, the credentials as CI/CD
variables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ci_cache_index import IndexServer, build_index
from tests.integration.test_gitlab_ci_local import GCL, PIPELINES, SPECS, TIMEOUT, UV, _base_env, _git, _project
from tests.integration.test_gitlab_ci_local import needs_gitlab_ci_local as needs_gcl
from tests.remote import servers
from tests.remote.servers import BUCKET, Server

pytestmark = [pytest.mark.integration, pytest.mark.wrappers]


@needs_gcl
@pytest.mark.skipif(UV is None, reason="uv is not installed")
def test_the_gitlab_template_pushes_from_one_agent_and_an_empty_one_installs_offline(
        seaweedfs: Server, prefix: str, tmp_path: Path) -> None:
    build_index(tmp_path / "index", SPECS)
    repo = _project(tmp_path, "remote.gitlab-ci.yml")
    text = (PIPELINES / "remote.gitlab-ci.yml").read_text()
    (repo / ".gitlab-ci.yml").write_text(text.replace("{remote_url}", f"s3://{BUCKET}/{prefix}")
                                         .replace("{endpoint}", seaweedfs.endpoint))
    (repo / "requirements.txt").write_text("e2e-common\ne2e-only-b\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "remote")
    out = tmp_path / "out"
    out.mkdir()
    publish, read = seaweedfs.identities["publish"], seaweedfs.identities["read"]
    with IndexServer(tmp_path / "index") as index:
        variables = {"E2E_OUT": str(out), "E2E_INDEX": index.url, "E2E_PYTHON": sys.executable,
                     "CI_CACHE_REMOTE_ALLOW_HTTP": "true",
                     "E2E_PUBLISH_KEY": publish.access_key, "E2E_PUBLISH_SECRET": publish.secret_key,
                     "E2E_READ_KEY": read.access_key, "E2E_READ_SECRET": read.secret_key}
        env = _base_env(tmp_path)
        env.update(UV_NO_PROGRESS="1", UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
        cmd = [str(GCL), "--shell-executor-no-image", "--no-color"]
        for name, value in variables.items():
            cmd += ["--variable", f"{name}={value}"]
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        downloads = index.file_downloads()
    log = proc.stdout + proc.stderr
    assert "PASS  fill" in log and "PASS  fresh-agent" in log, log
    assert not re.search(r"WARN\s+\S+\s+after_script", log), log
    assert re.search(r"fill.*remote \(uv\): .*; pushed [1-9]\d* entries", log), log
    pulled = re.search(r"fresh-agent.*remote \(uv\): pulled (\d+) entries", log)
    assert pulled and int(pulled.group(1)) > 0, log
    assert "warning" not in log.lower(), log
    # Only the first agent ever downloaded a distribution; the second installed --offline from the remote.
    assert downloads and all(Path(d).name.startswith(("e2e_", "e2e-")) for d in downloads)
    for secret in (publish.secret_key, read.secret_key):
        assert secret not in log
    verified = subprocess.run([sys.executable, "-m", "ci_cache", "remote", "verify", "--remote-url",
                               f"s3://{BUCKET}/{prefix}", "--remote-endpoint", seaweedfs.endpoint],
                              env={**_base_env(tmp_path), "CI_CACHE_REMOTE_ALLOW_HTTP": "true",
                                   **servers.s3_env(seaweedfs, "admin")},
                              capture_output=True, text=True, timeout=120, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
