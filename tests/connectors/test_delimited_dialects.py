"""Delimited dialects as exports write them: records spanning lines, escapes, no quoting, UTF-16/32, header rows.

Every reading goes through the streaming reader at several chunk sizes (down to one byte, so chunks cut
inside every record) and must give the same records, line numbers and byte offsets as one chunk.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from connectors import DelimitedFile, Extraction, read_delimited
from connectors._records import Dialect, record_length
from schemas import TextFormat, compile_contract, validate
from schemas.contract import DelimitedSource
from schemas.errors import ContractError

PLAIN = DelimitedSource(kind="delimited", path=".", pattern="*", encoding="utf-8")
COLUMNS = ["a", "b", "c"]


def read(
    tmp_path: Path, data: bytes, source: DelimitedSource = PLAIN, columns: list[str] = COLUMNS
) -> Extraction:
    """One chunk, checked against chunks of 1, 2, 3, 5, 8 and 64 bytes."""
    path = tmp_path / "batch.csv"
    path.write_bytes(data)
    whole = read_delimited(path, source, columns)
    for size in (1, 2, 3, 5, 8, 64):
        chunked = read_delimited(path, source, columns, chunk_bytes=size)
        assert_frame_equal(chunked.records, whole.records)
        assert chunked.manifest == whole.manifest
        reader = DelimitedFile(path, source, columns, chunk_bytes=size)
        assert reader.survey() == whole.manifest
    return whole


def rows(extraction: Extraction) -> list[tuple[Any, ...]]:
    return extraction.records.select(*extraction.records.columns[:-3], "_source_line", "_record_error").rows()


def test_quoted_line_breaks_join_one_record_that_keeps_its_first_line(tmp_path: Path) -> None:
    data = b'1,"two\r\nlines",x\r\n2,"three\r\n\r\nlines ""q""",y\r\n3,plain,z\r\n'
    extraction = read(tmp_path, data)
    assert rows(extraction) == [
        ("1", "two\r\nlines", "x", 1, None),
        ("2", 'three\r\n\r\nlines "q"', "y", 3, None),
        ("3", "plain", "z", 6, None),
    ]
    offsets = extraction.records.get_column("_source_offset").to_list()
    assert [data[o : o + 2] for o in offsets] == [b"1,", b"2,", b"3,"]
    assert extraction.manifest.rows_read == 3


def test_an_unterminated_quote_costs_its_own_line_only(tmp_path: Path) -> None:
    data = b'1,ok,x\n2,"never closed,y\n3,fine,z\n4,no quotes,w\n'
    extraction = read(tmp_path, data)
    assert rows(extraction) == [
        ("1", "ok", "x", 1, None),
        ("2", "never closed,y", None, 2, "quoting"),  # as the csv module splits the line alone
        ("3", "fine", "z", 3, None),
        ("4", "no quotes", "w", 4, None),
    ]
    offset = extraction.records.get_column("_source_offset")[1]
    assert data[offset:].startswith(b'2,"never')
    result = validate_plain(extraction)
    assert result.quarantine.get_column("_source_line").to_list() == [2]


def test_a_stray_quote_closed_by_a_later_one_is_one_quarantined_record(tmp_path: Path) -> None:
    # As any CSV reader does, a later quote within maxRecordLines closes the field: lines 2-4 are one
    # record with too many fields, quarantined whole and counted once; nothing is dropped silently.
    data = b'1,ok,x\n2,"stray,y\n3,fine,z\n4,"a\n5,b,c\n'
    extraction = read(tmp_path, data)
    records = extraction.records
    assert records.get_column("_source_line").to_list() == [1, 2, 5]
    assert records.get_column("_record_error").to_list() == [None, "field_count", None]
    assert records.row(1)[1] == "stray,y\n3,fine,z\n4,a"


