"""``make bench``: seeding with and without encryption, and the monthly check.

Not a test: it measures and records. Results go to ``bench/results/<date>-<N>.json``;
README's performance section quotes them. Figures:
- ``seed_encrypted``: end to end — generate synthetic customers, encrypt, write (workers
  generate and encrypt while the main process writes);
- ``protect_write_encrypted`` / ``protect_write_plain``: encrypt-and-write of records that
  already exist in memory (what ingestion does after parsing) and the same rows written
  without encryption; their ratio is the cost of protection;
- ``monthly_check``: ``custos check monthly`` over the seeded vault, in its own process,
  wall seconds and that process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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
POOL_CUSTOMERS = 20_000


def _fresh_home(root: Path, name: str) -> dict:
    from custos.policy import current_policy
    from custos.runtime import open_runtime
    from custos.settings import get_settings
    from custos.setup_vault import initialise

    home = root / name
    os.environ["CUSTOS_HOME"] = str(home)
    initialise(get_settings(), current_policy())
    return open_runtime()


def _vault_rows(engine) -> int:
    from sqlalchemy import text

    from custos.vault.writer import COLUMNS

    with engine.connect() as conn:
        return sum(conn.scalar(text(f"SELECT count(*) FROM {t}")) for t in COLUMNS)


def bench_seed(root: Path, customers: int, encrypt: bool) -> dict:
    from custos.demo.seed import seed_vault

    rt = _fresh_home(root, f"seed-{'enc' if encrypt else 'plain'}")
    started = time.perf_counter()
    report = seed_vault(
        rt.engine, rt.settings, rt.policy, customers=customers, seed=1, encrypt=encrypt
    )
    seconds = time.perf_counter() - started
    rows = _vault_rows(rt.engine)
    return {
        "customers": customers,
        "rows": rows,
        "rows_per_s": round(rows / seconds),
        "seconds": round(seconds, 2),
        "customers_per_s": round(customers / seconds),
        "home": str(rt.settings.home),
        "injected_total": report["injected_total"],
    }


# -- protect+write of pre-generated records ---------------------------------------------------
_state: dict = {}


def _init_protect(settings, rules, retention, encrypt: bool, as_of, profile_only=False) -> None:
    from custos.crypto.keyring import open_key_provider
    from custos.demo.seed import ChunkGenerator
    from custos.vault.writer import CustomerEncryptor

    generator = ChunkGenerator(7, as_of, rules)
    pool = []
    for i in range(POOL_CUSTOMERS // 2000):
        pool.extend(generator.chunk(i, i * 2000, 2000)[0])
    if profile_only:
        # Only the customer master record: customer, basic and identity data, data keys.
        import dataclasses

        pool = [dataclasses.replace(r, orders=[], events=[], consents=[], uses=[]) for r in pool]
    _state["pool"] = pool
    _state["encryptor"] = CustomerEncryptor(open_key_provider(settings), retention, encrypt=encrypt)


def _ready(_: int) -> bool:
    return "pool" in _state


def _protect_chunk(task: tuple[int, int]):
    first, count = task
    pool = _state["pool"]
    records = []
    for i in range(first, first + count):
        record = pool[i % len(pool)]
        record.external_id = f"bench-{i}"  # unique blind index per written customer
        records.append(record)
    return count, _state["encryptor"].encrypt_customers(records, datetime.now())


def bench_protect_write(
    root: Path, customers: int, encrypt: bool, workers: int, profile_only: bool = False
) -> dict:
    from custos.demo.seed import SeedRules, default_as_of, seed_staff
    from custos.vault.writer import RetentionTable, write_rows

    rt = _fresh_home(root, f"protect-{'enc' if encrypt else 'plain'}-{int(profile_only)}")
    seed_staff(rt.engine, rt.policy)
    args = (
        rt.settings,
        SeedRules.from_policy(rt.policy),
        RetentionTable.from_policy(rt.policy),
        encrypt,
        default_as_of(),
        profile_only,
    )
    tasks = [(start, min(2000, customers - start)) for start in range(0, customers, 2000)]
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_init_protect, initargs=args) as pool:
        assert all(pool.map(_ready, range(workers * 4)))  # pools generated before timing
        started = time.perf_counter()
        for _, rows in pool.imap(_protect_chunk, tasks):
            write_rows(rt.engine, rows)
        seconds = time.perf_counter() - started
    return {
        "customers": customers,
        "workers": workers,
        "seconds": round(seconds, 2),
        "customers_per_s": round(customers / seconds),
    }


_CHECK_SCRIPT = """
import contextlib, io, json, sys
from custos.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["check", "monthly", "--period", sys.argv[1], "--json"])
result = json.loads(out.getvalue())
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec from the (large) parent.
hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
              if line.startswith("VmHWM:"))
result["peak_rss_mb"] = round(hwm_kb / 1024, 1)
print(json.dumps(result))
sys.exit(code)
"""


def bench_monthly_check(home: str, period: str) -> dict:
    """The check in a fresh process, so its peak RSS is its own."""
    env = dict(os.environ, CUSTOS_HOME=home)
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-c", _CHECK_SCRIPT, period], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"monthly check failed: {process.stderr[-2000:]}")
    result = json.loads(process.stdout)
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": result["peak_rss_mb"],
        "findings_open": result["findings_open"],
        "affected": result["affected"],
    }


def _child_peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--keep", action="store_true", help="keep the benchmark vaults")
    args = parser.parse_args()
    from custos.demo.seed import default_as_of
    from custos.duties.periods import previous_month

    root = Path(tempfile.mkdtemp(prefix="custos-bench-"))
    n = args.customers
    print(f"benchmark: {n} customers, {os.cpu_count()} cores, vaults in {root}", flush=True)
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "customers": n,
        "vault": "sqlite",
    }
    results["seed_encrypted"] = bench_seed(root, n, encrypt=True)
    print("seed (generate+encrypt+write):", results["seed_encrypted"], flush=True)
    results["seed_plain"] = bench_seed(root, n, encrypt=False)
    print("seed without encryption:", results["seed_plain"], flush=True)
    for encrypt in (True, False):
        key = f"protect_write_{'encrypted' if encrypt else 'plain'}"
        results[key] = bench_protect_write(root, n, encrypt, args.workers)
        print(f"{key}:", results[key], flush=True)
    results["protect_write_profile_only_encrypted"] = bench_protect_write(
        root, n, True, args.workers, profile_only=True
    )
    print(
        "profile only (customer, basic, identity, keys):",
        results["protect_write_profile_only_encrypted"],
        flush=True,
    )
    results["encryption_overhead_ratio"] = round(
        results["protect_write_plain"]["customers_per_s"]
        / results["protect_write_encrypted"]["customers_per_s"],
        2,
    )
    results["seed_workers_peak_rss_mb"] = _child_peak_rss_mb()
    results["monthly_check"] = bench_monthly_check(
        results["seed_encrypted"]["home"], previous_month(default_as_of())
    )
    results["main_process_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    print("monthly check:", results["monthly_check"], flush=True)
    for stage in ("seed_encrypted", "seed_plain"):
        results[stage].pop("home")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{n}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written {out.relative_to(REPO)}")
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
