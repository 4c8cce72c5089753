"""Real third-party CSV fixtures from the shared corpus through the delimited reader.

Each test asserts a fact the corpus folder's MANIFEST.md states. Files are read in place, never
copied or modified, and through the streaming reader (several chunk sizes where a file is small), so
what is asserted is what a batch of any size gets. Some tests read the header line as record 1 (no
``header: names``), which shows how a header row fares as data: quarantined, never lost.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors import DelimitedFile, Extraction, read_delimited
from schemas import Contract, TextFormat, compile_contract, load_contract, validate
from schemas.contract import DelimitedSource
from schemas.validate import Validation

MakeContract = Callable[..., Contract]

pytestmark = pytest.mark.corpus


def plain(delimiter: str = ",", encoding: str = "utf-8", *, header: bool = False) -> DelimitedSource:
    """A contract-like source for a plain CSV: no header/detail/trailer record types."""
    return DelimitedSource(
        kind="delimited",
        path="corpus",
        pattern="*.csv",
        delimiter=delimiter,
        encoding=encoding,
        quote='"',
        record_types=None,
        header_names=header,
    )


def read(
    path: Path,
    columns: list[str],
    source: DelimitedSource | None = None,
    *,
    chunks: tuple[int, ...] = (7, 64),
) -> Extraction:
    """The whole file read at once, checked to equal the file streamed in small chunks."""
    extraction = read_delimited(path, source or plain(), columns)
    assert extraction.manifest.rows_read == extraction.records.height
    for size in chunks if path.stat().st_size < 100_000 else ():
        streamed = read_delimited(path, source or plain(), columns, chunk_bytes=size)
        assert_frame_equal(streamed.records, extraction.records)
        assert streamed.manifest == extraction.manifest
    return extraction


def values(extraction: Extraction, columns: list[str]) -> list[tuple[str | None, ...]]:
    return extraction.records.select(columns).rows()


@pytest.mark.parametrize(
    "case",
    [
        "comma_in_quotes",
        "empty",
        "empty_crlf",
        "escaped_quotes",
        "json",
        "simple",
        "simple_crlf",
        "utf8",
        "newlines",
        "newlines_crlf",
        "quotes_and_newlines",
    ],
)
def test_csv_spectrum_records_match_the_expected_json(corpus: Path, case: str) -> None:
    folder = corpus / "csv-spectrum"
    expected = json.loads((folder / "json" / f"{case}.json").read_text("utf-8"))
    path = folder / "csvs" / f"{case}.csv"
    if b"\r\n" not in path.read_bytes():
        # MANIFEST: *_crlf files are CRLF by upstream's .gitattributes, which only a git checkout applies;
        # the copy holds LF, and a line break inside a quoted field is kept exactly as the file has it.
        expected = [{k: v.replace("\r\n", "\n") for k, v in row.items()} for row in expected]
    header = list(expected[0])
    extraction = read(path, header, plain(header=True))

    assert values(extraction, header) == [tuple(row.values()) for row in expected]
    assert extraction.records.get_column("_record_error").null_count() == extraction.records.height
    assert extraction.manifest.controls.problems == () and extraction.manifest.undeclared_columns == ()


def test_csv_spectrum_records_spanning_lines_keep_their_first_line_and_offset(corpus: Path) -> None:
    path = corpus / "csv-spectrum" / "csvs" / "newlines.csv"
    raw = path.read_bytes()
    records = read(path, ["a", "b", "c"], plain(header=True), chunks=(1, 5, 13)).records
    # "Once upon \na time" starts on line 3 and ends on line 4: the next record is line 5.
    assert records.get_column("_source_line").to_list() == [2, 3, 5]
    for offset, a in records.select("_source_offset", "a").iter_rows():
        assert raw[offset:].startswith(f'"{a}'.encode() if "\n" in a else a.encode())


def test_csv_spectrum_mangled_fixture_is_flagged_not_published(corpus: Path) -> None:
    # MANIFEST: location_coordinates.csv already holds U+FFFD where a degree sign was; 1 data row.
    columns = ["phone", "coordinates", "city", "county"]
    extraction = read(corpus / "csv-spectrum" / "csvs" / "location_coordinates.csv", columns)
    data = extraction.records.filter(pl.col("_source_line") > 1)
    assert data.height == 1
    assert data.get_column("_record_error").to_list() == ["encoding"]
    assert data.get_column("phone").to_list() == ["2095257564"]  # what the CSV says, not the JSON


def test_duckdb_latin1_names_decode_and_fail_as_utf8(corpus: Path) -> None:
    path = corpus / "duckdb-csv" / "data" / "csv" / "encodings" / "latin1.csv"
    latin1 = read(path, ["name", "age"], plain(encoding="latin-1"))
    rows = values(latin1, ["name", "age"])
    assert rows[0] == ("name", "age")
    assert len(rows) - 1 == 12
    assert rows[1] == ("José Álvarez", "30") and rows[-1] == ("Léonard Dubois", "29")
    assert latin1.records.get_column("_record_error").null_count() == 13
    raw = path.read_bytes()  # CRLF file: offsets must land on each line
    for offset, name in latin1.records.select("_source_offset", "name").iter_rows():
        assert raw[offset:].startswith(name.encode("latin-1") + b",")

    # Read as UTF-8 the same bytes are not text (DuckDB: "Invalid unicode"): every data row is flagged.
    as_utf8 = read(path, ["name", "age"], plain(encoding="utf-8"))
    assert as_utf8.records.get_column("_record_error").to_list() == [None] + ["encoding"] * 12


def test_duckdb_decimal_comma_values(corpus: Path, tmp_path: Path) -> None:
    contract_path = tmp_path / "corpus.decimals.yaml"
    contract_path.write_text(
        """\
