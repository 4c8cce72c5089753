"""The ``assay`` command line: the composition root for people and scripts.

Exit codes: 0 success, 2 usage or configuration error, 3 access denied, 4 batch rejected or check failed.
Errors are one clear line on stderr; ``--json`` output goes to stdout alone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click

from governance.catalog import Catalog
from governance.errors import AccessDenied, AuditError, GovernanceError, PolicyError
from governance.quarantine import masked_preview, read_quarantine
from governance.store import Store
from schemas import Contract, ContractError, load_contracts

EXIT_USAGE, EXIT_DENIED, EXIT_REJECTED = 2, 3, 4
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"assay: {message}", err=True)
    sys.exit(code)


def friendly(fn: F) -> F:
    """Turn the errors a user can fix into one line and the right exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ContractError as exc:
            fail("contract error:\n" + str(exc), EXIT_USAGE)
        except PolicyError as exc:
            fail(f"policy error: {exc}", EXIT_USAGE)
        except AccessDenied as exc:
            fail(f"access denied: {exc}", EXIT_DENIED)
        except AuditError as exc:
            fail(f"audit trail unavailable, nothing returned: {exc}", EXIT_DENIED)
        except GovernanceError as exc:
            fail(str(exc), EXIT_USAGE)

    return wrapper  # type: ignore[return-value]


def _settings() -> tuple[Store, list[Contract]]:
    from pipelines.settings import assay_resource, contracts_dir

    return assay_resource().store(), load_contracts(contracts_dir())


def _select(contracts: list[Contract], ids: Sequence[str]) -> list[Contract]:
    if not ids:
        return contracts
    known = {c.id: c for c in contracts}
    unknown = [i for i in ids if i not in known]
    if unknown:
        fail(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(known)}", EXIT_USAGE)
    return [known[i] for i in ids]


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


@click.group()
def main() -> None:
    """assay: certified legacy data for AI agents."""


# -- run ----------------------------------------------------------------------------------------------------
@main.command()
@click.argument("datasets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the batch summaries as JSON.")
@friendly
def run(datasets: tuple[str, ...], as_json: bool) -> None:
    """Ingest every waiting delivery of DATASETS (default: all) through Dagster."""
    from pipelines.runner import run_datasets
    from pipelines.settings import assay_resource

    _, contracts = _settings()
    selected = _select(contracts, datasets)

    def progress(s: dict[str, Any]) -> None:
        if not as_json:
            click.echo(
                f"  {s['dataset']:<14} {s['source']:<24} {s['outcome']:<9} read {s['rows_read']}, "
                f"published {s['rows_published']}, quarantined {s['rows_quarantined']}",
                err=True,
            )

    click.echo(
        f"assay: running {len(selected)} dataset(s) through Dagster…", err=True
    ) if not as_json else None
    results = run_datasets(selected, assay_resource(), progress=progress)
    if as_json:
        click.echo(json.dumps(results, indent=2, default=str, ensure_ascii=False))
    else:
        rows = [{**r, "why": "; ".join(x["message"] for x in r["reasons"])[:120]} for r in results]
        click.echo(
            _table(
                rows,
                [
                    "dataset",
                    "batch",
                    "source",
                    "rows_read",
                    "rows_published",
                    "rows_quarantined",
                    "outcome",
                    "why",
                ],
            )
        )
    if any(r["outcome"] in ("rejected", "error") for r in results):
        sys.exit(EXIT_REJECTED)


# -- datasets, quarantine -------------------------------------------------------------------------------------
@main.command("datasets")
@click.option("--json", "as_json", is_flag=True)
@friendly
def datasets_cmd(as_json: bool) -> None:
    """List datasets with their certified version and status."""
    store, contracts = _settings()
    catalog = Catalog(store.engine())
    states = {d.id: d for d in catalog.datasets()}
    out = []
    for c in contracts:
        d = states.get(c.id)
        out.append(
            {
                "id": c.id,
                "status": d.status if d else "uncertified",
                "certified_version": d.certified_version if d else None,
                "certified_at": d.certified_at.isoformat() if d and d.certified_at else None,
                "rows": d.rows if d else 0,
                "quarantined": d.quarantined if d else 0,
            }
        )
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(_table(out, ["id", "status", "certified_version", "certified_at", "rows", "quarantined"]))


