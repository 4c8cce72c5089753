"""A replace written as Parquet files of our own gives the table delta-rs' writer would have given.

``stage`` writes a replace's rows with polars as they arrive and commits the files itself (the
predecessor's files removed in the same commit); delta-rs' writer remains for upserts and for tables it
cannot serve that way. Every test here writes the same rows both ways and compares what a reader of the
table sees: rows, exact Arrow types, the Delta schema, the statistics in the log (only the allowed
columns, the same values), the commit metadata and one version per batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from governance import delta_files, publish
from governance.catalog import BatchRecord
from governance.publish import BATCH_COLUMN, STATS_PROPERTY, RowStream, reconcile_orphans, stage, withdraw


def batch(batch_id: str) -> BatchRecord:
    return BatchRecord(
        id=1,
        dataset_id="test.rows",
        batch_id=batch_id,
        checksum=batch_id.encode().hex().ljust(64, "0")[:64],
        source_file=f"{batch_id}.csv",
        business_date=None,
        rows_read=None,
        rows_published=None,
        rows_quarantined=None,
        outcome="running",
        reasons=[],
        run_id=f"run-{batch_id}",
        delta_version=None,
    )


def stage_with_delta_rs(table: Path, rows: pl.DataFrame | RowStream, batch_id: str, **kwargs: Any) -> int:
    """The same ``stage`` call with delta-rs writing the commit (the writer before files of our own)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(delta_files, "replaced_files", lambda *_: None)
        return stage(table, rows, batch(batch_id), mode="replace", key=["id"], **kwargs)


def stage_own(table: Path, rows: pl.DataFrame | RowStream, batch_id: str, **kwargs: Any) -> int:
    return stage(table, rows, batch(batch_id), mode="replace", key=["id"], **kwargs)


def log(table: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for commit in sorted((table / "_delta_log").glob("*.json"))
        for line in commit.read_text().splitlines()
    ]


def file_stats(table: Path) -> list[dict[str, Any]]:
    """The statistics of the files the current version holds, in the order they were added."""
    actions = log(table)
    removed = {a["remove"]["path"] for a in actions if "remove" in a}
    live = [a["add"] for a in actions if "add" in a and a["add"]["path"] not in removed]
    return [json.loads(add["stats"]) for add in live]


def canonical(stats: list[dict[str, Any]]) -> str:
    """Statistics as text in one key order (delta-rs' order is a hash map's); -0.0 stays apart from 0.0."""
    return json.dumps(stats, sort_keys=True)


def commit_metadata(table: Path) -> list[dict[str, str]]:
    return [
        {k: v for k, v in a["commitInfo"].items() if k.startswith("assay.")}
        for a in log(table)
        if "commitInfo" in a
    ]


def file_schemas(table: Path) -> set[pa.Schema]:
    """The Arrow schemas of the table's live Parquet files."""
    return {pq.read_schema(path) for path in DeltaTable(str(table)).file_uris()}


def assert_same_table(own: Path, delta_rs: Path, *, ordered: bool = True) -> None:
    """What a reader sees is the same: rows, exact types, Delta schema, configuration, statistics, metadata."""
    mine, theirs = DeltaTable(str(own)), DeltaTable(str(delta_rs))
    assert mine.version() == theirs.version()
    assert mine.schema().to_json() == theirs.schema().to_json()
    assert mine.metadata().configuration == theirs.metadata().configuration
    assert mine.protocol() == theirs.protocol()
    assert file_schemas(own) == file_schemas(delta_rs)  # exact Arrow types in the files
    rows, expected = pl.read_delta(str(own)), pl.read_delta(str(delta_rs))  # as agents read it
    assert rows.schema == expected.schema
    if not ordered:  # delta-rs keeps neither a stream's order nor, replacing, the table's
        rows, expected = rows.sort(pl.all()), expected.sort(pl.all())
    assert_frame_equal(rows, expected)
    assert commit_metadata(own) == commit_metadata(delta_rs)


# -- the statistics, property-based -------------------------------------------------------------------

TEXT = st.text(
    alphabet=st.sampled_from(
        ["a", "b", "z", "~", "\x7f", "é", "ß", "€", "\uffff", "\U0001f600", "\U0010ffff"]
    ),
    max_size=120,
)
MICROS = st.integers(-(10**16), 10**16) | st.sampled_from([-1, 0, 1, 999, 1000, 1001, -1500, 86_400_000_000])


