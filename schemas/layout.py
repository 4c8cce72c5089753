"""Record layouts of fixed-width files, as data owners declare them in a contract.

Fixed-width exports are read by position, so a contract says which field tells record types apart,
each type's role (header, detail, trailer…), where each detail field sits, how numbers are written
(implied decimals, overpunched signs, check digits) and where the header keeps batch facts. This module
turns the ``customProperties.source`` mapping into frozen dataclasses (control records: see
:mod:`schemas.controls`); :mod:`connectors.fixed_width` applies them. It does not import
:mod:`schemas.contract`, which imports it. Problems raise :class:`LayoutError` naming the option (a
path below ``source``) so the contract loader can point at its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from schemas.controls import ControlRecord, LayoutError, Span, parse_controls, span, whole_number

ROLES = ("file_header", "batch_header", "detail", "other", "batch_trailer", "file_trailer")
ROLE_ALIASES = {"header": "file_header", "trailer": "file_trailer", "ignore": "other", "ignored": "other"}
CHECK_DIGITS = ("aba",)
PICTURE = re.compile(r"^(S)?((?:[9X](?:\(\d+\))?)+)(?:V((?:9(?:\(\d+\))?)+))?$", re.IGNORECASE)


@dataclass(frozen=True)
class FieldLayout:
    """One field of a detail record, named as its contract column."""

    name: str
    start: int
    width: int
    scale: int | None = None  # a number with this many implied decimals; None: text
    overpunch: bool = False  # signed zoned decimal: the sign is punched into the last character
    implied_from_column: bool = False  # take the scale from the column's decimal(p,s)
    trim: str = "both"  # both | left | right | none
    blank_as_null: bool = True
    null_values: tuple[str, ...] = ()
    check_digit: str | None = None  # aba: the record is quarantined when the check digit is wrong

    @property
    def end(self) -> int:
        return self.start + self.width - 1


@dataclass(frozen=True)
class HeaderValue:
    """A batch fact (batch id, business date) read from the first record of type ``record``."""

    record: str
    at: Span
    format: str | None = None


def parse_fixed_width(raw: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``FixedWidthSource`` from a ``kind: fixed_width`` source mapping."""
    known = {
        "kind", "path", "pattern", "encoding", "recordLength", "lineBreaks", "lengthCheck", "recordType",
        "records", "layout", "padding", "controls", "batchId", "businessDate", "businessDateWindowDays",
        "dateFormat", "timestampFormat", "emptyDates",
    }  # fmt: skip
    unknown = sorted(set(raw) - known, key=str)
    if unknown:
        raise LayoutError((unknown[0],), f"unknown option(s) {unknown}")
    if "path" not in raw:
        raise LayoutError((), "no path: the drop folder of the deliveries")
    encoding = str(raw.get("encoding", "utf-8"))
    if len("é".encode(encoding, errors="replace")) != 1 and encoding.replace("_", "-").lower() not in (
        "utf-8",
        "utf8",
    ):
        raise LayoutError(
            ("encoding",), f"encoding {encoding!r}: positions need one byte per character or utf-8"
        )
    length = whole_number(raw, "recordLength", None, minimum=1)
    breaks = str(raw.get("lineBreaks", "auto")).lower()
    breaks = {"true": "yes", "false": "no"}.get(breaks, breaks)
    if breaks not in ("auto", "yes", "no"):
        raise LayoutError(("lineBreaks",), f"lineBreaks {breaks!r} is not auto, yes or no")
    if breaks == "no" and length is None:
        raise LayoutError(("recordLength",), "records without line breaks need recordLength")
    check = str(raw.get("lengthCheck", "pad"))
    if check not in ("pad", "strict"):
        raise LayoutError(("lengthCheck",), f"lengthCheck {check!r} is not pad or strict")
    records, layouts = _records(raw.get("records"), raw.get("layout"))
    record_type = span(raw["recordType"], ("recordType",)) if "recordType" in raw else None
    if records and record_type is None:
        raise LayoutError(("records",), "records by type need recordType: {start, width}")
    codes = {code for code, _ in records}
    padding = raw.get("padding")
    if padding is not None and (not isinstance(padding, str) or len(padding) != 1):
        raise LayoutError(("padding",), f"padding {padding!r} is not one character, e.g. '9'")
    window = whole_number(raw, "businessDateWindowDays", None, minimum=0)
    business_date = _header_value(raw, "businessDate", codes, need_format=True)
    if window is not None and business_date is None:
        raise LayoutError(("businessDateWindowDays",), "a business date window needs businessDate")
    controls = parse_controls(raw.get("controls"), records)
    return dict(
        path=str(raw["path"]),
        pattern=str(raw.get("pattern", "*")),
        encoding=encoding,
        record_length=length,
        line_breaks=breaks,
        length_check=check,
        record_type=record_type,
        records=records,
        layouts=layouts,
        padding=padding,
        controls=controls,
        batch_id=_header_value(raw, "batchId", codes, need_format=False),
        business_date=business_date,
        business_date_window_days=window,
        date_format=date_format(str(raw.get("dateFormat", "YYYYMMDD"))),
        timestamp_format=date_format(str(raw.get("timestampFormat", "YYYYMMDDHHMISS"))),
        empty_dates=tuple(str(x) for x in raw.get("emptyDates", ["00000000", "000000"])),
    )


