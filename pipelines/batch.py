"""One batch, from landed delivery to certified version or rejection: the flow the assets run.

Plain functions (no Dagster here) so the CLI, the assets and the tests share one path:
``land_*`` keeps the delivery immutable under ``ASSAY_HOME/landing``; :func:`process` validates
every row, quarantines what fails, runs the batch checks and writes, audits and publishes.
Invariant checked on every batch: rows read = rows published + rows quarantined.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

if TYPE_CHECKING:
    from pipelines.classify import ClassificationTally

from connectors import (
    Extraction,
    Manifest,
    read_bai2,
    read_delimited,
    read_fixed_width,
    read_table,
)
from connectors.drop import Delivery, DropFolder
from connectors.manifest import Controls
from governance.catalog import BatchRecord, Catalog
from governance.publish import Published, write_audit_publish
from governance.quarantine import masked_preview, write_quarantine
from governance.store import Store
from schemas import CompiledContract, Contract, TextFormat, Validation, validate
from schemas.chunked import ValidationTally
from schemas.contract import (
    Bai2Source,
    DelimitedSource,
    FileSource,
    FixedWidthSource,
    Rule,
    SqlSource,
    has_control_records,
)
from schemas.validate import reason_check

Checkpoint = Callable[[str], None]
FAULT_STAGES = ("landed", "started", "quarantined", "staged", "audited", "certified")


def header_names(contract: Contract) -> dict[str, str]:
    """Each column's name in a header row of column names: its ``physicalName``, where it has one."""
    return {c.name: c.source_name for c in contract.columns if c.source_name != c.name}


def fault_checkpoint(fault: str | None) -> Checkpoint:
    """A checkpoint that kills this process (SIGKILL) at the named stage, for crash tests."""
    if fault and fault not in FAULT_STAGES:
        raise ValueError(f"ASSAY_FAULT={fault!r} is not a stage; use one of {', '.join(FAULT_STAGES)}")

    def checkpoint(stage: str) -> None:
        if stage == fault:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


@dataclass(frozen=True)
class CheckOutcome:
    """One batch check, as Dagster shows it (an asset check) and the CLI reports it."""

    name: str
    passed: bool
    blocking: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return "ERROR" if self.blocking else "WARN"


@dataclass
class BatchOutcome:
    dataset: str
    batch: str
    source: str
    rows_read: int
    rows_published: int
    rows_quarantined: int
    outcome: str  # certified | rejected | skipped
    reasons: list[dict[str, Any]]
    version: int | None = None
    checks: list[CheckOutcome] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "batch": self.batch,
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_published": self.rows_published,
            "rows_quarantined": self.rows_quarantined,
            "outcome": self.outcome,
            "reasons": self.reasons,
        }


