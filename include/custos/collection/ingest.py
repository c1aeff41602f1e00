"""``custos ingest``: one landing batch into the vault, all of it or none of it (Art. 11, 12).

Order of work, all in **one database transaction** (a killed run leaves nothing behind,
and the batch registry row that makes re-ingesting a no-op commits with the data):

1. consents files are validated (invalid rows quarantined) and the valid rows staged
   (blind-indexed, with line numbers) for the gate;
2. customers files: repeated keys are held back (DUPLICATE_IN_BATCH, whole batch), then
   validate → consent gate (batch + stored consents) → minimise → encrypt, in worker
   processes for a big file (:mod:`custos.collection.customers`); this process inserts,
   or *updates* a customer already stored (upsert on the external id's blind index; their
   basic and identity data get a fresh data key, the old one is gone);
3. the staged consents: each is upserted (on the consent id's blind index) for its
   customer, so a later withdrawal updates the stored consent; a stored customer a
   withdrawal leaves without any purpose is marked ``deletion_requested``;
4. orders and events, for customers accepted now or stored before, when a purpose in force
   needs that category of data; orders upsert on the order id's blind index.

Every file runs inside a savepoint and ends with the Great Expectations gate
(:mod:`custos.collection.quality`); a file that fails it is rolled back and held whole
(``FILE_QUALITY_GATE``). Every row that is not stored is encrypted into the quarantine
with one reason code, so ``received == accepted + sum(quarantined)`` always (checked
before commit). After the commit the landing copy is destroyed and that is recorded.

Nothing returned or logged holds a value from the batch: codes, counts, field and file
names, line numbers and hashes only.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from custos.collection import contract as c
from custos.collection.batch import LandedBatch, LandedFile, destroy_landing_copy, scan_batch
from custos.collection.customers import (
    STORED_WIDTHS,
    consent_views,
    naive_utc,
    source_ref,
    stored_consents,
    stored_customers,
    stored_text,
)
from custos.collection.gate import purposes_in_force
from custos.collection.quality import FileStatuses, evaluate_out_of_process
from custos.collection.quarantine import FILE, LINE, ROW, QuarantineWriter, row_payload
from custos.collection.reader import read_landing_file
from custos.collection.staging import Staging
from custos.collection.validate import Finding, validate_row
from custos.crypto.aead import FORMAT_VERSION, Aead
from custos.crypto.blind_index import BlindIndexer
from custos.crypto.envelope import DATA_KEY_VERSION, bucket_id, data_key_aad, field_aad
from custos.vault.models import IngestBatch
from custos.vault.writer import (
    RetentionTable,
    _ids,
    insert_rows,
    new_id,
    prepare_bulk_connection,
)

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000
# Customers files bigger than this are judged in worker processes (a smaller file is not
# worth starting them: about a second).
PARALLEL_BYTES = 4 << 20
MAX_WORKERS = 2
INGEST_CACHE_KIB = 65536
# Which Art. 2 category an item kind is, and the date its retention runs from.
ITEM_CATEGORY = {c.ORDERS: ("transaction", "placed_at"), c.EVENTS: ("behaviour", "occurred_at")}
PASS_ORDER = (c.CUSTOMERS, c.CONSENTS, c.ORDERS, c.EVENTS)


@dataclass
class FileReport:
    file: str
    kind: str | None
    received: int = 0
    accepted: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    dropped_fields: Counter[str] = field(default_factory=Counter)
    problems: list[dict] = field(default_factory=list)
    quality: dict | None = None
    held: bool = False
    seconds: float = 0.0  # time spent on this file (all passes), for the benchmark

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "kind": self.kind,
            "received": self.received,
            "accepted": self.accepted,
            "quarantined": dict(sorted(self.quarantined.items())),
            "dropped_fields": dict(sorted(self.dropped_fields.items())),
            "problems": self.problems,
            "held_by_quality_gate": self.held,
            "quality": self.quality,
            "seconds": round(self.seconds, 3),
        }


class _Ingest:
    """One batch's run. Holds the connection, keys, staging and per-file reports."""

    def __init__(self, rt, batch: LandedBatch, conn, staging: Staging, now: datetime):
        self.rt, self.policy, self.batch, self.conn = rt, rt.policy, batch, conn
        self.staging, self.now = staging, now
        self.today = now.date()
        self.now_naive = naive_utc(now)
        self.sqlite = conn.dialect.name == "sqlite"
        # The driver's placeholder, for the hand-written bulk statements below.
        self.marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self.indexer = BlindIndexer(rt.keys.blind_index_key())
        self.retention = RetentionTable.from_policy(rt.policy)
        self.quarantine = QuarantineWriter(
            conn,
            rt.keys,
            batch_id=batch.batch_id,
            batch_sha256=batch.content_sha256,
            now=now,
            policy=rt.policy,
        )
        self.reports: dict[str, FileReport] = {}
        self.delete_requested = 0
        self.touched_customers: set[str] = set()  # stored customers whose consents changed
        # One for the whole batch: a key repeated in another file is a duplicate too.
        self.tracker = staging.seen
        self._savepoints = 0

    # -- plumbing -------------------------------------------------------------------------
    def _bidx(self, kind: str, value: str) -> bytes:
        return self.indexer.index(kind, value)

    def _dt(self, value: datetime | None):
        value = naive_utc(value)
        if value is None or not self.sqlite:
            return value
        return value.isoformat(" ", "microseconds")

    def _savepoint(self) -> str:
        self._savepoints += 1
        name = f"custos_file_{self._savepoints}"
        self.conn.exec_driver_sql(f"SAVEPOINT {name}")
        return name

    def _hold(self, report: FileReport, code: str, reject_line) -> None:
        self.quarantine.add(
            file=report.file,
            line=reject_line.line,
            kind=report.kind,
            reason=code,
            detail=reject_line.detail,
            payload_format=LINE,
            payload=reject_line.raw,
        )
        report.quarantined[code] += 1

    def _hold_row(self, report: FileReport, line: int, raw: dict, code: str, detail: str):
        self.quarantine.add(
            file=report.file,
            line=line,
            kind=report.kind,
            reason=code,
            detail=f"line {line}: {detail}",
            payload_format=ROW,
            payload=row_payload(raw),
        )
        report.quarantined[code] += 1

    def _validated(self, kind: str, report: FileReport, statuses, tracker, chunk):
        """Yield ``(line, raw, normalised)`` of the chunk's valid rows; quarantine the rest
        (consents, orders, events; customers are judged in :mod:`.customers`)."""
        for reject in chunk.rejects:
            report.received += 1
            statuses.unreadable(reject.code)
            self._hold(report, reject.code, reject)
        widths = STORED_WIDTHS.get(kind, {})
        for line, raw in chunk.rows:
            report.received += 1
            normalised, findings = validate_row(kind, raw, today=self.today, policy=self.policy)
            if normalised is not None:
                findings = [
                    Finding(c.FIELD_TOO_LONG, name)
                    for name, width in widths.items()
                    if normalised.get(name) and len(normalised[name]) > width
                ]
                duplicate = None if findings else tracker.check(kind, normalised)
                if duplicate:
                    findings = [duplicate]
            statuses.row(raw, findings)
            if findings:
                detail = "; ".join(dict.fromkeys(f.detail for f in findings))
                self._hold_row(report, line, raw, findings[0].code, detail)
                continue
            yield line, raw, normalised

    def timed(self, f: LandedFile, step: Callable[[LandedFile], None]) -> None:
        started = time.perf_counter()
        try:
            step(f)
        finally:
            self.reports[f.safe_name].seconds += time.perf_counter() - started

    def _run_file(
        self,
        f: LandedFile,
        body: Callable[[FileReport, Any, Any], None],
        before_gate: Callable[[FileReport, Any], None] | None = None,
    ) -> None:
        """Read one file inside a savepoint, gate it, keep it or hold it whole."""
        report = self.reports[f.safe_name]
        savepoint = self._savepoint()
        statuses = FileStatuses.for_kind(f.kind)
        for chunk in read_landing_file(f.path, chunk_rows=CHUNK_ROWS):
            report.problems += [
                {"code": p.code, "line": p.line, "detail": p.detail} for p in chunk.problems
            ]
            body(report, statuses, (self.tracker, chunk))
        if before_gate is not None:
            before_gate(report, statuses)
        self.quarantine.flush()
        fatal = any(p["code"] in c.FATAL_FILE_PROBLEMS for p in report.problems)
        if statuses.lines == 0 or fatal:
            # Nothing to judge, or nothing was accepted anyway (a bad header holds every
            # line under BAD_HEADER, the more precise code).
            self.conn.exec_driver_sql(f"RELEASE SAVEPOINT {savepoint}")
            return
        gate = self.policy.quality_gate
        passed, results = evaluate_out_of_process(
            statuses,
            max_unreadable_share=gate.max_unreadable_share,
            max_invalid_share=gate.max_invalid_share,
        )
        enforced = statuses.lines >= gate.min_lines
        report.quality = {
            "passed": passed,
            "enforced": enforced,
            "lines": statuses.lines,
            "expectations": results,
        }
        if passed or not enforced:
            self.conn.exec_driver_sql(f"RELEASE SAVEPOINT {savepoint}")
            return
        self.conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {savepoint}")
        self.conn.exec_driver_sql(f"RELEASE SAVEPOINT {savepoint}")
        self._hold_whole_file(f, report)

    def _hold_whole_file(self, f: LandedFile, report: FileReport) -> None:
        """Every line of a file that failed the quality gate goes to quarantine as it was."""
        self.quarantine.forget_pending()
        report.held = True
        report.received = report.accepted = 0
        report.quarantined.clear()
        report.dropped_fields.clear()
        detail = c.REASONS[c.FILE_QUALITY_GATE]
        for chunk in read_landing_file(f.path, chunk_rows=CHUNK_ROWS):
            for reject in chunk.rejects:
                report.received += 1
                self._hold(report, c.FILE_QUALITY_GATE, reject._replace(detail=detail))
            for line, raw in chunk.rows:
                report.received += 1
                self._hold_row(report, line, raw, c.FILE_QUALITY_GATE, detail)
        self.quarantine.flush()
        if f.kind == c.CONSENTS:
            self.staging.drop_consents_of(f.safe_name)
        elif f.kind == c.CUSTOMERS:
            self.staging.quarantine_outcomes_of(f.safe_name)

    def _source(self, report: FileReport, line: int, notice: str | None = None) -> str:
        return source_ref(self.batch.batch_id, report.file, line, notice)

    # -- unreadable whole files -----------------------------------------------------------
    def hold_unreadable(self, f: LandedFile, code: str, detail: str) -> None:
        report = self.reports[f.safe_name]
        report.received += 1
        report.quarantined[code] += 1
        report.problems.append({"code": code, "line": None, "detail": detail})
        self.quarantine.add(
            file=report.file,
            line=None,
            kind=report.kind,
            reason=code,
            detail=detail,
            payload_format=FILE,
            payload=f.path.read_bytes(),
        )
        self.quarantine.flush()

    # -- pass 1: stage consents -----------------------------------------------------------
    def stage_consents(self, f: LandedFile) -> None:
        """Pass 1: validate the consents file (invalid rows quarantined, counted) and stage
        the valid ones for the gate; they are stored or held in pass 3."""

        def body(report: FileReport, statuses, work) -> None:
            tracker, chunk = work
            valid = self._validated(c.CONSENTS, report, statuses, tracker, chunk)
            self.staging.add_consents(
                [self._staged_consent(report.file, row, line) for line, _raw, row in valid]
            )

        self._run_file(f, body)

    def _staged_consent(self, file: str, row: dict, line: int) -> tuple:
        return (
            self._bidx("external_id", row["external_id"]),
            file,
            self._bidx("consent_id", row["consent_id"]),
            row["subject"],
            row["channel"],
            ";".join(row["purposes"]),
            row["granted_at"].isoformat(),
            row["withdrawn_at"].isoformat() if row["withdrawn_at"] else None,
            row["notice_version"],
            line,
        )

    # -- pass 2: customers ---------------------------------------------------------------
    def customers(self, f: LandedFile) -> None:
        """Validate, gate, minimise and encrypt in worker processes (inline for a small
        file); hold duplicates back first; write every verdict here, in order."""
        from collections import deque

        from custos.collection.customers import JudgeContext

        context = JudgeContext(
            settings=self.rt.settings,
            batch_id=self.batch.batch_id,
            staging_path=self.staging.path,
            now=self.now,
        )
        workers = min(MAX_WORKERS, os.cpu_count() or 1) if f.size > PARALLEL_BYTES else 0
        pool = judge = None
        if workers:
            import multiprocessing

            from custos.collection.customers import init_worker

            mp = multiprocessing.get_context("forkserver")
            mp.set_forkserver_preload(["custos.collection.customers"])
            pool = mp.Pool(workers, initializer=init_worker, initargs=(context,))
        else:
            from custos.collection.customers import CustomerJudge

            judge = CustomerJudge(context)

        def body(report: FileReport, statuses, work) -> None:
            _, chunk = work
            for reject in chunk.rejects:
                report.received += 1
                statuses.unreadable(reject.code)
                self._hold(report, reject.code, reject)
            rows = []
            for line, raw in chunk.rows:
                report.received += 1
                duplicate = self.tracker.check(c.CUSTOMERS, raw)
                if duplicate:
                    statuses.row(raw, [duplicate])
                    self._hold_row(report, line, raw, duplicate.code, duplicate.detail)
                else:
                    rows.append((line, raw))
            if not rows:
                return
            if pool is None:
                self._apply_verdict(report, statuses, rows, judge.judge(report.file, rows))
                return
            from custos.collection.customers import judge_in_worker

            pending.append((rows, pool.apply_async(judge_in_worker, (report.file, rows))))
            while len(pending) > 2 * workers:
                self._drain(report, statuses, pending)

        pending: deque = deque()
        try:
            self._run_file(f, body, before_gate=lambda r, s: self._drain_all(r, s, pending))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
            if judge is not None:
                judge.engine.dispose()

    def _drain(self, report, statuses, pending) -> None:
        rows, result = pending.popleft()
        self._apply_verdict(report, statuses, rows, result.get())

    def _drain_all(self, report, statuses, pending) -> None:
        while pending:
            self._drain(report, statuses, pending)

    def _apply_verdict(self, report: FileReport, statuses, rows, verdict) -> None:
        from custos.collection.validate import Finding as _Finding

        outcomes = []
        for (line, raw), result in zip(rows, verdict.rows, strict=True):
            assert line == result.line
            statuses.row(raw, [_Finding(code, name) for code, name in result.findings])
            if result.delete_requested:
                self.delete_requested += 1
            if result.reason is not None:
                self._hold_row(report, line, raw, result.reason, result.detail)
                if result.ext is not None:
                    outcomes.append((result.ext, report.file, None, None))
                continue
            report.accepted += 1
            report.dropped_fields.update(result.dropped)
            outcomes.append((result.ext, report.file, result.customer_id, result.purposes))
        if verdict.new_rows:
            insert_rows(self.conn, verdict.new_rows)
        if verdict.update_rows:
            self._update_customers(verdict.update_rows)
        if verdict.deletions:
            self._request_deletion(verdict.deletions)
        self.staging.add_outcomes(outcomes)

    def _update_customers(self, rows: dict) -> None:
        """Upsert: a stored customer gets new metadata and new basic / identity rows under a
        fresh data key; the old key row is deleted (its values die with it)."""
        ids = [(row[0],) for row in rows["customers"]]
        marker = self.marker
        for table in ("basic_info", "identity_info"):
            self.conn.exec_driver_sql(f"DELETE FROM {table} WHERE customer_id = {marker}", ids)
        self.conn.exec_driver_sql(
            f"DELETE FROM data_keys WHERE customer_id = {marker} "
            "AND category IN ('basic', 'identity')",
            ids,
        )
        columns = ("country", "is_minor", "collected_at", "source_system", "source_ref")
        sets = ", ".join(f"{name} = {marker}" for name in columns)
        self.conn.exec_driver_sql(
            f"UPDATE customers SET {sets}, status = 'active' WHERE id = {marker}",
            [(row[2], row[3], row[5], row[7], row[8], row[0]) for row in rows["customers"]],
        )
        insert_rows(self.conn, rows, skip=("customers",))

    def _request_deletion(self, customer_ids: list[str]) -> None:
        marker = self.marker
        self.conn.exec_driver_sql(
            f"UPDATE customers SET status = 'deletion_requested' WHERE id = {marker}",
            [(cid,) for cid in customer_ids],
        )

    # -- resolving the customer of a consent, order or event ------------------------------
    def _resolve(self, exts: list[bytes]) -> dict[bytes, tuple[str | None, str | None, bool]]:
        """ext → (customer_id or None if quarantined in this batch, purposes, in_batch)."""
        resolved = {
            ext: (cid, purposes, True)
            for ext, (cid, purposes) in self.staging.outcomes_for(exts).items()
        }
        rest = [e for e in exts if e not in resolved]
        if rest:
            stored = stored_customers(self.conn, rest)
            consents = stored_consents(self.conn, [v[0] for v in stored.values()])
            for ext, (cid, minor, _rule) in stored.items():
                views = consent_views("-", [], consents.get(cid, []))
                purposes, _, _ = purposes_in_force(
                    views, external_id="-", minor=minor, policy=self.policy, today=self.today
                )
                resolved[ext] = (cid, ";".join(purposes), False)
        return resolved

    def _not_stored(self, ext: bytes, resolved) -> str | None:
        """The reason a row of this customer cannot be stored, if any."""
        found = resolved.get(ext)
        if found is None:
            return c.UNKNOWN_CUSTOMER
        if found[0] is None:
            return c.CUSTOMER_QUARANTINED
        return None

    # -- pass 3: consents -----------------------------------------------------------------
    def consents(self, f: LandedFile) -> None:
        """Pass 3, set-based from the staging: store each valid consent for its customer
        (upsert on the consent id's blind index), or hold it (CUSTOMER_QUARANTINED,
        UNKNOWN_CUSTOMER). Only held rows need the file again, for their content."""
        report = self.reports[f.safe_name]
        if report.held:
            return
        held: dict[int, str] = {}
        for page in self.staging.consents_of(f.safe_name, CHUNK_ROWS):
            held.update(self._consent_page(report, page))
        if held:
            for chunk in read_landing_file(f.path, chunk_rows=CHUNK_ROWS):
                for line, raw in chunk.rows:
                    reason = held.get(line)
                    if reason:
                        self._hold_row(report, line, raw, reason, c.REASONS[reason])
            self.quarantine.flush()

    def _consent_page(self, report: FileReport, page: list[tuple]) -> dict[int, str]:
        from custos.vault.models import Consent

        resolved = self._resolve([bytes(row[1]) for row in page])
        refs = [bytes(row[2]) for row in page]
        t = Consent.__table__
        existing = {}
        for start in range(0, len(refs), 900):
            query = select(t.c.ref_bidx, t.c.id).where(t.c.ref_bidx.in_(refs[start : start + 900]))
            existing.update({bytes(ref): cid for ref, cid in self.conn.execute(query)})
        held: dict[int, str] = {}
        inserts, updates = [], []
        for line, ext, ref, subject, channel, purposes, granted, withdrawn, notice in page:
            ext, ref = bytes(ext), bytes(ref)
            reason = self._not_stored(ext, resolved)
            if reason:
                held[line] = reason
                continue
            customer_id, _purposes, in_batch = resolved[ext]
            report.accepted += 1
            if not in_batch:
                self.touched_customers.add(customer_id)
            values = (
                subject,
                notice,
                channel,
                self._source(report, line),
                purposes,
                self._dt(datetime.fromisoformat(granted)),
                self._dt(datetime.fromisoformat(withdrawn)) if withdrawn else None,
            )
            if ref in existing:
                updates.append((*values, existing[ref]))
            else:
                inserts.append((new_id("k"), customer_id, *values, ref))
        marker = self.marker
        if inserts:
            columns = (
                "id, customer_id, subject, notice_version, channel, source, purposes, "
                "granted_at, withdrawn_at, ref_bidx"
            )
            self.conn.exec_driver_sql(
                f"INSERT INTO consents ({columns}) VALUES ({', '.join([marker] * 10)})", inserts
            )
        if updates:
            names = ("subject", "notice_version", "channel", "source", "purposes")
            sets = ", ".join(
                f"{name} = {marker}" for name in (*names, "granted_at", "withdrawn_at")
            )
            self.conn.exec_driver_sql(f"UPDATE consents SET {sets} WHERE id = {marker}", updates)
        return held

    def settle_touched_customers(self) -> None:
        """Stored customers whose consents changed: none left in force → deletion requested."""
        ids = sorted(self.touched_customers)
        from custos.vault.models import Customer

        t = Customer.__table__
        for start in range(0, len(ids), 900):
            part = ids[start : start + 900]
            consents = stored_consents(self.conn, part)
            minors = dict(
                self.conn.execute(select(t.c.id, t.c.is_minor).where(t.c.id.in_(part))).all()
            )
            ending = []
            for cid in part:
                views = consent_views("-", [], consents.get(cid, []))
                purposes, _, withdrawn = purposes_in_force(
                    views,
                    external_id="-",
                    minor=bool(minors.get(cid)),
                    policy=self.policy,
                    today=self.today,
                )
                if not purposes and withdrawn:
                    ending.append(cid)
            if ending:
                self.delete_requested += len(ending)
                self._request_deletion(ending)

    # -- pass 4: orders and events --------------------------------------------------------
    def items(self, f: LandedFile) -> None:
        def body(report: FileReport, statuses, work) -> None:
            tracker, chunk = work
            valid = list(self._validated(f.kind, report, statuses, tracker, chunk))
            if valid:
                self._item_chunk(f.kind, report, valid)

        self._run_file(f, body)

    def _item_chunk(self, kind: str, report: FileReport, valid: list[tuple]) -> None:
        category, moment_field = ITEM_CATEGORY[kind]
        exts = [self._bidx("external_id", row["external_id"]) for _, _, row in valid]
        resolved = self._resolve(exts)
        needing = {p.id for p in self.policy.purposes.values() if category in p.categories}
        accepted: list[tuple[int, dict, str]] = []
        for (line, raw, row), ext in zip(valid, exts, strict=True):
            reason = self._not_stored(ext, resolved)
            if reason is None:
                purposes = set((resolved[ext][1] or "").split(";")) - {""}
                if not purposes & needing:
                    reason = c.CATEGORY_NOT_CONSENTED
            if reason:
                self._hold_row(report, line, raw, reason, c.REASONS[reason])
                continue
            accepted.append((line, row, resolved[ext][0]))
        if not accepted:
            return
        report.accepted += len(accepted)
        sealers = self._item_keys(kind, category, moment_field, accepted)
        table = kind
        marker = self.marker
        existing: dict[bytes, str] = {}
        refs: list[bytes | None] = [None] * len(accepted)
        if kind == c.ORDERS:
            refs = [self._bidx("order_id", row["order_id"]) for _, row, _ in accepted]
            for start in range(0, len(refs), 900):
                query = "SELECT ref_bidx, id FROM orders WHERE ref_bidx IN ({})"
                part = refs[start : start + 900]
                sql = query.format(", ".join([marker] * len(part)))
                existing.update(
                    {bytes(r): i for r, i in self.conn.exec_driver_sql(sql, tuple(part))}
                )
        inserts, updates = [], []
        for (line, row, customer_id), ref in zip(accepted, refs, strict=True):
            row_id = existing.get(ref) if ref else None
            is_update = row_id is not None
            row_id = row_id or new_id("o" if kind == c.ORDERS else "e")
            details = {
                k: stored_text(v)
                for k, v in row.items()
                if k not in ("external_id", moment_field) and v is not None
            }
            sealed = sealers[customer_id](
                json.dumps(details, separators=(",", ":"), ensure_ascii=False),
                field_aad(table, "details", customer_id, DATA_KEY_VERSION, row_id),
            )
            moment = self._dt(row[moment_field])
            source = self._source(report, line)
            if is_update:
                updates.append((customer_id, moment, sealed, source, row_id))
            elif kind == c.ORDERS:
                inserts.append((row_id, customer_id, moment, sealed, source, ref))
            else:
                inserts.append((row_id, customer_id, moment, sealed, source))
        if inserts:
            columns = ["id", "customer_id", moment_field, "details", "source_ref"]
            if kind == c.ORDERS:
                columns.append("ref_bidx")
            self.conn.exec_driver_sql(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join([marker] * len(columns))})",
                inserts,
            )
        if updates:
            self.conn.exec_driver_sql(
                f"UPDATE {table} SET customer_id = {marker}, {moment_field} = {marker}, "
                f"details = {marker}, source_ref = {marker} WHERE id = {marker}",
                updates,
            )

    def _item_keys(self, kind, category, moment_field, accepted) -> dict[str, Callable]:
        """A sealing function per customer under their data key for ``category``: the stored
        key (unwrapped; moved to a later retention bucket if these items extend it) or a new
        one. Returns customer_id → seal(value, aad)."""
        newest: dict[str, datetime] = {}
        for _, row, cid in accepted:
            moment = naive_utc(row[moment_field])
            if cid not in newest or moment > newest[cid]:
                newest[cid] = moment
        ids = sorted(newest)
        marker = self.marker
        stored, rules = {}, {}
        for start in range(0, len(ids), 900):
            part = ids[start : start + 900]
            holders = ", ".join([marker] * len(part))
            for cid, version, bucket, wrap_version, wrapped, expires in self.conn.exec_driver_sql(
                "SELECT customer_id, key_version, bucket, wrap_version, wrapped_key, expires_on "
                f"FROM data_keys WHERE category = {marker} AND customer_id IN ({holders})",
                (category, *part),
            ):
                stored[cid] = (version, bucket, wrap_version, bytes(wrapped), expires)
            rules.update(
                self.conn.exec_driver_sql(
                    f"SELECT id, retention_rule FROM customers WHERE id IN ({holders})",
                    tuple(part),
                ).all()
            )
        plans = {}
        for cid in ids:
            expires = self.retention.expiry(rules.get(cid), category, newest[cid])
            old = stored.get(cid)
            if old and old[4] is not None and expires is not None:
                old_expiry = old[4] if isinstance(old[4], date) else date.fromisoformat(old[4])
                expires = max(expires, old_expiry)
            plans[cid] = (expires, bucket_id(category, expires))
        moving = Counter(
            bucket
            for cid, (_, bucket) in plans.items()
            if cid not in stored or stored[cid][1] != bucket
        )
        bucket_keys = self.rt.keys.reserve_encryptions(moving) if moving else {}
        sealers, inserts, moves = {}, [], []
        for cid, (expires, bucket) in plans.items():
            old = stored.get(cid)
            if old:
                data_key = self.rt.keys.unwrap_data_key(old[3], cid, category, old[1], old[2])
            else:
                data_key = _ids.take(32)
            if not old or old[1] != bucket:
                version, key = bucket_keys[bucket]
                wrapped = Aead(key).encrypt(data_key, data_key_aad(cid, category, bucket, version))
                expires_value = expires.isoformat() if (self.sqlite and expires) else expires
                if old:
                    moves.append((bucket, version, wrapped, expires_value, cid, category))
                else:
                    inserts.append(
                        (
                            cid,
                            category,
                            DATA_KEY_VERSION,
                            version,
                            bucket,
                            expires_value,
                            wrapped,
                            self._dt(self.now),
                        )
                    )
            sealers[cid] = _sealer(data_key)
        if inserts:
            insert_rows(self.conn, {"data_keys": inserts})
        if moves:
            self.conn.exec_driver_sql(
                f"UPDATE data_keys SET bucket = {marker}, wrap_version = {marker}, "
                f"wrapped_key = {marker}, expires_on = {marker} "
                f"WHERE customer_id = {marker} AND category = {marker}",
                moves,
            )
        return sealers


