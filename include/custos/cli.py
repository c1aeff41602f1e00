"""``custos`` command line. Human output by default, ``--json`` for scripts.

Exit codes: 0 ok, 1 a check or verification failed, 2 usage or input error.
Personal information is never printed by these commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from custos.errors import CustosError


def _print(args, data: dict, human: str) -> None:
    print(json.dumps(data, indent=1, ensure_ascii=False, default=str) if args.json else human)


def cmd_init(args) -> int:
    from custos.policy import current_policy
    from custos.settings import get_settings
    from custos.setup_vault import initialise

    result = initialise(get_settings(), current_policy())
    _print(
        args,
        result,
        (
            f"vault ready ({result['vault']}, schema {result['schema_revision']}); keyring "
            f"{result['keyring']} ({'created' if result['keyring_created'] else 'existing'}, "
            f"{result['keyring_id']})"
        ),
    )
    return 0


def _progress(total: int, label: str):
    """A progress bar on a terminal, nothing otherwise (logs stay clean)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import Progress

    progress = Progress(transient=True)
    progress.start()
    task = progress.add_task(label, total=total)
    return progress, (lambda n: progress.advance(task, n))


def _demo_landing(args) -> int:
    """``demo seed --landing``: a ready landing batch instead of rows in the vault."""
    from pathlib import Path

    from custos.collection.batch import BATCH_ID, READY_MARKER
    from custos.demo.landing import write_landing_batch
    from custos.settings import get_settings

    as_of = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC)
    as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of
    name = args.batch or f"demo-{as_of:%Y%m%dT%H%M%S}-s{args.seed}"
    if not BATCH_ID.match(name):
        raise CustosError(f"--batch must match {BATCH_ID.pattern}")
    folder = get_settings().landing_root / name
    report = write_landing_batch(
        folder,
        customers=args.customers,
        seed=args.seed,
        as_of=as_of,
        formats=args.formats,
        first_index=args.first_index,
        workers=args.workers,
    )
    (folder / READY_MARKER).touch()
    report["folder"] = str(folder)
    text = json.dumps(report, indent=1)
    if args.report:
        Path(args.report).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def cmd_demo_seed(args) -> int:
    from sqlalchemy import func, select

    if args.landing:
        return _demo_landing(args)

    from custos.demo.seed import seed_vault
    from custos.runtime import open_runtime
    from custos.vault.models import Customer

    rt = open_runtime()
    rt.keys  # noqa: B018 - fail early, before any write, on a missing or wrong keyring
    if args.if_empty:
        with rt.engine.connect() as conn:
            existing = conn.scalar(select(func.count()).select_from(Customer))
        if existing:
            _print(
                args,
                {"skipped": True, "customers": existing},
                f"vault already holds {existing} customers; not seeding",
            )
            return 0
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else None
    progress, advance = _progress(args.customers, "seeding customers")
    started = datetime.now(UTC)
    try:
        report = seed_vault(
            rt.engine,
            rt.settings,
            rt.policy,
            customers=args.customers,
            seed=args.seed,
            as_of=as_of,
            workers=args.workers,
            first_index=args.first_index,
            progress=advance,
        )
    finally:
        if progress:
            progress.stop()
    report["seconds"] = round((datetime.now(UTC) - started).total_seconds(), 2)
    text = json.dumps(report, indent=1)
    if args.report:
        from pathlib import Path

        Path(args.report).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def cmd_check_monthly(args) -> int:
    from custos.duties.monthly_check import run_monthly_check
    from custos.duties.periods import previous_month
    from custos.runtime import open_runtime

    period = args.period or previous_month(datetime.now(UTC))
    run_id = f"cli__{datetime.now(UTC).isoformat(timespec='microseconds')}"
    result = run_monthly_check(open_runtime(), period, run_id)
    failing = {c: n for c, n in result["affected_by_control"].items() if n}
    lines = [
        f"monthly check {period}: {len(failing)} of {len(result['affected_by_control'])} "
        f"controls failing; {result['findings_open']} open findings"
    ]
    lines += [f"  FAIL {c}: {n} affected" for c, n in sorted(failing.items())]
    _print(args, result, "\n".join(lines))
    return 1 if failing and args.strict else 0


def cmd_evidence_list(args) -> int:
    from custos.evidence import list_runs
    from custos.runtime import open_runtime

    runs = list_runs(open_runtime().evidence, args.period)
    data = {"runs": [r.__dict__ if hasattr(r, "__dict__") else r for r in runs]}
    lines = [f"{'period':8} {'dag':32} {'run':40} {'files':>5} sealed"]
    lines += [
        f"{r.period:8} {r.dag_id:32} {r.run_id:40} {r.file_count:>5} {'yes' if r.sealed else 'NO'}"
        for r in runs
    ]
    _print(args, data, "\n".join(lines) if runs else "no evidence runs")
    return 0


