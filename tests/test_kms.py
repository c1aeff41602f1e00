"""The AWS KMS key provider against a real local KMS endpoint (moto's ThreadedMotoServer).

Keys are stored only wrapped by the CMK; encryption contexts hold ids and versions only;
a disabled, refused, unknown or unreachable key gives a clear KeyringError and leaves the
key store exactly as it was; CUSTOS_KEY_PROVIDER=aws-kms runs the whole vault (seed, read,
rotate) with it.
"""

from __future__ import annotations

import base64
import json
import socket
import stat
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from custos.cli import main
from custos.crypto import rotation
from custos.crypto.aead import KEY_BYTES
from custos.crypto.keyring import open_key_provider
from custos.crypto.kms import CONTEXT_KEYS, AwsKmsKeyProvider
from custos.errors import KeyringError
from custos.settings import get_settings

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

REGION = "us-east-1"
BUCKET = "basic/2029-03"


@pytest.fixture(scope="module")
def kms_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture
def kms(kms_endpoint, aws_env):
    return boto3.client("kms", region_name=REGION, endpoint_url=kms_endpoint)


@pytest.fixture
def cmk(kms) -> str:
    return kms.create_key(Description="custos test CMK")["KeyMetadata"]["KeyId"]


def _provider(path: Path, key_id: str, endpoint: str, **options) -> AwsKmsKeyProvider:
    if path.exists():
        return AwsKmsKeyProvider.load(
            path, kms_key_id=key_id, endpoint_url=endpoint, region=REGION, **options
        )
    return AwsKmsKeyProvider.create(
        path, kms_key_id=key_id, endpoint_url=endpoint, region=REGION, **options
    )


def _capture_contexts(provider: AwsKmsKeyProvider) -> list[tuple[str, dict]]:
    """Every KMS request the provider makes, with its EncryptionContext (botocore hook)."""
    seen: list[tuple[str, dict]] = []

    def hook(params, model, **_):
        seen.append((model.name, dict(params.get("EncryptionContext") or {})))

    provider._kms().meta.events.register("provide-client-params.kms.*", hook)
    return seen


def test_round_trip_with_keys_stored_only_wrapped(tmp_path, kms_endpoint, cmk, kms):
    path = tmp_path / "kms-keystore.json"
    provider = _provider(path, cmk, kms_endpoint)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    seen = _capture_contexts(provider)
    first = provider.ensure_bucket_keys([BUCKET, "identity/unassigned"])
    assert {k.version for k in first.values()} == {1}
    assert provider.rotate_bucket(BUCKET) == 2
    reserved = provider.reserve_encryptions({BUCKET: 5, "transaction/2031-12": 2})
    assert reserved[BUCKET].version == 2 and reserved["transaction/2031-12"].version == 1

    # A fresh process (empty cache) unwraps the same keys through KMS.
    again = _provider(path, cmk, kms_endpoint)
    assert again.keyring_id == provider.keyring_id
    assert again.bucket_key(BUCKET, 1) == first[BUCKET].key
    assert again.bucket_key(BUCKET, 2) == reserved[BUCKET].key
    assert again.blind_index_key() == provider.blind_index_key()
    assert len(again.blind_index_key()) == KEY_BYTES
    assert again.evidence_public_key() == provider.evidence_public_key()

    stored = path.read_text()
    raw = json.loads(stored)
    assert raw["kms_key_arn"].endswith(cmk)
    for secret in (
        first[BUCKET].key,
        reserved[BUCKET].key,
        provider.blind_index_key(),
        provider.evidence_signing_key()[1].private_bytes_raw(),
    ):
        assert base64.b64encode(secret).decode() not in stored
        assert secret.hex() not in stored
    versions = raw["bucket_keys"][BUCKET]["versions"]
    assert set(versions["1"]) >= {"wrapped", "created_at", "encryptions"}
    assert "key" not in versions["1"] and versions["2"]["encryptions"] == 5

    # Retiring removes the wrapped key for good.
    assert again.retire(BUCKET, 1) is True
    assert "wrapped" not in json.loads(path.read_text())["bucket_keys"][BUCKET]["versions"]["1"]
    with pytest.raises(KeyringError, match="destroyed"):
        _provider(path, cmk, kms_endpoint).bucket_key(BUCKET, 1)

    # Encryption contexts: ids and versions only, never personal information.
    assert seen, "the hook saw the KMS calls"
    for operation, context in seen:
        if operation in ("Encrypt", "Decrypt", "GenerateDataKey"):
            assert context and set(context) <= CONTEXT_KEYS, (operation, context)
            assert not any("@" in value or " " in value for value in context.values())
    bucket_contexts = [c for op, c in seen if c.get("custos") == "bucket-key"]
    assert {"custos": "bucket-key", "bucket": BUCKET, "version": "2"} in bucket_contexts
    assert all(set(c) == {"custos", "bucket", "version"} for c in bucket_contexts)

    # The context is bound: the wrapped v2 key does not open as v3 or as another bucket.
    blob = base64.b64decode(raw["bucket_keys"][BUCKET]["versions"]["2"]["wrapped"])
    right = {"custos": "bucket-key", "bucket": BUCKET, "version": "2"}
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=right)["Plaintext"] == (
        reserved[BUCKET].key
    )
    for wrong in (right | {"version": "3"}, right | {"bucket": "basic/2029-04"}, {}):
        with pytest.raises(kms.exceptions.InvalidCiphertextException):
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=wrong)


