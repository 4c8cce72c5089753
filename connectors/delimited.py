"""Delimited ERP batch exports: odd dialects, header and trailer control records.

A file is split into physical lines, each line into fields by the contract's delimiter: vectorised
with polars for plain lines, by the ``csv`` module only for the lines that hold a quote character.
Detail records become rows of String columns; a record that cannot be split into the declared
fields (wrong field count, undecodable bytes, unknown record type) is still a row, carrying a
``_record_error`` so validation quarantines it. The header and trailer give the batch id, business
date and control figures; the trailer covers every physical detail record, readable or not.
"""

from __future__ import annotations

import codecs
import csv
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path

import polars as pl

from connectors.manifest import ControlProblem, Controls, Extraction, Manifest, file_checksum
from schemas.contract import DelimitedSource
from schemas.parse import TextFormat, normalise_number

SINGLE_BYTE = {
    "cp1252",
    "windows-1252",
    "latin-1",
    "latin1",
    "iso-8859-1",
    "iso8859-1",
    "ascii",
    "cp850",
    "cp437",
}
REPLACEMENT = "\ufffd"
CONTROL_AMOUNT = re.compile(r"^[+-]?[0-9]{1,24}(\.[0-9]{1,12})?$")


def read_delimited(path: Path, source: DelimitedSource, columns: list[str]) -> Extraction:
    """Read one delivered file into raw detail records and its manifest.

    Parameters
    ----------
    path
        The delivered (landed) file.
    source
        The contract's source settings: dialect, encoding, record types and control positions.
    columns
        Contract column names, in the order their fields appear in a detail record.
    """
    checksum, size = file_checksum(path)
    lines, sizes, start = _lines(path, source.encoding)
    offset = 1 if source.record_types else 0
    expected_fields = len(columns) + offset
    frame = pl.DataFrame({"line": lines}, schema={"line": pl.String}).with_row_index("_source_line", offset=1)
    if sizes is not None:
        length = pl.Series(sizes, dtype=pl.Int64)
    elif source.encoding.lower() in SINGLE_BYTE:
        length = frame.get_column("line").str.len_chars().cast(pl.Int64)
    else:
        length = frame.get_column("line").str.len_bytes().cast(pl.Int64)
    frame = frame.with_columns(
        _source_offset=(length + 1).cum_sum().shift(1, fill_value=0) + start,
        line=pl.col("line").str.strip_suffix("\r"),
    )
    fields, unsplittable = _split(frame.get_column("line").to_list(), source)
    frame = frame.with_columns(fields=fields, _quoting=unsplittable)
    frame = frame.with_columns(_n=pl.col("fields").list.len())
    rt = source.record_types
    kind = pl.col("fields").list.get(rt.field, null_on_oob=True) if rt else pl.lit(None, pl.String)
    frame = frame.with_columns(_kind=kind)
    header, trailer, problems = _control_records(frame, path.name, source, len(lines))
    detail = frame
    if rt:
        skip = [r for r in (header, trailer) if r is not None]
        detail = frame.filter(~pl.col("_source_line").is_in([int(r["_source_line"]) for r in skip]))
    record_error = (
        pl.when(pl.col("line").str.contains(REPLACEMENT, literal=True))
        .then(pl.lit("encoding"))
        .when(pl.col("_quoting"))
        .then(pl.lit("quoting"))
        .when(pl.col("_kind") != rt.detail if rt else pl.lit(False))
        .then(pl.lit("record_type"))
        .when(pl.col("_n") != expected_fields)
        .then(pl.lit("field_count"))
        .otherwise(None)
    )
    records = detail.select(
        [
            pl.col("fields").list.get(i + offset, null_on_oob=True).alias(name)
            for i, name in enumerate(columns)
        ]
        + [
            pl.col("_source_line").cast(pl.Int64),
            pl.col("_source_offset").cast(pl.Int64),
            record_error.alias("_record_error"),
            pl.col("_kind"),
        ]
    )
    controls = _reconcile(records, header, trailer, problems, path.name, source, columns, offset)
    batch_id, business_date, header_problems = _header_facts(header, path, source)
    controls = Controls(
        controls.declared_count,
        controls.actual_count,
        controls.declared_total,
        controls.actual_total,
        (*header_problems, *controls.problems),
    )
    manifest = Manifest(
        source=path.name,
        checksum=checksum,
        size=size,
        batch_id=batch_id,
        business_date=business_date,
        rows_read=records.height,
        controls=controls,
    )
    return Extraction(records=records.drop("_kind"), manifest=manifest)


