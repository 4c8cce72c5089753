"""The gateway as agents meet it: a real ``assay gateway serve`` process, spoken to with the MCP SDK's client.

One server runs for the whole module against an ASSAY_HOME seeded once (two certified datasets, agents
with tokens); the tests talk to it over Streamable HTTP with a bearer token, exactly as an agent would,
and read the audit trail and the server's log afterwards. Start-up refusals (broken policy, no audit
key) run their own short-lived processes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import polars as pl
import pytest
from deltalake import write_deltalake
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import update

from governance import Catalog, Store, add_agent, revoke_agent
from governance.audit import AuditRecord, records, verify
from governance.catalog_schema import agents
from governance.identity import rotate_token
from tests.governance.conftest import AUDIT_KEY, CONTRACT, CUSTOMERS, POLICY, certify

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

ORDERS = pl.DataFrame(
    {
        "order_id": ["SO00000001", "SO00000002"],
        "customer_id": ["C000001", "C000003"],
        "order_date": [date(2024, 6, 1), date(2024, 6, 2)],
        "sku": ["SKU-1", "SKU-2"],
        "quantity": [Decimal("2.000"), Decimal("1.500")],
        "unit_price": [Decimal("617.25"), Decimal("10.00")],
        "amount": [Decimal("1234.50"), Decimal("15.00")],
        "currency": ["EUR", "EUR"],
        "status": ["open", "shipped"],
        "changed_at": [
            datetime(2024, 6, 1, 8, 30, 15, 250000, tzinfo=UTC),
            datetime(2024, 6, 2, 9, 0, tzinfo=UTC),
        ],
        "sales_rep_email": ["rep.one@canary.test", "rep.two@canary.test"],
        "_batch_id": ["b0", "b0"],
    },
    schema_overrides={
        "quantity": pl.Decimal(12, 3),
        "unit_price": pl.Decimal(12, 2),
        "amount": pl.Decimal(14, 2),
        "changed_at": pl.Datetime("us", "UTC"),
    },
)
POLICY_WITH_DOOMED = POLICY + "".join(
    f'  {name}:\n    datasets: ["crm.*"]\n    purpose: support\n' for name in ("doomed-bot", "expired-bot")
)


@dataclass
class Home:
    """The seeded installation, the environment that points a process at it, and the agents' tokens."""

    root: Path
    store: Store
    policy: Path
    env: dict[str, str]
    tokens: dict[str, str]

    def audit(self) -> list[AuditRecord]:
        return records(self.store.engine())


@dataclass
class Server:
    url: str
    log: Path

    def log_text(self, *, until: str | None = None, timeout_s: float = 10.0) -> str:
        """The server's log; with ``until``, once that text is in it (the server logs a call after
        answering it, so a client can get its answer before the line is written)."""
        deadline = time.monotonic() + timeout_s
        text = self.log.read_text(encoding="utf-8")
        while until is not None and until not in text and time.monotonic() < deadline:
            time.sleep(0.05)
            text = self.log.read_text(encoding="utf-8")
        return text


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    root = tmp_path_factory.mktemp("gateway")
    store = Store(home=root, catalog_url=f"sqlite:///{root}/catalog.db")
    catalog = Catalog(store.engine())
    contracts = root / "contracts"
    contracts.mkdir()
    (contracts / "crm.customers.yaml").write_text(CONTRACT, encoding="utf-8")
    shutil.copy(REPO / "schemas" / "contracts" / "erp.orders.yaml", contracts / "erp.orders.yaml")
    policy = root / "policy.yaml"
    policy.write_text(POLICY_WITH_DOOMED, encoding="utf-8")
    write_deltalake(str(store.table_path("crm.customers")), CUSTOMERS.to_arrow())
    write_deltalake(str(store.table_path("erp.orders")), ORDERS.to_arrow())
    certify(catalog, contracts / "crm.customers.yaml", "crm.customers", version=0, rows=CUSTOMERS.height)
    certify(catalog, contracts / "erp.orders.yaml", "erp.orders", version=0, rows=ORDERS.height)
    engine = store.engine()
    tokens = {
        name: add_agent(engine, name, level)
        for name, level in [
            ("junior-bot", "junior"),
            ("senior-bot", "senior"),
            ("doomed-bot", "junior"),
            ("expired-bot", "junior"),
        ]
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")},
        "ASSAY_HOME": str(root),
        "ASSAY_CONTRACTS": str(contracts),
        "ASSAY_POLICY": str(policy),
        "ASSAY_AUDIT_KEY": AUDIT_KEY.hex(),
    }
    return Home(root, store, policy, env, tokens)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def _start(
    home: Home, port: int, log: Path, env: dict[str, str] | None = None, *extra: str
) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "gateway", "serve", "--port", str(port), *extra],
            env=env or home.env,
            cwd=home.root,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