def cmd_evidence_verify(args) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from custos.crypto.keyring import open_key_provider
    from custos.evidence import verify_store
    from custos.runtime import open_runtime

    rt = open_runtime()
    pinned = None
    try:
        key_id, public = open_key_provider(rt.settings).evidence_public_key()
        pinned = {key_id: public}
    except CustosError:
        pass  # offline auditor without the keyring: the store's published key is used
    report = verify_store(rt.evidence, args.period, public_keys=pinned)
    registry = "sealed runs cross-checked with the vault's registry"
    try:
        from custos.vault.evidence_index import check_store_against_vault

        check_store_against_vault(rt.engine, rt.evidence, report, args.period)
    except SQLAlchemyError:
        registry = "no vault here: a whole deleted run cannot be detected"
    data = report.to_dict() | {"sealed_run_registry": registry}
    lines = [
        f"checked {report.runs_checked} runs, {report.files_checked} files: "
        + ("OK" if report.ok else f"{len(report.problems)} PROBLEMS")
        + f" ({registry})"
    ]
    lines += [f"  {p.kind.upper():14} {p.path}  {p.detail}" for p in report.problems]
    _print(args, data, "\n".join(lines))
    return 0 if report.ok else 1


# -- keys (Art. 8, 12): versioned bucket keys, rotation --------------------------------------
def cmd_keys_status(args) -> int:
    from custos.crypto.rotation import versions_in_use
    from custos.runtime import open_runtime

    rt = open_runtime()
    status = rt.keys.status()
    usage = versions_in_use(rt.engine)
    for bucket in status["buckets"]:
        rows = usage.get(bucket["bucket"], {})
        for version in bucket["versions"]:
            version["rows"] = rows.get(version["version"], 0)
    known = {
        b["bucket"]: {v["version"] for v in b["versions"] if v["state"] != "destroyed"}
        for b in status["buckets"]
    }
    # Rows whose wrapping key the provider no longer has (destroyed or unknown): their data
    # cannot be read; after a purge this is expected, otherwise it is a problem.
    status["rows_without_key"] = {
        f"{bucket}#v{version}": rows
        for bucket, versions in sorted(usage.items())
        for version, rows in sorted(versions.items())
        if version not in known.get(bucket, set())
    }
    lines = [
        f"key provider {status['provider']} ({status['keyring_id']}): "
        f"{len(status['buckets'])} buckets, {len(status['destroyed_buckets'])} destroyed; "
        f"cap {status['max_encryptions']:,} encryptions per key version "
        f"(AES-GCM random-nonce limit {status['aes_gcm_random_nonce_limit']:,})"
    ]
    for bucket in status["buckets"]:
        parts = []
        for v in bucket["versions"]:
            if v["state"] == "destroyed":
                parts.append(f"v{v['version']} destroyed {v['destroyed_at']}")
            else:
                parts.append(
                    f"v{v['version']} {v['state']}: {v['encryptions']:,} enc, {v['rows']:,} rows"
                )
        flag = "  (rotating)" if bucket["rotation_in_progress"] else ""
        head = f"  {bucket['bucket']:24} primary v{bucket['primary']}  "
        lines.append(head + "; ".join(parts) + flag)
    if status["rotation"]:
        left = sum(not s["done"] for s in status["rotation"]["buckets"].values())
        lines.append(
            f"rotation {status['rotation']['id']} unfinished (started "
            f"{status['rotation']['started_at']}): {left} buckets left; run `custos keys rotate`"
        )
    for name, rows in status["rows_without_key"].items():
        lines.append(f"  WARNING {name}: {rows} rows wrapped by a key the provider does not hold")
    _print(args, status, "\n".join(lines))
    return 0


