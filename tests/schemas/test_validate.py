"""Validation in flight: every row is published typed or quarantined with every reason, never lost."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    Contract,
    TextFormat,
    ValidationError,
    compile_contract,
    dtype_of,
    load_contract,
    schema_problems,
    validate,
)
from schemas.chunked import DuplicateKeys

ORDERS = Path(__file__).resolve().parents[2] / "schemas" / "contracts" / "erp.orders.yaml"

RULES_CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: test.rules
name: rules
domain: test
version: 1.0.0
status: active
team:
  members:
    - {username: owner@example.com, role: businessOwner}
    - {username: team:ops, role: operationsOwner}
schema:
  - name: rules
    properties:
      - {name: id, logicalType: integer, primaryKey: true, classification: internal}
      - {name: code, logicalType: string, logicalTypeOptions: {minLength: 2, maxLength: 4}}
      - {name: ref, logicalType: string, logicalTypeOptions: {pattern: "^R[0-9]+$"}}
      - name: score
        logicalType: number
        physicalType: double
        logicalTypeOptions: {exclusiveMinimum: 0, exclusiveMaximum: 10}
      - name: pct
        logicalType: number
        physicalType: decimal(5,2)
        logicalTypeOptions: {minimum: 0, maximum: 100}
      - {name: flag, logicalType: boolean}
      - {name: day, logicalType: date}
      - {name: at, logicalType: timestamp}
      - name: grade
        logicalType: string
        required: true
        quality:
          - {name: grade_known, metric: invalidValues, arguments: {validValues: [A, B, C]}, mustBe: 0}
customProperties:
  - property: source
    value: {kind: delimited, path: drop, pattern: "*.csv"}
"""

GOOD_RULES_ROW = {
    "id": "1",
    "code": "AB",
    "ref": "R12",
    "score": "9.5",
    "pct": "100.00",
    "flag": "true",
    "day": "2024-02-29",
    "at": "2024-02-29T23:59:59",
    "grade": "A",
}

GOOD_ORDER = {
    "order_id": "SO00000001",
    "customer_id": "C000001",
    "order_date": "20240115",
    "sku": "MAT-100",
    "quantity": "1,000",
    "unit_price": "1.234,56",
    "amount": "1.234,56",
    "currency": "EUR",
    "status": "OPEN",
    "changed_at": "20240115103000",
    "sales_rep_email": "rep@example.com",
}


@pytest.fixture(scope="module")
def orders() -> Contract:
    return load_contract(ORDERS)


@pytest.fixture
def rules(tmp_path: Path) -> Contract:
    path = tmp_path / "test.rules.yaml"
    path.write_text(RULES_CONTRACT, encoding="utf-8")
    return load_contract(path)


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows as a reader hands them over: String columns plus the 1-based ``_source_line``."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    data = {c: [row.get(c) for row in rows] for c in columns}
    schema = {c: pl.String for c in columns}
    return pl.DataFrame(data, schema=schema).with_row_index("_source_line", offset=1)


def reasons_by_line(quarantine: pl.DataFrame) -> dict[int, list[tuple[str, str]]]:
    return {
        row["_source_line"]: [(r["column"], r["check"]) for r in row["reasons"]]
        for row in quarantine.select("_source_line", "reasons").to_dicts()
    }


def run(contract: Contract, rows: list[dict[str, Any]], fmt: TextFormat | None = None):
    return validate(compile_contract(contract), frame(rows), fmt or TextFormat.of(contract))


# (column, value, the check the reason must name)
RULE_BREAKS = [
    ("id", "", "not_null"),
    ("id", "12a", "type"),
    ("code", "A", "min_length"),
    ("code", "ABCDE", "max_length"),
    ("ref", "X12", "pattern"),
    ("ref", "R12x", "pattern"),
    ("score", "0", "gt"),
    ("score", "10", "lt"),
    ("score", "ten", "type"),
    ("pct", "-0.01", "ge"),
    ("pct", "100.01", "le"),
    ("pct", "1.234", "type"),  # three decimals into decimal(5,2): refused, never truncated
    ("pct", "1234.5", "type"),  # more whole digits than decimal(5,2) holds
    ("flag", "maybe", "type"),
    ("day", "2024-02-30", "type"),
    ("at", "2024-02-29 23:59:59", "type"),  # the contract's format has a 'T'
    ("grade", "D", "grade_known"),
    ("grade", "  ", "not_null"),
]


