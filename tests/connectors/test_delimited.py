"""The delimited ERP reader: records, exact origins, header/trailer controls, and no crash on any bytes."""

from __future__ import annotations

import dataclasses
import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import Extraction, read_delimited
from schemas import Contract, TextFormat, compile_contract, load_contract, validate
from schemas.contract import DelimitedSource

ORDERS = Path(__file__).resolve().parents[2] / "schemas" / "contracts" / "erp.orders.yaml"
CRLF = "\r\n"


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_contract(ORDERS)


def detail(n: int, amount: str = "1.234,56", **fields: str) -> str:
    values = {
        "order_id": f"SO{n:08d}",
        "customer_id": "C000042",
        "order_date": "20240115",
        "sku": "MAT-100",
        "quantity": "1,000",
        "unit_price": amount,
        "amount": amount,
        "currency": "EUR",
        "status": "OPEN",
        "changed_at": "20240115103000",
        "sales_rep_email": "jürgen.müller@example.com",
    }
    values.update(fields)
    return ";".join(["D", *values.values()])


def batch(
    details: list[str], count: int | None = None, total: str | None = None, trailer: bool = True
) -> str:
    lines = ["H;ORD20240115;20240115", *details]
    if trailer:
        lines.append(f"T;{len(details) if count is None else count};{total or '0,00'}")
    return CRLF.join(lines) + CRLF


def read(contract: Contract, path: Path, source: DelimitedSource | None = None) -> Extraction:
    src = source or contract.source
    assert isinstance(src, DelimitedSource)
    return read_delimited(path, src, [c.name for c in contract.columns])