def column(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.none() | values, min_size=1, max_size=6)


@st.composite
def frames(draw: st.DrawFn) -> pl.DataFrame:
    """Rows of every type the validator hands to publishing, edge values included, nulls anywhere."""
    n = draw(st.integers(1, 6))

    def values(strategy: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(st.none() | strategy, min_size=n, max_size=n))

    scale = draw(st.integers(0, 6))
    precision = draw(st.integers(max(scale, 1), 18))
    bound = 10 ** (precision - scale) - Decimal(1).scaleb(-scale)
    decimals = st.decimals(min_value=-bound, max_value=bound, places=scale, allow_nan=False)
    return pl.DataFrame(
        {
            "id": pl.Series(range(n), dtype=pl.Int64),
            "text": pl.Series(values(TEXT), dtype=pl.String),
            "flag": pl.Series(values(st.booleans()), dtype=pl.Boolean),
            "count": pl.Series(values(st.integers(-(2**63), 2**63 - 1)), dtype=pl.Int64),
            "ratio": pl.Series(values(st.floats(allow_nan=True, allow_infinity=True)), dtype=pl.Float64),
            "day": pl.Series(values(st.integers(-800_000, 3_000_000)), dtype=pl.Int32).cast(pl.Date),
            "at": pl.Series(values(MICROS), dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
            "amount": pl.Series(values(decimals), dtype=pl.Decimal(precision, scale)),
            "secret": pl.Series(values(TEXT), dtype=pl.String),
        }
    )


STATS = ["id", "text", "flag", "count", "ratio", "day", "at", "amount"]  # never "secret"


class TemporaryTables:
    """Two fresh table paths per hypothesis example (pytest's tmp_path is one per test)."""

    def __enter__(self) -> tuple[Path, Path]:
        import tempfile

        self._dir = tempfile.TemporaryDirectory()
        root = Path(self._dir.name)
        return root / "own", root / "delta-rs"

    def __exit__(self, *_: object) -> None:
        self._dir.cleanup()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=frames(), size=st.none() | st.integers(1, 6))
def test_own_files_hold_the_rows_and_statistics_delta_rs_writes(rows: pl.DataFrame, size: int | None) -> None:
    """The whole frame, or a stream of chunks of ``size`` rows (statistics gathered over the chunks)."""

    def given_rows() -> pl.DataFrame | RowStream:
        return rows if size is None else chunks(rows, size)

    with TemporaryTables() as (own, delta_rs):
        assert stage_own(own, given_rows(), "B1", stats_columns=STATS) == 0
        assert stage_with_delta_rs(delta_rs, given_rows(), "B1", stats_columns=STATS) == 0
        assert_same_table(own, delta_rs, ordered=size is None)  # delta-rs reorders a stream's chunks
        assert canonical(file_stats(own)) == canonical(file_stats(delta_rs))
        (stats,) = file_stats(own)
        allowed = {*STATS, BATCH_COLUMN}
        assert set(stats["nullCount"]) == allowed, "the allowed columns, and only them"
        assert set(stats["minValues"]) | set(stats["maxValues"]) <= allowed


# -- commits ------------------------------------------------------------------------------------------


def orders(ids: range, *, status: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": pl.Series(list(ids), dtype=pl.Int64),
            "status": [status] * len(ids),
            "at": pl.Series([datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=i) for i in ids]),
            "amount": pl.Series([Decimal(i).scaleb(-2) for i in ids], dtype=pl.Decimal(12, 2)),
        }
    )


def chunks(frame: pl.DataFrame, size: int) -> RowStream:
    return RowStream(frame.schema, (frame.slice(i, size) for i in range(0, frame.height, size)))


