"""The arrival sensor: files become partitions once complete, each content runs once, duplicates are refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from pipelines.demo import seed
from pipelines.factory import dataset_definitions, job_name
from pipelines.resources import AssayResource
from schemas import load_contract

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(assay_env: Path, tmp_path: Path) -> dict[str, Any]:
    seed(assay_env)
    demo_drop = assay_env / "demo" / "erp" / "drop"
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.move(str(demo_drop), str(incoming / "all"))
    demo_drop.mkdir()
    contract = load_contract(REPO / "schemas" / "contracts" / "erp.orders.yaml")
    resource = AssayResource(home=str(assay_env))
    defs = dg.Definitions.merge(dg.Definitions(resources={"assay": resource}), dataset_definitions(contract))
    return {
        "drop": demo_drop,
        "incoming": incoming / "all",
        "defs": defs,
        "resource": resource,
        "instance": dg.DagsterInstance.ephemeral(),
    }


def _tick(world: dict[str, Any], cursor: str | None) -> dg.SensorResult:
    sensor = world["defs"].resolve_sensor_def("erp__orders__arrivals")
    context = dg.build_sensor_context(
        instance=world["instance"], cursor=cursor, resources={"assay": world["resource"]}
    )
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    if result.dynamic_partitions_requests:
        for request in result.dynamic_partitions_requests:
            world["instance"].add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
    return result


def test_a_file_still_being_written_waits_until_it_is_stable(world: dict[str, Any]) -> None:
    target = world["drop"] / "orders_20261101.csv"
    data = (world["incoming"] / "orders_20261101.csv").read_bytes()
    target.write_bytes(data[: len(data) // 2])
    first = _tick(world, None)
    assert first.run_requests == []
    with target.open("ab") as fh:
        fh.write(data[len(data) // 2 :])
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 1_000_000))
    second = _tick(world, first.cursor)
    assert second.run_requests == []  # it changed since the last tick
    third = _tick(world, second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["orders_20261101.csv"]
    assert world["instance"].has_dynamic_partition("erp__orders__deliveries", "orders_20261101.csv")
    fourth = _tick(world, third.cursor)
    assert fourth.run_requests == []  # requested once


def test_renamed_duplicate_is_refused_and_runs_go_one_per_file(world: dict[str, Any]) -> None:
    for name in ("orders_20261101.csv", "orders_20261102.csv"):
        shutil.copy(world["incoming"] / name, world["drop"] / name)
    shutil.copy(world["incoming"] / "orders_20261101.csv", world["drop"] / "orders_20261101_copy.csv")
    first = _tick(world, None)
    second = _tick(world, first.cursor)
    keys = sorted(r.partition_key for r in second.run_requests)
    assert keys == ["orders_20261101.csv", "orders_20261102.csv"]
    job = world["defs"].resolve_job_def(job_name(load_contract(REPO / "schemas/contracts/erp.orders.yaml")))
    for request in second.run_requests:
        result = job.execute_in_process(instance=world["instance"], partition_key=request.partition_key)
        assert result.success
    third = _tick(world, second.cursor)
    assert third.run_requests == []  # the renamed copy's content is already ingested