_DATE_TOKENS = (("YYYY", "%Y"), ("yyyy", "%Y"), ("YY", "%y"), ("yy", "%y"), ("MM", "%m"), ("DD", "%d"),
                ("dd", "%d"), ("HH", "%H"), ("MI", "%M"), ("mm", "%M"), ("SS", "%S"), ("ss", "%S"))  # fmt: skip


def date_format(fmt: str) -> str:
    """Formats as data owners write them (``YYMMDD`` in NACHA and BAI2, ``YYYYMMDD``…) as strftime."""
    if "%" in fmt:
        return fmt
    for token, code in _DATE_TOKENS:
        fmt = fmt.replace(token, code)
    return fmt


def _records(raw: Any, layout: Any) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, tuple], ...]]:
    """(code, role) per record type, and (code, fields) per detail layout; code '' = every detail type."""
    if raw is None:
        fields = _layout(layout, ("layout",))
        return (), (("", fields),)
    if not isinstance(raw, dict) or not raw:
        raise LayoutError(("records",), "records maps each record type code to its role, e.g. {'6': detail}")
    roles: list[tuple[str, str]] = []
    layouts: list[tuple[str, tuple[FieldLayout, ...]]] = []
    for code, spec in raw.items():
        where: tuple[str | int, ...] = ("records", str(code))
        role = spec.get("role") if isinstance(spec, dict) else spec
        role = ROLE_ALIASES.get(str(role), str(role))
        if role not in ROLES:
            raise LayoutError(where, f"record type {code!r}: role {role!r} is not one of {', '.join(ROLES)}")
        roles.append((str(code), role))
        if isinstance(spec, dict) and "layout" in spec:
            if role != "detail":
                raise LayoutError(
                    (*where, "layout"), f"record type {code!r}: only detail records have a layout"
                )
            layouts.append((str(code), _layout(spec["layout"], (*where, "layout"))))
    if not any(role == "detail" for _, role in roles):
        raise LayoutError(
            ("records",), "no record type has role detail: which records are the dataset's rows?"
        )
    if layout is not None:
        layouts.append(("", _layout(layout, ("layout",))))
    covered = {code for code, _ in layouts}
    missing = [c for c, role in roles if role == "detail" and c not in covered and "" not in covered]
    if missing:
        raise LayoutError(("layout",), f"detail record type(s) {missing} have no layout")
    return tuple(roles), tuple(layouts)


def _layout(raw: Any, where: tuple[str | int, ...]) -> tuple[FieldLayout, ...]:
    if not isinstance(raw, list) or not raw:
        raise LayoutError(where, "a layout is a list of fields: [{name, start, width | end}, ...]")
    return tuple(_field(f, (*where, i)) for i, f in enumerate(raw))


