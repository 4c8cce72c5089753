"""Real third-party CSV fixtures from the shared corpus through the delimited reader.

Each test asserts a fact the corpus folder's MANIFEST.md states. Files are read in place, never
copied or modified. The reader has no header option for plain CSV yet, so a header line arrives as
record 1; and it does not join quoted fields that span lines yet (those cases are expected failures).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from connectors import Extraction, read_delimited
from schemas import TextFormat, compile_contract, load_contract, validate
from schemas.contract import DelimitedSource

pytestmark = pytest.mark.corpus

MULTI_LINE = "the reader splits physical lines; quoted fields spanning lines are not joined yet"


def plain(delimiter: str = ",", encoding: str = "utf-8") -> DelimitedSource:
    """A contract-like source for a plain CSV: no header/detail/trailer record types."""
    return DelimitedSource(
        kind="delimited",
        path="corpus",
        pattern="*.csv",
        delimiter=delimiter,
        encoding=encoding,
        quote='"',
        record_types=None,
    )


def read(path: Path, columns: list[str], source: DelimitedSource | None = None) -> Extraction:
    extraction = read_delimited(path, source or plain(), columns)
    assert extraction.manifest.rows_read == extraction.records.height
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
        pytest.param("newlines", marks=pytest.mark.xfail(reason=MULTI_LINE, strict=True)),
        pytest.param("newlines_crlf", marks=pytest.mark.xfail(reason=MULTI_LINE, strict=True)),
        pytest.param("quotes_and_newlines", marks=pytest.mark.xfail(reason=MULTI_LINE, strict=True)),
    ],
)
def test_csv_spectrum_records_match_the_expected_json(corpus: Path, case: str) -> None:
    folder = corpus / "csv-spectrum"
    expected = json.loads((folder / "json" / f"{case}.json").read_text("utf-8"))
    header = list(expected[0])
    extraction = read(folder / "csvs" / f"{case}.csv", header)

    assert values(extraction, header) == [tuple(header)] + [tuple(row.values()) for row in expected]
    assert extraction.records.get_column("_record_error").null_count() == extraction.records.height


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


def test_sfdc_bom_and_plain_variants_give_identical_rows(corpus: Path) -> None:
    folder = corpus / "sfdc-dataloader" / "testfiles" / "data"
    columns = ["column1", "column2", "column3"]
    expected = [
        ("column1", "column2", "column3"),
        ("row1-1", "row1-2", "row1-3"),
        ("row2-1", "row2-2", "row2-3"),
    ]
    assert (folder / "csvtext_BOM_UTF8.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    for name, encoding in [
        ("csvtext.csv", "utf-8"),
        ("csvtext.csv", "cp1252"),
        ("csvtext_BOM_UTF8.csv", "utf-8"),
    ]:
        extraction = read(folder / name, columns, plain(encoding=encoding))
        assert values(extraction, columns) == expected, (name, encoding)
        assert extraction.records.get_column("_record_error").null_count() == 3


def test_sfdc_escaped_quotes_and_20k_rows(corpus: Path) -> None:
    folder = corpus / "sfdc-dataloader" / "testfiles" / "data"
    quotes = read(folder / "csvEscapedQuotes.csv", ["column1", "column2"])
    assert quotes.records.get_column("column1").to_list()[1:] == ['"The Best" Account', 'The "Best" Account']

    many = read(folder / "20kRows.csv", ["column1"])
    assert many.records.height - 1 == 20_000
    assert many.records.get_column("_record_error").null_count() == 20_001