def _lines(path: Path, encoding: str) -> tuple[list[str], list[int] | None, int]:
    """Physical lines, decoded, each with its CR if it had one; their sizes in bytes; the BOM's size.

    Undecodable bytes become U+FFFD and mark their line as bad. Sizes come from the raw bytes, so
    byte offsets stay exact past a BOM or undecodable bytes; they are None for encodings in which
    a line feed is not the single byte 0x0A (UTF-16/32), where offsets are approximate.
    """
    raw = path.read_bytes()
    text = raw.decode(encoding, errors="replace")
    start = 0
    if raw.startswith(codecs.BOM_UTF8) and codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        start = len(codecs.BOM_UTF8)
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    sizes: list[int] | None = None
    if "\n".encode(encoding) == b"\n":
        sizes = [len(b) for b in raw[start:].split(b"\n")]
        if len(sizes) != len(lines):
            sizes = None
    while lines and lines[-1].strip("\r") == "":  # blank lines after the last record carry nothing
        lines.pop()
        if sizes is not None:
            sizes.pop()
    return lines, sizes, start


def _split(lines: list[str], source: DelimitedSource) -> tuple[pl.Series, pl.Series]:
    """Fields of every line: a vectorised split, with the ``csv`` module for quoted lines only.

    Also returns, per line, whether its quoting could not be read (e.g. a field past the ``csv``
    module's size limit); such a line keeps its plain split and is marked, never guessed at.
    """
    frame = pl.DataFrame({"line": lines}, schema={"line": pl.String}).with_row_index("i")
    fields = frame.select(f=pl.col("line").str.split(source.delimiter))
    no_problem = pl.Series("_quoting", [False] * frame.height, dtype=pl.Boolean)
    if not source.quote:
        return fields.get_column("f"), no_problem
    quoted = frame.filter(pl.col("line").str.contains(source.quote, literal=True))
    if quoted.height == 0:
        return fields.get_column("f"), no_problem
    parsed = pl.DataFrame(
        {
            "i": quoted.get_column("i"),
            "q": [_quoted_fields(line, source) for line in quoted.get_column("line").to_list()],
        },
        schema={"i": pl.UInt32, "q": pl.List(pl.String)},
    )
    parsed = parsed.with_columns(bad=pl.col("q").is_null())
    joined = frame.select("i").with_columns(fields.get_column("f"))
    joined = joined.join(parsed, on="i", how="left", maintain_order="left")  # row i stays line i
    unreadable = joined.get_column("bad").fill_null(False).alias("_quoting")
    return joined.select(pl.coalesce("q", "f")).to_series().alias("f"), unreadable


def _quoted_fields(line: str, source: DelimitedSource) -> list[str] | None:
    try:
        return next(csv.reader([line], delimiter=source.delimiter, quotechar=source.quote), [])
    except csv.Error:
        return None


def _control_records(frame: pl.DataFrame, name: str, source: DelimitedSource, n_lines: int):
    """The header (first line) and trailer (last line), if the contract declares record types."""
    rt = source.record_types
    problems: list[ControlProblem] = []
    if rt is None:
        return None, None, problems
    if frame.height == 0:
        problems.append(
            ControlProblem("structure", f"{name}: the file is empty. Fix: ask the source to re-send it.")
        )
        return None, None, problems
    first = frame.row(0, named=True)
    last = frame.row(frame.height - 1, named=True)
    header = first if first["_kind"] == rt.header else None
    trailer = last if last["_kind"] == rt.trailer and frame.height > 1 else None
    if header is None:
        problems.append(
            ControlProblem(
                "structure",
                f"{name} line 1: no header record ('{rt.header}' in field {rt.field}). "
                "Fix: the file is not a complete batch export; ask the source to re-send it.",
                line=1,
            )
        )
    if trailer is None:
        problems.append(
            ControlProblem(
                "structure",
                f"{name} line {n_lines}: no trailer record ('{rt.trailer}' in field {rt.field}); "
                "the file may be truncated. Fix: wait for the complete file or ask the source to re-send it.",
                line=n_lines,
            )
        )
    return header, trailer, problems


def _decimal(text: str | None, source: DelimitedSource) -> Decimal | None:
    if text is None:
        return None
    t = text.strip()
    if source.thousands_separator:
        t = t.replace(source.thousands_separator, "")
    t = t.replace(source.decimal_separator, ".")
    if t.endswith("-"):
        t = "-" + t[:-1]
    if not CONTROL_AMOUNT.fullmatch(t):  # no NaN, Infinity, exponents or non-ASCII digits
        return None
    try:
        return Decimal(t)
    except InvalidOperation:
        return None


