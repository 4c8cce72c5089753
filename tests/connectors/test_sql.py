"""The SQL reader on SQLite, PostgreSQL and MariaDB: a wide CRM-like table, declared columns only."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    update,
)
from sqlalchemy.engine import make_url

from connectors import SourceError, read_table
from schemas import TextFormat, compile_contract, load_contract, validate

ROWS = 240
WIDTH = 320  # custom fields besides the key
TYPES = [Integer, lambda: Numeric(12, 2), Date, DateTime, Boolean, lambda: String(20)]
# contract name -> source column, as a contract's physicalName maps them
DECLARED = {
    "account_id": "Id",
    "visits": "cf_000__c",
    "balance": "cf_001__c",
    "opened_on": "cf_002__c",
    "seen_at": "cf_003__c",
    "active": "cf_004__c",
    "segment": "cf_005__c",
}
PASSWORD = "s3cret-canary-pw"
ZONE = ZoneInfo("America/New_York")

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: crm.wide
name: wide
domain: crm
version: 1.0.0
status: active
team:
  members:
    - {username: owner@example.com, role: businessOwner}
    - {username: team:crm, role: operationsOwner}
schema:
  - name: wide
    properties:
      - {name: account_id, physicalName: Id, logicalType: string, primaryKey: true}
      - {name: visits, physicalName: cf_000__c, logicalType: integer, logicalTypeOptions: {minimum: 0}}
      - {name: balance, physicalName: cf_001__c, logicalType: number, physicalType: "decimal(12,2)"}
      - {name: opened_on, physicalName: cf_002__c, logicalType: date}
      - {name: seen_at, physicalName: cf_003__c, logicalType: timestamp}
      - {name: active, physicalName: cf_004__c, logicalType: boolean}
      - {name: segment, physicalName: cf_005__c, logicalType: string}
customProperties:
  - property: source
    value: {kind: sql, connection: crm, table: wide}
  - property: sourceTimezone
    value: America/New_York
"""


def field_name(i: int) -> str:
    return f"cf_{i:03d}__c"


def value(type_index: int, row: int) -> Any:
    """Row ``row``'s value for a column of type ``TYPES[type_index]``; every 7th is NULL."""
    if (row + type_index) % 7 == 0:
        return None
    return [
        row * 3,
        Decimal(row * 1234 - 150_000) / 100,  # negatives, two places, up to ~1.5 million
        date(2020, 1, 1) + timedelta(days=row * 5),
        datetime(2024, 1, 15, 10, 30) + timedelta(days=row, minutes=row),
        row % 2 == 0,
        f"seg-{row % 5}",
    ][type_index]


def account_id(row: int) -> str:
    return f"001{row:015d}"


def build_wide_table(url: str, name: str) -> Table:
    """A ``WIDTH + 1`` column table of ``ROWS`` rows, inserted in shuffled order."""
    meta = MetaData()
    columns = [Column("Id", String(18), primary_key=True)]
    columns += [Column(field_name(i), TYPES[i % len(TYPES)]()) for i in range(WIDTH)]
    table = Table(name, meta, *columns)
    rows = [
        {"Id": account_id(r), **{field_name(i): value(i % len(TYPES), r) for i in range(WIDTH)}}
        for r in range(1, ROWS + 1)
    ]
    random.Random(7).shuffle(rows)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            meta.create_all(conn)
            for start in range(0, ROWS, 100):
                conn.execute(table.insert(), rows[start : start + 100])
    finally:
        engine.dispose()
    return table


def change(url: str, table: Table, column: str, new: Any, row: int = 3) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(update(table).where(table.c.Id == account_id(row)).values({column: new}))
    finally:
        engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.server),
        pytest.param("mariadb", marks=pytest.mark.server),
    ]
)
def wide(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Table]]:
    """(url, table): the wide table on each dialect, dropped afterwards."""
    name = f"accounts_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("postgres_schema")
    else:
        url = request.getfixturevalue("mariadb_url")
    table = build_wide_table(url, name)
    try:
        yield url, table
    finally:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                table.drop(conn, checkfirst=True)
        finally:
            engine.dispose()


def test_declared_columns_come_back_as_text_in_key_order(wide: tuple[str, Table]) -> None:
    url, table = wide
    extraction = read_table(url, table.name, DECLARED, ["account_id"])
    records, manifest = extraction.records, extraction.manifest

    assert [c for c in records.columns if not c.startswith("_")] == list(DECLARED)
    assert set(records.columns) == {*DECLARED, "_source_line"}
    assert all(records.schema[name] == pl.String for name in DECLARED)
    assert records.get_column("account_id").to_list() == [account_id(r) for r in range(1, ROWS + 1)]
    assert records.get_column("_source_line").to_list() == list(range(1, ROWS + 1))
    assert manifest.rows_read == ROWS and manifest.source == table.name
    undeclared = {field_name(i) for i in range(WIDTH)} - set(DECLARED.values())
    assert manifest.undeclared_columns == tuple(sorted(undeclared))
    assert len(manifest.undeclared_columns) == WIDTH - len(DECLARED) + 1

    row = records.row(0, named=True)  # row 1: visits 3, NULLs where (row + type) % 7 == 0
    assert row["visits"] == "3" and row["segment"] == "seg-1" and row["seen_at"] is not None
    assert records.filter(pl.col("account_id") == account_id(6)).get_column("visits").item() == "18"
    assert records.filter(pl.col("account_id") == account_id(7)).get_column("visits").item() is None


