"""The asset factory: from one contract, its assets, checks and job.

Keys are ``[<domain>, <name>, landing]`` (the immutable delivery) and ``[<domain>, <name>, published]``
(validated, quarantined, audited and certified). File sources are partitioned by delivery (one dynamic
partition per file); SQL sources are one extraction per run. Every batch check of
:func:`pipelines.batch.batch_checks` is a real Dagster asset check, blocking where the contract says so.
"""

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg

from pipelines.batch import BatchOutcome, Landed, drop_folder, land_file, land_table, process
from pipelines.resources import AssayResource
from pipelines.sensors import arrival_sensor
from schemas import CompiledContract, Contract, compile_contract, dtype_of
from schemas.contract import (
    CLASSIFICATIONS,
    Bai2Source,
    FileSource,
    FixedWidthSource,
    SqlSource,
    classification_rank,
    has_control_records,
)
from schemas.validate import reason_check


def job_name(contract: Contract) -> str:
    return f"{contract.domain}__{contract.name}"


def partitions_name(contract: Contract) -> str:
    return f"{contract.domain}__{contract.name}__deliveries"


def landing_key(contract: Contract) -> dg.AssetKey:
    return dg.AssetKey([contract.domain, contract.name, "landing"])


def published_key(contract: Contract) -> dg.AssetKey:
    return dg.AssetKey([contract.domain, contract.name, "published"])


def column_schema(contract: Contract) -> dg.TableSchema:
    """The contract's columns with their types and classification, for the Dagster UI."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=str(dtype_of(c)),
                description=c.description or None,
                constraints=dg.TableColumnConstraints(
                    nullable=not c.required, unique=c.unique or c.primary_key
                ),
                tags={"classification": c.classification, **({"pii": c.pii} if c.pii else {})},
            )
            for c in contract.columns
        ]
    )


def check_names(contract: Contract) -> list[tuple[str, bool, str]]:
    """(name, blocking, description) of every batch check this contract's published asset reports."""
    checks = [
        ("rows_reconcile", True, "Rows read = rows published + rows quarantined."),
        ("quarantine_ratio", True, f"At most {contract.max_quarantine_ratio:.0%} of a batch quarantined."),
    ]
    if isinstance(contract.source, FileSource):
        checks.append(("records_readable", False, "Records that cannot be split into the declared fields."))
        if has_control_records(contract.source):
            checks.append(("controls_reconcile", True, "Header and trailer control records reconcile."))
    checks.append(
        (
            "staged_audit",
            True,
            "The staged Delta version holds exactly the published rows, with the contract's schema.",
        )
    )
    checks.append(
        (
            "classification_drift",
            True,
            "No declared column holds a kind of personal data its contract does not declare.",
        )
    )
    for rule in contract.rules:
        checks.append(
            (rule.name, rule.severity == "error", rule.description or f"{rule.column}: {reason_check(rule)}")
        )
    return checks


def freshness_policy(contract: Contract) -> dg.FreshnessPolicy | None:
    """Late or missing deliveries: the contract's schedule as a Dagster freshness policy (its time zone)."""
    schedule = contract.operations.schedule
    if schedule is None:
        return None
    return dg.FreshnessPolicy.cron(
        deadline_cron=schedule.expected_by,
        lower_bound_delta=schedule.within,
        timezone=contract.source_timezone,
    )


def _tags(contract: Contract) -> dict[str, str]:
    top = max(
        (c.classification for c in contract.columns), key=classification_rank, default=CLASSIFICATIONS[0]
    )
    tags = {"classification": top, "dataset": contract.id}
    if any(c.pii for c in contract.columns):
        tags["pii"] = "true"
    return tags


