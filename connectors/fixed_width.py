"""Fixed-width ERP and bank exports (NACHA ACH and the like): records sliced by position, per record type.

polars has no fixed-width reader, so a file becomes one String column of records (split at line breaks,
or every ``recordLength`` characters when there are none) and every field is a ``str.slice`` of it:
vectorised, no per-record Python. A discriminator picks each record's role (header, detail, trailer,
other, block padding); detail records become rows of String columns named as the contract's, numbers
made explicit (implied decimals, overpunched signs), blanks as null. A record that cannot be read
(undecodable bytes, wrong length, undeclared record type, wrong check digit) is still a row, with a
``_record_error``, so validation quarantines it. Header and control records are not rows: they give the
batch id, the business date and the control figures, reconciled by :mod:`connectors.controls`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path

import polars as pl

from connectors._fixed_chunks import (
    DEFAULT_CHUNK_BYTES,
    RECORD,
    REPLACEMENT,
    UNDECLARED,
    FileFacts,
    bom,
    lines_of,
    record_chunks,
)
from connectors.controls import ControlTally, manifest_figures
from connectors.manifest import ControlProblem, Controls, Extraction, Manifest, file_checksum
from connectors.read_ahead import read_ahead
from connectors.zoned import UNITS, implied_decimal_text, signed_digits, units
from schemas.contract import FixedWidthSource
from schemas.controls import Span
from schemas.layout import FieldLayout

PADDING = "padding"
ORIGIN = {"_source_line": pl.Int64, "_source_offset": pl.Int64, "_record_error": pl.String}
__all__ = ["REPLACEMENT", "FixedWidthFile", "read_fixed_width", "split_lines"]
ABA_WEIGHTS = (3, 7, 1, 3, 7, 1, 3, 7, 1)


def read_fixed_width(
    path: Path,
    source: FixedWidthSource,
    columns: list[str],
    *,
    today: date | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Extraction:
    """Read one delivered file into raw detail records and its manifest (the whole file in memory).

    Parameters
    ----------
    path
        The delivered (landed) file.
    source
        The contract's source settings: record length, record types, layouts, controls.
    columns
        Contract column names; each has a field in the detail layout.
    today
        The day the business date window is measured from (default: the local date).
    chunk_bytes
        About how many bytes are read at a time (the result does not depend on it).
    """
    return FixedWidthFile(path, source, columns, today=today, chunk_bytes=chunk_bytes).read()


class FixedWidthFile:
    """One delivered fixed-width file, read in chunks of whole records (:mod:`connectors._fixed_chunks`).

    :meth:`survey` reads it once for the manifest: control records reconciled over the whole file,
    structure, header facts, and (through ``each``) the detail records' key fields; :meth:`records` then
    yields each chunk's detail records. Memory holds a chunk, never the file.
    """

    def __init__(
        self,
        path: Path,
        source: FixedWidthSource,
        columns: Sequence[str],
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        checksum: str | None = None,
        today: date | None = None,
    ) -> None:
        self.path, self.source, self.columns = path, source, list(columns)
        self.chunk_bytes, self.checksum, self.today = chunk_bytes, checksum, today

    def survey(
        self, keep: Sequence[str] = (), each: Callable[[pl.DataFrame], object] | None = None
    ) -> Manifest:
        """Pass 1: the manifest; ``each`` gets each chunk's detail records as ``_source_line`` + ``keep``."""
        source, name = self.source, self.path.name
        facts = FileFacts(source, name)
        controls = ControlTally(
            source.controls,
            source=name,
            text=_slice,
            column_units=lambda column: _column_units(column, source),
        )
        physical = rows = 0
        for height, classified in read_ahead(self._classified()):  # the next chunk read meanwhile
            physical += height
            records = classified.filter(pl.col("_role") != PADDING)
            facts.add(records)
            controls.add(records)
            details = records.filter(pl.col("_role").is_in(["detail", UNDECLARED]))
            rows += details.height
            if each is not None:
                lines = pl.col("_source_line").cast(pl.Int64)
                each(details.lazy().select(lines, *[_column(n, source).alias(n) for n in keep]).collect())
        control_problems, figures = controls.finish(physical)
        batch_id, business_date, header_problems = _header_facts(facts, source, self.path, self.today)
        count = next((f for f in figures if f.kind == "count" and _counts_details(f.of, source)), None)
        total = next((f for f in figures if f.kind == "sum"), None)
        controls_found = Controls(
            declared_count=int(count.declared) if count and count.declared is not None else None,
            actual_count=int(count.actual) if count and count.actual is not None else None,
            declared_total=total.declared if total else None,
            actual_total=total.actual if total else None,
            problems=(*header_problems, *facts.problems(), *control_problems),
            figures=manifest_figures(figures),
        )
        if self.checksum:
            checksum, size = self.checksum, self.path.stat().st_size
        else:
            checksum, size = file_checksum(self.path)
        return Manifest(
            source=name,
            checksum=checksum,
            size=size,
            batch_id=batch_id,
            business_date=business_date,
            rows_read=rows,
            controls=controls_found,
        )

    def records(self) -> Iterator[pl.DataFrame]:
        """Pass 2: each chunk's detail records, as :func:`read_fixed_width` returns them (at least one frame).

        Chunks are read and cut into fields ahead, in a background thread, while the caller works on
        the previous one.
        """
        empty = True
        for fields in read_ahead(self._fields()):
            empty = False
            yield fields
        if empty:
            yield self.empty()

    def _classified(self) -> Iterator[tuple[int, pl.DataFrame]]:
        """Each chunk's physical record count and its records, classified."""
        for chunk in record_chunks(self.path, self.source, self.chunk_bytes):
            yield chunk.height, _classify(chunk, self.source)

    def _fields(self) -> Iterator[pl.DataFrame]:
        """Each chunk's detail records, cut into the contract's columns (chunks without any skipped)."""
        for _, records in self._classified():
            details = records.filter(pl.col("_role").is_in(["detail", UNDECLARED]))
            if details.height:
                yield _detail_fields(details, self.columns, self.source)

    def empty(self) -> pl.DataFrame:
        """No records, with the columns and types every chunk of records has."""
        return pl.DataFrame(schema={**{name: pl.String for name in self.columns}, **ORIGIN})

    def read(self) -> Extraction:
        """Both passes, for a file that fits in memory: all detail records and the manifest."""
        manifest = self.survey()
        frames = list(self.records())
        return Extraction(records=pl.concat(frames) if len(frames) > 1 else frames[0], manifest=manifest)


