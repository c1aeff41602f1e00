"""``custos init``: the keyring (if absent), the vault schema, and the binding of the two."""

from __future__ import annotations

from custos.crypto.keyring import LocalKeyring, open_key_provider
from custos.vault.db import bind_keyring, make_engine, migrate, schema_revision, sync_departments


def initialise(settings, policy) -> dict:
    """Idempotent: safe to run on every `make run`."""
    created_keyring = False
    if settings.key_provider == "local" and not settings.keyring_path.exists():
        from sqlalchemy import inspect

        engine = make_engine(settings.vault_url)
        try:
            vault_exists = "vault_meta" in inspect(engine).get_table_names()
        finally:
            engine.dispose()
        if vault_exists:
            from custos.errors import KeyringError

            # A vault exists but its keyring is gone: a new keyring would not open it.
            raise KeyringError(
                f"{settings.keyring_path}: keyring missing for an existing vault; restore the "
                "keyring file (or CUSTOS_KEYRING) instead of creating a new one"
            )
        LocalKeyring.create(settings.keyring_path)
        created_keyring = True
    if settings.key_provider != "local":
        # AWS KMS: create the key store of KMS-wrapped keys on first use, never beside a
        # vault that already belongs to another one (bind_keyring below refuses that).
        provider = open_key_provider(settings, create=True)
    else:
        provider = open_key_provider(settings)
    engine = make_engine(settings.vault_url)
    try:
        migrate(engine)
        bind_keyring(engine, provider.keyring_id)
        sync_departments(engine, policy)
        revision = schema_revision(engine)
    finally:
        engine.dispose()
    return {
        "vault": settings.vault_url.split("://")[0],
        "schema_revision": revision,
        "keyring": str(settings.keyring_path) if settings.key_provider == "local" else "aws-kms",
        "keyring_created": created_keyring,
        "keyring_id": provider.keyring_id,
    }
