"""A delimited file's chunks split into records and fields natively by polars.

Each chunk (whole lines, from :mod:`connectors._files`) is split into lines by polars' CSV parser (a
separator byte absent from the chunk, no quoting), so there is never one Python string per line; the
lines are grouped into records (:mod:`connectors._records`: only where a quote or escape character
occurs), a record left open at the chunk's end waiting for the next chunk. Fields come from the same
parser splitting on the delimiter; the few records it cannot speak for (a field count other than the
declared one, a quote or escape character, several lines) are split again exactly as
:func:`split_lines` does. Each record keeps the 1-based number and byte offset of its first line.

Where polars cannot parse a chunk (invalid UTF-8, every candidate separator byte present), the chunk
falls back to Python's ``str.split`` on its decoded text: slower, same result.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from connectors._files import Chunk, decoded, file_chunks, joined
from connectors._records import Dialect, Records, group_lines, split_record

__all__ = [
    "Chunk",
    "Dialect",
    "Lines",
    "chunk_fields",
    "chunk_lines",
    "file_chunks",
    "holds_replacement",
    "record_lines",
]

LINE_SEPARATORS = ("\x1f", "\x1e", "\x1d", "\x1c", "\x01", "\x02", "\x03")  # one is absent from a chunk
REPLACEMENT = "\ufffd"
_REPLACEMENT_BYTES = REPLACEMENT.encode("utf-8")


def holds_replacement(text: bytes) -> bool:
    """Whether UTF-8 ``text`` holds U+FFFD. Its lead byte 0xEF is rare in most text and found by
    ``memchr``; Python's search for the three bytes costs ~8x as much on text without it."""
    return b"\xef" in text and _REPLACEMENT_BYTES in text


@dataclass(frozen=True)
class Lines:
    """One chunk's physical lines (CR stripped), numbered and placed in the file, and how they make records.

    ``frame`` holds one row per physical line (line, _source_line, _source_offset); :meth:`records` one
    per record, a record that spans lines holding its whole text and the number of its first line.
    """

    frame: pl.DataFrame
    native: bool
    separator: str | None
    chunk: Chunk  # as split: undecodable bytes replaced by U+FFFD
    grouping: Records = field(default_factory=Records)

    def records(self) -> pl.DataFrame:
        starts = self.grouping.starts
        if starts is None:
            return self.frame
        frame = self.frame[starts]
        if self.grouping.texts:
            at = starts.search_sorted(pl.Series(list(self.grouping.texts), dtype=starts.dtype))
            texts = pl.Series(list(self.grouping.texts.values()), dtype=pl.String)
            frame = frame.with_columns(frame.get_column("line").scatter(at, texts))
        return frame

    def unterminated(self) -> pl.Series:
        """Per record: whether its quote (or escape) was never closed."""
        starts = self.grouping.starts
        n = self.frame.height if starts is None else starts.len()
        flags = pl.repeat(False, n, eager=True)
        if self.grouping.unterminated:
            first = pl.Series(self.grouping.unterminated, dtype=pl.UInt32)
            at = first if starts is None else starts.search_sorted(first.cast(starts.dtype))
            flags = flags.scatter(at, True)
        return flags


def record_lines(path: Path, encoding: str, chunk_bytes: int, dialect: Dialect) -> Iterator[Lines]:
    """Each chunk's lines, grouped into records; a record left open at a chunk's end waits for the next."""
    line = 1
    held: Chunk | None = None
    for piece in file_chunks(path, encoding, chunk_bytes):
        chunk = piece if held is None else joined(held, piece)
        lines = chunk_lines(chunk, line)
        grouping = group_lines(lines.frame.get_column("line"), lines.chunk, dialect)
        held = None
        if grouping.held is not None:
            held = _held(chunk, lines.frame, grouping.held)
            lines = Lines(lines.frame.slice(0, grouping.held), lines.native, lines.separator, lines.chunk)
        lines = Lines(lines.frame, lines.native, lines.separator, lines.chunk, grouping)
        line += lines.frame.height
        yield lines
    if held is not None:  # only when the file ends inside the held lines (cannot happen: the last chunk)
        raise AssertionError("lines held back past the end of the file")


def _held(chunk: Chunk, frame: pl.DataFrame, first: int) -> Chunk:
    """The lines of ``chunk`` from physical line ``first`` on, as a chunk of their own."""
    offset = int(frame.get_column("_source_offset")[first])
    at = offset - chunk.offset
    if chunk.raw is None:
        return Chunk(chunk.text[at:], None, offset, "bytes", False, chunk.codec, chunk.newline)
    return decoded(chunk.raw[at:], chunk.codec, offset, False)


