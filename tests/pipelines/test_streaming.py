"""A delimited batch read in many small chunks ends exactly as it does read in one.

What a user would notice if chunking leaked through: a different set of published rows, a quarantined
row with other reasons, a line number or byte offset that no longer points at its record, control
figures that differ, or a duplicate key missed because its two copies sat in different chunks. And a
batch whose controls do not reconcile must leave nothing behind: no Delta commit, no quarantine file.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from connectors._chunks import file_chunks
from connectors.delimited import DelimitedFile, read_delimited
from governance.catalog import Catalog
from governance.quarantine import read_quarantine
from governance.store import Store
from pipelines.batch import BatchOutcome, land_file, process
from schemas import compile_contract, load_contract
from schemas.contract import DelimitedSource

REPO = Path(__file__).resolve().parents[2]
CONTRACT = load_contract(REPO / "schemas" / "contracts" / "erp.orders.yaml")
COMPILED = compile_contract(CONTRACT)
SOURCE = CONTRACT.source
COLUMNS = [c.name for c in CONTRACT.columns]
ONE_CHUNK = 1 << 30
CRLF = "\r\n"
assert isinstance(SOURCE, DelimitedSource)


def detail(n: int, **fields: str) -> str:
    values = {
        "order_id": f"SO{n:08d}",
        "customer_id": "C000042",
        "order_date": "20261101",
        "sku": "MÜSLI-750G",
        "quantity": "1,000",
        "unit_price": "4,19",
        "amount": "4,19",
        "currency": "EUR",
        "status": "OPEN",
        "changed_at": "20261101103000",
        "sales_rep_email": "jürgen.müller@example.com",
    }
    values.update(fields)
    return ";".join(["D", *values.values()])


def batch_text(details: list[str], total: str) -> str:
    lines = ["H;ORD20261101;20261101", *details, f"T;{len(details)};{total}"]
    return CRLF.join(lines) + CRLF


# 40 detail records: order 3's key comes back on the last record (a duplicate far apart), record 20
# quotes a field holding the delimiter and doubled quotes, record 25 has one field too many, 30 an
# unknown currency, 33 an impossible date; every amount is readable, so the trailer reconciles.
DETAILS = [
    detail(
        3 if i == 40 else i,
        **(
            {"sku": '"MÜSLI;""BIO"""'}
            if i == 20
            else {"currency": "XXX"}
            if i == 30
            else {"order_date": "20261345"}
            if i == 33
            else {}
        ),
    )
    + (";EXTRA" if i == 25 else "")
    for i in range(1, 41)
]
DATA = batch_text(DETAILS, "167,60").encode("cp1252")


def no_fault(stage: str) -> None:
    return None


def offset_of(line: int) -> int:
    """The byte offset at which 1-based ``line`` starts in :data:`DATA`."""
    return sum(len(raw) + 1 for raw in DATA.split(b"\n")[: line - 1])


@pytest.fixture
def batch_file(tmp_path: Path) -> Path:
    path = tmp_path / "orders_20261101.csv"
    path.write_bytes(DATA)
    return path


def test_every_chunk_size_reads_the_same_records_and_controls(batch_file: Path) -> None:
    whole = read_delimited(batch_file, SOURCE, COLUMNS, chunk_bytes=ONE_CHUNK)
    assert whole.manifest.controls.reconciled, whole.manifest.controls.problems
    assert whole.manifest.controls.actual_total == Decimal("167.60")
    errors = dict(whole.records.select("_source_line", "_record_error").iter_rows())
    assert errors[26] == "field_count" and errors[21] is None  # the quoted record splits properly
    for line, offset in whole.records.select("_source_line", "_source_offset").iter_rows():
        assert offset == offset_of(line)

    for size in [*range(1, 90, 2), 200, 333, 1000]:  # cuts land all over several records
        chunked = read_delimited(batch_file, SOURCE, COLUMNS, chunk_bytes=size)
        assert_frame_equal(chunked.records, whole.records)
        assert chunked.manifest == whole.manifest
        reader = DelimitedFile(batch_file, SOURCE, COLUMNS, chunk_bytes=size)
        keys: list[pl.DataFrame] = []
        assert reader.survey(keep=["order_id"], each=keys.append) == whole.manifest
        assert (
            pl.concat(keys).get_column("order_id").to_list() == whole.records.get_column("order_id").to_list()
        )
        assert_frame_equal(pl.concat(list(reader.records())), whole.records)


