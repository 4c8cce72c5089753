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
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import polars as pl

from connectors.controls import manifest_figures, reconcile, scope
from connectors.manifest import ControlProblem, Controls, Extraction, Manifest, file_checksum
from connectors.zoned import UNITS, implied_decimal_text, signed_digits, units
from schemas.contract import FixedWidthSource
from schemas.controls import Span
from schemas.layout import FieldLayout, HeaderValue

REPLACEMENT = "\ufffd"
UNDECLARED = "undeclared"
PADDING = "padding"
RECORD = "_rec"
ABA_WEIGHTS = (3, 7, 1, 3, 7, 1, 3, 7, 1)


def read_fixed_width(
    path: Path, source: FixedWidthSource, columns: list[str], *, today: date | None = None
) -> Extraction:
    """Read one delivered file into raw detail records and its manifest.

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
    """
    checksum, size = file_checksum(path)
    frame = _records(path.read_bytes(), source)
    physical = frame.height
    frame = _classify(frame, source)
    records = frame.filter(pl.col("_role") != PADDING)
    rows = records.filter(pl.col("_role").is_in(["detail", UNDECLARED]))
    out = rows.select(
        [_column(name, source).alias(name) for name in columns]
        + [
            pl.col("_source_line").cast(pl.Int64),
            pl.col("_source_offset").cast(pl.Int64),
            _record_error(source).alias("_record_error"),
        ]
    )
    problems = _structure(records, source, path.name)
    control_problems, figures = reconcile(
        records,
        source.controls,
        source=path.name,
        text=_slice,
        column_units=lambda name: _column_units(name, source),
        physical_records=physical,
    )
    batch_id, business_date, header_problems = _header_facts(records, source, path, today or date.today())
    count = next((f for f in figures if f.kind == "count" and _counts_details(f.of, source)), None)
    total = next((f for f in figures if f.kind == "sum"), None)
    controls = Controls(
        declared_count=int(count.declared) if count and count.declared is not None else None,
        actual_count=int(count.actual) if count and count.actual is not None else None,
        declared_total=total.declared if total else None,
        actual_total=total.actual if total else None,
        problems=(*header_problems, *problems, *control_problems),
        figures=manifest_figures(figures),
    )
    manifest = Manifest(
        source=path.name,
        checksum=checksum,
        size=size,
        batch_id=batch_id,
        business_date=business_date,
        rows_read=out.height,
        controls=controls,
    )
    return Extraction(records=out, manifest=manifest)


def _single_byte(encoding: str) -> bool:
    return len("é".encode(encoding, errors="replace")) == 1


def _records(raw: bytes, source: FixedWidthSource) -> pl.DataFrame:
    """One row per record: its text, 1-based number and exact byte offset, whether bytes were undecodable."""
    start = _bom(raw, source.encoding)
    text = raw[start:].decode(source.encoding, errors="replace")
    length = source.record_length
    body = text.rstrip("\r\n")  # a line break after the last record only ends the file
    by_lines = source.line_breaks == "yes" or (
        source.line_breaks == "auto" and ("\n" in body or length is None or len(body) <= length)
    )
    if by_lines:
        frame = split_lines(raw, source.encoding)
    else:
        assert length is not None
        pieces = pl.Series(RECORD, [body], dtype=pl.String).str.extract_all(f"(?s).{{1,{length}}}").explode()
        frame = pl.DataFrame({RECORD: pieces.drop_nulls()})
        sizes = (
            frame.get_column(RECORD).str.len_chars()
            if _single_byte(source.encoding)
            else frame.get_column(RECORD).str.len_bytes()
        ).cast(pl.Int64)
        frame = frame.with_columns(_source_offset=sizes.cum_sum().shift(1, fill_value=0) + start)
    return frame.with_row_index("_source_line", offset=1).with_columns(
        _undecodable=pl.col(RECORD).str.contains(REPLACEMENT, literal=True), _cut=pl.lit(not by_lines)
    )


def _bom(raw: bytes, encoding: str) -> int:
    return 3 if raw.startswith(b"\xef\xbb\xbf") and not _single_byte(encoding) else 0


