"""``assay demo verify``: the demo's outcome compared with what ``expected.json`` planted."""

from __future__ import annotations

import json

import polars as pl

from governance.catalog import Catalog
from governance.quarantine import read_quarantine
from governance.store import Store
from schemas import Contract


def _has_reason(rows: pl.DataFrame, column: str, check: str) -> bool:
    return any(
        {"column": column, "check": check} in reasons for reasons in rows.get_column("reasons").to_list()
    )


def verify(store: Store, contracts: list[Contract]) -> list[str]:
    """Every mismatch between the catalog/quarantine and expected.json, as readable lines."""
    expected = json.loads((store.home / "demo" / "expected.json").read_text())
    catalog = Catalog(store.engine())
    problems: list[str] = []
    for contract in contracts:
        state = catalog.dataset(contract.id)
        if state is None or state.certified_version is None:
            problems.append(f"{contract.id}: not certified")
    for batch in catalog.batches():
        if batch.outcome == "certified" and batch.rows_read != (batch.rows_published or 0) + (
            batch.rows_quarantined or 0
        ):
            problems.append(
                f"{batch.dataset_id} batch {batch.batch_id}: rows read {batch.rows_read} != "
                f"published {batch.rows_published} + quarantined {batch.rows_quarantined}"
            )
    erp = expected["erp.orders"]
    quarantined = read_quarantine(store.quarantine / "erp.orders")
    for fault in erp["faults"]:
        rows = quarantined.filter(
            (pl.col("_source_file") == fault["file"]) & (pl.col("_source_line") == fault["line"])
        )
        if rows.height == 0 or not _has_reason(rows, fault["column"], fault["check"]):
            problems.append(
                f"erp.orders {fault['file']} line {fault['line']}: expected quarantined for "
                f"{fault['column']}:{fault['check']}"
            )
    batches = catalog.batches("erp.orders")
    for rejected in erp["rejected"]:
        match = [b for b in batches if b.source_file == rejected["file"]]
        if (
            not match
            or match[-1].outcome != "rejected"
            or not any(r["check"] == rejected["reason"] for r in match[-1].reasons)
        ):
            problems.append(f"erp.orders {rejected['file']}: expected rejected for {rejected['reason']}")
    crm = read_quarantine(store.quarantine / "crm.accounts")
    for fault in expected["crm.accounts"]["faults"]:
        rows = crm.filter(pl.col("account_id") == fault["key"]) if crm.height else crm
        if rows.height == 0 or not _has_reason(rows, fault["column"], fault["check"]):
            problems.append(
                f"crm.accounts {fault['key']}: expected quarantined for {fault['column']}:{fault['check']}"
            )
    return problems