@pytest.fixture(scope="module")
def server(home: Home) -> Iterator[Server]:
    port, log = _free_port(), home.root / "gateway.log"
    proc = _start(home, port, log)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the gateway did not start (exit {proc.poll()}):\n{log.read_text()}")
            time.sleep(0.1)
        yield Server(url=f"http://127.0.0.1:{port}/mcp", log=log)
    finally:
        proc.terminate()  # uvicorn shuts down on SIGTERM
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# These tests are about what the gateway answers, not how fast: on a loaded 2-core machine a worker's first
# read (imports, caches) can take longer than httpx's 5 s default, which failed a CI run once.
CLIENT_TIMEOUT_S = 60.0


def _as(server: Server, token: str, steps: Callable[[Client], Awaitable[T]]) -> T:
    """Run ``steps`` in one MCP session that sends ``token`` as its bearer token on every request."""

    async def main() -> T:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=CLIENT_TIMEOUT_S) as http:
            async with Client(streamable_http_client(server.url, http_client=http)) as client:
                return await steps(client)

    return asyncio.run(main())


def _mcp_error(exc: BaseException) -> MCPError | None:
    """The MCPError in an exception or an exception group, as the SDK raises either."""
    if isinstance(exc, MCPError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _mcp_error(inner)) is not None:
                return found
    return None


