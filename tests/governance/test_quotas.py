"""Daily quotas: calls and rows counted exactly, with the audit record, across processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from deltalake import write_deltalake
from sqlalchemy import select

from governance import AccessDenied, Catalog, Client, Store, add_agent, connect, explain, load_policy, verify
from governance.audit import records
from governance.catalog_schema import agent_usage
from governance.quota import LEVEL_QUOTAS, quota_for, usage, usage_on
from schemas.contract import load_contract, load_contracts

KEY = b"quota-test-audit-key-0123456789abcdef"
DATASET = "crm.items"
ROWS = pl.DataFrame({"item_id": [f"I{i:03d}" for i in range(20)], "region": ["EU", "US"] * 10})
CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: crm.items
name: items
domain: crm
version: 1.0.0
status: active
description:
  purpose: Items for quota tests.
team:
  name: t
  members:
    - username: owner@example.com
      role: businessOwner
    - username: team:ops
      role: operationsOwner
schema:
  - name: items
    physicalName: items
    physicalType: table
    properties:
      - name: item_id
        logicalType: string
        primaryKey: true
        classification: internal
      - name: region
        logicalType: string
        classification: public
customProperties:
  - property: source
    value: {kind: sql, connection: db, table: items}
"""
POLICY = """\
agents:
  calls-bot:
    datasets: ["crm.*"]
    purpose: support
    quota: {calls: 3}
  rows-bot:
    datasets: ["crm.*"]
    purpose: support
    quota: {rows: 10}
  race-calls:
    datasets: ["crm.*"]
    purpose: support
    quota: {calls: 10, rows: 100000}
  race-rows:
    datasets: ["crm.*"]
    purpose: support
    quota: {calls: 1000, rows: 25}
  default-bot:
    datasets: ["crm.*"]
    purpose: support
"""
AGENTS = {
    "calls-bot": "junior",
    "rows-bot": "junior",
    "race-calls": "senior",
    "race-rows": "senior",
    "default-bot": "intern",
}


@dataclass
class Site:
    store: Store
    contracts: Path
    policy: Path
    tokens: dict[str, str]

    def client(self, agent: str, clock: Callable[[], datetime] | None = None) -> Client:
        return connect(
            self.store,
            agent,
            self.tokens[agent],
            contracts_dir=self.contracts,
            policy_path=self.policy,
            audit_key=KEY,
            clock=clock,
        )


def _site(tmp_path: Path, url: str) -> Site:
    store = Store(home=tmp_path, catalog_url=url)
    catalog = Catalog(store.engine())
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / f"{DATASET}.yaml").write_text(CONTRACT)
    (tmp_path / "policy.yaml").write_text(POLICY)
    write_deltalake(str(store.table_path(DATASET)), ROWS.to_arrow())
    contract = load_contract(contracts / f"{DATASET}.yaml")
    catalog.register_dataset(
        DATASET,
        contract_version=contract.version,
        contract_checksum=contract.checksum,
        business_owner=contract.business_owner,
        operations_owner=contract.operations_owner,
    )
    batch = catalog.start_batch(
        DATASET,
        batch_id="b0",
        checksum="0" * 64,
        source_file=None,
        business_date=date(2024, 6, 1),
        run_id="t",
    )
    catalog.stage_batch(batch, delta_version=0, rows_read=20, rows_published=20, rows_quarantined=0)
    catalog.certify(batch, expected_version=None, new_version=0, rows=20, business_date=date(2024, 6, 1))
    tokens = {name: add_agent(store.engine(), name, level) for name, level in AGENTS.items()}
    return Site(store, contracts, tmp_path / "policy.yaml", tokens)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return _site(tmp_path, f"sqlite:///{tmp_path}/catalog.db")


def _today() -> date:
    return datetime.now(UTC).date()


def test_calls_quota_denies_with_rule_quota_and_the_hit_is_audited(site: Site) -> None:
    client = site.client("calls-bot")
    client.datasets()
    with pytest.raises(AccessDenied, match="policy"):
        client.read("erp.orders")  # denied by another rule: still a call
    client.read(DATASET, limit=2)
    with pytest.raises(AccessDenied, match=r"rule 'quota'.*daily quota of 3 calls") as err:
        client.read(DATASET)
    assert "policy.yaml:5" in str(err.value)  # where the quota is written
    with pytest.raises(AccessDenied, match="rule 'quota'"):
        client.describe(DATASET)
    engine = site.store.engine()
    hits = [r for r in records(engine) if r.actor == "calls-bot" and r.detail.get("rule") == "quota"]
    assert [(r.action, r.decision) for r in hits] == [("read", "deny"), ("describe", "deny")]
    assert hits[0].detail["quota"] == {
        "which": "calls",
        "limit": 3,
        "used": 3,
        "day": _today().isoformat(),
        "source": f"{site.policy}:5",
    }
    used = usage(engine, "calls-bot", _today())
    assert (used.calls, used.rows, used.denied) == (3, 2, 2)
    result = verify(engine, KEY)
    assert result.ok, result.message


