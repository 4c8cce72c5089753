"""Kill ``assay run`` at every stage of a batch, rerun it, and end exactly where an uninterrupted run ends.

``ASSAY_FAULT=<stage>`` makes the run SIGKILL itself when the first batch reaches that stage. While it
lies dead, what the catalog certifies (all an agent can read) must not hold any row of the interrupted
batch unless that batch was certified whole; after a plain rerun the certified table, the batch
outcomes and the quarantine must equal those of a run that was never interrupted.

Each case starts from copies of one seeded demo (only erp.orders is run, to keep this affordable):
mostly from a state where 1 November is already certified, so the crash hits 2 November (the batch
with quarantined rows) on top of a certified version; twice from nothing, where the crash leaves an
uncertified first commit behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from governance.catalog import Catalog
from governance.quarantine import read_quarantine
from governance.store import Store
from pipelines.batch import FAULT_STAGES
from pipelines.demo import seed

pytestmark = pytest.mark.slow

DATASET = "erp.orders"
FIRST = "orders_20261101.csv"
INTERRUPTED_BATCH = "ORD20261102"  # the batch a crash hits when 1 November is already certified
EXIT_REJECTED = 4  # 3 November never reconciles, so a complete run of erp.orders exits 4
KILLED = -signal.SIGKILL


@dataclass(frozen=True)
class State:
    """Everything a user (or an agent) can observe of erp.orders after a run."""

    certified_version: int | None
    rows: pl.DataFrame  # the Delta table at the certified version, sorted by order_id
    status: str
    row_count: int
    quarantined: int
    latest_business_date: date | None
    batches: dict[str, tuple[str, str, int | None, int | None, int | None]]
    batch_records: int
    quarantine_rows: dict[str, int]


def observe(home: Path) -> State:
    catalog = Catalog(Store(home=home, catalog_url=f"sqlite:///{home / 'catalog.db'}").engine())
    state = catalog.dataset(DATASET)
    assert state is not None
    table = home / "warehouse" / DATASET
    rows = (
        pl.read_delta(str(table), version=state.certified_version).sort("order_id")
        if state.certified_version is not None
        else pl.DataFrame()
    )
    records = catalog.batches(DATASET)
    quarantine = read_quarantine(home / "quarantine" / DATASET)
    return State(
        certified_version=state.certified_version,
        rows=rows,
        status=state.status,
        row_count=state.rows,
        quarantined=state.quarantined,
        latest_business_date=state.latest_business_date,
        batches={
            b.source_file or "": (b.batch_id, b.outcome, b.rows_read, b.rows_published, b.rows_quarantined)
            for b in records
        },
        batch_records=len(records),
        quarantine_rows=dict(quarantine.group_by("_source_file").len().iter_rows())
        if quarantine.height
        else {},
    )


def assay_run(root: Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_") and k != "DAGSTER_HOME"}
    dagster_home = root / "dagster"
    if not dagster_home.exists():
        dagster_home.mkdir(parents=True)
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env.update(ASSAY_HOME=str(root / "assay"), DAGSTER_HOME=str(dagster_home))
    if fault:
        env["ASSAY_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", DATASET, "--json"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_no_run_left_started(dagster_home: Path) -> None:
    """The killed run is closed as failed by the rerun; none stays 'started' in the Dagster UI."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        runs = instance.get_runs()
        assert runs, "the runs must be recorded in DAGSTER_HOME"
        assert not [r.run_id for r in runs if r.status == dg.DagsterRunStatus.STARTED]
    finally:
        instance.dispose()


def install(demo: Path, root: Path, files: list[str] | None = None) -> Path:
    """A fresh ASSAY_HOME under ``root`` holding a copy of the seeded ERP drop (or some of its files)."""
    drop = root / "assay" / "demo" / "erp" / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(demo / "expected.json", root / "assay" / "demo" / "expected.json")
    for path in sorted((demo / "erp" / "drop").iterdir()):
        if files is None or path.name in files:
            shutil.copyfile(path, drop / path.name)
    return root / "assay"


