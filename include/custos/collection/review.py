"""Reviewing the quarantine: release (feed rows back through the pipeline) or discard.

Both are Data Management decisions (``collection.yaml: quarantine.reviewers``), authorised
and logged in the access log per item by :func:`custos.access.reader.authorise_quarantine`.

**Release** re-ingests the rows as they were received, as a new landing batch: the
pipeline judges them again (a consent that has arrived since, a customer now stored), so a
released row ends up stored or quarantined again under its current reason, never waved
through. The released items lose their payload; their row stays as the record. If the run
dies after the ingest but before the items are marked, releasing again ingests the same
content, which the batch registry turns into a no-op, and then marks them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from custos.collection.quarantine import DISCARDED, HELD, RELEASED, ROW, settle
from custos.errors import InputError
from custos.vault.models import QuarantineItem


def _held_items(engine, item_ids: list[str]) -> list:
    q = QuarantineItem.__table__
    with engine.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                select(q.c.id, q.c.kind, q.c.status, q.c.payload_format).where(q.c.id.in_(item_ids))
            )
        }
    problems = []
    for item_id in item_ids:
        row = rows.get(item_id)
        if row is None:
            problems.append(f"{item_id}: no such quarantine item")
        elif row.status != HELD:
            problems.append(f"{item_id}: is {row.status}, not held")
    if problems:
        raise InputError("; ".join(problems) + ". Nothing was changed.")
    return [rows[i] for i in item_ids]


def discard(rt, staff_id: str, item_ids: list[str]) -> dict:
    """Destroy held items' content (payload, then the batch key once nothing needs it)."""
    from custos.access.reader import authorise_quarantine

    _held_items(rt.engine, item_ids)
    authorise_quarantine(rt, staff_id, "discard", item_ids)
    now = datetime.now(UTC)
    with rt.engine.begin() as conn:
        for item_id in item_ids:
            settle(conn, item_id, status=DISCARDED, by=staff_id, now=now)
    return {"discarded": len(item_ids)}


def release(rt, staff_id: str, item_ids: list[str], *, now: datetime | None = None) -> dict:
    """Feed held rows back through the pipeline as a new batch; return its summary."""
    from custos.access.reader import read_quarantined
    from custos.collection.ingest import ingest_batch

    items = _held_items(rt.engine, item_ids)
    unreadable = [i.id for i in items if i.payload_format != ROW or i.kind is None]
    if unreadable:
        raise InputError(
            f"{', '.join(unreadable)}: not a parsed row (an unreadable line or file cannot "
            "pass the pipeline again); fix it at the source or discard it. Nothing was changed."
        )
    payloads = read_quarantined(rt, staff_id, item_ids, action="release")
    missing = [i for i, (_, value) in payloads.items() if value is None]
    if missing:
        raise InputError(f"{', '.join(missing)}: content already destroyed; nothing changed")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder = rt.settings.landing_root / f"release-{stamp}-{item_ids[0][-8:]}"
    folder.mkdir(parents=True, exist_ok=False)
    folder.chmod(0o700)
    by_kind: dict[str, list[bytes]] = {}
    for item in items:
        by_kind.setdefault(item.kind, []).append(payloads[item.id][1])
    for kind, rows in by_kind.items():
        with (folder / f"{kind}-release.jsonl").open("wb") as handle:
            for raw in rows:
                json.loads(raw)  # stored by the pipeline as a JSON object; fail loudly if not
                handle.write(raw + b"\n")
    summary = ingest_batch(rt, folder, now=now)
    done = datetime.now(UTC)
    with rt.engine.begin() as conn:
        for item_id in item_ids:
            settle(conn, item_id, status=RELEASED, by=staff_id, now=done)
    return summary
