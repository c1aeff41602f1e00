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


def add_access_commands(sub, command) -> None:
    """Register ``custos access ...`` on the main parser (``command`` is cli's helper)."""
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
