"""Delimited source settings: the dialect, encoding, header and control positions a contract declares.

Parsed from a contract's ``customProperties.source`` (``kind: delimited``) and checked here, so a
contract that names an impossible dialect (a delimiter that is also the quote, an escape that is the
quote, a header row together with header records) is refused when it is loaded, at the option's line,
with a fix, rather than misreading a batch later. :mod:`schemas.contract` re-exports these names.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.layout import date_format

DOCS = "docs/sources.md, 'Delimited batch files'"
KNOWN = frozenset(
    {
        "kind",
        "path",
        "pattern",
        "encoding",
        "delimiter",
        "quote",
        "escape",
        "decimalSeparator",
        "thousandsSeparator",
        "dateFormat",
        "timestampFormat",
        "emptyDates",
        "recordTypes",
        "header",
        "trailer",
        "maxRecordLines",
    }
)


class SourceOptionError(ValueError):
    """A source option that cannot be used; ``option`` names it so the error can point at its line."""

    def __init__(self, option: str, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.option = option
        self.fix = fix


@dataclass(frozen=True)
class RecordTypes:
    """Which field tells header, detail and trailer records apart, and their codes."""

    field: int = 0
    header: str = "H"
    detail: str = "D"
    trailer: str = "T"


@dataclass(frozen=True)
class Controls:
    """Where the header and trailer carry batch facts and control totals (field positions, 0-based)."""

    batch_id_field: int | None = None
    business_date_field: int | None = None
    record_count_field: int | None = None
    amount_total_field: int | None = None
    amount_column: str | None = None


@dataclass(frozen=True)
class DelimitedSource:
    """A delimited export as the contract declares it.

    ``quote`` is None for files without quoting; ``escape`` (e.g. a backslash, as MySQL and Oracle write
    ``\\"`` and ``\\;``) makes the next character literal, next to doubled quotes. ``header_names`` says
    the first line holds column names (plain CSV): fields are then found by name, not by position.
    A record may span at most ``max_record_lines`` physical lines (quoted or escaped line breaks).
    """

    kind: Literal["delimited"]
    path: str
    pattern: str
    encoding: str = "utf-8"
    delimiter: str = ","
    quote: str | None = '"'
    escape: str | None = None
    decimal_separator: str = "."
    thousands_separator: str | None = None
    date_format: str = "%Y-%m-%d"
    timestamp_format: str = "%Y-%m-%dT%H:%M:%S"
    empty_dates: tuple[str, ...] = ("00000000",)
    record_types: RecordTypes | None = None
    controls: Controls = field(default_factory=Controls)
    header_names: bool = False
    max_record_lines: int = 100


def parse_delimited(raw: dict[str, Any]) -> DelimitedSource:
    """``customProperties.source`` of ``kind: delimited`` as a :class:`DelimitedSource`, checked."""
    unknown = sorted(set(raw) - KNOWN, key=str)
    if unknown:
        raise SourceOptionError(
            unknown[0], f"unknown option(s) {unknown}", f"use only {', '.join(sorted(KNOWN))} ({DOCS})"
        )
    rt = raw.get("recordTypes")
    if rt in ("none", False):
        rt = None
    if rt is not None and not isinstance(rt, dict):
        raise SourceOptionError(
            "recordTypes",
            f"recordTypes {rt!r} is neither a mapping nor none",
            "write e.g. {field: 0, header: H}",
        )
    header_raw = raw.get("header")
    header_names = header_raw == "names"
    if isinstance(header_raw, str) and header_raw not in ("names", "none"):
        raise SourceOptionError(
            "header",
            f"header {header_raw!r} is not known",
            "write header: names (the first line holds column names), header: none, or the header "
            "record's field positions, e.g. {batchId: 1}",
        )
    if header_names and rt is not None:
        raise SourceOptionError(
            "header",
            "header: names (a line of column names) cannot be combined with recordTypes "
            "(header, detail and trailer records)",
            "drop recordTypes for a plain CSV, or give the header record's field positions, e.g. {batchId: 1}",
        )
    header = header_raw if isinstance(header_raw, dict) else {}
    trailer = raw.get("trailer") or {}
    amount = trailer.get("amountTotal") or {}
    for option, positions in (("header", header), ("trailer", trailer)):
        for key, value in positions.items():
            value = value.get("field") if key == "amountTotal" and isinstance(value, dict) else value
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SourceOptionError(
                    option,
                    f"{option}.{key} {value!r} is not a field position (0, 1, ...)",
                    "give the 0-based position of the field in the record",
                )
    encoding = _encoding(raw.get("encoding", "utf-8"))
    delimiter = _character(raw, "delimiter", ",")
    quote = _character(raw, "quote", '"', may_be_none=True)
    escape = _character(raw, "escape", None, may_be_none=True)
    _distinct(delimiter, quote, escape)
    lines = raw.get("maxRecordLines", 100)
    if not isinstance(lines, int) or isinstance(lines, bool) or lines < 1:
        raise SourceOptionError(
            "maxRecordLines",
            f"maxRecordLines {lines!r} is not a whole number of lines (1 or more)",
            "give how many physical lines one record may span, e.g. maxRecordLines: 100",
        )
    return DelimitedSource(
        kind="delimited",
        path=str(raw["path"]),
        pattern=str(raw.get("pattern", "*")),
        encoding=encoding,
        delimiter=delimiter,
        quote=quote,
        escape=escape,
        decimal_separator=str(raw.get("decimalSeparator", ".")),
        thousands_separator=raw.get("thousandsSeparator"),
        date_format=date_format(str(raw.get("dateFormat", "YYYY-MM-DD"))),
        timestamp_format=date_format(str(raw.get("timestampFormat", "YYYY-MM-DDTHH:MI:SS"))),
        empty_dates=tuple(str(x) for x in raw.get("emptyDates", ["00000000"])),
        record_types=RecordTypes(
            field=int(rt.get("field", 0)),
            header=str(rt.get("header", "H")),
            detail=str(rt.get("detail", "D")),
            trailer=str(rt.get("trailer", "T")),
        )
        if isinstance(rt, dict)
        else None,
        controls=Controls(
            batch_id_field=header.get("batchId"),
            business_date_field=header.get("businessDate"),
            record_count_field=trailer.get("recordCount"),
            amount_total_field=amount.get("field"),
            amount_column=amount.get("column"),
        ),
        header_names=header_names,
        max_record_lines=lines,
    )


def _encoding(value: Any) -> str:
    name = str(value)
    try:
        codecs.lookup(name)
    except LookupError:
        raise SourceOptionError(
            "encoding",
            f"encoding {name!r} is not known",
            "name a Python codec, e.g. utf-8, cp1252, latin-1, utf-16 (docs/sources.md, 'Encodings')",
        ) from None
    return name


def _character(raw: dict[str, Any], option: str, default: str | None, *, may_be_none: bool = False) -> Any:
    value = raw.get(option, default)
    if may_be_none and value in (None, "", "none"):
        return None
    if not isinstance(value, str) or len(value) != 1 or value in "\r\n":
        fix = "write one character, e.g. ';' or '\\t'" + (", or none" if may_be_none else "")
        raise SourceOptionError(option, f"{option} {value!r} must be one character other than CR or LF", fix)
    return value


def _distinct(delimiter: str, quote: str | None, escape: str | None) -> None:
    if quote == delimiter:
        raise SourceOptionError(
            "quote", f"quote {quote!r} is also the delimiter", "use another quote character, or quote: none"
        )
    if escape == delimiter:
        raise SourceOptionError(
            "escape",
            f"escape {escape!r} is also the delimiter",
            "the escape character must differ from the delimiter (e.g. escape: '\\')",
        )
    if escape is not None and escape == quote:
        raise SourceOptionError(
            "escape",
            f"escape {escape!r} is the quote character: doubled quotes are always read",
            "leave escape out for files that double their quotes; declare it for a backslash-style escape",
        )
