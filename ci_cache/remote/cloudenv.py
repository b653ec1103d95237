"""Each cloud's standard env vars and files, turned into an obstore configuration and a list of secrets.

Only the `env` passed in is read (the CLI passes the process environment). obstore's constructors also
read the process environment themselves (object_store's `from_env`, which cannot be turned off), so every
setting that decides where requests go and how they are signed is given explicitly here, and explicit
values win over what obstore finds: the endpoint, the region, the addressing style, the HTTP client
options and, whenever `env` holds credentials, the credentials. When `env` holds none, obstore's ambient
chain runs (AWS instance or container roles, web identity; Azure managed identity), which is what a user
without keys expects.
"""

from __future__ import annotations

import configparser
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ci_cache.errors import RemoteError
from ci_cache.remote.settings import CREDENTIAL_VARS, RemoteConfig, RemoteUrl

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_ENDPOINT = "http://127.0.0.1:10000"

# env var -> obstore key, passed through as they are (role and identity settings, encryption).
_S3_PASS = {
    "AWS_ROLE_ARN": "role_arn", "AWS_ROLE_SESSION_NAME": "role_session_name",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "web_identity_token_file", "AWS_STS_ENDPOINT": "sts_endpoint",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "container_credentials_relative_uri",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "container_credentials_full_uri",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "container_authorization_token_file",
    "AWS_METADATA_ENDPOINT": "metadata_endpoint", "AWS_IMDSV1_FALLBACK": "imdsv1_fallback",
    "AWS_SERVER_SIDE_ENCRYPTION": "server_side_encryption", "AWS_SSE_KMS_KEY_ID": "sse_kms_key_id",
    "AWS_SSE_BUCKET_KEY_ENABLED": "sse_bucket_key_enabled", "AWS_SSE_CUSTOMER_KEY_BASE64": "sse_customer_key_base64",
    "AWS_REQUEST_PAYER": "request_payer",
}
_AZURE_PASS = {
    "AZURE_CLIENT_ID": "client_id", "AZURE_STORAGE_CLIENT_ID": "client_id",
    "AZURE_CLIENT_SECRET": "client_secret", "AZURE_STORAGE_CLIENT_SECRET": "client_secret",
    "AZURE_TENANT_ID": "tenant_id", "AZURE_STORAGE_TENANT_ID": "tenant_id",
    "AZURE_AUTHORITY_HOST": "authority_host", "AZURE_FEDERATED_TOKEN_FILE": "federated_token_file",
    "AZURE_MSI_ENDPOINT": "msi_endpoint", "AZURE_IDENTITY_ENDPOINT": "msi_endpoint",
    "AZURE_OBJECT_ID": "object_id", "AZURE_MSI_RESOURCE_ID": "msi_resource_id",
    "AZURE_USE_AZURE_CLI": "use_azure_cli",
}
_SECRET_VARS = (
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID",
    "AWS_SSE_CUSTOMER_KEY_BASE64", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_SAS_KEY", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_CLIENT_SECRET", "AZURE_STORAGE_TOKEN", "GOOGLE_SERVICE_ACCOUNT_KEY", "GOOGLE_BEARER_TOKEN",
)


@dataclass
class CloudConfig:
    """What obstore is given, what messages may say about it, and what they must never say."""

    scheme: str
    bucket: str
    prefix: str
    endpoint: str  # for messages: where requests go
    options: dict[str, Any] = field(default_factory=dict)  # obstore config keys; may hold credentials
    client: dict[str, Any] = field(default_factory=dict)  # obstore ClientConfig
    credentials: str = "none"  # for messages: which source the credentials came from
    secrets: list[str] = field(default_factory=list)

    def where(self) -> str:
        """`s3://bucket/prefix at https://host`: how messages name the remote."""
        url = f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{url} at {self.endpoint}"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _secret_values(env: Mapping[str, str]) -> list[str]:
    values = [env[name] for name in _SECRET_VARS if env.get(name)]
    conn = env.get("AZURE_STORAGE_CONNECTION_STRING", "")
    values += [v for k, v in _connection_parts(conn).items() if k.lower() in ("accountkey", "sharedaccesssignature")]
    key_json = env.get("GOOGLE_SERVICE_ACCOUNT_KEY", "")
    if key_json:
        with contextlib.suppress(ValueError, AttributeError):
            values += [str(v) for k, v in json.loads(key_json).items() if k in ("private_key", "private_key_id")]
    return values


def _home(env: Mapping[str, str]) -> Path | None:
    home = env.get("HOME") or env.get("USERPROFILE")
    return Path(home) if home else None