def test_personal_data_never_reaches_an_encryption_context(tmp_path, kms_endpoint, cmk):
    provider = _provider(tmp_path / "ks.json", cmk, kms_endpoint)
    before = provider.path.read_bytes()
    seen = _capture_contexts(provider)
    for bad in ("basic/ada@example.com", "basic/+49 151 2345", "basic/2029-03 Ada"):
        with pytest.raises(KeyringError, match="refusing to send it to AWS KMS"):
            provider.ensure_bucket_keys([bad])
    assert seen == [] and provider.path.read_bytes() == before


def test_disabled_key_is_a_clear_error_and_changes_nothing(tmp_path, kms_endpoint, cmk, kms):
    path = tmp_path / "ks.json"
    _provider(path, cmk, kms_endpoint).ensure_bucket_keys([BUCKET])
    before = path.read_bytes()
    kms.disable_key(KeyId=cmk)
    try:
        provider = _provider(path, cmk, kms_endpoint)  # opening reads the file only
        for action in (
            lambda: provider.ensure_bucket_keys(["basic/2030-01"]),
            lambda: provider.bucket_key(BUCKET, 1),
            lambda: provider.rotate_bucket(BUCKET),
            lambda: provider.blind_index_key(),
        ):
            with pytest.raises(KeyringError) as excinfo:
                action()
            message = str(excinfo.value)
            assert "aws-kms" in message and cmk in message
            assert "Disabled" in message and "enable" in message
            assert "Nothing was changed" in message
        assert path.read_bytes() == before
        with pytest.raises(KeyringError, match="Disabled"):
            _provider(tmp_path / "new.json", cmk, kms_endpoint)
        assert not (tmp_path / "new.json").exists()
    finally:
        kms.enable_key(KeyId=cmk)
    assert _provider(path, cmk, kms_endpoint).bucket_key(BUCKET, 1)  # works again


def test_refused_and_unknown_keys_are_clear_errors(tmp_path, kms_endpoint, kms):
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}],
    }
    refused = kms.create_key(Policy=json.dumps(deny))["KeyMetadata"]["KeyId"]
    with pytest.raises(KeyringError) as excinfo:
        _provider(tmp_path / "a.json", refused, kms_endpoint)
    assert "access denied" in str(excinfo.value) and refused in str(excinfo.value)
    assert "kms:Decrypt" in str(excinfo.value)

    missing = "11111111-2222-3333-4444-555555555555"
    with pytest.raises(KeyringError) as excinfo:
        _provider(tmp_path / "b.json", missing, kms_endpoint)
    assert missing in str(excinfo.value) and "CUSTOS_KMS_KEY_ID" in str(excinfo.value)
    assert not list(tmp_path.iterdir()), "no key store file was written"


def test_a_different_cmk_than_the_key_store_was_made_with_is_refused(
    tmp_path, kms_endpoint, cmk, kms
):
    path = tmp_path / "ks.json"
    _provider(path, cmk, kms_endpoint).ensure_bucket_keys([BUCKET])
    before = path.read_bytes()
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    provider = _provider(path, other, kms_endpoint)
    with pytest.raises(KeyringError, match="was made with KMS key"):
        provider.bucket_key(BUCKET, 1)
    assert path.read_bytes() == before


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_kms_fails_fast_and_changes_nothing(tmp_path, kms_endpoint, cmk):
    path = tmp_path / "ks.json"
    _provider(path, cmk, kms_endpoint).ensure_bucket_keys([BUCKET])
    before = path.read_bytes()
    dead = f"http://127.0.0.1:{_closed_port()}"
    fast = {"connect_timeout": 1, "read_timeout": 2, "max_attempts": 1}
    started = time.monotonic()
    provider = _provider(path, cmk, dead, **fast)
    with pytest.raises(KeyringError) as excinfo:
        provider.reserve_encryptions({"basic/2030-01": 3, BUCKET: 1})
    message = str(excinfo.value)
    assert "unreachable" in message and dead in message and "CUSTOS_KMS_ENDPOINT_URL" in message
    with pytest.raises(KeyringError, match="unreachable"):
        _provider(tmp_path / "new.json", cmk, dead, **fast)
    assert time.monotonic() - started < 10
    assert path.read_bytes() == before and not (tmp_path / "new.json").exists()


