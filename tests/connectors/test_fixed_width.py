"""The fixed-width reader on hand-made layouts: numbers as COBOL writes them, record types, exact origins,
control records at file and batch level, and no crash on any bytes."""

from __future__ import annotations

import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from connectors import Extraction, read_fixed_width
from connectors.controls import reconcile
from connectors.fixed_width import FixedWidthFile
from schemas import Contract, ContractError, TextFormat, compile_contract, validate
from schemas.contract import FixedWidthSource
from schemas.controls import ControlRecord, Figure, Span

MONEY = {"logicalType": "number", "physicalType": "decimal(11,2)"}


def read(contract: Contract, path: Path, **kwargs: Any) -> Extraction:
    assert isinstance(contract.source, FixedWidthSource)
    return read_fixed_width(path, contract.source, [c.name for c in contract.columns], **kwargs)


def write(tmp_path: Path, records: list[str], *, sep: str = "\n", encoding: str = "ascii") -> Path:
    path = tmp_path / "delivery.dat"
    path.write_bytes((sep.join(records) + (sep if sep else "")).encode(encoding))
    return path


# --- numbers, blanks, trimming --------------------------------------------------------------------

ITEMS_COLUMNS = [
    {"name": "item_id", "logicalType": "string", "required": True},
    {"name": "label", "logicalType": "string"},
    {"name": "amount", **MONEY},
    {"name": "balance", "logicalType": "number", "physicalType": "decimal(7,2)"},
    {"name": "quantity", "logicalType": "number", "physicalType": "decimal(5,1)"},
    {"name": "code", "logicalType": "string"},
]
ITEMS_LAYOUT = [
    {"name": "item_id", "start": 1, "width": 6},
    {"name": "label", "start": 7, "end": 16},
    {"name": "amount", "start": 17, "picture": "9(7)V99"},
    {"name": "balance", "start": 26, "picture": "S9(5)V99"},
    {"name": "quantity", "start": 33, "width": 4, "impliedDecimals": True},
    {"name": "code", "start": 37, "width": 4, "nullValues": ["0000"]},
]


def items(make_contract, **source: Any) -> Contract:
    return make_contract(
        {"kind": "fixed_width", "path": "drop", "recordLength": 40, "layout": ITEMS_LAYOUT, **source},
        ITEMS_COLUMNS,
    )


def test_implied_decimals_overpunch_blank_as_null_and_trimming(make_contract, tmp_path: Path) -> None:
    contract = items(make_contract)
    path = write(
        tmp_path,
        [
            "A00001Widget    000012345001234}0125AB  ",
            "A00002  Gadget  000000000000000A    0000",
            "A00003          " + " " * 9 + "12345X}" + " " * 8,
        ],
    )
    ex = read(contract, path)
    rows = ex.records.to_dicts()
    assert [r["label"] for r in rows] == ["Widget", "Gadget", None]
    assert [r["amount"] for r in rows] == ["123.45", "0.00", None]
    assert [r["balance"] for r in rows] == ["-123.40", "0.01", "12345X}"]  # unreadable kept as written
    assert [r["quantity"] for r in rows] == ["12.5", None, None]
    assert [r["code"] for r in rows] == ["AB", None, None]
    result = validate(compile_contract(contract), ex.records, TextFormat.of(contract))
    assert result.valid.get_column("amount").to_list() == [Decimal("123.45"), Decimal("0.00")]
    assert result.valid.get_column("balance").to_list() == [Decimal("-123.40"), Decimal("0.01")]
    assert result.quarantine.get_column("item_id").to_list() == ["A00003"]
    assert result.quarantine.get_column("reasons").to_list() == [[{"column": "balance", "check": "type"}]]


@pytest.mark.parametrize(
    ("zoned", "expected"),
    [("0001234{", "123.40"), ("0001234}", "-123.40"), ("000123D", "12.34"), ("000123M", "-12.34"),
     ("0000000}", "-0.00"), ("0000099I", "9.99"), ("0000099R", "-9.99"), ("   1234", "12.34")],
)  # fmt: skip
def test_overpunched_signs(make_contract, tmp_path: Path, zoned: str, expected: str) -> None:
    contract = make_contract(
        {
            "kind": "fixed_width",
            "path": "drop",
            "layout": [{"name": "amount", "start": 1, "picture": "S9(6)V99"}],
        },
        [{"name": "amount", **MONEY}],
    )
    ex = read(contract, write(tmp_path, [zoned.rjust(8)]))
    assert ex.records.get_column("amount").to_list() == [expected]


