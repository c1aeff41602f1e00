"""Stream a landing file (CSV or JSON Lines) in chunks, never raising for bad input.

Each physical line is decoded and parsed on its own, so one bad line (not UTF-8, broken
quoting, wrong field count, invalid JSON) becomes one reject and the rest of the file is
kept. Memory is bounded by ``chunk_rows`` and :data:`~contract.MAX_LINE_BYTES`, not by the
file size. A CSV field cannot span lines: a quoted line break makes both parts rejects.

Count invariant: for every file of a known kind that is not binary, the rows plus the
rejects over all chunks equal its data lines (non-blank lines, minus the CSV header).
Reject details and problem details name the line, field and rule, never a value.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from custos.collection import contract as c

Row = dict[str, str | None]


class Reject(NamedTuple):
    line: int
    code: str
    detail: str
    # The line as received, for the encrypted quarantine only (None when the line was too
    # long to hold). Personal data: never log, print or put it in evidence.
    raw: bytes | None = None

    def __repr__(self) -> str:  # never show the raw line (personal data) in logs or tracebacks
        return f"Reject(line={self.line}, code={self.code!r}, detail={self.detail!r})"


class FileProblem(NamedTuple):
    code: str  # a key of contract.FILE_PROBLEMS
    line: int | None  # the line it was found on, if any
    detail: str

    @property
    def fatal(self) -> bool:
        return self.code in c.FATAL_FILE_PROBLEMS


@dataclass
class Chunk:
    file: str  # the file name (no directory)
    kind: str | None
    format: str | None
    rows: list[tuple[int, Row]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)


_SAMPLE_BYTES = 8192
_BINARY_MAGIC = (b"\x1f\x8b", b"PK\x03\x04", b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"BZh")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_COLUMN_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_BOM = b"\xef\xbb\xbf"


def _looks_binary(sample: bytes) -> bool:
    if not sample:
        return False
    if b"\x00" in sample or sample.startswith(_BINARY_MAGIC):
        return True
    undecodable = len(sample) - len(sample.decode("utf-8", errors="ignore").encode("utf-8"))
    suspicious = undecodable + len(_CONTROL.findall(sample))
    return suspicious > len(sample) * 0.1


def _physical_lines(handle) -> Iterator[tuple[int, bytes | None, bool]]:
    """``(line_number, raw_line_without_eol | None if too long, ended_with_newline)``."""
    number = 0
    while True:
        raw = handle.readline(c.MAX_LINE_BYTES)
        if not raw:
            return
        number += 1
        if len(raw) == c.MAX_LINE_BYTES and not raw.endswith(b"\n"):
            ended = False
            while more := handle.readline(c.MAX_LINE_BYTES):
                if more.endswith(b"\n"):
                    ended = True
                    break
            yield number, None, ended
            continue
        ended = raw.endswith(b"\n")
        yield number, raw.rstrip(b"\r\n") if ended else raw, ended


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _name(column: str) -> str:
    return column if _COLUMN_LIKE.match(column) else "(unprintable name)"


def _check_header(kind: str, names: list[str]) -> str | None:
    """None if the header is acceptable, else a detail naming what is wrong (no values)."""
    known = c.CONTRACT[kind]
    if not any(n in known for n in names):
        return (
            f"no header row: none of the {len(names)} columns of line 1 is a {kind} column "
            f"(required: {', '.join(c.required_columns(kind))})"
        )
    parts = []
    missing = [n for n in c.required_columns(kind) if n not in names]
    if missing:
        parts.append(f"missing required columns: {', '.join(missing)}")
    unknown = [f"{_name(n)} (column {i})" for i, n in enumerate(names, 1) if n not in known]
    if unknown:
        parts.append(f"unknown columns: {', '.join(unknown)}")
    repeated = sorted({n for n in names if n in known and names.count(n) > 1})
    if repeated:
        parts.append(f"repeated columns: {', '.join(repeated)}")
    return "; ".join(parts) or None


class _Emitter:
    def __init__(self, file: str, kind: str | None, fmt: str | None, chunk_rows: int):
        self.file, self.kind, self.format, self.chunk_rows = file, kind, fmt, chunk_rows
        self.current = self._new()

    def _new(self) -> Chunk:
        return Chunk(self.file, self.kind, self.format)

    def full(self) -> bool:
        return len(self.current.rows) + len(self.current.rejects) >= self.chunk_rows

    def take(self) -> Chunk:
        chunk, self.current = self.current, self._new()
        return chunk


def read_landing_file(path: str | Path, chunk_rows: int = 10_000) -> Iterator[Chunk]:
    """Yield the file's rows and rejects in chunks of at most ``chunk_rows`` lines.

    At least one chunk is always yielded. Whole-file problems appear in ``Chunk.problems``
    of the chunk in which they were found; after a fatal one (unknown kind, binary, empty,
    bad header) no rows are returned — with a bad header every data line is a BAD_HEADER
    reject, so nothing received goes uncounted. An unreadable file (missing, permission) is
    the one case that raises (OSError), as that is not a property of the data.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    path = Path(path)
    known = c.kind_of(path.name)
    if known is None:
        yield Chunk(
            path.name,
            None,
            None,
            problems=[FileProblem(c.UNKNOWN_FILE_KIND, None, c.FILE_PROBLEMS[c.UNKNOWN_FILE_KIND])],
        )
        return
    kind, fmt = known
    out = _Emitter(path.name, kind, fmt, chunk_rows)
    with path.open("rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
        if _looks_binary(sample):
            out.current.problems.append(
                FileProblem(c.BINARY_FILE, None, c.FILE_PROBLEMS[c.BINARY_FILE])
            )
            yield out.take()
            return
        handle.seek(0)
        lines = _physical_lines(handle)
        parse = _csv_rows(kind, lines, out) if fmt == "csv" else _jsonl_rows(kind, lines, out)
        yielded = False
        for chunk in parse:
            yielded = True
            yield chunk
    last = out.take()
    if not yielded or last.rows or last.rejects or last.problems:
        yield last


def _truncated(out: _Emitter, number: int, ended: bool) -> None:
    if not ended:
        out.current.problems.append(
            FileProblem(
                c.TRUNCATED_LAST_LINE,
                number,
                f"line {number}: last line has no line end and does not parse",
            )
        )


def _csv_rows(kind: str, lines, out: _Emitter) -> Iterator[Chunk]:
    header: list[str] | None = None
    header_error: str | None = None
    for number, raw, ended in lines:
        if raw is not None and not raw.strip():
            continue
        if header is None and header_error is None:
            text = _decode(raw.removeprefix(_BOM)) if raw is not None else None
            fields = _parse_csv_line(text) if text is not None else None
            if fields is None:
                header_error = f"line {number}: the header line cannot be read"
            else:
                header = [f.strip() for f in fields]
                header_error = _check_header(kind, header)
            if header_error:
                header = None
                out.current.problems.append(FileProblem(c.BAD_HEADER, number, header_error))
            continue
        if header is None:
            out.current.rejects.append(
                Reject(number, c.BAD_HEADER, f"line {number}: not read, the header is invalid", raw)
            )
        else:
            _csv_line(out, header, number, raw, ended)
        if out.full():
            yield out.take()
    if header is None and header_error is None:
        out.current.problems.append(FileProblem(c.EMPTY_FILE, None, c.FILE_PROBLEMS[c.EMPTY_FILE]))


def _parse_csv_line(text: str) -> list[str] | None:
    try:
        records = list(csv.reader((text,), strict=True))
    except csv.Error:
        return None
    return records[0] if len(records) == 1 else None


def _csv_line(out: _Emitter, header: list[str], number: int, raw, ended: bool) -> None:
    if raw is None:
        detail = f"line {number}: longer than {c.MAX_LINE_BYTES:,} bytes"
        out.current.rejects.append(Reject(number, c.MALFORMED_ROW, detail))
        return
    text = _decode(raw)
    if text is None:
        detail = f"line {number}: not valid UTF-8"
        out.current.rejects.append(Reject(number, c.NOT_UTF8, detail, raw))
        return
    fields = _parse_csv_line(text)
    if fields is None or len(fields) != len(header):
        detail = (
            f"line {number}: CSV syntax error (quoting or line break)"
            if fields is None
            else f"line {number}: expected {len(header)} fields, found {len(fields)}"
        )
        out.current.rejects.append(Reject(number, c.MALFORMED_ROW, detail, raw))
        _truncated(out, number, ended)
        return
    out.current.rows.append((number, dict(zip(header, fields, strict=True))))


def _jsonl_rows(kind: str, lines, out: _Emitter) -> Iterator[Chunk]:
    known = c.CONTRACT[kind]
    seen_any = False
    for number, raw, ended in lines:
        if raw is not None and not raw.strip():
            continue
        seen_any = True
        if number == 1 and raw is not None:
            raw = raw.removeprefix(_BOM)
        reject = _jsonl_line(out, known, number, raw)
        if reject is not None:
            out.current.rejects.append(reject)
            if reject.code == c.MALFORMED_ROW:
                _truncated(out, number, ended)
        if out.full():
            yield out.take()
    if not seen_any:
        out.current.problems.append(FileProblem(c.EMPTY_FILE, None, c.FILE_PROBLEMS[c.EMPTY_FILE]))


def _jsonl_line(out: _Emitter, known, number: int, raw) -> Reject | None:
    if raw is None:
        return Reject(
            number, c.MALFORMED_ROW, f"line {number}: longer than {c.MAX_LINE_BYTES:,} bytes"
        )
    text = _decode(raw)
    if text is None:
        return Reject(number, c.NOT_UTF8, f"line {number}: not valid UTF-8", raw)
    try:
        obj = json.loads(text, parse_float=Decimal)
    except (json.JSONDecodeError, RecursionError):
        return Reject(number, c.MALFORMED_ROW, f"line {number}: not valid JSON", raw)
    if not isinstance(obj, dict):
        return Reject(number, c.MALFORMED_ROW, f"line {number}: not a JSON object", raw)
    unknown = [_name(k) for k in obj if k not in known]
    if unknown:
        detail = f"line {number}: unknown fields: {', '.join(unknown)}"
        return Reject(number, c.MALFORMED_ROW, detail, raw)
    row: Row = {}
    for key, value in obj.items():
        if value is None or isinstance(value, str):
            row[key] = value
        elif isinstance(value, int | Decimal) and not isinstance(value, bool):
            row[key] = str(value)
        else:
            detail = f"line {number}: field {key} holds a {type(value).__name__}, not a scalar"
            return Reject(number, c.MALFORMED_ROW, detail, raw)
    out.current.rows.append((number, row))
    return None