def _reconcile(
    records: pl.DataFrame,
    header,
    trailer,
    problems: list[ControlProblem],
    name: str,
    source: DelimitedSource,
    columns: list[str],
    offset: int,
) -> Controls:
    """Compare the trailer's record count and amount total with every physical detail record."""
    c = source.controls
    rt = source.record_types
    is_detail = (pl.col("_kind") == rt.detail) if rt else pl.lit(True)
    actual_count = int(records.select(is_detail.sum()).item()) if records.height else 0
    declared_count = declared_total = actual_total = None
    if trailer is not None and c.record_count_field is not None:
        raw = _field(trailer, c.record_count_field)
        line = trailer["_source_line"]
        if raw is None or not re.fullmatch(r"[0-9]+", raw.strip()):
            problems.append(
                ControlProblem(
                    "controls",
                    f"{name} line {line} (trailer), field {c.record_count_field}: "
                    "record count is not a whole number. Fix: ask the source to re-send the batch.",
                    line=line,
                )
            )
        else:
            declared_count = int(raw.strip())
            if declared_count != actual_count:
                problems.append(
                    ControlProblem(
                        "controls",
                        f"{name} line {line} (trailer): record count expected {declared_count} (trailer), "
                        f"found {actual_count} detail records. Fix: the file is incomplete or altered; ask the source "
                        "to re-send the batch.",
                        line=line,
                    )
                )
    if trailer is not None and c.amount_total_field is not None and c.amount_column is not None:
        line = trailer["_source_line"]
        declared_total = _decimal(_field(trailer, c.amount_total_field), source)
        if declared_total is None:
            problems.append(
                ControlProblem(
                    "controls",
                    f"{name} line {line} (trailer), field {c.amount_total_field}: "
                    "the amount total is not a number. Fix: ask the source to re-send the batch.",
                    line=line,
                    column=c.amount_column,
                )
            )
        amounts = records.filter(is_detail).select(
            "_source_line", amount=_amount_expr(pl.col(c.amount_column), source)
        )
        unreadable = amounts.filter(pl.col("amount").is_null()).get_column("_source_line")
        if unreadable.len():
            problems.append(
                ControlProblem(
                    "controls",
                    f"{name} line {unreadable[0]}, column {c.amount_column}: the controlled amount cannot be "
                    f"read ({unreadable.len()} detail record(s)), so the batch cannot be reconciled with its trailer. "
                    "Fix: ask the source to re-send the batch.",
                    line=int(unreadable[0]),
                    column=c.amount_column,
                )
            )
        else:
            total = amounts.get_column("amount").sum()
            actual_total = Decimal(total) if total is not None else Decimal(0)
            if declared_total is not None:
                # Compared exactly: a trailer of 2481 does not reconcile details summing to 2481.12.
                # The trailer's scale is used for display only where that loses nothing.
                with localcontext(prec=80):
                    same_scale = actual_total.quantize(declared_total)
                actual_total = same_scale if same_scale == actual_total else _plain(actual_total)
            if declared_total is not None and declared_total != actual_total:
                problems.append(
                    ControlProblem(
                        "controls",
                        f"{name} line {line} (trailer), column {c.amount_column}: control total expected "
                        f"{declared_total} (trailer), found {actual_total} (sum of {actual_count} detail records). "
                        "Fix: the batch does not reconcile; ask the source to re-send it.",
                        line=line,
                        column=c.amount_column,
                    )
                )
    return Controls(declared_count, actual_count, declared_total, actual_total, tuple(problems))


def _plain(value: Decimal) -> Decimal:
    """``2481.120000000000`` as ``2481.12``, for messages (never in exponent notation)."""
    exponent = value.normalize().as_tuple().exponent
    places = max(0, -exponent) if isinstance(exponent, int) else 0
    with localcontext(prec=80):
        return value.quantize(Decimal(1).scaleb(-places))


def _amount_expr(text: pl.Expr, source: DelimitedSource) -> pl.Expr:
    """A controlled amount as an exact decimal (null where unreadable), vectorised."""
    fmt = TextFormat(
        decimal_separator=source.decimal_separator, thousands_separator=source.thousands_separator
    )
    number = normalise_number(text.str.strip_chars(), fmt)
    return pl.when(number.str.contains(CONTROL_AMOUNT.pattern)).then(
        number.cast(pl.Decimal(38, 12), strict=False)
    )


def _field(record: dict, index: int) -> str | None:
    fields = record["fields"]
    return fields[index] if fields is not None and index < len(fields) else None


def _header_facts(header, path: Path, source: DelimitedSource):
    """Batch id and business date from the header, or from the file name when there is no header."""
    c = source.controls
    problems: list[ControlProblem] = []
    batch_id = path.stem
    business_date: date | None = None
    if header is None:
        return batch_id, business_date, problems
    if c.batch_id_field is not None:
        raw = (_field(header, c.batch_id_field) or "").strip()
        if raw:
            batch_id = raw
        else:
            problems.append(
                ControlProblem(
                    "structure",
                    f"{path.name} line 1 (header), field {c.batch_id_field}: "
                    "batch id is empty. Fix: ask the source to re-send the batch.",
                    line=1,
                )
            )
    if c.business_date_field is not None:
        raw = (_field(header, c.business_date_field) or "").strip()
        try:
            business_date = datetime.strptime(raw, source.date_format).date()
        except ValueError:
            problems.append(
                ControlProblem(
                    "structure",
                    f"{path.name} line 1 (header), field {c.business_date_field}: business date is not a "
                    f"date in format {source.date_format}. Fix: ask the source to re-send the batch.",
                    line=1,
                )
            )
    return batch_id, business_date, problems