def test_each_rule_quarantines_exactly_the_rows_that_break_it(rules: Contract) -> None:
    rows = [GOOD_RULES_ROW] + [
        {**GOOD_RULES_ROW, "id": str(i), column: value} if column != "id" else {**GOOD_RULES_ROW, "id": value}
        for i, (column, value, _) in enumerate(RULE_BREAKS, start=2)
    ]
    result = run(rules, rows)

    assert result.valid.get_column("_source_line").to_list() == [1]
    got = reasons_by_line(result.quarantine)
    expected = {line: [(column, check)] for line, (column, _, check) in enumerate(RULE_BREAKS, start=2)}
    assert got == expected
    # The quarantine keeps the text as the source wrote it, for the owner to see and replay.
    assert result.quarantine.filter(pl.col("_source_line") == 13).get_column("pct").item() == "1.234"


def test_every_duplicate_of_a_key_is_quarantined_not_only_the_second(rules: Contract) -> None:
    rows = [
        {**GOOD_RULES_ROW, "id": "7"},
        {**GOOD_RULES_ROW, "id": "8"},
        {**GOOD_RULES_ROW, "id": "7"},
        {**GOOD_RULES_ROW, "id": "07"},  # the same key once typed
    ]
    result = run(rules, rows)
    assert result.valid.get_column("_source_line").to_list() == [2]
    assert reasons_by_line(result.quarantine) == {
        1: [("id", "unique")],
        3: [("id", "unique")],
        4: [("id", "unique")],
    }
    assert result.failures["id_unique"] == 3


def test_a_key_repeated_in_another_chunk_is_quarantined_in_each(rules: Contract) -> None:
    """Chunk by chunk, ``unique`` is judged on the whole batch (DuplicateKeys); validating without the
    batch's duplicates, before or after, still judges it within the frame (one compiled contract)."""
    compiled, fmt = compile_contract(rules), TextFormat.of(rules)
    first = frame([{**GOOD_RULES_ROW, "id": i} for i in ("1", "2", "3")])
    second = frame([{**GOOD_RULES_ROW, "id": i} for i in ("4", "02", "4")])
    keys = DuplicateKeys(compiled, fmt)
    for chunk in (first, second):
        keys.add(chunk.select(keys.names))
    duplicated = keys.duplicated()

    assert validate(compiled, first, fmt).quarantine.height == 0
    chunked = [validate(compiled, chunk, fmt, duplicated=duplicated) for chunk in (first, second)]
    assert [reasons_by_line(r.quarantine) for r in chunked] == [
        {2: [("id", "unique")]},
        {1: [("id", "unique")], 2: [("id", "unique")], 3: [("id", "unique")]},
    ]
    assert reasons_by_line(validate(compiled, second, fmt).quarantine) == {
        1: [("id", "unique")],
        3: [("id", "unique")],
    }


def test_a_row_breaking_several_rules_carries_every_reason(orders: Contract) -> None:
    bad = {
        **GOOD_ORDER,
        "order_id": "X1",
        "customer_id": "",
        "sku": "M" * 19,
        "status": "LOST",
        "quantity": "0",
    }
    result = run(orders, [GOOD_ORDER, bad])
    assert result.valid.height == 1
    assert sorted(reasons_by_line(result.quarantine)[2]) == sorted(
        [
            ("order_id", "pattern"),
            ("customer_id", "not_null"),
            ("sku", "max_length"),
            ("quantity", "gt"),
            ("status", "status_known"),
        ]
    )
    assert result.failures["status_known"] == 1 and result.failures["currency_known"] == 0


def test_erp_numbers_decimal_comma_grouping_and_trailing_minus(orders: Contract) -> None:
    rows = [
        GOOD_ORDER,
        {**GOOD_ORDER, "order_id": "SO00000002", "amount": "1.234,56-", "quantity": "12,5"},
        {**GOOD_ORDER, "order_id": "SO00000003", "amount": "0,01", "unit_price": "999.999.999,99"},
    ]
    result = run(orders, rows)
    assert result.quarantine.height == 0
    assert result.valid.get_column("amount").to_list() == [
        Decimal("1234.56"),
        Decimal("-1234.56"),
        Decimal("0.01"),
    ]
    assert result.valid.get_column("quantity").to_list() == [
        Decimal("1.000"),
        Decimal("12.500"),
        Decimal("1.000"),
    ]
    assert result.valid.get_column("unit_price")[2] == Decimal("999999999.99")
    assert result.valid.schema["amount"] == pl.Decimal(14, 2)


