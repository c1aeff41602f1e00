"""The landing contract, the streaming reader and row validation (collection, first layer).

Every test builds its files in tmp_path and checks the count invariant: every data line
of a file is either a row or a reject, and every row is either accepted or quarantined
with exactly one reason code (the first finding), so received == accepted + quarantined.
"""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from custos.collection import (
    DuplicateTracker,
    read_landing_file,
    validate_row,
)
from custos.collection import contract as c
from custos.policy import load_policy

POLICY = load_policy(Path(__file__).resolve().parents[1] / "include" / "policy")
TODAY = date(2026, 11, 1)
CANARY_EMAIL = "quillon.zephyrine@canary-leak.example"
CANARY_NAME = "Quillon Marchbanks-Zephyrine"

GOOD = {
    "customers": {
        "external_id": "c-{i}",
        "source_system": "shopify",
        "collected_at": "2026-10-01T12:00:00+02:00",
        "country": "DE",
        "name": "Erika Mustermann",
        "gender": "f",
        "email": "erika{i}@example.de",
        "phone": "030 123456",
        "address_line": "Hauptstr. 1",
        "city": "Berlin",
        "postal_code": "10115",
        "birth_date": "1980-05-17",
        "passport_number": "",
        "national_id": "",
        "consent_id": "k-{i}",
    },
    "consents": {
        "consent_id": "k-{i}",
        "external_id": "c-{i}",
        "subject": "customer",
        "notice_version": "2026-01",
        "purposes": "order_fulfilment;payment",
        "channel": "checkbox",
        "granted_at": "2026-10-01T12:00:00Z",
        "withdrawn_at": "",
    },
    "orders": {
        "order_id": "o-{i}",
        "external_id": "c-{i}",
        "placed_at": "2026-10-02T08:00:00Z",
        "completed_at": "2026-10-03",
        "amount": "49.90",
        "currency": "EUR",
        "payment_method": "card",
        "card_last4": "4242",
        "ship_country": "DE",
        "carrier": "DHL",
        "tracking_number": "JD0001",
    },
    "events": {
        "external_id": "c-{i}",
        "occurred_at": "2026-10-02T08:00:00Z",
        "event_type": "view",
        "item_id": "sku-1",
        "detail": "",
    },
}


def good(kind: str, i: int, **overrides: str) -> dict[str, str]:
    row = {k: v.format(i=i) for k, v in GOOD[kind].items()}
    row.update(overrides)
    return row


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header or list(rows[0]))
    for row in rows:
        writer.writerow(row.values())
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def data_lines(path: Path) -> int:
    lines = [ln for ln in path.read_bytes().split(b"\n") if ln.strip()]
    return len(lines) - (1 if path.suffix == ".csv" and lines else 0)


class Result:
    def __init__(self, path: Path, chunk_rows: int = 10_000):
        self.rows: list[tuple[int, dict]] = []
        self.rejects: list[tuple[int, str, str]] = []
        self.problems = []
        self.chunks = 0
        for chunk in read_landing_file(path, chunk_rows=chunk_rows):
            self.chunks += 1
            self.rows += chunk.rows
            self.rejects += chunk.rejects
            self.problems += chunk.problems
            kind = chunk.kind
        self.kind = kind
        self.problem_codes = [p.code for p in self.problems]
        # validation: the first finding is the row's quarantine code (as the ingest will do)
        tracker = DuplicateTracker()
        self.accepted: list[dict] = []
        self.findings = []
        quarantined = Counter(reject.code for reject in self.rejects)
        for _, row in self.rows:
            normalised, findings = validate_row(kind, row, today=TODAY, policy=POLICY)
            if normalised is not None:
                duplicate = tracker.check(kind, normalised)
                findings = [duplicate] if duplicate else []
            if findings:
                self.findings += findings
                quarantined[findings[0].code] += 1
            else:
                self.accepted.append(normalised)
        self.quarantined = quarantined
        if kind is not None and "BINARY_FILE" not in self.problem_codes:
            assert len(self.rows) + len(self.rejects) == data_lines(path)
            assert len(self.accepted) + sum(quarantined.values()) == data_lines(path)


# ---- the contract --------------------------------------------------------------------------


