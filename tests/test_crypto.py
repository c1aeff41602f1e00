"""Keys and encryption: AES-256-GCM binding, envelope keys, blind indexes, the keyring file,
and the encryption of a real seeded vault (Art. 8, 12).

Every negative test changes exactly one thing (associated data, key, one bit, length) and
expects a DecryptionError, so a cipher that stopped authenticating would fail here.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from custos.crypto.aead import (
    KEY_BYTES,
    MIN_CIPHERTEXT_BYTES,
    Aead,
    associated_data,
    new_key,
)
from custos.crypto.blind_index import BLIND_INDEX_BYTES, BlindIndexer, normalise
from custos.crypto.envelope import (
    DATA_KEY_VERSION,
    bucket_id,
    data_key_aad,
    field_aad,
    new_wrapped_data_key,
    unwrap_data_key,
)
from custos.crypto.keyring import LocalKeyring
from custos.errors import DecryptionError, KeyringError
from custos.vault.models import Base

PLAINTEXT = b"Ada Lovelace"


# -- AEAD -----------------------------------------------------------------------------------
@pytest.fixture
def aead() -> Aead:
    return Aead(new_key())


def test_aead_round_trip(aead: Aead) -> None:
    aad = field_aad("basic_info", "name", "c1", DATA_KEY_VERSION)
    blob = aead.encrypt(PLAINTEXT, aad)
    assert aead.decrypt(blob, aad) == PLAINTEXT
    assert PLAINTEXT not in blob
    assert len(blob) == MIN_CIPHERTEXT_BYTES + len(PLAINTEXT)
    # Fresh nonce per value: equal plaintexts never give equal ciphertexts.
    assert aead.encrypt(PLAINTEXT, aad) != blob
    assert aead.decrypt(aead.encrypt(b"", aad), aad) == b""


def test_aead_rejects_keys_that_are_not_256_bit() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        Aead(os.urandom(16))
    assert len(new_key()) == KEY_BYTES


def test_decrypt_fails_on_changed_associated_data(aead: Aead) -> None:
    aad = associated_data("basic_info", "name", "c1", "-", "k1")
    blob = aead.encrypt(PLAINTEXT, aad)
    for other in (
        associated_data("basic_info", "email", "c1", "-", "k1"),  # another column
        associated_data("identity_info", "name", "c1", "-", "k1"),  # another table
        associated_data("basic_info", "name", "c1", "-", "k2"),  # another key version
        aad + b"x",
        b"",
    ):
        with pytest.raises(DecryptionError, match="authentication failed"):
            aead.decrypt(blob, other)


def test_ciphertext_swapped_between_customers_or_rows_fails(aead: Aead) -> None:
    blob_a = aead.encrypt(PLAINTEXT, field_aad("basic_info", "name", "cA", 1))
    with pytest.raises(DecryptionError):
        aead.decrypt(blob_a, field_aad("basic_info", "name", "cB", 1))
    order = aead.encrypt(b'{"amount":1}', field_aad("orders", "details", "cA", 1, "o1"))
    with pytest.raises(DecryptionError):
        aead.decrypt(order, field_aad("orders", "details", "cA", 1, "o2"))
    with pytest.raises(DecryptionError):
        aead.decrypt(order, field_aad("orders", "details", "cA", 1))


def test_field_aad_is_the_canonical_associated_data() -> None:
    """field_aad is built by hand for speed; it must stay byte-equal to associated_data,
    or values written by one code path would not open in the other."""
    assert field_aad("basic_info", "name", "c1", 1) == associated_data(
        "basic_info", "name", "c1", "-", "k1"
    )
    assert field_aad("orders", "details", "c1", 3, "o9") == associated_data(
        "orders", "details", "c1", "o9", "k3"
    )


def test_decrypt_fails_with_wrong_key(aead: Aead) -> None:
    aad = associated_data("t", "c", "c1")
    blob = aead.encrypt(PLAINTEXT, aad)
    with pytest.raises(DecryptionError):
        Aead(new_key()).decrypt(blob, aad)


def test_one_flipped_bit_anywhere_fails(aead: Aead) -> None:
    aad = associated_data("t", "c", "c1")
    blob = aead.encrypt(PLAINTEXT, aad)
    for bit in range(len(blob) * 8):
        tampered = bytearray(blob)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(DecryptionError):
            aead.decrypt(bytes(tampered), aad)


def test_truncated_or_extended_blob_fails(aead: Aead) -> None:
    aad = associated_data("t", "c", "c1")
    blob = aead.encrypt(PLAINTEXT, aad)
    for length in range(len(blob)):
        with pytest.raises(DecryptionError):
            aead.decrypt(blob[:length], aad)
    with pytest.raises(DecryptionError):
        aead.decrypt(blob + b"\x00", aad)


# -- envelope ---------------------------------------------------------------------------------
def test_wrapped_data_key_is_bound_to_customer_category_and_bucket() -> None:
    bucket_aead = Aead(new_key())
    data_key, wrapped = new_wrapped_data_key(bucket_aead, "c1", "basic", "basic/2029-11")
    assert data_key not in wrapped
    assert unwrap_data_key(bucket_aead, wrapped, "c1", "basic", "basic/2029-11", 1) == data_key
    for customer, category, bucket, version in (
        ("c1", "basic", "basic/2029-12", 1),  # another bucket id
        ("c2", "basic", "basic/2029-11", 1),  # another customer
        ("c1", "identity", "basic/2029-11", 1),  # another category
        ("c1", "basic", "basic/2029-11", 2),  # another key version
    ):
        with pytest.raises(DecryptionError, match="data key"):
            unwrap_data_key(bucket_aead, wrapped, customer, category, bucket, version)
    with pytest.raises(DecryptionError):
        unwrap_data_key(Aead(new_key()), wrapped, "c1", "basic", "basic/2029-11", 1)


def test_bucket_ids() -> None:
    from datetime import date

    assert bucket_id("basic", date(2029, 3, 31)) == "basic/2029-03"
    assert bucket_id("behaviour", None) == "behaviour/unassigned"
    assert data_key_aad("c1", "basic", "basic/2029-03", 1) == associated_data(
        "data_keys", "c1", "basic", "basic/2029-03", "k1"
    )


# -- blind index ------------------------------------------------------------------------------
def test_blind_index_normalises_equal_values() -> None:
    indexer = BlindIndexer(new_key())
    email = indexer.index("email", "ada.lovelace@example.com")
    assert len(email) == BLIND_INDEX_BYTES
    assert indexer.index("email", "  Ada.Lovelace@EXAMPLE.com ") == email
    assert indexer.index("email", "ada.lovelace@example.org") != email
    phone = indexer.index("phone", "+4915123456789")
    for variant in ("+49 151 2345 6789", "+49 (151) 2345-6789", "+49.151.23456789 "):
        assert indexer.index("phone", variant) == phone
    assert indexer.index("phone", "+4915123456780") != phone
    assert indexer.index("external_id", " shopify-1-2 ") == indexer.index(
        "external_id", "shopify-1-2"
    )
    assert normalise("phone", "+1 (555) 010-0000") == "+15550100000"


def test_blind_index_kinds_and_keys_differ() -> None:
    root = new_key()
    indexer = BlindIndexer(root)
    value = "+4915123456789"
    by_kind = {kind: indexer.index(kind, value) for kind in BlindIndexer.KINDS}
    assert len(set(by_kind.values())) == len(BlindIndexer.KINDS)
    assert BlindIndexer(root).index("email", "a@b.example") == indexer.index("email", "a@b.example")
    assert BlindIndexer(new_key()).index("email", "a@b.example") != indexer.index(
        "email", "a@b.example"
    )


# -- the local keyring ------------------------------------------------------------------------
def test_keyring_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keyring.json"
    keyring = LocalKeyring.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keyring.keyring_id.startswith("kr-")
    keyring.ensure_bucket_keys(["basic/2029-01"])  # a rewrite keeps the mode
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(KeyringError, match="already exists"):
        LocalKeyring.create(path)
    assert LocalKeyring.load(path).keyring_id == keyring.keyring_id


def test_missing_keyring_names_custos_init(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="custos init") as excinfo:
        LocalKeyring.load(tmp_path / "nope.json")
    assert "nope.json" in str(excinfo.value)


def test_group_readable_keyring_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    LocalKeyring.create(path)
    for mode in (0o640, 0o604, 0o660):
        path.chmod(mode)
        with pytest.raises(KeyringError, match="chmod 600"):
            LocalKeyring.load(path)
    path.chmod(0o600)
    LocalKeyring.load(path)


@pytest.mark.parametrize("content", ["not json at all", "[1, 2]", '{"format": "other/1"}', ""])
def test_garbage_keyring_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keyring.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    with pytest.raises(KeyringError, match="unreadable|not a Custos keyring"):
        LocalKeyring.load(path)


def test_ensure_bucket_keys_is_idempotent_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    keyring = LocalKeyring.create(path)
    buckets = ["basic/2029-01", "identity/2027-05"]
    first = keyring.ensure_bucket_keys(buckets)
    assert set(first) == set(buckets)
    assert all(k.version == 1 and len(k.key) == KEY_BYTES for k in first.values())
    assert first["basic/2029-01"] != first["identity/2027-05"]
    assert keyring.ensure_bucket_keys(buckets) == first
    reloaded = LocalKeyring.load(path)
    assert reloaded.bucket_keys(buckets) == first
    assert reloaded.ensure_bucket_keys(buckets) == first
    assert reloaded.bucket_ids() == sorted(buckets)
    with pytest.raises(KeyringError, match="no key for bucket"):
        reloaded.bucket_keys(["basic/2030-01"])


def _ensure_many(path: str, name: str, barrier, queue) -> None:
    keyring = LocalKeyring.load(Path(path))
    barrier.wait()
    got: dict[str, str] = {}
    for n in range(25):
        wanted = [f"basic/{name}-{n:02d}", f"shared/{n:02d}"]
        got.update({b: k.key.hex() for b, k in keyring.ensure_bucket_keys(wanted).items()})
    queue.put(got)


def test_concurrent_ensure_from_two_processes_loses_no_key(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    LocalKeyring.create(path)
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_ensure_many, args=(str(path), name, barrier, queue))
        for name in ("p1", "p2")
    ]
    for worker in workers:
        worker.start()
    handed_out = [queue.get(timeout=60), queue.get(timeout=60)]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    final = LocalKeyring.load(path)
    assert len(final.bucket_ids()) == 25 * 3
    stored = {b: k.key.hex() for b, k in final.bucket_keys(final.bucket_ids()).items()}
    # Every key a process was given (and could have encrypted with) is the one kept.
    for got in handed_out:
        for bucket, key in got.items():
            assert stored[bucket] == key, f"{bucket}: key handed out was later replaced"


# -- a real seeded vault ----------------------------------------------------------------------
def _fetch_basic(conn, customer_id: str):
    return conn.execute(
        text(
            "SELECT b.name, d.wrapped_key, d.bucket, d.key_version, d.wrap_version "
            "FROM basic_info b "
            "JOIN data_keys d ON d.customer_id = b.customer_id AND d.category = 'basic' "
            "WHERE b.customer_id = :cid"
        ),
        {"cid": customer_id},
    ).one()


def _decrypt_name(rt, customer_id: str, row) -> str:
    name, wrapped, bucket, version, wrap_version = row
    bucket_key = rt.keys.bucket_key(bucket, wrap_version)
    data_key = unwrap_data_key(
        Aead(bucket_key), bytes(wrapped), customer_id, "basic", bucket, wrap_version
    )
    return (
        Aead(data_key)
        .decrypt(bytes(name), field_aad("basic_info", "name", customer_id, version))
        .decode()
    )


def test_seeded_row_decrypts_end_to_end_and_not_when_moved(seeded_vault, seeded_plaintext):
    rt, _ = seeded_vault
    indexer = BlindIndexer(rt.keys.blind_index_key())
    first, second = seeded_plaintext[0], seeded_plaintext[1]
    with rt.engine.connect() as conn:
        ids = [
            conn.scalar(
                text("SELECT id FROM customers WHERE external_id_bidx = :b"),
                {"b": indexer.index("external_id", r.external_id)},
            )
            for r in (first, second)
        ]
        assert all(ids), "seeded customers are found by their external-id blind index"
        row_a = _fetch_basic(conn, ids[0])
        # Lookup by e-mail works through the blind index, whatever the case.
        by_email = conn.scalar(
            text("SELECT customer_id FROM basic_info WHERE email_bidx = :b"),
            {"b": indexer.index("email", first.basic["email"].upper())},
        )
    name = _decrypt_name(rt, ids[0], row_a)
    assert name and name == first.basic["name"]
    assert by_email == ids[0]
    assert first.basic["name"].encode() not in bytes(row_a[0])

    with rt.engine.begin() as conn:
        conn.execute(
            text("UPDATE basic_info SET name = :n WHERE customer_id = :cid"),
            {"n": bytes(row_a[0]), "cid": ids[1]},
        )
    with rt.engine.connect() as conn:
        row_b = _fetch_basic(conn, ids[1])
    assert bytes(row_b[0]) == bytes(row_a[0])
    with pytest.raises(DecryptionError):
        _decrypt_name(rt, ids[1], row_b)
    # Even under the first customer's data key, the second customer's binding is refused.
    _, wrapped, bucket, version, wrap_version = row_a
    data_key = unwrap_data_key(
        Aead(rt.keys.bucket_key(bucket, wrap_version)),
        bytes(wrapped),
        ids[0],
        "basic",
        bucket,
        wrap_version,
    )
    with pytest.raises(DecryptionError):
        Aead(data_key).decrypt(bytes(row_a[0]), field_aad("basic_info", "name", ids[1], version))


_AROUND_AT = re.compile(rb"[A-Za-z0-9._%+-]*@[A-Za-z0-9.-]*")


def _emails_in(blob: bytes, emails: set[bytes]) -> set[bytes]:
    """Which of ``emails`` occur in ``blob``: each '@' is expanded to the e-mail-ish run of
    bytes around it, and every (local suffix, domain prefix) of that run is looked up."""
    found = set()
    for match in _AROUND_AT.finditer(blob):
        local, _, domain = match.group().partition(b"@")
        for i in range(len(local)):
            for j in range(1, len(domain) + 1):
                candidate = local[i:] + b"@" + domain[:j]
                if candidate in emails:
                    found.add(candidate)
    return found


def test_no_ciphertext_column_or_vault_file_holds_a_seeded_email(seeded_vault, seeded_plaintext):
    rt, report = seeded_vault
    emails = {r.basic["email"].encode() for r in seeded_plaintext}
    leaked_on_purpose = {
        r.basic["email"].encode() for r in seeded_plaintext if r.source_ref and "@" in r.source_ref
    }
    assert len(emails) == report["customers"]
    assert len(leaked_on_purpose) == sum(report["injected"]["PLAINTEXT_PI_IN_METADATA"].values())
    names = {r.basic["name"].encode() for r in seeded_plaintext[:100]}
    ciphertext_columns = [
        (table.name, column.name)
        for table in Base.metadata.tables.values()
        for column in table.c
        if column.info.get("pi") == "ciphertext"
    ]
    assert ("basic_info", "email") in ciphertext_columns
    with rt.engine.connect() as conn:
        # The probe works: it finds the e-mails the seeder deliberately put in plaintext.
        refs = b"\n".join(
            ref.encode() for ref in conn.scalars(text("SELECT source_ref FROM customers")) if ref
        )
        assert _emails_in(refs, emails) == leaked_on_purpose
        for table, column in ciphertext_columns:
            values = [
                bytes(v)
                for v in conn.scalars(
                    text(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")
                )
            ]
            if table == "basic_info":
                assert len(values) == report["customers"], f"{table}.{column}"
            joined = b"\x00".join(values)
            assert _emails_in(joined, emails) == set(), f"{table}.{column}"
            assert not [name for name in names if name in joined], f"{table}.{column}"
    if rt.engine.dialect.name == "sqlite":
        # The database file itself (and its WAL) holds exactly the e-mails the seeder
        # injected into a metadata column (the violation the storage check must catch).
        database = Path(rt.engine.url.database)
        blob = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        assert leaked_on_purpose and _emails_in(blob, emails) == leaked_on_purpose