def test_records_without_line_breaks_are_cut_at_the_record_length(make_contract, tmp_path: Path) -> None:
    layout = [{"name": "id", "start": 1, "width": 4}, {"name": "amount", "start": 5, "picture": "9(4)V99"}]
    columns = [{"name": "id", "logicalType": "string"}, {"name": "amount", **MONEY}]
    for breaks in ("no", "auto"):
        contract = make_contract({"kind": "fixed_width", "path": "d", "recordLength": 10, "lineBreaks": breaks, "layout": layout}, columns)  # fmt: skip
        ex = read(contract, write(tmp_path, ["0001000150", "0002001000", "0003"], sep=""))
        assert ex.records.get_column("amount").to_list() == ["1.50", "10.00", None]
        assert ex.records.get_column("_source_offset").to_list() == [0, 10, 20]
        assert ex.records.get_column("_source_line").to_list() == [1, 2, 3]
        assert ex.records.get_column("_record_error").to_list() == [None, None, "record_length"]


def test_wrong_length_records_are_rows_with_a_reason(make_contract, tmp_path: Path) -> None:
    records = ["A00001Widget    000012345001234}0125AB  ", "A00002 short", "A00003" + "x" * 40]
    pad = read(items(make_contract), write(tmp_path, records))
    # padding tolerates trailing blanks stripped in transfer, never characters past the record length
    assert pad.records.get_column("_record_error").to_list() == [None, None, "record_length"]
    strict = read(items(make_contract, lengthCheck="strict"), write(tmp_path, records))
    assert strict.records.get_column("_record_error").to_list() == [None, "record_length", "record_length"]
    result = validate(
        compile_contract(items(make_contract, lengthCheck="strict")), strict.records, TextFormat()
    )
    assert result.valid.height + result.quarantine.height == strict.manifest.rows_read == 3


def test_exact_byte_offsets_with_crlf_cp1252_and_utf8(make_contract, tmp_path: Path) -> None:
    layout = [{"name": "name", "start": 1, "width": 8}, {"name": "city", "start": 9, "width": 8}]
    columns = [{"name": "name", "logicalType": "string"}, {"name": "city", "logicalType": "string"}]
    records = ["Müller  Köln    ", "Åsa     Malmö   ", "Zoë     Genève  "]
    for encoding in ("cp1252", "utf-8"):
        contract = make_contract({"kind": "fixed_width", "path": "d", "encoding": encoding, "recordLength": 16, "layout": layout}, columns)  # fmt: skip
        path = write(tmp_path, records, sep="\r\n", encoding=encoding)
        raw = path.read_bytes()
        ex = read(contract, path)
        assert ex.records.get_column("name").to_list() == ["Müller", "Åsa", "Zoë"]
        for offset, record in zip(ex.records.get_column("_source_offset").to_list(), records, strict=True):
            assert raw[offset:].startswith(record.encode(encoding))
    path.write_bytes(b"Zo\xff     Gen\xe8ve  \n")  # not UTF-8: quarantined, never guessed at
    assert read(contract, path).records.get_column("_record_error").to_list() == ["encoding"]


# --- record types and control records -------------------------------------------------------------

LEDGER_COLUMNS = [
    {"name": "entry_id", "logicalType": "string", "required": True},
    {"name": "name", "logicalType": "string"},
    {"name": "amount", **MONEY, "required": True},
]