def test_a_quote_open_longer_than_max_record_lines_is_broken_quoting(tmp_path: Path) -> None:
    body = b'1,"spans\nthree\nlines",x\n2,b,c\n'
    three = read(tmp_path, body, dataclasses.replace(PLAIN, max_record_lines=3))
    assert three.records.get_column("_record_error").to_list() == [None, None]
    two = read(tmp_path, body, dataclasses.replace(PLAIN, max_record_lines=2))
    # The first line alone is quarantined; the next lines are read afresh (one of them has an odd quote).
    assert two.records.get_column("_source_line").to_list()[:2] == [1, 2]
    assert two.records.get_column("_record_error")[0] == "quoting"
    assert two.records.row(-1)[:3] == ("2", "b", "c")
    result = validate_plain(two)
    assert result.valid.height + result.quarantine.height == two.manifest.rows_read


def validate_plain(extraction: Extraction) -> Any:
    """Validate records against a contract of three text columns (rows only ever fail as unreadable)."""
    return validate(STRINGS, extraction.records, TextFormat())


def _strings() -> Any:
    from schemas import load_contract
    from schemas.contract import Column, Rule

    orders = load_contract(Path(__file__).resolve().parents[2] / "schemas" / "contracts" / "erp.orders.yaml")
    columns = tuple(
        Column(
            n,
            n,
            "string",
            "string",
            False,
            False,
            False,
            "internal",
            None,
            None,
            (Rule(f"{n}_type", n, "type", {"type": "string"}),),
        )
        for n in COLUMNS
    )
    return compile_contract(dataclasses.replace(orders, columns=columns))


STRINGS = _strings()


def test_backslash_escapes_as_mysql_writes_them(tmp_path: Path) -> None:
    source = dataclasses.replace(PLAIN, delimiter=";", escape="\\")
    data = b'1;"say \\"hi\\"";a\\;b\n\\N;back\\\\slash;"x"""\n3;line\\\nbreak;z\n'
    extraction = read(tmp_path, data, source)
    assert rows(extraction) == [
        ("1", 'say "hi"', "a;b", 1, None),
        (None, "back\\slash", 'x"', 2, None),
        ("3", "line\nbreak", "z", 3, None),
    ]


def test_quote_none_reads_quotes_as_text(tmp_path: Path) -> None:
    source = dataclasses.replace(PLAIN, delimiter="|", quote=None)
    extraction = read(tmp_path, b'1|"a|b\n2|5\'11"|c"\n', source)
    assert rows(extraction) == [("1", '"a', "b", 1, None), ("2", "5'11\"", 'c"', 2, None)]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
@pytest.mark.parametrize("declared", ["utf-8", "utf-16", "utf-32"])
def test_utf16_and_utf32_with_bom_stream_with_offsets_in_the_original_file(
    tmp_path: Path, encoding: str, declared: str
) -> None:
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(
        encoding, codecs.BOM_UTF32_LE if encoding == "utf-32-le" else codecs.BOM_UTF32_BE
    )
    text = 'ä,"😀 two\r\nlines",€\r\n𝄞,b,\u0a0a\r\n"q ""x""",plain,z\r\n\r\n'
    data = bom + text.encode(encoding)
    extraction = read(tmp_path, data, dataclasses.replace(PLAIN, encoding=declared))
    assert rows(extraction) == [
        ("ä", "😀 two\r\nlines", "€", 1, None),
        ("𝄞", "b", "\u0a0a", 3, None),
        ('q "x"', "plain", "z", 4, None),
    ]
    unit = 2 if "16" in encoding else 4
    for offset, line in zip(extraction.records.get_column("_source_offset"), ["ä,", "𝄞,", '"q'], strict=True):
        assert data[offset:].startswith(line.encode(encoding)), (offset, line)
        assert (offset - len(bom)) % unit == 0


def test_undecodable_utf16_marks_its_record_and_keeps_offsets(tmp_path: Path) -> None:
    data = (
        codecs.BOM_UTF16_LE
        + "1,a,x\n2,".encode("utf-16-le")
        + b"\x00\xd8"
        + ",y\n3,c,z\n".encode("utf-16-le")
    )
    extraction = read(tmp_path, data, dataclasses.replace(PLAIN, encoding="utf-16"))
    assert extraction.records.get_column("_record_error").to_list() == [None, "encoding", None]
    third = extraction.records.get_column("_source_offset")[2]
    assert data[third:].startswith("3,c".encode("utf-16-le"))


