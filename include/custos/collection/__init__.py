"""Collection pipeline (Art. 11), first layer: the landing contract, a streaming reader and
per-row validation. Pure functions: nothing here touches a database, the vault or Airflow.

- :mod:`custos.collection.contract` — file kinds, columns, types and the stable reason codes;
- :mod:`custos.collection.reader` — :func:`read_landing_file`, streaming CSV / JSON Lines;
- :mod:`custos.collection.validate` — :func:`validate_row` and :class:`DuplicateTracker`.
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