LEDGER_SOURCE: dict[str, Any] = {
    "kind": "fixed_width",
    "path": "drop",
    "encoding": "cp1252",
    "recordLength": 30,
    "recordType": {"start": 1, "width": 1},
    "records": {"H": "file_header", "B": "batch_header", "D": "detail", "N": "other", "E": "batch_trailer",
                "T": "file_trailer"},
    "layout": [{"name": "entry_id", "start": 2, "width": 5}, {"name": "name", "start": 7, "width": 10},
               {"name": "amount", "start": 17, "picture": "S9(5)V99"}],
    "batchId": {"record": "H", "start": 10, "width": 9},
    "businessDate": {"record": "H", "start": 2, "width": 8, "format": "YYYYMMDD"},
    "controls": [
        {"level": "batch", "record": "E", "figures": [
            {"name": "entry_count", "start": 2, "width": 4, "count": ["D", "N"]},
            {"name": "amount_total", "start": 6, "width": 10, "scale": 2, "sum": {"of": "D", "column": "amount"}},
        ]},
        {"level": "file", "record": "T", "figures": [
            {"name": "batch_count", "start": 2, "width": 3, "count": ["B"]},
            {"name": "id_hash", "start": 5, "width": 4, "hash": {"of": "D", "start": 2, "width": 5, "digits": 4}},
            {"name": "debits", "start": 9, "width": 10, "scale": 2,
             "sum": {"of": "D", "column": "amount", "when": {"start": 29, "width": 2, "in": ["DR"]}}},
        ]},
    ],
}  # fmt: skip


def ledger(make_contract, **extra: Any) -> Contract:
    return make_contract({**LEDGER_SOURCE, **extra}, LEDGER_COLUMNS)


def entry(entry_id: str, name: str, amount: str, side: str) -> str:
    """A detail record: type, id (2-6), name (7-16), amount S9(5)V99 (17-23), debit/credit (29-30)."""
    return f"D{entry_id}{name:<10}{amount}{'':5}{side}"


def ledger_file(tmp_path: Path, *, second_total: str = "0000007000", trailer: bool = True) -> Path:
    records = [
        "H20240115BATCH0042",
        "B",
        entry("00001", "Müller", "001234{", "DR"),  # 123.40
        "N a note about the entry",
        entry("00002", "Smith", "000100}", "CR"),  # -10.00
        "E0003" + "0000011340",
        "B",
        entry("00003", "Dupont", "000700{", "DR"),  # 70.00
        "E0001" + second_total,
        "Zsomething undeclared",
    ]
    if trailer:
        records.append("T002" + "0006" + "0000019340")  # hash 1+2+3 = 6; debits 123.40 + 70.00
    return write(tmp_path, [r.ljust(30) for r in records], sep="\r\n", encoding="cp1252")


def test_record_types_pick_the_rows_and_controls_reconcile(make_contract, tmp_path: Path) -> None:
    contract = ledger(make_contract)
    path = ledger_file(tmp_path)
    ex = read(contract, path, today=date(2024, 1, 16))
    m = ex.manifest
    assert m.controls.problems == ()
    assert (m.batch_id, m.business_date) == ("BATCH0042", date(2024, 1, 15))
    assert ex.records.get_column("entry_id").to_list() == ["00001", "00002", "00003", "somet"]  # sliced as is
    assert ex.records.get_column("amount").to_list() == ["123.40", "-10.00", "70.00", "lared"]
    assert ex.records.get_column("_record_error").to_list() == [None, None, None, "record_type"]
    assert ex.records.get_column("_source_line").to_list() == [3, 5, 8, 10]
    raw = path.read_bytes()
    assert [raw[o : o + 6] for o in ex.records.get_column("_source_offset").to_list()] == [
        b"D00001", b"D00002", b"D00003", b"Zsomet",
    ]  # fmt: skip
    assert dict((n, (d, a)) for n, d, a in m.controls.figures) == {
        "batch_count": ("2", "2"), "id_hash": ("6", "6"), "debits": ("193.40", "193.40"),
    }  # fmt: skip
    result = validate(compile_contract(contract), ex.records, TextFormat.of(contract))
    assert result.valid.height + result.quarantine.height == m.rows_read == ex.records.height


def test_a_batch_that_does_not_reconcile_names_expected_actual_line_and_fix(
    make_contract, tmp_path: Path
) -> None:
    ex = read(ledger(make_contract), ledger_file(tmp_path, second_total="0000007001"))
    [problem] = ex.manifest.controls.problems
    assert (problem.check, problem.line, problem.column) == ("controls", 9, "amount_total")
    assert (problem.expected, problem.actual) == ("70.01", "70.00")
    assert "delivery.dat line 9 (batch control record 'E'), amount_total: expected 70.01" in problem.message
    assert "Fix:" in problem.message