def test_contract_columns_are_the_issue_ones():
    assert (
        list(c.CONTRACT["customers"])
        == (
            "external_id source_system collected_at country name gender email phone address_line "
            "city postal_code birth_date passport_number national_id consent_id"
        ).split()
    )
    assert (
        list(c.CONTRACT["consents"])
        == (
            "consent_id external_id subject notice_version purposes channel granted_at withdrawn_at"
        ).split()
    )
    assert (
        list(c.CONTRACT["orders"])
        == (
            "order_id external_id placed_at completed_at amount currency payment_method card_last4 "
            "ship_country carrier tracking_number"
        ).split()
    )
    assert list(c.CONTRACT["events"]) == "external_id occurred_at event_type item_id detail".split()
    assert c.CONTRACT["consents"]["subject"].values == ("customer", "guardian")
    for kind in c.KINDS:
        assert set(c.required_columns(kind)) <= set(c.CONTRACT[kind])
        assert all(col.type in c.TYPES for col in c.CONTRACT[kind].values())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("customers.csv", ("customers", "csv")),
        ("customers-001.csv", ("customers", "csv")),
        ("orders_2026-11.jsonl", ("orders", "jsonl")),
        ("events.jsonl", ("events", "jsonl")),
        ("consents.CSV", None),
        ("customer.csv", None),
        ("customers.xlsx", None),
        ("customers-.csv", None),
    ],
)
def test_file_names(name, expected):
    assert c.kind_of(name) == expected


def test_every_reason_code_has_a_one_line_meaning():
    required = {
        "NO_CONSENT",
        "MINOR_WITHOUT_GUARDIAN_CONSENT",
        "INVALID_COUNTRY",
        "INVALID_EMAIL",
        "INVALID_PHONE",
        "FUTURE_DATE",
        "INVALID_DATE",
        "FIELD_TOO_LONG",
        "NOT_UTF8",
        "MALFORMED_ROW",
        "MISSING_FIELD",
        "DUPLICATE_IN_BATCH",
        "UNKNOWN_PURPOSE",
        "UNKNOWN_CUSTOMER",
        "INVALID_AMOUNT",
    }
    assert required <= set(c.REASONS)
    for code, meaning in {**c.REASONS, **c.FILE_PROBLEMS}.items():
        assert getattr(c, code) == code
        assert meaning and "\n" not in meaning
    # The consent gate (next layer) emits these; they are part of the stable vocabulary.
    assert set(c.GATE_REASONS) == {
        "NO_CONSENT",
        "MINOR_WITHOUT_GUARDIAN_CONSENT",
        "UNKNOWN_CUSTOMER",
    }


# ---- good files ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", c.KINDS)
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_good_files_are_accepted_whole(tmp_path, kind, fmt):
    rows = [good(kind, i) for i in range(25)]
    path = tmp_path / f"{kind}-001.{fmt}"
    write_csv(path, rows) if fmt == "csv" else write_jsonl(path, rows)
    result = Result(path, chunk_rows=10)
    assert result.chunks == 3
    assert len(result.accepted) == 25 and not result.quarantined and not result.problems
    first_line = 2 if fmt == "csv" else 1
    assert [n for n, _ in result.rows] == list(range(first_line, first_line + 25))


def test_normalisation(tmp_path):
    row = good("customers", 1, country=" de ", email="Erika@Example.DE", name="  Erika ")
    normalised, findings = validate_row("customers", row, today=TODAY, policy=POLICY)
    assert findings == []
    assert normalised["country"] == "DE"
    assert normalised["email"] == "Erika@example.de"
    assert normalised["phone"] == "+4930123456"
    assert normalised["name"] == "Erika"
    assert normalised["passport_number"] is None
    assert normalised["birth_date"] == date(1980, 5, 17)
    assert normalised["collected_at"] == datetime(2026, 10, 1, 10, tzinfo=UTC)
    consent, _ = validate_row(
        "consents",
        good("consents", 1, purposes="payment; payment;marketing;"),
        today=TODAY,
        policy=POLICY,
    )
    assert consent["purposes"] == ("payment", "marketing")
    order, _ = validate_row("orders", good("orders", 1, currency="eur"), today=TODAY, policy=POLICY)
    assert order["amount"] == Decimal("49.90") and order["currency"] == "EUR"
    # JSON numbers arrive as text and are validated like CSV values
    path = write_jsonl(tmp_path / "orders.jsonl", [{**good("orders", 1), "amount": 12.5}])
    assert Result(path).accepted[0]["amount"] == Decimal("12.5")