def test_checksum_follows_the_extracted_content(wide: tuple[str, Table]) -> None:
    url, table = wide
    first = read_table(url, table.name, DECLARED, ["account_id"]).manifest
    again = read_table(url, table.name, DECLARED, ["account_id"]).manifest
    assert again.checksum == first.checksum and again.batch_id == first.batch_id

    change(
        url, table, field_name(101), "undeclared"
    )  # a String(20) field  # a column the contract never extracts
    untouched = read_table(url, table.name, DECLARED, ["account_id"]).manifest
    assert untouched.checksum == first.checksum

    change(url, table, "cf_005__c", "seg-changed")
    changed = read_table(url, table.name, DECLARED, ["account_id"]).manifest
    assert changed.checksum != first.checksum and changed.batch_id != first.batch_id


def test_missing_table_and_missing_column_are_source_errors(wide: tuple[str, Table]) -> None:
    url, table = wide
    with pytest.raises(SourceError, match=r"table 'no_such_table' cannot be read.*Fix: "):
        read_table(url, "no_such_table", DECLARED, ["account_id"])
    with pytest.raises(
        SourceError, match=r"declared column\(s\) \['Phantom__c'\] are not in the source.*Fix: "
    ):
        read_table(url, table.name, {**DECLARED, "phantom": "Phantom__c"}, ["account_id"])


def test_extraction_validates_with_decimals_dates_times_and_booleans(
    wide: tuple[str, Table], tmp_path: Path
) -> None:
    url, table = wide
    path = tmp_path / "crm.wide.yaml"
    path.write_text(CONTRACT, encoding="utf-8")
    contract = load_contract(path)
    extraction = read_table(url, table.name, DECLARED, ["account_id"])

    result = validate(compile_contract(contract), extraction.records, TextFormat.of(contract))

    assert result.quarantine.height == 0, result.quarantine.head(3)
    valid = result.valid
    assert valid.height == ROWS
    expected = [
        {
            "balance": value(1, r),
            "opened_on": value(2, r),
            # naive New York plant time in the source, stored in UTC (-05:00 in winter, -04:00 in summer)
            "seen_at": None if value(3, r) is None else value(3, r).replace(tzinfo=ZONE).astimezone(UTC),
            "active": value(4, r),
        }
        for r in range(1, ROWS + 1)
    ]
    assert valid.select("balance", "opened_on", "seen_at", "active").to_dicts() == expected
    assert valid.schema["balance"] == pl.Decimal(12, 2)
    assert valid.filter(pl.col("account_id") == account_id(1)).get_column("seen_at").item() == datetime(
        2024, 1, 16, 15, 31, tzinfo=UTC
    )


@pytest.mark.server
def test_error_messages_never_show_the_password(postgres_schema: str) -> None:
    url = make_url(postgres_schema).set(password=PASSWORD).render_as_string(hide_password=False)
    with pytest.raises(SourceError) as missing:
        read_table(url, "no_such_table", {"id": "id"}, ["id"])
    assert PASSWORD not in str(missing.value) and "***" in str(missing.value)

    engine = create_engine(url)
    with engine.begin() as conn:
        Table("one", MetaData(), Column("id", Integer, primary_key=True)).create(conn)
    engine.dispose()
    with pytest.raises(SourceError) as column:
        read_table(url, "one", {"id": "id", "gone": "gone"}, ["id"])
    assert PASSWORD not in str(column.value)


@pytest.mark.server
def test_refused_login_is_a_source_error_without_the_password(mariadb_url: str) -> None:
    url = make_url(mariadb_url).set(password=PASSWORD).render_as_string(hide_password=False)
    with pytest.raises(SourceError, match=r"cannot connect.*Fix: ") as info:
        read_table(url, "anything", {"id": "id"}, ["id"])
    assert PASSWORD not in str(info.value) and "***" in str(info.value)


def test_postgres_timestamptz_is_read_as_an_instant(postgres_schema: str, tmp_path: Path) -> None:
    """timestamptz renders with an offset ('+00'); it must not be re-interpreted in the source zone."""
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_schema)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE events (id text primary key, at timestamptz, local_at timestamp)"))
        conn.execute(
            text(
                "INSERT INTO events VALUES ('a', '2024-01-15 09:30:00+00', '2024-07-01 12:00:00'),"
                " ('b', '2024-01-15 10:30:00.250+01', NULL)"
            )
        )
    engine.dispose()
    contract_path = tmp_path / "ops.events.yaml"
    contract_path.write_text(
        "apiVersion: v3.1.0\nkind: DataContract\nid: ops.events\nversion: 1.0.0\nstatus: active\n"
        "team:\n  members:\n    - {username: a@example.com, role: businessOwner}\n"
        "    - {username: team:ops, role: operationsOwner}\n"
        "schema:\n  - name: events\n    properties:\n"
        "      - {name: id, logicalType: string, primaryKey: true}\n"
        "      - {name: at, logicalType: timestamp}\n"
        "      - {name: local_at, logicalType: timestamp}\n"
        "customProperties:\n  - {property: source, value: {kind: sql, connection: ops, table: events}}\n"
        "  - {property: sourceTimezone, value: America/New_York}\n"
    )
    contract = load_contract(contract_path)
    extraction = read_table(
        postgres_schema, "events", {"id": "id", "at": "at", "local_at": "local_at"}, ["id"]
    )
    result = validate(compile_contract(contract), extraction.records, TextFormat.of(contract))
    assert result.quarantine.height == 0
    rows = {r["id"]: r for r in result.valid.to_dicts()}
    assert rows["a"]["at"] == datetime(2024, 1, 15, 9, 30, tzinfo=UTC)
    assert rows["b"]["at"] == datetime(2024, 1, 15, 9, 30, 0, 250000, tzinfo=UTC)
    assert rows["a"]["local_at"] == datetime(2024, 7, 1, 16, 0, tzinfo=UTC)  # New York summer time
