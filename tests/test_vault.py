"""The vault on SQLite and PostgreSQL: migrations, the keyring binding, atomic chunked
writes and the schema's personal-information classification."""

from __future__ import annotations

import shutil
from datetime import datetime

import pytest
from sqlalchemy import func, inspect, select, text

from custos.cli import main
from custos.crypto.keyring import LocalKeyring
from custos.demo import seed as seed_module
from custos.demo.seed import seed_vault
from custos.errors import CustosError, KeyringError
from custos.policy import current_policy
from custos.runtime import open_runtime
from custos.settings import get_settings
from custos.setup_vault import initialise
from custos.vault.db import head_revision, migrate, schema_revision
from custos.vault.models import PI_CLASSES, Base

AS_OF = datetime(2026, 11, 1)


def _count(engine, table: str = "customers") -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(text(table)))


def _row_counts(engine) -> dict[str, int]:
    return {table: _count(engine, table) for table in Base.metadata.tables}


def test_migrate_is_idempotent(initialised_vault):
    rt = initialised_vault
    engine = rt.engine
    assert schema_revision(engine) == head_revision()
    before = sorted(inspect(engine).get_table_names())
    migrate(engine)
    migrate(engine)
    assert schema_revision(engine) == head_revision()
    assert sorted(inspect(engine).get_table_names()) == before
    again = initialise(get_settings(), current_policy())
    assert again["keyring_created"] is False
    assert again["keyring_id"] == rt.keys.keyring_id
    assert again["schema_revision"] == head_revision()
    assert _count(engine, "departments") == len(rt.policy.departments)


def test_migrated_schema_matches_the_models(initialised_vault):
    """The migration creates exactly the tables and columns the models declare, so the
    classification the storage check relies on covers the live database."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = initialised_vault.engine
    live = inspect(engine)
    assert set(live.get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    for name, table in Base.metadata.tables.items():
        assert {c["name"] for c in live.get_columns(name)} == set(table.c.keys()), name
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_every_column_has_a_pi_classification():
    unclassified = [
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.c
        if column.info.get("pi") not in PI_CLASSES
    ]
    assert unclassified == []
    assert len(Base.metadata.tables) >= 10


def test_a_different_keyring_is_refused_and_nothing_is_written(
    initialised_vault, custos_home, monkeypatch, capsys
):
    rt = initialised_vault
    seed_vault(rt.engine, rt.settings, rt.policy, customers=30, seed=5, as_of=AS_OF, workers=0)
    counts = _row_counts(rt.engine)
    other_path = custos_home / "other" / "keyring.json"
    other = LocalKeyring.create(other_path)
    monkeypatch.setenv("CUSTOS_KEYRING", str(other_path))

    with pytest.raises(KeyringError) as excinfo:
        open_runtime().keys  # noqa: B018
    assert rt.keys.keyring_id in str(excinfo.value)
    assert other.keyring_id in str(excinfo.value)

    capsys.readouterr()
    code = main(
        [
            "demo",
            "seed",
            "--customers",
            "20",
            "--seed",
            "6",
            "--workers",
            "0",
            "--as-of",
            "2026-11-01",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "keyring" in err and "CUSTOS_KEYRING" in err
    assert main(["init"]) == 2
    assert _row_counts(rt.engine) == counts
    assert LocalKeyring.load(other_path).bucket_ids() == []  # no key minted either
    with pytest.raises(KeyringError):
        initialise(get_settings(), current_policy())


def test_missing_keyring_for_existing_vault_is_refused(initialised_vault, monkeypatch):
    rt = initialised_vault
    keyring_path = rt.settings.keyring_path
    kept = keyring_path.with_name("kept.json")
    shutil.move(keyring_path, kept)
    with pytest.raises(KeyringError, match="keyring missing for an existing vault"):
        initialise(get_settings(), current_policy())
    assert not keyring_path.exists()
    elsewhere = keyring_path.with_name("elsewhere.json")
    monkeypatch.setenv("CUSTOS_KEYRING", str(elsewhere))
    with pytest.raises(KeyringError):
        initialise(get_settings(), current_policy())
    assert not elsewhere.exists()
    with pytest.raises(KeyringError, match="custos init"):
        open_runtime().keys  # noqa: B018
    # The vault still belongs to the original keyring.
    monkeypatch.setenv("CUSTOS_KEYRING", str(kept))
    assert open_runtime().keys.keyring_id == rt.keys.keyring_id


def test_seeding_twice_with_the_same_seed_fails_and_writes_nothing(initialised_vault):
    rt = initialised_vault
    seed_vault(rt.engine, rt.settings, rt.policy, customers=150, seed=9, as_of=AS_OF, workers=0)
    counts = _row_counts(rt.engine)
    assert counts["customers"] == 150
    with pytest.raises(CustosError, match="already seeded"):
        seed_vault(rt.engine, rt.settings, rt.policy, customers=150, seed=9, as_of=AS_OF, workers=0)
    assert _row_counts(rt.engine) == counts


def test_each_chunk_is_one_transaction(initialised_vault, monkeypatch):
    """A chunk that fails is rolled back whole; chunks before it stay written."""
    rt = initialised_vault
    monkeypatch.setattr(seed_module, "CHUNK_SIZE", 40)
    # Indices 40..79, generated as chunk 0 of this run.
    seed_vault(
        rt.engine,
        rt.settings,
        rt.policy,
        customers=40,
        seed=9,
        as_of=AS_OF,
        workers=0,
        first_index=40,
    )
    assert _count(rt.engine) == 40
    # This run's chunk 0 (indices 0..39) is new; its chunk 1 (40..79) reuses external ids
    # wherever the platform drawn matches the first run's, so it fails as a whole.
    with pytest.raises(CustosError, match="already seeded"):
        seed_vault(rt.engine, rt.settings, rt.policy, customers=120, seed=9, as_of=AS_OF, workers=0)
    assert _count(rt.engine) == 80
    with rt.engine.connect() as conn:
        orphans = conn.scalar(
            text(
                "SELECT count(*) FROM data_keys d WHERE NOT EXISTS "
                "(SELECT 1 FROM customers c WHERE c.id = d.customer_id)"
            )
        )
        missing_basic = conn.scalar(
            text(
                "SELECT count(*) FROM customers c WHERE NOT EXISTS "
                "(SELECT 1 FROM basic_info b WHERE b.customer_id = c.id)"
            )
        )
    assert orphans == 0 and missing_basic == 0