def test_rows_quota_returns_the_rows_left_then_denies(site: Site) -> None:
    client = site.client("rows-bot")
    first = client.read(DATASET, limit=4)
    assert first.frame.height == 4 and first.provenance["quota"]["truncated"] is False
    assert first.provenance["quota"]["rows"] == {"limit": 10, "used": 4}
    assert client.read(DATASET, limit=4).frame.height == 4
    last = client.read(DATASET, limit=4)
    assert last.frame.height == 2 and last.provenance["rows"] == 2
    assert last.provenance["quota"]["truncated"] is True and last.provenance["quota"]["rows"]["used"] == 10
    client.describe(DATASET)  # no rows: still allowed while calls are left
    with pytest.raises(AccessDenied, match=r"rule 'quota'.*10 rows read"):
        client.read(DATASET, limit=0)
    engine = site.store.engine()
    reads = [r for r in records(engine) if r.actor == "rows-bot" and r.action == "read"]
    assert [r.detail.get("rows") for r in reads if r.decision == "allow"] == [4, 4, 2]
    assert reads[-1].detail["quota"]["which"] == "rows" and reads[-1].detail["quota"]["used"] == 10
    used = usage(engine, "rows-bot", _today())
    assert (used.calls, used.rows, used.denied) == (4, 10, 1)
    assert verify(engine, KEY).ok


def test_the_quota_day_is_the_utc_day_and_rolls_over(site: Site) -> None:
    now = [datetime(2031, 3, 9, 23, 59, 58, tzinfo=UTC)]
    client = site.client("calls-bot", clock=lambda: now[0])
    for _ in range(3):
        client.datasets()
    with pytest.raises(AccessDenied, match="rule 'quota'"):
        client.datasets()
    # 01:30 in UTC+2 is still 23:30 of the 9th in UTC: the same quota day.
    now[0] = datetime(2031, 3, 10, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    with pytest.raises(AccessDenied, match="for 2031-03-09"):
        client.datasets()
    now[0] = datetime(2031, 3, 10, 0, 0, 1, tzinfo=UTC)
    client.datasets()
    client.read(DATASET, limit=5)
    engine = site.store.engine()
    day1, day2 = date(2031, 3, 9), date(2031, 3, 10)
    assert [(u.calls, u.denied) for u in usage_on(engine, day1, "calls-bot")] == [(3, 2)]
    assert [(u.calls, u.rows) for u in usage_on(engine, day2, "calls-bot")] == [(2, 5)]


def test_level_defaults_apply_when_the_policy_sets_no_quota(site: Site) -> None:
    policy = load_policy(site.policy)
    limits = quota_for(policy.grant_for("default-bot"), "intern")
    assert (limits.calls, limits.rows) == LEVEL_QUOTAS["intern"]
    assert limits.calls_source == "level intern default"
    partial = quota_for(policy.grant_for("rows-bot"), "junior")
    assert (partial.calls, partial.rows) == (LEVEL_QUOTAS["junior"][0], 10)
    assert partial.calls_source == "level junior default" and partial.rows_source == f"{site.policy}:9"
    assert LEVEL_QUOTAS["intern"] < LEVEL_QUOTAS["junior"] < LEVEL_QUOTAS["senior"]


def test_explain_shows_the_quota_and_todays_usage(site: Site) -> None:
    site.client("rows-bot").read(DATASET, limit=3)
    contracts = {c.id: c for c in load_contracts(site.contracts)}
    used = usage(site.store.engine(), "rows-bot", _today())
    found = explain(load_policy(site.policy), contracts, "rows-bot", DATASET, level="junior", usage=used)
    body = found.to_dict()
    assert body["quota"]["rows"] == 10 and body["quota"]["rows_source"] == f"{site.policy}:9"
    assert body["usage"]["calls"] == 1 and body["usage"]["rows"] == 3
    assert any("Used on" in note and "1 calls, 3 rows" in note for note in found.notes)


WORKER = """
import json, sys, time
from pathlib import Path
from governance import AccessDenied, Store, connect
home, url, contracts, policy, go, key, tokens = sys.argv[1:8]
tokens = json.loads(tokens)
while not Path(go).exists():
    time.sleep(0.002)
store = Store(home=Path(home), catalog_url=url)
clients = {a: connect(store, a, t, contracts_dir=contracts, policy_path=policy, audit_key=bytes.fromhex(key),
                      in_memory=False) for a, t in tokens.items()}
out = {a: {"allowed": 0, "rows": 0, "denied": 0} for a in tokens}
for i in range(8):
    for agent, limit in (("race-calls", 1), ("race-rows", 3)):
        try:
            out[agent]["rows"] += clients[agent].read("crm.items", limit=limit).frame.height
            out[agent]["allowed"] += 1
        except AccessDenied as exc:
            assert "rule 'quota'" in str(exc), str(exc)
            out[agent]["denied"] += 1
print(json.dumps(out))
"""


def _race(site: Site, tmp_path: Path, processes: int = 3) -> list[dict[str, dict[str, int]]]:
    """Start ``processes`` readers that wait for one signal, then read as both race agents at once."""
    go = tmp_path / "go"
    tokens = json.dumps({a: site.tokens[a] for a in ("race-calls", "race-rows")})
    args = [str(site.store.home), site.store.catalog_url, str(site.contracts), str(site.policy), str(go)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *args, KEY.hex(), tokens],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(processes)
    ]
    time.sleep(0.5)  # let them import; they then wait for the signal together
    go.touch()
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outputs