@pytest.mark.parametrize(
    ("country", "national", "e164"),
    [
        ("US", "(201) 555-0123", "+12015550123"),
        ("GB", "0121 234 5678", "+441212345678"),
        ("DE", "030 123456", "+4930123456"),
        ("JP", "03-1234-5678", "+81312345678"),
        ("BR", "(11) 2345-6789", "+551123456789"),
        ("GB", "+44 121 234 5678", "+441212345678"),
    ],
)
def test_phone_normalised_to_e164_for_the_rows_country(country, national, e164):
    row = good("customers", 1, country=country, phone=national)
    normalised, findings = validate_row("customers", row, today=TODAY, policy=POLICY)
    assert findings == [] and normalised["phone"] == e164


# ---- one test per row-level reason code ----------------------------------------------------

ROW_CASES = [
    # (code, kind, field, bad value)
    ("INVALID_COUNTRY", "customers", "country", "XX"),
    ("INVALID_COUNTRY", "orders", "ship_country", "Germany"),
    ("INVALID_EMAIL", "customers", "email", "erika at example.de"),
    ("INVALID_EMAIL", "customers", "email", "erika@example"),
    ("INVALID_PHONE", "customers", "phone", "12"),
    ("INVALID_PHONE", "customers", "phone", "+1 201 555 0123"),  # valid, but not for DE
    ("FUTURE_DATE", "customers", "birth_date", "2026-11-02"),
    ("FUTURE_DATE", "orders", "placed_at", "2026-11-02T00:00:00Z"),
    ("INVALID_DATE", "customers", "birth_date", "17/05/1980"),
    ("INVALID_DATE", "consents", "granted_at", "2026-13-01"),
    ("INVALID_DATE", "orders", "completed_at", "2026-09-01"),  # before placed_at
    ("FIELD_TOO_LONG", "customers", "address_line", "x" * 1001),
    ("FIELD_TOO_LONG", "events", "detail", "y" * 1001),
    ("MISSING_FIELD", "customers", "external_id", ""),
    ("MISSING_FIELD", "consents", "purposes", " ; "),
    ("UNKNOWN_PURPOSE", "consents", "purposes", "payment;telepathy"),
    ("INVALID_AMOUNT", "orders", "amount", "-5"),
    ("INVALID_AMOUNT", "orders", "amount", "1e3"),
    ("INVALID_CURRENCY", "orders", "currency", "EUX"),
    ("INVALID_VALUE", "consents", "subject", "parent"),
]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize(("code", "kind", "field", "value"), ROW_CASES)
def test_row_reason_code(tmp_path, fmt, code, kind, field, value):
    rows = [good(kind, i) for i in range(5)]
    rows[1][field] = value
    rows[3][field] = value
    path = tmp_path / f"{kind}.{fmt}"
    write_csv(path, rows) if fmt == "csv" else write_jsonl(path, rows)
    result = Result(path)
    assert result.quarantined == Counter({code: 2})
    assert len(result.accepted) == 3
    assert {(f.code, f.field) for f in result.findings} == {(code, field)}
    assert all(value not in f.detail or not value for f in result.findings)


def test_text_of_exactly_1000_characters_is_accepted():
    row = good("customers", 1, address_line="x" * 1000)
    normalised, findings = validate_row("customers", row, today=TODAY, policy=POLICY)
    assert findings == [] and len(normalised["address_line"]) == 1000


def test_today_is_not_the_future():
    row = good("customers", 1, birth_date="2026-11-01", collected_at="2026-11-01T23:59:59Z")
    assert validate_row("customers", row, today=TODAY, policy=POLICY)[1] == []


