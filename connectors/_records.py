"""Records that span physical lines: a quoted field holding a line break, or an escaped line break.

A record's line is the physical line it starts on; the lines after it are still counted, so every
later record keeps its own line number. Which lines begin such a record is found vectorised, by a
regular expression over the lines that hold a quote or escape character (one that may say "open" where
the ``csv`` module says "closed", never the reverse); where a record ends is then left to the ``csv``
module, which also splits it.

**Unterminated records.** A record may span at most ``max_record_lines`` physical lines (contract option
``maxRecordLines``, default 100). A quote still open after that many lines, or at the end of the file,
makes its first line alone a malformed record (``_record_error = quoting``); reading resumes on the
next line, so a stray quote costs one record, never the rest of the file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import polars as pl
import pyarrow as pa

from connectors._files import Chunk
from schemas.sources import DelimitedSource

NULL_MARK = "\ufdd0"  # a noncharacter: stands for MySQL's \N while the csv module splits a record


@dataclass(frozen=True)
class Dialect:
    """How fields are delimited, quoted and escaped, and how many lines one record may span."""

    delimiter: str = ","
    quote: str | None = '"'
    escape: str | None = None
    max_record_lines: int = 100

    @classmethod
    def of(cls, source: DelimitedSource) -> Dialect:
        return cls(source.delimiter, source.quote, source.escape, source.max_record_lines)

    @property
    def special(self) -> tuple[str, ...]:
        """The characters that make a line need the ``csv`` module."""
        return tuple(c for c in (self.quote, self.escape) if c)

    @cached_property
    def csv_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"delimiter": self.delimiter, "strict": False}
        if self.quote:
            options["quotechar"] = self.quote
        else:
            options["quoting"] = csv.QUOTE_NONE
        if self.escape:
            options["escapechar"] = self.escape
        return options

    @cached_property
    def open_pattern(self) -> str | None:
        """A line that ends inside a record (an open quote, a pending escape), read from a record's start.

        Rust regex syntax, for polars. None when no line can end inside a record.
        """
        d, q, e = (_lit(c) if c else None for c in (self.delimiter, self.quote, self.escape))
        if q is None and e is None:
            return None
        if e is None:
            content = f"(?:[^{q}]|{q}{q})*"
            quoted = f"{q}{content}{q}[^{d}]*"
            plain = f"[^{q}{d}][^{d}]*"
            return f"^(?:(?:{quoted}|{plain})?{d})*{q}{content}$"
        if q is None:
            plain = f"(?:[^{d}{e}]|{e}.)*"
            return f"^(?:{plain}{d})*{plain}{e}$"
        content = f"(?:[^{q}{e}]|{q}{q}|{e}.)*"
        quoted = f"{q}{content}{q}(?:[^{d}{e}]|{e}.)*"
        plain = f"(?:[^{q}{d}{e}]|{e}.)(?:[^{d}{e}]|{e}.)*"
        some = f"(?:{quoted}|{plain})?"
        return f"^(?:{some}{d})*(?:{q}{content}{e}?|{some}{e})$"

    @cached_property
    def _null(self) -> re.Pattern[str] | None:
        if not self.escape:
            return None
        d = re.escape(self.delimiter)
        return re.compile(rf"(?:^|(?<={d})){re.escape(self.escape)}N(?={d}|\Z)")


def _lit(c: str) -> str:
    return c if c.isalnum() else f"\\x{{{ord(c):x}}}"


def split_record(text: str, dialect: Dialect) -> list[str | None] | None:
    """One record's fields as the ``csv`` module reads them; None if it cannot (e.g. a field too large).

    With an escape character, an unquoted field that is exactly ``\\N`` (MySQL's NULL) is null.
    """
    marked = dialect._null is not None and NULL_MARK not in text and dialect.escape + "N" in text  # type: ignore[operator]
    if marked:
        text = dialect._null.sub(NULL_MARK, text)  # type: ignore[union-attr]
    try:
        fields = next(csv.reader(_physical(text), **dialect.csv_options), [])
    except csv.Error:
        return None
    if not marked:
        return list(fields)
    return [None if f == NULL_MARK else f.replace(NULL_MARK, "N") for f in fields]


def _physical(text: str) -> list[str]:
    """A record's text as the lines the ``csv`` module reads, each keeping its line feed."""
    if "\n" not in text:
        return [text]
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def record_length(lines: list[str], dialect: Dialect) -> int | None:
    """How many of ``lines`` (from a record's first) the record spans; None if it is still open after all."""
    exhausted = False

    def feed() -> Iterator[str]:
        nonlocal exhausted
        for line in lines:
            yield line + "\n"
        exhausted = True

    reader = csv.reader(feed(), **dialect.csv_options)
    try:
        next(reader)
    except (csv.Error, StopIteration):
        return 1  # split alone, where the reason is kept
    return None if exhausted else reader.line_num


@dataclass
class Records:
    """How a chunk's physical lines group into records."""

    starts: pl.Series | None = None  # physical index of each record's first line; None: one per line
    texts: dict[int, str] = field(default_factory=dict)  # a multi-line record's text, by its first line
    unterminated: list[int] = field(default_factory=list)  # first lines of records never closed
    held: int | None = None  # physical index from which lines wait for the next chunk


def group_lines(lines: pl.Series, chunk: Chunk, dialect: Dialect) -> Records:
    """Which physical lines of a chunk make one record (see the module docstring)."""
    pattern = dialect.open_pattern
    if pattern is None or not any(c.encode("utf-8") in chunk.text for c in dialect.special):
        return Records()
    special = lines.str.contains(dialect.special[0], literal=True)
    for c in dialect.special[1:]:
        special = special | lines.str.contains(c, literal=True)
    candidates = special.fill_null(False).arg_true()  # few lines: the pattern runs on those only
    opening = lines.gather(candidates).str.contains(pattern).fill_null(False)
    openers = candidates.filter(opening).to_list()
    if not openers:
        return Records()
    n, limit = lines.len(), dialect.max_record_lines
    records = Records()
    spans: list[tuple[int, int]] = []
    following = 0  # the first line not yet in a record
    for first in openers:
        if first < following:
            continue
        window = lines.slice(first, limit).to_list()
        length = record_length(window, dialect)
        if length is None:
            if not chunk.last and len(window) < limit:
                records.held = first
                break
            records.unterminated.append(first)
            following = first + 1
        else:
            if length > 1:
                spans.append((first, first + length - 1))
            following = first + length
    if not spans and records.held is None:
        return records
    keep = [True] * (n if records.held is None else records.held)
    for first, last in spans:
        keep[first + 1 : last + 1] = [False] * (last - first)
    records.starts = pl.Series(keep, dtype=pl.Boolean).arg_true()
    if spans:
        starts = line_starts(chunk.text)
        for first, last in spans:
            end = starts[last + 1] - 1 if last + 1 < len(starts) else len(chunk.text)
            text = chunk.text[starts[first] : end]
            records.texts[first] = text.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
    return records


def line_starts(text: bytes) -> list[int]:
    """Where each line of ``text`` starts (vectorised: one comparison over the bytes)."""
    feeds = pl.from_arrow(pa.Array.from_buffers(pa.uint8(), len(text), [None, pa.py_buffer(text)]))
    assert isinstance(feeds, pl.Series)
    return [0, *((feeds == 10).arg_true() + 1).to_list()]