def write(tmp_path: Path, data: bytes | str, name: str = "orders_20240115.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("cp1252") if isinstance(data, str) else data)
    return path


def messages(extraction: Extraction, check: str) -> list[str]:
    return [p.message for p in extraction.manifest.controls.problems if p.check == check]


def test_header_and_trailer_give_batch_facts_and_reconcile(tmp_path: Path, contract: Contract) -> None:
    path = write(tmp_path, batch([detail(1), detail(2, "12,50"), detail(3, "1.000,00-")], total="247,06"))
    extraction = read(contract, path)
    m = extraction.manifest

    assert (m.batch_id, m.business_date, m.rows_read, m.source) == (
        "ORD20240115",
        date(2024, 1, 15),
        3,
        "orders_20240115.csv",
    )
    c = m.controls
    assert (c.declared_count, c.actual_count) == (3, 3)
    assert (c.declared_total, c.actual_total) == (Decimal("247.06"), Decimal("247.06"))
    assert c.reconciled and c.problems == ()
    assert m.size == path.stat().st_size and len(m.checksum) == 64

    records = extraction.records
    assert records.columns == [col.name for col in contract.columns] + [
        "_source_line",
        "_source_offset",
        "_record_error",
    ]
    assert records.get_column("_source_line").to_list() == [2, 3, 4]
    assert records.get_column("amount").to_list() == ["1.234,56", "12,50", "1.000,00-"]
    assert records.get_column("sales_rep_email")[0] == "jürgen.müller@example.com"  # cp1252 decoded
    assert records.get_column("_record_error").null_count() == 3


def test_byte_offsets_point_at_each_line_of_a_crlf_cp1252_file(tmp_path: Path, contract: Contract) -> None:
    details = [detail(i, sku=f"MAT-{'ä€' * i}") for i in range(1, 8)]
    data = batch(details, total="8.641,92").encode("cp1252")
    path = write(tmp_path, data)
    records = read(contract, path).records

    raw_lines = data.split(b"\r\n")
    for line_no, offset in records.select("_source_line", "_source_offset").iter_rows():
        expected = raw_lines[line_no - 1]
        assert data[offset : offset + len(expected)] == expected
        assert offset == 0 or data[offset - 2 : offset] == b"\r\n"


def test_utf8_bom_is_stripped_and_offsets_stay_exact(tmp_path: Path, contract: Contract) -> None:
    source = dataclasses.replace(contract.source, encoding="utf-8")
    text = batch([detail(1, sku="Größe-Ω"), detail(2)], total="2.469,12")
    data = b"\xef\xbb\xbf" + text.encode("utf-8")
    path = write(tmp_path, data)
    extraction = read(contract, path, source)

    assert extraction.manifest.batch_id == "ORD20240115"  # the header was recognised despite the BOM
    assert extraction.manifest.controls.reconciled
    assert extraction.records.get_column("sku").to_list() == ["Größe-Ω", "MAT-100"]
    for offset, order_id in extraction.records.select("_source_offset", "order_id").iter_rows():
        assert data[offset:].startswith(f"D;{order_id};".encode())


def test_quoted_field_keeps_delimiter_and_doubled_quotes(tmp_path: Path, contract: Contract) -> None:
    path = write(
        tmp_path, batch([detail(1, sku='"MAT;""X"""'), detail(2, status='"SHIPPED"')], total="2.469,12")
    )
    extraction = read(contract, path)
    assert extraction.records.get_column("sku").to_list() == ['MAT;"X"', "MAT-100"]
    assert extraction.records.get_column("status").to_list() == ["OPEN", "SHIPPED"]
    assert extraction.records.get_column("_record_error").null_count() == 2
    assert extraction.manifest.controls.reconciled


def test_many_quoted_and_plain_lines_keep_their_own_fields(tmp_path: Path, contract: Contract) -> None:
    details = [detail(i, sku=f'"MAT;{i}"' if i % 3 == 0 else f"MAT-{i}") for i in range(1, 3001)]
    path = write(tmp_path, batch(details, total="3.703.680,00"))
    extraction = read(contract, path)
    records = extraction.records
    assert extraction.manifest.controls.reconciled
    assert records.get_column("order_id").to_list() == [f"SO{i:08d}" for i in range(1, 3001)]
    assert records.get_column("sku").to_list() == [
        f"MAT;{i}" if i % 3 == 0 else f"MAT-{i}" for i in range(1, 3001)
    ]


def test_wrong_field_count_is_quarantined_but_its_amount_still_reconciles(
    tmp_path: Path, contract: Contract
) -> None:
    path = write(tmp_path, batch([detail(1), detail(2) + ";EXTRA", detail(3)], total="3.703,68"))
    extraction = read(contract, path)
    assert extraction.records.get_column("_record_error").to_list() == [None, "field_count", None]
    controls = extraction.manifest.controls
    assert controls.reconciled and controls.actual_total == Decimal("3703.68") and controls.actual_count == 3

    result = validate(compile_contract(contract), extraction.records, TextFormat.of(contract))
    assert result.valid.get_column("_source_line").to_list() == [2, 4]
    (reasons,) = result.quarantine.get_column("reasons").to_list()
    assert reasons == [{"column": "_record", "check": "field_count"}]


def test_undecodable_bytes_mark_their_record_only(tmp_path: Path, contract: Contract) -> None:
    data = batch([detail(1), detail(2, sku="MAT-XX"), detail(3)], total="3.703,68").encode("cp1252")
    data = data.replace(b"MAT-XX", b"MAT-\x81X")  # 0x81 is undefined in cp1252
    path = write(tmp_path, data)
    extraction = read(contract, path)
    records = extraction.records
    assert records.get_column("_record_error").to_list() == [None, "encoding", None]
    offset = records.filter(pl.col("_record_error") == "encoding").get_column("_source_offset").item()
    assert data[offset:].startswith(b"D;SO00000002;")
    assert extraction.manifest.controls.reconciled  # the amount of that record was readable

    result = validate(compile_contract(contract), records, TextFormat.of(contract))
    assert result.quarantine.get_column("reasons").to_list() == [[{"column": "_record", "check": "encoding"}]]


def test_missing_trailer_is_a_truncated_file(tmp_path: Path, contract: Contract) -> None:
    path = write(tmp_path, batch([detail(1), detail(2)], trailer=False))
    extraction = read(contract, path)
    (message,) = messages(extraction, "structure")
    assert message.startswith("orders_20240115.csv line 3: no trailer record")
    assert "truncated" in message and "Fix: " in message
    assert extraction.manifest.rows_read == 2
    assert not extraction.manifest.controls.reconciled


def test_missing_header_is_reported_on_line_one(tmp_path: Path, contract: Contract) -> None:
    text = batch([detail(1)], total="1.234,56").split(CRLF, 1)[1]
    extraction = read(contract, write(tmp_path, text))
    (message,) = messages(extraction, "structure")
    assert message.startswith("orders_20240115.csv line 1: no header record") and "Fix: " in message
    assert extraction.manifest.batch_id == "orders_20240115"  # from the file name


def test_trailer_count_mismatch_names_both_figures(tmp_path: Path, contract: Contract) -> None:
    extraction = read(contract, write(tmp_path, batch([detail(1), detail(2)], count=3, total="2.469,12")))
    (message,) = messages(extraction, "controls")
    assert "line 4 (trailer)" in message
    assert "expected 3" in message and "found 2" in message and "Fix: " in message
    assert (extraction.manifest.controls.declared_count, extraction.manifest.controls.actual_count) == (3, 2)


def test_trailer_amount_mismatch_names_both_totals(tmp_path: Path, contract: Contract) -> None:
    extraction = read(contract, write(tmp_path, batch([detail(1), detail(2)], total="2.469,13")))
    (problem,) = extraction.manifest.controls.problems
    assert (problem.check, problem.line, problem.column) == ("controls", 4, "amount")
    assert "expected 2469.13" in problem.message and "found 2469.12" in problem.message


def test_trailer_total_with_fewer_places_does_not_round_the_details(
    tmp_path: Path, contract: Contract
) -> None:
    extraction = read(contract, write(tmp_path, batch([detail(1), detail(2)], total="2469")))
    (message,) = messages(extraction, "controls")
    assert "expected 2469 " in message and "found 2469.12" in message


def test_unreadable_amount_names_line_and_column(tmp_path: Path, contract: Contract) -> None:
    path = write(tmp_path, batch([detail(1), detail(2, amount="12,34,56"), detail(3)], total="3.703,68"))
    (problem,) = read(contract, path).manifest.controls.problems
    assert (problem.check, problem.line, problem.column) == ("controls", 3, "amount")
    assert problem.message.startswith(
        "orders_20240115.csv line 3, column amount: the controlled amount cannot be read"
    )


@pytest.mark.parametrize(
    "count", ["\xb2", "1e0", " ", "-1"], ids=["superscript-two", "exponent", "blank", "negative"]
)
def test_trailer_count_that_is_not_a_whole_number_is_reported(
    tmp_path: Path, contract: Contract, count: str
) -> None:
    path = write(tmp_path, f"H;ORD20240115;20240115{CRLF}T;{count};0,00{CRLF}")
    (message,) = messages(read(contract, path), "controls")
    assert "line 2 (trailer), field 1: record count is not a whole number" in message


@pytest.mark.parametrize(
    "total", ["NaN", "Infinity", "1E+999999", "\u0661"], ids=["nan", "inf", "huge", "arabic"]
)
def test_trailer_total_that_is_not_a_plain_number_is_reported(
    tmp_path: Path, contract: Contract, total: str
) -> None:
    path = write(tmp_path, f"H;ORD20240115;20240115{CRLF}T;0;{total}{CRLF}".encode())
    utf8 = dataclasses.replace(contract.source, encoding="utf-8")
    (message,) = messages(read(contract, path, utf8), "controls")
    assert "the amount total is not a number" in message


def test_a_quoted_field_past_the_csv_size_limit_is_a_record_error(tmp_path: Path, contract: Contract) -> None:
    huge = '"' + "x" * 200_000 + '"'
    extraction = read(contract, write(tmp_path, batch([detail(1), detail(2, sku=huge)], total="2.469,12")))
    assert extraction.records.get_column("_record_error").to_list() == [None, "quoting"]


def test_empty_file_is_a_problem_not_a_crash(tmp_path: Path, contract: Contract) -> None:
    extraction = read(contract, write(tmp_path, b""))
    (message,) = messages(extraction, "structure")
    assert "the file is empty" in message and "Fix: " in message
    assert extraction.records.height == 0 and extraction.manifest.rows_read == 0
    result = validate(compile_contract(contract), extraction.records, TextFormat.of(contract))
    assert result.rows == 0


def test_plain_csv_without_record_types_or_final_newline(tmp_path: Path) -> None:
    source = DelimitedSource(kind="delimited", path=".", pattern="*.csv", delimiter=",", encoding="utf-8")
    data = b'a,b\r\n"x, y",2\r\n3,"say ""hi"""'
    extraction = read_delimited(write(tmp_path, data, "plain.csv"), source, ["first", "second"])
    assert extraction.records.select("first", "second").rows() == [
        ("a", "b"),
        ("x, y", "2"),
        ("3", 'say "hi"'),
    ]
    assert extraction.records.get_column("_source_offset").to_list() == [0, 5, 15]
    assert extraction.manifest.controls.reconciled and extraction.manifest.batch_id == "plain"


def _check_invariants(path: Path, contract: Contract) -> None:
    extraction = read(contract, path)
    records = extraction.records
    assert extraction.manifest.rows_read == records.height
    result = validate(compile_contract(contract), records, TextFormat.of(contract))
    assert result.valid.height + result.quarantine.height == extraction.manifest.rows_read
    size = path.stat().st_size
    assert records.select((pl.col("_source_offset") <= size).all()).item() in (True, None)


BODY = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.one_of(
            st.just(detail(1)),
            st.just(detail(2, amount="-")),
            st.just(detail(3, sku='"MAT\r\nSPANS;""LINES"""')),  # a record over two physical lines
            st.just(detail(4, sku='"NEVER CLOSED')),
            st.text(alphabet=';"DHT0123456789,.-\r ä€', max_size=60),
        ),
        max_size=6,
    ).map(lambda lines: CRLF.join(lines).encode("cp1252", errors="replace")),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODY)