def test_all_findings_of_a_row_are_listed():
    row = good("customers", 1, country="ZZ", email="nope", birth_date="2030-01-01")
    normalised, findings = validate_row("customers", row, today=TODAY, policy=POLICY)
    assert normalised is None
    assert findings == [  # the phone is not checked without a valid country
        ("INVALID_COUNTRY", "country"),
        ("INVALID_EMAIL", "email"),
        ("FUTURE_DATE", "birth_date"),
    ]


@pytest.mark.parametrize(
    ("kind", "field"),
    [("customers", "external_id"), ("consents", "consent_id"), ("orders", "order_id")],
)
def test_duplicate_in_batch(tmp_path, kind, field):
    rows = [good(kind, i) for i in range(4)] + [good(kind, 0), good(kind, 2), good(kind, 0)]
    if kind == "customers":
        rows[-1]["name"] = "someone else"  # same key, other content: still a duplicate
    result = Result(write_csv(tmp_path / f"{kind}.csv", rows))
    assert result.quarantined == Counter({"DUPLICATE_IN_BATCH": 3})
    assert len(result.accepted) == 4
    assert {f.field for f in result.findings} == {field}


def test_events_have_no_batch_key(tmp_path):
    result = Result(write_csv(tmp_path / "events.csv", [good("events", 1)] * 3))
    assert len(result.accepted) == 3


# ---- malformed files -----------------------------------------------------------------------