def split_lines(raw: bytes, encoding: str) -> pl.DataFrame:
    """Physical lines (``_rec``, CR stripped) with the exact byte offset each starts at (``_source_offset``).

    Undecodable bytes become U+FFFD; offsets come from the raw bytes, so they stay exact past a BOM or
    such bytes. A line break after the last line ends the file and makes no empty line.
    """
    start = _bom(raw, encoding)
    lines = raw[start:].decode(encoding, errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    frame = pl.DataFrame({RECORD: lines}, schema={RECORD: pl.String})
    if _single_byte(encoding):
        sizes = frame.get_column(RECORD).str.len_chars().cast(pl.Int64)
    else:
        sizes = pl.Series(raw[start:].split(b"\n")[: frame.height], dtype=pl.Binary).bin.size().cast(pl.Int64)
    return frame.with_columns(
        _source_offset=(sizes + 1).cum_sum().shift(1, fill_value=0) + start,
        **{RECORD: pl.col(RECORD).str.strip_suffix("\r")},
    )


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
        padded = (n > 0) & ((n <= length) | (rec.str.slice(length).str.strip_chars(" ") == ""))
        fits = pl.when(pl.col("_cut")).then(n == length).otherwise(padded)  # a short last piece is cut off
    frame = frame.with_columns(_fits=fits)
    if length is not None and source.length_check == "pad":
        frame = frame.with_columns(rec.str.slice(0, length).str.pad_end(length, " "))
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


def _value(f: FieldLayout) -> pl.Expr:
    """A field's text as validation expects it: trimmed, blank or declared null values as null,
    numbers with their implied decimal point and sign made explicit (unreadable ones kept as written)."""
    raw = pl.col(RECORD).str.slice(f.start - 1, f.width)
    stripped = raw.str.strip_chars(" ")
    text = {
        "both": stripped,
        "left": raw.str.strip_chars_start(" "),
        "right": raw.str.strip_chars_end(" "),
        "none": raw,
    }[f.trim]
    if f.scale is not None:
        digits = signed_digits(raw, overpunch=f.overpunch)
        text = pl.when(digits.is_not_null()).then(implied_decimal_text(digits, f.scale)).otherwise(stripped)
    nulls = stripped.is_in(list(f.null_values)) if f.null_values else pl.lit(False)
    if f.blank_as_null:
        nulls = nulls | (stripped == "")
    return pl.when(nulls).then(pl.lit(None, pl.String)).otherwise(text)


def _column(name: str, source: FixedWidthSource) -> pl.Expr:
    return _by_layout(name, source, _value)


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


def _structure(records: pl.DataFrame, source: FixedWidthSource, name: str) -> list[ControlProblem]:
    """File header first, file trailer last, no record outside a batch, no header/control of a wrong length."""
    problems: list[ControlProblem] = []
    if records.height == 0:
        return [ControlProblem("structure", f"{name}: the file is empty. Fix: ask the source to re-send it.")]
    roles = dict(source.records)
    code_of = {role: code for code, role in source.records}
    first, last = records.row(0, named=True), records.row(records.height - 1, named=True)
    if "file_header" in code_of and first["_role"] != "file_header":
        problems.append(
            ControlProblem(
                "structure",
                f"{name} line {first['_source_line']}: no file header (record type '{code_of['file_header']}'); "
                f"the file starts with record type '{first['_kind']}'. Fix: the file is incomplete; ask the source "
                "to re-send it.",
                line=int(first["_source_line"]),
            )
        )
    if "file_trailer" in code_of and last["_role"] != "file_trailer":
        problems.append(
            ControlProblem(
                "structure",
                f"{name} line {last['_source_line']}: no file trailer (record type '{code_of['file_trailer']}') "
                "at the end; the file is truncated. Fix: wait for the complete file or ask the source to re-send it.",
                line=int(last["_source_line"]),
            )
        )
    if "batch_header" in code_of and "batch_trailer" in code_of:
        inside, _ = scope(pl.col("_kind"), code_of["batch_header"], code_of["batch_trailer"])
        stray = records.filter(pl.col("_role").is_in(["detail", "other"]) & ~inside).get_column(
            "_source_line"
        )
        if stray.len():
            problems.append(
                ControlProblem(
                    "structure",
                    f"{name} line {stray[0]}: {stray.len()} record(s) outside any batch (no batch header "
                    f"'{code_of['batch_header']}' before them). Fix: the records are out of order; ask the source "
                    "to re-send the file.",
                    line=int(stray[0]),
                )
            )
    bad = records.filter(~pl.col("_fits") & ~pl.col("_role").is_in(["detail", UNDECLARED]))
    for row in bad.head(5).iter_rows(named=True):
        problems.append(
            ControlProblem(
                "structure",
                f"{name} line {row['_source_line']}: {roles.get(row['_kind'], 'record')} record is not "
                f"{source.record_length} characters long. Fix: the file was cut or altered; ask the source to "
                "re-send it.",
                line=int(row["_source_line"]),
            )
        )
    return problems


def _header_value(records: pl.DataFrame, hv: HeaderValue) -> tuple[str | None, int | None]:
    rows = records.filter(pl.col("_kind") == hv.record).head(1)
    if rows.height == 0:
        return None, None
    value = rows.select(_slice(hv.at).str.strip_chars(" ")).item()
    return value, int(rows.get_column("_source_line")[0])


def _header_facts(
    records: pl.DataFrame, source: FixedWidthSource, path: Path, today: date
) -> tuple[str, date | None, list[ControlProblem]]:
    """Batch id and business date from the header; the business date must lie in the expected window."""
    problems: list[ControlProblem] = []
    batch_id = path.stem
    if source.batch_id is not None:
        value, _ = _header_value(records, source.batch_id)
        batch_id = value or batch_id
    business_date: date | None = None
    hv = source.business_date
    if hv is None:
        return batch_id, business_date, problems
    value, line = _header_value(records, hv)
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
