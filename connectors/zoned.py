"""Numbers as legacy records write them, as polars expressions: zoned decimals and implied decimals.

COBOL ``DISPLAY`` numbers carry no decimal point (``9(7)V99``: the last two digits are cents) and a
signed one punches its sign into the last digit (``1234}`` is -12340, ``123D`` is +1234). Readers turn
such text into plain decimal text (``-123.40``) so validation parses it like any other source, and
control totals into exact integer units. A value that is not such a number becomes null here; the
readers keep the raw text instead, so validation quarantines it as a ``type`` failure.
"""

from __future__ import annotations

import re

import polars as pl

POSITIVE = "{ABCDEFGHI"  # overpunched last digit 0..9, sign +
NEGATIVE = "}JKLMNOPQR"  # overpunched last digit 0..9, sign -
UNITS = pl.Decimal(38, 0)
_UNPUNCHED = "0123456789" * 2
_OVERPUNCHED = r"^[+-]?[0-9]*[0-9{}A-R]$"
_INT64_DIGITS = 18  # any 18-digit number fits an Int64


def signed_digits(text: pl.Expr, *, overpunch: bool = False) -> pl.Expr:
    """``-0012340`` from ``0001234}`` (overpunch) or `` -12340``; null unless a whole number.

    Blanks around the value are ignored; a leading ``+``/``-`` is accepted with or without overpunch.
    """
    t = text.str.strip_chars(" ")
    if not overpunch:
        return pl.when(t.str.contains(r"^[+-]?[0-9]+$")).then(t)
    # Only the last character may be punched, so mapping every punch character maps that one; the
    # patterns have no groups (a pattern with groups costs several times as much per value).
    digits = t.str.replace_many(list(POSITIVE + NEGATIVE), list(_UNPUNCHED))
    negative = t.str.contains(rf"^[0-9]*[{re.escape(NEGATIVE)}]$")  # a punched minus and no sign written
    sign = pl.when(negative).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.when(t.str.contains(_OVERPUNCHED)).then(pl.concat_str([sign, digits]))


def implied_decimal_text(digits: pl.Expr, scale: int, *, width: int | None = None) -> pl.Expr:
    """``-0012340`` with scale 2 → ``-123.40``: the implied decimal point made explicit, zeros trimmed.

    ``width``: at most that many digits (a fixed-width field's width). Up to 18 the digits are read as an
    integer and written back, cheaper than trimming and cutting the text.
    """
    sign = pl.when(digits.str.starts_with("-")).then(pl.lit("-")).otherwise(pl.lit(""))
    if width is not None and width <= _INT64_DIGITS:
        magnitude = digits.cast(pl.Int64, strict=False).abs()
        if scale == 0:
            return pl.concat_str([sign, magnitude.cast(pl.String)])
        unit = 10**scale
        whole, frac = (magnitude // unit).cast(pl.String), (magnitude % unit).cast(pl.String).str.zfill(scale)
        return pl.concat_str([sign, whole, pl.lit("."), frac])
    padded = digits.str.strip_chars_start("+-").str.zfill(scale + 1)
    whole = (padded.str.head(-scale) if scale else padded).str.strip_chars_start("0")
    whole = pl.when(whole == "").then(pl.lit("0")).otherwise(whole)  # at least one digit stays
    if scale == 0:
        return sign + whole
    return pl.concat_str([sign, whole, pl.lit("."), padded.str.tail(scale)])


def units(text: pl.Expr, *, scale: int = 0, implied: bool = True, overpunch: bool = False) -> pl.Expr:
    """Exact integer units (``Decimal(38, 0)``) of a number at ``scale``; null where unreadable.

    ``implied``: the text has no decimal point (fixed-width: ``000000270000`` is 2700.00 at scale 2).
    Otherwise the text is a plain decimal (``2700.5``) with at most ``scale`` decimals.
    """
    if implied:
        return signed_digits(text, overpunch=overpunch).cast(UNITS, strict=False)
    parts = text.str.strip_chars(" ").str.extract_groups(r"^([+-]?)([0-9]*)(?:\.([0-9]*))?$")
    sign, whole, frac = (parts.struct.field(k) for k in ("1", "2", "3"))
    frac = frac.fill_null("")
    exact = (frac.str.len_chars() <= scale) & ((whole.str.len_chars() + frac.str.len_chars()) > 0)
    digits = sign + whole + frac.str.pad_end(scale, "0")
    return pl.when(exact).then(digits.cast(UNITS, strict=False))