def test_resent_batch_removes_its_predecessor_files_in_the_one_commit(tmp_path: Path) -> None:
    own, delta_rs = tmp_path / "own", tmp_path / "delta-rs"
    for table, write in ((own, stage_own), (delta_rs, stage_with_delta_rs)):
        write(table, chunks(orders(range(0, 30), status="OPEN"), 7), "NOV01", stats_columns=["id", "status"])
        write(table, chunks(orders(range(30, 50), status="OPEN"), 7), "NOV02", stats_columns=["id", "status"])
        resent = chunks(orders(range(0, 25), status="SHIPPED"), 7)
        assert write(table, resent, "NOV01", stats_columns=["id", "status"]) == 2
        assert resent.rows == 25
    assert_same_table(own, delta_rs, ordered=False)
    rows = pl.read_delta(str(own))
    assert rows["id"].sort().to_list() == [*range(0, 25), *range(30, 50)]
    assert rows.filter(pl.col(BATCH_COLUMN) == "NOV01")["status"].unique().to_list() == ["SHIPPED"]
    # The predecessor's files went in the very commit that added their replacement.
    assert commit_actions(own, 2, "remove") == commit_actions(own, 0, "add")
    assert len(commit_actions(own, 2, "add")) == 1


def commit_actions(table: Path, version: int, kind: str) -> list[str]:
    commit = (table / "_delta_log" / f"{version:020d}.json").read_text().splitlines()
    return [action[kind]["path"] for action in map(json.loads, commit) if kind in action]