def _field(raw: Any, where: tuple[str | int, ...]) -> FieldLayout:
    if not isinstance(raw, dict) or "name" not in raw:
        raise LayoutError(where, "a field is {name, start, width | end}")
    known = {"name", "start", "width", "end", "picture", "scale", "signed", "impliedDecimals", "trim",
             "blankAsNull", "nullValues", "checkDigit"}  # fmt: skip
    unknown = sorted(set(raw) - known)
    if unknown:
        raise LayoutError((*where, unknown[0]), f"field {raw['name']!r}: unknown option(s) {unknown}")
    name = str(raw["name"])
    width_from_picture, scale, overpunch = None, raw.get("scale"), raw.get("signed") == "overpunch"
    if "picture" in raw:
        width_from_picture, pic_scale, pic_signed, numeric = _picture(
            str(raw["picture"]), (*where, "picture")
        )
        scale = pic_scale if numeric else scale
        overpunch = overpunch or pic_signed
    position = {k: v for k, v in raw.items() if k in ("start", "width", "end")}
    if "width" not in position and "end" not in position and width_from_picture is not None:
        position["width"] = width_from_picture
    at = span(position, where)
    assert at.start is not None and at.width is not None
    if width_from_picture is not None and width_from_picture != at.width:
        raise LayoutError(
            where, f"field {name!r}: picture {raw['picture']} is {width_from_picture} wide, not {at.width}"
        )
    if scale is not None and (not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= 18):
        raise LayoutError((*where, "scale"), f"field {name!r}: scale {scale!r} is not 0..18 implied decimals")
    if raw.get("signed") not in (None, "overpunch", False, "none"):
        raise LayoutError((*where, "signed"), f"field {name!r}: signed {raw['signed']!r} is not overpunch")
    trim = str(raw.get("trim", "both"))
    if trim not in ("both", "left", "right", "none"):
        raise LayoutError((*where, "trim"), f"field {name!r}: trim {trim!r} is not both, left, right or none")
    check = raw.get("checkDigit")
    if check is not None and check not in CHECK_DIGITS:
        raise LayoutError(
            (*where, "checkDigit"), f"field {name!r}: checkDigit {check!r} is not one of {CHECK_DIGITS}"
        )
    implied = bool(raw.get("impliedDecimals", False))
    return FieldLayout(
        name=name,
        start=at.start,
        width=at.width,
        scale=scale if scale is not None else (0 if overpunch else None),
        overpunch=overpunch,
        implied_from_column=implied and scale is None,
        trim=trim,
        blank_as_null=bool(raw.get("blankAsNull", True)),
        null_values=tuple(str(v) for v in raw.get("nullValues", ())),
        check_digit=check,
    )


def _picture(text: str, where: tuple[str | int, ...]) -> tuple[int, int, bool, bool]:
    """COBOL ``PIC``: ``9(7)V99`` → width 9, scale 2; ``S9(5)`` → overpunched sign; ``X(20)`` → text."""
    m = PICTURE.fullmatch(text.replace(" ", ""))
    if not m:
        raise LayoutError(where, f"picture {text!r} is not a COBOL picture like 9(7)V99, S9(5) or X(20)")

    def count(part: str | None) -> int:
        return sum(int(n) if n else 1 for n in re.findall(r"[9X](?:\((\d+)\))?", part or "", re.IGNORECASE))

    whole, frac = count(m.group(2)), count(m.group(3))
    numeric = "X" not in m.group(2).upper()
    return whole + frac, frac, bool(m.group(1)), numeric


def _header_value(raw: dict[str, Any], key: str, codes: set[str], *, need_format: bool) -> HeaderValue | None:
    spec = raw.get(key)
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise LayoutError((key,), f"{key} is {{record, start, width}}")
    record = str(spec.get("record", ""))
    if codes and record not in codes:
        raise LayoutError((key, "record"), f"{key}: record type {record!r} is not declared under records")
    fmt = date_format(str(spec["format"])) if "format" in spec else ("%Y%m%d" if need_format else None)
    return HeaderValue(record, span({k: v for k, v in spec.items() if k != "format"}, (key,)), fmt)