def check_same(got: State, want: State) -> None:
    assert_frame_equal(got.rows, want.rows)
    assert got.rows["order_id"].is_unique().all(), "duplicated rows in the certified table"
    assert got.batches == want.batches
    assert got.batch_records == want.batch_records, "a batch was recorded twice"
    assert (got.status, got.row_count, got.quarantined, got.latest_business_date) == (
        want.status,
        want.row_count,
        want.quarantined,
        want.latest_business_date,
    )
    assert got.quarantine_rows == want.quarantine_rows


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("seeded")
    seed(home)
    return home / "demo"


@pytest.fixture(scope="module")
def baseline(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> State:
    """erp.orders after one run that nobody interrupted."""
    root = tmp_path_factory.mktemp("baseline")
    home = install(demo, root)
    done = assay_run(root)
    assert done.returncode == EXIT_REJECTED, done.stderr
    state = observe(home)
    assert [v[1] for _, v in sorted(state.batches.items())] == [
        "certified",
        "certified",
        "rejected",
        "certified",
    ]
    assert state.rows.height == state.row_count == 300 + 293 + 310
    return state


@pytest.fixture(scope="module")
def first_certified(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ASSAY_HOME in which only 1 November has been delivered, and certified."""
    root = tmp_path_factory.mktemp("first")
    home = install(demo, root, [FIRST])
    done = assay_run(root)
    assert done.returncode == 0, done.stderr
    assert observe(home).batches[FIRST][1] == "certified"
    return home


@pytest.mark.parametrize("stage", FAULT_STAGES)
def test_crash_on_top_of_a_certified_version_then_rerun(
    stage: str, demo: Path, first_certified: Path, baseline: State, tmp_path: Path
) -> None:
    home = tmp_path / "assay"
    shutil.copytree(first_certified, home)
    install(demo, tmp_path)  # the other three nights arrive
    before = observe(home)

    crashed = assay_run(tmp_path, fault=stage)
    assert crashed.returncode == KILLED, (crashed.returncode, crashed.stderr[-2000:])

    during = observe(home)
    interrupted = [f for f, b in during.batches.items() if b[0] == INTERRUPTED_BATCH]
    if stage == "landed":
        assert not interrupted, "a batch killed before it started must leave no record"
    else:
        assert len(interrupted) == 1
    if stage == "certified":
        # Killed just after the certifying transaction: the batch is certified whole, never in part.
        whole = baseline.rows.filter(pl.col("_batch_id").is_in(["ORD20261101", INTERRUPTED_BATCH]))
        assert_frame_equal(during.rows, whole)
        assert during.row_count == whole.height
        assert during.batches[interrupted[0]][1] == "certified"
    else:
        assert during.certified_version == before.certified_version
        assert_frame_equal(during.rows, before.rows)
        assert INTERRUPTED_BATCH not in during.rows["_batch_id"].to_list()
        assert (during.row_count, during.quarantined) == (before.row_count, before.quarantined)
        if interrupted:
            assert during.batches[interrupted[0]][1] not in ("certified", "rejected")

    rerun = assay_run(tmp_path)
    assert rerun.returncode == EXIT_REJECTED, rerun.stderr[-2000:]
    check_same(observe(home), baseline)
    assert_no_run_left_started(tmp_path / "dagster")


@pytest.mark.parametrize("stage", ["staged", "audited"])
def test_crash_before_anything_was_certified_then_rerun(
    stage: str, demo: Path, baseline: State, tmp_path: Path
) -> None:
    """The first commit of a new table is left uncertified: nothing is visible, and the rerun discards it."""
    home = install(demo, tmp_path)

    crashed = assay_run(tmp_path, fault=stage)
    assert crashed.returncode == KILLED, (crashed.returncode, crashed.stderr[-2000:])
    during = observe(home)
    assert during.certified_version is None and during.row_count == 0
    assert during.status == "uncertified"
    assert pl.read_delta(str(home / "warehouse" / DATASET)).height > 0, "the orphan commit should exist"

    rerun = assay_run(tmp_path)
    assert rerun.returncode == EXIT_REJECTED, rerun.stderr[-2000:]
    check_same(observe(home), baseline)