def _aws_shared_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """Static keys from the AWS shared credentials file (AWS_PROFILE's section, else [default])."""
    path_text = env.get("AWS_SHARED_CREDENTIALS_FILE")
    home = _home(env)
    path = Path(path_text) if path_text else (home / ".aws" / "credentials" if home else None)
    if path is None or not path.is_file():
        return {}
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error) as exc:
        raise RemoteError(f"{path}: cannot read the AWS credentials file ({type(exc).__name__})", kind="config",
                          hint="fix the file, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    if not parser.has_section(profile):
        return {}
    section = parser[profile]
    names = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    return {k: section[k] for k in names if section.get(k)}


def _client(settings: RemoteConfig, env: Mapping[str, str], *, allow_http: bool) -> dict[str, Any]:
    client: dict[str, Any] = {"allow_http": allow_http, "connect_timeout": f"{int(settings.connect_timeout * 1000)}ms"}
    proxy = settings.proxy or env.get("HTTPS_PROXY") or env.get("https_proxy")
    if proxy:
        client["proxy_url"] = proxy
        no_proxy = env.get("NO_PROXY") or env.get("no_proxy")
        if no_proxy:
            client["proxy_excludes"] = no_proxy
    if settings.ca_file:
        try:
            client["root_certificate"] = Path(settings.ca_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise RemoteError(f"remote.ca_file: cannot read {settings.ca_file} ({type(exc).__name__})", kind="config",
                              hint="point it at a PEM file holding the CA certificate") from None
    return client


def s3(settings: RemoteConfig, loc: RemoteUrl, env: Mapping[str, str]) -> CloudConfig:
    region = settings.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = settings.endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or \
        f"https://s3.{region}.amazonaws.com"
    request_endpoint = endpoint
    if settings.virtual_hosted:
        parts = urlsplit(endpoint)
        request_endpoint = parts._replace(netloc=f"{loc.bucket}.{parts.netloc}").geturl()
    options: dict[str, Any] = {
        "bucket": loc.bucket, "region": region, "endpoint": request_endpoint, "aws_endpoint_url_s3": request_endpoint,
        "virtual_hosted_style_request": settings.virtual_hosted, "conditional_put": "etag", "skip_signature": False,
    }
    options.update({key: env[var] for var, key in _S3_PASS.items() if env.get(var)})
    allow_http = settings.allow_http or _truthy(env.get("AWS_ALLOW_HTTP")) or \
        (not settings.endpoint and endpoint.startswith("http://"))  # an http:// AWS_ENDPOINT_URL is explicit
    cfg = CloudConfig("s3", loc.bucket, loc.prefix, endpoint, options, _client(settings, env, allow_http=allow_http))
    key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN")
    if key_id and secret:
        cfg.credentials = "AWS_ACCESS_KEY_ID"
    else:
        shared = _aws_shared_credentials(env)
        key_id, secret, token = (shared.get("aws_access_key_id"), shared.get("aws_secret_access_key"),
                                 shared.get("aws_session_token"))
        cfg.credentials = f"the AWS credentials file (profile {env.get('AWS_PROFILE') or 'default'})" if key_id else \
            "the AWS default chain (web identity, container or instance role)"
        cfg.secrets += [v for v in (key_id, secret, token) if v]
    if key_id and secret:
        options.update({"access_key_id": key_id, "secret_access_key": secret})
        if token:
            options["session_token"] = token
    cfg.secrets += _secret_values(env)
    return cfg


def _connection_parts(conn: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in conn.split(";"):
        if "=" in item:
            key, value = item.split("=", 1)
            parts[key.strip()] = value.strip()
    return parts


def _with_account_path(endpoint: str, account: str) -> str:
    """Azurite (and other path-style Azure endpoints) put the account in the path."""
    parts = urlsplit(endpoint)
    return endpoint if parts.path.strip("/") else f"{endpoint.rstrip('/')}/{account}"


def _account_of(endpoint: str) -> str | None:
    """The storage account a blob endpoint names (a SAS connection string may give only the endpoint):
    `https://ACCOUNT.blob.core.windows.net`, or the first path segment of an emulator's `http://host/ACCOUNT`."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ".blob." in host:
        return host.split(".", 1)[0] or None
    first = parts.path.strip("/").split("/", 1)[0]
    return first or None


def azure(settings: RemoteConfig, loc: RemoteUrl, env: Mapping[str, str]) -> CloudConfig:
    conn = _connection_parts(env.get("AZURE_STORAGE_CONNECTION_STRING", ""))
    lower = {k.lower(): v for k, v in conn.items()}
    options: dict[str, Any] = {"container_name": loc.bucket, "skip_signature": False}
    options.update({key: env[var] for var, key in _AZURE_PASS.items() if env.get(var)})
    emulator = _truthy(env.get("AZURE_STORAGE_USE_EMULATOR")) or _truthy(lower.get("usedevelopmentstorage"))
    account = lower.get("accountname") or env.get("AZURE_STORAGE_ACCOUNT_NAME") or env.get("AZURE_STORAGE_ACCOUNT")
    key = lower.get("accountkey") or env.get("AZURE_STORAGE_ACCOUNT_KEY") or env.get("AZURE_STORAGE_KEY") or \
        env.get("AZURE_STORAGE_ACCESS_KEY")
    sas = lower.get("sharedaccesssignature") or env.get("AZURE_STORAGE_SAS_TOKEN") or env.get("AZURE_STORAGE_SAS_KEY")
    if emulator:
        account, key = account or AZURITE_ACCOUNT, key or AZURITE_KEY
    account = account or _account_of(lower.get("blobendpoint") or settings.endpoint or "")
    if not account:
        raise RemoteError(f"{loc}: no Azure storage account is named", kind="config",
                          hint=f"set {CREDENTIAL_VARS['az']}")
    endpoint = settings.endpoint or lower.get("blobendpoint") or env.get("AZURE_STORAGE_ENDPOINT")
    if emulator:
        endpoint = _with_account_path(endpoint or AZURITE_ENDPOINT, account)
    elif not endpoint:
        protocol = lower.get("defaultendpointsprotocol", "https")
        endpoint = f"{protocol}://{account}.blob.{lower.get('endpointsuffix', 'core.windows.net')}"
    options.update({"account_name": account, "endpoint": endpoint})
    # An http:// endpoint named in the env (a connection string, Azurite) is the user's explicit choice.
    allow_http = settings.allow_http or emulator or _truthy(env.get("AZURE_ALLOW_HTTP")) or \
        (not settings.endpoint and endpoint.startswith("http://"))
    cfg = CloudConfig("az", loc.bucket, loc.prefix, endpoint, options, _client(settings, env, allow_http=allow_http))
    if key:
        options["account_key"] = key
        cfg.credentials = "the Azurite development account" if emulator and key == AZURITE_KEY else \
            "AZURE_STORAGE_CONNECTION_STRING" if "accountkey" in lower else "AZURE_STORAGE_ACCOUNT_KEY"
    elif sas:
        options["sas_key"] = sas.lstrip("?")
        cfg.credentials = "a SAS token"
    elif options.get("client_secret"):
        cfg.credentials = "AZURE_CLIENT_SECRET (service principal)"
    else:
        cfg.credentials = "the Azure default chain (workload or managed identity, Azure CLI)"
    cfg.secrets += _secret_values(env)
    if key and key != AZURITE_KEY:
        cfg.secrets.append(key)
    if sas:
        cfg.secrets.append(sas.lstrip("?"))
    return cfg


def gcs(settings: RemoteConfig, loc: RemoteUrl, env: Mapping[str, str]) -> CloudConfig:
    options: dict[str, Any] = {"bucket": loc.bucket}
    emulator_host = env.get("STORAGE_EMULATOR_HOST")
    endpoint = settings.endpoint or emulator_host or "https://storage.googleapis.com"
    if emulator_host and "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    options["base_url"] = endpoint
    credentials = "the Google default chain (metadata server)"
    if env.get("GOOGLE_SERVICE_ACCOUNT_KEY"):
        options["service_account_key"] = env["GOOGLE_SERVICE_ACCOUNT_KEY"]
        credentials = "GOOGLE_SERVICE_ACCOUNT_KEY"
    elif env.get("GOOGLE_SERVICE_ACCOUNT") or env.get("GOOGLE_SERVICE_ACCOUNT_PATH"):
        options["service_account"] = env.get("GOOGLE_SERVICE_ACCOUNT") or env["GOOGLE_SERVICE_ACCOUNT_PATH"]
        credentials = "GOOGLE_SERVICE_ACCOUNT"
    elif env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        options["application_credentials"] = env["GOOGLE_APPLICATION_CREDENTIALS"]
        credentials = "GOOGLE_APPLICATION_CREDENTIALS"
    elif emulator_host:
        options["skip_signature"] = True
        credentials = "none (STORAGE_EMULATOR_HOST)"
    allow_http = settings.allow_http or bool(emulator_host)
    cfg = CloudConfig("gs", loc.bucket, loc.prefix, endpoint, options, _client(settings, env, allow_http=allow_http),
                      credentials=credentials)
    cfg.secrets += _secret_values(env)
    return cfg


BUILDERS = {"s3": s3, "az": azure, "gs": gcs}


def resolve(settings: RemoteConfig, env: Mapping[str, str]) -> CloudConfig:
    """The obstore configuration for `settings.url`, from `env` only."""
    loc = settings.location
    if loc is None:
        raise RemoteError("no remote is configured", kind="config", hint="set remote.url or CI_CACHE_REMOTE_URL")
    return BUILDERS[loc.scheme](settings, loc, env)
