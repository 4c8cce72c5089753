"""Delimited ERP batch exports: odd dialects, header and trailer control records, files larger than memory.

A file is read in chunks of whole records (see :mod:`connectors._chunks`), so memory stays flat however
large the batch; a file in another encoding than UTF-8 (a code page, UTF-16/32) is transcoded chunk by
chunk. Lines are split into fields natively by polars, by the ``csv`` module only for the records that
hold a quote or escape character; a record may span physical lines (a quoted or escaped line break, see
:mod:`connectors._records`). Detail records become rows of String columns; a record that cannot be
split into the declared fields (wrong field count, broken quoting, undecodable bytes, unknown record
type) is still a row, carrying a ``_record_error`` so validation quarantines it. The header and trailer
give the batch id, business date and control figures (:mod:`connectors._controls_delimited`); the
trailer covers every physical detail record, readable or not. A plain CSV may instead open with a row of
column names (``header: names``), matched by name (:mod:`connectors._header`).

:class:`DelimitedFile` reads one landed file in two passes: :meth:`~DelimitedFile.survey` reads only the
fields the controls and the caller need and returns the manifest; :meth:`~DelimitedFile.records` then
yields each chunk's detail records. :func:`read_delimited` returns the whole file at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal, localcontext
from pathlib import Path

import polars as pl

from connectors._chunks import (
    REPLACEMENT,
    Dialect,
    chunk_fields,
    field_name,
    holds_replacement,
    record_lines,
    split_line,
    split_lines,
)
from connectors._controls_delimited import (
    Edge,
    Tally,
    control_amount,
    header_facts,
    kind_of,
    number_format,
    reconcile,
)
from connectors._header import HeaderRow, read_header_row
from connectors.manifest import ControlProblem, Controls, Extraction, Manifest, file_checksum
from connectors.read_ahead import read_ahead
from schemas.contract import DelimitedSource
from schemas.parse import minus_first, plain_separators

DEFAULT_CHUNK_BYTES = 8 << 20  # a few chunks in flight at once (read, validate, write) stay well under 1 GB
ORIGIN = {"_source_line": pl.Int64, "_source_offset": pl.Int64, "_record_error": pl.String}


class DelimitedFile:
    """One delivered delimited file, read chunk by chunk.

    Parameters
    ----------
    path
        The delivered (landed) file.
    source
        The contract's source settings: dialect, encoding, record types and control positions.
    columns
        Contract column names, in the order their fields appear in a detail record (with a header row
        of column names, in any order: they are found by name).
    chunk_bytes
        About how many bytes of the file each chunk holds (always whole records).
    checksum
        The file's SHA-256 when already known (a landed file is named by it); computed otherwise.
    names
        The name each column has in a header row, where it differs from the column's (``physicalName``).
    """

    def __init__(
        self,
        path: Path,
        source: DelimitedSource,
        columns: Sequence[str],
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        checksum: str | None = None,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.source = source
        self.columns = list(columns)
        self.chunk_bytes = chunk_bytes
        self.checksum = checksum
        self.dialect = Dialect.of(source)
        offset = 1 if source.record_types else 0
        self.positions: dict[str, int | None] = {c: i + offset for i, c in enumerate(self.columns)}
        self.width = len(self.columns) + offset
        self.header: HeaderRow | None = None
        if source.header_names:
            self.header = read_header_row(path, source.encoding, self.dialect, self.columns, names or {})
            self.positions = dict(self.header.positions)
            self.width = len(self.header.names)

    def survey(
        self, keep: Sequence[str] = (), each: Callable[[pl.DataFrame], object] | None = None
    ) -> Manifest:
        """Pass 1: batch facts and control figures, reading only the fields they and ``keep`` need.

        ``each`` receives every chunk's detail records as ``_source_line`` plus the ``keep`` columns
        (e.g. to find keys duplicated anywhere in the batch).
        """
        c = self.source.controls
        wanted = list(dict.fromkeys([*keep, *([c.amount_column] if c.amount_column else [])]))
        indices = [i for i in (self.positions[name] for name in wanted) if i is not None]
        tally = Tally()
        for frame in self._frames(tally, indices):
            records = frame.select("_source_line", "_kind", *[self._field(n) for n in wanted])
            self._count(tally, records)
            if each is not None:
                each(records.select("_source_line", *keep))
        return self._manifest(tally)

    def records(self) -> Iterator[pl.DataFrame]:
        """Pass 2: every chunk's detail records, as :func:`read_delimited` returns them (at least one frame)."""
        empty = True
        for frame in self._frames(Tally(), None):
            empty = False
            yield self._records(frame).drop("_kind")
        if empty:
            yield self.empty()

    def empty(self) -> pl.DataFrame:
        """No records, with the columns and types every chunk of records has."""
        return pl.DataFrame(schema={**{name: pl.String for name in self.columns}, **ORIGIN})

    def read(self) -> Extraction:
        """Both at once, for a file that fits in memory: all detail records and the manifest."""
        tally = Tally()
        frames = []
        for frame in self._frames(tally, None):
            records = self._records(frame)
            self._count(tally, records)
            frames.append(records.drop("_kind"))
        records = pl.concat(frames) if frames else self.empty()
        return Extraction(records=records, manifest=self._manifest(tally))

    # -- reading ----------------------------------------------------------------------------------
    def _field(self, column: str) -> pl.Expr:
        """A column's field; null throughout when a header row does not name it (the batch is rejected)."""
        index = self.positions[column]
        return (pl.col(field_name(index)) if index is not None else pl.lit(None, pl.String)).alias(column)

    def _frames(self, tally: Tally, wanted: list[int] | None) -> Iterator[pl.DataFrame]:
        """Each chunk's lines with their fields (all, or the ``wanted`` ones) and record kind.

        The header (first line) and trailer (last line) are taken out and kept on ``tally``. Chunks
        are split ahead, in a background thread, while the caller works on the previous one.
        """
        rt = self.source.record_types
        for last, frame, lines in read_ahead(self._split(wanted)):
            tally.lines += lines
            if not frame.height:
                continue
            starts_file = tally.records == 0
            tally.records += frame.height
            if starts_file and self.header is not None:
                frame = frame.slice(1)  # the column names
            elif starts_file and rt is not None:
                header = self._edge(frame, 0)
                if kind_of(header, rt.field) == rt.header:
                    tally.header = header
                    frame = frame.slice(1)
            if rt is not None and last and frame.height and tally.records > 1:
                trailer = self._edge(frame, frame.height - 1)
                if kind_of(trailer, rt.field) == rt.trailer:
                    tally.trailer = trailer
                    frame = frame.slice(0, frame.height - 1)
            yield frame

    def _split(self, wanted: list[int] | None) -> Iterator[tuple[bool, pl.DataFrame, int]]:
        """Each chunk's records, their fields and record kind; whether it is the last; its physical lines.

        The next chunk is read and its lines grouped into records in a background thread meanwhile.
        """
        src = self.source
        rt = src.record_types
        if wanted is not None and rt is not None:
            wanted = [rt.field, *wanted]
        native = rt is None or rt.field < self.width
        for lines in read_ahead(record_lines(self.path, src.encoding, self.chunk_bytes, self.dialect)):
            fields = chunk_fields(
                lines,
                self.dialect,
                width=self.width,
                wanted=(wanted or [0]) if wanted is not None else None,
                native=native,
            )
            frame = pl.concat([lines.records(), fields], how="horizontal")
            if rt is None:
                frame = frame.with_columns(_kind=pl.lit(None, pl.String))
            elif rt.field < self.width or wanted is not None:
                frame = frame.with_columns(_kind=pl.col(field_name(rt.field)))
            else:  # a record-type field past the declared fields: only over-long lines hold it
                kinds, _ = split_lines(frame.get_column("line"), self.dialect)
                frame = frame.with_columns(_kind=kinds.list.get(rt.field, null_on_oob=True))
            if wanted is None:  # undecodable bytes became U+FFFD: look for it only where it occurs
                replaced = holds_replacement(lines.chunk.text)
                encoding = pl.col("line").str.contains(REPLACEMENT, literal=True) if replaced else False
                frame = frame.with_columns(_encoding=encoding)
            yield lines.chunk.last, frame, lines.frame.height

    def _edge(self, frame: pl.DataFrame, row: int) -> Edge:
        line = frame.get_column("line")[row]
        fields = split_line(line, self.dialect)
        return Edge(int(frame.get_column("_source_line")[row]), fields)

    def _records(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Detail records: one String column per contract column, origin, and why a record is unreadable."""
        rt = self.source.record_types
        record_error = (
            pl.when(pl.col("_encoding"))
            .then(pl.lit("encoding"))
            .when(pl.col("_quoting"))
            .then(pl.lit("quoting"))
            .when(pl.col("_kind") != rt.detail if rt else pl.lit(False))
            .then(pl.lit("record_type"))
            .when(pl.col("_n") != self.width)
            .then(pl.lit("field_count"))
            .otherwise(None)
        )
        return frame.select(
            [self._field(name) for name in self.columns]
            + [
                pl.col("_source_line").cast(pl.Int64),
                pl.col("_source_offset").cast(pl.Int64),
                record_error.alias("_record_error"),
                pl.col("_kind"),
            ]
        )

    # -- controls ---------------------------------------------------------------------------------
    def _count(self, tally: Tally, records: pl.DataFrame) -> None:
        """Add one chunk's detail records to the control figures: count, exact total, unreadable amounts."""
        src = self.source
        rt = src.record_types
        tally.rows += records.height
        details = records.filter(pl.col("_kind") == rt.detail) if rt else records
        tally.details += details.height
        c = src.controls
        if c.amount_total_field is None or c.amount_column is None:
            return
        text = pl.col(c.amount_column).str.strip_chars()
        amounts = (
            details.lazy()
            .select("_source_line", separated=plain_separators(text, number_format(src)))
            .with_columns(number=minus_first(pl.col("separated")))
            .select("_source_line", amount=control_amount(pl.col("number")))
            .collect()
        )
        unreadable = amounts.filter(pl.col("amount").is_null()).get_column("_source_line")
        if unreadable.len():
            tally.unreadable += unreadable.len()
            if tally.first_unreadable is None:
                tally.first_unreadable = int(unreadable[0])
        total = amounts.get_column("amount").sum()
        if total is not None:
            with localcontext(prec=80):  # a running sum of many chunks' totals stays exact
                tally.total = Decimal(total) if tally.total is None else tally.total + Decimal(total)

    def _manifest(self, tally: Tally) -> Manifest:
        problems = self._structure(tally)
        controls = reconcile(tally, problems, self.path.name, self.source)
        batch_id, business_date, header_problems = header_facts(tally.header, self.path, self.source)
        return Manifest(
            source=self.path.name,
            checksum=self.checksum or file_checksum(self.path)[0],
            size=self.path.stat().st_size,
            batch_id=batch_id,
            business_date=business_date,
            rows_read=tally.rows,
            undeclared_columns=self.header.undeclared if self.header is not None else (),
            controls=Controls(
                controls.declared_count,
                controls.actual_count,
                controls.declared_total,
                controls.actual_total,
                (*header_problems, *controls.problems),
            ),
        )

    def _structure(self, tally: Tally) -> list[ControlProblem]:
        """A missing header or trailer, or an empty file, when the contract declares record types."""
        rt = self.source.record_types
        name = self.path.name
        problems: list[ControlProblem] = []
        if self.header is not None:
            return list(self.header.problems(name))
        if rt is None:
            return problems
        if tally.lines == 0:
            problems.append(
                ControlProblem("structure", f"{name}: the file is empty. Fix: ask the source to re-send it.")
            )
            return problems
        if tally.header is None:
            problems.append(
                ControlProblem(
                    "structure",
                    f"{name} line 1: no header record ('{rt.header}' in field {rt.field}). "
                    "Fix: the file is not a complete batch export; ask the source to re-send it.",
                    line=1,
                )
            )
        if tally.trailer is None:
            problems.append(
                ControlProblem(
                    "structure",
                    f"{name} line {tally.lines}: no trailer record ('{rt.trailer}' in field {rt.field}); "
                    "the file may be truncated. Fix: wait for the complete file or ask the source to re-send it.",
                    line=tally.lines,
                )
            )
        return problems


def read_delimited(
    path: Path,
    source: DelimitedSource,
    columns: list[str],
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    names: Mapping[str, str] | None = None,
) -> Extraction:
    """Read one delivered file into raw detail records and its manifest (the whole file in memory).

    Parameters
    ----------
    path
        The delivered (landed) file.
    source
        The contract's source settings: dialect, encoding, record types and control positions.
    columns
        Contract column names, in the order their fields appear in a detail record.
    chunk_bytes
        About how many bytes of the file are split at a time.
    names
        With a header row of column names: the name a column has there, where it differs from its own.
    """
    return DelimitedFile(path, source, columns, chunk_bytes=chunk_bytes, names=names).read()
