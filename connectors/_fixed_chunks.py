"""A fixed-width file as chunks of whole records, so memory stays flat however large the file is.

Records are either lines (split at line feeds, CR stripped) or, in a file without line breaks, pieces of
``recordLength`` characters. :func:`record_chunks` yields them a few megabytes at a time as frames of one
String column (``_rec``) with each record's 1-based number and exact byte offset, numbered on across
chunks, exactly as reading the whole file at once numbers them. :class:`FileFacts` gathers, chunk by
chunk, what only the whole file can tell: the first and last record, records outside any batch, control
records of a wrong length, and the header values (batch id, business date).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from connectors._chunks import LINE_SEPARATORS
from connectors.controls import Scope
from connectors.manifest import ControlProblem
from schemas.contract import FixedWidthSource
from schemas.layout import HeaderValue

REPLACEMENT = "\ufffd"
RECORD = "_rec"
DEFAULT_CHUNK_BYTES = 8 << 20
UNDECLARED = "undeclared"


def single_byte(encoding: str) -> bool:
    return len("é".encode(encoding, errors="replace")) == 1


def bom(head: bytes, encoding: str) -> int:
    return 3 if head.startswith(b"\xef\xbb\xbf") and not single_byte(encoding) else 0


def _ascii_lines(encoding: str) -> bool:
    """Line feeds are the byte 0x0A and never part of another character (UTF-8, code pages; not UTF-16)."""
    return "\n".encode(encoding) == b"\n" and codecs.lookup(encoding).name not in ("utf-16", "utf-32")


def _raw_chunks(path: Path, start: int, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(file offset, bytes) of the file from ``start``, ``chunk_bytes`` at a time."""
    with path.open("rb") as fh:
        fh.seek(start)
        offset = start
        while data := fh.read(max(chunk_bytes, 1)):
            yield offset, data
            offset += len(data)


def _decoded(path: Path, source: FixedWidthSource, chunk_bytes: int) -> Iterator[tuple[str, bool]]:
    """The file's text (after any BOM), a chunk at a time, undecodable bytes as U+FFFD; True on the last."""
    with path.open("rb") as fh:
        start = bom(fh.read(3), source.encoding)
    decoder = codecs.getincrementaldecoder(source.encoding)(errors="replace")
    pending: bytes | None = None
    for _, data in _raw_chunks(path, start, chunk_bytes):
        if pending is not None:
            yield decoder.decode(pending), False
        pending = data
    yield decoder.decode(pending or b"", final=True), True