def resolve_layouts(
    layouts: tuple[tuple[str, tuple[FieldLayout, ...]], ...],
    record_length: int | None,
    controls: tuple[ControlRecord, ...],
    columns: list[Any],
) -> tuple[tuple[tuple[str, tuple[FieldLayout, ...]], ...], list[tuple[tuple[str | int, ...], str, str]]]:
    """Layouts checked against the contract's columns (``schemas.contract.Column``), implied scales filled.

    Returns the layouts and the problems as (option path below ``source``, message, fix).
    """
    from dataclasses import replace

    problems: list[tuple[tuple[str | int, ...], str, str]] = []
    by_name = {c.name: c for c in columns}
    resolved = []
    for code, fields in layouts:
        where: tuple[str | int, ...] = ("records", code, "layout") if code else ("layout",)
        names = [f.name for f in fields]
        missing = [c.name for c in columns if c.name not in names]
        if missing:
            problems.append(
                (
                    where,
                    f"column(s) {missing} have no field in the layout",
                    "add {name, start, width} for each",
                )
            )
        out = []
        for i, f in enumerate(fields):
            col = by_name.get(f.name)
            if col is None:
                problems.append(
                    ((*where, i), f"layout field {f.name!r} is not a contract column", "name a column")
                )
                continue
            if record_length is not None and f.end > record_length:
                problems.append(((*where, i), f"field {f.name!r} ends at {f.end}, past recordLength {record_length}",
                                 "fix start and width"))  # fmt: skip
            if f.implied_from_column:
                if col.decimal is None:
                    problems.append(((*where, i), f"field {f.name!r}: impliedDecimals needs a decimal(p,s) column",
                                     "declare physicalType decimal(p,s) or give the field a scale"))  # fmt: skip
                    continue
                f = replace(f, scale=col.decimal[1], implied_from_column=False)
            if f.scale and col.logical_type != "number":
                problems.append(((*where, i), f"field {f.name!r} has implied decimals but column is {col.logical_type}",
                                 "make the column logicalType number, physicalType decimal(p,s)"))  # fmt: skip
            if f.check_digit == "aba" and f.width != 9:
                problems.append(((*where, i), f"field {f.name!r}: an ABA routing number is 9 digits, not {f.width}",
                                 "give the field width 9 (routing number with its check digit)"))  # fmt: skip
            out.append(f)
        resolved.append((code, tuple(out)))
    fields_named = {f.name for _, fields in layouts for f in fields}
    for i, control in enumerate(controls):
        for j, figure in enumerate(control.figures):
            column = figure.value.column if figure.value else None
            if column is not None and column not in fields_named:
                problems.append((("controls", i, "figures", j), f"figure {figure.name!r}: {column!r} is not a layout field",
                                 "sum a field of the detail layout, or give start and width"))  # fmt: skip
    return tuple(resolved), problems


BAI2_FIELDS = (
    "sender_id", "receiver_id", "file_created", "as_of_date", "as_of_time", "originator_id",
    "account_number", "currency", "type_code", "amount", "funds_type", "bank_reference",
    "customer_reference", "text",
)  # fmt: skip


def parse_bai2(raw: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``Bai2Source`` from a ``kind: bai2`` source mapping."""
    known = {"kind", "path", "pattern", "encoding", "amountScale", "businessDateWindowDays"}
    unknown = sorted(set(raw) - known, key=str)
    if unknown:
        raise LayoutError((unknown[0],), f"unknown option(s) {unknown}")
    if "path" not in raw:
        raise LayoutError((), "no path: the drop folder of the deliveries")
    encoding = str(raw.get("encoding", "utf-8"))
    "".encode(encoding)  # LookupError for an unknown codec
    scale = whole_number(raw, "amountScale", 2, minimum=0)
    return dict(
        path=str(raw["path"]),
        pattern=str(raw.get("pattern", "*")),
        encoding=encoding,
        amount_scale=2 if scale is None else scale,
        business_date_window_days=whole_number(raw, "businessDateWindowDays", None, minimum=0),
    )
