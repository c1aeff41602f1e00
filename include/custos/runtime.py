"""One place that opens what a duty needs: settings, policy, vault, keys, evidence store.

Entry points (CLI commands, DAG tasks) call ``open_runtime()``; nothing opens a database or
a keyring at import time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from custos import __version__
from custos.policy import Policy, current_policy
from custos.settings import Settings, get_settings


@dataclass
class Runtime:
    settings: Settings
    policy: Policy

    @functools.cached_property
    def engine(self):
        from custos.vault.db import make_engine

        return make_engine(self.settings.vault_url)

    @functools.cached_property
    def keys(self):
        """The key provider, checked against the keyring the vault was initialised with."""
        from custos.crypto.keyring import open_key_provider
        from custos.vault.db import check_keyring

        provider = open_key_provider(self.settings)
        check_keyring(self.engine, provider.keyring_id)
        return provider

    @functools.cached_property
    def evidence(self):
        from custos.evidence import open_evidence_store

        return open_evidence_store(self.settings.evidence_url)

    def evidence_run(self, period: str, dag_id: str, run_id: str):
        from custos.evidence import EvidenceRun, RunRef

        return EvidenceRun(self.evidence, RunRef(period=period, dag_id=dag_id, run_id=run_id))

    def seal(self, period: str, dag_id: str, run_id: str, extra: dict | None = None) -> dict:
        """Seal a run's evidence with the keyring's evidence-signing key."""
        from custos.vault.evidence_index import record_sealed_run

        # self.keys: the provider already checked against the vault's keyring binding.
        key_id, signing_key = self.keys.evidence_signing_key()
        run = self.evidence_run(period, dag_id, run_id)
        self.anchor_access_log(run)
        manifest = run.seal(
            signing_key=signing_key, key_id=key_id, code_version=code_version(), extra=extra
        )
        record_sealed_run(self.engine, self.evidence, run, manifest)
        return manifest

    def anchor_access_log(self, run) -> None:
        """Every DAG run ends with a signed checkpoint of the access log in its evidence:
        once sealed there, no later rewrite of the log (even re-signed) goes unnoticed."""
        from custos.access.audit import open_access_log

        log = open_access_log(self)
        if log.size():
            log.checkpoint()
            log.anchor(run)


def open_runtime() -> Runtime:
    settings = get_settings()
    return Runtime(settings=settings, policy=current_policy())


@functools.cache
def code_version() -> str:
    """Package version plus the git commit when running from a checkout."""
    import subprocess
    from pathlib import Path

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__