def _check_race(site: Site, outputs: list[dict[str, dict[str, int]]], processes: int = 3) -> None:
    engine = site.store.engine()
    total = {a: {k: sum(o[a][k] for o in outputs) for k in ("allowed", "rows", "denied")} for a in outputs[0]}
    # 24 attempts each: exactly the quota gets through, never more.
    assert total["race-calls"] == {"allowed": 10, "rows": 10, "denied": 8 * processes - 10}
    assert total["race-rows"]["rows"] == 25
    assert total["race-rows"]["allowed"] + total["race-rows"]["denied"] == 8 * processes
    with engine.connect() as conn:
        stored = {r.agent: r for r in conn.execute(select(agent_usage)).all() if r.agent.startswith("race-")}
    for agent, seen in total.items():
        assert (stored[agent].calls, stored[agent].rows, stored[agent].denied) == (
            seen["allowed"],
            seen["rows"],
            seen["denied"],
        )
        logged = [r for r in records(engine) if r.actor == agent and r.action == "read"]
        assert sum(r.detail["rows"] for r in logged if r.decision == "allow") == seen["rows"]
        assert sum(r.decision == "deny" and r.detail["rule"] == "quota" for r in logged) == seen["denied"]
    changes = [r for r in records(engine) if r.action == "policy_change"]
    assert len(changes) == 1  # three processes loaded the same new policy: recorded once
    result = verify(engine, KEY)
    assert result.ok, result.message


def test_processes_racing_at_the_quota_edge_on_sqlite_never_exceed_it(site: Site, tmp_path: Path) -> None:
    _check_race(site, _race(site, tmp_path))


@pytest.mark.server
def test_processes_racing_at_the_quota_edge_on_postgresql_never_exceed_it(
    postgres_schema: str, tmp_path: Path
) -> None:
    site = _site(tmp_path, postgres_schema)
    try:
        _check_race(site, _race(site, tmp_path))
    finally:
        site.store.engine().dispose()


def test_threads_sharing_one_process_never_exceed_the_quota(site: Site) -> None:
    clients = [site.client("race-calls") for _ in range(8)]
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def reader(client: Client) -> None:
        start.wait()
        for _ in range(4):
            try:
                client.read(DATASET, limit=1)
                outcomes.append("allow")
            except AccessDenied:
                outcomes.append("quota")

    threads = [threading.Thread(target=reader, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes).count("allow") == 10 and len(outcomes) == 32
    used = usage(site.store.engine(), "race-calls", _today())
    assert (used.calls, used.rows, used.denied) == (10, 10, 22)
    assert verify(site.store.engine(), KEY).ok


def test_agents_usage_command_lists_todays_use(site: Site) -> None:
    from pipelines.cli import main

    site.client("rows-bot").read(DATASET, limit=3)
    env = {
        "ASSAY_HOME": str(site.store.home),
        "ASSAY_CATALOG_URL": site.store.catalog_url,
        "ASSAY_POLICY": str(site.policy),
        "ASSAY_CONTRACTS": str(site.contracts),
        "ASSAY_AUDIT_KEY": KEY.hex(),
    }
    result = CliRunner().invoke(main, ["agents", "usage", "rows-bot", "--json"], env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["day"] == _today().isoformat()
    (row,) = body["agents"]
    assert (row["agent"], row["calls"], row["rows"], row["rows_limit"], row["calls_limit"]) == (
        "rows-bot",
        1,
        3,
        10,
        LEVEL_QUOTAS["junior"][0],
    )
    text = CliRunner().invoke(main, ["agents", "usage"], env=env)
    assert text.exit_code == 0 and "rows-bot" in text.stdout and "calls-bot" in text.stdout