def test_a_missing_trailer_is_a_truncated_file(make_contract, tmp_path: Path) -> None:
    ex = read(ledger(make_contract), ledger_file(tmp_path, trailer=False))
    messages = [p.message for p in ex.manifest.controls.problems]
    assert any("no file trailer" in m and "truncated" in m for m in messages)
    assert any("no file control record 'T'" in m for m in messages)


def test_a_batch_without_its_control_record_is_reported(make_contract, tmp_path: Path) -> None:
    records = [
        "H20240115BATCH0042",
        "B",
        entry("00001", "Müller", "001234{", "DR"),
        "T001" + "0001" + "0000012340",
    ]
    path = write(tmp_path, [r.ljust(30) for r in records], encoding="cp1252")
    [problem] = read(ledger(make_contract), path).manifest.controls.problems
    assert problem.line == 2 and "has no batch control record 'E'" in problem.message


def test_business_date_outside_the_expected_window(make_contract, tmp_path: Path) -> None:
    contract = ledger(make_contract, businessDateWindowDays=3)
    assert read(contract, ledger_file(tmp_path), today=date(2024, 1, 18)).manifest.controls.problems == ()
    [problem] = read(contract, ledger_file(tmp_path), today=date(2024, 2, 1)).manifest.controls.problems
    assert problem.check == "business_date" and problem.line == 1
    assert (problem.expected, problem.actual) == ("2024-02-01 ± 3 days", "2024-01-15")


def test_each_detail_kind_lands_in_its_own_dataset(make_contract, tmp_path: Path) -> None:
    path = write(tmp_path, ["P0001Anna", "A0001Main Street 1", "P0002Bert"])
    common = {"kind": "fixed_width", "path": "d", "recordType": {"start": 1, "width": 1}}
    people = make_contract(
        {**common, "records": {"P": {"role": "detail", "layout": [{"name": "person", "start": 2, "width": 4},
                                                                  {"name": "name", "start": 6, "width": 10}]},
                               "A": "other"}},
        [{"name": "person", "logicalType": "string"}, {"name": "name", "logicalType": "string"}], "crm.people",
    )  # fmt: skip
    addresses = make_contract(
        {**common, "records": {"P": "other", "A": {"role": "detail", "layout": [
            {"name": "person", "start": 2, "width": 4}, {"name": "street", "start": 6, "width": 20}]}}},
        [{"name": "person", "logicalType": "string"}, {"name": "street", "logicalType": "string"}], "crm.addresses",
    )  # fmt: skip
    assert read(people, path).records.get_column("name").to_list() == ["Anna", "Bert"]
    assert read(addresses, path).records.get_column("street").to_list() == ["Main Street 1"]


