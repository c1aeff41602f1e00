"""Access-log benchmark: append 1,000,000 entries, then verify the whole log.

Not a test: it measures and records. A fresh SQLite vault is created under a temporary
CUSTOS_HOME (``custos.setup_vault.initialise``), entries are appended in batches of 10,000
(one transaction each, as a busy reader service would), a checkpoint is signed and
anchored, and ``AccessLog.verify`` re-hashes and re-checks everything against the anchored
note. Figures:

- ``appends_per_second``: entries / seconds spent inside ``AccessLog.append`` (generating
  the synthetic entries is excluded; validation, hashing and the insert are included);
- ``verify_seconds``: one full ``verify([anchored note])`` over the log;
- ``peak_rss_mb``: the process's peak RSS (appending and verifying): far below the size of
  the log, because neither holds the entries in memory;
- ``*_cpu_seconds`` and the load average: this process's CPU time, to tell a slow run from a
  busy machine.

Targets (issue): >= 50,000 appends/s, verify <= 20 s for 1,000,000 entries. Results are
printed as JSON and written to ``bench/results/<date>-access-log.json``.

    .venv/bin/python bench/access_log.py [--entries 1000000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TARGET_APPENDS_PER_SECOND = 50_000
TARGET_VERIFY_SECONDS = 20.0

PURPOSES = {
    "business": ["order_fulfilment", "customs_clearance", "marketing"],
    "customer_service": ["customer_service", "order_fulfilment"],
    "finance": ["payment", "fraud_prevention"],
    "technology": ["personalisation", "fraud_prevention"],
}
CATEGORIES = ["basic", "identity", "transaction", "behaviour"]
REFUSALS = ["NOT_IN_ACCESS_MATRIX", "NO_CONSENT_FOR_PURPOSE", "NOT_NEEDED_FOR_PURPOSE"]


def _open_fresh_vault(home: Path):
    """A freshly initialised SQLite vault and its runtime, as `custos init` makes them."""
    os.environ["CUSTOS_HOME"] = str(home)
    for name in ("CUSTOS_VAULT_URL", "CUSTOS_EVIDENCE_URL", "CUSTOS_KEYRING"):
        os.environ.pop(name, None)
    from custos.policy import current_policy
    from custos.runtime import open_runtime
    from custos.settings import get_settings
    from custos.setup_vault import initialise

    initialise(get_settings(), current_policy())
    return open_runtime()


def _batch(rng: random.Random, customers: list[str], start: int, size: int, t0: datetime):
    """Synthetic decisions shaped like the reader's: pseudonymous ids and codes only."""
    entries = []
    for n in range(start, start + size):
        department = rng.choice(list(PURPOSES))
        refused = rng.random() < 0.1
        entries.append(
            {
                "logged_at": t0 + timedelta(milliseconds=n * 20),
                "staff_id": f"s-{department}-{rng.randint(1, 12)}",
                "department_id": department,
                "action": "read",
                "purpose": rng.choice(PURPOSES[department]),
                "customer_id": rng.choice(customers),
                "categories": rng.sample(CATEGORIES, rng.randint(1, 2)),
                "decision": "refused" if refused else "allowed",
                "reason": rng.choice(REFUSALS) if refused else None,
            }
        )
    return entries


def run(entries: int, batch: int) -> dict:
    from custos.access.log import AccessLog, anchored_notes
    from custos.vault.writer import new_id

    with tempfile.TemporaryDirectory(prefix="custos-bench-access-log-") as tmp:
        rt = _open_fresh_vault(Path(tmp) / "home")
        log = AccessLog.for_runtime(rt)
        rng = random.Random(7)
        customers = [new_id("c") for _ in range(50_000)]
        t0 = datetime(2026, 11, 1, tzinfo=UTC)

        append_seconds = append_cpu_seconds = 0.0
        for start in range(0, entries, batch):
            chunk = _batch(rng, customers, start, min(batch, entries - start), t0)
            began, began_cpu = time.perf_counter(), time.process_time()
            log.append(chunk)
            append_seconds += time.perf_counter() - began
            append_cpu_seconds += time.process_time() - began_cpu

        began = time.perf_counter()
        log.checkpoint()
        checkpoint_seconds = time.perf_counter() - began
        log.anchor(rt.evidence_run("2026-11", "bench_access_log", "bench"))
        notes = anchored_notes(rt.evidence)

        began, began_cpu = time.perf_counter(), time.process_time()
        result = log.verify(notes)
        verify_seconds = time.perf_counter() - began
        verify_cpu_seconds = time.process_time() - began_cpu
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        database = Path(rt.settings.vault_url.split("///", 1)[1])
        database_mb = sum(  # the WAL holds what is not yet checkpointed into the file
            path.stat().st_size / 2**20
            for path in (database, database.with_name(database.name + "-wal"))
            if path.exists()
        )
        rt.engine.dispose()

    appends_per_second = entries / append_seconds
    return {
        "benchmark": "access-log",
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "entries": entries,
        "batch": batch,
        "vault": "sqlite",
        "append_seconds": round(append_seconds, 2),
        "appends_per_second": round(appends_per_second),
        "append_cpu_seconds": round(append_cpu_seconds, 2),
        "checkpoint_seconds": round(checkpoint_seconds, 2),
        "verify_seconds": round(verify_seconds, 2),
        "verify_cpu_seconds": round(verify_cpu_seconds, 2),
        "verify_ok": result.ok,
        "verify_problems": result.problems,
        "peak_rss_mb": round(peak_rss_mb),
        "database_mb": round(database_mb),
        "targets": {
            "appends_per_second": TARGET_APPENDS_PER_SECOND,
            "verify_seconds": TARGET_VERIFY_SECONDS,
            "met": appends_per_second >= TARGET_APPENDS_PER_SECOND
            and verify_seconds <= TARGET_VERIFY_SECONDS,
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            # Other work on the machine shows as wall seconds well above CPU seconds.
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args(argv)
    report = run(args.entries, args.batch)
    print(json.dumps(report, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-access-log.json"
    target.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {target.relative_to(REPO)}", file=sys.stderr)
    return 0 if report["verify_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
