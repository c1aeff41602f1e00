"""``make bench`` (collection): ingest a generated landing batch and measure it.

Not a test: it measures and records (``bench/results/<date>-ingest-<N>.json``).
The batch is what ``custos demo seed --landing`` writes: a customers file of N rows with
its consents, orders and events files, problems injected at the demo rates. Generating
it is timed separately and not counted. ``custos ingest`` runs in its own process;
figures:

- ``customers_rows_per_s``: rows of the customers file / seconds spent on that file
  (validation, consent gate, minimisation, encryption, upsert; the issue's figure);
- ``batch_lines_per_s``: every line of every file / wall seconds of the whole ingest
  (including the consents staging pass, orders, events, quality gates, commit and the
  destruction of the landing copy);
- ``peak_rss_mb``: the ingest process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary CUSTOS_HOME")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="custos-bench-ingest-"))
    home = root / "home"
    env = {**os.environ, "CUSTOS_HOME": str(home)}
    for name in ("CUSTOS_VAULT_URL", "CUSTOS_EVIDENCE_URL", "CUSTOS_KEYRING", "CUSTOS_LANDING_URL"):
        env.pop(name, None)
    custos = str(Path(sys.executable).with_name("custos"))
    subprocess.run([custos, "init"], env=env, check=True, capture_output=True)

    started = time.perf_counter()
    generated = subprocess.run(
        [
            custos,
            "demo",
            "seed",
            "--landing",
            "--customers",
            str(args.customers),
            "--seed",
            "1",
            "--batch",
            "bench",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    generate_seconds = time.perf_counter() - started
    report = json.loads(generated.stdout)
    batch = Path(report["folder"])
    batch_bytes = sum(p.stat().st_size for p in batch.iterdir())

    started = time.perf_counter()
    ingested = subprocess.run(
        [custos, "ingest", "--json", str(batch)], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if ingested.returncode != 0:
        print(ingested.stderr[-3000:], file=sys.stderr)
        return 1
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.loads(ingested.stdout)
    customers_file = next(f for f in summary["files"] if f["kind"] == "customers")
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "customers": args.customers,
        "batch_lines": summary["received"],
        "batch_mb": round(batch_bytes / 1e6, 1),
        "generate_seconds": round(generate_seconds, 1),
        "ingest_wall_seconds": round(wall, 1),
        "customers_file_seconds": customers_file["seconds"],
        "customers_rows_per_s": round(customers_file["received"] / customers_file["seconds"]),
        "batch_lines_per_s": round(summary["received"] / wall),
        "peak_rss_mb": round(peak_rss_mb),
        "per_file_seconds": {f["file"]: f["seconds"] for f in summary["files"]},
        "accepted": summary["accepted"],
        "quarantined": sum(summary["quarantined"].values()),
        "reconciles": summary["received"]
        == summary["accepted"] + sum(summary["quarantined"].values()),
        "matches_oracle": summary["accepted"] == report["expected"]["accepted"],
        "targets": {"customers_rows_per_s": 20_000, "peak_rss_mb": 500},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-ingest-{args.customers}.json"
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    if not args.keep:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