def test_a_declared_code_page_is_not_overridden_by_a_bom(tmp_path: Path) -> None:
    data = codecs.BOM_UTF8 + b"a,b,c\n"
    extraction = read(tmp_path, data, dataclasses.replace(PLAIN, encoding="cp1252"))
    assert extraction.records.row(0)[0] == "ï»¿a"
    assert read(tmp_path, data).records.row(0)[0] == "a"


def test_header_row_maps_columns_by_name_in_any_order(tmp_path: Path) -> None:
    source = dataclasses.replace(PLAIN, header_names=True)
    extraction = read(tmp_path, b'C,Unused Field,"B",a\n3,u,"two\nlines",1\n6,v,5,4\n', source)
    assert rows(extraction) == [("1", "two\nlines", "3", 2, None), ("4", "5", "6", 4, None)]
    assert extraction.manifest.undeclared_columns == ("Unused Field",)
    assert extraction.manifest.controls.problems == ()


def test_header_row_missing_a_column_rejects_the_batch_on_line_one(tmp_path: Path) -> None:
    source = dataclasses.replace(PLAIN, header_names=True)
    extraction = read(tmp_path, b"a,c,extra\n1,3,x\n", source)
    (problem,) = extraction.manifest.controls.problems
    assert (problem.check, problem.line, problem.column) == ("structure", 1, "b")
    assert problem.message.startswith("batch.csv line 1 (header row): column(s) b not found")
    assert "Fix: " in problem.message
    assert extraction.records.get_column("b").to_list() == [None]
    empty = read(tmp_path, b"", source)
    assert "the file is empty" in empty.manifest.controls.problems[0].message


SOURCE_OPTIONS = [
    ({"delimiter": ";;"}, "delimiter", "must be one character"),
    ({"quote": ","}, "quote", "is also the delimiter"),
    ({"escape": '"'}, "escape", "doubled quotes are always read"),
    ({"escape": ","}, "escape", "is also the delimiter"),
    ({"header": "names", "recordTypes": {"field": 0}}, "header", "cannot be combined with recordTypes"),
    ({"header": "first"}, "header", "is not known"),
    ({"encoding": "utf-99"}, "encoding", "is not known"),
    ({"maxRecordLines": 0}, "maxRecordLines", "is not a whole number"),
    ({"escapeChar": "\\"}, "escapeChar", "unknown option"),
]


@pytest.mark.parametrize(("options", "option", "message"), SOURCE_OPTIONS)
def test_impossible_dialects_are_refused_at_their_line(
    make_contract: Any, options: dict[str, Any], option: str, message: str
) -> None:
    source = {"kind": "delimited", "path": "drop", "pattern": "*.csv", **options}
    with pytest.raises(ContractError) as raised:
        make_contract(source, [{"name": "a", "logicalType": "string"}], "erp.dialect")
    (line,) = [x for x in raised.value.lines() if message in x]
    assert " Fix: " in line  # and the line is the option's own
    document = Path(line.split(":", 1)[0]).read_text("utf-8").splitlines()
    number = int(line.split(":")[1])
    assert document[number - 1].lstrip(" -").startswith(f"{option}:"), (document[number - 1], line)


def test_dialect_options_load(make_contract: Any) -> None:
    contract = make_contract(
        {
            "kind": "delimited",
            "path": "d",
            "escape": "\\",
            "quote": "none",
            "header": "names",
            "maxRecordLines": 5,
        },
        [{"name": "a", "logicalType": "string"}],
        "erp.loaded",
    )
    src = contract.source
    assert isinstance(src, DelimitedSource)
    assert (src.escape, src.quote, src.header_names, src.max_record_lines) == ("\\", None, True, 5)


# -- properties -----------------------------------------------------------------------------------
LINE = st.text(alphabet='ab;"\\\r é', max_size=12)