def dataset_definitions(contract: Contract) -> dg.Definitions:
    """Assets, checks and the job for one dataset."""
    compiled = compile_contract(contract)
    partitions = (
        dg.DynamicPartitionsDefinition(name=partitions_name(contract))
        if isinstance(contract.source, FileSource)
        else None
    )
    source_kind = (
        "fixedwidth"
        if isinstance(contract.source, FixedWidthSource)
        else "bai2"
        if isinstance(contract.source, Bai2Source)
        else "sql"
        if isinstance(contract.source, SqlSource)
        else "csv"
    )
    common: dict[str, Any] = dict(
        group_name=contract.domain, owners=contract.owners, tags=_tags(contract), partitions_def=partitions
    )

    @dg.asset(
        key=landing_key(contract),
        kinds={source_kind, "python"},
        description=f"{contract.id}: each delivery kept as it arrived (immutable, with its checksum).",
        **common,
    )
    def landing(context: dg.AssetExecutionContext, assay: AssayResource) -> dg.Output[dict[str, str]]:
        return _land(context, assay, contract)

    specs = [
        dg.AssetCheckSpec(name, asset=published_key(contract), blocking=blocking, description=text)
        for name, blocking, text in check_names(contract)
    ]

    @dg.asset(
        key=published_key(contract),
        ins={"landing": dg.AssetIn(key=landing_key(contract))},
        kinds={"polars", "pandera", "deltalake"},
        check_specs=specs,
        description=(contract.description or contract.id) + " Validated row by row, quarantined, audited "
        "and certified as a Delta version agents can read.",
        metadata={
            "dagster/column_schema": column_schema(contract),
            "contract": contract.path.name,
            "contract_version": contract.version,
        },
        freshness_policy=freshness_policy(contract),
        **common,
    )
    def published(
        context: dg.AssetExecutionContext, assay: AssayResource, landing: dict[str, str]
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        yield from _publish(context, assay, compiled, Landed.from_json(landing))

    job = dg.define_asset_job(
        job_name(contract),
        selection=dg.AssetSelection.assets(landing_key(contract), published_key(contract)),
        description=f"Ingest one delivery of {contract.id}.",
    )
    sensors = [arrival_sensor(contract, job, partitions)] if partitions is not None else []
    return dg.Definitions(assets=[landing, published], jobs=[job], sensors=sensors)


def _land(
    context: dg.AssetExecutionContext, assay: AssayResource, contract: Contract
) -> dg.Output[dict[str, str]]:
    store = assay.store()
    src = contract.source
    if isinstance(src, FileSource):
        folder = drop_folder(store, contract)
        delivery = folder.get(context.partition_key) if folder is not None else None
        if delivery is None:
            raise dg.Failure(
                description=f"{contract.id}: delivery {context.partition_key} is not in {src.path}. Fix: put "
                "the file back in the drop folder, or delete the partition if it was registered by mistake."
            )
        landed = land_file(store, contract, delivery)
        meta: dict[str, Any] = {
            "file": landed.source,
            "checksum": landed.checksum,
            "bytes": landed.path.stat().st_size,
        }
    else:
        assert isinstance(src, SqlSource)
        landed, extraction = land_table(store, contract, assay.connection_url(src.connection))
        m = extraction.manifest
        meta = {
            "table": landed.source,
            "checksum": landed.checksum,
            "rows_read": m.rows_read,
            "batch": m.batch_id,
            "undeclared_columns": len(m.undeclared_columns),
            "undeclared_column_names": dg.MetadataValue.json(list(m.undeclared_columns)),
        }
    return dg.Output(landed.to_json(), metadata=meta)


def _publish(
    context: dg.AssetExecutionContext, assay: AssayResource, compiled: CompiledContract, landed: Landed
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    from pipelines.batch import fault_checkpoint

    contract = compiled.contract
    catalog = assay.catalog()
    catalog.register_dataset(
        contract.id,
        contract_version=contract.version,
        contract_checksum=contract.checksum,
        business_owner=contract.business_owner,
        operations_owner=contract.operations_owner,
    )
    outcome = process(
        assay.store(),
        catalog,
        compiled,
        landed,
        run_id=context.run.run_id,
        checkpoint=fault_checkpoint(assay.fault or None),
    )
    summary = dg.MetadataValue.json(outcome.summary())
    if outcome.outcome == "rejected":
        for check in outcome.checks:
            yield _check_result(check.name, check.passed, check.blocking, check.description, check.metadata)
        raise dg.Failure(
            description=f"{contract.id}: batch {outcome.batch} from {outcome.source} rejected: "
            + " ".join(r["message"] for r in outcome.reasons),
            metadata={"outcome": summary},
            allow_retries=False,
        )
    state = catalog.dataset(contract.id)
    yield dg.MaterializeResult(
        metadata={
            "outcome": outcome.outcome,
            "batch": outcome.batch,
            "source": outcome.source,
            "rows_read": outcome.rows_read,
            "rows_published": outcome.rows_published,
            "rows_quarantined": outcome.rows_quarantined,
            "quality_score": round(outcome.rows_published / outcome.rows_read, 4)
            if outcome.rows_read
            else 1.0,
            "delta_version": state.certified_version if state and state.certified_version is not None else -1,
            "dagster/row_count": state.rows if state else 0,
            "dagster/column_schema": column_schema(contract),
            "summary": summary,
        }
    )
    if outcome.outcome == "skipped":
        for name, blocking, _ in check_names(contract):
            yield _check_result(name, True, blocking, outcome.reasons[0]["message"], {})
        return
    for check in outcome.checks:
        yield _check_result(check.name, check.passed, check.blocking, check.description, check.metadata)


def _check_result(
    name: str, passed: bool, blocking: bool, description: str, metadata: dict[str, Any]
) -> dg.AssetCheckResult:
    meta = {
        k: (dg.MetadataValue.json(v) if isinstance(v, list | dict) else v)
        for k, v in metadata.items()
        if v is not None
    }
    meta["summary"] = description[:1000]
    return dg.AssetCheckResult(
        check_name=name,
        passed=passed,
        metadata=meta,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
    )


def outcome_from_metadata(data: Any) -> dict[str, Any]:
    """The batch summary a run recorded (materialization or failure metadata)."""
    return data if isinstance(data, dict) else json.loads(data)


__all__ = [
    "BatchOutcome",
    "dataset_definitions",
    "job_name",
    "landing_key",
    "partitions_name",
    "published_key",
]
