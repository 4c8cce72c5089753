"""Running datasets through Dagster in-process, against the instance in ``DAGSTER_HOME``.

The CLI's ``assay run`` and ``make demo`` use this, so every run they make shows in ``make ui``.
Each file delivery is one dynamic partition of its dataset; a delivery whose content was already
ingested is reported as skipped without starting a run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from governance.catalog import Catalog
from pipelines.batch import drop_folder, source_files
from pipelines.factory import dataset_definitions, job_name, partitions_name, published_key
from pipelines.resources import AssayResource
from schemas import Contract
from schemas.contract import FileSource

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
Progress = Callable[[dict[str, Any]], None]


def dagster_instance(home: Path) -> dg.DagsterInstance:
    """The instance in ``DAGSTER_HOME``; without one, a private instance under ``ASSAY_HOME/dagster``."""
    if not os.environ.get("DAGSTER_HOME"):
        folder = home / "dagster"
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "dagster.yaml").exists():
            (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = str(folder)
    return dg.DagsterInstance.get()


def run_datasets(
    contracts: list[Contract],
    resource: AssayResource,
    *,
    progress: Progress | None = None,
    instance: dg.DagsterInstance | None = None,
) -> list[dict[str, Any]]:
    """Ingest every waiting delivery of each contract; return one summary per batch."""
    store = resource.store()
    catalog = Catalog(store.engine())
    instance = instance or dagster_instance(store.home)
    defs = dg.Definitions.merge(
        dg.Definitions(resources={"assay": resource}), *[dataset_definitions(c) for c in contracts]
    )
    close_dead_runs(instance)
    results: list[dict[str, Any]] = []

    def report(summary: dict[str, Any]) -> None:
        results.append(summary)
        if progress:
            progress(summary)

    for contract in contracts:
        catalog.register_dataset(
            contract.id,
            contract_version=contract.version,
            contract_checksum=contract.checksum,
            business_owner=contract.business_owner,
            operations_owner=contract.operations_owner,
        )
        job = defs.resolve_job_def(job_name(contract))
        if not isinstance(contract.source, FileSource):
            report(_execute(job, instance, contract, None))
            continue
        folder = drop_folder(store, contract)
        assert folder is not None
        for path in source_files(store, contract):
            checksum = folder.checksum(path)
            previous = catalog.batch_by_checksum(contract.id, checksum)
            if previous is not None and previous.outcome in ("certified", "replaced", "rejected"):
                report(
                    {
                        "dataset": contract.id,
                        "batch": previous.batch_id,
                        "source": path.name,
                        "rows_read": previous.rows_read or 0,
                        "rows_published": 0,
                        "rows_quarantined": 0,
                        "outcome": "skipped",
                        "reasons": [
                            {
                                "check": "exactly_once",
                                "message": f"{path.name}: already ingested as batch "
                                f"{previous.batch_id} ({previous.outcome}); nothing to do.",
                            }
                        ],
                    }
                )
                continue
            if not instance.has_dynamic_partition(partitions_name(contract), path.name):
                instance.add_dynamic_partitions(partitions_name(contract), [path.name])
            report(_execute(job, instance, contract, path.name))
    return results


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs this CLI started whose process died (a crash or a kill) and that still show
    as started: in-process runs have no run monitor to notice. Returns their run ids."""
    closed = []
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={"assay/launcher": "cli"})
    )
    for run in runs:
        pid = int(run.tags.get("assay/pid", "0") or 0)
        if pid and not _alive(pid):
            instance.report_run_failed(
                run,
                message=f"the process running it (pid {pid}) died; `assay run` "
                "finishes the interrupted batch on its next run",
            )
            closed.append(run.run_id)
    return closed


def _execute(
    job: dg.JobDefinition, instance: dg.DagsterInstance, contract: Contract, partition: str | None
) -> dict[str, Any]:
    result = job.execute_in_process(
        instance=instance,
        partition_key=partition,
        raise_on_error=False,
        run_config=QUIET,
        tags={"assay/dataset": contract.id, "assay/launcher": "cli", "assay/pid": str(os.getpid())},
    )
    for event in result.all_events:
        if event.is_step_materialization:
            mat = event.event_specific_data.materialization  # type: ignore[union-attr]
            if mat.asset_key == published_key(contract) and "summary" in mat.metadata:
                return dict(mat.metadata["summary"].value)  # type: ignore[arg-type]
    for event in result.all_events:
        if event.is_step_failure:
            failure = event.step_failure_data
            user = failure.user_failure_data
            if user is not None and "outcome" in user.metadata:
                return dict(user.metadata["outcome"].value)  # type: ignore[arg-type]
            error = failure.error
            while error is not None and error.cause is not None:
                error = error.cause  # the user-facing cause, not Dagster's wrapper
            message = error.message.strip().splitlines()[-1] if error else "step failed"
            return {
                "dataset": contract.id,
                "batch": partition or "-",
                "source": partition or "-",
                "rows_read": 0,
                "rows_published": 0,
                "rows_quarantined": 0,
                "outcome": "error",
                "reasons": [
                    {"check": "run", "message": f"{event.step_key}: {message} (run {result.run_id})"}
                ],
            }
    raise RuntimeError(f"run {result.run_id} of {contract.id} ended without an outcome")
