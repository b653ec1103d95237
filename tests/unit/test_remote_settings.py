"""The `remote:` settings: URLs, endpoints, push policy, and credentials that are refused unseen."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ci_cache.remote.settings import RemoteConfig, RemoteUrl, parse_url
from ci_cache.schema import ValidationError


@pytest.mark.parametrize(("url", "expected"), [
    ("s3://my-bucket/team/ci-cache", RemoteUrl("s3", "my-bucket", "team/ci-cache")),
    ("s3://my.bucket", RemoteUrl("s3", "my.bucket", "")),
    ("S3://bkt/a/", RemoteUrl("s3", "bkt", "a")),
    ("az://cache-container/fleet", RemoteUrl("az", "cache-container", "fleet")),
    ("gs://gcs_bucket.example/x/y", RemoteUrl("gs", "gcs_bucket.example", "x/y")),
])
def test_valid_urls(url: str, expected: RemoteUrl) -> None:
    assert parse_url(url) == expected
    assert RemoteConfig(url=url).location == expected


@pytest.mark.parametrize(("url", "says"), [
    ("bucket/prefix", "write s3://BUCKET/PREFIX, az://CONTAINER/PREFIX or gs://BUCKET/PREFIX"),
    ("ftp://bucket/x", "unsupported scheme ftp://"),
    ("s3a://bucket/x", "write s3://bucket/x"),
    ("azure://cont/x", "write az://cont/x"),
    ("https://s3.example.com/bucket", "`remote.endpoint`"),
    ("s3://Bad_Bucket/x", "not a valid bucket name"),
    ("az://a--b/x", "not a valid container name"),
    ("s3://bucket/../x", "segment '..' is not allowed"),
    ("s3://bucket/a b", "segment 'a b' is not allowed"),
    ("s3://bucket:9000/x", "ports do not belong in the URL"),
])
def test_invalid_urls_name_the_key_and_say_what_to_write(url: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RemoteConfig(url=url)
    errors = caught.value.errors()
    assert errors[0]["loc"] == ("url",)
    assert says in errors[0]["msg"]


def test_unset_or_empty_url_means_no_remote() -> None:
    assert RemoteConfig().location is None
    assert RemoteConfig(url="  ").url is None


def test_http_endpoint_needs_allow_http() -> None:
    with pytest.raises(ValidationError, match="allow_http: true"):
        RemoteConfig(url="s3://bkt/p", endpoint="http://127.0.0.1:9000")
    assert RemoteConfig(url="s3://bkt/p", endpoint="http://127.0.0.1:9000/", allow_http=True).endpoint == \
        "http://127.0.0.1:9000"
    with pytest.raises(ValidationError, match=r"http\(s\)://HOST"):
        RemoteConfig(url="s3://bkt/p", endpoint="minio:9000")


def test_push_follows_the_merge_policy_unless_set() -> None:
    assert RemoteConfig().resolved_push("protected") == "protected"
    assert RemoteConfig(push="never").resolved_push("always") == "never"
    with pytest.raises(ValidationError):
        RemoteConfig.model_validate({"push": "sometimes"})


SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize("key", ["secret_access_key", "access_key_id", "account_key", "sas_token", "password",
                                 "connection_string", "aws_session_token"])
def test_credential_keys_are_refused_without_echoing_them(key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RemoteConfig.model_validate({"url": "s3://bkt/p", key: SECRET})
    text = str(caught.value) + repr(caught.value.errors())
    assert SECRET not in text
    assert "never read from ci-cache.yml" in text and "AWS_ACCESS_KEY_ID" in text
    assert caught.value.errors()[0]["loc"] == (key,)


@pytest.mark.parametrize(("field", "value"), [
    ("url", f"s3://AKIA:{SECRET}@bucket/p"),
    ("endpoint", f"https://user:{SECRET}@minio.example.com"),
    ("endpoint", f"https://acct.blob.core.windows.net/?sv=2022&sig={SECRET}"),
    ("proxy", f"http://me:{SECRET}@proxy:3128"),
])
def test_credentials_in_urls_are_refused_without_echoing_them(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RemoteConfig.model_validate({"url": "s3://bkt/p", field: value})
    text = str(caught.value) + repr(caught.value.errors())
    assert SECRET not in text
    assert "do not belong" in text


def test_bounds() -> None:
    with pytest.raises(ValidationError):
        RemoteConfig(pull_budget=0)
    with pytest.raises(ValidationError):
        RemoteConfig(concurrency=0)
    with pytest.raises(ValidationError, match="extra"):
        RemoteConfig.model_validate({"urll": "s3://bkt/p"})


@pytest.mark.spawns
def test_settings_and_layout_do_not_import_obstore() -> None:
    """ci-cache's import time matters: obstore loads only when a remote store is opened."""
    code = ("import sys, ci_cache.remote.settings, ci_cache.remote.cas, ci_cache.remote.ops, "
            "ci_cache.remote.archive, ci_cache.remote.transfer, ci_cache.remote.obstore_store; "
            "print('obstore' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_budgets_timeouts_and_sizes_are_written_like_every_duration_and_size() -> None:
    remote = RemoteConfig.model_validate({"pull_budget": "45s", "push_budget": "2m", "connect_timeout": "250ms",
                                          "gc_grace": "1d", "max_blob_size": "1GiB", "keep_days": "14"})
    assert (remote.pull_budget, remote.push_budget, remote.connect_timeout) == (45.0, 120.0, 0.25)
    assert (remote.gc_grace, remote.max_blob_size, remote.keep_days) == (86400.0, 1 << 30, 14)
    assert RemoteConfig(pull_budget=12).pull_budget == 12.0
    for bad in ({"pull_budget": "soon"}, {"push_budget": "11m"}, {"connect_timeout": "2m"}, {"gc_grace": "-1h"},
                {"max_blob_size": "lots"}):
        with pytest.raises(ValidationError) as caught:
            RemoteConfig.model_validate(bad)
        assert caught.value.errors()[0]["loc"] == tuple(bad)


def test_a_secret_given_to_the_constructor_is_refused_unseen_too() -> None:
    with pytest.raises(ValidationError) as caught:
        RemoteConfig(url=f"s3a://AKIA:{SECRET}@bucket/p")
    assert SECRET not in str(caught.value) + repr(caught.value.errors())
    assert caught.value.errors()[0]["loc"] == ("url",)