def _text(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


# -- reading ---------------------------------------------------------------------------------------------
def test_agent_lists_describes_and_reads_with_a_where(home: Home, server: Server) -> None:
    async def steps(client: Client) -> tuple[Any, ...]:
        tools = await client.list_tools()
        listed = await client.call_tool("list_datasets", {})
        described = await client.call_tool("describe_dataset", {"dataset": "crm.customers"})
        read = await client.call_tool(
            "read_dataset", {"dataset": "crm.customers", "where": "customer_id = 'C000003'", "limit": 10}
        )
        return tools, listed, described, read

    tools, listed, described, read = _as(server, home.tokens["junior-bot"], steps)
    assert {t.name for t in tools.tools} == {"list_datasets", "describe_dataset", "read_dataset"}
    assert not listed.is_error
    assert [d["id"] for d in listed.structured_content["datasets"]] == ["crm.customers"]  # crm.* only

    columns = {c["name"]: c for c in described.structured_content["columns"]}
    assert columns["national_id"]["withheld"] and columns["email"]["mask"] == "hash"

    assert not read.is_error
    body = read.structured_content
    assert [r["customer_id"] for r in body["rows"]] == ["C000003"]
    row = body["rows"][0]
    assert row["full_name"] == "********nary" and row["birth_date"] == "1990-12-01"  # masked; ISO date
    assert "national_id" not in row and "national_id" in body["provenance"]["withheld"]
    assert body["provenance"]["dataset"] == "crm.customers" and body["provenance"]["rows"] == 1
    assert body["columns"] == list(row)

    last = home.audit()[-1]
    assert (last.actor, last.action, last.decision, last.detail["rows"]) == ("junior-bot", "read", "allow", 1)
    assert "C000003" not in str(last.detail["where"])  # the literal is stored hashed

    line = "tool=read_dataset dataset=crm.customers outcome=allow rows=1"
    log = server.log_text(until=line)
    assert line in log
    assert "C000003" not in log and "canary" not in log  # neither where-literals nor values are logged


def test_decimals_come_as_exact_strings_and_timestamps_in_iso_8601(home: Home, server: Server) -> None:
    async def steps(client: Client) -> Any:
        return await client.call_tool("read_dataset", {"dataset": "erp.orders", "where": "status = 'open'"})

    result = _as(server, home.tokens["senior-bot"], steps)
    assert not result.is_error, _text(result)
    [row] = result.structured_content["rows"]
    assert (row["amount"], row["unit_price"], row["quantity"]) == ("1234.50", "617.25", "2.000")
    assert datetime.fromisoformat(row["changed_at"]) == datetime(2024, 6, 1, 8, 30, 15, 250000, tzinfo=UTC)
    assert row["order_date"] == "2024-06-01"


def test_a_deny_is_a_tool_error_naming_the_rule_and_carrying_no_data(home: Home, server: Server) -> None:
    async def steps(client: Client) -> tuple[Any, Any]:
        above = await client.call_tool(
            "read_dataset", {"dataset": "crm.customers", "columns": ["national_id"]}
        )
        ungranted = await client.call_tool("read_dataset", {"dataset": "erp.orders"})
        return above, ungranted

    above, ungranted = _as(server, home.tokens["junior-bot"], steps)
    assert above.is_error and "rule 'classification'" in _text(above) and "national_id" in _text(above)
    assert ungranted.is_error and "rule 'policy'" in _text(ungranted)
    for result in (above, ungranted):
        assert (
            not result.structured_content and "canary" not in _text(result) and "DE-111" not in _text(result)
        )
    denies = [r for r in home.audit()[-2:] if r.decision == "deny"]
    assert [(r.action, r.dataset, r.detail["rule"]) for r in denies] == [
        ("read", "crm.customers", "classification"),
        ("read", "erp.orders", "policy"),
    ]
    assert "outcome=deny:classification" in server.log_text(until="outcome=deny:classification")


# -- authentication ---------------------------------------------------------------------------------------
def test_forged_unknown_and_missing_tokens_get_401_and_an_audited_deny(home: Home, server: Server) -> None:
    real = home.tokens["junior-bot"]
    forged = real[: len("assay_") + 13] + "x" * 43  # the real token id, a made-up secret
    unknown = "assay_" + "0" * 12 + "_" + "y" * 43
    before = home.audit()[-1].seq
    for header in (f"Bearer {forged}", f"Bearer {unknown}", None):
        response = httpx2.post(
            server.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={
                "Accept": "application/json, text/event-stream",
                **({"Authorization": header} if header else {}),
            },
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "authentication failed" in response.json()["error"]["message"]
        assert "junior-bot" not in response.text, "a 401 never says which agent a token id belongs to"
    denies = [r for r in home.audit() if r.seq > before]
    assert [(r.actor, r.action, r.decision, r.detail["rule"]) for r in denies] == [
        ("junior-bot", "connect", "deny", "identity"),
        ("<unknown-token>", "connect", "deny", "identity"),
        ("<no-token>", "connect", "deny", "identity"),
    ]
    assert "wrong token" in denies[0].detail["reason"]
    assert forged not in str([r.detail for r in denies])
    log = server.log_text(until="401 agent=- token=")
    assert "401 agent=- token=" in log and forged[19:] not in log

    async def steps(client: Client) -> Any:
        return await client.call_tool("list_datasets", {})

    with pytest.raises(BaseException) as caught:  # the MCP client cannot even open a session
        _as(server, forged, steps)
    error = _mcp_error(caught.value)
    assert error is not None and "authentication failed" in str(error)


def test_a_revoked_agent_fails_on_its_next_call(home: Home, server: Server) -> None:
    async def steps(client: Client) -> tuple[Any, BaseException | None]:
        first = await client.call_tool("list_datasets", {})
        revoke_agent(home.store.engine(), "doomed-bot", reason="compromised", audit_key=AUDIT_KEY)
        try:
            await client.call_tool("list_datasets", {})
        except Exception as exc:  # the SDK raises the server's JSON-RPC error
            return first, exc
        return first, None

    first, failed = _as(server, home.tokens["doomed-bot"], steps)
    assert not first.is_error and first.structured_content["datasets"]
    assert failed is not None and "revoked" in str(_mcp_error(failed))
    last = home.audit()[-1]
    assert (last.actor, last.action, last.decision, last.detail["rule"]) == (
        "doomed-bot",
        "connect",
        "deny",
        "identity",
    )
    assert "revoked" in last.detail["reason"]


def test_an_expired_token_gets_401_and_an_audited_deny(home: Home, server: Server) -> None:
    engine = home.store.engine()
    with engine.begin() as conn:
        conn.execute(
            update(agents)
            .where(agents.c.name == "expired-bot")
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    response = httpx2.post(
        server.url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {home.tokens['expired-bot']}", "Accept": "application/json"},
    )
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]
    last = home.audit()[-1]
    assert (last.actor, last.decision, last.detail["rule"]) == ("expired-bot", "deny", "identity")
    assert "expired" in last.detail["reason"]


# -- policy changes while running ------------------------------------------------------------------------
def test_a_policy_edit_applies_at_once_and_a_broken_edit_serves_nothing(home: Home, server: Server) -> None:
    async def list_ids(client: Client) -> Any:
        return await client.call_tool("list_datasets", {})

    token = home.tokens["senior-bot"]
    assert {d["id"] for d in _as(server, token, list_ids).structured_content["datasets"]} == {
        "crm.customers",
        "erp.orders",
    }
    try:
        home.policy.write_text(POLICY_WITH_DOOMED.replace('"crm.customers", "erp.orders"', '"crm.customers"'))
        narrowed = _as(server, token, list_ids).structured_content["datasets"]
        assert [d["id"] for d in narrowed] == ["crm.customers"]

        home.policy.write_text(POLICY_WITH_DOOMED + "  senior-bot:\n    datasets: oops\n")
        response = httpx2.post(
            server.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        )
        assert response.status_code == 503 and "nothing is returned" in response.json()["error"]["message"]
        assert f"{home.policy}:" in server.log_text(
            until=f"{home.policy}:"
        )  # operators see file:line in the gateway log
    finally:
        home.policy.write_text(POLICY_WITH_DOOMED)
    assert len(_as(server, token, list_ids).structured_content["datasets"]) == 2
    # Each policy the gateway loaded is on the audit trail: narrowed, broken (where only), restored.
    policy_records = [r for r in home.audit() if r.actor == "policy"]
    gateway_loads = [r for r in policy_records if "gateway" in str(r.detail.get("loaded_by"))]
    assert [r.action for r in gateway_loads][-3:] == ["policy_change", "policy_invalid", "policy_change"]
    assert gateway_loads[-3].detail["agents_changed"] == {"senior-bot": ["datasets"]}


# -- start-up refusals ------------------------------------------------------------------------------------
def test_a_broken_policy_file_makes_the_gateway_refuse_to_start(home: Home, tmp_path: Path) -> None:
    broken = tmp_path / "policy.yaml"
    broken.write_text(
        'agents:\n  junior-bot:\n    datasets: ["crm.*"]\n    purpose: support\n    colums: {deny: [segment]}\n',
        encoding="utf-8",
    )
    port, log = _free_port(), tmp_path / "refused.log"
    proc = _start(home, port, log, env={**home.env, "ASSAY_POLICY": str(broken)})
    assert proc.wait(timeout=60) == 2
    stderr = log.read_text(encoding="utf-8")
    assert f"{broken}:5:" in stderr and "colums" in stderr and "Fix:" in stderr
    assert "serving" not in stderr and not _listening(port)


def test_the_gateway_refuses_to_start_without_an_audit_key(home: Home, tmp_path: Path) -> None:
    port, log = _free_port(), tmp_path / "nokey.log"
    env = {k: v for k, v in home.env.items() if k != "ASSAY_AUDIT_KEY"}
    proc = _start(home, port, log, env=env)
    assert proc.wait(timeout=60) == 2
    stderr = log.read_text(encoding="utf-8")
    assert "ASSAY_AUDIT_KEY" in stderr and "Fix:" in stderr and not _listening(port)


def test_a_retired_token_is_refused_like_any_bad_token_but_audited_under_its_agent(
    home: Home, server: Server
) -> None:
    """A rotated token still in use is a leaked or forgotten one: the security officer sees whose it was."""
    engine = home.store.engine()
    old = add_agent(engine, "rotated-bot", "junior")
    rotate_token(engine, "rotated-bot", reason="suite")
    forged = old[: len("assay_") + 13] + "z" * 43  # the retired token's id with a made-up secret
    before = home.audit()[-1].seq
    for token in (old, forged):
        response = httpx2.post(
            server.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        )
        assert response.status_code == 401
        assert "rotated-bot" not in response.text and "retired" not in response.text  # one answer for all
    denies = [r for r in home.audit() if r.seq > before]
    assert [(r.actor, r.detail["rule"]) for r in denies] == [
        ("rotated-bot", "identity"),
        ("<unknown-token>", "identity"),  # a made-up secret proves nothing: not attributed to the agent
    ]
    assert "this token was retired (rotated at" in denies[0].detail["reason"]
    assert denies[0].detail["token_id"] == old.split("_")[1]
    assert old.split("_", 2)[2] not in str([r.detail for r in denies])
    revoke_agent(engine, "rotated-bot", reason="suite")


def test_a_flood_of_bad_tokens_is_audited_up_to_the_limit_and_then_refused_429(
    home: Home, tmp_path: Path
) -> None:
    """Failures past the limit are answered 429 and not appended one by one; valid tokens still get in."""
    port, log = _free_port(), tmp_path / "limited.log"
    proc = _start(home, port, log, None, "--auth-failures", "3")
    try:
        for _ in range(200):
            if _listening(port):
                break
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/mcp"
        before = home.audit()[-1].seq
        forged = "assay_000000000000_" + "A" * 43
        statuses = [
            httpx2.post(
                url,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={
                    "Authorization": f"Bearer {forged}",
                    "Accept": "application/json, text/event-stream",
                },
            ).status_code
            for _ in range(10)
        ]
        assert statuses == [401, 401, 401, 429, 429, 429, 429, 429, 429, 429]
        new = [r for r in home.audit() if r.seq > before]
        assert [(r.actor, r.detail["rule"]) for r in new] == [("<unknown-token>", "identity")] * 3 + [
            ("<rate-limited>", "rate_limit")
        ]
        assert new[-1].detail["address"] == "127.0.0.1"
        ok = httpx2.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={
                "Authorization": f"Bearer {home.tokens['junior-bot']}",
                "Accept": "application/json, text/event-stream",
            },
        )
        assert ok.status_code == 200, "a valid token from the same address is never refused"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _workers_of(pid: int) -> list[int]:
    """The gateway worker processes (spawned interpreters) whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and b"spawn_main" in cmdline and stat[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_several_workers_share_the_port_restart_when_one_dies_and_stop_together(
    home: Home, tmp_path: Path
) -> None:
    """--workers 2: both serve one port, a killed worker is replaced, SIGTERM stops every one."""
    port, log = _free_port(), tmp_path / "workers.log"
    proc = _start(home, port, log, None, "--workers", "2")
    try:
        assert _wait_for(lambda: _listening(port) and len(_workers_of(proc.pid)) == 2), log.read_text()
        server = Server(url=f"http://127.0.0.1:{port}/mcp", log=log)
        before = home.audit()[-1].seq

        async def reads(client: Client) -> list[Any]:
            args = {"dataset": "crm.customers", "where": "customer_id = 'C000003'", "limit": 10}
            return [await client.call_tool("read_dataset", args) for _ in range(5)]

        async def sessions() -> list[list[Any]]:
            async def one() -> list[Any]:
                headers = {"Authorization": f"Bearer {home.tokens['junior-bot']}"}
                async with httpx2.AsyncClient(headers=headers, timeout=CLIENT_TIMEOUT_S) as http:
                    async with Client(streamable_http_client(server.url, http_client=http)) as client:
                        return await reads(client)

            return list(await asyncio.gather(*(one() for _ in range(8))))

        results = [r for batch in asyncio.run(sessions()) for r in batch]
        assert len(results) == 40 and not any(r.is_error for r in results)
        assert all(r.structured_content["provenance"]["rows"] == 1 for r in results)
        new = [r for r in home.audit() if r.seq > before]
        assert sum(1 for r in new if r.action == "read" and r.decision == "allow") == 40
        assert verify(home.store.engine(), AUDIT_KEY).ok, "two processes appending keep one valid chain"
        assert "[worker-" in server.log_text(until="tool=read_dataset")

        first = _workers_of(proc.pid)
        os.kill(first[0], signal.SIGKILL)
        assert "starting it again" in server.log_text(until="starting it again", timeout_s=30)

        def replaced() -> bool:
            now = _workers_of(proc.pid)  # one scan: a killed process can linger a moment before it is gone
            return len(now) == 2 and first[0] not in now

        assert _wait_for(replaced)
        assert not _as(server, home.tokens["junior-bot"], reads)[0].is_error  # still serving

        workers = _workers_of(proc.pid)
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        assert _wait_for(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