def split_lines(raw: bytes, encoding: str) -> pl.DataFrame:
    """Physical lines (``_rec``, CR stripped) with the exact byte offset each starts at (``_source_offset``).

    Undecodable bytes become U+FFFD; offsets come from the raw bytes, so they stay exact past a BOM or
    such bytes. A line break after the last line ends the file and makes no empty line.
    """
    start = bom(raw, encoding)
    return lines_of(raw[start:].decode(encoding, errors="replace"), raw[start:], start, encoding)


def _classify(frame: pl.DataFrame, source: FixedWidthSource) -> pl.DataFrame:
    """Each record's type code, role and whether its length is right (short records padded in ``pad`` mode)."""
    rec = pl.col(RECORD)
    n = rec.str.len_chars()
    length = source.record_length
    if length is None:
        fits = n > 0
    elif source.length_check == "strict":
        fits = n == length
    else:  # pad: transfer tools strip trailing blanks from lines; blanks past the length carry nothing
        sizes = frame.select(n).to_series()
        longer, uneven = bool((sizes > length).any()), bool((sizes != length).any())
        n = pl.lit(sizes)
        within = n <= length
        if longer:
            within = within | (rec.str.slice(length).str.strip_chars(" ") == "")
        padded = (n > 0) & within
        fits = pl.when(pl.col("_cut")).then(n == length).otherwise(padded)  # a short last piece is cut off
        if uneven:  # records all of the length need no cutting or padding (most files: every chunk)
            frame = frame.with_columns(
                _fits=fits, **{RECORD: rec.str.slice(0, length).str.pad_end(length, " ")}
            )
            fits = pl.col("_fits")
    frame = frame.with_columns(_fits=fits)
    rt = source.record_type
    kind = rec.str.slice(rt.start - 1, rt.width) if rt and rt.start and rt.width else pl.lit("")
    role = (
        kind.replace_strict(dict(source.records), default=UNDECLARED, return_dtype=pl.String)
        if source.records
        else pl.lit("detail")
    )
    if source.padding:
        core = rec.str.strip_chars_end(" ")
        full = core.str.len_chars() >= (length or 1)
        role = (
            pl.when(full & core.str.contains(f"^{re.escape(source.padding)}+$"))
            .then(pl.lit(PADDING))
            .otherwise(role)
        )
    return frame.with_columns(_kind=kind, _role=role)


