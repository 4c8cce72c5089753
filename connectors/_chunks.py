"""A delimited file as chunks of whole lines, each split into lines and fields natively by polars.

Memory stays flat however large the file: a chunk is cut at a line boundary after ``chunk_bytes``,
transcoded to UTF-8 on its own when the file is not UTF-8, and split into lines by polars' CSV parser
(a separator byte absent from the chunk, no quoting), so there is never one Python string per line.
Fields come from the same parser splitting on the delimiter; the few lines it cannot speak for (a field
count other than the declared one, a quote character) are split again exactly as :func:`split_lines`
does. Each line keeps its 1-based number and byte offset in the file, continued across chunks.

Where polars cannot parse a chunk (invalid UTF-8, every candidate separator byte present), the chunk
falls back to Python's ``str.split`` on its decoded text: slower, same result.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import polars as pl

UTF8 = ("utf-8", "utf-8-sig")
LINE_SEPARATORS = ("\x1f", "\x1e", "\x1d", "\x1c", "\x01", "\x02", "\x03")  # one is absent from a chunk
REPLACEMENT = "\ufffd"
WINDOW = 1 << 16  # bytes read at a time when looking for a line boundary


@dataclass(frozen=True)
class Chunk:
    """Whole lines of the file, as UTF-8 ``text`` for polars, with how to find each line's size in the file.

    ``measure`` is ``bytes`` when a line's size is its UTF-8 length (UTF-8 files; UTF-16/32, where it is
    approximate), ``chars`` when it is its length in characters (one byte each, e.g. cp1252), ``split``
    when only splitting ``raw`` on line feeds tells it (undecodable bytes, multi-byte code pages).
    """

    text: bytes
    raw: bytes | None  # the bytes as the file holds them, when they differ from ``text``
    offset: int  # byte offset of the first line in the file
    measure: Literal["bytes", "chars", "split"]
    last: bool  # holds the file's last line


def file_chunks(path: Path, encoding: str, chunk_bytes: int) -> Iterator[Chunk]:
    """The file's lines in chunks of about ``chunk_bytes``; blank lines after the last record are dropped.

    A UTF-8 BOM is skipped (offsets still count it); a decoded BOM (U+FEFF) opening the text is dropped.
    """
    name = codecs.lookup(encoding).name
    if name not in UTF8 and ("\n".encode(name) != b"\n" or "\r".encode(name) != b"\r"):
        yield from _decoded_chunks(path, name, chunk_bytes)
        return
    decoder = None if name in UTF8 else codecs.getincrementaldecoder(name)(errors="replace")
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        start = 3 if name in UTF8 and fh.read(3) == codecs.BOM_UTF8 else 0
        end = _content_end(fh, start, size)
        pos, first = start, True
        while pos < end:
            stop = _line_end(fh, pos + max(chunk_bytes, 1), end)
            fh.seek(pos)
            raw = fh.read(stop - pos)
            last = stop >= end
            if decoder is None:
                if first and name == "utf-8-sig" and raw.startswith(codecs.BOM_UTF8):
                    # The codec drops one BOM and the reader the U+FEFF after it, as a whole-file decode does.
                    yield Chunk(raw[3:], raw, pos, "split", last)
                else:
                    yield Chunk(raw, None, pos, "bytes", last)
            else:
                text = decoder.decode(raw, final=last)
                measure: Literal["chars", "split"] = "chars" if len(text) == len(raw) else "split"
                if first and text.startswith("\ufeff"):
                    text, measure = text[1:], "split"
                yield Chunk(text.encode("utf-8"), raw, pos, measure, last)
            pos, first = stop, False


def _content_end(fh: BinaryIO, start: int, size: int) -> int:
    """Where the last line holding more than CR and LF ends (after its LF), or ``start`` if none does."""
    pos = size
    while pos > start:
        lo = max(start, pos - WINDOW)
        fh.seek(lo)
        kept = fh.read(pos - lo).rstrip(b"\r\n")
        if kept:
            return _line_end(fh, lo + len(kept), size)
        pos = lo
    return start


def _line_end(fh: BinaryIO, at: int, end: int) -> int:
    """The position just after the first line feed at or after ``at``; ``end`` if there is none before it."""
    if at >= end:
        return end
    fh.seek(at)
    pos = at
    while pos < end:
        window = fh.read(min(WINDOW, end - pos))
        found = window.find(b"\n")
        if found >= 0:
            return pos + found + 1
        pos += len(window)
    return end


def _decoded_chunks(path: Path, encoding: str, chunk_bytes: int) -> Iterator[Chunk]:
    """Chunks of a file whose line feed is not the byte 0x0A (UTF-16/32): decoded incrementally.

    Sizes are measured in UTF-8 bytes here, so offsets are approximate, as for the whole-file reader.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    carry, offset, first = "", 0, True
    pending: bytes | None = None  # held back one step, to know whether it is the last
    with path.open("rb") as fh:
        while True:
            block = fh.read(max(chunk_bytes, 1))
            final = not block
            text = carry + decoder.decode(block, final=final)
            if first and text:
                text, first = text.removeprefix("\ufeff"), False
            cut = len(text) if final else text.rfind("\n") + 1
            kept = text[:cut].rstrip("\r\n")
            # Lines after the last one holding more than CR/LF wait for the next chunk: at the end they are dropped.
            stop = 0 if not kept else (text.find("\n", len(kept)) + 1 or len(text))
            if stop:
                if pending is not None:
                    yield Chunk(pending, None, offset, "bytes", False)
                    offset += len(pending)
                pending = text[:stop].encode("utf-8")
            carry = text[stop:]
            if final:
                if pending is not None:
                    yield Chunk(pending, None, offset, "bytes", True)
                return


