"""Landing retention as a daily Dagster job: removes expired raw deliveries and reports each one."""

import dagster as dg

from pipelines.resources import AssayResource
from pipelines.retention import expired_landings, remove
from pipelines.settings import contracts_dir
from schemas import load_contracts


@dg.op(description="Remove landed deliveries past their contract's retention whose batch is settled.")
def prune_landing(context: dg.OpExecutionContext, assay: AssayResource) -> dg.Output[int]:
    store, catalog = assay.store(), assay.catalog()
    removed = []
    for contract in load_contracts(assay.contracts_dir or contracts_dir()):
        for item in expired_landings(store, catalog, contract):
            remove(store, item)
            context.log.info(
                f"removed {item.dataset} batch {item.batch}: {', '.join(item.files)} "
                f"({item.bytes} bytes, landed {item.landed_at.isoformat()})"
            )
            removed.append(
                {
                    "dataset": item.dataset,
                    "batch": item.batch,
                    "checksum": item.checksum,
                    "files": list(item.files),
                    "bytes": item.bytes,
                }
            )
    return dg.Output(
        len(removed), metadata={"removed": dg.MetadataValue.json(removed), "count": len(removed)}
    )


@dg.job(description="Daily landing retention (contracts' landing.retentionDays).")
def landing_retention() -> None:
    prune_landing()


@dg.definitions
def retention() -> dg.Definitions:
    schedule = dg.ScheduleDefinition(
        job=landing_retention, cron_schedule="30 3 * * *", default_status=dg.DefaultScheduleStatus.RUNNING
    )
    return dg.Definitions(jobs=[landing_retention], schedules=[schedule])