def test_control_figures_also_read_delimited_fields() -> None:
    """The control engine is format-free: a delimited reader passes fields instead of positions."""
    records = pl.DataFrame(
        {"_kind": ["D", "D", "T"], "_source_line": [1, 2, 3],
         "_fields": [["D", "1.234,50"], ["D", "10,00"], ["T", "2", "1.244,50"]]}
    )  # fmt: skip
    amount = Span(field=1, scale=2)
    control = ControlRecord(
        "file", "T", None,
        (Figure("count", Span(field=1), "count", of=("D",)),
         Figure("total", Span(field=2, scale=2), "sum", of=("D",), value=amount)),
    )  # fmt: skip

    def text(span: Span) -> pl.Expr:
        field = pl.col("_fields").list.get(span.field or 0, null_on_oob=True)
        return field.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True)

    problems, figures = reconcile(records, [control], source="orders.csv", text=text)
    assert problems == []
    assert [(f.name, f.declared, f.actual) for f in figures] == [
        ("count", Decimal(2), Decimal(2)), ("total", Decimal("1244.50"), Decimal("1244.50")),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"records": {"H": "headline"}}, "role 'headline' is not one of"),
        ({"layout": [{"name": "entry_id", "start": 2, "width": 5}, {"name": "nme", "start": 7, "width": 10},
                     {"name": "amount", "start": 17, "picture": "S9(5)V99"}]}, "'nme' is not a contract column"),
        ({"layout": [{"name": "entry_id", "start": 2, "width": 5}, {"name": "name", "start": 7, "width": 10},
                     {"name": "amount", "start": 17, "width": 8, "picture": "S9(5)V99"}]}, "S9(5)V99 is 7 wide, not 8"),
        ({"controls": [{"level": "file", "record": "X", "figures": [{"name": "n", "start": 2, "width": 3,
                                                                     "count": ["D"]}]}]}, "'X' is not declared"),
        ({"layout": [{"name": "entry_id", "start": 2, "width": 5}, {"name": "name", "start": 27, "width": 10},
                     {"name": "amount", "start": 17, "picture": "S9(5)V99"}]}, "past recordLength 30"),
    ],
)  # fmt: skip
def test_layout_mistakes_are_reported_with_line_and_fix(make_contract, change: dict, complaint: str) -> None:
    with pytest.raises(ContractError) as info:
        ledger(make_contract, **change)
    text = str(info.value)
    assert complaint in text and "Fix:" in text
    assert all(line.split(":")[1].isdigit() for line in info.value.lines())


# --- read in chunks: what reading the file whole gives ---------------------------------------------------

WHOLE = 1 << 30  # one chunk


def _same_in_chunks(contract: Contract, path: Path, sizes: Any, **kwargs: Any) -> Extraction:
    """Read ``path`` whole and in chunks of each size: identical records, manifest and quarantine."""
    whole = read(contract, path, chunk_bytes=WHOLE, **kwargs)
    compiled, fmt = compile_contract(contract), TextFormat.of(contract)
    quarantine = validate(compiled, whole.records, fmt).quarantine
    for size in sizes:
        chunked = read(contract, path, chunk_bytes=size, **kwargs)
        assert_frame_equal(chunked.records, whole.records)
        assert chunked.manifest == whole.manifest
        assert_frame_equal(validate(compiled, chunked.records, fmt).quarantine, quarantine)
        assert isinstance(contract.source, FixedWidthSource)
        reader = FixedWidthFile(
            path, contract.source, [c.name for c in contract.columns], chunk_bytes=size, **kwargs
        )
        keys: list[pl.DataFrame] = []
        assert reader.survey(keep=["entry_id"], each=keys.append) == whole.manifest
        assert (
            pl.concat(keys).get_column("entry_id").to_list() == whole.records.get_column("entry_id").to_list()
        )
    return whole