@dataclass(frozen=True)
class Lines:
    """One chunk's lines (CR stripped), their 1-based numbers and byte offsets; ``native`` if polars split them."""

    frame: pl.DataFrame  # line, _source_line, _source_offset
    native: bool
    separator: str | None
    chunk: Chunk  # as split: undecodable bytes replaced by U+FFFD


def chunk_lines(chunk: Chunk, first_line: int) -> Lines:
    """Split a chunk into lines, numbered from ``first_line``, each with its byte offset in the file."""
    separator = next((s for s in LINE_SEPARATORS if s.encode() not in chunk.text), None)
    if chunk.text.startswith(codecs.BOM_UTF8):  # polars would drop it; it belongs to the first line
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
        sizes = _split_sizes(chunk, len(parts))
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
        return Chunk(text, chunk.text, chunk.offset, "split", chunk.last)


def _native_sizes(chunk: Chunk, lines: pl.Series) -> pl.Series | None:
    """Each line's size in the file from the chunk's size alone: possible when all or none end in CR."""
    n = lines.len()
    if n == 0:
        return pl.Series("size", [], dtype=pl.Int64)
    if chunk.measure == "split":
        return _split_sizes(chunk, n)
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


def split_lines(lines: pl.Series, delimiter: str, quote: str | None) -> tuple[pl.Series, pl.Series]:
    """Fields of every line: a vectorised split, with the ``csv`` module for quoted lines only.

    Also returns, per line, whether its quoting could not be read (e.g. a field past the ``csv``
    module's size limit); such a line keeps its plain split and is marked, never guessed at.
    """
    frame = pl.DataFrame({"line": lines}, schema={"line": pl.String}).with_row_index("i")
    fields = frame.select(f=pl.col("line").str.split(delimiter))
    no_problem = pl.Series("_quoting", [False] * frame.height, dtype=pl.Boolean)
    if not quote:
        return fields.get_column("f"), no_problem
    quoted = frame.filter(pl.col("line").str.contains(quote, literal=True))
    if quoted.height == 0:
        return fields.get_column("f"), no_problem
    parsed = pl.DataFrame(
        {
            "i": quoted.get_column("i"),
            "q": [_quoted_fields(line, delimiter, quote) for line in quoted.get_column("line").to_list()],
        },
        schema={"i": pl.UInt32, "q": pl.List(pl.String)},
    )
    parsed = parsed.with_columns(bad=pl.col("q").is_null())
    joined = frame.select("i").with_columns(fields.get_column("f"))
    joined = joined.join(parsed, on="i", how="left", maintain_order="left")  # row i stays line i
    unreadable = joined.get_column("bad").fill_null(False).alias("_quoting")
    return joined.select(pl.coalesce("q", "f")).to_series().alias("f"), unreadable


