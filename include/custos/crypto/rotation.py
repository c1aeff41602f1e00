"""Bucket-key rotation (Art. 8, 12): ``custos keys rotate``.

For each bucket: make a new primary version, re-wrap every data key still wrapped with an
older version, then destroy the versions no row uses any more.

- **Batches.** Rows are selected set-based by (bucket, wrap_version < target), at most
  ``batch_size`` at a time; each batch is one transaction (select, unwrap with the old
  version — associated data naming the old wrap_version —, wrap with the new one, UPDATE).
  A row is only updated if it still has the bucket and version it was read with, so a
  concurrent retention extension or purge is never overwritten.
- **Resumable.** The rotation is recorded in the key provider before any row moves. A killed
  run, run again, continues the same rotation: no further version is made, rows already
  moved no longer match ``wrap_version < target``, buckets it finished are not rotated
  again. A new rotation starts only when the previous one has finished.
- **Destruction.** A replaced version is destroyed once no row uses it and nothing has
  reserved encryptions with it for ``grace_seconds`` (a writer that took its key just before
  the rotation may still be writing that batch). A version kept for either reason keeps the
  rotation open; running rotate again later finishes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, bindparam, func, select, update

from custos.crypto.aead import Aead
from custos.crypto.envelope import data_key_aad
from custos.errors import ConfigError, KeyringError
from custos.vault.models import DataKey

DEFAULT_BATCH_SIZE = 5000
# A writer reserves its key for a batch and writes it within seconds; five minutes is ample.
DEFAULT_GRACE_SECONDS = 300

_TABLE = DataKey.__table__
_SELECT_OLD = (
    select(_TABLE.c.customer_id, _TABLE.c.category, _TABLE.c.wrap_version, _TABLE.c.wrapped_key)
    .where(_TABLE.c.bucket == bindparam("bucket"))
    .where(_TABLE.c.wrap_version < bindparam("target"))
    .limit(bindparam("batch_size"))
)
_UPDATE = (
    update(_TABLE)
    .where(_TABLE.c.customer_id == bindparam("k_customer"))
    .where(_TABLE.c.category == bindparam("k_category"))
    .where(_TABLE.c.bucket == bindparam("k_bucket"))
    .where(_TABLE.c.wrap_version == bindparam("k_old_version"))
    .values(wrapped_key=bindparam("new_wrapped"), wrap_version=bindparam("new_version"))
)

Progress = Callable[[int, int], None]


def versions_in_use(engine: Engine, buckets: Iterable[str] | None = None) -> dict[str, dict]:
    """{bucket: {wrap_version: rows}} from one aggregate over data_keys."""
    query = select(_TABLE.c.bucket, _TABLE.c.wrap_version, func.count()).group_by(
        _TABLE.c.bucket, _TABLE.c.wrap_version
    )
    if buckets is not None:
        query = query.where(_TABLE.c.bucket.in_(sorted(set(buckets))))
    usage: dict[str, dict[int, int]] = {}
    with engine.connect() as conn:
        for bucket, version, rows in conn.execute(query):
            usage.setdefault(bucket, {})[int(version)] = rows
    return usage


def rewrap_rows(
    rows, bucket: str, target: int, target_aead: Aead, old_aead: Callable[[int], Aead]
) -> list[dict]:
    """New wrapped keys for a batch of (customer_id, category, wrap_version, wrapped_key)."""
    params = []
    for customer_id, category, version, wrapped in rows:
        data_key = old_aead(version).decrypt(
            bytes(wrapped),
            data_key_aad(customer_id, category, bucket, version),
            what=f"data key of customer {customer_id} ({category}, {bucket} v{version})",
        )
        params.append(
            {
                "k_customer": customer_id,
                "k_category": category,
                "k_bucket": bucket,
                "k_old_version": version,
                "new_wrapped": target_aead.encrypt(
                    data_key, data_key_aad(customer_id, category, bucket, target)
                ),
                "new_version": target,
            }
        )
    return params


def update_rows(conn, params: list[dict]) -> int:
    """One executemany UPDATE for the whole batch; returns the rows it changed."""
    result = conn.execute(_UPDATE, params)
    return result.rowcount if result.rowcount is not None and result.rowcount >= 0 else len(params)


def _rewrap_bucket(
    engine: Engine, provider, bucket: str, target: int, batch_size: int, advance
) -> int:
    target_aead = Aead(provider.bucket_key(bucket, target))
    old: dict[int, Aead] = {}

    def old_aead(version: int) -> Aead:
        if version not in old:
            old[version] = Aead(provider.bucket_key(bucket, version))
        return old[version]

    moved = 0
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                _SELECT_OLD, {"bucket": bucket, "target": target, "batch_size": batch_size}
            ).all()
            if not rows:
                return moved
            # Counted before encrypting: a batch that fails afterwards only over-counts.
            provider.record_encryptions(bucket, target, len(rows))
            params = rewrap_rows(rows, bucket, target, target_aead, old_aead)
            changed = update_rows(conn, params)
        moved += changed
        advance(changed)


def _age_seconds(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    return (now - datetime.fromisoformat(stamp)).total_seconds()


def _retire_unused(engine: Engine, provider, bucket: str, grace_seconds: float) -> tuple:
    """Destroy every replaced version no row uses; returns (retired, kept)."""
    in_use = versions_in_use(engine, [bucket]).get(bucket, {})
    entry = provider.status([bucket])["buckets"][0]
    now = datetime.now(UTC)
    retired, kept = [], []
    for version in entry["versions"]:
        number = version["version"]
        if version["state"] != "active":  # the primary, or destroyed already
            continue
        if in_use.get(number):
            # Rows a writer stored with it while the re-wrap ran; the next run moves them.
            kept.append(
                {"bucket": bucket, "version": number, "reason": "in use", "rows": in_use[number]}
            )
            continue
        age = _age_seconds(version["last_used_at"], now)
        if age is not None and age < grace_seconds:
            kept.append(
                {
                    "bucket": bucket,
                    "version": number,
                    "reason": "recently used",
                    "rows": 0,
                    "retire_after": (now + timedelta(seconds=grace_seconds - age)).isoformat(
                        timespec="seconds"
                    ),
                }
            )
            continue
        if provider.retire(bucket, number):
            retired.append({"bucket": bucket, "version": number})
    return retired, kept


QUARANTINE_BUCKET_PREFIX = "quarantine/"


def rotate(
    engine: Engine,
    provider,
    buckets: Iterable[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> dict:
    """Rotate these buckets' keys (default: every bucket), or finish the rotation a killed
    run left. ``progress(done, total)`` is called with re-wrapped row counts."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, not {batch_size}")
    # Quarantine buckets wrap per-batch keys in quarantine_keys, which this re-wrap does not
    # move: rotating them would destroy a version still in use. Their keys live only the
    # quarantine's retention days and are destroyed with their rows instead.
    live = [b for b in provider.bucket_ids() if not b.startswith(QUARANTINE_BUCKET_PREFIX)]
    if buckets is None:
        wanted = live
    else:
        wanted = sorted(set(buckets))
        unknown = [b for b in wanted if b not in live]
        if unknown:
            raise KeyringError(
                f"no bucket key for {', '.join(unknown)}; `custos keys status` lists the "
                "buckets. Nothing was changed."
            )
    job = provider.begin_rotation(wanted)
    pending = sorted(b for b, state in job["buckets"].items() if not state["done"])
    targets = {b: job["buckets"][b]["target"] for b in pending}
    usage = versions_in_use(engine, pending) if pending else {}
    total = sum(
        rows
        for bucket in pending
        for version, rows in usage.get(bucket, {}).items()
        if version < targets[bucket]
    )
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    if progress:
        progress(0, total)
    retired, kept, finished = [], [], False
    for bucket in pending:
        _rewrap_bucket(engine, provider, bucket, targets[bucket], batch_size, advance)
        bucket_retired, bucket_kept = _retire_unused(engine, provider, bucket, grace_seconds)
        retired += bucket_retired
        kept += bucket_kept
        if not bucket_kept:
            finished = provider.finish_rotation(bucket)
    if not pending:
        finished = provider.finish_rotation("")
    return {
        "rotation": job["id"],
        "resumed": job["resumed"],
        "started_at": job["started_at"],
        "finished": finished,
        "buckets": len(job["buckets"]),
        "buckets_worked_on": len(pending),
        "new_primary": targets,
        "rewrapped": done,
        "retired_versions": len(retired),
        "retired": retired,
        "kept": kept,
    }
