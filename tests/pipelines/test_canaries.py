"""Canaries: the demo's planted personal data never reaches a log, metadata, an error or an audit record.

The demo plants canary values (a contact's name, email, phone and national id in the CRM table, an
undeclared email in a custom CRM field, a sales rep's email in the ERP files; ``expected.json`` lists
them). This module runs the demo once through the real pipeline (``assay demo seed``, then
``assay run`` in its own process against a real Dagster instance in a temp ``DAGSTER_HOME``), then a set
of agent reads, denied reads and failing CLI commands, and then searches every place assay writes for
each canary, as is and in common encodings (any letter case, JSON-escaped, URL-encoded, UTF-16):

- Dagster's event log storage: every table of every SQLite database under ``DAGSTER_HOME`` (runs,
  event logs with materialization and asset-check metadata, schedules), and the database files' bytes;
- Dagster compute logs (``DAGSTER_HOME/storage/<run>/compute_logs``) and the rest of Dagster's storage;
- the catalog database: every table, every column;
- Delta commit metadata: every ``_delta_log`` entry and checkpoint of every published table (the data
  Parquet files legitimately hold the values and are not searched);
- quarantine previews: what ``assay quarantine`` prints, and :func:`masked_preview` of every quarantine
  file (the quarantine files themselves keep rows whole for replay, like the data files);
- landing manifests; CLI stdout and stderr of every command; the audit log and its SIEM export;
- what intern and junior agents were given back.

It prints the sinks it searched with the number of files, rows and bytes in each, and fails if a sink
turned up empty, so a sink that silently moved cannot make the test pass by searching nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from governance import AccessDenied, Store, connect
from governance.quarantine import masked_preview, read_quarantine
from pipelines import demo as demo_source
from pipelines.cli import main as assay_cli
from pipelines.settings import audit_key, contracts_dir, policy_path
from schemas import load_contracts
from tests.pipelines.conftest import end_to_end_module

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
CONTRACTS = {c.id: c for c in load_contracts(contracts_dir({}))}
KINDS = {
    demo_source.CANARY_EMAIL: "CRM contact email",
    demo_source.CANARY_PHONE: "CRM contact phone",
    demo_source.CANARY_NAME: "CRM contact name",
    demo_source.CANARY_NATIONAL_ID: "CRM national id",
    demo_source.CANARY_UNDECLARED: "CRM undeclared custom-field email",
    demo_source.CANARY_ERP_EMAIL: "ERP sales-rep email",
}


E2E = end_to_end_module()


# -- searching ----------------------------------------------------------------------------------------------
def needles(canary: str) -> dict[str, bytes]:
    """The canary in the encodings a sink might hold it in; matched against lower-cased bytes."""
    forms = {
        "raw": canary.encode("utf-8"),
        "json": json.dumps(canary)[1:-1].encode("utf-8"),
        "url": urllib.parse.quote(canary, safe="").encode("ascii"),
        "url+": urllib.parse.quote_plus(canary).encode("ascii"),
        "utf-16-le": canary.encode("utf-16-le"),
        "utf-16-be": canary.encode("utf-16-be"),
    }
    return {name: form.lower() for name, form in forms.items()}


NEEDLES = {canary: needles(canary) for canary in KINDS}


@dataclass
class Sink:
    """One place searched: how much was in it, and every (canary kind, encoding, location) found."""

    name: str
    files: int = 0
    rows: int = 0
    bytes: int = 0
    hits: list[str] = field(default_factory=list)

    def search(self, data: bytes | str, where: str) -> None:
        blob = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        self.bytes += len(blob)
        lowered = blob.lower()
        for canary, forms in NEEDLES.items():
            for encoding, form in forms.items():
                if form in lowered:
                    self.hits.append(f"{KINDS[canary]} ({encoding}) in {where}")
                    break

    def search_file(self, path: Path) -> None:
        self.files += 1
        self.search(path.read_bytes(), str(path))


def sqlite_rows(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """(table, column, value) for every non-null cell of every table of a SQLite database, read-only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names come from sqlite_master
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
                    yield table, column, data
    finally:
        conn.close()