def test_binary_file(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    result = Result(path)
    assert result.problem_codes == ["BINARY_FILE"]
    assert result.problems[0].fatal
    assert not result.rows and not result.rejects


def test_gzip_named_jsonl_is_binary(tmp_path):
    import gzip

    path = tmp_path / "events.jsonl"
    path.write_bytes(gzip.compress(b'{"external_id": "c-1"}\n' * 100))
    assert Result(path).problem_codes == ["BINARY_FILE"]


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
@pytest.mark.parametrize("name", ["customers.csv", "events.jsonl"])
def test_empty_file(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    result = Result(path)
    assert result.problem_codes == ["EMPTY_FILE"] and result.problems[0].fatal
    assert not result.rows and not result.rejects


def test_header_only_csv_is_no_problem(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(",".join(c.CONTRACT["orders"]) + "\n")
    result = Result(path)
    assert result.chunks == 1 and not result.problems and not result.rows


def test_unknown_file_kind(tmp_path):
    path = write_csv(tmp_path / "clients.csv", [good("customers", 1)])
    chunks = list(read_landing_file(path))
    assert len(chunks) == 1 and chunks[0].kind is None
    assert [p.code for p in chunks[0].problems] == ["UNKNOWN_FILE_KIND"]
    assert not chunks[0].rows and not chunks[0].rejects


def test_wrong_header_names_missing_and_unknown_columns(tmp_path):
    rows = [good("customers", i) for i in range(3)]
    header = list(rows[0])
    header[header.index("email")] = "e_mail"
    header[header.index("country")] = "nation"
    result = Result(write_csv(tmp_path / "customers.csv", rows, header=header))
    assert result.problem_codes == ["BAD_HEADER"]
    problem = result.problems[0]
    assert problem.fatal and problem.line == 1
    assert "missing required columns: country" in problem.detail
    assert "e_mail (column 7)" in problem.detail and "nation (column 4)" in problem.detail
    assert not result.rows
    assert result.quarantined == Counter({"BAD_HEADER": 3})


def test_missing_header_row_does_not_echo_the_data(tmp_path):
    path = tmp_path / "customers.csv"
    rows = [good("customers", i, name=CANARY_NAME, email=CANARY_EMAIL) for i in range(3)]
    path.write_text("".join(",".join(r.values()) + "\n" for r in rows))
    result = Result(path)
    assert result.problem_codes == ["BAD_HEADER"]
    assert "no header row" in result.problems[0].detail
    assert CANARY_NAME not in result.problems[0].detail
    assert result.quarantined == Counter({"BAD_HEADER": 2})  # line 1 was taken as the header


def test_optional_columns_may_be_left_out(tmp_path):
    rows = [
        {k: v for k, v in good("customers", i).items() if k != "passport_number"} for i in range(2)
    ]
    result = Result(write_csv(tmp_path / "customers.csv", rows))
    assert len(result.accepted) == 2 and result.accepted[0]["passport_number"] is None


def test_truncated_last_csv_line(tmp_path):
    path = write_csv(tmp_path / "customers.csv", [good("customers", i) for i in range(4)])
    path.write_bytes(path.read_bytes()[:-60])  # the upload was cut inside the last row
    result = Result(path)
    assert result.problem_codes == ["TRUNCATED_LAST_LINE"]
    assert not result.problems[0].fatal and result.problems[0].line == 5
    assert [r[:3] for r in result.rejects] == [(5, "MALFORMED_ROW", result.rejects[0][2])]
    assert len(result.accepted) == 3


def test_truncated_last_jsonl_line(tmp_path):
    path = write_jsonl(tmp_path / "orders.jsonl", [good("orders", i) for i in range(4)])
    path.write_bytes(path.read_bytes()[:-20])
    result = Result(path)
    assert result.problem_codes == ["TRUNCATED_LAST_LINE"]
    assert result.quarantined == Counter({"MALFORMED_ROW": 1}) and len(result.accepted) == 3


def test_last_line_without_newline_but_complete_is_kept(tmp_path):
    path = write_csv(tmp_path / "orders.csv", [good("orders", i) for i in range(2)])
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    result = Result(path)
    assert len(result.accepted) == 2 and not result.problems


def test_unparsable_json_lines(tmp_path):
    path = tmp_path / "consents.jsonl"
    lines = [json.dumps(good("consents", i)) for i in range(3)]
    lines[1] = '{"consent_id": "k-1", '  # broken JSON
    lines.append("[1, 2]")  # not an object
    lines.append(json.dumps({**good("consents", 9), "nested": {"a": 1}}))  # unknown field
    lines.append(json.dumps({**good("consents", 8), "channel": ["popup"]}))  # a list
    lines.append(json.dumps({**good("consents", 7), "channel": True}))  # a boolean
    path.write_text("\n".join(lines) + "\n")
    result = Result(path)
    assert result.quarantined == Counter({"MALFORMED_ROW": 5})
    assert [reject.line for reject in result.rejects] == [2, 4, 5, 6, 7]
    assert "unknown fields: nested" in result.rejects[2][2]
    assert len(result.accepted) == 2 and not result.problems


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_non_utf8_line(tmp_path, fmt):
    path = tmp_path / f"customers.{fmt}"
    rows = [good("customers", i) for i in range(4)]
    write_csv(path, rows) if fmt == "csv" else write_jsonl(path, rows)
    lines = path.read_bytes().split(b"\n")
    bad = 2 if fmt == "csv" else 1  # the second data row
    lines[bad] = lines[bad].replace(b"Erika Mustermann", "Erika Müller".encode("latin-1"))
    path.write_bytes(b"\n".join(lines))
    result = Result(path)
    assert result.quarantined == Counter({"NOT_UTF8": 1})
    assert result.rejects[0][0] == bad + 1
    assert len(result.accepted) == 3 and not result.problems


def test_wrong_field_count_and_bad_quoting(tmp_path):
    path = write_csv(tmp_path / "orders.csv", [good("orders", i) for i in range(4)])
    text = path.read_text()
    text += "o-9,c-9,2026-10-02T08:00:00Z\n"  # too few fields
    text += ",".join(good("orders", 10).values()) + ",extra\n"  # too many
    text += 'o-11,"c-11"x' + ",1" * 9 + "\n"  # broken quoting
    text += 'o-12,"c-12\n'  # a quoted line break: both physical lines are rejects
    text += 'still-the-field",DHL,JD0001\n'
    path.write_text(text)
    result = Result(path)
    assert result.quarantined == Counter({"MALFORMED_ROW": 5})
    assert [reject.line for reject in result.rejects] == [6, 7, 8, 9, 10]
    assert "expected 11 fields, found 3" in result.rejects[0][2]
    assert len(result.accepted) == 4 and not result.problems


def test_bom_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "events.csv"
    header = ",".join(c.CONTRACT["events"])
    path.write_bytes(b"\xef\xbb\xbf" + f"{header}\r\nc-1,2026-10-01,view,,\r\n".encode())
    result = Result(path)
    assert len(result.accepted) == 1 and not result.problems


def test_overlong_line_is_one_reject(tmp_path):
    path = write_jsonl(tmp_path / "events.jsonl", [good("events", i) for i in range(2)])
    with path.open("a") as handle:
        handle.write('{"detail": "' + "z" * (c.MAX_LINE_BYTES + 10) + '"}\n')
        handle.write(json.dumps(good("events", 3)) + "\n")
    result = Result(path)
    assert result.quarantined == Counter({"MALFORMED_ROW": 1}) and len(result.accepted) == 3


# ---- no personal data in messages ----------------------------------------------------------


def test_no_input_value_in_any_detail_or_message(tmp_path):
    canaries = [CANARY_EMAIL, CANARY_NAME, "Quillon", "canary-leak"]
    kinds_rows = {
        "customers": [
            good("customers", 1, email=CANARY_EMAIL.replace("@", " at "), name=CANARY_NAME),
            good("customers", 2, email=CANARY_EMAIL, phone=CANARY_NAME, country=CANARY_NAME[:2]),
            good("customers", 3, email=CANARY_EMAIL, name=CANARY_NAME * 40),
            good("customers", 4, email=CANARY_EMAIL, birth_date=CANARY_NAME),
            good("customers", 4, email=CANARY_EMAIL, name=CANARY_NAME),  # duplicate key
        ],
        "consents": [good("consents", 1, purposes=CANARY_NAME, subject=CANARY_EMAIL)],
        "orders": [good("orders", 1, amount=CANARY_NAME, currency=CANARY_EMAIL[:3])],
    }
    details: list[str] = []
    for kind, rows in kinds_rows.items():
        for fmt in ("csv", "jsonl"):
            path = tmp_path / f"{kind}.{fmt}"
            write_csv(path, rows) if fmt == "csv" else write_jsonl(path, rows)
            with path.open("ab") as handle:  # a malformed line and a non-UTF-8 line
                handle.write(f'{CANARY_NAME},"{CANARY_EMAIL}\n'.encode())
                handle.write(f"{CANARY_NAME}\xff,{CANARY_EMAIL}\n".encode("latin-1"))
                handle.write(f'{{"{CANARY_EMAIL}": "{CANARY_NAME}"'.encode())  # truncated
            result = Result(path)
            details += [reject.detail for reject in result.rejects]
            details += [p.detail for p in result.problems]
            details += [f.detail for f in result.findings]
            assert result.findings and result.rejects
    # a header whose line is data, and an unknown kind
    path = tmp_path / "orders.csv"
    path.write_text(f"{CANARY_NAME},{CANARY_EMAIL}\n1,2\n")
    details += [p.detail for p in Result(path).problems]
    with pytest.raises(ValueError) as raised:
        validate_row(CANARY_NAME, {}, today=TODAY, policy=POLICY)
    details.append(str(raised.value))
    for detail in details:
        for canary in canaries:
            assert canary.lower() not in detail.lower(), detail


# ---- memory --------------------------------------------------------------------------------


def _big_customers_file(path: Path, n: int) -> Path:
    template = good("customers", 0)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(template)
        for i in range(n):
            writer.writerow(
                v.replace("0", str(i)) if k in ("external_id", "email") else v
                for k, v in template.items()
            )
    return path


def _peak_while_reading(path: Path) -> tuple[int, int, int]:
    tracemalloc.start()
    try:
        rows = rejects = 0
        for chunk in read_landing_file(path):
            rows += len(chunk.rows)
            rejects += len(chunk.rejects)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return rows, rejects, peak


def test_memory_does_not_grow_with_file_size(tmp_path):
    small = _peak_while_reading(_big_customers_file(tmp_path / "customers-a.csv", 20_000))
    big = _peak_while_reading(_big_customers_file(tmp_path / "customers-b.csv", 200_000))
    assert big[:2] == (200_000, 0) and small[:2] == (20_000, 0)
    assert big[2] < 50 * 1024 * 1024, f"peak {big[2] / 1e6:.1f} MB"
    # ten times the rows, about the same peak (one chunk of 10,000 rows)
    assert big[2] < small[2] * 1.5, f"peaks {small[2] / 1e6:.1f} / {big[2] / 1e6:.1f} MB"