def _vault_bound_keyring(settings) -> str | None:
    """The keyring id the vault is bound to, or None if there is no vault yet (read-only:
    a missing SQLite file is not created)."""
    from pathlib import Path

    from sqlalchemy import inspect, select
    from sqlalchemy.engine import make_url

    from custos.vault.db import make_engine
    from custos.vault.models import VaultMeta

    url = make_url(settings.vault_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return None
    engine = make_engine(settings.vault_url)
    try:
        if "vault_meta" not in inspect(engine).get_table_names():
            return None
        with engine.connect() as conn:
            return conn.scalar(select(VaultMeta.value).where(VaultMeta.key == "keyring_id"))
    finally:
        engine.dispose()


def cmd_keys_init(args) -> int:
    from custos.crypto.keyring import open_key_provider
    from custos.errors import KeyringError
    from custos.settings import get_settings

    settings = get_settings()
    local = settings.key_provider == "local"
    path = settings.keyring_path if local else settings.kms_keystore_path
    created = not path.exists()
    if created:
        bound = _vault_bound_keyring(settings)
        if bound:
            raise KeyringError(
                f"{path}: missing, but the vault belongs to keyring {bound}; restore that key "
                f"store (or set {'CUSTOS_KEYRING' if local else 'CUSTOS_KMS_KEYSTORE'} to it) "
                "instead of creating a new one. Nothing was changed."
            )
    provider = open_key_provider(settings, create=created)
    data = {
        "provider": settings.key_provider,
        "key_store": str(path),
        "created": created,
        "keyring_id": provider.keyring_id,
    }
    _print(
        args,
        data,
        f"{settings.key_provider} key store {path} ({'created' if created else 'existing'}, "
        f"{provider.keyring_id})",
    )
    return 0


def cmd_keys_rotate(args) -> int:
    from custos.crypto.rotation import rotate
    from custos.runtime import open_runtime

    rt = open_runtime()
    bar: dict = {}

    def progress(done: int, total: int) -> None:
        if "advance" not in bar:
            bar["progress"], bar["advance"] = _progress(total, "re-wrapping data keys")
            bar["done"] = 0
        if bar["advance"]:
            bar["advance"](done - bar["done"])
        bar["done"] = done

    try:
        result = rotate(
            rt.engine,
            rt.keys,
            args.bucket or None,
            batch_size=args.batch_size,
            progress=progress,
            grace_seconds=args.grace_seconds,
        )
    finally:
        if bar.get("progress"):
            bar["progress"].stop()
    from custos.access.admin import log_key_rotation

    log_key_rotation(rt, result)
    lines = [
        f"rotation {result['rotation']}{' (resumed)' if result['resumed'] else ''}: "
        f"{result['buckets_worked_on']} buckets, {result['rewrapped']:,} data keys re-wrapped, "
        f"{result['retired_versions']} old key versions destroyed"
    ]
    in_use = [k for k in result["kept"] if k["reason"] == "in use"]
    recent = [k for k in result["kept"] if k["reason"] == "recently used"]
    if in_use:
        lines.append(
            f"  kept {len(in_use)} old versions that rows written during the rotation still use"
        )
    if recent:
        after = max(k["retire_after"] for k in recent)
        lines.append(
            f"  kept {len(recent)} old versions used for encryption less than "
            f"{args.grace_seconds} s ago (a writer may still be writing with them); they can be "
            f"destroyed after {after}"
        )
    lines.append(
        "rotation finished"
        if result["finished"]
        else "rotation unfinished: run `custos keys rotate` again to finish it"
    )
    _print(args, result, "\n".join(lines))
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="custos", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(parent, name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)
        return p

    command(sub, "init", cmd_init, "create the keyring (if absent) and migrate the vault")

    demo = sub.add_parser("demo", help="synthetic data").add_subparsers(dest="demo", required=True)
    seed = command(demo, "seed", cmd_demo_seed, "seed synthetic customers with known violations")
    seed.add_argument("--customers", type=int, default=5000)
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--as-of", help="ISO date the data ends at (default: 1st of this month)")
    seed.add_argument("--workers", type=int, default=None, help="encryption worker processes")
    seed.add_argument("--first-index", type=int, default=0, help=argparse.SUPPRESS)
    seed.add_argument("--if-empty", action="store_true", help="do nothing if customers exist")
    seed.add_argument("--report", help="also write the injected-violation report to this file")
    seed.add_argument(
        "--landing",
        action="store_true",
        help="write a ready landing batch (platform export files, with problems injected at "
        "known rates) for the collection pipeline, instead of rows in the vault",
    )
    seed.add_argument("--batch", help="with --landing: the batch folder name")
    seed.add_argument(
        "--formats", choices=["mixed", "csv", "jsonl"], default="mixed", help="with --landing"
    )

    check = sub.add_parser("check", help="run a duty's checks").add_subparsers(
        dest="check", required=True
    )
    monthly = command(check, "monthly", cmd_check_monthly, "the monthly departmental check")
    monthly.add_argument("--period", help="YYYY-MM (default: previous month)")
    monthly.add_argument("--strict", action="store_true", help="exit 1 if any control fails")

    evidence = sub.add_parser("evidence", help="browse and verify evidence").add_subparsers(
        dest="evidence", required=True
    )
    for name, func, text in (
        ("list", cmd_evidence_list, "list evidence runs"),
        ("verify", cmd_evidence_verify, "verify hashes and signatures"),
    ):
        p = command(evidence, name, func, text)
        p.add_argument("--period", help="2026-10, 2026-Q3, 2026-H2 or 2026")

    from custos.access.cli import add_access_commands

    add_access_commands(sub, command, demo, check)

    from custos.collection.cli import add_collection_commands

    add_collection_commands(sub, command)

    keys = sub.add_parser("keys", help="bucket keys: status and rotation").add_subparsers(
        dest="keys", required=True
    )
    command(keys, "init", cmd_keys_init, "create the key provider's key store if there is none yet")
    command(keys, "status", cmd_keys_status, "bucket-key versions, use counts and destructions")
    rotate = command(
        keys, "rotate", cmd_keys_rotate, "new primary bucket keys; re-wrap data keys; destroy old"
    )
    rotate.add_argument(
        "--bucket",
        action="append",
        help="rotate this bucket only (repeatable; default all). An unfinished rotation is "
        "always finished first, whatever is asked",
    )
    rotate.add_argument("--batch-size", type=_positive_int, default=5000, help="rows per batch")
    rotate.add_argument(
        "--grace-seconds",
        type=int,
        default=300,
        help="destroy a replaced key only this long after its last use (in-flight writers)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CustosError as exc:
        print(f"custos: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
