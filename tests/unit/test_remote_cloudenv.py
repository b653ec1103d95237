"""Cloud env vars to obstore settings, secrets scrubbed from every message, failures classified."""

from __future__ import annotations

from pathlib import Path

import pytest
from obstore import exceptions as ox

from ci_cache.errors import RemoteError
from ci_cache.remote import cloudenv
from ci_cache.remote.obstore_store import classify
from ci_cache.remote.scrub import MASK, Scrubber
from ci_cache.remote.settings import RemoteConfig

S3 = RemoteConfig(url="s3://bkt/pre")
AZ = RemoteConfig(url="az://cont/pre")
GS = RemoteConfig(url="gs://bkt/pre")


def test_s3_defaults_and_explicit_values_win() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s3cr3t!", "AWS_REGION": "eu-west-1"}
    cfg = cloudenv.resolve(S3, env)
    assert cfg.options["endpoint"] == cfg.options["aws_endpoint_url_s3"] == "https://s3.eu-west-1.amazonaws.com"
    assert cfg.options["region"] == "eu-west-1" and cfg.options["skip_signature"] is False
    assert cfg.options["access_key_id"] == "AKIA1" and cfg.credentials == "AWS_ACCESS_KEY_ID"
    assert cfg.client["allow_http"] is False and "s3cr3t!" in cfg.secrets
    assert cfg.where() == "s3://bkt/pre at https://s3.eu-west-1.amazonaws.com"
    custom = RemoteConfig(url="s3://bkt", endpoint="http://10.0.0.5:9000", allow_http=True, region="x",
                          virtual_hosted=True)
    cfg = cloudenv.resolve(custom, {})
    assert cfg.options["endpoint"] == "http://bkt.10.0.0.5:9000" and cfg.client["allow_http"] is True
    assert "default chain" in cfg.credentials


