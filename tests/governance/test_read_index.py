"""Row indexes narrow an equality read to candidate rows; the answer is always the full scan's answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from governance.read_index import MAX_INDEXED_COLUMNS, RowIndexes, equality_terms
from tests.governance.conftest import customer_rows

if TYPE_CHECKING:
    from conftest import Installation


def _frame(customers: list[str | None], amounts: list[int]) -> pl.DataFrame:
    n = min(len(customers), len(amounts))
    return pl.DataFrame(
        {
            "customer_id": pl.Series(customers[:n], dtype=pl.String).cast(pl.Categorical),
            "amount": pl.Series(amounts[:n], dtype=pl.Int64),
            "region": ["EU" if i % 2 else "US" for i in range(n)],
        }
    )


SCHEMA = pl.Schema({"customer_id": pl.String, "amount": pl.Int64, "region": pl.String})


@pytest.mark.parametrize(
    ("sql", "terms"),
    [
        ("customer_id = 'C1'", [("customer_id", "C1")]),
        ("'C1' = customer_id", [("customer_id", "C1")]),
        ("amount = 5", [("amount", 5)]),
        ("customer_id = 'C1' AND region = 'EU'", [("customer_id", "C1"), ("region", "EU")]),
        ("customer_id = 'C1' OR region = 'EU'", []),  # an OR may match rows outside either term
        ("NOT (customer_id = 'C1')", []),
        ("customer_id <> 'C1'", []),
        ("customer_id = region", []),
        ("upper(customer_id) = 'C1'", []),
        ("customer_id IN ('C1', 'C2')", []),
        ("amount = 5.5", []),
        # An aggregate, count(*) or a window would see only the candidate rows: no index at all.
        ("customer_id = 'C1' AND amount >= max(amount)", []),
        ("customer_id = 'C1' AND count(*) = 4", []),
        ("customer_id = 'C1' AND count(amount) = 2", []),
        ("customer_id = 'C1' AND sum(amount) OVER (PARTITION BY region) > 1", []),
        # Element-wise functions elsewhere in the expression keep the index.
        ("customer_id = 'C1' AND upper(region) LIKE 'E%'", [("customer_id", "C1")]),
        ("customer_id = 'C1' AND amount IN (1, 2) AND region IS NOT NULL", [("customer_id", "C1")]),
    ],
)
def test_only_anded_column_equals_literal_terms_are_taken(sql: str, terms: list[tuple[str, object]]) -> None:
    assert equality_terms(pl.sql_expr(sql)) == terms


@settings(max_examples=60, deadline=None)
@given(
    customers=st.lists(st.sampled_from(["C1", "C2", "C3", "c1", "", None]), min_size=0, max_size=60),
    amounts=st.lists(st.integers(-3, 3), min_size=0, max_size=60),
    sql=st.sampled_from(
        [
            "customer_id = 'C1'",
            "customer_id = 'c1'",
            "customer_id = ''",
            "customer_id = 'nowhere'",
            "amount = 2",
            "amount = 99999999999",
            "customer_id = 'C2' AND amount = -1",
            "customer_id = 'C3' AND region = 'EU'",
            "customer_id = 'C1' AND amount >= max(amount)",
            "customer_id = 'C2' AND count(*) = 2",
        ]
    ),
    limit=st.integers(1, 10),
)
def test_reading_candidates_gives_exactly_the_full_scan(
    customers: list[str | None], amounts: list[int], sql: str, limit: int
) -> None:
    frame = _frame(customers, amounts)
    expr = pl.sql_expr(sql)
    expected = frame.filter(expr).head(limit)
    indexes = RowIndexes(frame=frame, schema=SCHEMA)
    rows = indexes.candidate_rows(equality_terms(expr), usable=set(SCHEMA.names()))
    if rows is None:
        return  # no index for this expression: the full scan is the answer
    assert rows.to_list() == sorted(rows.to_list()), "candidates keep table order, so head() is unchanged"
    got = frame[rows].filter(expr).head(limit)
    assert_frame_equal(got, expected)


def test_masked_or_unknown_columns_and_mismatched_literals_use_no_index() -> None:
    frame = _frame(["C1", "C2"], [1, 2])
    indexes = RowIndexes(frame=frame, schema=SCHEMA)
    assert indexes.candidate_rows([("customer_id", "C1")], usable={"amount"}) is None  # masked: not usable
    assert indexes.candidate_rows([("nope", "C1")], usable={"nope"}) is None
    assert (
        indexes.candidate_rows([("amount", "1")], usable={"amount"}) is None
    )  # text literal, integer column
    assert indexes.candidate_rows([("customer_id", 1)], usable={"customer_id"}) is None


def test_the_number_of_indexed_columns_per_version_is_bounded() -> None:
    columns = {f"c{i}": list(range(10)) for i in range(MAX_INDEXED_COLUMNS + 2)}
    frame = pl.DataFrame(columns)
    indexes = RowIndexes(frame=frame, schema=frame.schema)
    used = [indexes.candidate_rows([(c, 3)], usable=set(columns)) for c in columns]
    assert sum(r is not None for r in used) == MAX_INDEXED_COLUMNS
    assert indexes.estimated_size() > 0


def test_agent_reads_through_the_index_equal_reads_of_the_delta_version(install: Installation) -> None:
    """The gateway path (in memory, indexed) and the one-shot path (a Delta scan, no index) agree."""
    from deltalake import write_deltalake

    from governance import connect
    from governance.read_cache import FRAMES

    n = 3000
    rows = customer_rows(n, customers=700, emails=50)
    write_deltalake(install.table(), rows.to_arrow(), mode="overwrite")
    install.certify("crm.customers", 1, n)
    FRAMES.clear()

    def client(in_memory: bool) -> Any:
        return connect(
            install.store,
            "junior-bot",
            install.tokens["junior-bot"],
            contracts_dir=install.contracts_dir,
            policy_path=install.policy_path,
            audit_key=install.audit_key,
            in_memory=in_memory,
        )

    indexed, scanned = client(True), client(False)
    for where in (
        "customer_id = 'C000007'",
        "customer_id = 'C000007' AND billing_country = 'GB'",
        "billing_country = 'FR' AND segment = 'smb'",
        "customer_id = 'nobody'",
        "customer_id = 'C000007' OR segment = 'mid'",
        "email = 'p3@canary.test'",  # masked for a junior: no index, and the clear value finds nothing
    ):
        got = indexed.read("crm.customers", where=where, limit=10_000)
        want = scanned.read("crm.customers", where=where, limit=10_000)
        assert_frame_equal(got.frame, want.frame)
        assert got.provenance["rows"] == want.provenance["rows"]
    assert indexed.read("crm.customers", where="customer_id = 'C000007'").frame.height == 5
    assert indexed.read("crm.customers", where="email = 'p3@canary.test'").frame.height == 0
    cached = FRAMES.get(install.store.table_path("crm.customers"), 1)
    assert cached.indexes is not None
    assert "email" not in cached.indexes.indexed_columns(), "a masked column is never indexed"
    assert "customer_id" in cached.indexes.indexed_columns()


def test_a_hash_run_is_found_whole_at_either_end_of_the_index() -> None:
    from governance.read_index import _HashIndex

    top = 2**64 - 1
    hashes = pl.Series([0, 0, 5, 5, 5, 9, top, top], dtype=pl.UInt64)
    index = _HashIndex(hashes=hashes, rows=pl.Series([7, 1, 6, 0, 3, 2, 5, 4], dtype=pl.UInt32))
    assert index.rows_for(0).to_list() == [1, 7]
    assert index.rows_for(5).to_list() == [0, 3, 6]
    assert index.rows_for(6).to_list() == []
    assert index.rows_for(top).to_list() == [4, 5]
