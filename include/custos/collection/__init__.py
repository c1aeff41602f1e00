"""Collection pipeline (Art. 11, 12): landing batches into the vault.

Pure layers (no database, vault or Airflow):

- :mod:`custos.collection.contract` — file kinds, columns, types and the stable reason codes;
- :mod:`custos.collection.reader` — :func:`read_landing_file`, streaming CSV / JSON Lines;
- :mod:`custos.collection.validate` — :func:`validate_row` and :class:`DuplicateTracker`;
- :mod:`custos.collection.gate` — the consent gate and minimisation.

The ingest and what it needs:

- :mod:`custos.collection.batch` — a batch folder, its content hash, the landing copy's
  destruction;
- :mod:`custos.collection.ingest` — ``custos ingest``: one batch, one transaction;
- :mod:`custos.collection.customers` — judging customer rows (worker processes);
- :mod:`custos.collection.staging` — per-batch scratch space (blind-indexed, no values);
- :mod:`custos.collection.quality` — the Great Expectations file gate over statuses;
- :mod:`custos.collection.quarantine` / :mod:`custos.collection.review` — the encrypted
  quarantine and its review (``custos quarantine``).
"""

from custos.collection.contract import CONTRACT, REASONS, Column, kind_of
from custos.collection.reader import Chunk, FileProblem, Reject, read_landing_file
from custos.collection.validate import DuplicateTracker, Finding, validate_row

__all__ = [
    "CONTRACT",
    "REASONS",
    "Chunk",
    "Column",
    "DuplicateTracker",
    "FileProblem",
    "Finding",
    "Reject",
    "kind_of",
    "read_landing_file",
    "validate_row",
]
