"""``custos ingest`` and ``custos quarantine list|show|release|discard``.

Nothing printed here holds personal data except ``quarantine show``, which prints held
rows to the terminal for an authorised reviewer (and logs that it did).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime


def _human_summary(s: dict) -> str:
    if s.get("already_ingested"):
        head = f"batch {s['batch']}: already ingested (same content); nothing changed"
    else:
        head = (
            f"batch {s['batch']}: received {s['received']}, accepted {s['accepted']}, "
            f"quarantined {sum(s['quarantined'].values())}"
        )
    lines = [head]
    lines += [f"  quarantined {code}: {n}" for code, n in s["quarantined"].items()]
    lines += [f"  dropped field {name}: {n}" for name, n in s["dropped_fields"].items()]
    if s.get("delete_requested"):
        lines.append(f"  deletion requested (consent withdrawn): {s['delete_requested']}")
    for f in s.get("files", []):
        for p in f.get("problems", []):
            where = f" line {p['line']}" if p.get("line") else ""
            lines.append(f"  {f['file']}{where}: {p['code']}: {p['detail']}")
        if f.get("held_by_quality_gate"):
            lines.append(f"  {f['file']}: held whole by the data-quality gate")
    landing = s.get("landing_copy")
    if landing:
        gone = sum(1 for f in landing["files"] if f.get("destroyed_at"))
        lines.append(f"  landing copy: {gone} file(s) destroyed")
        for name in landing["changed_since_hashed"]:
            lines.append(f"  landing copy: {name} changed while ingesting; kept, ingest again")
    return "\n".join(lines)


def _brief(s: dict) -> dict:
    """The --json summary: the issue's keys first, then the detail."""
    keys = ("batch", "received", "accepted", "quarantined", "dropped_fields")
    return {**{k: s[k] for k in keys}, **{k: v for k, v in s.items() if k not in keys}}


def cmd_ingest(args) -> int:
    from custos.duties.collection import DAG_ID, ingest_with_evidence, period_of
    from custos.runtime import open_runtime

    now = datetime.fromisoformat(args.as_of) if args.as_of else None
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    rt = open_runtime()
    run_id = f"cli__{datetime.now(UTC).isoformat(timespec='microseconds')}"
    summary = ingest_with_evidence(rt, args.batch, run_id=run_id, now=now)
    rt.seal(period_of(now or datetime.now(UTC)), DAG_ID, run_id)
    if args.json:
        print(json.dumps(_brief(summary), indent=1, ensure_ascii=False))
    else:
        print(_human_summary(summary))
    return 0


def cmd_quarantine_list(args) -> int:
    from custos.collection.quarantine import counts_by_reason, list_items
    from custos.runtime import open_runtime

    rt = open_runtime()
    status = None if args.status == "all" else args.status
    items = list_items(rt.engine, status=status, batch=args.batch, limit=args.limit)
    if args.json:
        data = {"counts": counts_by_reason(rt.engine, status=status), "items": items}
        print(json.dumps(data, indent=1, default=str))
        return 0
    for item in items:
        where = f"{item['file']}:{item['line']}" if item["line"] else item["file"]
        print(
            f"{item['id']}  {item['status']:<9} {item['reason']:<30} {item['batch_id']} "
            f"{where}  expires {item['expires_on']}"
        )
    counts = counts_by_reason(rt.engine, status=status)
    print(f"{sum(counts.values())} item(s): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_quarantine_show(args) -> int:
    from custos.access.reader import read_quarantined
    from custos.runtime import open_runtime

    payloads = read_quarantined(open_runtime(), args.staff, args.item, action="show")
    for item_id in args.item:
        if item_id not in payloads:
            print(f"{item_id}: no such quarantine item", file=sys.stderr)
            continue
        form, value = payloads[item_id]
        if value is None:
            print(f"{item_id}: content destroyed (released, discarded or expired)")
        elif form == "row":
            print(f"{item_id}: {value.decode('utf-8')}")
        else:
            # A line or file that could not be read: shown escaped, never raw bytes.
            print(f"{item_id}: ({form}, {len(value)} bytes) {value[:2000]!r}")
    return 0


def cmd_quarantine_release(args) -> int:
    from custos.collection.review import release
    from custos.runtime import open_runtime

    summary = release(open_runtime(), args.staff, args.item)
    print(json.dumps(_brief(summary), indent=1) if args.json else _human_summary(summary))
    return 0


def cmd_quarantine_discard(args) -> int:
    from custos.collection.review import discard
    from custos.runtime import open_runtime

    result = discard(open_runtime(), args.staff, args.item)
    print(json.dumps(result) if args.json else f"discarded {result['discarded']} item(s)")
    return 0


def add_collection_commands(sub, command) -> None:
    ingest = command(sub, "ingest", cmd_ingest, "ingest a landing batch folder into the vault")
    ingest.add_argument("batch", help="the batch folder (its name is the batch id)")
    ingest.add_argument("--as-of", help=argparse_suppress())
    quarantine = sub.add_parser("quarantine", help="review rows the collection pipeline held")
    q_sub = quarantine.add_subparsers(dest="quarantine", required=True)
    listing = command(q_sub, "list", cmd_quarantine_list, "held items: reason, batch, file, line")
    listing.add_argument(
        "--status", default="held", choices=["held", "released", "discarded", "expired", "all"]
    )
    listing.add_argument("--batch")
    listing.add_argument("--limit", type=int, default=200)
    for name, func, text in (
        ("show", cmd_quarantine_show, "print held rows (reviewers only; logged)"),
        ("release", cmd_quarantine_release, "send held rows through the pipeline again"),
        ("discard", cmd_quarantine_discard, "destroy held rows"),
    ):
        p = command(q_sub, name, func, text)
        p.add_argument("--as", dest="staff", required=True, help="your staff id (a reviewer)")
        p.add_argument("item", nargs="+", help="quarantine item id(s)")


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