apiVersion: v3.1.0
kind: DataContract
id: corpus.decimals
name: decimals
domain: corpus
version: 1.0.0
status: active
team:
  members:
    - {username: owner@example.com, role: businessOwner}
    - {username: team:ops, role: operationsOwner}
schema:
  - name: decimals
    properties:
      - {name: commas, logicalType: number, physicalType: double}
      - {name: periods, logicalType: string}
customProperties:
  - property: source
    value: {kind: delimited, path: corpus, pattern: "*.csv", delimiter: ";", decimalSeparator: ","}
""",
        encoding="utf-8",
    )
    contract = load_contract(contract_path)
    assert isinstance(contract.source, DelimitedSource)
    path = corpus / "duckdb-csv" / "data" / "csv" / "decimal_separators" / "decimal_separators.csv"
    extraction = read(path, ["commas", "periods"], contract.source)

    result = validate(compile_contract(contract), extraction.records, TextFormat.of(contract))

    assert result.valid.get_column("commas").to_list() == [1.1, 0.25, 15300.0, 15300.0, -15300.0]
    # The header line is a record to this reader; it is quarantined, not lost and not published.
    assert result.quarantine.get_column("_source_line").to_list() == [1]
    assert result.quarantine.get_column("reasons").to_list() == [[{"column": "commas", "check": "type"}]]


def test_duckdb_utf8_bom_is_not_part_of_the_first_column(corpus: Path) -> None:
    path = corpus / "duckdb-csv" / "data" / "csv" / "auto" / "utf8bom.csv"
    extraction = read(path, ["id", "name"])
    assert values(extraction, ["id", "name"]) == [("id", "name"), ("1", "Mark"), ("2", "Hannes")]
    raw = path.read_bytes()
    assert [raw[o : o + 2] for o in extraction.records.get_column("_source_offset")] == [b"id", b"1,", b"2,"]


def test_duckdb_rows_with_too_many_or_too_few_fields(corpus: Path) -> None:
    # MANIFEST: line 3 has 5 fields, line 4 has 3; two good rows; no final newline.
    path = corpus / "duckdb-csv" / "data" / "csv" / "rejects" / "incorrect_columns" / "small_mix.csv"
    records = read(path, ["a", "b", "c", "d"]).records
    errors = dict(records.select("_source_line", "_record_error").iter_rows())
    assert errors == {1: None, 2: None, 3: "field_count", 4: "field_count", 5: None}
    assert records.filter(pl.col("_record_error").is_null() & (pl.col("_source_line") > 1)).height == 2


@pytest.mark.parametrize("declared", ["utf-8", "utf-16"])
def test_sfdc_five_bom_encodings_stream_to_identical_rows(corpus: Path, declared: str) -> None:
    # MANIFEST: the same table with a BOM in UTF-8, UTF-16LE/BE and UTF-32LE/BE (header quoted there).
    # The UTF-32 files open with a 2-byte mark (FE FF) before UTF-32 code units, as Java wrote them.
    folder = corpus / "sfdc-dataloader" / "testfiles" / "data"
    columns = ["column1", "column2", "column3"]
    expected = [("row1-1", "row1-2", "row1-3"), ("row2-1", "row2-2", "row2-3")]
    baseline = read(folder / "csvtext.csv", columns, plain(header=True))
    assert values(baseline, columns) == expected
    for suffix, mark in [
        ("UTF8", b"\xef\xbb\xbf"),
        ("UTF16LE", b"\xff\xfe"),
        ("UTF16BE", b"\xfe\xff"),
        ("UTF32LE", b"\xfe\xff"),
        ("UTF32BE", b"\xfe\xff"),
    ]:
        path = folder / f"csvtext_BOM_{suffix}.csv"
        raw = path.read_bytes()
        assert raw.startswith(mark), suffix
        extraction = read(path, columns, plain(encoding=declared, header=True), chunks=(1, 3, 8, 50))
        assert values(extraction, columns) == expected, suffix
        assert extraction.records.get_column("_record_error").null_count() == 2
        assert extraction.records.get_column("_source_line").to_list() == [2, 3]
        # Offsets are in the file as delivered: each points at its record's first code unit.
        unit = 4 if "32" in suffix else 2 if "16" in suffix else 1
        encoding = {"UTF8": "utf-8", "UTF16LE": "utf-16-le", "UTF16BE": "utf-16-be"}.get(
            suffix, "utf-32-le" if suffix == "UTF32LE" else "utf-32-be"
        )
        for offset in extraction.records.get_column("_source_offset"):
            assert raw[offset : offset + 4 * unit].decode(encoding).lstrip('"').startswith("row"), suffix


def test_sfdc_plain_file_read_as_cp1252_is_not_taken_for_unicode(corpus: Path) -> None:
    path = corpus / "sfdc-dataloader" / "testfiles" / "data" / "csvtext_BOM_UTF8.csv"
    columns = ["column1", "column2", "column3"]
    # A declared code page is never overridden by a mark: the BOM bytes stay part of the first name.
    extraction = read(path, columns, plain(encoding="cp1252", header=True))
    problems = extraction.manifest.controls.problems
    assert [p.line for p in problems] == [1] and "column1" in problems[0].message
    assert extraction.manifest.undeclared_columns == ('ï»¿"column1"',)


def test_sfdc_escaped_quotes_and_20k_rows(corpus: Path) -> None:
    folder = corpus / "sfdc-dataloader" / "testfiles" / "data"
    quotes = read(folder / "csvEscapedQuotes.csv", ["column1", "column2"], plain(header=True))
    assert quotes.records.get_column("column1").to_list() == ['"The Best" Account', 'The "Best" Account']

    many = read_delimited(folder / "20kRows.csv", plain(header=True), ["column1"], chunk_bytes=4096)
    assert many.records.height == many.manifest.rows_read == 20_000
    assert many.records.get_column("_record_error").null_count() == 20_000
    assert many.records.get_column("_source_line").to_list() == list(range(2, 20_002))


def w3c(make_contract: MakeContract, columns: list[dict[str, Any]], **source: Any) -> Contract:
    return make_contract(
        {"kind": "delimited", "path": "corpus", "pattern": "*.csv", "header": "names", **source},
        columns,
        "corpus.csvw",
    )


def validated(contract: Contract, path: Path) -> tuple[Extraction, Validation]:
    """Read through the streaming reader (columns found by their physicalName) and validate."""
    assert isinstance(contract.source, DelimitedSource)
    names = {c.name: c.source_name for c in contract.columns}
    reader = DelimitedFile(path, contract.source, [c.name for c in contract.columns], names=names)
    extraction = reader.read()
    for records in reader.records():  # the pass the pipeline publishes from: the same records
        assert_frame_equal(records, extraction.records)
    result = validate(compile_contract(contract), extraction.records, TextFormat.of(contract))
    assert result.valid.height + result.quarantine.height == extraction.manifest.rows_read
    return extraction, result


def test_w3c_decimal_comma_with_group_char_is_read(corpus: Path, make_contract: MakeContract) -> None:
    # test158 (PositiveValidationTest): decimal1 has decimalChar "," and groupChar ".": "10.000,1", "1,1".
    # The other columns use other number formats; the contract reads only decimal1 (the rest undeclared).
    column = {"name": "decimal1", "logicalType": "number", "physicalType": "decimal(12,3)"}
    contract = w3c(make_contract, [column], decimalSeparator=",", thousandsSeparator=".")
    extraction, result = validated(contract, corpus / "w3c-csvw-tests" / "tests" / "test158.csv")
    assert result.quarantine.height == 0
    assert result.valid.get_column("decimal1").to_list() == [Decimal("10000.1"), Decimal("1.1")]
    assert extraction.manifest.undeclared_columns == ("integer", "decimal", "double")


@pytest.mark.parametrize(
    ("test", "column", "logical"),
    [
        ("test162", "decimal", "decimal(12,3)"),  # consecutive groupChar: "123,,456.789"
        ("test163", "integer", "integer"),  # integer with decimalChar: "3.2"
        ("test165", "decimal", "decimal(12,3)"),  # NaN
        ("test166", "decimal", "decimal(12,3)"),  # INF
        ("test167", "decimal", "decimal(12,3)"),  # -INF
    ],
)
def test_w3c_negative_number_tests_are_quarantined(
    corpus: Path, make_contract: MakeContract, test: str, column: str, logical: str
) -> None:
    # EXPECTED_validation.tsv: NegativeValidationTest, each value must be reported as an error.
    if logical == "integer":
        spec = {"name": column, "logicalType": "integer"}
    else:
        spec = {"name": column, "logicalType": "number", "physicalType": logical}
    separators = {"thousandsSeparator": ","} if test == "test162" else {}
    contract = w3c(make_contract, [spec], **separators)
    _, result = validated(contract, corpus / "w3c-csvw-tests" / "tests" / f"{test}.csv")
    assert result.valid.height == 0 and result.quarantine.height == 1
    assert result.quarantine.get_column("reasons").to_list() == [[{"column": column, "check": "type"}]]


def test_w3c_date_formats_read_the_same_day(corpus: Path, make_contract: MakeContract) -> None:
    # test188 (PositiveValidationTest): one date in many patterns; those a contract can declare, by column.
    patterns = ["yyyy-MM-dd", "yyyyMMdd", "dd-MM-yyyy", "MM-dd-yyyy", "dd/MM/yyyy", "MM/dd/yyyy"]
    patterns += ["dd.MM.yyyy", "MM.dd.yyyy"]
    patterns += ["d-M-yyyy", "M-d-yyyy", "d/M/yyyy", "M/d/yyyy", "d.M.yyyy", "M.d.yyyy"]  # no leading zeros
    patterns += ["yyyy-MM-ddX", "dd.MM.yyyy XXX"]  # with a zone: 2015-03-22Z, 22.03.2015 Z
    columns = [
        {"name": f"d{i}", "physicalName": p, "logicalType": "date", "logicalTypeOptions": {"format": p}}
        for i, p in enumerate(patterns)
    ]
    contract = w3c(make_contract, columns)
    extraction, result = validated(contract, corpus / "w3c-csvw-tests" / "tests" / "test188.csv")
    assert result.quarantine.height == 0
    assert result.valid.select(f"d{i}" for i in range(len(patterns))).row(0) == (date(2015, 3, 22),) * 16
    assert not extraction.manifest.undeclared_columns


def sap(make_contract: MakeContract, columns: list[dict[str, Any]], name: str) -> Contract:
    source = {"kind": "delimited", "path": "corpus", "pattern": "*.csv", "header": "names"}
    return make_contract({**source, "dateFormat": "YYYYMMDD"}, columns, f"sap.{name}")


def test_sap_bkpf_zero_dates_are_empty_and_real_dates_read(corpus: Path, make_contract: MakeContract) -> None:
    # MANIFEST: BKPF, 116 columns, 3 rows, '00000000' for empty dates, YYYYMMDD bldat/budat.
    dates = ["bldat", "budat", "cpudt", "aedat", "upddt", "stodt", "reindat", "vatdate"]
    columns = [{"name": "belnr", "logicalType": "string", "required": True}]
    columns += [{"name": d, "logicalType": "date"} for d in dates]
    contract = sap(make_contract, columns, "bkpf")
    extraction, result = validated(contract, corpus / "fivetran-dbt_sap" / "seeds" / "sap_bkpf_data.csv")
    assert result.quarantine.height == 0 and result.valid.height == 3
    assert result.valid.get_column("belnr").to_list() == ["0200001076", "0200001077", "0200001078"]
    assert result.valid.get_column("bldat").to_list() == [
        date(2006, 4, 25),
        date(2006, 4, 26),
        date(2006, 4, 26),
    ]
    for empty in ["aedat", "upddt", "stodt", "reindat", "vatdate"]:
        assert result.valid.get_column(empty).null_count() == 3, empty
    assert len(extraction.manifest.undeclared_columns) == 116 - len(columns)


@pytest.mark.parametrize(
    ("file", "width", "rows"),
    [
        ("sap_acdoca_data.csv", 499, 1),
        ("sap_vbap_data.csv", 389, 1),
        ("sap_bseg_data.csv", 351, 3),
        ("sap_kna1_data_snowflake.csv", 197, 3),
    ],
)
def test_sap_wide_tables_every_column_by_name(
    corpus: Path, make_contract: MakeContract, file: str, width: int, rows: int
) -> None:
    # MANIFEST: up to 499 columns; the Snowflake KNA1 variant has UPPERCASE names and '/VSO/R_PALHGT'.
    path = corpus / "fivetran-dbt_sap" / "seeds" / file
    names = path.read_text("utf-8").split("\n", 1)[0].split(",")
    assert len(names) == width
    # Column names starting with '_' are the reader's origin columns (_source_line…): such SAP names keep
    # their header name as physicalName; the others are found by their normalised name.
    columns = [
        {"name": re.sub(r"[^a-z0-9_]+", "_", n.lower()).lstrip("_"), "logicalType": "string"}
        | ({"physicalName": n} if re.sub(r"[^a-z0-9_]+", "_", n.lower()).startswith("_") else {})
        for n in names
    ]
    contract = sap(make_contract, list(reversed(columns)), file.removesuffix(".csv"))  # any order
    extraction, result = validated(contract, path)
    assert extraction.manifest.undeclared_columns == () and extraction.manifest.controls.problems == ()
    assert result.valid.height == rows and result.quarantine.height == 0
    assert extraction.records.get_column("_record_error").null_count() == rows
    expected = list(csv.reader(path.read_text("utf-8").splitlines()))[1:]
    got = result.valid.select(c["name"] for c in columns).rows()
    assert [[v or "" for v in row] for row in got] == expected