def test_a_chunk_is_cut_after_a_whole_crlf_never_inside_it_or_inside_a_quoted_record(
    batch_file: Path,
) -> None:
    quoted = offset_of(21)  # record 20, with its quoted field
    cr = DATA.index(b"\r\n", offset_of(10))
    for size in (cr, cr + 1, quoted + 5, quoted + DATA[quoted:].index(b'"') + 1):
        chunks = list(file_chunks(batch_file, "cp1252", size))
        assert len(chunks) > 1
        assert b"".join(c.raw or c.text for c in chunks) == DATA
        for chunk in chunks:
            raw = chunk.raw or chunk.text
            assert raw.endswith(b"\r\n") and DATA[chunk.offset : chunk.offset + len(raw)] == raw
        first = chunks[0].raw or chunks[0].text
        assert len(first) == DATA.index(b"\n", size) + 1  # just after the first line feed at or past the cut


def run(tmp_path: Path, path: Path, chunk_bytes: int, name: str) -> tuple[BatchOutcome, Store, Catalog]:
    store = Store(home=tmp_path / name, catalog_url=f"sqlite:///{tmp_path / name}.db")
    catalog = Catalog(store.engine())
    catalog.register_dataset(
        CONTRACT.id,
        contract_version=CONTRACT.version,
        contract_checksum=CONTRACT.checksum,
        business_owner=CONTRACT.business_owner,
        operations_owner=CONTRACT.operations_owner,
    )
    landed = land_file(store, CONTRACT, path)
    outcome = process(
        store,
        catalog,
        COMPILED,
        landed,
        run_id="test-streaming",
        checkpoint=no_fault,
        chunk_bytes=chunk_bytes,
    )
    return outcome, store, catalog


def observed(outcome: BatchOutcome, store: Store, catalog: Catalog) -> dict[str, Any]:
    state = catalog.dataset(CONTRACT.id)
    assert state is not None and state.certified_version is not None
    table = pl.read_delta(str(store.table_path(CONTRACT.id)), version=state.certified_version)
    return {
        "summary": outcome.summary(),
        "manifest": outcome.manifest,
        "checks": [(c.name, c.passed, c.blocking, c.description, c.metadata) for c in outcome.checks],
        "table": table.sort("_source_line"),
        "quarantine": read_quarantine(store.quarantine / CONTRACT.id),
    }


def test_many_small_chunks_publish_and_quarantine_exactly_what_one_chunk_does(
    tmp_path: Path, batch_file: Path
) -> None:
    outcome, store, catalog = run(tmp_path, batch_file, ONE_CHUNK, "one")
    assert outcome.outcome == "certified", outcome.reasons
    one = observed(outcome, store, catalog)
    quarantine = one["quarantine"]
    reasons = {
        line: sorted((r["column"], r["check"]) for r in rs)
        for line, rs in quarantine.select("_source_line", "reasons").iter_rows()
    }
    # Record 3 (line 4) and record 40 (line 41) share a key: both are quarantined, 37 lines apart.
    assert reasons == {
        4: [("order_id", "unique")],
        41: [("order_id", "unique")],
        26: [("_record", "field_count")],
        31: [("currency", "currency_known")],
        34: [("order_date", "type")],
    }
    for line, offset in quarantine.select("_source_line", "_source_offset").iter_rows():
        assert offset == offset_of(line)
    assert one["table"].height == 35 and 'MÜSLI;"BIO"' in one["table"].get_column("sku").to_list()

    for size in (1, 64, 97, 300):  # one record per chunk, and cuts all over the records
        outcome, store, catalog = run(tmp_path, batch_file, size, f"chunks-{size}")
        many = observed(outcome, store, catalog)
        assert many["summary"] == one["summary"]
        assert many["manifest"] == one["manifest"]
        assert many["checks"] == one["checks"]
        assert_frame_equal(many["table"], one["table"])
        assert_frame_equal(many["quarantine"], one["quarantine"])


def test_a_batch_whose_controls_fail_writes_no_commit_and_no_quarantine(tmp_path: Path) -> None:
    path = tmp_path / "orders_20261101.csv"
    path.write_bytes(batch_text(DETAILS, "167,61").encode("cp1252"))  # one cent off

    outcome, store, catalog = run(tmp_path, path, 64, "unreconciled")

    assert outcome.outcome == "rejected" and [r["check"] for r in outcome.reasons] == ["controls"]
    assert (
        "expected 167.61" in outcome.reasons[0]["message"] and "found 167.60" in outcome.reasons[0]["message"]
    )
    assert not DeltaTable.is_deltatable(str(store.table_path(CONTRACT.id)))
    folder = store.quarantine / CONTRACT.id
    assert not folder.exists() or not any(folder.iterdir())


