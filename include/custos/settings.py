"""Settings from environment variables, with defaults that give the embedded setup.

Read at call time (not import time) so tests and Airflow tasks that change the
environment get what they set. Relative paths are resolved against the working
directory at the moment of reading; ``make run`` exports absolute ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from custos.errors import ConfigError

KEY_PROVIDERS = ("local", "aws-kms")
# AES-GCM with random 96-bit nonces: NIST SP 800-38D (8.3) allows at most 2**32 encryptions
# per key. Bucket keys rotate automatically well below that (CUSTOS_KEY_MAX_ENCRYPTIONS).
AES_GCM_RANDOM_NONCE_LIMIT = 2**32
DEFAULT_KEY_MAX_ENCRYPTIONS = 2**30
_PACKAGE_POLICY_DIR = Path(__file__).resolve().parents[1] / "policy"


@dataclass(frozen=True)
class Settings:
    home: Path
    vault_url: str
    evidence_url: str
    key_provider: str
    keyring_path: Path
    policy_dir: Path
    # Encryptions one bucket-key version may perform before a new primary replaces it.
    key_max_encryptions: int = DEFAULT_KEY_MAX_ENCRYPTIONS
    # AWS KMS (CUSTOS_KEY_PROVIDER=aws-kms): the CMK that wraps every key Custos holds, and
    # the key-store file that keeps them, wrapped only. Region and endpoint default to
    # boto3's own resolution (AWS_REGION, AWS_ENDPOINT_URL_KMS, ...).
    kms_key_id: str | None = None
    kms_keystore_path: Path | None = None
    kms_region: str | None = None
    kms_endpoint_url: str | None = None
    # Where platform exports land (a folder per batch); file:// only for now.
    landing_url: str = ""

    @property
    def landing_root(self) -> Path:
        """The landing folder (``CUSTOS_LANDING_URL``, default ``$CUSTOS_HOME/landing``)."""
        url = self.landing_url or f"file://{self.home / 'landing'}"
        if not url.startswith("file://"):
            raise ConfigError(
                f"CUSTOS_LANDING_URL={url!r}: only file:// landing folders are supported yet"
            )
        return Path(url.removeprefix("file://")).expanduser().resolve()

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"


def get_settings() -> Settings:
    env = os.environ
    home = Path(env.get("CUSTOS_HOME", ".custos")).expanduser().resolve()
    key_provider = env.get("CUSTOS_KEY_PROVIDER", "local")
    if key_provider not in KEY_PROVIDERS:
        raise ConfigError(
            f"CUSTOS_KEY_PROVIDER={key_provider!r} is not a known key provider; "
            f"use one of {', '.join(KEY_PROVIDERS)}"
        )
    policy_dir = (
        Path(env["CUSTOS_POLICY_DIR"]).expanduser().resolve()
        if env.get("CUSTOS_POLICY_DIR")
        else _PACKAGE_POLICY_DIR
    )
    keyring_path = (
        Path(env.get("CUSTOS_KEYRING", str(home / "keyring.json"))).expanduser().resolve()
    )
    return Settings(
        home=home,
        vault_url=env.get("CUSTOS_VAULT_URL") or f"sqlite:///{home / 'vault.db'}",
        evidence_url=env.get("CUSTOS_EVIDENCE_URL") or f"file://{home / 'evidence'}",
        key_provider=key_provider,
        keyring_path=keyring_path,
        policy_dir=policy_dir,
        key_max_encryptions=_max_encryptions(env.get("CUSTOS_KEY_MAX_ENCRYPTIONS")),
        kms_key_id=env.get("CUSTOS_KMS_KEY_ID") or None,
        kms_keystore_path=(
            Path(env["CUSTOS_KMS_KEYSTORE"]).expanduser().resolve()
            if env.get("CUSTOS_KMS_KEYSTORE")
            else keyring_path.with_name("kms-keystore.json")
        ),
        kms_region=env.get("CUSTOS_KMS_REGION") or None,
        kms_endpoint_url=env.get("CUSTOS_KMS_ENDPOINT_URL") or None,
        landing_url=env.get("CUSTOS_LANDING_URL") or f"file://{home / 'landing'}",
    )


def _max_encryptions(raw: str | None) -> int:
    if not raw:
        return DEFAULT_KEY_MAX_ENCRYPTIONS
    try:
        value = int(raw.replace("_", ""), 0)
    except ValueError:
        value = 0
    if not 1 <= value <= AES_GCM_RANDOM_NONCE_LIMIT:
        raise ConfigError(
            f"CUSTOS_KEY_MAX_ENCRYPTIONS={raw!r}: must be a whole number from 1 to 2**32 "
            f"({AES_GCM_RANDOM_NONCE_LIMIT}, NIST's limit for AES-GCM with random nonces); "
            f"default {DEFAULT_KEY_MAX_ENCRYPTIONS}"
        )
    return value