def test_a_table_delta_rs_wrote_is_replaced_with_own_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables written before files of our own (every file one batch's) take them from the next replace on."""
    own, delta_rs = tmp_path / "own", tmp_path / "delta-rs"
    for table in (own, delta_rs):
        stage_with_delta_rs(table, orders(range(0, 30), status="OPEN"), "NOV01", stats_columns=["status"])
        stage_with_delta_rs(table, orders(range(30, 40), status="OPEN"), "NOV02", stats_columns=["status"])
    commits: list[int] = []
    real = delta_files.commit_files

    def commit_files(*args: Any) -> int:
        commits.append(real(*args))
        return commits[-1]

    monkeypatch.setattr(delta_files, "commit_files", commit_files)
    resent = orders(range(0, 20), status="SHIPPED")
    assert stage_own(own, resent, "NOV01", stats_columns=["status"]) == 2
    assert commits == [2], "the replace wrote files of its own"
    stage_with_delta_rs(delta_rs, resent, "NOV01", stats_columns=["status"])
    assert_same_table(own, delta_rs, ordered=False)
    assert commit_actions(own, 2, "remove") == commit_actions(own, 0, "add")


def test_a_stream_larger_than_a_file_is_split_into_files_of_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = orders(range(0, 1000), status="OPEN")
    monkeypatch.setattr(delta_files, "FILE_BYTES", rows.estimated_size() // 4)
    stream = chunks(rows, 100)
    assert stage_own(tmp_path / "own", stream, "B1", stats_columns=["id"]) == 0
    assert stream.rows == 1000
    stats = file_stats(tmp_path / "own")
    assert len(stats) >= 4
    assert sum(s["numRecords"] for s in stats) == 1000
    low = 0
    for s in stats:  # in stream order, each file's bounds are its own rows'
        assert s["minValues"]["id"] == low
        low = s["maxValues"]["id"] + 1
    assert_frame_equal(
        pl.read_delta(str(tmp_path / "own")), rows.with_columns(pl.lit("B1").alias(BATCH_COLUMN))
    )


def test_a_file_mixing_batches_is_replaced_by_delta_rs(tmp_path: Path) -> None:
    """An upsert's merge can leave a file with two batches' rows: only delta-rs' rewrite keeps the other's."""
    table = tmp_path / "mixed"
    mixed = orders(range(0, 10), status="OPEN").with_columns(
        pl.when(pl.col("id") < 5).then(pl.lit("A")).otherwise(pl.lit("B")).alias(BATCH_COLUMN)
    )
    write_deltalake(str(table), mixed.to_arrow(), configuration={STATS_PROPERTY: f"id,{BATCH_COLUMN}"})
    assert stage_own(table, orders(range(100, 103), status="NEW"), "A", stats_columns=["id"]) == 1
    commit = [a for a in log(table) if "commitInfo" in a][-1]["commitInfo"]
    assert commit["operationParameters"]["predicate"] == f"{BATCH_COLUMN} = 'A'"
    rows = pl.read_delta(str(table)).sort("id")
    assert rows["id"].to_list() == [5, 6, 7, 8, 9, 100, 101, 102]


def test_an_empty_batch_still_replaces_its_predecessor_in_one_version(tmp_path: Path) -> None:
    own, delta_rs = tmp_path / "own", tmp_path / "delta-rs"
    for table, write in ((own, stage_own), (delta_rs, stage_with_delta_rs)):
        write(table, orders(range(0, 5), status="OPEN"), "B1")
        write(table, orders(range(5, 8), status="OPEN"), "B2")
        assert write(table, RowStream(orders(range(0), status="").schema, iter([])), "B1") == 2
    assert_same_table(own, delta_rs, ordered=False)
    assert pl.read_delta(str(own))["id"].sort().to_list() == [5, 6, 7]


def failing(frame: pl.DataFrame) -> Iterator[pl.DataFrame]:
    yield frame.slice(0, 3)
    raise ValueError("chunk 2 could not be validated")


def test_a_failing_stream_commits_nothing_and_leaves_no_file(tmp_path: Path) -> None:
    table = tmp_path / "own"
    stage_own(table, orders(range(0, 5), status="OPEN"), "B1")
    before = sorted(p.name for p in table.glob("*.parquet"))
    rows = orders(range(5, 10), status="OPEN")
    with pytest.raises(ValueError, match="chunk 2"):
        stage_own(table, RowStream(rows.schema, failing(rows)), "B2")
    assert DeltaTable(str(table)).version() == 0
    assert sorted(p.name for p in table.glob("*.parquet")) == before


@pytest.mark.parametrize(
    "change",
    [pl.col("amount").cast(pl.Float64), pl.col("id").cast(pl.String), pl.lit(1).alias("extra")],
    ids=["decimal-as-float", "int-as-text", "extra-column"],
)
def test_rows_of_another_schema_meet_delta_rs_as_before(tmp_path: Path, change: pl.Expr) -> None:
    """Rows whose schema is not the table's go to delta-rs, which casts or refuses them as it did."""
    own, delta_rs = tmp_path / "own", tmp_path / "delta-rs"
    outcomes: list[int | str] = []
    for table, write in ((own, stage_own), (delta_rs, stage_with_delta_rs)):
        write(table, orders(range(0, 5), status="OPEN"), "B1")
        try:
            outcomes.append(write(table, orders(range(5, 8), status="OPEN").with_columns(change), "B2"))
        except Exception as error:
            outcomes.append(type(error).__name__)
    assert outcomes[0] == outcomes[1]
    assert_same_table(own, delta_rs, ordered=False)


def test_a_staged_commit_of_own_files_is_withdrawn_and_read_like_any_other(tmp_path: Path) -> None:
    table = tmp_path / "own"
    certified = stage_own(table, orders(range(0, 5), status="OPEN"), "B1", stats_columns=["status"])
    visible = pl.read_delta(str(table), version=certified)
    staged = stage_own(
        table, chunks(orders(range(0, 9), status="SHIPPED"), 4), "B1", stats_columns=["status"]
    )
    assert staged == certified + 1
    shipped = (
        pl.scan_delta(str(table)).filter(pl.col("status") == "SHIPPED").select(pl.len()).collect().item()
    )
    assert shipped == 9, "a filter on a statistics column skips no file it should read"
    withdraw(table, publish.Staged(version=staged, certified=certified, rows=9))
    assert_frame_equal(pl.read_delta(str(table)), visible)
    assert reconcile_orphans(table, None) is not None
    assert pl.read_delta(str(table)).height == 0


def test_dates_and_times_of_any_year_keep_their_statistics(tmp_path: Path) -> None:
    rows = pl.DataFrame(
        {
            "id": [1, 2],
            "day": [date(1, 1, 1), date(9999, 12, 31)],
            "at": pl.Series(
                [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
            ),
        }
    )
    stage_own(tmp_path / "own", rows, "B1", stats_columns=["day", "at"])
    stage_with_delta_rs(tmp_path / "delta-rs", rows, "B1", stats_columns=["day", "at"])
    assert canonical(file_stats(tmp_path / "own")) == canonical(file_stats(tmp_path / "delta-rs"))
    (stats,) = file_stats(tmp_path / "own")
    assert stats["maxValues"]["at"] == "9999-12-31T23:59:59.999Z"