def test_decimal_with_point_separator_refuses_extra_places(orders: Contract) -> None:
    point = TextFormat(decimal_separator=".", date_format="%Y%m%d", timestamp_format="%Y%m%d%H%M%S")
    rows = [
        {**GOOD_ORDER, "quantity": "1", "unit_price": "1234.56", "amount": "1234.56"},
        {**GOOD_ORDER, "order_id": "SO00000002", "quantity": "1", "unit_price": "1.234", "amount": "1.23"},
    ]
    result = run(orders, rows, point)
    assert result.valid.get_column("unit_price").to_list() == [Decimal("1234.56")]
    assert reasons_by_line(result.quarantine) == {2: [("unit_price", "type")]}


def test_empty_erp_dates_are_null_not_failures_unless_required(orders: Contract) -> None:
    rows = [
        {**GOOD_ORDER, "changed_at": "00000000"},
        {**GOOD_ORDER, "order_id": "SO00000002", "order_date": "00000000"},
        {**GOOD_ORDER, "order_id": "SO00000003", "changed_at": ""},
    ]
    result = run(orders, rows)
    assert result.valid.get_column("_source_line").to_list() == [1, 3]
    assert result.valid.get_column("changed_at").to_list() == [None, None]
    assert result.valid.get_column("order_date").to_list() == [date(2024, 1, 15)] * 2
    assert reasons_by_line(result.quarantine) == {2: [("order_date", "not_null")]}


def test_local_plant_times_are_stored_in_utc_across_daylight_saving(orders: Contract) -> None:
    stamps = {
        "20240115103000": datetime(2024, 1, 15, 9, 30, tzinfo=UTC),  # CET, +01:00
        "20240701120000": datetime(2024, 7, 1, 10, 0, tzinfo=UTC),  # CEST, +02:00
        "20240331013000": datetime(2024, 3, 31, 0, 30, tzinfo=UTC),  # DST day, before the switch
        "20240331033000": datetime(2024, 3, 31, 1, 30, tzinfo=UTC),  # DST day, after the switch
        "20241027023000": datetime(2024, 10, 27, 0, 30, tzinfo=UTC),  # the repeated hour: the earlier one
    }
    rows = [{**GOOD_ORDER, "order_id": f"SO{i:08d}", "changed_at": s} for i, s in enumerate(stamps, start=1)]
    rows.append({**GOOD_ORDER, "order_id": "SO00000099", "changed_at": "20240331023000"})  # never existed
    result = run(orders, rows)
    assert result.valid.get_column("changed_at").to_list() == list(stamps.values())
    assert result.valid.schema["changed_at"] == pl.Datetime("us", "UTC")
    assert reasons_by_line(result.quarantine) == {6: [("changed_at", "type")]}


def test_unsplittable_records_get_only_the_record_reason(orders: Contract) -> None:
    raw = frame(
        [
            GOOD_ORDER,
            {**GOOD_ORDER, "order_id": "garbage", "amount": "x"},
            {**GOOD_ORDER, "order_id": "SO00000003"},
        ]
    ).with_columns(_record_error=pl.Series([None, "field_count", "encoding"], dtype=pl.String))
    result = validate(compile_contract(orders), raw, TextFormat.of(orders))
    assert result.valid.get_column("_source_line").to_list() == [1]
    assert reasons_by_line(result.quarantine) == {
        2: [("_record", "field_count")],
        3: [("_record", "encoding")],
    }
    assert result.failures["_record"] == 2
    assert result.failures["order_id_pattern"] == 0  # field checks skip records that were never split
    assert "_record_error" not in result.valid.columns


