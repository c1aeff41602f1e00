"""AWS KMS key provider (CUSTOS_KEY_PROVIDER=aws-kms).

The same key hierarchy as the local keyring, but no key Custos holds is ever stored in the
clear: the blind-index key, the evidence-signing key and every bucket-key version are kept
in a key-store file (``CUSTOS_HOME/kms-keystore.json``, mode 0600, or CUSTOS_KMS_KEYSTORE)
only in the form the KMS key (CMK, ``CUSTOS_KMS_KEY_ID``) wrapped them in. Bucket keys and
the blind-index key are made by KMS ``GenerateDataKey``; the Ed25519 signing key is made
locally and wrapped with ``Encrypt``. Unwrapped keys are cached in memory per process.

Every wrap is bound to an encryption context of ids and versions only, e.g.
``{"custos": "bucket-key", "bucket": "basic/2029-03", "version": "2"}`` — never personal
information (bucket ids are checked to be ``<category>/<YYYY-MM>`` or
``<category>/unassigned``). KMS logs the context in CloudTrail in the clear.

Failures are ``KeyringError`` naming the provider, the key and what to check; a change to
the key store is written (atomically) only after KMS has done its part, so an unreachable
or refusing KMS changes nothing. The IAM principal needs kms:DescribeKey, kms:Encrypt,
kms:Decrypt and kms:GenerateDataKey on the key.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custos.crypto.keyring import FileKeyStore, _b64, _now, _unb64
from custos.errors import KeyringError

KEYSTORE_FORMAT = "custos-kms-keystore/1"
# The only keys an encryption context may have; values are ids and numbers.
CONTEXT_KEYS = frozenset({"custos", "bucket", "version", "keyring", "key_id"})
_BUCKET_ID = re.compile(r"[a-z][a-z_]{0,31}/(?:\d{4}-\d{2}|unassigned)")
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_./-]{1,64}")


def bucket_key_context(bucket_id: str, version: int) -> dict[str, str]:
    if not _BUCKET_ID.fullmatch(bucket_id):
        raise KeyringError(
            f"bucket id {bucket_id!r} is not <category>/<YYYY-MM> or <category>/unassigned; "
            "refusing to send it to AWS KMS as encryption context"
        )
    return {"custos": "bucket-key", "bucket": bucket_id, "version": str(int(version))}


def _checked_context(context: dict[str, str]) -> dict[str, str]:
    """Encryption contexts are logged by KMS in the clear: ids and versions only."""
    for key, value in context.items():
        if key not in CONTEXT_KEYS or not _SAFE_VALUE.fullmatch(value):
            raise KeyringError(f"encryption context entry {key!r} is not an id; not sent")
    return context


class AwsKmsKeyProvider(FileKeyStore):
    FORMATS_READ = (KEYSTORE_FORMAT,)
    WHAT = "AWS KMS key store"
    provider_name = "aws-kms"

    def __init__(
        self,
        path: Path,
        data: dict,
        *,
        kms_key_id: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
        max_encryptions: int | None = None,
    ) -> None:
        super().__init__(path, data, max_encryptions=max_encryptions)
        self.kms_key_id = kms_key_id or data.get("kms_key_arn")
        if not self.kms_key_id:
            raise KeyringError(
                "AWS KMS key provider: no KMS key; set CUSTOS_KMS_KEY_ID to the key id, ARN "
                "or alias of the symmetric KMS key that wraps Custos' keys"
            )
        arn_region = self.kms_key_id.split(":")[3] if self.kms_key_id.startswith("arn:") else None
        self.region = region or arn_region
        self.endpoint_url = endpoint_url
        self._client_config = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "retries": {"max_attempts": max_attempts, "mode": "standard"},
        }
        self._client = None
        self._client_pid: int | None = None
        self._checked_pid: int | None = None
        self._arn: str | None = None
        self._secrets: dict[str, object] = {}

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings, *, create: bool = False) -> AwsKmsKeyProvider:
        path = settings.kms_keystore_path or settings.keyring_path.with_name("kms-keystore.json")
        options = {
            "kms_key_id": settings.kms_key_id,
            "region": settings.kms_region,
            "endpoint_url": settings.kms_endpoint_url,
            "max_encryptions": settings.key_max_encryptions,
        }
        if not Path(path).exists():
            if create:
                return cls.create(path, **options)
            raise KeyringError(
                f"{path}: AWS KMS key store not found. Create one with `custos keys init` "
                "(CUSTOS_KEY_PROVIDER=aws-kms, CUSTOS_KMS_KEY_ID set), then `custos init`; or "
                "set CUSTOS_KMS_KEYSTORE to the key store this vault was created with."
            )
        return cls.load(path, **options)

    @classmethod
    def load(cls, path: Path, **options) -> AwsKmsKeyProvider:
        path = Path(path)
        if not path.exists():
            raise KeyringError(f"{path}: AWS KMS key store not found")
        data, signature = cls._read_signed(path)
        provider = cls(path, data, **options)
        provider._signature = signature
        return provider

    @classmethod
    def create(cls, path: Path, *, kms_key_id: str | None, **options) -> AwsKmsKeyProvider:
        """A new key store: KMS generates and wraps the keys first; the file is written
        (exclusively, atomically) only when every KMS call has succeeded."""
        path = Path(path)
        if path.exists():
            raise KeyringError(f"{path}: a key store already exists; refusing to overwrite it")
        data = {
            "format": KEYSTORE_FORMAT,
            "keyring_id": "kr-" + secrets.token_hex(8),
            "created_at": _now(),
            "kms_key_arn": None,
            "blind_index_key": {},
            "evidence_signing_key": {"id": "ev-" + secrets.token_hex(4)},
            "bucket_keys": {},
            "destroyed_buckets": {},
        }
        provider = cls(path, data, kms_key_id=kms_key_id, **options)
        data["kms_key_arn"] = provider._check_key()
        blind = provider._call(
            "generate_data_key",
            "generate the blind-index key",
            KeyId=data["kms_key_arn"],
            KeySpec="AES_256",
            EncryptionContext=provider._blind_index_context(),
        )
        data["blind_index_key"]["wrapped"] = _b64(blind["CiphertextBlob"])
        signing = Ed25519PrivateKey.generate()
        wrapped = provider._call(
            "encrypt",
            "wrap the evidence-signing key",
            KeyId=data["kms_key_arn"],
            Plaintext=signing.private_bytes_raw(),
            EncryptionContext=provider._signing_context(),
        )
        data["evidence_signing_key"]["wrapped"] = _b64(wrapped["CiphertextBlob"])
        # Unwrap once before writing anything: proves kms:Decrypt works with this key.
        provider._secrets.clear()
        if provider.blind_index_key() != blind["Plaintext"]:
            raise KeyringError("AWS KMS returned a different blind-index key on unwrap")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            cls._write_file(path, data, exclusive=True)
        except FileExistsError:
            raise KeyringError(
                f"{path}: a key store already exists; refusing to overwrite it"
            ) from None
        return provider

    # -- KMS calls ------------------------------------------------------------------------
    def _kms(self):
        """The boto3 KMS client, one per process (a forked worker makes its own)."""
        if self._client is None or self._client_pid != os.getpid():
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError

            try:
                self._client = boto3.session.Session().client(
                    "kms",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=Config(**self._client_config),
                )
            except BotoCoreError as exc:
                raise self._error("connect", exc) from None
            self._client_pid = os.getpid()
        return self._client

    def _where(self) -> str:
        endpoint, region = self.endpoint_url, self.region
        if self._client is not None:
            endpoint = endpoint or self._client.meta.endpoint_url
            region = region or self._client.meta.region_name
        region = region or "not set"
        return f"AWS KMS ({endpoint or 'default endpoint'}, region {region})"

    def _error(self, action: str, exc: Exception) -> KeyringError:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        key = self.kms_key_id
        prefix = f"key provider aws-kms (KMS key {key}): cannot {action}"
        tail = "Nothing was changed."
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            hints = {
                "AccessDeniedException": (
                    "access denied. Check the key policy and IAM permissions of these AWS "
                    "credentials (kms:DescribeKey, kms:Encrypt, kms:Decrypt, "
                    "kms:GenerateDataKey)."
                ),
                "DisabledException": "the key is disabled. Enable it (aws kms enable-key).",
                "KMSInvalidStateException": (
                    "the key is not usable (disabled or pending deletion). Enable it or "
                    "cancel its deletion."
                ),
                "NotFoundException": (
                    f"no such key in {self._where()}. Check CUSTOS_KMS_KEY_ID and the region."
                ),
                "InvalidCiphertextException": (
                    f"KMS refused to unwrap it: the entry in {self.path} was altered, belongs "
                    "to another KMS key, or its encryption context does not match."
                ),
                "IncorrectKeyException": (
                    f"the entry in {self.path} was wrapped by another KMS key."
                ),
                "UnrecognizedClientException": (
                    "the AWS credentials are not valid. Check AWS_ACCESS_KEY_ID / profile."
                ),
                "InvalidSignatureException": (
                    "the AWS credentials are not valid. Check AWS_SECRET_ACCESS_KEY / profile."
                ),
                "ExpiredTokenException": "the AWS session token has expired. Refresh it.",
            }
            hint = hints.get(code, f"KMS answered {code}.")
            return KeyringError(f"{prefix}: {hint} {tail}")
        unreachable = (
            EndpointConnectionError,
            ConnectTimeoutError,
            ReadTimeoutError,
            ConnectionClosedError,
        )
        if isinstance(exc, unreachable):
            return KeyringError(
                f"{prefix}: {self._where()} is unreachable ({type(exc).__name__}). Check the "
                f"network, CUSTOS_KMS_ENDPOINT_URL and CUSTOS_KMS_REGION. {tail}"
            )
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return KeyringError(
                f"{prefix}: no AWS credentials found. Set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                f"AWS_SECRET_ACCESS_KEY, or run with an instance/task role. {tail}"
            )
        if isinstance(exc, NoRegionError):
            return KeyringError(
                f"{prefix}: no AWS region. Set CUSTOS_KMS_REGION (or AWS_REGION), or use the "
                f"key's ARN as CUSTOS_KMS_KEY_ID. {tail}"
            )
        return KeyringError(f"{prefix}: {type(exc).__name__}. {tail}")

    def _call(self, operation: str, action: str, **params) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        if "EncryptionContext" in params:
            _checked_context(params["EncryptionContext"])
        client = self._kms()
        try:
            return getattr(client, operation)(**params)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(action, exc) from None

    def _check_key(self) -> str:
        """Once per process: the key exists, is enabled, is a symmetric encryption key, and
        is the one this key store was made with. Returns its ARN."""
        if self._checked_pid == os.getpid() and self._arn:
            return self._arn
        meta = self._call("describe_key", "look up the key", KeyId=self.kms_key_id)["KeyMetadata"]
        state = meta.get("KeyState", "Unknown")
        if state != "Enabled" or not meta.get("Enabled", False):
            raise KeyringError(
                f"key provider aws-kms (KMS key {self.kms_key_id}): the key is {state}; "
                "Custos cannot wrap or unwrap keys with it. Enable it (aws kms enable-key) or "
                "cancel its deletion. Nothing was changed."
            )
        if (
            meta.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT"
            or meta.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT"
        ):
            raise KeyringError(
                f"key provider aws-kms: KMS key {self.kms_key_id} is not a symmetric "
                "encryption key (KeySpec SYMMETRIC_DEFAULT, KeyUsage ENCRYPT_DECRYPT)"
            )
        stored = self._data.get("kms_key_arn")
        if stored and meta["Arn"] != stored:
            raise KeyringError(
                f"key provider aws-kms: {self.path} was made with KMS key {stored}, but "
                f"CUSTOS_KMS_KEY_ID names {meta['Arn']}; set CUSTOS_KMS_KEY_ID to the key "
                "store's key. Nothing was changed."
            )
        self._arn, self._checked_pid = meta["Arn"], os.getpid()
        return self._arn

    def _unwrap(self, wrapped_b64: str, context: dict[str, str], what: str) -> bytes:
        arn = self._check_key()
        return self._call(
            "decrypt",
            f"unwrap {what}",
            CiphertextBlob=_unb64(wrapped_b64),
            KeyId=arn,
            EncryptionContext=context,
        )["Plaintext"]

    def _blind_index_context(self) -> dict[str, str]:
        return {"custos": "blind-index-key", "keyring": self.keyring_id}

    def _signing_context(self) -> dict[str, str]:
        key_id = self._data["evidence_signing_key"]["id"]
        return {"custos": "evidence-signing-key", "key_id": key_id}

    # -- key material ---------------------------------------------------------------------
    def blind_index_key(self) -> bytes:
        if "blind" not in self._secrets:
            self._secrets["blind"] = self._unwrap(
                self._data["blind_index_key"]["wrapped"],
                self._blind_index_context(),
                "the blind-index key",
            )
        return self._secrets["blind"]

    def evidence_signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        entry = self._data["evidence_signing_key"]
        if "signing" not in self._secrets:
            raw = self._unwrap(entry["wrapped"], self._signing_context(), "the signing key")
            self._secrets["signing"] = Ed25519PrivateKey.from_private_bytes(raw)
        return entry["id"], self._secrets["signing"]

    def _seal_new_key(self, bucket_id: str, version: int) -> tuple[dict, bytes]:
        context = bucket_key_context(bucket_id, version)
        answer = self._call(
            "generate_data_key",
            f"generate bucket key {bucket_id} v{version}",
            KeyId=self._check_key(),
            KeySpec="AES_256",
            EncryptionContext=context,
        )
        return {"wrapped": _b64(answer["CiphertextBlob"])}, answer["Plaintext"]

    def _unseal_key(self, bucket_id: str, version: int, entry: dict) -> bytes:
        return self._unwrap(
            entry["wrapped"],
            bucket_key_context(bucket_id, version),
            f"bucket key {bucket_id} v{version}",
        )

    def status(self, bucket_ids=None) -> dict:
        kms_key = self._data.get("kms_key_arn") or self.kms_key_id
        return super().status(bucket_ids) | {"kms_key": kms_key}