def chunk_lines(chunk: Chunk, first_line: int) -> Lines:
    """Split a chunk into lines, numbered from ``first_line``, each with its byte offset in the file."""
    separator = next((s for s in LINE_SEPARATORS if s.encode() not in chunk.text), None)
    if chunk.text.startswith(codecs.BOM_UTF8):  # polars would drop it; it belongs to the first line
        separator = None
    if chunk.text.endswith(b"\r"):  # polars would drop a CR that ends the file without a line feed
        separator = None
    lines: pl.Series | None = None
    if separator is not None:
        try:
            lines = pl.read_csv(
                chunk.text,
                has_header=False,
                separator=separator,
                quote_char=None,
                schema={"line": pl.String},
            ).get_column("line")
        except pl.exceptions.PolarsError:  # invalid UTF-8: decoded below, undecodable bytes replaced
            lines = None
    native = lines is not None
    sizes: pl.Series | None = None
    if lines is None:
        chunk = _repaired(chunk)
        text = chunk.text.decode("utf-8")
        parts = text.split("\n")
        if text.endswith("\n"):
            parts.pop()
        lines = pl.Series("line", parts, dtype=pl.String).str.strip_suffix("\r")
        sizes = (
            _unit_sizes(chunk, len(parts)) if chunk.measure == "units" else _split_sizes(chunk, len(parts))
        )
    else:
        lines = lines.fill_null("")  # polars reads an empty line as null
        sizes = _native_sizes(chunk, lines)
    if sizes is None:
        sizes = (lines.str.len_bytes().cast(pl.Int64) + 1).alias("size")
    frame = pl.DataFrame(
        {
            "line": lines,
            "_source_line": pl.int_range(first_line, first_line + lines.len(), dtype=pl.Int64, eager=True),
            "_source_offset": sizes.cum_sum().shift(1, fill_value=0) + chunk.offset,
        }
    )
    return Lines(frame, native, separator, chunk)


def _repaired(chunk: Chunk) -> Chunk:
    """A UTF-8 chunk holding invalid bytes, as valid UTF-8 (U+FFFD for them), sized from its raw bytes."""
    if chunk.raw is not None:
        return chunk
    try:
        chunk.text.decode("utf-8")
        return chunk
    except UnicodeDecodeError:
        text = chunk.text.decode("utf-8", errors="replace").encode("utf-8")
        return Chunk(text, chunk.text, chunk.offset, "split", chunk.last, chunk.codec)


def _native_sizes(chunk: Chunk, lines: pl.Series) -> pl.Series | None:
    """Each line's size in the file from the chunk's size alone: possible when all or none end in CR."""
    n = lines.len()
    if n == 0:
        return pl.Series("size", [], dtype=pl.Int64)
    if chunk.measure == "split":
        return _split_sizes(chunk, n)
    if chunk.measure == "units":
        return _unit_sizes(chunk, n)
    length = (lines.str.len_chars() if chunk.measure == "chars" else lines.str.len_bytes()).cast(pl.Int64)
    total = len(chunk.raw if chunk.raw is not None else chunk.text)
    feeds = n if chunk.text.endswith(b"\n") else n - 1
    stripped_cr = total - int(length.sum()) - feeds  # polars strips one CR before each LF
    if stripped_cr == 0:
        return (length + 1).alias("size")
    if stripped_cr == n:
        return (length + 2).alias("size")
    return _split_sizes(chunk, n)


def _split_sizes(chunk: Chunk, n: int) -> pl.Series | None:
    """Each line's size from the raw bytes split on line feeds (None if they do not split into ``n``)."""
    raw = chunk.raw if chunk.raw is not None else chunk.text
    sizes = [len(b) + 1 for b in raw.split(b"\n")]
    if raw.endswith(b"\n"):
        sizes.pop()
    return pl.Series("size", sizes, dtype=pl.Int64) if len(sizes) == n else None