def test_every_row_ends_in_exactly_one_frame(orders: Contract) -> None:
    rows = [{**GOOD_ORDER, "order_id": f"SO{i:08d}"} for i in range(1, 41)]
    for i in range(0, 40, 3):
        rows[i] = {**rows[i], "currency": "XXX"}
    rows[5] = {**rows[5], "order_id": rows[4]["order_id"]}
    result = run(orders, rows)
    valid = set(result.valid.get_column("_source_line").to_list())
    quarantined = set(result.quarantine.get_column("_source_line").to_list())
    assert valid.isdisjoint(quarantined)
    assert valid | quarantined == set(range(1, 41))
    assert result.rows == 40 and result.quarantine.height == 16
    assert result.quarantine.select(pl.col("reasons").list.len().min()).item() >= 1


def test_missing_declared_column_is_a_validation_error_naming_it(orders: Contract) -> None:
    raw = frame([GOOD_ORDER]).drop("amount")
    with pytest.raises(ValidationError, match=r"erp\.orders.*'amount'.*Fix: "):
        validate(compile_contract(orders), raw, TextFormat.of(orders))


def test_pandera_schema_has_the_contracts_dtypes_and_constraints(orders: Contract) -> None:
    schema = compile_contract(orders).schema
    assert {name: col.dtype.type for name, col in schema.columns.items()} == {
        "order_id": pl.String,
        "customer_id": pl.String,
        "order_date": pl.Date,
        "sku": pl.String,
        "quantity": pl.Decimal(12, 3),
        "unit_price": pl.Decimal(12, 2),
        "amount": pl.Decimal(14, 2),
        "currency": pl.String,
        "status": pl.String,
        "changed_at": pl.Datetime("us", "UTC"),
        "sales_rep_email": pl.String,
    }
    assert schema.columns["order_id"].unique and not schema.columns["order_id"].nullable
    assert schema.columns["changed_at"].nullable
    assert schema.columns["sales_rep_email"].metadata == {"classification": "confidential", "pii": "email"}
    assert {c.name for c in orders.columns} == set(schema.columns)
    assert all(dtype_of(c) == schema.columns[c.name].dtype.type for c in orders.columns)


def test_schema_problems_name_a_missing_column_and_a_wrong_dtype(orders: Contract) -> None:
    compiled = compile_contract(orders)
    valid = validate(compiled, frame([GOOD_ORDER]), TextFormat.of(orders)).valid
    assert schema_problems(compiled, valid.lazy()) == []

    (missing,) = schema_problems(compiled, valid.drop("amount").lazy())
    assert "amount" in missing and "missing" in missing

    (wrong,) = schema_problems(compiled, valid.with_columns(pl.col("amount").cast(pl.Float64)).lazy())
    assert "amount" in wrong and "Decimal" in wrong and "Float64" in wrong


ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "00000000",
        "1.234,56-",
        "-",
        ",",
        "1e400",
        "NaN",
        "\u0661\u0662",  # Arabic-Indic digits
        "SO00000001",
        "C000001",
        "20240331023000",
        "99999999999999999999",
        "EUR",
        "OPEN",
        "\x00",
        "\ufffd",
    ]
)
CELL = st.one_of(st.none(), st.text(max_size=12), ODD_TEXT)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.fixed_dictionaries({k: CELL for k in GOOD_ORDER}), max_size=12),
    record_errors=st.lists(
        st.sampled_from([None, None, "field_count", "encoding"]), min_size=12, max_size=12
    ),
)
def test_random_text_never_raises_and_loses_no_row(
    orders: Contract, rows: list[dict[str, str | None]], record_errors: list[str | None]
) -> None:
    raw = pl.DataFrame(
        {k: [r[k] for r in rows] for k in GOOD_ORDER}, schema={k: pl.String for k in GOOD_ORDER}
    ).with_row_index("_source_line", offset=1)
    raw = raw.with_columns(_record_error=pl.Series(record_errors[: len(rows)], dtype=pl.String))

    result = validate(compile_contract(orders), raw, TextFormat.of(orders))

    assert result.valid.height + result.quarantine.height == len(rows)
    lines = (
        result.valid.get_column("_source_line").to_list()
        + result.quarantine.get_column("_source_line").to_list()
    )
    assert sorted(lines) == list(range(1, len(rows) + 1))
    assert result.quarantine.select((pl.col("reasons").list.len() >= 1).all()).item() in (True, None)
    assert {c.name: dtype_of(c) for c in orders.columns} == {
        k: v for k, v in result.valid.schema.items() if not k.startswith("_")
    }
