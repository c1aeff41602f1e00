"""Test session setup.

Airflow reads its configuration when first imported, so the environment below is set
before anything imports it: a throwaway AIRFLOW_HOME, this repo's dags/ and plugins/,
no examples. Each test that needs a vault gets its own CUSTOS_HOME (see fixtures).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="custos-tests-"))
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
    f"sqlite:///{_SESSION_DIR / 'airflow' / 'airflow.db'}"
)
os.environ.setdefault("CUSTOS_HOME", str(_SESSION_DIR / "custos-default"))
os.environ.pop("CUSTOS_VAULT_URL", None)
os.environ.pop("CUSTOS_EVIDENCE_URL", None)
os.environ.pop("CUSTOS_KEYRING", None)

# ---- vault fixtures below (shared by the test modules) ----------------------------------

import secrets  # noqa: E402
from datetime import datetime  # noqa: E402

import pytest  # noqa: E402

POSTGRES_URL_ENV = "CUSTOS_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "CUSTOS_REQUIRE_POSTGRES"
SEED_AS_OF = datetime(2026, 11, 1)
SEED = 11
SEED_CUSTOMERS = 3000  # two chunks (2,000 + 1,000): the chunk loop runs more than once


@pytest.fixture
def custos_home(tmp_path, monkeypatch) -> Path:
    """A fresh CUSTOS_HOME; every other Custos location falls back to its default in it."""
    home = tmp_path / "custos-home"
    home.mkdir()
    monkeypatch.setenv("CUSTOS_HOME", str(home))
    for name in (
        "CUSTOS_VAULT_URL",
        "CUSTOS_EVIDENCE_URL",
        "CUSTOS_KEYRING",
        "CUSTOS_POLICY_DIR",
        "CUSTOS_KEY_PROVIDER",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


def _postgres_unavailable(reason: str):
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(
            f"{REQUIRE_POSTGRES_ENV}=1 but PostgreSQL cannot be used: {reason}", pytrace=False
        )
    pytest.skip(f"PostgreSQL vault tests skipped: {reason}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def vault_url(request, custos_home, monkeypatch):
    """The vault URL under test: SQLite (default under CUSTOS_HOME) or a fresh, throwaway
    PostgreSQL database on the server named by CUSTOS_TEST_POSTGRES_URL."""
    if request.param == "sqlite":
        from custos.settings import get_settings

        yield get_settings().vault_url
        return

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError
    from sqlalchemy.pool import NullPool

    server = os.environ.get(POSTGRES_URL_ENV)
    if not server:
        _postgres_unavailable(
            f"{POSTGRES_URL_ENV} is not set (e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    try:
        url = make_url(server)
    except ArgumentError as exc:
        _postgres_unavailable(f"{POSTGRES_URL_ENV} is not a database URL: {exc}")
    shown = url.render_as_string(hide_password=True)
    admin = create_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"connect_timeout": 5}
    )
    name = f"custos_t_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError as exc:
        admin.dispose()
        _postgres_unavailable(
            f"server {shown} is unreachable or refused CREATE DATABASE: {str(exc.orig).strip()}"
        )
    database_url = url.set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("CUSTOS_VAULT_URL", database_url)
    try:
        yield database_url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def initialised_vault(custos_home, vault_url):
    """`custos init` done (keyring created, schema migrated, keyring bound); an opened
    runtime whose keys have been checked against the vault."""
    from custos.policy import current_policy
    from custos.runtime import open_runtime
    from custos.settings import get_settings
    from custos.setup_vault import initialise

    initialise(get_settings(), current_policy())
    rt = open_runtime()
    rt.keys  # noqa: B018 - opens the keyring and checks the vault's binding
    yield rt
    rt.engine.dispose()


def _postgres_admin():
    """An AUTOCOMMIT engine on the server of CUSTOS_TEST_POSTGRES_URL (CREATE/DROP DATABASE)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(
        os.environ[POSTGRES_URL_ENV],
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 5},
    )


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database, WAL included (the backup API)."""
    import sqlite3

    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


@pytest.fixture(scope="session")
def _seed_snapshots(tmp_path_factory):
    """Per backend: the first seeded vault of the session (database copy + its keyring +
    the seeder's report), so later tests get an identical vault without re-encrypting."""
    snapshots: dict[str, dict] = {"_dir": tmp_path_factory.mktemp("seed-snapshots")}
    yield snapshots
    template = snapshots.get("postgres", {}).get("template")
    if template:
        from sqlalchemy import text

        admin = _postgres_admin()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))
        admin.dispose()