def test_controls_failure_on_top_of_a_certified_version_adds_no_commit(
    tmp_path: Path, batch_file: Path
) -> None:
    outcome, store, catalog = run(tmp_path, batch_file, 64, "certified-first")
    assert outcome.outcome == "certified"
    table = str(store.table_path(CONTRACT.id))
    version = DeltaTable(table).version()

    resent = tmp_path / "orders_20261101_resent.csv"
    lost = CRLF.join(["H;ORD20261101;20261101", *DETAILS[:-1], "T;40;167,60"]) + CRLF  # a record lost
    resent.write_bytes(lost.encode("cp1252"))
    landed = land_file(store, CONTRACT, resent)
    again = process(store, catalog, COMPILED, landed, run_id="resent", checkpoint=no_fault, chunk_bytes=64)

    assert again.outcome == "rejected" and "found 39 detail records" in again.reasons[0]["message"]
    assert DeltaTable(table).version() == version
    state = catalog.dataset(CONTRACT.id)
    assert state is not None and state.certified_version == outcome.version


def test_a_failure_while_streaming_raises_itself_and_leaves_no_commit(
    tmp_path: Path, batch_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.chunked as chunked

    calls = {"n": 0}

    class FailingOnTheThirdChunk(chunked.Validator):
        def __call__(self, raw: pl.DataFrame) -> Any:
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError("landing volume went away")
            return super().__call__(raw)

    monkeypatch.setattr(chunked, "Validator", FailingOnTheThirdChunk)
    with pytest.raises(OSError, match="landing volume went away"):
        run(tmp_path, batch_file, 64, "failing")
    store = Store(home=tmp_path / "failing", catalog_url=f"sqlite:///{tmp_path / 'failing'}.db")
    assert not DeltaTable.is_deltatable(str(store.table_path(CONTRACT.id)))
    folder = store.quarantine / CONTRACT.id
    assert not folder.exists() or not any(folder.iterdir()), "no partial quarantine file"


# --- fixed width: the same two passes, chunk by chunk ---------------------------------------------------

LEDGER = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "bank.ledger",
    "name": "ledger",
    "domain": "bank",
    "version": "1.0.0",
    "status": "active",
    "team": {
        "name": "payments",
        "members": [
            {"username": "treasury@example.com", "role": "businessOwner"},
            {"username": "team:payments-ops", "role": "operationsOwner"},
        ],
    },
    "schema": [
        {
            "name": "ledger",
            "physicalType": "file",
            "properties": [
                {"name": "entry_id", "logicalType": "string", "required": True, "primaryKey": True},
                {"name": "name", "logicalType": "string"},
                {"name": "amount", "logicalType": "number", "physicalType": "decimal(11,2)", "required": True},
            ],
        }
    ],
    "customProperties": [
        {
            "property": "source",
            "value": {
                "kind": "fixed_width",
                "path": "drop",
                "encoding": "cp1252",
                "recordLength": 30,
                "recordType": {"start": 1, "width": 1},
                "records": {"H": "file_header", "D": "detail", "T": "file_trailer"},
                "layout": [
                    {"name": "entry_id", "start": 2, "width": 5},
                    {"name": "name", "start": 7, "width": 10},
                    {"name": "amount", "start": 17, "picture": "S9(5)V99"},
                ],
                "batchId": {"record": "H", "start": 10, "width": 9},
                "controls": [
                    {
                        "level": "file",
                        "record": "T",
                        "figures": [
                            {"name": "entries", "start": 2, "width": 4, "count": ["D"]},
                            {"name": "total", "start": 6, "width": 10, "scale": 2,
                             "sum": {"of": "D", "column": "amount"}},
                        ],
                    }
                ],
            },
        },
        {"property": "quarantine", "value": {"maxRatio": 0.5}},
    ],
}  # fmt: skip


def ledger_batch(tmp_path: Path, *, total: str = "0000001209") -> tuple[Path, Any]:
    """40 entries of 0.31 (entry 7 repeats entry 2's id, entry 11 has no id, entry 23 an unknown record
    type Z) and a trailer counting the 39 detail records and their total."""
    import yaml

    contract_path = tmp_path / "bank.ledger.yaml"
    contract_path.write_text(yaml.safe_dump(LEDGER, sort_keys=False), "utf-8")
    records = ["H20261101LEDGER001"]
    for i in range(1, 41):
        kind = "Z" if i == 23 else "D"
        entry_id = "     " if i == 11 else f"{2 if i == 7 else i:05d}"
        records.append(f"{kind}{entry_id}{'Müller':<10}000003A")  # 0.31, overpunched
    records.append(f"T0039{total}")
    path = tmp_path / "ledger_20261101.dat"
    path.write_bytes(("\r\n".join(r.ljust(30) for r in records) + "\r\n").encode("cp1252"))
    return path, compile_contract(load_contract(contract_path))