def test_s3_endpoint_from_env_and_http_allowed_when_named_there() -> None:
    cfg = cloudenv.resolve(S3, {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert cfg.options["endpoint"] == "http://127.0.0.1:9000" and cfg.client["allow_http"] is True


def test_s3_shared_credentials_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = defsecret\n"
                     "[ci]\naws_access_key_id = AKIACI\naws_secret_access_key = cisecret\naws_session_token = citok\n")
    cfg = cloudenv.resolve(S3, {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_PROFILE": "ci"})
    assert (cfg.options["access_key_id"], cfg.options["session_token"]) == ("AKIACI", "citok")
    assert "profile ci" in cfg.credentials and {"cisecret", "citok"} <= set(cfg.secrets)
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(creds.read_text())
    assert cloudenv.resolve(S3, {"HOME": str(tmp_path)}).options["access_key_id"] == "AKIADEF"
    creds.write_text("[default\nbroken")
    with pytest.raises(RemoteError, match="cannot read the AWS credentials file") as caught:
        cloudenv.resolve(S3, {"AWS_SHARED_CREDENTIALS_FILE": str(creds)})
    assert caught.value.kind == "config"


def test_azure_connection_string_emulator_and_sas() -> None:
    conn = ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=S0meKey==;EndpointSuffix=core.windows.net")
    cfg = cloudenv.resolve(AZ, {"AZURE_STORAGE_CONNECTION_STRING": conn})
    assert cfg.options["account_name"] == "acct" and cfg.options["account_key"] == "S0meKey=="
    assert cfg.endpoint == "https://acct.blob.core.windows.net" and cfg.options["container_name"] == "cont"
    assert {conn, "S0meKey=="} <= set(cfg.secrets)
    emu = cloudenv.resolve(RemoteConfig(url="az://cont", endpoint="http://127.0.0.1:10001", allow_http=True),
                           {"AZURE_STORAGE_USE_EMULATOR": "true"})
    assert emu.endpoint == "http://127.0.0.1:10001/devstoreaccount1" and emu.client["allow_http"] is True
    assert emu.options["account_key"] == cloudenv.AZURITE_KEY
    dev = cloudenv.resolve(AZ, {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
    assert dev.endpoint == "http://127.0.0.1:10000/devstoreaccount1"
    sas = cloudenv.resolve(AZ, {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_SAS_TOKEN": "?sv=1&sig=abcd%2B"})
    assert sas.options["sas_key"] == "sv=1&sig=abcd%2B" and sas.credentials == "a SAS token"
    assert "sv=1&sig=abcd%2B" in sas.secrets


def test_azure_without_an_account_says_what_to_set() -> None:
    with pytest.raises(RemoteError, match="AZURE_STORAGE_CONNECTION_STRING") as caught:
        cloudenv.resolve(AZ, {})
    assert caught.value.kind == "config"


def test_gcs_settings() -> None:
    key = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----"}'
    cfg = cloudenv.resolve(GS, {"GOOGLE_SERVICE_ACCOUNT_KEY": key})
    assert cfg.options["service_account_key"] == key and cfg.options["base_url"] == "https://storage.googleapis.com"
    assert key in cfg.secrets and any("MIIE" in s for s in cfg.secrets)
    emu = cloudenv.resolve(GS, {"STORAGE_EMULATOR_HOST": "127.0.0.1:4443"})
    assert emu.options["base_url"] == "http://127.0.0.1:4443" and emu.options["skip_signature"] is True
    assert emu.client["allow_http"] is True
    adc = cloudenv.resolve(GS, {"GOOGLE_APPLICATION_CREDENTIALS": "/etc/sa.json"})
    assert adc.options["application_credentials"] == "/etc/sa.json"


def test_no_remote_configured() -> None:
    with pytest.raises(RemoteError, match="no remote is configured"):
        cloudenv.resolve(RemoteConfig(), {})


def test_scrubber_masks_values_and_signature_shapes() -> None:
    scrub = Scrubber(["my/secret+key=", "abc"])  # "abc" is too short to mask safely
    text = ("GET https://h/b/k?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA%2F2026&sig=zz%3D&sv=2022 "
            "key my/secret+key= or my%2Fsecret%2Bkey%3D Authorization: Bearer eyJhbGc Credential=AKIA/x, "
            "AccountKey=Zm9v;SharedAccessSignature=sv=1&sig=2 SharedKey acct:c2ln abc "
            '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE"}')
    out = scrub(text)
    for leaked in ("deadbeef", "AKIA%2F2026", "zz%3D", "my/secret+key=", "my%2Fsecret%2Bkey%3D", "eyJhbGc",
                   "AKIA/x", "Zm9v", "c2ln", "MIIE"):
        assert leaked not in out, leaked
    assert "X-Amz-Signature=" + MASK in out and "sv=2022" in out and "abc" in out


def _classify(exc: BaseException) -> RemoteError:
    return classify(exc, op="get", key="k", where="s3://b/p at https://h", scrub=Scrubber(["SECRETVALUE"]),
                    creds="AWS_ACCESS_KEY_ID")


@pytest.mark.parametrize(("exc", "kind"), [
    (FileNotFoundError("Object at location k not found"), "not_found"),
    (ox.AlreadyExistsError("Object at location k already exists: 412 Precondition Failed"), "conflict"),
    (ox.PreconditionError("Request precondition failure"), "conflict"),
    (ox.PermissionDeniedError("The operation lacked the necessary privileges SECRETVALUE"), "forbidden"),
    (ox.UnauthenticatedError("no credentials"), "forbidden"),
    (ox.GenericError("Error performing GET - Server returned non-2xx status code: 503 Service Unavailable"),
     "server"),
    (ox.GenericError("Error: error sending request\n\nDebug source:\nHttpError {\n kind: Connect,\n"
                     ' message: "Connection refused"'), "unreachable"),
    (ox.GenericError("error sending request\n\nDebug source:\n retry_timeout: 3s HttpError {\n kind: Timeout,"),
     "timeout"),
    (ox.GenericError("error sending request\n\nDebug source:\nHttpError {\n kind: Unknown, Parse(Version)"),
     "garbage"),
    (ox.GenericError("HTTP error: builder error"), "config"),
    (ValueError("something odd"), "garbage"),
])
def test_classify(exc: BaseException, kind: str) -> None:
    error = _classify(exc)
    assert error.kind == kind
    assert "SECRETVALUE" not in str(error) and "\n" not in error.message
    assert "'k'" in error.message and "s3://b/p at https://h" in error.message
    if kind == "forbidden":
        assert "AWS_ACCESS_KEY_ID" in str(error)


def test_every_scheme_opens_without_a_request() -> None:
    """Stores are built lazily: opening one sends nothing, so a dead endpoint costs nothing until used."""
    from ci_cache.remote.obstore_store import open_store

    envs = {"s3": {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
            "az": {"AZURE_STORAGE_USE_EMULATOR": "1"}, "gs": {"STORAGE_EMULATOR_HOST": "127.0.0.1:9"}}
    for settings in (S3, AZ, GS):
        assert settings.location is not None
        store = open_store(settings, envs[settings.location.scheme], request_timeout=5)
        assert store.where.startswith(f"{settings.location}")


def test_a_sas_connection_string_names_its_account_by_its_endpoint() -> None:
    conn = "BlobEndpoint=https://acct7.blob.core.windows.net/;SharedAccessSignature=sv=2022&sig=c2lnbmF0dXJl"
    cfg = cloudenv.resolve(AZ, {"AZURE_STORAGE_CONNECTION_STRING": conn})
    assert cfg.options["account_name"] == "acct7" and cfg.options["sas_key"] == "sv=2022&sig=c2lnbmF0dXJl"
    emulator = cloudenv.resolve(AZ, {"AZURE_STORAGE_CONNECTION_STRING": "BlobEndpoint=http://127.0.0.1:1/dev9;"
                                     "SharedAccessSignature=sv=1&sig=abcd"})
    assert emulator.options["account_name"] == "dev9"
    with pytest.raises(RemoteError, match="no Azure storage account"):
        cloudenv.resolve(AZ, {"AZURE_STORAGE_CONNECTION_STRING": "BlobEndpoint=http://127.0.0.1:1/;"
                              "SharedAccessSignature=sv=1&sig=abcd"})