def test_missing_credentials_are_a_clear_error(tmp_path, kms_endpoint, cmk, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(KeyringError, match="no AWS credentials"):
        _provider(tmp_path / "ks.json", cmk, kms_endpoint)


def test_aws_kms_runs_the_vault(custos_home, kms_endpoint, cmk, monkeypatch, capsys):
    """CUSTOS_KEY_PROVIDER=aws-kms: create the key store, initialise, seed (with a forked
    worker), read a customer back, rotate, and check the binding of vault and key store."""
    from custos.demo.seed import seed_vault
    from custos.policy import current_policy
    from custos.runtime import open_runtime
    from custos.setup_vault import initialise

    monkeypatch.setenv("CUSTOS_KEY_PROVIDER", "aws-kms")
    monkeypatch.setenv("CUSTOS_KMS_KEY_ID", cmk)
    monkeypatch.setenv("CUSTOS_KMS_ENDPOINT_URL", kms_endpoint)
    monkeypatch.setenv("CUSTOS_KMS_REGION", REGION)
    settings = get_settings()
    assert settings.kms_keystore_path == custos_home / "kms-keystore.json"
    with pytest.raises(KeyringError, match="custos keys init"):
        open_key_provider(settings)
    assert main(["keys", "init", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["created"] is True and made["key_store"] == str(settings.kms_keystore_path)
    assert stat.S_IMODE(settings.kms_keystore_path.stat().st_mode) == 0o600
    created = open_key_provider(settings)
    assert isinstance(created, AwsKmsKeyProvider) and created.keyring_id == made["keyring_id"]
    assert not (custos_home / "keyring.json").exists(), "no local keyring for aws-kms"

    result = initialise(settings, current_policy())
    assert result["keyring_id"] == created.keyring_id
    rt = open_runtime()
    assert isinstance(rt.keys, AwsKmsKeyProvider)
    seed_vault(rt.engine, rt.settings, rt.policy, customers=150, seed=4, workers=1)
    status = rt.keys.status()
    assert status["provider"] == "aws-kms" and status["kms_key"].endswith(cmk)
    with rt.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT customer_id, category, bucket, wrap_version, wrapped_key FROM data_keys")
        ).all()
    assert len(rows) == sum(v["encryptions"] for b in status["buckets"] for v in b["versions"])
    for customer_id, category, bucket, version, wrapped in rows:
        assert len(rt.keys.unwrap_data_key(wrapped, customer_id, category, bucket, version)) == 32

    outcome = rotation.rotate(rt.engine, rt.keys, batch_size=100, grace_seconds=0)
    assert outcome["finished"] and outcome["rewrapped"] == len(rows)
    fresh = open_key_provider(get_settings())
    for customer_id, category, bucket, version, wrapped in rows[:20]:
        with pytest.raises(KeyringError, match="destroyed"):
            fresh.unwrap_data_key(wrapped, customer_id, category, bucket, version)
    with rt.engine.connect() as conn:
        moved = conn.execute(
            text("SELECT customer_id, category, bucket, wrap_version, wrapped_key FROM data_keys")
        ).all()
    assert {r.wrap_version for r in moved} == {2}
    for customer_id, category, bucket, version, wrapped in moved:
        assert len(fresh.unwrap_data_key(wrapped, customer_id, category, bucket, version)) == 32
    # The key store of a vault cannot be silently replaced by a new one.
    kept = settings.kms_keystore_path.with_name("kept.json")
    settings.kms_keystore_path.rename(kept)
    assert main(["keys", "init"]) == 2
    assert f"belongs to keyring {created.keyring_id}" in capsys.readouterr().err
    assert not settings.kms_keystore_path.exists()
    kept.rename(settings.kms_keystore_path)
    assert main(["keys", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["provider"] == "aws-kms"
    rt.engine.dispose()
