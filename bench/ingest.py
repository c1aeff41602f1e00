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
- ``peak_rss_mb``: the ingest process's peak resident memory (sampled every 0.5 s);
  ``peak_rss_mb_with_helpers`` adds its Great Expectations helper process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _sample_rss(process, every: float = 0.5) -> dict[str, float]:
    """Peak resident memory of a running process alone and with its descendants (MB)."""
    import psutil

    peaks = {"main": 0.0, "total": 0.0}
    handle = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            main_rss = handle.memory_info().rss
            total = main_rss + sum(
                child.memory_info().rss for child in handle.children(recursive=True)
            )
        except psutil.Error:
            break
        peaks["main"] = max(peaks["main"], main_rss / 2**20)
        peaks["total"] = max(peaks["total"], total / 2**20)
        time.sleep(every)
    process.wait()
    return peaks


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
    out_path, err_path = root / "ingest.out", root / "ingest.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(
            [custos, "ingest", "--json", str(batch)], env=env, stdout=out, stderr=err
        )
        peaks = _sample_rss(process)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        print(err_path.read_text()[-3000:], file=sys.stderr)
        return 1
    summary = json.loads(out_path.read_text())
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
        # the ingest process itself, and with its helper (Great Expectations) at the same time
        "peak_rss_mb": round(peaks["main"]),
        "peak_rss_mb_with_helpers": round(peaks["total"]),
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