@main.command()
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", type=int, default=None, help="Show at most this many rows.")
@friendly
def quarantine(dataset: str, as_json: bool, limit: int | None) -> None:
    """Show DATASET's quarantined rows and why, with classified values masked."""
    store, contracts = _settings()
    contract = _select(contracts, [dataset])[0]
    rows = masked_preview(contract, read_quarantine(store.quarantine / contract.id), limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str, ensure_ascii=False))
        return
    flat = [
        {
            "batch": r["batch"],
            "file": r["file"],
            "line": r["line"],
            "reasons": ", ".join(f"{x['column']}:{x['check']}" for x in r["reasons"]),
        }
        for r in rows
    ]
    click.echo(_table(flat, ["batch", "file", "line", "reasons"]))


# -- agents, read, audit -------------------------------------------------------------------------------------
@main.group()
def agents() -> None:
    """Agent identities: tokens and autonomy levels."""


@agents.command("list")
@click.option("--json", "as_json", is_flag=True)
@friendly
def agents_list(as_json: bool) -> None:
    """List agents, their level and token state (never the token)."""
    from governance import list_agents

    store, _ = _settings()
    rows = [
        {
            "name": a.name,
            "level": a.level,
            "token_id": a.token_id,
            "created_at": a.created_at.isoformat() if a.created_at else None,
            "expires_at": a.expires_at.isoformat() if a.expires_at else None,
            "revoked": a.revoked_at is not None,
        }
        for a in list_agents(store.engine())
    ]
    click.echo(json.dumps(rows, indent=2) if as_json else _table(rows, list(rows[0]) if rows else ["name"]))


def _operator() -> str:
    import getpass

    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):
        return "operator"


