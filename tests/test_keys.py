"""Versioned bucket keys, encryption counting, and rotation (Art. 8, 12).

- the keyring: versions with one primary, retirement (tombstone, never reused), the
  encryption cap with automatic rotation, and loading a keyring written before versions;
- the writer: wraps with the primary, writes wrap_version, reserves once per batch;
- rotation under interruption on SQLite and PostgreSQL: a re-wrap killed after N batches
  leaves no half-written batch, everything still decrypts, a re-run finishes without a
  further version, the old version is destroyed, and a sample of customers decrypts field
  by field end to end;
- the `custos keys` commands.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from custos.cli import main
from custos.crypto import rotation
from custos.crypto.aead import KEY_BYTES, Aead, new_key
from custos.crypto.envelope import field_aad, unwrap_data_key
from custos.crypto.keyring import (
    KEYRING_FORMAT,
    BucketKey,
    KeyUsageError,
    LocalKeyring,
    open_key_provider,
)
from custos.errors import ConfigError, CustosError, DecryptionError, KeyringError
from custos.settings import AES_GCM_RANDOM_NONCE_LIMIT, DEFAULT_KEY_MAX_ENCRYPTIONS, get_settings
from custos.vault.records import BASIC_FIELDS, IDENTITY_FIELDS

BUCKET = "basic/2029-03"


# -- the keyring ----------------------------------------------------------------------------
def test_versions_primary_and_retirement(tmp_path: Path) -> None:
    keyring = LocalKeyring.create(tmp_path / "keyring.json")
    first = keyring.ensure_bucket_keys([BUCKET])[BUCKET]
    assert isinstance(first, BucketKey) and first.version == 1 and len(first.key) == KEY_BYTES
    assert keyring.rotate_bucket(BUCKET) == 2
    primary = keyring.bucket_keys([BUCKET])[BUCKET]
    assert primary.version == 2 and primary.key != first.key
    assert keyring.bucket_key(BUCKET, 1) == first.key  # old data keys still open
    assert keyring.ensure_bucket_keys([BUCKET])[BUCKET] == primary  # no new version

    with pytest.raises(KeyringError, match="primary"):
        keyring.retire(BUCKET, 2)
    assert keyring.retire(BUCKET, 1) is True
    assert keyring.retire(BUCKET, 1) is False  # idempotent
    reloaded = LocalKeyring.load(keyring.path)
    for provider in (keyring, reloaded):
        with pytest.raises(KeyringError, match="version 1 was destroyed"):
            provider.bucket_key(BUCKET, 1)
        assert provider.bucket_key(BUCKET, 2) == primary.key
    # The number of a destroyed version is never used again.
    assert reloaded.rotate_bucket(BUCKET) == 3
    versions = {v["version"]: v for v in reloaded.status()["buckets"][0]["versions"]}
    assert versions[1]["state"] == "destroyed" and versions[1]["destroyed_at"]
    assert versions[2]["state"] == "active" and versions[3]["state"] == "primary"
    raw = json.loads(keyring.path.read_text())
    assert raw["format"] == KEYRING_FORMAT
    assert "key" not in raw["bucket_keys"][BUCKET]["versions"]["1"]
    assert base64.b64encode(first.key).decode() not in keyring.path.read_text()
    with pytest.raises(KeyringError, match="no key version 9"):
        reloaded.bucket_key(BUCKET, 9)


def test_destroyed_bucket_is_gone_for_good(tmp_path: Path) -> None:
    keyring = LocalKeyring.create(tmp_path / "keyring.json")
    keyring.ensure_bucket_keys([BUCKET])
    keyring.destroy_bucket(BUCKET)
    for call in (
        lambda: keyring.bucket_keys([BUCKET]),
        lambda: keyring.bucket_key(BUCKET, 1),
        lambda: keyring.ensure_bucket_keys([BUCKET]),
        lambda: keyring.reserve_encryptions({BUCKET: 1}),
    ):
        with pytest.raises(KeyringError, match="destroyed"):
            call()
    assert keyring.bucket_ids() == []


def _old_format_keyring(path: Path) -> dict:
    """A keyring exactly as the code before versioned keys wrote it (custos-keyring/1)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = {
        "format": "custos-keyring/1",
        "keyring_id": "kr-0123456789abcdef",
        "created_at": "2026-10-01T00:00:00+00:00",
        "blind_index_key": base64.b64encode(new_key()).decode(),
        "evidence_signing_key": {
            "id": "ev-01234567",
            "private": base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode(),
        },
        "bucket_keys": {
            bucket: {
                "key": base64.b64encode(new_key()).decode(),
                "created_at": "2026-10-01T00:00:00+00:00",
            }
            for bucket in ("basic/2029-03", "identity/unassigned")
        },
        "destroyed_buckets": {"basic/2026-09": "2026-10-01T00:00:00+00:00"},
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    return data


def test_keyring_written_before_versions_loads_as_version_1(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    old = _old_format_keyring(path)
    before = path.read_bytes()
    keyring = LocalKeyring.load(path)
    assert keyring.keyring_id == old["keyring_id"]
    for bucket, entry in old["bucket_keys"].items():
        key = base64.b64decode(entry["key"])
        assert keyring.bucket_keys([bucket])[bucket] == BucketKey(1, key)
        assert keyring.bucket_key(bucket, 1) == key
    assert keyring.blind_index_key() == base64.b64decode(old["blind_index_key"])
    with pytest.raises(KeyringError, match="destroyed"):
        keyring.bucket_keys(["basic/2026-09"])
    assert path.read_bytes() == before, "loading must not rewrite the keyring"

    # The first change writes the versioned format; the old keys stay version 1.
    assert keyring.rotate_bucket("basic/2029-03") == 2
    raw = json.loads(path.read_text())
    assert raw["format"] == KEYRING_FORMAT
    assert (
        raw["bucket_keys"]["identity/unassigned"]["versions"]["1"]["key"]
        == (old["bucket_keys"]["identity/unassigned"]["key"])
    )
    again = LocalKeyring.load(path)
    assert again.bucket_key("basic/2029-03", 1) == base64.b64decode(
        old["bucket_keys"]["basic/2029-03"]["key"]
    )
    assert again.bucket_keys(["basic/2029-03"])["basic/2029-03"].version == 2


def test_encryption_cap_rotates_automatically_and_refuses_overuse(tmp_path: Path) -> None:
    keyring = LocalKeyring.create(tmp_path / "keyring.json", max_encryptions=10)
    assert keyring.reserve_encryptions({BUCKET: 4})[BUCKET].version == 1
    assert keyring.reserve_encryptions({BUCKET: 6})[BUCKET].version == 1  # exactly the cap
    assert keyring.reserve_encryptions({BUCKET: 1})[BUCKET].version == 2  # rotated first
    versions = {v["version"]: v for v in keyring.status()["buckets"][0]["versions"]}
    assert versions[1]["encryptions"] == 10 and versions[1]["state"] == "active"
    assert versions[2]["encryptions"] == 1 and versions[2]["reason"] == "encryption cap"

    with pytest.raises(KeyUsageError, match="more than the cap"):
        keyring.reserve_encryptions({BUCKET: 11})
    # Explicit counting: the full old version is refused; the primary is fine up to the cap.
    with pytest.raises(KeyUsageError, match="pass the cap"):
        keyring.record_encryptions(BUCKET, 1, 1)
    assert keyring.record_encryptions(BUCKET, 2, 9) == 2
    with pytest.raises(KeyUsageError, match="now version 3"):
        keyring.record_encryptions(BUCKET, 2, 1)  # the primary would pass: replaced, refused
    assert keyring.record_encryptions(BUCKET, 3, 1) == 3
    counts = {
        v["version"]: v["encryptions"]
        for v in LocalKeyring.load(keyring.path).status()["buckets"][0]["versions"]
    }
    assert counts == {1: 10, 2: 10, 3: 1}
    assert all(n <= 10 for n in counts.values())


def test_encryption_cap_setting(monkeypatch, custos_home) -> None:
    assert DEFAULT_KEY_MAX_ENCRYPTIONS <= AES_GCM_RANDOM_NONCE_LIMIT // 4
    assert get_settings().key_max_encryptions == DEFAULT_KEY_MAX_ENCRYPTIONS
    monkeypatch.setenv("CUSTOS_KEY_MAX_ENCRYPTIONS", "1_000_000")
    assert get_settings().key_max_encryptions == 1_000_000
    for bad in ("0", "-5", "lots", str(2**32 + 1)):
        monkeypatch.setenv("CUSTOS_KEY_MAX_ENCRYPTIONS", bad)
        with pytest.raises(ConfigError, match="CUSTOS_KEY_MAX_ENCRYPTIONS"):
            get_settings()
    monkeypatch.setenv("CUSTOS_KEY_MAX_ENCRYPTIONS", "50")
    settings = get_settings()
    keyring = open_key_provider(settings, create=True)
    assert keyring.max_encryptions == 50
    assert open_key_provider(settings).max_encryptions == 50


def test_a_failed_change_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    keyring = LocalKeyring.create(tmp_path / "keyring.json")
    keyring.ensure_bucket_keys([BUCKET])
    before = keyring.path.read_bytes()

    def refuse(bucket_id, version):
        raise KeyringError("provider refused")

    monkeypatch.setattr(keyring, "_seal_new_key", refuse)
    with pytest.raises(KeyringError, match="refused"):
        keyring.reserve_encryptions({BUCKET: 3, "basic/2030-01": 1})
    with pytest.raises(KeyringError, match="refused"):
        keyring.rotate_bucket(BUCKET)
    assert keyring.path.read_bytes() == before
    assert keyring.bucket_keys([BUCKET])[BUCKET].version == 1
    assert keyring.status()["buckets"][0]["versions"][0]["encryptions"] == 0


# -- the writer -----------------------------------------------------------------------------
def _records(n: int, seed: int = 5):
    from custos.demo.seed import ChunkGenerator, SeedRules
    from custos.policy import current_policy

    generator = ChunkGenerator(seed, datetime(2026, 11, 1), SeedRules.from_policy(current_policy()))
    return generator.chunk(0, 0, n)[0]


def test_writer_wraps_with_the_primary_and_reserves_once_per_batch(tmp_path: Path) -> None:
    from custos.policy import current_policy
    from custos.vault.writer import COLUMNS, CustomerEncryptor, RetentionTable

    keyring = LocalKeyring.create(tmp_path / "keyring.json")
    calls = []
    reserve = keyring.reserve_encryptions

    def spy(counts):
        calls.append(dict(counts))
        return reserve(counts)

    keyring.reserve_encryptions = spy
    encryptor = CustomerEncryptor(keyring, RetentionTable.from_policy(current_policy()))
    records = _records(300)
    first = encryptor.encrypt_customers(records[:200], datetime(2026, 11, 2))
    assert len(calls) == 1, "one reservation per batch, not per value"
    column = {name: i for i, name in enumerate(COLUMNS["data_keys"])}
    rows = first["data_keys"]
    assert sum(calls[0].values()) == len(rows)  # every wrapped data key is counted
    assert {r[column["wrap_version"]] for r in rows} == {1}

    bucket = rows[0][column["bucket"]]
    assert keyring.rotate_bucket(bucket) == 2
    second = encryptor.encrypt_customers(records[200:], datetime(2026, 11, 2))
    assert len(calls) == 2
    moved = [r for r in second["data_keys"] if r[column["bucket"]] == bucket]
    others = [r for r in second["data_keys"] if r[column["bucket"]] != bucket]
    assert moved and {r[column["wrap_version"]] for r in moved} == {2}
    assert {r[column["wrap_version"]] for r in others} == {1}
    for row in moved[:5] + others[:5]:
        customer_id, category = row[column["customer_id"]], row[column["category"]]
        version = row[column["wrap_version"]]
        data_key = unwrap_data_key(
            Aead(keyring.bucket_key(row[column["bucket"]], version)),
            row[column["wrapped_key"]],
            customer_id,
            category,
            row[column["bucket"]],
            version,
        )
        assert len(data_key) == KEY_BYTES
    counted = {
        (b["bucket"], v["version"]): v["encryptions"]
        for b in keyring.status()["buckets"]
        for v in b["versions"]
    }
    assert counted[(bucket, 2)] == len(moved)
    assert sum(counted.values()) == len(rows) + len(second["data_keys"])


def test_seeding_with_a_tiny_cap_rotates_and_everything_decrypts(custos_home, monkeypatch):
    from custos.demo import seed as seed_module
    from custos.policy import current_policy
    from custos.runtime import open_runtime
    from custos.setup_vault import initialise

    # Batches of 100 customers wrap at most ~35 data keys per bucket: a cap of 40 is reached
    # across batches, so primaries get replaced in the middle of seeding.
    monkeypatch.setattr(seed_module, "CHUNK_SIZE", 100)
    monkeypatch.setenv("CUSTOS_KEY_MAX_ENCRYPTIONS", "40")
    initialise(get_settings(), current_policy())
    rt = open_runtime()
    seed_module.seed_vault(rt.engine, rt.settings, rt.policy, customers=600, seed=3, workers=0)
    status = rt.keys.status()
    counts = [v["encryptions"] for b in status["buckets"] for v in b["versions"]]
    assert max(counts) <= 40
    assert any(b["primary"] > 1 for b in status["buckets"]), "the cap replaced some primaries"
    usage = rotation.versions_in_use(rt.engine)
    assert any(len(versions) > 1 for versions in usage.values())
    assert _all_data_keys_open(rt.engine, rt.keys) == sum(
        n for versions in usage.values() for n in versions.values()
    )
    rt.engine.dispose()


# -- rotation -------------------------------------------------------------------------------
def _all_data_keys_open(engine, provider) -> int:
    """Unwrap every data key in the vault with the version its row names; returns the count."""
    opened = 0
    with engine.connect() as conn:
        for customer_id, category, bucket, version, wrapped in conn.execute(
            text("SELECT customer_id, category, bucket, wrap_version, wrapped_key FROM data_keys")
        ):
            provider.unwrap_data_key(wrapped, customer_id, category, bucket, version)
            opened += 1
    return opened


def _decrypt_customer(conn, provider, customer_id: str) -> dict:
    """Every field of one customer, end to end: data key unwrap, then field decryption."""
    out: dict = {}
    keys = conn.execute(
        text(
            "SELECT category, bucket, key_version, wrap_version, wrapped_key FROM data_keys "
            "WHERE customer_id = :c"
        ),
        {"c": customer_id},
    ).all()
    for category, bucket, key_version, wrap_version, wrapped in keys:
        data_key = unwrap_data_key(
            Aead(provider.bucket_key(bucket, wrap_version)),
            bytes(wrapped),
            customer_id,
            category,
            bucket,
            wrap_version,
        )
        aead = Aead(data_key)

        def open_(blob, table, column, row_id=None, aead=aead, version=key_version):
            if blob is None:
                return None
            aad = field_aad(table, column, customer_id, version, row_id)
            return aead.decrypt(bytes(blob), aad).decode()

        if category in ("basic", "identity"):
            table, names = (
                ("basic_info", BASIC_FIELDS)
                if category == "basic"
                else ("identity_info", IDENTITY_FIELDS)
            )
            row = conn.execute(
                text(f"SELECT {', '.join(names)} FROM {table} WHERE customer_id = :c"),
                {"c": customer_id},
            ).one()
            out[category] = {name: open_(row[i], table, name) for i, name in enumerate(names)}
        else:
            table = "orders" if category == "transaction" else "events"
            out[category] = {
                row_id: open_(blob, table, "details", row_id)
                for row_id, blob in conn.execute(
                    text(f"SELECT id, details FROM {table} WHERE customer_id = :c ORDER BY id"),
                    {"c": customer_id},
                )
            }
    return out


def _sample(conn, n: int = 25) -> list[str]:
    # Customers holding all four categories, so every table is exercised.
    return list(
        conn.scalars(
            text(
                "SELECT customer_id FROM data_keys GROUP BY customer_id "
                "HAVING count(*) = 4 ORDER BY customer_id"
            )
        )
    )[:n]


def test_rotation_under_interruption(seeded_vault, seeded_plaintext, monkeypatch):
    rt, _ = seeded_vault
    provider = rt.keys
    engine = rt.engine
    from custos.crypto.blind_index import BlindIndexer

    indexer = BlindIndexer(provider.blind_index_key())
    with engine.connect() as conn:
        sample = _sample(conn)
        known = seeded_plaintext[0]
        known_id = conn.scalar(
            text("SELECT id FROM customers WHERE external_id_bidx = :b"),
            {"b": indexer.index("external_id", known.external_id)},
        )
        before = {cid: _decrypt_customer(conn, provider, cid) for cid in [*sample, known_id]}
        # A lingering copy of a wrapped data key (as in WAL, free pages or a backup).
        lingering = conn.execute(
            text(
                "SELECT customer_id, category, bucket, wrap_version, wrapped_key "
                "FROM data_keys WHERE customer_id = :c AND category = 'basic'"
            ),
            {"c": known_id},
        ).one()
        total_rows = conn.scalar(text("SELECT count(*) FROM data_keys"))
    assert len(sample) >= 10 and before[known_id]["basic"]["name"] == known.basic["name"]
    assert lingering.wrap_version == 1
    buckets = provider.bucket_ids()

    # Kill the re-wrap in its 4th batch, after its UPDATE ran, before the commit.
    calls = {"n": 0, "committed": 0, "killed": None}
    real_update = rotation.update_rows

    def dying_update(conn, params):
        changed = real_update(conn, params)
        calls["n"] += 1
        if calls["n"] == 4:
            calls["killed"] = [(p["k_customer"], p["k_category"]) for p in params]
            raise RuntimeError("killed mid-batch")
        calls["committed"] += changed
        return changed

    monkeypatch.setattr(rotation, "update_rows", dying_update)
    with pytest.raises(RuntimeError, match="killed"):
        rotation.rotate(engine, provider, batch_size=100, grace_seconds=0)
    monkeypatch.setattr(rotation, "update_rows", real_update)

    # No half-written batch: exactly the three committed batches moved.
    with engine.connect() as conn:
        moved = conn.scalar(text("SELECT count(*) FROM data_keys WHERE wrap_version = 2"))
        assert moved == calls["committed"] and 0 < moved < total_rows
        assert conn.scalar(text("SELECT count(*) FROM data_keys WHERE wrap_version > 2")) == 0
        for customer_id, category in calls["killed"]:
            assert (
                conn.scalar(
                    text(
                        "SELECT wrap_version FROM data_keys WHERE customer_id = :c "
                        "AND category = :k"
                    ),
                    {"c": customer_id, "k": category},
                )
                == 1
            )
    # Every primary moved to version 2 before any row did, and the rotation is recorded.
    reopened = open_key_provider(rt.settings)
    job = reopened.rotation_in_progress()
    assert job is not None and set(job["buckets"]) == set(buckets)
    assert {b: k.version for b, k in reopened.bucket_keys(buckets).items()} == dict.fromkeys(
        buckets, 2
    )
    # Half-way, everything still decrypts: moved rows under v2, the others under v1.
    assert _all_data_keys_open(engine, reopened) == total_rows

    # The re-run continues the same rotation: no version 3, the rest moved, v1 destroyed.
    progress = []
    result = rotation.rotate(
        engine,
        reopened,
        batch_size=100,
        grace_seconds=0,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert result["resumed"] is True and result["finished"] is True
    assert result["rotation"] == job["id"]
    assert result["rewrapped"] == total_rows - moved
    assert progress[0] == (0, total_rows - moved) and progress[-1][0] == total_rows - moved
    # Buckets the killed run finished (re-wrapped, v1 destroyed) are not worked on again.
    finished_first = [b for b, state in job["buckets"].items() if state["done"]]
    assert finished_first and result["buckets_worked_on"] == len(buckets) - len(finished_first)
    assert result["retired_versions"] == len(buckets) - len(finished_first)
    assert result["kept"] == []
    final = open_key_provider(rt.settings)
    assert final.rotation_in_progress() is None
    for bucket in final.status()["buckets"]:
        states = {v["version"]: v["state"] for v in bucket["versions"]}
        assert states == {1: "destroyed", 2: "primary"}, bucket["bucket"]
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM data_keys WHERE wrap_version <> 2")) == 0
        after = {cid: _decrypt_customer(conn, final, cid) for cid in before}
    assert after == before
    assert _all_data_keys_open(engine, final) == total_rows
    # The lingering v1 copy of a data key is useless now: its key version is destroyed.
    with pytest.raises(KeyringError, match="destroyed"):
        final.unwrap_data_key(
            lingering.wrapped_key,
            lingering.customer_id,
            lingering.category,
            lingering.bucket,
            lingering.wrap_version,
        )

    # A new rotation after a finished one makes version 3 (and only then).
    third = rotation.rotate(engine, final, buckets=[buckets[0]], grace_seconds=0)
    assert third["resumed"] is False and third["new_primary"] == {buckets[0]: 3}
    assert third["finished"] and third["retired"] == [{"bucket": buckets[0], "version": 2}]


def test_rotation_keeps_a_version_rows_still_use_and_a_recently_used_one(seeded_vault, monkeypatch):
    rt, _ = seeded_vault
    engine, provider = rt.engine, rt.keys
    bucket = max(rotation.versions_in_use(engine).items(), key=lambda item: sum(item[1].values()))[
        0
    ]
    with engine.connect() as conn:
        stale = conn.execute(
            text(
                "SELECT customer_id, category, wrapped_key FROM data_keys WHERE bucket = :b "
                "ORDER BY customer_id LIMIT 1"
            ),
            {"b": bucket},
        ).one()

    real = rotation._rewrap_bucket

    def writer_during_rotation(engine_, provider_, bucket_, *args):
        moved = real(engine_, provider_, bucket_, *args)
        # A writer that took the v1 key just before the rotation stores its row now.
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE data_keys SET wrapped_key = :w, wrap_version = 1 "
                    "WHERE customer_id = :c AND category = :k"
                ),
                {"w": stale.wrapped_key, "c": stale.customer_id, "k": stale.category},
            )
        return moved

    monkeypatch.setattr(rotation, "_rewrap_bucket", writer_during_rotation)
    first = rotation.rotate(engine, provider, buckets=[bucket], grace_seconds=0)
    monkeypatch.setattr(rotation, "_rewrap_bucket", real)
    assert first["finished"] is False and first["retired"] == []
    assert first["kept"] == [{"bucket": bucket, "version": 1, "reason": "in use", "rows": 1}]
    assert provider.bucket_key(bucket, 1)  # still there: a row needs it

    # Default grace: the seeder used v1 moments ago, so it is not destroyed yet either.
    provider.record_encryptions(bucket, 1, 0)  # (touch: "used just now")
    second = rotation.rotate(engine, provider, buckets=[bucket])
    assert second["resumed"] and second["rewrapped"] == 1 and second["finished"] is False
    assert second["kept"][0]["reason"] == "recently used"
    third = rotation.rotate(engine, provider, buckets=[bucket], grace_seconds=0)
    assert third["finished"] and third["retired"] == [{"bucket": bucket, "version": 1}]
    assert third["new_primary"] == {bucket: 2}  # still the rotation's version
    assert _all_data_keys_open(engine, provider) > 0


SQLITE_ONLY = pytest.mark.parametrize("vault_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_rotation_stops_on_a_tampered_row_and_writes_nothing(initialised_vault):
    from custos.demo.seed import seed_vault

    rt = initialised_vault
    seed_vault(rt.engine, rt.settings, rt.policy, customers=200, seed=8, workers=0)
    with rt.engine.begin() as conn:
        customer_id, bucket, wrapped = conn.execute(
            text(
                "SELECT customer_id, bucket, wrapped_key FROM data_keys "
                "WHERE category = 'basic' ORDER BY customer_id LIMIT 1"
            )
        ).one()
        tampered = bytearray(wrapped)
        tampered[-1] ^= 1
        conn.execute(
            text(
                "UPDATE data_keys SET wrapped_key = :w "
                "WHERE customer_id = :c AND category = 'basic'"
            ),
            {"w": bytes(tampered), "c": customer_id},
        )
    with pytest.raises(DecryptionError) as excinfo:
        rotation.rotate(rt.engine, rt.keys, buckets=[bucket], grace_seconds=0)
    assert customer_id in str(excinfo.value) and isinstance(excinfo.value, CustosError)
    usage = rotation.versions_in_use(rt.engine, [bucket])[bucket]
    assert usage.keys() == {1}, "the failing batch wrote nothing"


def test_rotation_arguments_are_checked(initialised_vault):
    rt = initialised_vault
    with pytest.raises(ConfigError, match="batch size"):
        rotation.rotate(rt.engine, rt.keys, batch_size=0)
    with pytest.raises(KeyringError, match="no bucket key for nope/2020-01"):
        rotation.rotate(rt.engine, rt.keys, buckets=["nope/2020-01"])
    assert rt.keys.rotation_in_progress() is None


# -- CLI --------------------------------------------------------------------------------------
@SQLITE_ONLY
def test_keys_cli(seeded_vault, capsys, monkeypatch):
    rt, _ = seeded_vault
    keyring_text = rt.settings.keyring_path.read_text()
    secrets_in_keyring = {
        v["key"]
        for b in json.loads(keyring_text)["bucket_keys"].values()
        for v in b["versions"].values()
    }

    assert main(["keys", "status", "--json"]) == 0
    out = capsys.readouterr().out
    status = json.loads(out)
    assert status["provider"] == "local" and status["buckets"]
    assert all(b["primary"] == 1 for b in status["buckets"])
    total_rows = sum(v["rows"] for b in status["buckets"] for v in b["versions"])
    assert total_rows == sum(v["encryptions"] for b in status["buckets"] for v in b["versions"])
    assert status["rows_without_key"] == {}
    assert not [s for s in secrets_in_keyring if s in out], "status shows no key material"

    assert main(["keys", "rotate", "--batch-size", "700", "--grace-seconds", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rewrapped"] == total_rows and result["finished"] is True
    assert result["retired_versions"] == len(status["buckets"])

    assert main(["keys", "status"]) == 0
    human = capsys.readouterr().out
    assert "primary v2" in human and "v1 destroyed" in human

    assert main(["keys", "rotate", "--bucket", status["buckets"][0]["bucket"]]) == 0
    human = capsys.readouterr().out
    assert "1 buckets" in human and "rotation unfinished" in human  # v2 used moments ago
    assert "destroyed after" in human

    assert main(["keys", "rotate", "--bucket", "nope/2020-01"]) == 2
    assert "no bucket key for nope/2020-01" in capsys.readouterr().err
    with pytest.raises(SystemExit) as excinfo:
        main(["keys", "rotate", "--batch-size", "0"])
    assert excinfo.value.code == 2

    # A key provider that cannot be opened: exit 2 with a clear message, nothing written.
    monkeypatch.setenv("CUSTOS_KEY_PROVIDER", "aws-kms")
    vault_before = Path(rt.engine.url.database).read_bytes()
    assert main(["keys", "rotate"]) == 2
    err = capsys.readouterr().err
    assert "kms-keystore.json" in err and "custos keys init" in err
    assert Path(rt.engine.url.database).read_bytes() == vault_before


@SQLITE_ONLY
def test_status_reports_rows_whose_key_is_gone(initialised_vault, capsys):
    rt = initialised_vault
    now = datetime.now(UTC).replace(tzinfo=None)
    with rt.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (id, external_id_bidx, country, is_minor, status, "
                "collected_at, collected_by, last_activity_at) "
                "VALUES ('c1', :b, 'CN', 0, 'active', :t, 'technology', :t)"
            ),
            {"b": os.urandom(16), "t": now},
        )
        conn.execute(
            text(
                "INSERT INTO data_keys (customer_id, category, key_version, wrap_version, bucket,"
                " wrapped_key, created_at) VALUES ('c1', 'basic', 1, 1, 'basic/2031-01', :w, :t)"
            ),
            {"w": b"\x01" + os.urandom(60), "t": now},
        )
    assert main(["keys", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_without_key"] == {"basic/2031-01#v1": 1}
    assert main(["keys", "status"]) == 0
    assert "WARNING basic/2031-01#v1: 1 rows" in capsys.readouterr().out