def split_line(line: str, delimiter: str, quote: str | None) -> list[str]:
    """One line's fields, as :func:`split_lines` gives them (for header and trailer records)."""
    if quote and quote in line:
        fields = _quoted_fields(line, delimiter, quote)
        if fields is not None:
            return fields
    return line.split(delimiter)


def _quoted_fields(line: str, delimiter: str, quote: str) -> list[str] | None:
    try:
        return next(csv.reader([line], delimiter=delimiter, quotechar=quote), [])
    except csv.Error:
        return None


def field_name(index: int) -> str:
    return f"_f{index}"


def chunk_fields(
    chunk: Chunk,
    lines: Lines,
    delimiter: str,
    quote: str | None,
    *,
    width: int,
    wanted: Sequence[int] | None = None,
    native: bool = True,
) -> pl.DataFrame:
    """Fields of a chunk's lines as columns ``_f0, _f1, …`` plus ``_n`` (field count) and ``_quoting``.

    ``width`` is the field count a record should have. With ``wanted`` only those fields are returned
    and ``_n`` is not (the survey pass): a field past a short line's end may then be ``""`` rather than
    null, which no control or key tells apart. ``native=False`` splits every line the exact way.
    """
    line = lines.frame.get_column("line")
    n = line.len()
    indices = list(range(width)) if wanted is None else sorted(set(wanted))
    columns = _native_fields(chunk, lines, delimiter, indices, n) if native else None
    if columns is None:  # polars cannot split this chunk: every line the exact way
        fields, quoting = split_lines(line, delimiter, quote)
        out = {field_name(i): fields.list.get(i, null_on_oob=True) for i in indices}
        if wanted is None:
            out["_n"] = fields.list.len().cast(pl.Int64)
        out["_quoting"] = quoting
        return pl.DataFrame(out)
    out = {field_name(i): columns[i] for i in indices}
    redo: list[pl.Expr] = []
    if wanted is None:  # a line splits into ``width`` fields exactly when their lengths add up to its own
        joined = pl.sum_horizontal([pl.col(field_name(i)).str.len_bytes() for i in indices]) + (width - 1)
        redo.append((joined != pl.col("line").str.len_bytes()).fill_null(True))
    if quote and quote.encode("utf-8") in chunk.text:
        redo.append(pl.col("line").str.contains(quote, literal=True))
    if wanted is not None and b"\r" in chunk.text:  # polars drops a CR that ends a field
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
        fields, unreadable = split_lines(line.gather(positions), delimiter, quote)
        for i in indices:
            out[field_name(i)] = out[field_name(i)].scatter(positions, fields.list.get(i, null_on_oob=True))
        counts = counts.scatter(positions, fields.list.len().cast(pl.Int64))
        quoting = quoting.scatter(positions, unreadable)
    if wanted is None:
        out["_n"] = counts
    out["_quoting"] = quoting
    return pl.DataFrame(out)


def _native_fields(
    chunk: Chunk, lines: Lines, delimiter: str, indices: list[int], n: int
) -> dict[int, pl.Series] | None:
    """Fields split by polars' CSV parser (no quoting), or None where it cannot speak for every line."""
    if not lines.native or len(delimiter) != 1 or ord(delimiter) > 127 or delimiter in "\r\n":
        return None
    schema = {field_name(i): pl.String for i in range(max(indices) + 1)}
    try:
        frame = pl.read_csv(
            chunk.text,
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
    if frame.height != n:
        return None
    return {i: frame.get_column(field_name(i)) for i in indices}
