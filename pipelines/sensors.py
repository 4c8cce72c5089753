"""Arriving batch files become dynamic partitions: one sensor per file dataset.

A file is a delivery once it is complete: its size and modification time are unchanged across two
sensor ticks (a writer still appending changes them), or, where the contract names a done-marker
suffix, once ``<file><suffix>`` exists. Each complete file is registered as a partition and one run
is requested for it, keyed by its content checksum so a tick never requests the same content twice.
A file whose content was already ingested (a renamed duplicate) is refused and reported, never run.
"""

import json
from typing import Any

import dagster as dg

from connectors.drop import Delivery, DropFolder
from pipelines.batch import drop_folder, source_files
from pipelines.resources import AssayResource
from schemas import Contract
from schemas.contract import FileSource

DEFAULT_INTERVAL_SECONDS = 30


def _complete(
    folder: DropFolder, delivery: Delivery, seen: dict[str, Any], marker: str | None
) -> tuple[bool, dict[str, Any]]:
    """Whether ``delivery`` is complete now, and what to remember about it for the next tick."""
    now = {"size": delivery.size, "mtime": delivery.mtime_ns}
    if marker:
        return folder.get(delivery.name + marker) is not None, now
    previous = seen.get(delivery.name)
    stable = (
        previous is not None and previous.get("size") == now["size"] and previous.get("mtime") == now["mtime"]
    )
    return stable, now


def arrival_sensor(
    contract: Contract, job: Any, partitions: dg.DynamicPartitionsDefinition
) -> dg.SensorDefinition:
    """The sensor that watches ``contract``'s drop folder."""
    src = contract.source
    assert isinstance(src, FileSource)
    marker = contract.operations.done_marker

    @dg.sensor(
        name=f"{contract.domain}__{contract.name}__arrivals",
        job=job,
        minimum_interval_seconds=DEFAULT_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Registers each complete file in {src.path}/{src.pattern} as a delivery of "
        f"{contract.id} and runs it once.",
    )
    def arrivals(context: dg.SensorEvaluationContext, assay: AssayResource) -> dg.SensorResult:
        store = assay.store()
        catalog = assay.catalog()
        state: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
        sizes: dict[str, Any] = state.get("files", {})
        requested: dict[str, str] = state.get("requested", {})  # checksum -> partition key
        new_keys: list[str] = []
        runs: list[dg.RunRequest] = []
        next_sizes: dict[str, Any] = {}
        folder = drop_folder(store, contract)
        assert folder is not None
        for path in source_files(store, contract):
            done, facts = _complete(folder, path, sizes, marker)
            next_sizes[path.name] = facts
            if not done:
                continue
            checksum = folder.checksum(path)
            previous = catalog.batch_by_checksum(contract.id, checksum)
            if previous is not None:
                if previous.source_file != path.name:
                    context.log.warning(
                        f"{contract.id}: {path.name} has the same content as {previous.source_file} "
                        f"(batch {previous.batch_id}, {previous.outcome}); refused as a duplicate."
                    )
                continue
            if checksum in requested:
                if requested[checksum] != path.name:
                    context.log.warning(
                        f"{contract.id}: {path.name} has the same content as {requested[checksum]}, "
                        "already requested; refused as a duplicate."
                    )
                continue
            requested[checksum] = path.name
            if not context.instance.has_dynamic_partition(partitions.name, path.name):  # type: ignore[arg-type]
                new_keys.append(path.name)
            runs.append(
                dg.RunRequest(
                    partition_key=path.name,
                    run_key=f"{path.name}:{checksum}",
                    tags={"assay/dataset": contract.id, "assay/checksum": checksum},
                )
            )
        requested = {c: name for c, name in requested.items() if name in next_sizes}  # files still waiting
        return dg.SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=[partitions.build_add_request(new_keys)] if new_keys else [],
            cursor=json.dumps({"files": next_sizes, "requested": requested}),
        )

    return arrivals