def _sealer(data_key: bytes) -> Callable[[str, bytes], bytes]:
    aesgcm = AESGCM(data_key)

    def seal(value: str, aad: bytes) -> bytes:
        nonce = _ids.take(12)
        return FORMAT_VERSION + nonce + aesgcm.encrypt(nonce, value.encode(), aad)

    return seal


# ---- the public entry points ----------------------------------------------------------------


def _summary(batch: LandedBatch, ingest: _Ingest | None, reports, started, extra) -> dict:
    received = sum(r.received for r in reports)
    accepted = sum(r.accepted for r in reports)
    quarantined: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for r in reports:
        quarantined.update(r.quarantined)
        dropped.update(r.dropped_fields)
    return {
        "batch": batch.batch_id,
        "content_sha256": batch.content_sha256,
        "received": received,
        "accepted": accepted,
        "quarantined": dict(sorted((k, v) for k, v in quarantined.items() if v)),
        "dropped_fields": dict(sorted((k, v) for k, v in dropped.items() if v)),
        "delete_requested": ingest.delete_requested if ingest else 0,
        "files": [
            {**r.as_dict(), **next(f.describe() for f in batch.files if f.safe_name == r.file)}
            for r in reports
        ],
        "started_at": started.isoformat(timespec="seconds"),
        **extra,
    }


