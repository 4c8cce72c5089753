"""The security officer's commands: agent lifecycle and usage, policy explain and test, audit anchor, export, verify.

Attached to the groups of :mod:`pipelines.cli` when that module imports this one (at its end). Every
change to an agent is one transaction with its audit record; tokens are printed once, on stdout alone.
Exit codes as in :mod:`pipelines.cli`: 2 usage or configuration (a policy that does not load included),
3 denied, 4 a policy case or the audit trail failed.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from governance import (
    LEVELS,
    Anchor,
    Catalog,
    Explanation,
    Store,
    add_agent,
    anchor,
    demote_agent,
    explain,
    export_lines,
    get_agent,
    list_agents,
    load_cases,
    load_policy,
    promote_agent,
    revoke_agent,
    rotate_token,
    run_cases,
    verify,
)
from governance.policy_cases import case_files
from governance.quota import quota_for, usage, usage_on
from pipelines.cli import EXIT_REJECTED, EXIT_USAGE, _operator, _table, agents, audit, fail, friendly, main
from schemas import load_contracts
from schemas.contract import DATASET_ID


def _store() -> Store:
    from pipelines.settings import assay_resource

    return assay_resource().store()


def _key(store: Store) -> bytes:
    from pipelines.settings import audit_key

    try:
        return audit_key(store.home)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


# -- agents ---------------------------------------------------------------------------------------------
@agents.command("add")
@click.argument("name")
@click.option("--level", required=True, type=click.Choice(LEVELS), help="Autonomy level.")
@click.option(
    "--expires-days",
    type=click.IntRange(min=1),
    default=None,
    help="Token lifetime in days, 1 or more (default: no expiry).",
)
@friendly
def agents_add(name: str, level: str, expires_days: int | None) -> None:
    """Create agent NAME and print its token once (only its hash is stored)."""
    store = _store()
    expires = timedelta(days=expires_days) if expires_days is not None else None
    token = add_agent(
        store.engine(), name, level, expires_in=expires, actor=_operator(), audit_key=_key(store)
    )
    click.echo(token)
    until = f", expires in {expires_days} day(s)" if expires_days is not None else ""
    click.echo(
        f"assay: agent {name} ({level}{until}) created; the token above is shown once. Give it to the "
        "agent as ASSAY_TOKEN.",
        err=True,
    )


def _level_change(name: str, level: str, reason: str, direction: str) -> None:
    store = _store()
    engine = store.engine()
    before = get_agent(engine, name)
    change = promote_agent if direction == "promote" else demote_agent
    change(engine, name, level, reason=reason, actor=_operator(), audit_key=_key(store))
    old = before.level if before is not None else "?"
    click.echo(
        f"assay: agent {name} {direction}d from {old} to {level}; it applies from the agent's next call."
    )


@agents.command("promote")
@click.argument("name")
@click.option("--to", "level", required=True, type=click.Choice(LEVELS), help="The higher level.")
@click.option("--reason", required=True, help="Why; recorded in the audit trail with the old and new level.")
@friendly
def agents_promote(name: str, level: str, reason: str) -> None:
    """Raise agent NAME's autonomy level (an audited act with a reason)."""
    _level_change(name, level, reason, "promote")


@agents.command("demote")
@click.argument("name")
@click.option("--to", "level", required=True, type=click.Choice(LEVELS), help="The lower level.")
@click.option("--reason", required=True, help="Why; recorded in the audit trail with the old and new level.")
@friendly
def agents_demote(name: str, level: str, reason: str) -> None:
    """Lower agent NAME's autonomy level (an audited act with a reason)."""
    _level_change(name, level, reason, "demote")


@agents.command("rotate")
@click.argument("name")
@click.option(
    "--expires-days",
    type=click.IntRange(min=1),
    default=None,
    help="Lifetime of the new token in days (default: the old token's expiry).",
)
@click.option("--reason", default="", help="Why (recorded in the audit trail).")
@friendly
def agents_rotate(name: str, expires_days: int | None, reason: str) -> None:
    """Give agent NAME a new token, printed once; the old token fails at once."""
    store = _store()
    expires = timedelta(days=expires_days) if expires_days is not None else None
    token = rotate_token(
        store.engine(), name, expires_in=expires, reason=reason, actor=_operator(), audit_key=_key(store)
    )
    click.echo(token)
    click.echo(
        f"assay: agent {name} has a new token (shown once, above); the old one no longer works.", err=True
    )


@agents.command("revoke")
@click.argument("name")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@friendly
def agents_revoke(name: str, reason: str) -> None:
    """Revoke agent NAME's token; it fails at once, also for a client already connected."""
    store = _store()
    revoke_agent(store.engine(), name, reason=reason, actor=_operator(), audit_key=_key(store))
    click.echo(f"assay: agent {name} revoked; its token no longer works.")


