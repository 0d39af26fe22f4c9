"""Reading the tables people keep: CSV files or sheets of an .xlsx workbook.

One reader for every import (directory, ledger, holidays): headers are matched
against English and Chinese aliases, blank rows are skipped, and every problem
is reported as `sheet:row:column: reason` with row numbers as the file shows
them (the header is row 1).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RowError:
    sheet: str
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.sheet}:{self.row}:{self.column}: {self.reason}"


class ImportRefused(Exception):
    """The input cannot be imported; nothing was written. `errors` lists every problem."""

    def __init__(self, errors: Iterable[RowError | str]) -> None:
        self.errors = [str(error) for error in errors]
        super().__init__("\n".join(self.errors))


@dataclass
class Row:
    """One data row: its number in the file and its cells by canonical column name."""

    number: int
    cells: dict[str, Any] = field(default_factory=dict)

    def text(self, column: str) -> str:
        """The cell as stripped text ('' when empty); numbers lose a trailing '.0'."""
        value = self.cells.get(column)
        if value is None:
            return ""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value).strip()


@dataclass
class Table:
    sheet: str
    rows: list[Row]


def _normalise_header(text: object) -> str:
    return re.sub(r"[\s_（）()*]+", "", str(text or "")).lower()


def _header_map(
    headers: list[object], columns: Mapping[str, tuple[str, ...]]
) -> tuple[dict[int, str], list[str]]:
    lookup: dict[str, str] = {}
    for name, aliases in columns.items():
        for alias in (name, *aliases):
            lookup[_normalise_header(alias)] = name
    mapping: dict[int, str] = {}
    for index, header in enumerate(headers):
        column = lookup.get(_normalise_header(header))
        if column is not None and column not in mapping.values():
            mapping[index] = column
    return mapping, sorted(set(columns) - set(mapping.values()))


def _table(
    sheet: str,
    raw_rows: Iterable[list[object]],
    columns: Mapping[str, tuple[str, ...]],
    required: Iterable[str],
) -> Table:
    iterator = iter(raw_rows)
    headers = next(iterator, None)
    if headers is None or not any(str(h or "").strip() for h in headers):
        raise ImportRefused([RowError(sheet, 1, "-", "the header row is missing")])
    mapping, missing = _header_map(list(headers), columns)
    missing_required = [name for name in required if name in missing]
    if missing_required:
        raise ImportRefused(
            RowError(sheet, 1, name, "required column is missing") for name in missing_required
        )
    rows = []
    for number, raw in enumerate(iterator, start=2):
        cells = {name: raw[index] if index < len(raw) else None for index, name in mapping.items()}
        if all(value is None or str(value).strip() == "" for value in cells.values()):
            continue
        rows.append(Row(number, cells))
    return Table(sheet, rows)


def _csv_rows(path: Path) -> list[list[object]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return [list(row) for row in csv.reader(handle)]
    except UnicodeDecodeError as exc:
        raise ImportRefused([f"{path.name}: not UTF-8 text ({exc.reason})"]) from None
    except csv.Error as exc:
        raise ImportRefused([f"{path.name}: not a readable CSV file ({exc})"]) from None


def read_tables(
    path: Path,
    sheets: Mapping[str, Mapping[str, tuple[str, ...]]],
    *,
    required: Mapping[str, Iterable[str]],
    optional_sheets: Iterable[str] = (),
    single: bool = False,
) -> dict[str, Table]:
    """Read the named sheets from a workbook, a folder of `NAME.csv` files or one CSV.

    `sheets` maps each sheet name to its columns and their aliases. With
    `single`, a one-table input (a lone CSV, or a workbook's first sheet) is
    read as the only sheet named. Raises `ImportRefused` naming what is
    unreadable or missing; returns tables for the sheets found.
    """
    optional = set(optional_sheets)
    if not path.exists():
        raise ImportRefused([f"{path}: no such file or folder"])
    raw: dict[str, list[list[object]]] = {}
    if path.is_dir():
        for name in sheets:
            file = path / f"{name}.csv"
            if file.exists():
                raw[name] = _csv_rows(file)
    elif path.suffix.lower() == ".csv":
        if not single:
            raise ImportRefused(
                [f"{path.name}: expected a folder of CSV files or an .xlsx workbook"]
            )
        raw[next(iter(sheets))] = _csv_rows(path)
    elif path.suffix.lower() in (".xlsx", ".xlsm"):
        raw = _workbook_rows(path, list(sheets), single=single)
    else:
        raise ImportRefused([f"{path.name}: expected .xlsx or .csv"])
    missing = [name for name in sheets if name not in raw and name not in optional]
    if missing:
        raise ImportRefused([f"{path.name}: sheet {name!r} is missing" for name in missing])
    errors: list[str] = []
    tables: dict[str, Table] = {}
    for name, rows in raw.items():
        try:
            tables[name] = _table(name, rows, sheets[name], required.get(name, ()))
        except ImportRefused as exc:
            errors.extend(exc.errors)
    if errors:
        raise ImportRefused(errors)
    return tables


def _workbook_rows(path: Path, names: list[str], *, single: bool) -> dict[str, list[list[object]]]:
    from zipfile import BadZipFile

    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, OSError, KeyError, ValueError) as exc:
        raise ImportRefused([f"{path.name}: not a readable .xlsx workbook ({exc})"]) from None
    try:
        found: dict[str, list[list[object]]] = {}
        lowered = {sheet.lower(): sheet for sheet in workbook.sheetnames}
        for name in names:
            sheet_name = lowered.get(name.lower())
            if sheet_name is None and single and len(names) == 1:
                sheet_name = workbook.sheetnames[0]
            if sheet_name is not None:
                found[name] = [
                    list(row) for row in workbook[sheet_name].iter_rows(values_only=True)
                ]
        return found
    finally:
        workbook.close()


_DATE_PATTERNS = (
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"),
    re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"),
    re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)


def parse_date(value: object) -> date:
    """A date as people type it: Excel date cells, 2026-03-01, 2026/3/1, 2026.3.1, 2026年3月1日.

    A time of day after the date (`2026-03-01 09:30`) is ignored. Raises
    ValueError with a message fit for the user.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    if not text:
        raise ValueError("a date is required")
    text = re.split(r"[ T]", text, maxsplit=1)[0]
    for pattern in _DATE_PATTERNS:
        match = pattern.match(text)
        if match:
            year, month, day = (int(part) for part in match.groups())
            try:
                return date(year, month, day)
            except ValueError:
                break
    raise ValueError(f"{value!s:.40} is not a date (use YYYY-MM-DD)")
