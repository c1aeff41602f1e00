"""The file-level data-quality gate (Great Expectations 1.x) over *statuses*, not values.

Row validation judges every row; this gate judges a file as a whole, so an evidently
broken export (a shifted column, a wrong encoding, a truncated upload) is held entire
instead of letting through the part of it that happens to validate.

While the ingest reads a file, :class:`FileStatuses` records one status per line and
column — ``ok``, ``empty``, ``unread`` (the line could not be parsed) or the reason code
that failed — in one byte each, so a million lines cost ~15 MB. Great Expectations then
validates a DataFrame of those statuses. The frame never holds a value of the file, so
neither can the results; the evidence keeps only expectation, column, success and
counts (``result_format`` SUMMARY with ``partial_unexpected_count`` 0, then whitelisted).
"""

from __future__ import annotations

import functools
import logging
import os
from array import array
from dataclasses import dataclass, field
from typing import Any

from custos.collection import contract as c

OK, EMPTY, UNREAD = "ok", "empty", "unread"
LINE = "_line"  # the pseudo-column saying whether the line could be read at all
READ = "read"


@dataclass
class FileStatuses:
    kind: str
    columns: tuple[str, ...]
    codes: list[str] = field(default_factory=lambda: [OK, EMPTY, UNREAD, READ])
    _index: dict[str, int] = field(default_factory=dict)
    _data: dict[str, array] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {code: i for i, code in enumerate(self.codes)}
        self._data = {name: array("B") for name in (LINE, *self.columns)}

    @classmethod
    def for_kind(cls, kind: str) -> FileStatuses:
        return cls(kind, tuple(c.CONTRACT[kind]))

    def _code(self, code: str) -> int:
        index = self._index.get(code)
        if index is None:
            index = self._index[code] = len(self.codes)
            self.codes.append(code)
        return index

    @property
    def lines(self) -> int:
        return len(self._data[LINE])

    def unreadable(self, code: str) -> None:
        """A line the reader could not parse (NOT_UTF8, MALFORMED_ROW, BAD_HEADER)."""
        self._data[LINE].append(self._code(code))
        unread = self._index[UNREAD]
        for name in self.columns:
            self._data[name].append(unread)

    def row(self, raw: dict[str, Any], findings) -> None:
        """A parsed line: each column ok, empty, or the code of its finding."""
        data = self._data
        data[LINE].append(3)  # READ
        failed = {f.field: f.code for f in findings} if findings else None
        for name in self.columns:
            if failed and name in failed:
                data[name].append(self._code(failed[name]))
                continue
            value = raw.get(name)
            # 0 = OK, 1 = EMPTY (the first codes, fixed in __post_init__)
            data[name].append(0 if value and (not isinstance(value, str) or value.strip()) else 1)

    def frame(self):
        import numpy as np
        import pandas as pd

        categories = list(self.codes)
        # Zero-copy views of the byte arrays: one byte per line and column, whatever the size.
        return pd.DataFrame(
            {
                name: pd.Categorical.from_codes(
                    np.frombuffer(values, dtype=np.uint8).astype(np.int8), categories=categories
                )
                for name, values in self._data.items()
            }
        )


_SAFE_RESULT_KEYS = ("element_count", "unexpected_count", "unexpected_percent", "missing_count")


def _quiet_gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    return gx


@functools.cache
def _context():
    """One ephemeral context per process (each new one makes a temporary docs folder)."""
    gx = _quiet_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def evaluate(statuses: FileStatuses, *, max_unreadable_share: float, max_invalid_share: float):
    """Run the expectations; return ``(passed, results)`` with results free of any value."""
    gx = _quiet_gx()
    source = _context().data_sources.add_or_update_pandas("landing")
    asset = source.add_dataframe_asset(statuses.kind)
    batch = asset.add_batch_definition_whole_dataframe("file").get_batch(
        batch_parameters={"dataframe": statuses.frame()}
    )
    required = set(c.required_columns(statuses.kind))
    suite = gx.ExpectationSuite(name=f"landing-{statuses.kind}")
    suite.add_expectation(gx.expectations.ExpectTableRowCountToBeBetween(min_value=1))
    suite.add_expectation(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column=LINE, value_set=[READ], mostly=1 - max_unreadable_share
        )
    )
    for name in statuses.columns:
        allowed = [OK, UNREAD] if name in required else [OK, EMPTY, UNREAD]
        suite.add_expectation(
            gx.expectations.ExpectColumnValuesToBeInSet(
                column=name, value_set=allowed, mostly=1 - max_invalid_share
            )
        )
    result = batch.validate(
        suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0}
    )
    rows = []
    for item in result.results:
        config = item.expectation_config
        rows.append(
            {
                "expectation": config.type,
                "column": config.kwargs.get("column"),
                "mostly": config.kwargs.get("mostly"),
                "success": bool(item.success),
                # Whitelisted counts only: nothing else of the result is kept.
                **{k: item.result.get(k) for k in _SAFE_RESULT_KEYS if k in item.result},
            }
        )
    return bool(result.success), rows


_helper = None


def evaluate_out_of_process(statuses: FileStatuses, **limits):
    """:func:`evaluate` in a helper process kept for the life of this one.

    Great Expectations with pandas costs ~180 MB of resident memory once imported; kept out
    of the ingest process, that process stays small and flat whatever the batch size. The
    helper starts from a clean forkserver (never a fork of a process with threads) and is
    re-created if it died. Only statuses (one byte per line and column) cross over.
    """
    global _helper
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    for attempt in (1, 2):
        if _helper is None:
            context = multiprocessing.get_context("forkserver")
            # Never re-run the caller's __main__ in the server (the default preload): an
            # Airflow task runner or a script would start again there.
            context.set_forkserver_preload(["custos.collection.quality"])
            _helper = ProcessPoolExecutor(max_workers=1, mp_context=context)
        try:
            return _helper.submit(evaluate, statuses, **limits).result()
        except BrokenProcessPool:
            _helper = None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