@agents.command("usage")
@click.argument("name", required=False)
@click.option("--day", "day", default=None, help="The UTC day, YYYY-MM-DD (default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print the usage as JSON.")
@friendly
def agents_usage(name: str | None, day: str | None, as_json: bool) -> None:
    """Show each agent's calls and rows used on a UTC day against its quota (policy or level default)."""
    from pipelines.settings import policy_path

    try:
        on = date.fromisoformat(day) if day else datetime.now(UTC).date()
    except ValueError:
        fail(f"--day {day!r} is not a date. Fix: write it as YYYY-MM-DD.", EXIT_USAGE)
    store = _store()
    engine = store.engine()
    rules = load_policy(policy_path())
    registered = {a.name: a for a in list_agents(engine)}
    if name is not None and name not in registered:
        fail(f"agent {name} is not registered. Fix: check the name with `assay agents list`.", EXIT_USAGE)
    used = {u.agent: u for u in usage_on(engine, on, name)}
    rows = []
    for agent in [registered[name]] if name is not None else registered.values():
        limits = quota_for(rules.grant_for(agent.name), agent.level)
        today = used.get(agent.name) or usage(engine, agent.name, on)
        rows.append(
            {
                **today.to_dict(limits),
                "level": agent.level,
                "calls_source": limits.calls_source,
                "rows_source": limits.rows_source,
            }
        )
    if as_json:
        click.echo(json.dumps({"day": on.isoformat(), "agents": rows}, indent=2))
        return
    table = [
        {
            "agent": r["agent"],
            "level": r["level"],
            "calls": f"{r['calls']} / {r['calls_limit']}",
            "rows": f"{r['rows']} / {r['rows_limit']}",
            "refused": str(r["denied"]),
            "quota from": r["calls_source"]
            if r["calls_source"] == r["rows_source"]
            else f"calls {r['calls_source']}; rows {r['rows_source']}",
        }
        for r in rows
    ]
    click.echo(f"usage on {on.isoformat()} (UTC day)")
    click.echo(_table(table, ["agent", "level", "calls", "rows", "refused", "quota from"]))


# -- policy ---------------------------------------------------------------------------------------------
@main.group()
def policy() -> None:
    """Policy-as-code: explain what an agent would see, and test the policy against its cases."""


@policy.command("explain")
@click.option("--agent", "agent_name", required=True, help="The agent, as named in the policy.")
@click.option("--dataset", required=True, help="The dataset id, e.g. crm.accounts.")
@click.option(
    "--level",
    type=click.Choice(LEVELS),
    default=None,
    help="Explain at this level (default: the agent's registered level).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@friendly
def policy_explain(agent_name: str, dataset: str, level: str | None, as_json: bool) -> None:
    """Show what an agent would see of a dataset and why: each column shown, masked or withheld."""
    from pipelines.settings import contracts_dir, policy_path

    store = _store()
    engine = store.engine()
    rules = load_policy(policy_path())
    contracts = {c.id: c for c in load_contracts(contracts_dir())}
    identity = get_agent(engine, agent_name)
    if identity is None and level is None:
        fail(
            f"agent {agent_name} is not registered in the catalog. Fix: pass --level to explain what an "
            "agent at that level would see, or add it with `assay agents add`.",
            EXIT_USAGE,
        )
    today = usage(engine, agent_name, datetime.now(UTC).date())
    found = explain(
        rules, contracts, agent_name, dataset, level=level, identity=None if level else identity, usage=today
    )
    state = Catalog(engine).dataset(dataset) if DATASET_ID.fullmatch(dataset) else None
    certified = state.certified_version if state is not None else None
    if as_json:
        body = {**found.to_dict(), "level_from": "--level" if level else "catalog"}
        body["certified_version"] = certified
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    click.echo(_explanation_text(found, certified, level is not None))


def _explanation_text(found: Explanation, certified: int | None, hypothetical: bool) -> str:
    as_what = " (as asked with --level)" if hypothetical else ""
    lines = [
        f"agent {found.agent} at level {found.level}{as_what} (sees up to {found.cap}) "
        f"on {found.dataset}: {found.decision.upper()}",
        f"  {'why' if found.decision == 'allow' else 'denied by rule ' + str(found.rule)}: {found.reason}",
    ]
    if found.purpose is not None:
        lines.append(f"  purpose: {found.purpose}")
    if found.row_filter is not None:
        lines.append(f"  row filter: {found.row_filter} ({found.row_filter_source})")
    elif found.decision == "allow":
        lines.append("  row filter: none, every row of the certified version")
    if found.decision == "allow":
        state = f"version {certified}" if certified is not None else "none yet: reads are denied until one is"
        lines.append(f"  certified version: {state}")
    lines.append(f"  rows per call: at most {found.max_rows} ({found.max_rows_rule} cap)")
    if found.quota is not None:
        q = found.quota
        used = f"; used today: {found.usage.calls} calls, {found.usage.rows} rows" if found.usage else ""
        lines.append(
            f"  daily quota: {q.calls} calls ({q.calls_source}), {q.rows} rows ({q.rows_source}){used}"
        )
    if found.columns:
        rows = [
            {
                "column": c.name,
                "classification": c.classification + (f" ({c.pii})" if c.pii else ""),
                "decision": c.decision + (f": {c.mask}" if c.mask else ""),
                "why": c.why,
                "rule at": c.source or "",
            }
            for c in found.columns
        ]
        lines += ["", _table(rows, ["column", "classification", "decision", "why", "rule at"])]
        hows = {c.mask: c.how for c in found.columns if c.mask and c.how}
        lines += [f"  mask {mask}: {how}" for mask, how in hows.items()]
    lines += [f"  note: {note}" for note in found.notes]
    return "\n".join(lines)


@policy.command("test")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path),
    default=None,
    help="The policy to test (default: the folder the cases are in, or the policy file given as PATH).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@friendly
