"""Bulk enrollment from a clinic's CSV: read and validate every row first, then import the
good ones; each bad row is reported by line, with its reason.

Validation is ``clinics.clean_family_fields``, the same as the API's, so a row the import
accepts is exactly a request the API would accept.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from smsbot.clinics import FAMILY_FIELDS, InvalidFieldsError, clean_family_fields
from smsbot.config import Settings

REQUIRED_COLUMNS = ("phone", "programme")
REPORT_COLUMNS = ("line", "field", "code", "reason")


class CsvFormatError(ValueError):
    """The file as a whole is unusable (no header, unknown or repeated columns)."""


@dataclass(frozen=True)
class RowError:
    line: int  # as a spreadsheet shows it: the header is line 1
    field: str
    code: str
    reason: str


@dataclass(frozen=True)
class Row:
    line: int
    values: dict[str, Any]  # cleaned: ready for ``enroll_family``


def read_rows(handle: TextIO) -> tuple[list[tuple[int, dict[str, str]]], list[RowError]]:
    """(line number, non-empty cells) for each readable data row, and an error for each row
    that cannot be read as written: a cell too large, more cells than the header. Blank lines
    are skipped; an unclosed quote shows as a line break inside a cell, which validation refuses."""
    reader = csv.DictReader(handle)
    columns = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    unknown = [name for name in columns if name not in FAMILY_FIELDS]
    if missing or unknown:
        raise CsvFormatError(
            f"columns must include {', '.join(REQUIRED_COLUMNS)} and may include "
            f"{', '.join(f for f in FAMILY_FIELDS if f not in REQUIRED_COLUMNS)}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    twice = sorted({name for name in columns if columns.count(name) > 1})
    if twice:
        raise CsvFormatError(f"each column may appear once; twice: {', '.join(twice)}")
    reader.fieldnames = columns
    rows, errors = [], []
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:  # e.g. a cell over the csv module's 128 KB limit
            errors.append(RowError(start, "", "unreadable_row", f"cannot be read as CSV: {error}"))
            start = reader.line_num + 1
            continue
        extra = record.pop(None, None)  # type: ignore[call-overload]
        if extra and any(cell.strip() for cell in extra):
            reason = f"{len(extra)} more cell(s) than the header has columns"
            errors.append(RowError(start, "", "extra_cells", reason))
        else:
            cells = {key: (value or "").strip() for key, value in record.items()}
            if any(cells.values()):
                rows.append((start, {key: value for key, value in cells.items() if value}))
        start = reader.line_num + 1  # a quoted cell may span lines
    return rows, errors


def validate_rows(
    rows: Iterable[tuple[int, dict[str, str]]], settings: Settings, *, today: date
) -> tuple[list[Row], list[RowError]]:
    """Split rows into good (cleaned) ones and one error per bad field."""
    good, errors = [], []
    for line, cells in rows:
        try:
            good.append(
                Row(line, clean_family_fields(cells, settings, today=today, required=REQUIRED_COLUMNS))
            )
        except InvalidFieldsError as error:
            errors.extend(RowError(line, e.field, e.code, e.message) for e in error.errors)
    return good, errors


def write_report(path: Path, errors: Iterable[RowError]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REPORT_COLUMNS)
        for error in errors:
            writer.writerow((error.line, error.field, error.code, error.reason))