@settings(max_examples=300, deadline=None)
@given(line=LINE, escape=st.sampled_from([None, "\\"]), quote=st.sampled_from(['"', None]))
def test_a_line_the_csv_module_leaves_open_is_always_found(
    line: str, escape: str | None, quote: str | None
) -> None:
    """The vectorised pattern may call a line open that is not, never the reverse (csv has the last word)."""
    dialect = Dialect(";", quote, escape)
    line = line.replace("\r", "")
    pattern = dialect.open_pattern
    if pattern is None:
        return
    found = pl.Series([line]).str.contains(pattern)[0]
    if record_length([line], dialect) is None:  # the csv module wants another line
        assert found, (line, pattern)


def _dialect_file(draw: Any) -> tuple[bytes, DelimitedSource]:
    escape = draw(st.sampled_from([None, "\\"]))
    quote = draw(st.sampled_from(['"', '"', None]))
    encoding = draw(st.sampled_from(["utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "cp1252"]))
    fields = st.one_of(
        st.text(alphabet='xy;"\\\n\r€😀', max_size=8),
        st.text(alphabet="xyé\n;", max_size=6).map(lambda t: '"' + t.replace('"', '""') + '"'),
    )
    lines = draw(st.lists(st.lists(fields, min_size=1, max_size=4).map(";".join), max_size=6))
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines)
    bom = {
        "utf-16-le": codecs.BOM_UTF16_LE,
        "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE,
    }
    data = bom.get(encoding, b"") + text.encode(encoding, errors="replace")
    if draw(st.booleans()):  # torn or foreign bytes
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=5)) + data[at:]
    declared = "utf-8" if encoding.startswith("utf") and draw(st.booleans()) else encoding
    source = dataclasses.replace(
        PLAIN, delimiter=";", quote=quote, escape=escape, encoding=declared, max_record_lines=3
    )
    return data, source


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.composite(lambda draw: _dialect_file(draw))())
def test_any_dialect_file_ends_as_rows_or_reasons_whatever_the_chunking(
    case: tuple[bytes, DelimitedSource],
) -> None:
    data, source = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batch.csv"
        path.write_bytes(data)
        whole = read_delimited(path, source, COLUMNS)
        records = whole.records
        assert whole.manifest.rows_read == records.height
        result = validate_plain(whole)
        assert result.valid.height + result.quarantine.height == whole.manifest.rows_read
        lines = records.get_column("_source_line").to_list()
        assert lines == sorted(set(lines))  # one record per first line, in file order
        offsets = records.get_column("_source_offset").to_list()
        assert offsets == sorted(offsets) and all(0 <= o < max(len(data), 1) for o in offsets)
        for size in (1, 4, 16):
            chunked = read_delimited(path, source, COLUMNS, chunk_bytes=size)
            assert_frame_equal(chunked.records, records)


def test_multi_line_records_match_the_csv_module_on_a_larger_file(tmp_path: Path) -> None:
    """A few thousand records, some spanning lines: fields, and first lines, as ``csv`` reads them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for i in range(3000):
        writer.writerow(
            [f"id{i}", f"note {i}\nsecond line" if i % 7 == 0 else f"n{i}", 'say "x"' if i % 5 == 0 else "v"]
        )
    data = out.getvalue().encode()
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    expected = list(csv.reader(io.StringIO(out.getvalue())))
    for size in (1 << 20, 1000, 77):
        got = read_delimited(path, PLAIN, COLUMNS, chunk_bytes=size).records
        assert got.select(COLUMNS).rows() == [tuple(r) for r in expected]
        starts = [1]
        for r in expected[:-1]:
            starts.append(starts[-1] + r[1].count("\n") + 1)
        assert got.get_column("_source_line").to_list() == starts


def test_header_names_match_loosely_once_and_never_by_guess(tmp_path: Path) -> None:
    source = dataclasses.replace(PLAIN, header_names=True)
    loose = read(tmp_path, b"/SAP/A,B Field,C\n1,2,3\n", source, ["_sap_a", "b_field", "c"])
    assert loose.records.select("_sap_a", "b_field", "c").rows() == [("1", "2", "3")]
    twice = read(tmp_path, b"Order Date,order-date,a\n1,2,3\n", source, ["order_date", "a"])
    (problem,) = twice.manifest.controls.problems
    assert (problem.line, problem.column) == (1, "order_date") and "several names match" in problem.message
    assert twice.manifest.undeclared_columns == ("Order Date", "order-date")
