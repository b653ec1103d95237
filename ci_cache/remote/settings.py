"""The `remote:` section of ci-cache.yml: where the fleet cache lives and how ci-cache talks to it.

Credentials are never config keys: they come from each cloud's standard env vars (see cloudenv.py).
A key that looks like one, or a URL with a user or a signature in it, is refused without echoing it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NamedTuple

from ci_cache.schema import Check, ErrorDetail, Model, error, setting
from ci_cache.units import Duration, Size

Scheme = Literal["s3", "az", "gs"]
PushPolicy = Literal["always", "success", "protected", "never"]
SCHEMES: tuple[Scheme, ...] = ("s3", "az", "gs")
URL_FORMS = "s3://BUCKET/PREFIX, az://CONTAINER/PREFIX or gs://BUCKET/PREFIX"
CREDENTIAL_VARS = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE's files, or an instance role)",
    "az": "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY "
          "or AZURE_STORAGE_SAS_TOKEN",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS (a service account file) or GOOGLE_SERVICE_ACCOUNT_KEY",
}
# The patterns stay text, compiled (and cached by `re`) at first use: every job imports this, few have a remote.
# Names of keys that would hold a credential; the value is never echoed back.
_CREDENTIAL_KEY = (r"(?i)(secret|password|passwd|token|credential|access_?key|account_?key|sas|"
                   r"connection_?string|private_?key|signature|auth)")
# Query parameters of signed URLs (AWS presigned, Azure SAS, GCS signed).
_SIGNED_QUERY = r"(?i)(^|&)(x-amz-[a-z-]+|sig|se|sv|sp|x-goog-[a-z-]+|signature|awsaccesskeyid)="
_BUCKET = {
    "s3": r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
    "az": r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
    "gs": r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$",
}
_BUCKET_RULE = {
    "s3": "3-63 lowercase letters, digits, dots or hyphens",
    "az": "3-63 lowercase letters, digits or single hyphens",
    "gs": "3-222 lowercase letters, digits, dots, hyphens or underscores",
}
_PREFIX_PART = r"^[A-Za-z0-9._+=@-]+$"


class RemoteUrl(NamedTuple):
    """A parsed remote URL: the scheme, the bucket (a container on Azure) and a prefix inside it."""

    scheme: Scheme
    bucket: str
    prefix: str  # no leading or trailing slash; "" for the bucket's root

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")


def _has_secret(value: str) -> bool:
    """A user/password part (an `@` before any query, wherever `/` in a secret moved it) or a signature."""
    if "://" not in value:
        return False
    head, _, query = value.partition("?")
    return "@" in head or bool(re.search(_SIGNED_QUERY, query))


def _redacted(value: str) -> str:
    scheme, _, rest = value.partition("://")
    head, _, query = rest.partition("?")
    head = "***@" + head.rsplit("@", 1)[1] if "@" in head else head
    return f"{scheme}://{head}" + ("?***" if query else "")


def parse_url(value: str) -> RemoteUrl:
    """Parse and check a remote URL; a ValueError says what to write instead."""
    text = value.strip()
    match = re.fullmatch(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(/[^?#]*)?", text)
    if not match:
        raise ValueError(f"not a remote URL; write {URL_FORMS}")
    scheme, bucket, path = match.group(1).lower(), match.group(2), (match.group(3) or "")
    if scheme not in SCHEMES:
        aliases = {"s3a": "s3", "azure": "az", "abfs": "az", "abfss": "az", "gcs": "gs", "https": "", "http": ""}
        better = aliases.get(scheme)
        hint = f"write {better}://{bucket}{path}" if better else f"write {URL_FORMS}"
        if scheme in ("http", "https"):
            hint += "; an S3-compatible server's address goes in `remote.endpoint`"
        raise ValueError(f"unsupported scheme {scheme}://; {hint}")
    if "@" in bucket or ":" in bucket:
        raise ValueError(f"credentials and ports do not belong in the URL; write {scheme}://BUCKET/PREFIX and "
                         f"set {CREDENTIAL_VARS[scheme]}; a server's address goes in `remote.endpoint`")
    if not re.fullmatch(_BUCKET[scheme], bucket):
        noun = "container" if scheme == "az" else "bucket"
        raise ValueError(f"{bucket!r} is not a valid {noun} name ({_BUCKET_RULE[scheme]}); "
                         f"write {scheme}://{noun.upper()}/PREFIX")
    parts = [p for p in path.split("/") if p]
    for part in parts:
        if part in (".", "..") or not re.fullmatch(_PREFIX_PART, part):
            raise ValueError(f"the prefix segment {part!r} is not allowed (use letters, digits and ._+=@-); "
                             f"write {scheme}://{bucket}/team/ci-cache")
    if "//" in path.rstrip("/"):
        raise ValueError(f"the prefix has an empty segment; write {scheme}://{bucket}/{'/'.join(parts)}")
    return RemoteUrl(scheme=scheme, bucket=bucket, prefix="/".join(parts))


def _check_endpoint(value: str) -> str | None:
    if not value.strip():
        return None
    from urllib.parse import urlsplit  # only when an endpoint is set

    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an endpoint; write http(s)://HOST[:PORT], e.g. https://minio.example.com:9000")
    if parts.query or parts.fragment:
        raise ValueError("an endpoint has no query or fragment; write http(s)://HOST[:PORT][/PATH]")
    return value.strip().rstrip("/")


def _check_url(value: str) -> str | None:
    return str(parse_url(value)) if value.strip() else None


Url = Annotated[str, Check(_check_url)]
Endpoint = Annotated[str, Check(_check_endpoint)]


class RemoteConfig(Model):
    """The fleet tier: where the shared cache of every agent lives (object storage) and how to reach it.
    No key is a credential: those come from each cloud's own env vars and files."""

    url: Url | None = setting(f"{URL_FORMS}; unset = no remote tier", default=None)
    endpoint: Endpoint | None = setting(
        "http(s)://HOST[:PORT] of an S3-compatible server (MinIO, Ceph, SeaweedFS, R2), of Azurite or Azure "
        "Stack, or of a GCS emulator; unset = the cloud's own", default=None)
    region: str | None = setting("S3 region; unset = AWS_REGION, else us-east-1", default=None)
    push: PushPolicy | None = setting("which jobs publish to the remote; unset = as `merge`", default=None)
    pull: bool = setting("fetch what the job needs at setup", default=True)
    pull_budget: Duration = setting("how long a whole pull may take, then the job goes on without the rest",
                                    default=30.0, gt=0, le=600)
    push_budget: Duration = setting("how long a whole push may take, then it stops", default=30.0, gt=0, le=600)
    connect_timeout: Duration = setting("how long to wait for a TCP/TLS connection", default=3.0, gt=0, le=60)
    concurrency: int = setting("transfers in flight at once", default=16, ge=1, le=256)
    retries: int = setting("retries of a request that failed with 5xx or a reset", default=2, ge=0, le=10)
    allow_http: bool = setting("allow a plain http:// endpoint (a test or loopback server)", default=False)
    virtual_hosted: bool = setting("S3: BUCKET.host addressing instead of host/BUCKET", default=False)
    ca_file: str | None = setting("PEM file of a private CA that signs the endpoint's certificate", default=None)
    proxy: Endpoint | None = setting("http(s)://HOST:PORT of a proxy; unset = HTTPS_PROXY", default=None)
    max_blob_size: Size = setting("largest archive pushed or pulled", default=2 << 30, ge=1 << 20)
    keep_days: int = setting("`remote gc` keeps entries used or created within this many days", default=30, ge=1,
                             le=3650)
    gc_grace: Duration = setting("`remote gc` keeps unreferenced blobs younger than this (an upload in flight)",
                                 default=6 * 3600.0)

    @classmethod
    def _before(cls, data: dict[str, Any]) -> list[ErrorDetail]:
        """Refuse credentials before anything could copy their values into an error message."""
        errors = []
        for key in list(data):
            refusal = credential_refusal(key) if key not in cls.model_fields else None
            if refusal:
                errors.append(error((key,), refusal, "credential_key"))  # no input: never echoed
                del data[key]
        for key in ("url", "endpoint", "proxy"):
            value = data.get(key)
            if isinstance(value, str) and _has_secret(value):
                errors.append(error((key,), f"credentials and signatures do not belong in `{key}`; remove them and "
                                    "set the cloud's env vars (AWS_*, AZURE_STORAGE_*, GOOGLE_*)",
                                    "credential_in_url", _redacted(value)))
                del data[key]
        return errors

    def _after(self) -> list[ErrorDetail]:
        if self.endpoint and self.endpoint.startswith("http://") and not self.allow_http:
            return [error(("endpoint",), "`endpoint` is plain http://; use https://, or set `allow_http: true` for "
                          "a test or loopback server", "http_endpoint", self.endpoint)]
        return []

    @property
    def location(self) -> RemoteUrl | None:
        return parse_url(self.url) if self.url else None

    def resolved_push(self, merge_policy: str) -> str:
        """The push policy; unset follows the merge policy, so trust is configured once."""
        return self.push or merge_policy


def credential_refusal(key: str) -> str | None:
    """Why `key` cannot be a setting when its name says it holds a credential (the value is never read)."""
    if not re.search(_CREDENTIAL_KEY, key):
        return None
    where = "; ".join(f"{k}://: {v}" for k, v in CREDENTIAL_VARS.items())
    return f"credentials are never read from ci-cache.yml; set the cloud's env vars instead: {where}"
