"""``custos access read``: the authorised-staff read, printed to the terminal only.

Values go to standard output and nowhere else: never to a log, never to a file the
command writes. Refusals name the rule; the decision is in the access log either way.
"""

from __future__ import annotations

import json
import sys


def cmd_access_read(args) -> int:
    from custos.access.reader import AccessRefused, read
    from custos.runtime import open_runtime

    result = read(open_runtime(), args.staff, args.customer, args.category or (), args.purpose)
    if args.json:
        print(
            json.dumps(
                {
                    "customer": result.customer_id,
                    "purpose": result.purpose,
                    "values": result.values,
                    "refused": {
                        c: {"code": code, "reason": why}
                        for c, (code, why) in sorted(result.refused.items())
                    },
                },
                indent=1,
                ensure_ascii=False,
            )
        )
    else:
        for category, values in sorted(result.values.items()):
            print(f"[{category}]")
            for name, value in values.items():
                shown = json.dumps(value, ensure_ascii=False) if name == "items" else value
                print(f"  {name}: {shown}")
    for category, (code, why) in sorted(result.refused.items()):
        print(f"refused {category}: {code}: {why}", file=sys.stderr)
    if not result.values:
        raise AccessRefused(f"nothing was read for {result.customer_id} ({result.purpose})")
    return 0


def cmd_access_log_verify(args) -> int:
    from custos.access.audit import open_access_log
    from custos.access.log import anchored_notes
    from custos.runtime import open_runtime

    rt = open_runtime()
    anchored = anchored_notes(rt.evidence)
    result = open_access_log(rt).verify(anchored)
    data = {
        "ok": result.ok,
        "size": result.size,
        "anchored_checkpoints": len(anchored),
        "problems": list(result.problems),
    }
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print(
            f"access log: {result.size} entries, {len(anchored)} anchored checkpoints: "
            + ("OK" if result.ok else f"{len(result.problems)} PROBLEMS")
        )
        for problem in result.problems:
            print(f"  {problem}")
    return 0 if result.ok else 1


def cmd_access_log_prove(args) -> int:
    from custos.access.audit import open_access_log
    from custos.runtime import open_runtime

    print(json.dumps(open_access_log(open_runtime()).prove(args.entry), indent=1))
    return 0


def cmd_demo_access(args) -> int:
    from datetime import UTC, datetime

    from custos.demo.access_activity import simulate_hour
    from custos.duties.access_watch import previous_hour
    from custos.runtime import open_runtime

    hour = args.hour or previous_hour(datetime.now(UTC).replace(tzinfo=None))
    print(json.dumps(simulate_hour(open_runtime(), hour), indent=1))
    return 0


def cmd_check_access_watch(args) -> int:
    from datetime import UTC, datetime

    from custos.duties.access_watch import previous_hour, run_access_watch
    from custos.runtime import open_runtime

    hour = args.hour or previous_hour(datetime.now(UTC).replace(tzinfo=None))
    run_id = f"cli__{datetime.now(UTC).isoformat(timespec='microseconds')}"
    result = run_access_watch(open_runtime(), hour, run_id)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(
            f"access watch {hour}: {result['findings_open']} findings "
            f"({result['escalated']} escalated); access log size {result['log_size']}"
        )
    return 1 if result["findings_open"] and args.strict else 0


def cmd_staff(args) -> int:
    from custos.access import admin
    from custos.runtime import open_runtime

    rt = open_runtime()
    if args.staff_action in ("grant", "revoke"):
        getattr(admin, args.staff_action)(rt, args.by, args.staff, args.purpose, args.category)
    else:
        admin.set_status(
            rt, args.by, args.staff, "disabled" if args.staff_action == "disable" else "active"
        )
    print(f"{args.staff_action} {args.staff}: done (logged in the access log)")
    return 0


def add_access_commands(sub, command, demo_sub, check_sub) -> None:
    """Register the access commands on the main parser (``command`` is cli's helper)."""
    staff = sub.add_parser("staff", help="administer staff access rights (logged)")
    staff_sub = staff.add_subparsers(dest="staff_action", required=True)
    for action, text in (
        ("grant", "grant a purpose's categories"),
        ("revoke", "revoke a purpose's categories"),
        ("disable", "disable an account (revokes its grants)"),
        ("enable", "re-enable an account"),
    ):
        p = command(staff_sub, action, cmd_staff, text)
        p.add_argument("--by", required=True, help="your staff id (technology/data_management)")
        p.add_argument("staff", help="the staff member's id")
        if action in ("grant", "revoke"):
            p.add_argument("--purpose", required=True)
            p.add_argument("--category", action="append", required=True)
    log_cmd = sub.add_parser("access-log", help="the tamper-evident access log")
    log_sub = log_cmd.add_subparsers(dest="access_log", required=True)
    command(
        log_sub,
        "verify",
        cmd_access_log_verify,
        "recompute the Merkle root, check signatures and anchored checkpoints",
    )
    prove = command(
        log_sub, "prove", cmd_access_log_prove, "print an inclusion proof for one entry"
    )
    prove.add_argument("entry", type=int, help="the entry's index (0-based)")
    demo_access = command(
        demo_sub, "access", cmd_demo_access, "an hour of staff reads with known anomalies"
    )
    demo_access.add_argument("--hour", help="YYYY-MM-DDTHH UTC (default: the previous hour)")
    watch = command(check_sub, "access-watch", cmd_check_access_watch, "the hourly access watch")
    watch.add_argument("--hour", help="YYYY-MM-DDTHH UTC (default: the previous hour)")
    watch.add_argument("--strict", action="store_true", help="exit 1 if anything was found")
    access = sub.add_parser("access", help="purpose-bound reads of personal information")
    access_sub = access.add_subparsers(dest="access", required=True)
    read_cmd = command(
        access_sub,
        "read",
        cmd_access_read,
        "read a customer's data as a staff member, for a purpose",
    )
    read_cmd.add_argument("--as", dest="staff", required=True, help="your staff id")
    read_cmd.add_argument("--purpose", required=True, help="a purpose from purposes.yaml")
    read_cmd.add_argument(
        "--category",
        action="append",
        help="basic, identity, transaction or behaviour (repeatable; default: all)",
    )
    read_cmd.add_argument("customer", help="the customer's pseudonymous id")
