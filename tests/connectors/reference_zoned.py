"""The zoned and implied-decimal readings as first written (one regular expression with groups each), kept
as the oracle the faster readings in :mod:`connectors.zoned` are compared with."""

from __future__ import annotations

import polars as pl

from connectors.zoned import NEGATIVE, POSITIVE

_LAST_DIGIT = {
    **{c: str(i) for i, c in enumerate(POSITIVE)},
    **{c: str(i) for i, c in enumerate(NEGATIVE)},
    **{str(i): str(i) for i in range(10)},
}
_OVERPUNCHED = r"^([+-]?)([0-9]*)([0-9{}A-R])$"


def signed_digits(text: pl.Expr, *, overpunch: bool = False) -> pl.Expr:
    t = text.str.strip_chars(" ")
    if overpunch:
        parts = t.str.extract_groups(_OVERPUNCHED)
        sign, body, last = (parts.struct.field(k) for k in ("1", "2", "3"))
        digit = last.replace_strict(_LAST_DIGIT, default=None, return_dtype=pl.String)
        sign = pl.when(last.is_in(list(NEGATIVE)) & (sign == "")).then(pl.lit("-")).otherwise(sign)
        return pl.when(last.is_not_null()).then(sign + body + digit)
    return pl.when(t.str.contains(r"^[+-]?[0-9]+$")).then(t)


def implied_decimal_text(digits: pl.Expr, scale: int) -> pl.Expr:
    sign = pl.when(digits.str.starts_with("-")).then(pl.lit("-")).otherwise(pl.lit(""))
    magnitude = digits.str.strip_chars_start("+-").str.zfill(scale + 1)
    whole = magnitude.str.slice(0, magnitude.str.len_chars() - scale).str.replace(r"^0+([0-9])", "${1}")
    if scale == 0:
        return sign + whole
    return sign + whole + pl.lit(".") + magnitude.str.slice(-scale, scale)