def run_compiled(tmp_path: Path, path: Path, compiled: Any, chunk_bytes: int, name: str) -> dict[str, Any]:
    contract = compiled.contract
    store = Store(home=tmp_path / name, catalog_url=f"sqlite:///{tmp_path / name}.db")
    catalog = Catalog(store.engine())
    catalog.register_dataset(
        contract.id,
        contract_version=contract.version,
        contract_checksum=contract.checksum,
        business_owner=contract.business_owner,
        operations_owner=contract.operations_owner,
    )
    landed = land_file(store, contract, path)
    outcome = process(
        store, catalog, compiled, landed, run_id="test-fixed", checkpoint=no_fault, chunk_bytes=chunk_bytes
    )
    state = catalog.dataset(contract.id)
    table_path = str(store.table_path(contract.id))
    folder = store.quarantine / contract.id
    return {
        "summary": outcome.summary(),
        "manifest": outcome.manifest,
        "checks": [(c.name, c.passed, c.blocking, c.description, c.metadata) for c in outcome.checks],
        "table": pl.read_delta(table_path, version=state.certified_version).sort("_source_line")
        if state is not None and state.certified_version is not None
        else None,
        "committed": DeltaTable.is_deltatable(table_path),
        "quarantine": read_quarantine(folder) if folder.exists() and any(folder.iterdir()) else None,
    }


def test_a_fixed_width_batch_in_tiny_chunks_publishes_and_quarantines_what_one_chunk_does(
    tmp_path: Path,
) -> None:
    path, compiled = ledger_batch(tmp_path)
    one = run_compiled(tmp_path, path, compiled, ONE_CHUNK, "one")
    assert one["summary"]["outcome"] == "certified", one["summary"]["reasons"]
    assert (one["summary"]["rows_read"], one["summary"]["rows_published"]) == (40, 36)
    reasons = {
        line: sorted((r["column"], r["check"]) for r in rs)
        for line, rs in one["quarantine"].select("_source_line", "reasons").iter_rows()
    }
    assert reasons == {
        3: [("entry_id", "unique")],
        8: [("entry_id", "unique")],
        12: [("entry_id", "not_null")],
        24: [("_record", "record_type")],
    }
    assert one["table"].get_column("amount").sum() == Decimal("11.16")  # 36 x 0.31
    for size in (1, 45, 64, 301):  # one record per chunk, and cuts all over the records
        many = run_compiled(tmp_path, path, compiled, size, f"chunks-{size}")
        assert many["summary"] == one["summary"] and many["manifest"] == one["manifest"]
        assert many["checks"] == one["checks"]
        assert_frame_equal(many["table"], one["table"])
        assert_frame_equal(many["quarantine"], one["quarantine"])


def test_a_fixed_width_batch_whose_controls_fail_writes_nothing(tmp_path: Path) -> None:
    path, compiled = ledger_batch(tmp_path, total="0000001210")  # one cent off
    result = run_compiled(tmp_path, path, compiled, 64, "unreconciled")
    assert result["summary"]["outcome"] == "rejected"
    [reason] = result["summary"]["reasons"]
    assert "expected 12.10 (declared), found 12.09" in reason["message"] and "line 42" in reason["message"]
    assert not result["committed"] and result["quarantine"] is None


CUSTOMERS = {
    **{k: v for k, v in LEDGER.items() if k not in ("id", "name", "schema", "customProperties")},
    "id": "crm.customers",
    "name": "customers",
    "domain": "crm",
    "schema": [
        {
            "name": "customers",
            "physicalType": "file",
            "properties": [
                {"name": "customer_id", "physicalName": "KUNNR", "logicalType": "string", "primaryKey": True},
                {"name": "city", "physicalName": "ORT01", "logicalType": "string"},
                {"name": "credit_limit", "physicalName": "KLIMK", "logicalType": "number",
                 "physicalType": "decimal(12,2)"},
            ],
        }
    ],
    "customProperties": [
        {"property": "source", "value": {"kind": "delimited", "path": "drop", "delimiter": ";", "header": "names",
                                         "decimalSeparator": ","}},
    ],
}  # fmt: skip


def test_a_plain_csv_header_row_is_matched_to_columns_by_their_physical_names(tmp_path: Path) -> None:
    """Columns in another order than the contract's, named as the source names them (physicalName)."""
    import yaml

    contract_path = tmp_path / "crm.customers.yaml"
    contract_path.write_text(yaml.safe_dump(CUSTOMERS, sort_keys=False), "utf-8")
    path = tmp_path / "customers.csv"
    path.write_text("ORT01;KLIMK;KUNNR;EXTRA\r\nBerlin;1200,50;C1;x\r\nHamburg;;C2;y\r\n", "utf-8")
    got = run_compiled(tmp_path, path, compile_contract(load_contract(contract_path)), 1 << 20, "csv")
    assert got["summary"]["outcome"] == "certified", got["checks"]
    table = got["table"].sort("customer_id")
    assert table["customer_id"].to_list() == ["C1", "C2"]
    assert table["city"].to_list() == ["Berlin", "Hamburg"]
    assert [str(v) if v is not None else None for v in table["credit_limit"].to_list()] == ["1200.50", None]
