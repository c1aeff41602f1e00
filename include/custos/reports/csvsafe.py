"""The one CSV writer of the project: values a spreadsheet would execute are escaped.

A cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is a formula to
Excel and LibreOffice (CSV injection). We keep the value but prefix a single quote, the
OWASP-recommended neutralisation.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([escape_cell(h) for h in header])
    for row in rows:
        writer.writerow([escape_cell(v) for v in row])
    return buffer.getvalue()