def policy_test(path: Path | None, policy_file: Path | None, as_json: bool) -> None:
    """Run the policy cases (*.cases.yaml beside the policy) against the contracts; exit 4 on a failure."""
    from pipelines.settings import contracts_dir, policy_path

    files, tested = case_files(path if path is not None else policy_path())
    rules = load_policy(policy_file or tested)
    contracts = {c.id: c for c in load_contracts(contracts_dir())}
    results = run_cases([case for file in files for case in load_cases(file)], rules, contracts)
    failed = [r for r in results if not r.passed]
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
    else:
        for r in results:
            c = r.case
            label = c.name or f"{c.agent} ({c.level}) on {c.dataset}"
            click.echo(f"{'PASS' if r.passed else 'FAIL'}  {c.source}  {label}: expect {c.expect}")
            for problem in r.problems:
                click.echo(f"      {problem}")
        click.echo(f"assay: {len(results) - len(failed)} passed, {len(failed)} failed", err=True)
    if failed:
        sys.exit(EXIT_REJECTED)


# -- audit ----------------------------------------------------------------------------------------------
@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--anchors",
    "anchors_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Also check anchors kept outside the catalog (JSON lines of `assay audit anchor --json`).",
)
@friendly
def audit_verify(as_json: bool, anchors_file: Path | None) -> None:
    """Recompute the audit chain and check its anchors; name the first record that cannot be trusted."""
    store = _store()
    outside = _read_anchors(anchors_file) if anchors_file is not None else []
    result = verify(store.engine(), _key(store), anchors=outside)
    if as_json:
        click.echo(
            json.dumps({"ok": result.ok, "records": result.records, "first_bad_seq": result.first_bad_seq})
        )
    elif result.ok:
        click.echo(
            f"assay: audit trail intact: {result.records} records, chain verified, "
            f"{result.anchors} anchor(s) hold."
        )
    if not result.ok:
        if not as_json:
            click.echo(
                f"assay: audit trail BROKEN at record {result.first_bad_seq}: {result.message}", err=True
            )
        sys.exit(EXIT_REJECTED)


def _read_anchors(path: Path) -> list[Anchor]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Anchor.from_dict(json.loads(line)))
        except ValueError as exc:
            fail(
                f"{path}:{number}: not an anchor ({exc}). Fix: keep the lines `assay audit anchor --json` "
                "prints, one per line.",
                EXIT_USAGE,
            )
    return out


@audit.command("anchor")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the anchor as one JSON line (to keep elsewhere)."
)
@friendly
def audit_anchor(as_json: bool) -> None:
    """Anchor the chain head now with an HMAC under the audit key (also done every 100 records)."""
    store = _store()
    made = anchor(store.engine(), _key(store))
    if as_json:
        click.echo(json.dumps(made.to_dict(), sort_keys=True))
        return
    click.echo(
        f"assay: anchored the audit trail at seq {made.seq} (hash {made.head_hash[:16]}…) at {made.ts}. "
        "Keep `assay audit anchor --json` lines outside the catalog to catch a cut tail with "
        "`assay audit verify --anchors FILE`."
    )


@audit.command("export")
@click.option("--since", "since", type=click.IntRange(min=0), default=0, help="Only records after this seq.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to FILE (atomically) instead of stdout.",
)
@friendly
def audit_export(since: int, output: Path | None) -> None:
    """Write audit records as JSON lines for a SIEM, each with prev_hash and hash."""
    store = _store()
    lines = export_lines(store.engine(), since_seq=since)
    count = 0
    if output is None:
        for line in lines:
            click.echo(line)
            count += 1
    else:
        tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as out:
                for line in lines:
                    out.write(line + "\n")
                    count += 1
            tmp.replace(output)
        finally:
            tmp.unlink(missing_ok=True)
    where = f" to {output}" if output is not None else ""
    click.echo(f"assay: exported {count} audit record(s) after seq {since}{where}.", err=True)
