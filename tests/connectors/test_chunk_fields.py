"""The native field split (polars' CSV parser) gives exactly what the exact split (``csv`` module) gives.

:func:`connectors._chunks.chunk_fields` splits a chunk's records natively and redoes only the records
it cannot vouch for; ``native=False`` splits every record the exact way. Whatever the bytes, dialect,
field count or chunking, both give the same fields, field counts and quoting flags.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from connectors._chunks import chunk_fields, holds_replacement, record_lines
from connectors._records import Dialect

FIELD = st.one_of(
    st.text(alphabet='xy;"\\\r\té€ ', max_size=6),
    st.text(alphabet="xy;é\n ", max_size=6).map(lambda t: '"' + t.replace('"', '""') + '"'),
    st.text(alphabet='xy;"', max_size=4).map(lambda t: '"' + t.replace('"', '""') + '"'),
    st.just(""),
    st.just('""'),
)


@st.composite
def chunks(draw: Any) -> tuple[bytes, Dialect, int, list[int] | None]:
    width = draw(st.integers(1, 4))
    counts = st.one_of(st.just(width), st.integers(1, width + 2))
    lines = draw(
        st.lists(counts.flatmap(lambda n: st.lists(FIELD, min_size=n, max_size=n)).map(";".join), max_size=12)
    )
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))
    data = text.encode("utf-8")
    if draw(st.booleans()):  # torn or foreign bytes
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=3)) + data[at:]
    dialect = Dialect(";", draw(st.sampled_from(['"', None])), draw(st.sampled_from([None, "\\"])), 3)
    wanted = draw(st.one_of(st.none(), st.lists(st.integers(0, width), min_size=1, max_size=3)))
    return data, dialect, width, wanted


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=chunks(), chunk_bytes=st.sampled_from([7, 64, 1 << 20]))
def test_native_split_equals_the_exact_split(
    case: tuple[bytes, Dialect, int, list[int] | None], chunk_bytes: int
) -> None:
    data, dialect, width, wanted = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batch.csv"
        path.write_bytes(data)
        for lines in record_lines(path, "utf-8", chunk_bytes, dialect):
            native = chunk_fields(lines, dialect, width=width, wanted=wanted)
            exact = chunk_fields(lines, dialect, width=width, wanted=wanted, native=False)
            assert_frame_equal(_surveyed(native, wanted), _surveyed(exact, wanted))


def test_a_large_chunk_of_plain_and_quoted_records() -> None:
    """Thousands of records in one chunk, a few quoted or malformed: every field as the exact split gives it."""
    rows = []
    for i in range(5000):
        fields = [f"SO{i:08d}", f"{i},50", "EUR", f"note {i}"]
        if i % 97 == 0:
            fields[3] = f'"a; ""quoted"" note {i}"'
        if i % 311 == 0:
            fields.append("EXTRA")
        if i % 509 == 0:
            fields[1] = 'bro"ken'
        if i % 701 == 0:
            fields = fields[:2]
        rows.append(";".join(fields))
    data = ("\r\n".join(rows) + "\r\n").encode("utf-8")
    dialect = Dialect(";", '"', None, 100)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batch.csv"
        path.write_bytes(data)
        for lines in record_lines(path, "utf-8", 1 << 20, dialect):
            for wanted in (None, [0, 3], [1]):
                native = chunk_fields(lines, dialect, width=4, wanted=wanted)
                exact = chunk_fields(lines, dialect, width=4, wanted=wanted, native=False)
                assert_frame_equal(_surveyed(native, wanted), _surveyed(exact, wanted))
                assert native.height == 5000


def _surveyed(fields: pl.DataFrame, wanted: list[int] | None) -> pl.DataFrame:
    """With ``wanted`` (the survey), a field past a short record's end may be "" or null: the same."""
    if wanted is None:
        return fields
    return fields.with_columns(pl.col(f"_f{i}").fill_null("") for i in set(wanted))


@given(text=st.text(alphabet=st.sampled_from("ab\ufffd\uf8ff\u00bd\u20ac\ufeff")))
def test_holds_replacement_says_what_a_search_says(text: str) -> None:
    data = text.encode("utf-8")
    assert holds_replacement(data) == ("\ufffd".encode() in data)