@main.command()
@click.argument("dataset")
@click.option(
    "--agent", "agent_name", required=True, help="The agent reading; its token comes from ASSAY_TOKEN."
)
@click.option("--columns", default=None, help="Comma-separated columns (default: all the agent may see).")
@click.option("--where", default=None, help="One SQL boolean expression over the agent's (masked) view.")
@click.option("--limit", type=int, default=None, help="At most this many rows (default 1000, max 10000).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@friendly
def read(
    dataset: str, agent_name: str, columns: str | None, where: str | None, limit: int | None, fmt: str
) -> None:
    """Read DATASET's certified version as an agent, within its policy; every call is audited."""
    import os

    from governance import connect
    from pipelines.settings import audit_key, contracts_dir, policy_path

    token = os.environ.get("ASSAY_TOKEN")
    if not token:
        fail(
            "ASSAY_TOKEN is not set. Fix: export the token `assay agents add` printed for this agent.",
            EXIT_USAGE,
        )
    store, _ = _settings()
    client = connect(
        store,
        agent_name,
        token,
        contracts_dir=contracts_dir(),
        policy_path=policy_path(),
        audit_key=audit_key(store.home),
        in_memory=False,  # one read per process: scan the version rather than load it whole
    )
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    result = client.read(dataset, columns=cols, where=where, limit=limit)
    if fmt == "json":
        click.echo(
            json.dumps(
                {"provenance": result.provenance, "rows": result.frame.to_dicts()}, indent=2, default=str
            )
        )
    elif fmt == "csv":
        click.echo(result.frame.write_csv(), nl=False)
    else:
        import polars as pl

        with pl.Config(
            tbl_rows=min(result.frame.height, 50), tbl_cols=-1, fmt_str_lengths=40, tbl_width_chars=10000
        ):
            click.echo(result.frame)
        p = result.provenance
        click.echo(
            f"{p['dataset']} version {p['version']} certified {p['certified_at']}; {p['rows']} rows; "
            f"masked: {', '.join(p['masks']) or 'none'}; withheld: {', '.join(p['withheld']) or 'none'}",
            err=True,
        )


@main.group()
def audit() -> None:
    """The hash-chained audit trail."""


# -- replay, landing retention ------------------------------------------------------------------------------
@main.command()
@click.argument("dataset")
@click.argument("batch")
@click.option("--reason", required=True, help="Why the batch may now be ingested (e.g. the contract fix).")
@click.option("--json", "as_json", is_flag=True)
@friendly
def replay(dataset: str, batch: str, reason: str, as_json: bool) -> None:
    """Ingest rejected BATCH of DATASET again, after a contract fix (audited)."""
    from pipelines.runner import run_datasets
    from pipelines.settings import assay_resource

    resource = assay_resource()
    _, contracts = _settings()
    contract = _select(contracts, [dataset])[0]
    replayed = resource.catalog().request_replay(contract.id, batch, reason=reason, actor=_operator())
    if not replayed:
        fail(
            f"{dataset} has no rejected batch {batch}. Fix: see `assay run --json` or `assay datasets` for "
            "rejected batches and their ids.",
            EXIT_USAGE,
        )
    results = run_datasets([contract], resource)
    mine = [r for r in results if r["batch"] == batch and r["outcome"] != "skipped"]
    if as_json:
        click.echo(json.dumps(mine, indent=2, default=str, ensure_ascii=False))
    else:
        for r in mine:
            click.echo(
                f"{dataset} batch {batch} from {r['source']}: {r['outcome']} (read {r['rows_read']}, "
                f"published {r['rows_published']}, quarantined {r['rows_quarantined']})"
            )
    if not mine or any(r["outcome"] != "certified" for r in mine):
        sys.exit(EXIT_REJECTED)


@main.group()
def landing() -> None:
    """The landing zone of immutable raw deliveries."""


@landing.command("prune")
@click.argument("datasets", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def landing_prune(datasets: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Remove landed deliveries past their contract's retention whose batch is settled; list each one."""
    from pipelines.retention import expired_landings, remove

    store, contracts = _settings()
    catalog = Catalog(store.engine())
    removed: list[dict[str, Any]] = []
    for contract in _select(contracts, datasets):
        for item in expired_landings(store, catalog, contract):
            if not dry_run:
                remove(store, item)
            removed.append(
                {
                    "dataset": item.dataset,
                    "batch": item.batch,
                    "checksum": item.checksum,
                    "files": list(item.files),
                    "bytes": item.bytes,
                    "landed_at": item.landed_at.isoformat(),
                }
            )
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "removed": removed}, indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for r in removed:
        click.echo(
            f"{verb} {r['dataset']} batch {r['batch']}: {', '.join(r['files'])} ({r['bytes']} bytes, "
            f"landed {r['landed_at']})"
        )
    click.echo(f"assay: {verb} {len(removed)} landed deliveries.", err=True)


# -- demo -------------------------------------------------------------------------------------------------
@main.group()
def demo() -> None:
    """The demo legacy sources."""


@demo.command("seed")
@friendly
def demo_seed() -> None:
    """Generate the demo ERP files, CRM database and expected.json under ASSAY_HOME/demo."""
    from pipelines.demo import seed

    store, _ = _settings()
    expected = seed(store.home)
    click.echo(
        f"assay: seeded {store.home / 'demo'}: {len(expected['erp.orders']['files'])} ERP files, "
        f"CRM with {expected['crm.accounts']['rows']} accounts; planted faults in expected.json"
    )


@demo.command("verify")
@friendly
def demo_verify() -> None:
    """Check the catalog and quarantine against the planted faults in expected.json."""
    from pipelines.demo_verify import verify

    store, contracts = _settings()
    problems = verify(store, contracts)
    if problems:
        for p in problems:
            click.echo(f"  MISMATCH {p}", err=True)
        fail(f"the demo did not come out as expected.json says ({len(problems)} mismatch(es))", EXIT_REJECTED)
    click.echo(
        "assay: demo verified: every planted fault quarantined with its reason, the unreconciled batch "
        "rejected whole, both datasets certified, rows read = published + quarantined for every batch."
    )


# Importing these registers their commands: agents/policy/audit, and `assay gateway serve`.
from pipelines import cli_gateway, cli_governance  # noqa: E402,F401

if __name__ == "__main__":
    # Run as `python -m pipelines.cli`: use the imported module, on whose groups the governance commands sit.
    from pipelines.cli import main as registered_main

    registered_main()