def test_any_body_between_header_and_trailer_never_crashes(contract: Contract, body: bytes) -> None:
    data = b"H;ORD20240115;20240115\r\n" + body + b"\r\nT;2;2.469,12\r\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "orders_20240115.csv"
        path.write_bytes(data)
        _check_invariants(path, contract)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(lambda t: t.encode("utf-8")),
        st.text(max_size=100).map(lambda t: b"\xff\xfe" + t.encode("utf-16-le", errors="replace")),
    )
)
def test_any_whole_file_never_crashes(contract: Contract, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "orders_20240115.csv"
        path.write_bytes(data)
        _check_invariants(path, contract)
        for encoding in ("utf-8", "utf-16", "utf-32-be"):  # a BOM in the bytes may switch UTF-8 to UTF-16/32
            other = dataclasses.replace(contract.source, encoding=encoding, escape="\\")
            extraction = read(contract, path, other)
            assert extraction.manifest.rows_read == extraction.records.height


def test_blank_lines_after_the_trailer_are_ignored(tmp_path: Path, contract: Contract) -> None:
    text = batch([detail(1), detail(2)], total="2469,12") + CRLF + CRLF
    extraction = read(contract, write(tmp_path, text))
    assert extraction.manifest.controls.problems == ()
    assert extraction.manifest.rows_read == 2
