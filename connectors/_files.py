"""A delimited file as pieces of whole lines, decoded to UTF-8 one piece at a time.

Memory stays flat however large the file: a piece is cut just after a line feed once it holds about
``chunk_bytes``, and decoded on its own. The line feed is searched for as the file's encoding writes it:
the byte 0x0A in UTF-8 and code pages, a whole 2- or 4-byte code unit in UTF-16 and UTF-32, so a cut
never splits a code unit or a surrogate pair (no surrogate holds 0x000A) and byte offsets stay those of
the original file.

A byte order mark decides how a file declared as Unicode (``utf-8``, ``utf-16``, ``utf-32``, with or
without an endianness) is read, and is not part of the first record; a declared code page (cp1252,
latin-1, …) is never overridden. UTF-16/32 without a BOM is read little-endian unless the contract
names ``-be``. A UTF-16 mark followed by UTF-32 code units (as some Java tools write) is read as UTF-32.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

UTF8 = ("utf-8", "utf-8-sig")
UNICODE = (*UTF8, "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")
WIDE = {"utf-16-le": 2, "utf-16-be": 2, "utf-32-le": 4, "utf-32-be": 4}
# UTF-32-LE's mark begins with UTF-16-LE's: look for it first.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
WINDOW = 1 << 16  # bytes read at a time when looking for a line boundary

Measure = Literal["bytes", "chars", "split", "units"]


@dataclass(frozen=True)
class Chunk:
    """Whole lines of the file, as UTF-8 ``text`` for polars, with how to find each line's size in the file.

    ``measure`` is ``bytes`` when a line's size is its UTF-8 length (UTF-8 files), ``chars`` when it is
    its length in characters (one byte each, e.g. cp1252), ``split`` when only splitting ``raw`` on line
    feeds tells it (undecodable bytes, multi-byte code pages), ``units`` when ``raw`` is split on the
    encoded line feed ``newline`` (UTF-16/32: exact offsets whatever the text holds).
    """

    text: bytes
    raw: bytes | None  # the bytes as the file holds them, when they differ from ``text``
    offset: int  # byte offset of the first line in the file
    measure: Measure
    last: bool  # holds the file's last line
    codec: str = "utf-8"
    newline: bytes = b"\n"  # the line feed as the file writes it


def file_encoding(path: Path, declared: str) -> tuple[str, int]:
    """The codec a file is read with and the length of its byte order mark (see the module docstring)."""
    name = codecs.lookup(declared).name
    if name not in UNICODE:
        return name, 0
    with path.open("rb") as fh:
        head = fh.read(8)
    for bom, codec in BOMS:
        if head.startswith(bom):
            return (_two_byte_mark_utf32(head) if len(bom) == 2 else None) or codec, len(bom)
    return {"utf-8-sig": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}.get(name, name), 0


def _two_byte_mark_utf32(head: bytes) -> str | None:
    """UTF-32 after a 2-byte mark (``FE FF 22 00 00 00``), as some Java tools write it; None otherwise.

    Read as UTF-16, such a file would hold U+0000 next to every character, which no text does.
    """
    if head[:2] not in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) or len(head) < 6:
        return None
    first, second = head[2:4], head[4:6]
    if first != b"\0\0" and second == b"\0\0":
        return "utf-32-le"
    if first == b"\0\0" and second != b"\0\0":
        return "utf-32-be"
    return None


def file_chunks(path: Path, encoding: str, chunk_bytes: int) -> Iterator[Chunk]:
    """The file's lines in chunks of about ``chunk_bytes``; blank lines after the last record are dropped."""
    codec, start = file_encoding(path, encoding)
    newline = "\n".encode(codec)
    if codec not in WIDE and (newline != b"\n" or "\r".encode(codec) != b"\r"):
        yield from _decoded_chunks(path, codec, chunk_bytes)
        return
    width = len(newline)
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        end = _content_end(fh, start, size, newline)
        pos = start
        while pos < end:
            stop = _line_end(fh, start, pos + max(chunk_bytes, width), end, newline)
            fh.seek(pos)
            yield decoded(fh.read(stop - pos), codec, pos, stop >= end)
            pos = stop