def _slice(span: Span) -> pl.Expr:
    """The raw text at a position of every record."""
    if span.start is None or span.width is None:
        raise ValueError("fixed-width control figures are located by start and width")
    return pl.col(RECORD).str.slice(span.start - 1, span.width)


def _fields(name: str, source: FixedWidthSource) -> list[tuple[str, FieldLayout]]:
    """(record type code or '', field) of column ``name`` in each detail layout."""
    return [(code, f) for code, fields in source.layouts for f in fields if f.name == name]


def _by_layout(name: str, source: FixedWidthSource, expr_of: Callable[[FieldLayout], pl.Expr]) -> pl.Expr:
    """``expr_of(field)`` for the layout of each record's type ('' applies to every detail type)."""
    result: pl.Expr = pl.lit(None, pl.String)
    for code, f in reversed(_fields(name, source)):
        result = (
            expr_of(f) if not code else pl.when(pl.col("_kind") == code).then(expr_of(f)).otherwise(result)
        )
    return result


def _value(f: FieldLayout, raw: pl.Expr | None = None, digits: pl.Expr | None = None) -> pl.Expr:
    """A field's text as validation expects it: trimmed, blank or declared null values as null,
    numbers with their implied decimal point and sign made explicit (unreadable ones kept as written).

    ``raw`` and ``digits``: the field's text and :func:`signed_digits` of it, when already computed.
    """
    raw = raw if raw is not None else pl.col(RECORD).str.slice(f.start - 1, f.width)
    stripped = raw.str.strip_chars(" ")
    text = {
        "both": stripped,
        "left": raw.str.strip_chars_start(" "),
        "right": raw.str.strip_chars_end(" "),
        "none": raw,
    }[f.trim]
    if f.scale is not None:
        digits = digits if digits is not None else signed_digits(raw, overpunch=f.overpunch)
        text = pl.when(digits.is_not_null()).then(implied_decimal_text(digits, f.scale, width=f.width))
        text = text.otherwise(stripped)
    nulls = stripped.is_in(list(f.null_values)) if f.null_values else pl.lit(False)
    if f.blank_as_null:
        nulls = nulls | (stripped == "")
    return pl.when(nulls).then(pl.lit(None, pl.String)).otherwise(text)


def _column(name: str, source: FixedWidthSource) -> pl.Expr:
    return _by_layout(name, source, _value)


def _detail_fields(frame: pl.DataFrame, columns: Sequence[str], source: FixedWidthSource) -> pl.DataFrame:
    """The detail records' columns (:func:`_column` of each) and origin, numbers computed in stages.

    A zoned number's digits are read several times over (sign, magnitude, whole and fraction); held in a
    column of their own they are computed once per field instead of once per use.
    """
    raws: dict[str, pl.Expr] = {}
    digits: dict[str, pl.Expr] = {}

    def staged(f: FieldLayout) -> pl.Expr:
        if f.scale is None:
            return _value(f)
        key = f"__field_{f.start}_{f.width}_{int(f.overpunch)}"
        raws[f"{key}_raw"] = pl.col(RECORD).str.slice(f.start - 1, f.width)
        digits[f"{key}_digits"] = signed_digits(pl.col(f"{key}_raw"), overpunch=f.overpunch)
        return _value(f, pl.col(f"{key}_raw"), pl.col(f"{key}_digits"))

    values = [_by_layout(name, source, staged).alias(name) for name in columns]
    return (
        frame.lazy()
        .with_columns(**raws)
        .with_columns(**digits)
        .select(
            *values,
            pl.col("_source_line").cast(pl.Int64),
            pl.col("_source_offset").cast(pl.Int64),
            _record_error(source).alias("_record_error"),
        )
        .collect()
    )