def _take_snapshot(backend: str, settings, folder: Path) -> dict:
    import shutil

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    snapshot = {"keyring": folder / f"{backend}-keyring.json"}
    shutil.copy2(settings.keyring_path, snapshot["keyring"])
    if backend == "sqlite":
        snapshot["database"] = folder / "vault.db"
        _sqlite_copy(Path(make_url(settings.vault_url).database), snapshot["database"])
    else:
        snapshot["template"] = f"custos_t_tpl_{secrets.token_hex(6)}"
        source = make_url(settings.vault_url).database
        admin = _postgres_admin()
        with admin.connect() as conn:
            # initialise() opens engines of its own and leaves their pooled connections to
            # the garbage collector; a template database must have no other sessions.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": source},
            )
            conn.execute(text(f'CREATE DATABASE "{snapshot["template"]}" TEMPLATE "{source}"'))
        admin.dispose()
    return snapshot


def _restore_snapshot(backend: str, settings, snapshot: dict) -> None:
    import shutil

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    shutil.copy2(snapshot["keyring"], settings.keyring_path)
    if backend == "sqlite":
        _sqlite_copy(snapshot["database"], Path(make_url(settings.vault_url).database))
    else:
        target = make_url(settings.vault_url).database
        admin = _postgres_admin()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{target}" TEMPLATE "{snapshot["template"]}"'))
        admin.dispose()


@pytest.fixture
def seeded_vault(custos_home, vault_url, _seed_snapshots):
    """An initialised vault holding SEED_CUSTOMERS synthetic customers, seeded inline
    (workers=0); returns (runtime, seeder report). The report's `injected` counts are the
    oracle for the checks.

    The first test per backend really runs `custos init` + `seed_vault`; later tests get a
    byte-identical copy of that vault and keyring (SQLite backup / PostgreSQL TEMPLATE), which
    keeps the suite fast while every test still starts from the same fresh seeded state."""
    import copy

    from custos.demo.seed import seed_vault
    from custos.policy import current_policy
    from custos.runtime import open_runtime
    from custos.settings import get_settings
    from custos.setup_vault import initialise

    backend = "postgres" if vault_url.startswith("postgresql") else "sqlite"
    settings = get_settings()
    snapshot = _seed_snapshots.get(backend)
    if snapshot is None:
        initialise(settings, current_policy())
        rt = open_runtime()
        rt.keys  # noqa: B018
        report = seed_vault(
            rt.engine,
            rt.settings,
            rt.policy,
            customers=SEED_CUSTOMERS,
            seed=SEED,
            as_of=SEED_AS_OF,
            workers=0,
        )
        rt.engine.dispose()
        snapshot = _take_snapshot(backend, settings, _seed_snapshots["_dir"])
        snapshot["report"] = report
        _seed_snapshots[backend] = snapshot
    else:
        _restore_snapshot(backend, settings, snapshot)
    rt = open_runtime()
    rt.keys  # noqa: B018 - the restored keyring opens the restored vault
    yield rt, copy.deepcopy(snapshot["report"])
    rt.engine.dispose()


@pytest.fixture
def seeded_plaintext(seeded_vault, _seed_snapshots):
    """The plaintext records the seeder wrote into `seeded_vault`, regenerated from the seed
    (generation is deterministic per (seed, chunk)); only tests ever hold these."""
    from custos.demo import seed as seed_module

    rt, report = seeded_vault
    if "plaintext" not in _seed_snapshots:
        generator = seed_module.ChunkGenerator(
            report["seed"],
            datetime.fromisoformat(report["as_of"]),
            seed_module.SeedRules.from_policy(rt.policy),
        )
        records = []
        customers, size = report["customers"], seed_module.CHUNK_SIZE
        for chunk_index, start in enumerate(range(0, customers, size)):
            chunk, _ = generator.chunk(chunk_index, start, min(size, customers - start))
            records.extend(chunk)
        _seed_snapshots["plaintext"] = records
    return _seed_snapshots["plaintext"]


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata DB in the session's AIRFLOW_HOME (set above), for the
    end-to-end ``dag.test()`` tests."""
    import subprocess
    import sys

    subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        check=True,
        capture_output=True,
    )