def _unit_sizes(chunk: Chunk, n: int) -> pl.Series | None:
    """Each line's size in a UTF-16/32 file: the raw code units split at the line feed unit (exact)."""
    raw = chunk.raw if chunk.raw is not None else chunk.text
    width = len(chunk.newline)
    kind = pa.uint16() if width == 2 else pa.uint32()
    units = pl.from_arrow(pa.Array.from_buffers(kind, len(raw) // width, [None, pa.py_buffer(raw)]))
    assert isinstance(units, pl.Series)
    feed = int.from_bytes(chunk.newline, sys.byteorder)
    ends = ((units == feed).arg_true().cast(pl.Int64) + 1) * width
    if ends.len() == 0 or ends[-1] < len(raw):
        ends = ends.append(pl.Series([len(raw)], dtype=pl.Int64))
    sizes = ends.diff().fill_null(ends[0]).alias("size")
    return sizes if sizes.len() == n else None


def split_lines(lines: pl.Series, dialect: Dialect) -> tuple[pl.Series, pl.Series]:
    """Fields of every record: a vectorised split, with the ``csv`` module for quoted or escaped ones only.

    Also returns, per record, whether its quoting could not be read (e.g. a field past the ``csv``
    module's size limit); such a record keeps its plain split and is marked, never guessed at.
    """
    frame = pl.DataFrame({"line": lines}, schema={"line": pl.String}).with_row_index("i")
    fields = frame.select(f=pl.col("line").str.split(dialect.delimiter))
    no_problem = pl.Series("_quoting", [False] * frame.height, dtype=pl.Boolean)
    if not dialect.special:
        return fields.get_column("f"), no_problem
    quoted = frame.filter(
        pl.any_horizontal(pl.col("line").str.contains(c, literal=True) for c in dialect.special)
    )
    if quoted.height == 0:
        return fields.get_column("f"), no_problem
    parsed = pl.DataFrame(
        {
            "i": quoted.get_column("i"),
            "q": [split_record(line, dialect) for line in quoted.get_column("line").to_list()],
        },
        schema={"i": pl.UInt32, "q": pl.List(pl.String)},
    )
    parsed = parsed.with_columns(bad=pl.col("q").is_null())
    joined_fields = frame.select("i").with_columns(fields.get_column("f"))
    joined_fields = joined_fields.join(parsed, on="i", how="left", maintain_order="left")  # row i stays i
    unreadable = joined_fields.get_column("bad").fill_null(False).alias("_quoting")
    return joined_fields.select(pl.coalesce("q", "f")).to_series().alias("f"), unreadable


def split_line(line: str, dialect: Dialect) -> list[str]:
    """One record's fields, as :func:`split_lines` gives them (for header and trailer records)."""
    if any(c in line for c in dialect.special):
        fields = split_record(line, dialect)
        if fields is not None:
            return [f if f is not None else "" for f in fields]
    return line.split(dialect.delimiter)


def field_name(index: int) -> str:
    return f"_f{index}"


def chunk_fields(
    lines: Lines,
    dialect: Dialect,
    *,
    width: int,
    wanted: Sequence[int] | None = None,
    native: bool = True,
) -> pl.DataFrame:
    """Fields of a chunk's records as columns ``_f0, _f1, …`` plus ``_n`` (field count) and ``_quoting``.

    ``width`` is the field count a record should have. With ``wanted`` only those fields are returned
    and ``_n`` is not (the survey pass): a field past a short line's end may then be ``""`` rather than
    null, which no control or key tells apart. ``native=False`` splits every record the exact way.
    """
    chunk = lines.chunk
    records = lines.records()
    line = records.get_column("line")
    n = line.len()
    indices = list(range(width)) if wanted is None else sorted(set(wanted))
    columns = _native_fields(lines, dialect.delimiter, indices) if native else None
    unterminated = lines.unterminated()
    if columns is None:  # polars cannot split this chunk: every record the exact way
        fields, quoting = split_lines(line, dialect)
        out = {field_name(i): fields.list.get(i, null_on_oob=True) for i in indices}
        if wanted is None:
            out["_n"] = fields.list.len().cast(pl.Int64)
        out["_quoting"] = quoting | unterminated
        return pl.DataFrame(out)
    starts = lines.grouping.starts
    out = {field_name(i): columns[i] if starts is None else columns[i].gather(starts) for i in indices}
    redo: list[pl.Expr] = []
    if wanted is None:  # a line splits into ``width`` fields exactly when their lengths add up to its own
        joined_length = pl.sum_horizontal([pl.col(field_name(i)).str.len_bytes() for i in indices]) + (
            width - 1
        )
        redo.append((joined_length != pl.col("line").str.len_bytes()).fill_null(True))
    for c in dialect.special:
        if c.encode("utf-8") in chunk.text:
            redo.append(pl.col("line").str.contains(c, literal=True))
    if b"\r" in chunk.text:  # polars drops a CR that ends a field (not only the one before LF)
        redo.append(pl.col("line").str.contains("\r", literal=True))
    checks = pl.DataFrame({**out, "line": line})
    positions = (
        checks.select(pl.any_horizontal(redo).alias("redo")).get_column("redo").arg_true()
        if redo
        else pl.Series(dtype=pl.UInt32)
    )
    counts = pl.repeat(width, n, dtype=pl.Int64, eager=True)
    quoting = pl.repeat(False, n, eager=True)
    if positions.len():
        fields, unreadable = split_lines(line.gather(positions), dialect)
        for i in indices:
            out[field_name(i)] = out[field_name(i)].scatter(positions, fields.list.get(i, null_on_oob=True))
        counts = counts.scatter(positions, fields.list.len().cast(pl.Int64))
        quoting = quoting.scatter(positions, unreadable)
    if wanted is None:
        out["_n"] = counts
    out["_quoting"] = quoting | unterminated
    return pl.DataFrame(out)


def _native_fields(lines: Lines, delimiter: str, indices: list[int]) -> dict[int, pl.Series] | None:
    """Fields of each physical line split by polars' CSV parser (no quoting), or None where it cannot."""
    if not lines.native or len(delimiter) != 1 or ord(delimiter) > 127 or delimiter in "\r\n":
        return None
    schema = {field_name(i): pl.String for i in range(max(indices) + 1)}
    try:
        frame = pl.read_csv(
            lines.chunk.text,
            has_header=False,
            separator=delimiter,
            quote_char=None,
            schema=schema,
            columns=indices,
            truncate_ragged_lines=True,
            missing_columns="insert",
            extra_columns="ignore",
            empty_string_is_null=False,
        )
    except pl.exceptions.PolarsError:
        return None
    if frame.height < lines.frame.height:
        return None
    return {i: frame.get_column(field_name(i)).head(lines.frame.height) for i in indices}