def _check_reconciles(summary: dict) -> None:
    total = summary["accepted"] + sum(summary["quarantined"].values())
    if total != summary["received"]:
        # Raising rolls the whole batch back: a lost row must never be committed.
        raise AssertionError(
            f"batch {summary['batch']}: received {summary['received']} != accepted "
            f"{summary['accepted']} + quarantined {total - summary['accepted']}; rolled back"
        )


def ingest_batch(rt, path, *, now: datetime | None = None, destroy: bool = True) -> dict:
    """Ingest one batch folder; return the summary (no personal data). Idempotent."""
    started = datetime.now(UTC)
    now = now or started
    batch = scan_batch(path)
    engine = rt.engine
    rt.keys  # noqa: B018 - a missing or wrong keyring fails before anything is read
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        prepare_bulk_connection(conn)
        if conn.dialect.name == "sqlite":
            # A smaller page cache than bulk seeding uses: the batch is one long transaction
            # and memory must stay flat (issue 4: <= 500 MB for a million-row file).
            conn.exec_driver_sql(f"PRAGMA cache_size=-{INGEST_CACHE_KIB}")
        previous = conn.execute(
            select(IngestBatch.summary).where(IngestBatch.content_sha256 == batch.content_sha256)
        ).scalar()
        if previous is not None:
            conn.rollback()
            summary = json.loads(previous)
            summary["already_ingested"] = True
        else:
            try:
                summary = _ingest_new(rt, batch, conn, now, started)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
    if destroy:
        summary["landing_copy"] = destroy_landing_copy(batch)
        if summary["landing_copy"]["files"] and not summary["landing_copy"]["changed_since_hashed"]:
            with engine.begin() as conn:
                conn.execute(
                    IngestBatch.__table__.update()
                    .where(IngestBatch.content_sha256 == batch.content_sha256)
                    .values(landing_destroyed_at=datetime.now(UTC).replace(tzinfo=None))
                )
    summary["seconds"] = round((datetime.now(UTC) - started).total_seconds(), 3)
    return summary


