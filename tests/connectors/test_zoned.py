"""Zoned and implied decimals read exactly as the first, plainer readings (``reference_zoned``) read them."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_series_equal

from connectors import zoned
from tests.connectors import reference_zoned

TEXT = st.one_of(
    st.text(alphabet=" +-0123456789{}ABCIJRx", max_size=22),
    st.builds(
        lambda sign, digits, last, pad: pad + sign + digits + last + pad,
        st.sampled_from(["", "+", "-"]),
        st.text(alphabet="0123456789", max_size=19),
        st.sampled_from(list("0123456789{ABCDEFGHI}JKLMNOPQR")),
        st.sampled_from(["", " ", "  "]),
    ),
)


@settings(max_examples=400, deadline=None)
@given(texts=st.lists(TEXT, max_size=40), overpunch=st.booleans(), scale=st.integers(0, 4))
def test_signed_and_implied_decimals_read_as_the_reference(
    texts: list[str], overpunch: bool, scale: int
) -> None:
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String})
    text = pl.col("t")
    width = max((len(t) for t in texts), default=0)
    want = frame.select(reference_zoned.signed_digits(text, overpunch=overpunch).alias("d"))
    got = frame.select(zoned.signed_digits(text, overpunch=overpunch).alias("d"))
    assert_series_equal(got.to_series(), want.to_series())
    expected = want.select(reference_zoned.implied_decimal_text(pl.col("d"), scale).alias("x")).to_series()
    for hint in (None, width, 18):
        if hint is not None and hint < width:
            continue
        read = want.select(zoned.implied_decimal_text(pl.col("d"), scale, width=hint).alias("x")).to_series()
        assert_series_equal(read, expected)


def test_examples() -> None:
    frame = pl.DataFrame({"t": ["0001234}", " 123D", "-12}", "+0000", "}", "12A4", ""]})
    digits = frame.select(zoned.signed_digits(pl.col("t"), overpunch=True).alias("d"))
    assert digits.to_series().to_list() == ["-00012340", "1234", "-120", "+0000", "-0", None, None]
    text = digits.select(zoned.implied_decimal_text(pl.col("d"), 2, width=8)).to_series().to_list()
    assert text == ["-123.40", "12.34", "-1.20", "0.00", "-0.00", None, None]


def test_numbers_past_an_int64_are_read_as_text() -> None:
    frame = pl.DataFrame({"d": ["9999999999999999999", "-99999999999999999999999999"]})
    for width in (19, 27, None):
        text = frame.select(zoned.implied_decimal_text(pl.col("d"), 2, width=width)).to_series()
        assert text.to_list() == ["99999999999999999.99", "-999999999999999999999999.99"]