def search_sqlite(sink: Sink, path: Path) -> None:
    """Every cell of the database, then the file's own bytes (free pages, journal leftovers)."""
    for table, column, data in sqlite_rows(path):
        sink.search(data, f"{path.name}:{table}.{column}")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        sink.rows += sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)  # noqa: S608
    conn.close()
    sink.search_file(path)
    for suffix in ("-wal", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            sink.search_file(side)


# -- the demo, reads, denied reads, failing commands ----------------------------------------------------------
@dataclass
class Output:
    label: str
    code: int
    stdout: str
    stderr: str


@dataclass
class CanaryRun:
    home: Path
    dagster_home: Path
    canaries: list[str]
    outputs: list[Output]
    results: dict[str, pl.DataFrame]  # what intern and junior agents were given, by call
    senior_result: pl.DataFrame  # a senior legitimately sees the values: the positive control
    denied: dict[str, str]  # call -> the error message the agent got


def _cli(env: dict[str, str], label: str, *args: str, token: str | None = None) -> Output:
    """One ``assay`` command in this process (the real click app), with its own environment."""
    run_env: dict[str, str | None] = {
        "ASSAY_HOME": env["ASSAY_HOME"],
        "DAGSTER_HOME": env["DAGSTER_HOME"],
        "ASSAY_CATALOG_URL": None,
        "ASSAY_TOKEN": token,
    }
    result = CliRunner().invoke(assay_cli, list(args), env=run_env, catch_exceptions=False)
    return Output(label, result.exit_code, result.stdout, result.stderr)


def _token(output: Output) -> str:
    assert output.code == 0, output.stderr
    return output.stdout.strip().splitlines()[0]


@pytest.fixture(scope="module")
def canary_run(demo_run: tuple[Path, Any]) -> CanaryRun:
    # The session's demo (seed, `assay run` in its own process through the real Dagster instance, verify,
    # rerun; tests/pipelines/conftest.py), searched after the commands below have run on top of it.
    root, demo = demo_run
    home, dagster_home = demo.home, demo.dagster_home
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_") and k != "DAGSTER_HOME"}
    env.update(ASSAY_HOME=str(home), DAGSTER_HOME=str(dagster_home))
    outputs = [
        Output(label, cmd.code, cmd.stdout, cmd.stderr)
        for label, cmd in (("run", demo.run), ("demo verify (first)", demo.verify), ("rerun", demo.rerun))
    ]
    assert demo.run.code == E2E.EXIT_REJECTED, demo.run.stderr[-2000:]
    tokens = {
        name: _token(_cli(env, f"agents add {name}", "agents", "add", name, "--level", level))
        for name, level in (("demo-intern", "intern"), ("demo-junior", "junior"), ("demo-senior", "senior"))
    }
    canaries = json.loads((home / "demo" / "expected.json").read_text("utf-8"))["canaries"]
    email, phone, name, national_id = (
        demo_source.CANARY_EMAIL,
        demo_source.CANARY_PHONE,
        demo_source.CANARY_NAME,
        demo_source.CANARY_NATIONAL_ID,
    )
    junior, intern = tokens["demo-junior"], tokens["demo-intern"]
    junior_read = ["read", "crm.accounts", "--agent", "demo-junior"]
    commands: list[tuple[str, list[str], str | None]] = [
        ("quarantine crm (table)", ["quarantine", "crm.accounts"], None),
        ("quarantine erp (table)", ["quarantine", "erp.orders"], None),
        ("quarantine crm (json)", ["quarantine", "crm.accounts", "--json"], None),
        ("quarantine erp (json)", ["quarantine", "erp.orders", "--json"], None),
        ("junior read crm (json)", [*junior_read, "--format", "json", "--limit", "300"], junior),
        (
            "junior read erp (csv)",
            ["read", "erp.orders", "--agent", "demo-junior", "--format", "csv"],
            junior,
        ),
        ("junior guesses a phone", [*junior_read, "--where", f"phone = '{phone}'"], junior),
        # Denied and failing reads: what the agent is told must not carry the values it typed or asked for.
        ("junior asks for national ids", [*junior_read, "--columns", "account_id,national_id"], junior),
        (
            "junior filters on a national id",
            [*junior_read, "--where", f"national_id = '{national_id}'"],
            junior,
        ),
        (
            "intern filters on an email",
            ["read", "crm.accounts", "--agent", "demo-intern", "--where", f"contact_email = '{email}'"],
            intern,
        ),
        ("unparsable where", [*junior_read, "--where", f"contact_name = '{name}' AND"], junior),
        ("where with a subquery", [*junior_read, "--where", f"contact_email IN (SELECT '{email}')"], junior),
        ("a canary as dataset id", ["read", email, "--agent", "demo-junior"], junior),
        ("a canary as column", [*junior_read, "--columns", name], junior),
        ("a canary as token", junior_read, email),
        ("a canary as agent", ["read", "crm.accounts", "--agent", email], junior),
        (
            "policy explain",
            ["policy", "explain", "--agent", "demo-junior", "--dataset", "crm.accounts"],
            None,
        ),
        ("agents usage", ["agents", "usage", "--json"], None),
        ("demo verify", ["demo", "verify"], None),
        ("audit verify", ["audit", "verify"], None),
        ("audit export", ["audit", "export", "--output", str(home / "audit-export.jsonl")], None),
    ]
    outputs += [_cli(env, label, *args, token=token) for label, args, token in commands]
    # The same through the in-process client an agent's own code would use.
    store = Store.from_env({"ASSAY_HOME": str(home)})
    settings = {
        "contracts_dir": contracts_dir({}),
        "policy_path": policy_path({}),
        "audit_key": audit_key(home),
    }
    clients = {agent: connect(store, agent, token, **settings) for agent, token in tokens.items()}
    results: dict[str, pl.DataFrame] = {}
    for agent in ("demo-intern", "demo-junior"):
        for dataset in CONTRACTS:
            results[f"{agent} {dataset}"] = clients[agent].read(dataset, limit=10_000).frame
    junior_client = clients["demo-junior"]
    results["junior guesses an email"] = junior_client.read(
        "crm.accounts", where=f"contact_email = '{email}'"
    ).frame
    results["junior probes a name"] = junior_client.read(
        "crm.accounts", where=f"length(contact_name) = {len(name)}"
    ).frame
    results["junior describes"] = pl.DataFrame({"text": [json.dumps(junior_client.describe("crm.accounts"))]})
    denied: dict[str, str] = {}
    attempts = {
        "junior national id": lambda: junior_client.read("crm.accounts", columns=["national_id"]),
        "junior where on national id": lambda: junior_client.read(
            "crm.accounts", where=f"national_id = '{national_id}'"
        ),
        "intern where on email": lambda: clients["demo-intern"].read(
            "crm.accounts", where=f"contact_email LIKE '{email[:12]}%'"
        ),
        "junior undeclared column": lambda: junior_client.read(
            "crm.accounts", where=f"cf_0137__c = '{demo_source.CANARY_UNDECLARED}'"
        ),
    }
    for label, attempt in attempts.items():
        with pytest.raises(AccessDenied) as caught:
            attempt()
        denied[label] = str(caught.value)
    senior = clients["demo-senior"].read("crm.accounts", where=f"contact_name = '{name}'", limit=10_000)
    return CanaryRun(home, dagster_home, canaries, outputs, results, senior.frame, denied)


# -- the sinks ---------------------------------------------------------------------------------------------
def _dagster_event_log(run: CanaryRun) -> Sink:
    sink = Sink("Dagster event log storage (SQLite: runs, event logs, schedules)")
    databases = sorted(run.dagster_home.rglob("*.db"))
    for path in databases:
        search_sqlite(sink, path)
    # The metadata this sink must hold, so an empty event log cannot pass: materializations and checks.
    kinds: dict[str, int] = {}
    for path in databases:
        for table, column, data in sqlite_rows(path):
            if table == "event_logs" and column == "dagster_event_type":
                kinds[data.decode()] = kinds.get(data.decode(), 0) + 1
    assert kinds.get("ASSET_MATERIALIZATION", 0) > 0, kinds
    assert kinds.get("ASSET_CHECK_EVALUATION", 0) > 0, kinds
    return sink


def _dagster_compute_logs(run: CanaryRun) -> Sink:
    sink = Sink("Dagster compute logs (DAGSTER_HOME/storage/<run>/compute_logs)")
    for path in sorted(run.dagster_home.glob("storage/*/compute_logs/*")):
        sink.search_file(path)
    # The runs print nothing, so these files may well be empty: prove instead that every run has its logs here.
    with sqlite3.connect(f"file:{run.dagster_home / 'history' / 'runs.db'}?mode=ro", uri=True) as conn:
        run_ids = {r[0] for r in conn.execute("SELECT run_id FROM runs")}
    conn.close()
    logged = {p.parent.parent.name for p in run.dagster_home.glob("storage/*/compute_logs/*.complete")}
    assert run_ids and run_ids == logged, "compute logs are not where this test looks for them"
    sink.rows = len(run_ids)
    return sink


def _dagster_other_storage(run: CanaryRun) -> Sink:
    sink = Sink("Dagster storage besides compute logs (IO manager outputs)")
    for path in sorted(p for p in (run.dagster_home / "storage").rglob("*") if p.is_file()):
        if "compute_logs" not in path.parts:
            sink.search_file(path)
    return sink


def _catalog(run: CanaryRun) -> Sink:
    sink = Sink("catalog database (every table, every column)")
    search_sqlite(sink, run.home / "catalog.db")
    return sink


def _delta_logs(run: CanaryRun) -> Sink:
    sink = Sink("Delta commit metadata (_delta_log entries and checkpoints)")
    for dataset in CONTRACTS:
        log = run.home / "warehouse" / dataset / "_delta_log"
        for path in sorted(p for p in log.rglob("*") if p.is_file()):
            sink.search_file(path)
            if path.name.endswith(".checkpoint.parquet"):
                rows = pq.read_table(path).to_pylist()
                sink.rows += len(rows)
                sink.search(json.dumps(rows, default=str), f"{path} (decoded)")
            elif path.suffix == ".json":
                sink.rows += sum(1 for line in path.read_text("utf-8").splitlines() if line.strip())
    return sink


def _quarantine_previews(run: CanaryRun) -> Sink:
    sink = Sink("quarantine previews (assay quarantine output, masked_preview of every quarantine file)")
    for output in run.outputs:
        if output.label.startswith("quarantine"):
            sink.files += 1
            sink.search(output.stdout + output.stderr, f"`{output.label}`")
    for dataset, contract in CONTRACTS.items():
        rows = read_quarantine(run.home / "quarantine" / dataset)
        preview = masked_preview(contract, rows)
        sink.rows += len(preview)
        sink.search(json.dumps(preview, default=str), f"masked_preview({dataset})")
    return sink


def _landing_manifests(run: CanaryRun) -> Sink:
    sink = Sink("landing manifests")
    for path in sorted((run.home / "landing").rglob("manifest*.json")):
        sink.search_file(path)
    return sink


def _cli_output(run: CanaryRun) -> Sink:
    sink = Sink("CLI stdout and stderr of every command")
    for output in run.outputs:
        sink.files += 1
        sink.rows += 1
        sink.search(output.stdout, f"stdout of `{output.label}` (exit {output.code})")
        sink.search(output.stderr, f"stderr of `{output.label}` (exit {output.code})")
    return sink


def _audit(run: CanaryRun) -> Sink:
    sink = Sink("audit records (audit_log and its SIEM export)")
    for table, column, data in sqlite_rows(run.home / "catalog.db"):
        if table == "audit_log":
            sink.search(data, f"audit_log.{column}")
            if column == "record":
                sink.rows += 1
    sink.search_file(run.home / "audit-export.jsonl")
    return sink


def _agent_results(run: CanaryRun) -> Sink:
    sink = Sink("what intern and junior agents got back (rows and error messages)")
    for label, frame in run.results.items():
        sink.rows += frame.height
        sink.files += 1
        sink.search(frame.write_csv(), f"result of `{label}`")
    for label, message in run.denied.items():
        sink.search(message, f"error of `{label}`")
    return sink


SINKS = {
    "dagster-event-log": _dagster_event_log,
    "dagster-compute-logs": _dagster_compute_logs,
    "dagster-storage": _dagster_other_storage,
    "catalog": _catalog,
    "delta-log": _delta_logs,
    "quarantine-previews": _quarantine_previews,
    "landing-manifests": _landing_manifests,
    "cli-output": _cli_output,
    "audit": _audit,
    "agent-results": _agent_results,
}


@pytest.fixture(scope="module")
def sinks(canary_run: CanaryRun) -> dict[str, Sink]:
    searched = {key: build(canary_run) for key, build in SINKS.items()}
    print("\nsinks searched for the demo's canaries:")
    for key, sink in searched.items():
        print(f"  {key:22} files={sink.files:<5} rows={sink.rows:<7} bytes={sink.bytes:<10} {sink.name}")
    return searched


# -- the tests ------------------------------------------------------------------------------------------------
def test_the_search_finds_the_canaries_where_they_legitimately_are(canary_run: CanaryRun) -> None:
    """Positive control: the same search does find every canary in the sources and a senior's result."""
    assert sorted(canary_run.canaries) == sorted(KINDS)
    sources = Sink("sources")
    sources.search_file(canary_run.home / "demo" / "crm" / "crm.db")
    for path in sorted((canary_run.home / "demo" / "erp" / "drop").glob("*.csv")):
        sources.search_file(path)
    found = {hit.split(" (")[0] for hit in sources.hits}
    assert found == set(KINDS.values())
    senior = Sink("senior")
    senior.search(canary_run.senior_result.write_csv(), "senior result")
    assert {hit.split(" (")[0] for hit in senior.hits} >= {
        KINDS[demo_source.CANARY_NAME],
        KINDS[demo_source.CANARY_EMAIL],
        KINDS[demo_source.CANARY_PHONE],
        KINDS[demo_source.CANARY_NATIONAL_ID],
    }
    encoded = Sink("encodings")
    encoded.search(urllib.parse.quote(demo_source.CANARY_PHONE, safe=""), "url-encoded")
    encoded.search(demo_source.CANARY_EMAIL.upper(), "upper case")
    encoded.search(demo_source.CANARY_NAME.encode("utf-16-le"), "utf-16")
    assert [hit.split(" (")[0] for hit in encoded.hits] == [
        KINDS[demo_source.CANARY_PHONE],
        KINDS[demo_source.CANARY_EMAIL],
        KINDS[demo_source.CANARY_NAME],
    ]


def test_every_sink_was_searched_and_held_something(
    sinks: dict[str, Sink], record_property: Callable[[str, object], None]
) -> None:
    record_property(
        "sinks", {key: {"files": s.files, "rows": s.rows, "bytes": s.bytes} for key, s in sinks.items()}
    )
    # Compute logs may be empty files (the runs print nothing); their builder checks one per run instead.
    empty = [
        key
        for key, sink in sinks.items()
        if sink.files == 0 and sink.rows == 0 or (sink.bytes == 0 and key != "dagster-compute-logs")
    ]
    assert not empty, f"sinks with nothing in them (moved or not written?): {empty}"
    for key in ("dagster-event-log", "catalog", "delta-log", "audit", "quarantine-previews", "cli-output"):
        assert sinks[key].rows > 0, f"{key}: no rows searched"


@pytest.mark.parametrize("key", list(SINKS))
def test_no_canary_in_the_sink(sinks: dict[str, Sink], key: str) -> None:
    sink = sinks[key]
    assert not sink.hits, f"{sink.name}: canary values found (kind, encoding, where): {sink.hits}"


def test_the_commands_ran_as_a_user_would_see_them(canary_run: CanaryRun) -> None:
    """The denied and failing commands did fail, so their errors were really exercised."""
    codes = {o.label: o.code for o in canary_run.outputs}
    for label in (
        "junior asks for national ids",
        "junior filters on a national id",
        "intern filters on an email",
        "unparsable where",
        "where with a subquery",
        "a canary as dataset id",
        "a canary as column",
        "a canary as token",
        "a canary as agent",
    ):
        assert codes[label] != 0, f"`{label}` should have failed"
    for label in (
        "junior read crm (json)",
        "junior read erp (csv)",
        "junior guesses a phone",
        "audit verify",
    ):
        assert codes[label] == 0, (
            f"`{label}` failed: {next(o.stderr for o in canary_run.outputs if o.label == label)}"
        )
    assert canary_run.results["junior guesses an email"].height == 0
