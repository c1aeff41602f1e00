"""Reporting periods: ``2026-10`` (month), ``2026-Q3``, ``2026-H2``, ``2026``."""

from __future__ import annotations

import re
from datetime import date, datetime

from custos.errors import CustosError

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a monthly period, as naive UTC datetimes (the vault's convention)."""
    match = _MONTH.match(period)
    if not match:
        raise CustosError(f"period {period!r} is not a month; use YYYY-MM, e.g. 2026-10")
    year, month = int(match[1]), int(match[2])
    start = datetime(year, month, 1)
    end = datetime(year + month // 12, month % 12 + 1, 1)
    return start, end


def previous_month(day: date | datetime) -> str:
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return f"{year:04d}-{month:02d}"