def _ingest_new(rt, batch: LandedBatch, conn, now: datetime, started: datetime) -> dict:
    with Staging(parent=rt.settings.home if rt.settings.home.is_dir() else None) as staging:
        run = _Ingest(rt, batch, conn, staging, now)
        for f in batch.files:
            run.reports[f.safe_name] = FileReport(f.safe_name, f.kind)
        run.quarantine.ensure_key()
        by_kind: dict[str, list[LandedFile]] = {kind: [] for kind in c.KINDS}
        for f in batch.files:
            if f.kind is None:
                run.hold_unreadable(f, c.UNKNOWN_FILE_KIND, c.REASONS[c.UNKNOWN_FILE_KIND])
            elif _is_binary(f):
                run.hold_unreadable(f, c.BINARY_FILE, c.REASONS[c.BINARY_FILE])
            else:
                by_kind[f.kind].append(f)
        for f in by_kind[c.CONSENTS]:
            run.timed(f, run.stage_consents)
        for f in by_kind[c.CUSTOMERS]:
            run.timed(f, run.customers)
        for f in by_kind[c.CONSENTS]:
            run.timed(f, run.consents)
        run.settle_touched_customers()
        for kind in (c.ORDERS, c.EVENTS):
            for f in by_kind[kind]:
                run.timed(f, run.items)
        run.quarantine.flush()
        run.quarantine.drop_key_if_unused()
        reports = [run.reports[f.safe_name] for f in batch.files]
        summary = _summary(batch, run, reports, started, {})
        _check_reconciles(summary)
        conn.execute(
            IngestBatch.__table__.insert(),
            {
                "content_sha256": batch.content_sha256,
                "batch_id": batch.batch_id,
                "received": summary["received"],
                "accepted": summary["accepted"],
                "summary": json.dumps(summary, sort_keys=True),
                "committed_at": datetime.now(UTC).replace(tzinfo=None),
            },
        )
        return summary


def _is_binary(f: LandedFile) -> bool:
    from custos.collection.reader import _SAMPLE_BYTES, _looks_binary

    with f.path.open("rb") as handle:
        return _looks_binary(handle.read(_SAMPLE_BYTES))
