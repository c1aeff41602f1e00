"""Connecting to the vault, migrating it, and binding it to its keyring."""

from __future__ import annotations

import functools
import re
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session

from custos.errors import ConfigError, KeyringError
from custos.vault.models import Department, VaultMeta

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


@functools.lru_cache(maxsize=32)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _regexp(pattern: str, value) -> bool:
    return value is not None and _compiled(pattern).search(str(value)) is not None


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            # WAL: readers (the Airflow UI, checks) never block the writer; NORMAL sync is
            # durable across process crashes, which is what a killed task needs.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Checkpoint every ~64 MB of WAL rather than 4 MB: bulk loads commit ~3 MB batches.
            cursor.execute("PRAGMA wal_autocheckpoint=16384")
            cursor.close()
            # SQLite has the REGEXP operator but no implementation; the storage check uses it.
            dbapi_connection.create_function("regexp", 2, _regexp, deterministic=True)

        return engine
    if url.startswith("postgresql"):
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    raise ConfigError(f"CUSTOS_VAULT_URL={url.split('://')[0]}://…: only sqlite and postgresql")


def _alembic_config(engine: Engine | None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest version (idempotent)."""
    from alembic import command

    command.upgrade(_alembic_config(engine), "head")


def head_revision() -> str:
    """The newest migration this code ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def schema_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def session_scope(engine: Engine):
    """One transaction: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def bind_keyring(engine: Engine, keyring_id: str) -> None:
    """Record which keyring this vault belongs to, on first use; refuse another one later."""
    with session_scope(engine) as session:
        row = session.get(VaultMeta, "keyring_id")
        if row is None:
            session.add(VaultMeta(key="keyring_id", value=keyring_id))
        elif row.value != keyring_id:
            raise KeyringError(
                f"this vault was initialised with keyring {row.value}, but the keyring "
                f"loaded is {keyring_id}; set CUSTOS_KEYRING to the right file"
            )


def check_keyring(engine: Engine, keyring_id: str) -> None:
    with Session(engine) as session:
        bound = session.scalar(select(VaultMeta.value).where(VaultMeta.key == "keyring_id"))
    if bound is None:
        raise KeyringError("the vault is not initialised; run `custos init`")
    if bound != keyring_id:
        raise KeyringError(
            f"this vault was initialised with keyring {bound}, but the keyring loaded is "
            f"{keyring_id}; set CUSTOS_KEYRING to the right file. Nothing was written."
        )


def sync_departments(engine: Engine, policy) -> None:
    with session_scope(engine) as session:
        existing = {d.id: d for d in session.scalars(select(Department))}
        for dept in policy.departments.values():
            row = existing.get(dept.id) or Department(id=dept.id)
            row.name_en, row.name_zh = dept.name_en, dept.name_zh
            session.add(row)