@dataclass(frozen=True)
class Landed:
    """An immutable delivery in the landing zone."""

    dataset: str
    path: Path
    checksum: str
    source: str

    def to_json(self) -> dict[str, str]:
        return {
            "dataset": self.dataset,
            "path": str(self.path),
            "checksum": self.checksum,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Landed:
        return cls(data["dataset"], Path(data["path"]), data["checksum"], data["source"])


def drop_folder(store: Store, contract: Contract) -> DropFolder | None:
    """The contract's drop folder (local or any pyarrow filesystem), or None for a SQL source."""
    src = contract.source
    return DropFolder(src.path, store.home) if isinstance(src, FileSource) else None


def source_files(store: Store, contract: Contract) -> list[Delivery]:
    """The delivered files waiting in the contract's drop folder, by name."""
    folder = drop_folder(store, contract)
    return folder.list(contract.source.pattern) if folder is not None else []  # type: ignore[union-attr]


def land_file(store: Store, contract: Contract, delivery: Delivery | Path) -> Landed:
    """Copy a delivered file into landing under its checksum, read-only; a second copy is a no-op."""
    if isinstance(delivery, Path):  # a local file named directly
        folder = DropFolder(str(delivery.parent), store.home)
        found = folder.get(delivery.name)
        if found is None:
            raise OSError(f"{delivery}: no such file. Fix: check the path.")
        delivery = found
    else:
        found_folder = drop_folder(store, contract)
        if found_folder is None:
            raise OSError(f"{contract.id} has no drop folder: its source is not a file source.")
        folder = found_folder
    tmp = store.landing / contract.id / f".{delivery.name}.{uuid.uuid4().hex}.part"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        checksum = folder.copy_to(delivery, tmp)
        target = store.landing / contract.id / checksum / delivery.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.chmod(0o444)
            tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return Landed(contract.id, target, checksum, delivery.name)


def land_table(store: Store, contract: Contract, url: str) -> tuple[Landed, Extraction]:
    """Extract a SQL source once and keep the extraction (text values) and manifest in landing."""
    src = contract.source
    assert isinstance(src, SqlSource)
    columns = {c.name: c.source_name for c in contract.columns}
    extraction = read_table(url, src.table, columns, contract.primary_key)
    checksum = extraction.manifest.checksum
    folder = store.landing / contract.id / checksum
    target = folder / "rows.parquet"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        extraction.records.write_parquet(folder / "rows.parquet.part")
        (folder / "manifest.json").write_text(json.dumps(extraction.manifest.to_json(), indent=2))
        (folder / "rows.parquet.part").replace(target)
    return Landed(contract.id, target, checksum, f"{src.connection}:{src.table}"), extraction


def extract_landed(contract: Contract, landed: Landed) -> Extraction:
    """Read a landed delivery back into raw records and its manifest."""
    src = contract.source
    if isinstance(src, DelimitedSource):
        return read_delimited(
            landed.path, src, [c.name for c in contract.columns], names=header_names(contract)
        )
    if isinstance(src, FixedWidthSource):
        return read_fixed_width(landed.path, src, [c.name for c in contract.columns])
    if isinstance(src, Bai2Source):
        return read_bai2(landed.path, src, [c.name for c in contract.columns])
    manifest_json = json.loads((landed.path.parent / "manifest.json").read_text())
    manifest = Manifest(
        source=manifest_json["source"],
        checksum=manifest_json["checksum"],
        size=manifest_json["size"],
        batch_id=manifest_json["batch_id"],
        business_date=pl.Series([manifest_json["business_date"]]).str.to_date().item()
        if manifest_json["business_date"]
        else None,
        rows_read=manifest_json["rows_read"],
        controls=Controls(),
        undeclared_columns=tuple(manifest_json.get("undeclared_columns", ())),
    )
    return Extraction(records=pl.read_parquet(landed.path), manifest=manifest)


def begin_batch(
    catalog: Catalog, contract: Contract, m: Manifest, landed: Landed, *, run_id: str, checkpoint: Checkpoint
) -> BatchRecord | BatchOutcome:
    """Exactly once, then the batch's catalog record, then its control records.

    Returns the outcome when there is nothing more to do (this content was already ingested, or its
    controls do not reconcile and it is rejected whole with nothing written), else the started batch.
    """
    previous = catalog.batch_by_checksum(contract.id, m.checksum)
    if previous is not None and previous.outcome in ("certified", "replaced", "rejected"):
        what = "certified" if previous.outcome != "rejected" else "rejected"
        message = (
            f"{landed.source}: this content was already ingested as batch {previous.batch_id} ({what}); "
            "nothing to do."
        )
        return BatchOutcome(
            contract.id,
            m.batch_id,
            landed.source,
            m.rows_read,
            0,
            0,
            "skipped",
            [{"check": "exactly_once", "message": message}],
            manifest=m.to_json(),
        )
    batch = catalog.start_batch(
        contract.id,
        batch_id=m.batch_id,
        checksum=m.checksum,
        source_file=landed.source,
        business_date=m.business_date,
        run_id=run_id,
    )
    checkpoint("started")
    if m.controls.problems:
        reasons = [{"check": p.check, "message": p.message} for p in m.controls.problems]
        catalog.reject_batch(
            batch, reasons=reasons, rows_read=m.rows_read, rows_published=0, rows_quarantined=0
        )
        return BatchOutcome(
            contract.id,
            m.batch_id,
            landed.source,
            m.rows_read,
            0,
            0,
            "rejected",
            reasons,
            checks=[_controls_check(m)],
            manifest=m.to_json(),
        )
    return batch


def process(
    store: Store,
    catalog: Catalog,
    compiled: CompiledContract,
    landed: Landed,
    *,
    run_id: str,
    checkpoint: Checkpoint,
    chunk_bytes: int | None = None,
) -> BatchOutcome:
    """Validate, quarantine, check and publish one landed delivery; never raises for bad data.

    A delimited or fixed-width file goes through :func:`pipelines.chunked.process_in_chunks`, read chunk
    by chunk (of about ``chunk_bytes``), so memory stays flat however large it is.
    """
    contract = compiled.contract
    checkpoint("landed")
    if isinstance(contract.source, DelimitedSource | FixedWidthSource):
        from pipelines.chunked import DEFAULT_CHUNK_BYTES, process_in_chunks  # it builds on this module

        return process_in_chunks(
            store,
            catalog,
            compiled,
            landed,
            run_id=run_id,
            checkpoint=checkpoint,
            chunk_bytes=chunk_bytes or DEFAULT_CHUNK_BYTES,
        )
    extraction = extract_landed(contract, landed)
    m = extraction.manifest
    begun = begin_batch(catalog, contract, m, landed, run_id=run_id, checkpoint=checkpoint)
    if isinstance(begun, BatchOutcome):
        return begun
    batch = begun
    result = validate(compiled, extraction.records, TextFormat.of(contract))
    write_quarantine(
        store.quarantine / contract.id, m.checksum, m.batch_id, run_id, landed.source, result.quarantine
    )
    checkpoint("quarantined")
    classification = classification_tally(contract, m)
    classification.add(result.valid)
    checks = [*batch_checks(compiled, m, result), classification.check()]
    failed = [c for c in checks if c.blocking and not c.passed]
    published, quarantined = result.valid.height, result.quarantine.height

    def reject(reasons: list[dict[str, Any]]) -> BatchOutcome:
        catalog.reject_batch(
            batch, reasons=reasons, rows_read=m.rows_read, rows_published=0, rows_quarantined=quarantined
        )
        return BatchOutcome(
            contract.id,
            m.batch_id,
            landed.source,
            m.rows_read,
            0,
            quarantined,
            "rejected",
            reasons,
            checks=checks,
            manifest=m.to_json(),
        )

    if failed:
        return reject([{"check": c.name, "message": c.description} for c in failed])
    mode: Literal["replace", "upsert"] = "upsert" if isinstance(contract.source, SqlSource) else "replace"
    outcome = write_audit_publish(
        catalog,
        store.table_path(contract.id),
        compiled,
        batch,
        result.valid,
        rows_read=m.rows_read,
        rows_quarantined=quarantined,
        mode=mode,
        checkpoint=checkpoint,
    )
    if not isinstance(outcome, Published):
        checks.append(CheckOutcome("staged_audit", False, True, "; ".join(outcome.problems)))
        return reject([{"check": "staged_audit", "message": p} for p in outcome.problems])
    checks.append(
        CheckOutcome(
            "staged_audit",
            True,
            True,
            f"staged Delta version {outcome.version} holds exactly "
            f"the {published} rows published, with the contract's schema",
            {"delta_version": outcome.version},
        )
    )
    return BatchOutcome(
        contract.id,
        m.batch_id,
        landed.source,
        m.rows_read,
        published,
        quarantined,
        "certified",
        [],
        version=outcome.version,
        checks=checks,
        manifest=m.to_json(),
    )


def _controls_check(m: Manifest) -> CheckOutcome:
    c = m.controls
    meta = {
        "declared_count": c.declared_count,
        "actual_count": c.actual_count,
        "declared_total": str(c.declared_total) if c.declared_total is not None else None,
        "actual_total": str(c.actual_total) if c.actual_total is not None else None,
    }
    if c.problems:
        return CheckOutcome("controls_reconcile", False, True, " ".join(p.message for p in c.problems), meta)
    return CheckOutcome(
        "controls_reconcile",
        True,
        True,
        "header and trailer controls reconcile with the detail records",
        meta,
    )


def _masked_sample(
    contract: Contract, quarantine: pl.DataFrame, rule: Rule, limit: int = 3
) -> list[dict[str, Any]]:
    """A few rows that broke ``rule``, with every classified value masked."""
    check = reason_check(rule)
    hits = quarantine.filter(
        pl.col("reasons")
        .list.eval(
            (pl.element().struct.field("column") == rule.column)
            & (pl.element().struct.field("check") == check)
        )
        .list.any()
    ).head(limit)
    return [
        {"line": r["line"], "values": r["values"]}
        for r in masked_preview(
            contract,
            hits.with_columns(_batch_id=pl.lit(None, pl.String), _source_file=pl.lit(None, pl.String)),
        )
    ]


def classification_tally(contract: Contract, m: Manifest) -> ClassificationTally:
    """Detectors over the batch's valid rows; the business date keeps reruns identical."""
    from pipelines.classify import ClassificationTally  # classify imports CheckOutcome from here

    return ClassificationTally(contract, today=m.business_date or datetime.now(UTC).date())


def batch_checks(
    compiled: CompiledContract, m: Manifest, result: Validation | ValidationTally
) -> list[CheckOutcome]:
    """The checks that decide whether a batch may be certified: counts, controls, quarantine bounds, rules.

    ``result`` is the whole batch's validation, or its chunks' added up (whose ``quarantine`` is a sample).
    """
    contract = compiled.contract
    read, published, quarantined = m.rows_read, result.valid_rows, result.quarantined_rows
    checks = [
        CheckOutcome(
            "rows_reconcile",
            read == published + quarantined,
            True,
            f"rows read {read} = published {published} + quarantined {quarantined}"
            if read == published + quarantined
            else f"rows read {read} != published {published} + quarantined {quarantined}: rows were lost. "
            "Fix: report this as a bug; the batch was not published.",
            {"rows_read": read, "rows_published": published, "rows_quarantined": quarantined},
        ),
    ]
    if has_control_records(contract.source):
        checks.append(_controls_check(m))
    ratio = quarantined / read if read else 0.0
    bound = contract.max_quarantine_ratio
    checks.append(
        CheckOutcome(
            "quarantine_ratio",
            ratio <= bound,
            True,
            f"{quarantined} of {read} rows quarantined ({ratio:.1%}), bound {bound:.1%}"
            + (
                ""
                if ratio <= bound
                else f" exceeded in {m.source}. Fix: correct the source and re-send the batch, "
                "or raise customProperties.quarantine.maxRatio in the contract if this is expected."
            ),
            {"ratio": round(ratio, 6), "bound": bound, "rows_quarantined": quarantined},
        )
    )
    if isinstance(contract.source, FileSource):
        unreadable = result.failures.get("_record", 0)
        checks.append(
            CheckOutcome(
                "records_readable",
                unreadable == 0,
                False,
                f"{unreadable} record(s) could not be split into the declared fields (quarantined)",
                {"failed_rows": unreadable},
            )
        )
    for rule in contract.rules:
        failed = result.failures.get(rule.name, 0)
        tolerance = rule.max_ratio if rule.max_ratio is not None else bound
        share = failed / read if read else 0.0
        passed = share <= tolerance
        meta: dict[str, Any] = {
            "failed_rows": failed,
            "ratio": round(share, 6),
            "tolerance": tolerance,
            "column": rule.column,
            "check": rule.kind,
        }
        if failed:
            meta["failure_sample"] = _masked_sample(contract, result.quarantine, rule)
        text = f"{rule.column}: {rule.kind} — {failed} row(s) failed ({share:.1%}, tolerance {tolerance:.1%})"
        if not passed:
            text += f" in {m.source}. Fix: correct the source rows (see `assay quarantine {contract.id}`)."
        checks.append(CheckOutcome(rule.name, passed, rule.severity == "error", text, meta))
    return checks
