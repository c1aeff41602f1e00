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
_PACKAGE_POLICY_DIR = Path(__file__).resolve().parents[1] / "policy"


@dataclass(frozen=True)
class Settings:
    home: Path
    vault_url: str
    evidence_url: str
    key_provider: str
    keyring_path: Path
    policy_dir: Path

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
    return Settings(
        home=home,
        vault_url=env.get("CUSTOS_VAULT_URL") or f"sqlite:///{home / 'vault.db'}",
        evidence_url=env.get("CUSTOS_EVIDENCE_URL") or f"file://{home / 'evidence'}",
        key_provider=key_provider,
        keyring_path=Path(env.get("CUSTOS_KEYRING", str(home / "keyring.json")))
        .expanduser()
        .resolve(),
        policy_dir=policy_dir,
    )
