"""Numbers as legacy records write them, as polars expressions: zoned decimals and implied decimals.

COBOL ``DISPLAY`` numbers carry no decimal point (``9(7)V99``: the last two digits are cents) and a
signed one punches its sign into the last digit (``1234}`` is -12340, ``123D`` is +1234). Readers turn
such text into plain decimal text (``-123.40``) so validation parses it like any other source, and
control totals into exact integer units. A value that is not such a number becomes null here; the
readers keep the raw text instead, so validation quarantines it as a ``type`` failure.
"""

from __future__ import annotations

import polars as pl

POSITIVE = "{ABCDEFGHI"  # overpunched last digit 0..9, sign +
NEGATIVE = "}JKLMNOPQR"  # overpunched last digit 0..9, sign -
_LAST_DIGIT = {
    **{c: str(i) for i, c in enumerate(POSITIVE)},
    **{c: str(i) for i, c in enumerate(NEGATIVE)},
    **{str(i): str(i) for i in range(10)},
}
UNITS = pl.Decimal(38, 0)
_OVERPUNCHED = r"^([+-]?)([0-9]*)([0-9{}A-R])$"


def signed_digits(text: pl.Expr, *, overpunch: bool = False) -> pl.Expr:
    """``-0012340`` from ``0001234}`` (overpunch) or `` -12340``; null unless a whole number.

    Blanks around the value are ignored; a leading ``+``/``-`` is accepted with or without overpunch.
    """
    t = text.str.strip_chars(" ")
    if overpunch:
        # one regular expression splits sign, digits and the punched last character (and rejects the rest)
        parts = t.str.extract_groups(_OVERPUNCHED)
        sign, body, last = (parts.struct.field(k) for k in ("1", "2", "3"))
        digit = last.replace_strict(_LAST_DIGIT, default=None, return_dtype=pl.String)
        sign = pl.when(last.is_in(list(NEGATIVE)) & (sign == "")).then(pl.lit("-")).otherwise(sign)
        return pl.when(last.is_not_null()).then(sign + body + digit)
    return pl.when(t.str.contains(r"^[+-]?[0-9]+$")).then(t)


def implied_decimal_text(digits: pl.Expr, scale: int) -> pl.Expr:
    """``-0012340`` with scale 2 → ``-123.40``: the implied decimal point made explicit, zeros trimmed."""
    sign = pl.when(digits.str.starts_with("-")).then(pl.lit("-")).otherwise(pl.lit(""))
    magnitude = digits.str.strip_chars_start("+-").str.zfill(scale + 1)
    whole = magnitude.str.slice(0, magnitude.str.len_chars() - scale).str.replace(r"^0+([0-9])", "${1}")
    if scale == 0:
        return sign + whole
    return sign + whole + pl.lit(".") + magnitude.str.slice(-scale, scale)


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
