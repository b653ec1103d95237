"""The `remote:` section of ci-cache.yml: where the fleet cache lives and how ci-cache talks to it.

Credentials are never config keys: they come from each cloud's standard env vars (see cloudenv.py).
A key that looks like one, or a URL with a user or a signature in it, is refused without echoing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

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
# Names of keys that would hold a credential; the value is never echoed back.
_CREDENTIAL_KEY = re.compile(r"(secret|password|passwd|token|credential|access_?key|account_?key|sas|"
                             r"connection_?string|private_?key|signature|auth)", re.IGNORECASE)
# Query parameters of signed URLs (AWS presigned, Azure SAS, GCS signed).
_SIGNED_QUERY = re.compile(r"(^|&)(x-amz-[a-z-]+|sig|se|sv|sp|x-goog-[a-z-]+|signature|awsaccesskeyid)=",
                           re.IGNORECASE)
_BUCKET = {
    "s3": re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
    "az": re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"),
    "gs": re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"),
}
_BUCKET_RULE = {
    "s3": "3-63 lowercase letters, digits, dots or hyphens",
    "az": "3-63 lowercase letters, digits or single hyphens",
    "gs": "3-222 lowercase letters, digits, dots, hyphens or underscores",
}
_PREFIX_PART = re.compile(r"^[A-Za-z0-9._+=@-]+$")


@dataclass(frozen=True)
class RemoteUrl:
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
    return "@" in head or bool(_SIGNED_QUERY.search(query))


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
    if not _BUCKET[scheme].fullmatch(bucket):
        noun = "container" if scheme == "az" else "bucket"
        raise ValueError(f"{bucket!r} is not a valid {noun} name ({_BUCKET_RULE[scheme]}); "
                         f"write {scheme}://{noun.upper()}/PREFIX")
    parts = [p for p in path.split("/") if p]
    for part in parts:
        if part in (".", "..") or not _PREFIX_PART.fullmatch(part):
            raise ValueError(f"the prefix segment {part!r} is not allowed (use letters, digits and ._+=@-); "
                             f"write {scheme}://{bucket}/team/ci-cache")
    if "//" in path.rstrip("/"):
        raise ValueError(f"the prefix has an empty segment; write {scheme}://{bucket}/{'/'.join(parts)}")
    return RemoteUrl(scheme=scheme, bucket=bucket, prefix="/".join(parts))


def _check_endpoint(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an endpoint; write http(s)://HOST[:PORT], e.g. https://minio.example.com:9000")
    if parts.query or parts.fragment:
        raise ValueError("an endpoint has no query or fragment; write http(s)://HOST[:PORT][/PATH]")
    return value.strip().rstrip("/")


class RemoteConfig(BaseModel):
    """Where the fleet cache lives (object storage) and how ci-cache talks to it. No key is a credential."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(None, description=f"{URL_FORMS}; unset = no remote tier")
    endpoint: str | None = Field(
        None, description="http(s)://HOST[:PORT] of an S3-compatible server (MinIO, Ceph, SeaweedFS, R2), "
                          "of Azurite or Azure Stack, or of a GCS emulator; unset = the cloud's own")
    region: str | None = Field(None, description="S3 region; unset = AWS_REGION, else us-east-1")
    push: PushPolicy | None = Field(None, description="which jobs publish to the remote; unset = as `merge`")
    pull: bool = Field(True, description="fetch what the job needs at setup")
    pull_budget: float = Field(30.0, gt=0, le=600, description="seconds a whole pull may take, then go on")
    push_budget: float = Field(30.0, gt=0, le=600, description="seconds a whole push may take, then stop")
    connect_timeout: float = Field(3.0, gt=0, le=60, description="seconds to wait for a TCP/TLS connection")
    concurrency: int = Field(16, ge=1, le=256, description="transfers in flight at once")
    retries: int = Field(2, ge=0, le=10, description="retries of a request that failed with 5xx or a reset")
    allow_http: bool = Field(False, description="allow a plain http:// endpoint (a test or loopback server)")
    virtual_hosted: bool = Field(False, description="S3: BUCKET.host addressing instead of host/BUCKET")
    ca_file: str | None = Field(None, description="PEM file of a private CA that signs the endpoint's cert")
    proxy: str | None = Field(None, description="http(s)://HOST:PORT of a proxy; unset = HTTPS_PROXY")
    max_blob_size: int = Field(2 << 30, ge=1 << 20, description="largest archive pushed or pulled, in bytes")
    keep_days: int = Field(30, ge=1, le=3650, description="`remote gc` keeps entries used or created since")
    gc_grace_hours: float = Field(6.0, ge=0, description="`remote gc` keeps unreferenced blobs younger than this")

    @model_validator(mode="wrap")
    @classmethod
    def _no_credentials(cls, data: Any, handler: ModelWrapValidatorHandler[RemoteConfig]) -> RemoteConfig:
        """Refuse credentials before pydantic can copy their values into an error message."""
        if not isinstance(data, dict):
            return handler(data)
        errors: list[InitErrorDetails] = []
        clean = dict(data)
        for key in data:
            if key not in cls.model_fields and _CREDENTIAL_KEY.search(str(key)):
                errors.append(InitErrorDetails(
                    type=PydanticCustomError("credential_key", "credentials are never read from ci-cache.yml; "
                                             "set the cloud's env vars instead: {vars}", {"vars": "; ".join(
                                                 f"{k}://: {v}" for k, v in CREDENTIAL_VARS.items())}),
                    loc=(str(key),), input="<hidden>"))
                del clean[key]
        for key in ("url", "endpoint", "proxy"):
            value = data.get(key)
            if isinstance(value, str) and _has_secret(value):
                errors.append(InitErrorDetails(
                    type=PydanticCustomError("credential_in_url", "credentials and signatures do not belong in "
                                             "`{key}`; remove them and set the cloud's env vars "
                                             "(AWS_*, AZURE_STORAGE_*, GOOGLE_*)", {"key": key}),
                    loc=(key,), input=_redacted(value)))
                del clean[key]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return handler(clean)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else str(parse_url(value))

    @field_validator("endpoint", "proxy")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else _check_endpoint(value)

    @model_validator(mode="after")
    def _consistent(self) -> RemoteConfig:
        if self.endpoint and self.endpoint.startswith("http://") and not self.allow_http:
            raise ValueError("`endpoint` is plain http://; use https://, or set `allow_http: true` for a test "
                             "or loopback server")
        return self

    @property
    def location(self) -> RemoteUrl | None:
        return parse_url(self.url) if self.url else None

    def resolved_push(self, merge_policy: str) -> str:
        """The push policy; unset follows the merge policy, so trust is configured once."""
        return self.push or merge_policy
