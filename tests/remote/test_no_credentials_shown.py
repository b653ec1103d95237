"""Credentials never appear in any output: setup, finish, run and every `remote` command run with secrets in
the cloud's env vars against endpoints that fail, one of them echoing each request (its Authorization
header and security token included) back in a 403's body. Every stdout, stderr, job record, summary file
and step summary is searched for each secret, raw and URL-encoded."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from ci_cache_index import IndexServer, build_index
from tests.remote import faults
from tests.remote.fleet import CLI, UV, Agent, fleet_specs

pytestmark = pytest.mark.integration

if UV is None:
    pytest.skip("uv not found next to sys.executable or on PATH", allow_module_level=True)

AWS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLESECRET777", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzzSECRET",
       "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLE/TOKEN+value=="}
AZURE_KEY = "c2VjcmV0LWF6dXJlLWFjY291bnQta2V5LTAxMjM0NTY3ODk="
AZURE_SAS = "sv=2022-11-02&ss=b&srt=co&sp=rwl&se=2030-01-01T00:00:00Z&sig=Zm9vYmFyU0lHTkFUVVJFc2VjcmV0"


def echo_403(request: bytes) -> bytes:
    """A 403 whose body is the request itself, headers and all."""
    body = b"<Error><Code>AccessDenied</Code><Message>you sent: " + request + b"</Message></Error>"
    return (b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def secret_forms(values: list[str]) -> list[str]:
    out = set()
    for value in values:
        out |= {value, quote(value, safe=""), quote_plus(value)}
        out |= {part.split("=", 1)[1] for part in value.split("&") if part.startswith("sig=")}
    return sorted(out)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root = build_index(tmp_path_factory.mktemp("cred-index"), fleet_specs())
    with IndexServer(root) as srv:
        yield srv


CLOUDS = {
    "s3": lambda port: {"CI_CACHE_REMOTE_URL": "s3://bucket/team", "CI_CACHE_REMOTE_ENDPOINT": f"http://127.0.0.1:{port}",
                        "CI_CACHE_REMOTE_ALLOW_HTTP": "true", **AWS},
    "azure-key": lambda port: {"CI_CACHE_REMOTE_URL": "az://container/team",
                               "CI_CACHE_REMOTE_ENDPOINT": f"http://127.0.0.1:{port}/acct",
                               "CI_CACHE_REMOTE_ALLOW_HTTP": "true", "AZURE_STORAGE_ACCOUNT_NAME": "acct",
                               "AZURE_STORAGE_ACCOUNT_KEY": AZURE_KEY},
    "azure-sas": lambda port: {"CI_CACHE_REMOTE_URL": "az://container/team",
                               "AZURE_STORAGE_CONNECTION_STRING": f"BlobEndpoint=http://127.0.0.1:{port}/acct;"
                               f"SharedAccessSignature={AZURE_SAS}"},
}
SECRETS = secret_forms([*AWS.values(), AZURE_KEY, AZURE_SAS])


@pytest.mark.parametrize(("cloud", "failing"), [("s3", "echo-403"), ("s3", "down"), ("azure-key", "echo-403"),
                                               ("azure-sas", "echo-403")])
def test_no_command_shows_a_credential(cloud: str, failing: str, tmp_path: Path, index: IndexServer) -> None:
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(faults.tcp_server(echo_403)) if failing == "echo-403" else faults.closed_port()
        remote = {**CLOUDS[cloud](port), "CI_CACHE_REMOTE_PULL_BUDGET": "5s", "CI_CACHE_REMOTE_PUSH_BUDGET": "5s"}
        agent = Agent(tmp_path / "agent", index.url, remote)
        step_summary = tmp_path / "step-summary.md"
        texts: list[str] = []
        env = {"GITHUB_STEP_SUMMARY": str(step_summary)}

        # A job through `run`: its output and its summary file.
        job = agent.install("fleet-p03\nfleet-p04\n", env=env)
        assert job.proc.returncode == 0, job.describe()
        assert any("remote" in w for w in job.summary["warnings"]), job.summary["warnings"]
        texts += [job.proc.stdout, job.proc.stderr, json.dumps(job.summary)]

        # setup and finish as separate steps; the job's record between them.
        work = agent.workspace({"requirements.txt": "fleet-p05\n"})
        steps_env = agent.env(**env)
        setup = subprocess.run([CLI, "setup", "--format", "json", "--job", "steps"],
                               cwd=work, env=steps_env, capture_output=True, text=True, timeout=120, check=False)
        assert setup.returncode == 0, setup.stderr
        texts += [setup.stdout, setup.stderr]
        texts += [p.read_text() for p in (agent.root / "jobs").glob("*.json")]
        allocation = json.loads(setup.stdout)["env"]
        assert UV is not None
        venv = work / "venv"
        for argv in (["venv", "-q", str(venv)], ["pip", "install", "-q", "-p", str(venv), "fleet-p05"]):
            subprocess.run([UV, *argv], cwd=work, env={**steps_env, **allocation}, check=True, capture_output=True)
        finish = subprocess.run([CLI, "finish", "--json", "--job", "steps"], cwd=work,
                                env={**steps_env, **allocation}, capture_output=True, text=True, timeout=120,
                                check=False)
        assert finish.returncode == 0, finish.stderr
        assert json.loads(finish.stdout)["remote"]["push_decision"] == "remote.push: always"
        assert "warning: remote" in finish.stderr, finish.stderr
        texts += [finish.stdout, finish.stderr]

        # Every remote command, as text and as JSON; each fails (exit 8), naming what to check.
        for command in (["status"], ["verify"], ["verify", "--fix"], ["gc", "--dry-run"], ["push"]):
            for extra in ([], ["--json"]):
                proc = agent.cli("remote", *command, *extra)
                assert proc.returncode == 8, (command, proc.returncode, proc.stdout, proc.stderr)
                assert "remote" in proc.stderr
                texts += [proc.stdout, proc.stderr]
        texts.append(step_summary.read_text())

    everything = "\n".join(texts)
    leaked = [s for s in SECRETS if s in everything]
    assert leaked == [], f"credentials in the output: {leaked}"
    if failing == "echo-403":
        assert "forbidden" in everything  # the echoed request was read, and scrubbed