def _column_units(name: str, source: FixedWidthSource) -> tuple[pl.Expr, int]:
    """Exact integer units of a numeric layout field, for control totals, and its scale."""
    fields = _fields(name, source)
    scale = fields[0][1].scale or 0
    expr = _by_layout(
        name,
        source,
        lambda f: units(pl.col(RECORD).str.slice(f.start - 1, f.width), scale=scale, overpunch=f.overpunch),
    )
    return expr.cast(UNITS), scale


def _aba_ok(f: FieldLayout) -> pl.Expr:
    """ABA routing check digit: 3-7-1 weighted digit sum divisible by ten (blank fields pass: not_null's job)."""
    raw = pl.col(RECORD).str.slice(f.start - 1, f.width)
    total = pl.sum_horizontal(
        [raw.str.slice(i, 1).cast(pl.Int64, strict=False) * w for i, w in enumerate(ABA_WEIGHTS)]
    )
    digits = raw.str.contains(r"^[0-9]{9}$")
    return (raw.str.strip_chars(" ") == "") | (digits & (total % 10 == 0))


def _record_error(source: FixedWidthSource) -> pl.Expr:
    error = (
        pl.when(pl.col("_undecodable"))
        .then(pl.lit("encoding"))
        .when(~pl.col("_fits"))
        .then(pl.lit("record_length"))
        .when(pl.col("_role") == UNDECLARED)
        .then(pl.lit("record_type"))
    )
    for code, fields in source.layouts:
        for f in fields:
            if f.check_digit == "aba":
                applies = pl.lit(True) if not code else pl.col("_kind") == code
                error = error.when(applies & ~_aba_ok(f)).then(pl.lit(f"check_digit:{f.name}"))
    return error.otherwise(pl.lit(None, pl.String))


def _header_facts(
    facts: FileFacts, source: FixedWidthSource, path: Path, today: date | None
) -> tuple[str, date | None, list[ControlProblem]]:
    """Batch id and business date from the header; the business date must lie in the expected window."""
    problems: list[ControlProblem] = []
    batch_id = path.stem
    if source.batch_id is not None:
        value, _ = facts.header_value(source.batch_id)
        batch_id = value or batch_id
    business_date: date | None = None
    hv = source.business_date
    if hv is None:
        return batch_id, business_date, problems
    value, line = facts.header_value(hv)
    if value is None:
        return batch_id, business_date, problems  # the missing header is reported by _structure
    try:
        business_date = datetime.strptime(value, hv.format or "%Y%m%d").date()
    except ValueError:
        problems.append(
            ControlProblem(
                "business_date",
                f"{path.name} line {line}, business date (position {hv.at.start}): not a date in format "
                f"{hv.format}. Fix: ask the source to re-send the file.",
                line=line,
            )
        )
        return batch_id, business_date, problems
    window = source.business_date_window_days
    today = today or date.today()
    if window is not None and abs((business_date - today).days) > window:
        problems.append(
            ControlProblem(
                "business_date",
                f"{path.name} line {line}: business date expected within {window} day(s) of {today.isoformat()}, "
                f"found {business_date.isoformat()}. Fix: this is an old or future delivery; confirm it with the "
                "source, or replay it deliberately after widening businessDateWindowDays.",
                line=line,
                expected=f"{today.isoformat()} ± {window} days",
                actual=business_date.isoformat(),
            )
        )
    return batch_id, business_date, problems


def _counts_details(of: tuple[str, ...], source: FixedWidthSource) -> bool:
    details = {code for code, role in source.records if role == "detail"}
    return not of or bool(details & set(of))