def by_lines(path: Path, source: FixedWidthSource, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> bool:
    """Whether records are lines: declared so, no record length, or (``auto``) a line feed followed by more
    than line breaks, or a file no longer than one record. Reads until it knows (a line file: its start)."""
    length = source.record_length
    if source.line_breaks == "yes" or length is None:
        return True
    if source.line_breaks == "no":
        return False
    chars, trailing, pending = 0, 0, False
    for text, _ in _decoded(path, source, chunk_bytes):
        kept = text.rstrip("\r\n")
        if kept and pending:
            return True
        at = kept.find("\n")
        if at >= 0:
            return True
        if "\n" in text:
            pending = True
        chars += len(text)
        trailing = trailing + len(text) if not kept else len(text) - len(kept)
    return chars - trailing <= length


def record_chunks(
    path: Path, source: FixedWidthSource, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[pl.DataFrame]:
    """The file's records in chunks: ``_rec``, ``_source_line``, ``_source_offset``, ``_undecodable``, ``_cut``."""
    lines = by_lines(path, source, chunk_bytes)
    pieces = _line_pieces(path, source, chunk_bytes) if lines else _cut_pieces(path, source, chunk_bytes)
    line = 1
    for frame in pieces:
        if frame.height == 0:
            continue
        yield frame.with_row_index("_source_line", offset=line).with_columns(
            _undecodable=pl.col(RECORD).str.contains(REPLACEMENT, literal=True), _cut=pl.lit(not lines)
        )
        line += frame.height


def _line_pieces(path: Path, source: FixedWidthSource, chunk_bytes: int) -> Iterator[pl.DataFrame]:
    """Lines, cut at a line feed every ``chunk_bytes`` or so; offsets from the raw bytes."""
    encoding = source.encoding
    with path.open("rb") as fh:
        start = bom(fh.read(3), encoding)
    if not _ascii_lines(encoding):
        yield from _decoded_lines(path, source, chunk_bytes, start)
        return
    carry = b""
    offset = start
    for _, data in _raw_chunks(path, start, chunk_bytes):
        data = carry + data
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if cut:
            yield _lines(data[:cut], offset, encoding)
            offset += cut
    if carry:
        yield _lines(carry, offset, encoding)


def _lines(raw: bytes, offset: int, encoding: str) -> pl.DataFrame:
    """:func:`lines_of` the raw bytes: split by polars itself when they are valid UTF-8 (no Python text)."""
    native = _native_lines(raw, offset) if codecs.lookup(encoding).name == "utf-8" else None
    return (
        native
        if native is not None
        else lines_of(raw.decode(encoding, errors="replace"), raw, offset, encoding)
    )


def _native_lines(raw: bytes, offset: int) -> pl.DataFrame | None:
    """The lines of valid UTF-8 bytes read by polars' CSV reader as one column, or None to split in Python.

    Gives exactly what :func:`lines_of` gives: polars drops one CR before each line feed, as the records
    do, and each line's size is its bytes plus its line feed, plus the CR when every line had one (mixed
    line ends, a BOM, a CR ending the bytes or invalid UTF-8 take the Python path).
    """
    separator = next((c for c in LINE_SEPARATORS if c.encode() not in raw), None)
    if separator is None or not raw or raw.startswith(codecs.BOM_UTF8) or raw.endswith(b"\r"):
        return None
    try:
        lines = pl.read_csv(
            raw, has_header=False, separator=separator, quote_char=None, schema={RECORD: pl.String}
        ).get_column(RECORD)
    except pl.exceptions.PolarsError:  # not valid UTF-8
        return None
    lines = lines.fill_null("")  # polars reads an empty line as null
    n = lines.len()
    feeds = raw.count(b"\n")
    if feeds != n - (0 if raw.endswith(b"\n") else 1):
        return None  # polars split elsewhere than at every line feed: leave it to Python
    length = lines.str.len_bytes().cast(pl.Int64)
    stripped = len(raw) - int(length.sum()) - feeds  # the CRs polars dropped, one before a line feed
    if stripped not in (0, feeds) or (stripped and not raw.endswith(b"\n")):
        return None
    sizes = length + (2 if stripped else 1)
    return pl.DataFrame({RECORD: lines, "_source_offset": sizes.cum_sum().shift(1, fill_value=0) + offset})


def _decoded_lines(
    path: Path, source: FixedWidthSource, chunk_bytes: int, start: int
) -> Iterator[pl.DataFrame]:
    """Lines of a UTF-16/32 file (a line feed is not one byte there): decoded first, offsets approximate."""
    carry, offset = "", start
    for text, last in _decoded(path, source, chunk_bytes):
        text = carry + text
        cut = len(text) if last else text.rfind("\n") + 1
        carry = text[cut:]
        yield lines_of(text[:cut], None, offset, source.encoding)
        offset += len(text[:cut].encode(source.encoding))


def lines_of(text: str, raw: bytes | None, offset: int, encoding: str) -> pl.DataFrame:
    """One chunk's lines (a final line feed makes no empty line) with the byte offset each starts at."""
    frame = pl.DataFrame({RECORD: [text]}, schema={RECORD: pl.String}).select(
        pl.col(RECORD).str.split("\n").explode()
    )
    if text.endswith("\n") or not text:
        frame = frame.slice(0, frame.height - 1)
    column = frame.get_column(RECORD)
    if single_byte(encoding):
        sizes = column.str.len_chars().cast(pl.Int64)
    elif raw is not None and (codecs.lookup(encoding).name != "utf-8" or REPLACEMENT in text):
        sizes = pl.Series(raw.split(b"\n")[: frame.height], dtype=pl.Binary).bin.size().cast(pl.Int64)
    elif raw is not None:  # valid UTF-8: the decoded text has the file's bytes
        sizes = column.str.len_bytes().cast(pl.Int64)
    else:
        sizes = pl.Series([len(v.encode(encoding)) for v in column], dtype=pl.Int64)
    return frame.with_columns(
        _source_offset=(sizes + 1).cum_sum().shift(1, fill_value=0) + offset,
        **{RECORD: pl.col(RECORD).str.strip_suffix("\r")},
    )


def _cut_pieces(path: Path, source: FixedWidthSource, chunk_bytes: int) -> Iterator[pl.DataFrame]:
    """Pieces of ``recordLength`` characters; line breaks ending the file are not part of any record.

    A run of CR/LF at the end of a chunk is held back until more text follows it (only then is it data).
    """
    length = source.record_length
    assert length is not None
    encoding = source.encoding
    with path.open("rb") as fh:
        offset = bom(fh.read(3), encoding)
    carry = ""
    for text, last in _decoded(path, source, chunk_bytes):
        text = carry + text
        if last:
            usable, carry = text.rstrip("\r\n"), ""
        else:
            kept = len(text.rstrip("\r\n"))
            usable = text[: kept - kept % length]
            carry = text[len(usable) :]
        if not usable:
            continue
        frame = pl.DataFrame({RECORD: [usable]}, schema={RECORD: pl.String}).select(
            pl.col(RECORD).str.extract_all(f"(?s).{{1,{length}}}").explode().drop_nulls()
        )
        column = frame.get_column(RECORD)
        sizes = (column.str.len_chars() if single_byte(encoding) else column.str.len_bytes()).cast(pl.Int64)
        frame = frame.with_columns(_source_offset=sizes.cum_sum().shift(1, fill_value=0) + offset)
        offset += int(sizes.sum())
        yield frame


@dataclass
class FileFacts:
    """What the whole file's records (block padding left out) say beyond each record, gathered chunk by chunk."""

    source: FixedWidthSource
    name: str
    records: int = 0
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    stray: int = 0
    first_stray: int | None = None
    bad_length: list[dict[str, Any]] = field(default_factory=list)
    header: dict[str, tuple[str, int]] = field(default_factory=dict)  # record code -> (its text, line)
    _batches: Scope | None = None

    def __post_init__(self) -> None:
        code_of = {role: code for code, role in self.source.records}
        if "batch_header" in code_of and "batch_trailer" in code_of:
            self._batches = Scope(code_of["batch_header"], code_of["batch_trailer"])

    def add(self, records: pl.DataFrame) -> None:
        """One chunk's records (columns ``_rec``, ``_kind``, ``_role``, ``_fits``, ``_source_line``)."""
        if records.height == 0:
            return
        self.records += records.height
        keep = [RECORD, "_kind", "_role", "_source_line"]
        if self.first is None:
            self.first = records.select(keep).row(0, named=True)
        self.last = records.select(keep).row(records.height - 1, named=True)
        if self._batches is not None:
            marked = self._batches.mark(records)
            stray = marked.filter(pl.col("_role").is_in(["detail", "other"]) & ~pl.col("_in")).get_column(
                "_source_line"
            )
            if stray.len():
                self.stray += stray.len()
                self.first_stray = self.first_stray or int(stray[0])
        if len(self.bad_length) < 5:
            bad = records.filter(~pl.col("_fits") & ~pl.col("_role").is_in(["detail", UNDECLARED]))
            self.bad_length += list(bad.select(keep).head(5 - len(self.bad_length)).iter_rows(named=True))
        for hv in (self.source.batch_id, self.source.business_date):
            if hv is not None and hv.record not in self.header:
                found = records.filter(pl.col("_kind") == hv.record).head(1)
                if found.height:
                    self.header[hv.record] = (found.item(0, RECORD), int(found.item(0, "_source_line")))

    def header_value(self, hv: HeaderValue) -> tuple[str | None, int | None]:
        """The stripped text at ``hv`` in the first record of its type, and that record's line."""
        if hv.record not in self.header:
            return None, None
        text, line = self.header[hv.record]
        assert hv.at.start is not None and hv.at.width is not None
        return text[hv.at.start - 1 : hv.at.start - 1 + hv.at.width].strip(" "), line

    def problems(self) -> list[ControlProblem]:
        """File header first, file trailer last, no record outside a batch, no header/control of a wrong length."""
        name, source = self.name, self.source
        if self.first is None or self.last is None:
            return [
                ControlProblem("structure", f"{name}: the file is empty. Fix: ask the source to re-send it.")
            ]
        problems: list[ControlProblem] = []
        roles = dict(source.records)
        code_of = {role: code for code, role in source.records}
        first, last = self.first, self.last
        if "file_header" in code_of and first["_role"] != "file_header":
            problems.append(
                ControlProblem(
                    "structure",
                    f"{name} line {first['_source_line']}: no file header (record type "
                    f"'{code_of['file_header']}'); the file starts with record type '{first['_kind']}'. "
                    "Fix: the file is incomplete; ask the source to re-send it.",
                    line=int(first["_source_line"]),
                )
            )
        if "file_trailer" in code_of and last["_role"] != "file_trailer":
            problems.append(
                ControlProblem(
                    "structure",
                    f"{name} line {last['_source_line']}: no file trailer (record type "
                    f"'{code_of['file_trailer']}') at the end; the file is truncated. Fix: wait for the "
                    "complete file or ask the source to re-send it.",
                    line=int(last["_source_line"]),
                )
            )
        if self.stray:
            problems.append(
                ControlProblem(
                    "structure",
                    f"{name} line {self.first_stray}: {self.stray} record(s) outside any batch (no batch "
                    f"header '{code_of['batch_header']}' before them). Fix: the records are out of order; "
                    "ask the source to re-send the file.",
                    line=self.first_stray,
                )
            )
        for row in self.bad_length:
            problems.append(
                ControlProblem(
                    "structure",
                    f"{name} line {row['_source_line']}: {roles.get(row['_kind'], 'record')} record is not "
                    f"{source.record_length} characters long. Fix: the file was cut or altered; ask the "
                    "source to re-send it.",
                    line=int(row["_source_line"]),
                )
            )
        return problems