def decoded(raw: bytes, codec: str, offset: int, last: bool) -> Chunk:
    """Whole lines of a file (its bytes from ``offset``) as a :class:`Chunk`; undecodable bytes become U+FFFD."""
    if codec in UTF8:
        return Chunk(raw, None, offset, "bytes", last, codec)
    text = raw.decode(codec, errors="replace")
    if codec in WIDE:
        return Chunk(text.encode("utf-8"), raw, offset, "units", last, codec, "\n".encode(codec))
    measure: Measure = "chars" if len(text) == len(raw) else "split"
    return Chunk(text.encode("utf-8"), raw, offset, measure, last, codec)


def joined(head: Chunk, tail: Chunk) -> Chunk:
    """Lines held back from one chunk (an unfinished record) followed by the next chunk's."""
    if head.raw is None and tail.raw is None:
        return Chunk(head.text + tail.text, None, head.offset, "bytes", tail.last, tail.codec, tail.newline)
    raw = (head.raw if head.raw is not None else head.text) + (
        tail.raw if tail.raw is not None else tail.text
    )
    return decoded(raw, tail.codec, head.offset, tail.last)


def _aligned(start: int, at: int, width: int) -> int:
    return at + (-(at - start)) % width


def _content_end(fh: BinaryIO, start: int, size: int, newline: bytes) -> int:
    """Where the last line holding more than CR and LF ends (after its LF), or ``start`` if none does."""
    width = len(newline)
    if (size - start) % width:  # a torn last code unit is content: the last line ends at the end of file
        return size
    blank = (newline, newline.replace(b"\n", b"\r"))
    pos = size
    while pos > start:
        lo = max(start, pos - WINDOW)
        lo = _aligned(start, lo, width)
        fh.seek(lo)
        window = fh.read(pos - lo)
        kept = len(window)
        while kept >= width and window[kept - width : kept] in blank:
            kept -= width
        if kept:
            return _line_end(fh, start, lo + kept, size, newline)
        pos = lo
    return start


def _line_end(fh: BinaryIO, start: int, at: int, end: int, newline: bytes) -> int:
    """Just after the first line feed at or after ``at`` (on a code unit boundary); ``end`` if none is."""
    width = len(newline)
    at = _aligned(start, at, width)
    pos = at
    while pos < end:
        fh.seek(pos)
        window = fh.read(min(WINDOW, end - pos))
        found = window.find(newline)
        while found >= 0 and (pos + found - start) % width:
            found = window.find(newline, found + 1)
        if found >= 0:
            return min(pos + found + width, end)
        if not window:
            return end
        pos += len(window)  # windows start on a code unit and WINDOW is a whole number of them
    return end


def _decoded_chunks(path: Path, encoding: str, chunk_bytes: int) -> Iterator[Chunk]:
    """Chunks of a file whose line feed is another byte (EBCDIC code pages): decoded incrementally.

    Sizes are measured in UTF-8 bytes here, so offsets are approximate.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    carry, offset = "", 0
    pending: bytes | None = None  # held back one step, to know whether it is the last
    with path.open("rb") as fh:
        while True:
            block = fh.read(max(chunk_bytes, 1))
            final = not block
            text = carry + decoder.decode(block, final=final)
            cut = len(text) if final else text.rfind("\n") + 1
            kept = text[:cut].rstrip("\r\n")
            # Lines after the last one holding more than CR/LF wait for the next chunk: at the end they are dropped.
            stop = 0 if not kept else (text.find("\n", len(kept)) + 1 or len(text))
            if stop:
                if pending is not None:
                    yield Chunk(pending, None, offset, "bytes", False, encoding)
                    offset += len(pending)
                pending = text[:stop].encode("utf-8")
            carry = text[stop:]
            if final:
                if pending is not None:
                    yield Chunk(pending, None, offset, "bytes", True, encoding)
                return