def test_a_file_read_in_tiny_chunks_gives_the_rows_reasons_and_controls_read_whole(
    make_contract, tmp_path: Path
) -> None:
    today = date(2024, 1, 16)
    lines = ledger_file(tmp_path)
    whole = _same_in_chunks(ledger(make_contract), lines, (1, 29, 31, 97), today=today)
    assert whole.manifest.controls.problems == () and whole.records.height == 4
    # No line breaks: records cut every 30 characters, across chunk ends; CR/LF ending the file is no record.
    flat = tmp_path / "flat.dat"
    flat.write_bytes(lines.read_bytes().replace(b"\r\n", b"") + b"\r\n\r\n")
    cut = _same_in_chunks(ledger(make_contract, lineBreaks="no"), flat, (7, 30, 31, 299), today=today)
    assert cut.manifest.controls.problems == ()
    assert_frame_equal(
        cut.records.drop("_source_line", "_source_offset"),
        whole.records.drop("_source_line", "_source_offset"),
    )
    # Controls that fail, and a truncated file, fail the same way in chunks: nothing is reconciled per chunk.
    (tmp_path / "wrong").mkdir()
    wrong = ledger_file(tmp_path / "wrong", second_total="0000007001")
    problems = _same_in_chunks(ledger(make_contract), wrong, (13, 64), today=today).manifest.controls.problems
    assert [(p.check, p.line, p.expected, p.actual) for p in problems] == [("controls", 9, "70.01", "70.00")]
    (tmp_path / "cut").mkdir()
    truncated = ledger_file(tmp_path / "cut", trailer=False)
    assert _same_in_chunks(ledger(make_contract), truncated, (5,), today=today).manifest.controls.problems


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=300), size=st.integers(1, 64))
def test_any_bytes_read_in_chunks_give_what_one_read_gives(
    fuzz_contracts: list[Contract], data: bytes, size: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.dat"
        path.write_bytes(data)
        for contract in fuzz_contracts:
            whole = read(contract, path, chunk_bytes=WHOLE)
            chunked = read(contract, path, chunk_bytes=size)
            assert_frame_equal(chunked.records, whole.records)
            assert chunked.manifest == whole.manifest


# --- any bytes: rows or reasons, never a crash ------------------------------------------------------

ALPHABET = "HBDNETZ0123456789{}ABCJKLR -./\r\n\u00e9"


def _roundtrip(contract: Contract, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.dat"
        path.write_bytes(data)
        ex = read(contract, path)
    assert ex.manifest.rows_read == ex.records.height
    assert set(ex.records.columns) >= {"_source_line", "_source_offset", "_record_error"}
    result = validate(compile_contract(contract), ex.records, TextFormat.of(contract))
    assert result.valid.height + result.quarantine.height == ex.manifest.rows_read


@pytest.fixture(scope="module")
def fuzz_contracts(make_contract) -> list[Contract]:
    return [ledger(make_contract, **extra) for extra in ({}, {"lineBreaks": "no"}, {"lengthCheck": "strict"})]


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=400))
def test_any_bytes_end_as_rows_or_reasons(fuzz_contracts: list[Contract], data: bytes) -> None:
    for contract in fuzz_contracts:
        _roundtrip(contract, data)


@settings(max_examples=100, deadline=None)
@given(records=st.lists(st.text(alphabet=ALPHABET, max_size=40), max_size=12))
def test_any_records_end_as_rows_or_reasons(fuzz_contracts: list[Contract], records: list[str]) -> None:
    for contract in fuzz_contracts:
        _roundtrip(contract, "\n".join(records).encode("cp1252", errors="replace"))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b"a", b"9", b" ", b"\n", b"\r", b"\r\n", "é".encode(), b"\x1f", b"\xff", b"\xef\xbb\xbf"]
        ),
        max_size=40,
    )
)
def test_lines_split_by_polars_are_exactly_the_lines_split_in_python(pieces: list[bytes]) -> None:
    """The UTF-8 fast path (polars' CSV reader) gives the records and offsets the Python split gives, or
    declines; it never differs."""
    from connectors._fixed_chunks import _native_lines, lines_of

    raw = b"".join(pieces)
    native = _native_lines(raw, 11)
    if native is not None:
        assert native.equals(lines_of(raw.decode("utf-8", errors="replace"), raw, 11, "utf-8"))


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(st.text(alphabet="ab é", max_size=9), max_size=8),
    cut=st.booleans(),
    length=st.integers(1, 6),
)
def test_record_length_in_pad_mode_is_judged_record_by_record(
    make_contract, records: list[str], cut: bool, length: int
) -> None:
    """``pad``: a record fits when not empty and its characters past the length are blanks (a cut piece:
    exactly the length); a record is cut or padded to the length. A chunk's records, whatever their mix."""
    from connectors.fixed_width import _classify

    contract = make_contract(
        {
            "kind": "fixed_width",
            "path": "drop",
            "recordLength": length,
            "layout": [{"name": "a", "start": 1, "width": 1}],
        },
        [{"name": "a", "logicalType": "string"}],
    )
    source = contract.source
    assert isinstance(source, FixedWidthSource) and source.length_check == "pad"
    frame = pl.DataFrame(
        {"_rec": records, "_cut": [cut] * len(records)}, schema={"_rec": pl.String, "_cut": pl.Boolean}
    )
    got = _classify(frame, source)
    fits = [(len(r) == length) if cut else (len(r) > 0 and r[length:].strip(" ") == "") for r in records]
    assert got.get_column("_fits").to_list() == fits
    assert got.get_column("_rec").to_list() == [r[:length].ljust(length) for r in records]
