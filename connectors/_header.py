"""A plain CSV's header row: the first record names the columns, so fields are found by name.

Matching is by name, in any order: a column matches the header field written exactly as its name (or
as the name given for it, a contract's ``physicalName``), else the one field whose name, lower-cased
with every run of characters other than ``a-z``, ``0-9`` and ``_`` made one ``_``, equals it
(``/VSO/R_PALHGT`` is column ``_vso_r_palhgt``, ``Order Date`` is ``order_date``). A declared
column the header does not name rejects the batch (line 1, with the fix); fields the contract does
not declare are ignored, and reported in the manifest's ``undeclared_columns``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from connectors._chunks import Dialect, record_lines, split_line
from connectors.manifest import ControlProblem

FIRST_RECORD_BYTES = 1 << 16


@dataclass(frozen=True)
class HeaderRow:
    """The names a header row holds, where each contract column is, and what does not match."""

    names: tuple[str, ...]
    positions: Mapping[str, int | None]  # column -> field index; None when the header does not name it
    undeclared: tuple[str, ...]
    ambiguous: tuple[str, ...] = ()

    def problems(self, file: str) -> Iterator[ControlProblem]:
        if not self.names:
            yield ControlProblem(
                "structure",
                f"{file}: the file is empty, not even a header row. Fix: ask the source to re-send it.",
            )
            return
        missing = [c for c, i in self.positions.items() if i is None and c not in self.ambiguous]
        if missing:
            shown = ", ".join(self.names[:12]) + (", ..." if len(self.names) > 12 else "")
            yield ControlProblem(
                "structure",
                f"{file} line 1 (header row): column(s) {', '.join(missing)} not found among the "
                f"{len(self.names)} names it holds ({shown}). Fix: ask the source for the missing "
                "column(s), or correct the column names in the contract.",
                line=1,
                column=missing[0],
            )
        for column in self.ambiguous:
            yield ControlProblem(
                "structure",
                f"{file} line 1 (header row), column {column}: several names match it. Fix: ask the "
                "source to give these columns distinct names.",
                line=1,
                column=column,
            )


def read_header_row(
    path: Path, encoding: str, dialect: Dialect, columns: Sequence[str], names: Mapping[str, str]
) -> HeaderRow:
    """Read the first record of ``path`` and place every column in it."""
    first = next(record_lines(path, encoding, FIRST_RECORD_BYTES, dialect), None)
    records = first.records() if first is not None else None
    if records is None or records.height == 0:
        return HeaderRow((), {c: None for c in columns}, ())
    fields = tuple(f.strip() for f in split_line(records.get_column("line")[0], dialect))
    return match_names(fields, columns, names)


def normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.lower())


def match_names(fields: Sequence[str], columns: Sequence[str], names: Mapping[str, str]) -> HeaderRow:
    """Where each column is in a header row of ``fields`` (see the module docstring)."""
    exact: dict[str, int] = {}
    for i, f in enumerate(fields):
        exact.setdefault(f, i)
    loose: dict[str, list[int]] = {}
    for i, f in enumerate(fields):
        loose.setdefault(normalised(f), []).append(i)
    positions: dict[str, int | None] = {}
    ambiguous = []
    for column in columns:
        wanted = names.get(column, column)
        if wanted in exact:
            positions[column] = exact[wanted]
            continue
        found = loose.get(normalised(wanted), [])
        positions[column] = found[0] if len(found) == 1 else None
        if len(found) > 1:
            ambiguous.append(column)
    used = {i for i in positions.values() if i is not None}
    undeclared = tuple(f for i, f in enumerate(fields) if i not in used)
    return HeaderRow(tuple(fields), positions, undeclared, tuple(ambiguous))
