"""A backfill of several deliveries, launched the way a data engineer does it: through the Dagster webserver.

The test starts the real ``dagster-webserver`` and ``dagster-daemon`` on the project's code location, stops
the arrival sensor (so only the backfill launches runs), launches a backfill of all four demo ERP deliveries
over the GraphQL API the UI uses, and lets the backfill daemon submit one run per delivery to real run
workers. Each delivery then ends as the demo's ``expected.json`` says: three certified (one with its faulty
rows quarantined), the unreconciled one rejected whole, its run failed with the file and line named.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from governance.catalog import Catalog
from governance.store import Store
from pipelines.demo import seed

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PARTITIONS = "erp__orders__deliveries"
ASSETS = [["erp", "orders", "landing"], ["erp", "orders", "published"]]
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Dagster:
    """A webserver (and later a daemon) on the project's code location, talked to over GraphQL."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.port = _free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.procs.append(
            subprocess.Popen(
                [str(BIN / name), *args, "-m", "pipelines.definitions"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        assert "errors" not in payload, payload["errors"]
        return dict(payload["data"])

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            self.assert_alive()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/server_info", timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"dagster-webserver did not start in {TIMEOUT_S} s; see {self.logs}")

    def assert_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs.glob("*.log"))
                pytest.fail(f"{proc.args[0]} exited with {proc.returncode}:\n{logs}")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def dagster(assay_env: Path, tmp_path: Path) -> Iterator[_Dagster]:
    seed(assay_env)
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
    drop = assay_env / "demo" / "erp" / "drop"
    with dg.DagsterInstance.get() as instance:  # what the sensor would have registered
        instance.add_dynamic_partitions(PARTITIONS, sorted(p.name for p in drop.iterdir()))
    logs = tmp_path / "logs"
    logs.mkdir()
    server = _Dagster({**os.environ, "DAGSTER_HOME": str(dagster_home)}, logs)
    try:
        server.start("dagster-webserver", "-h", "127.0.0.1", "-p", str(server.port))
        server.wait_until_serving()
        yield server
    finally:
        server.stop()


def _stop_arrival_sensor(server: _Dagster) -> None:
    data = server.graphql(
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors { id name } } } } }"
    )
    sensors = [s for repo in data["repositoriesOrError"]["nodes"] for s in repo["sensors"]]
    arrival = next(s for s in sensors if s["name"] == "erp__orders__arrivals")
    stopped = server.graphql(
        "mutation($id: String!) { stopSensor(id: $id) { __typename "
        "... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }",
        {"id": arrival["id"]},
    )["stopSensor"]
    assert stopped.get("instigationState", {}).get("status") == "STOPPED", stopped


def _launch_backfill(server: _Dagster, partitions: list[str]) -> str:
    launched = server.graphql(
        "mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) { "
        "__typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } "
        "... on PartitionSetNotFoundError { message } ... on InvalidStepError { invalidStepKey } } }",
        {"params": {"partitionNames": partitions, "assetSelection": [{"path": p} for p in ASSETS]}},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return str(launched["backfillId"])


def _backfill_runs(server: _Dagster, backfill_id: str, expected: int) -> list[dict[str, Any]]:
    query = (
        'query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) { '
        "... on Runs { results { runId status tags { key value } } } } }"
    )
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        server.assert_alive()
        runs = server.graphql(query, {"id": backfill_id})["runsOrError"]["results"]
        if len(runs) == expected and all(r["status"] in TERMINAL for r in runs):
            return list(runs)
        time.sleep(2)
    pytest.fail(f"backfill {backfill_id}: runs not finished in {TIMEOUT_S} s: {runs}")


def _failure_messages(server: _Dagster, run_id: str) -> str:
    data = server.graphql(
        "query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { "
        "__typename ... on ExecutionStepFailureEvent { error { message } } } } } }",
        {"id": run_id},
    )
    events = data["logsForRun"]["events"]
    return "\n".join(e["error"]["message"] for e in events if e["__typename"] == "ExecutionStepFailureEvent")


def test_a_backfill_of_four_deliveries_runs_each_once_with_the_expected_outcome(
    dagster: _Dagster, assay_env: Path
) -> None:
    expected = json.loads((assay_env / "demo" / "expected.json").read_text())["erp.orders"]
    files = sorted(expected["files"])
    rejected = {r["file"] for r in expected["rejected"]}
    quarantined = {name: sum(f["file"] == name for f in expected["faults"]) for name in files}
    assert len(files) == 4 and len(rejected) == 1, "the demo seeds four nightly deliveries, one unreconciled"

    _stop_arrival_sensor(dagster)
    backfill_id = _launch_backfill(dagster, files)
    dagster.start("dagster-daemon", "run")  # the backfill daemon submits the runs
    runs = _backfill_runs(dagster, backfill_id, expected=len(files))

    by_partition = {next(t["value"] for t in r["tags"] if t["key"] == "dagster/partition"): r for r in runs}
    assert sorted(by_partition) == files, "one run per delivery, no more"
    for name in files:
        run = by_partition[name]
        if name in rejected:
            assert run["status"] == "FAILURE", (name, run)
            message = _failure_messages(dagster, run["runId"])
            assert name in message and "line" in message and "Fix:" in message, message
        else:
            assert run["status"] == "SUCCESS", (name, run)

    catalog = Catalog(Store.from_env().engine())
    recorded = {b.source_file: b for b in catalog.batches("erp.orders")}
    assert sorted(recorded) == files, "each delivery is one batch in the catalog"
    for name in files:
        got = recorded[name]
        assert got.rows_read == expected["files"][name]["detail_records"], name
        if name in rejected:
            assert got.outcome == "rejected", (name, got.outcome)
        else:
            assert got.outcome == "certified", (name, got.outcome)
            assert (got.rows_published, got.rows_quarantined) == (
                got.rows_read - quarantined[name],
                quarantined[name],
            ), name
