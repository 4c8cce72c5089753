"""Bypass attempts against the agent gateway: each one is denied, audited, and hands back no data.

Every attack runs against the real in-process client (:func:`governance.connect`) over a real
installation in a temp folder: a SQLite catalog, the repository's own ``crm.accounts`` contract, a
certified Delta version holding canary values, a newer Delta version that is staged but not certified,
a dataset that was only ever staged, and a quarantine file. For each denied attempt the suite checks
the exception and the rule it names, that exactly one deny record with that rule was appended, that no
canary value is in the error or the new audit records, and that the audit chain still verifies with its
anchors. Predicates over masked columns are the one kind of attempt that is answered rather than denied
(the design: masks apply before any predicate runs); for those the suite proves the predicate saw the
masked values only.
"""

# The SQL built from strings here is the attack itself, aimed at the gateway.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import polars as pl
import pytest
from deltalake import write_deltalake
from sqlalchemy import update

from governance import (
    AccessDenied,
    AuthenticationError,
    Catalog,
    Client,
    PolicyError,
    Store,
    add_agent,
    connect,
    revoke_agent,
    rotate_token,
    verify,
)
from governance.audit import AuditRecord, head, records
from governance.catalog_schema import agents
from governance.quarantine import write_quarantine
from schemas.contract import load_contract

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "schemas" / "contracts"
KEY = b"security-suite-audit-key-0123456789"
DATASET = "crm.accounts"

# Canaries: the published ones sit in the certified version; the others only in places no agent may reach.
CANARY_NAME = "Cassia Canaryfield"
CANARY_EMAIL = "canary.5f2c9a71@assay-canary.test"
CANARY_PHONE = "+1-646-555-0387"
CANARY_NATIONAL_ID = "512-47-8093"
CANARY_UNDECLARED = "canary.0137e4d2@assay-canary.test"
CANARY_UNCERTIFIED = "uncertified.77d1@assay-canary.test"
CANARY_QUARANTINED = "quarantined.91c3@assay-canary.test"
CANARY_STAGED_ONLY = "staged-only.4e0a@assay-canary.test"
CANARIES = (
    CANARY_NAME,
    CANARY_EMAIL,
    CANARY_PHONE,
    CANARY_NATIONAL_ID,
    CANARY_UNDECLARED,
    CANARY_UNCERTIFIED,
    CANARY_QUARANTINED,
    CANARY_STAGED_ONLY,
)

ROWS = pl.DataFrame(
    {
        "account_id": ["001A", "001B", "001C", "001D"],
        "account_name": ["Northwind", "Contoso", "Fabrikam", "Secret Corp"],
        "contact_name": [CANARY_NAME, "Olivia Smith", "Liam Brown", "Emma Moore"],
        "contact_email": [CANARY_EMAIL, "olivia@x.example", "liam@y.example", "emma@z.example"],
        "phone": [CANARY_PHONE, "+1-212-555-0101", None, "+1-415-555-0199"],
        "national_id": [CANARY_NATIONAL_ID, "123-45-6789", "234-56-7890", None],
        "billing_country": ["Germany", "Germany", "France", "United States"],
        "lifetime_value": [Decimal("1000.00"), Decimal("2.50"), Decimal("3.00"), Decimal("4.00")],
        "_batch_id": ["b0"] * 4,
        "_source_line": [1, 2, 3, 4],
        # Stored in the table but not declared by the contract: no agent may ever see it.
        "cf_0137__c": [CANARY_UNDECLARED, None, None, None],
    },
    schema_overrides={"lifetime_value": pl.Decimal(16, 2)},
)

POLICY = """\
agents:
  demo-intern: {datasets: ["crm.*"], purpose: demo}
  demo-junior: {datasets: ["crm.*"], purpose: demo}
  demo-senior: {datasets: ["crm.*"], purpose: demo}
  greedy-bot: {datasets: ["*"], purpose: demo}
  de-bot:
    datasets: ["crm.accounts"]
    purpose: demo
    columns: {deny: [account_name]}
    row_filter: "billing_country = 'Germany'"
"""
LEVELS = {
    "demo-intern": "intern",
    "demo-junior": "junior",
    "demo-senior": "senior",
    "greedy-bot": "senior",
    "de-bot": "junior",
}


@dataclass
class Site:
    """One installation under attack: where things are, and the agents' tokens."""

    store: Store
    policy_path: Path
    tokens: dict[str, str]
    quarantine_file: Path
    clients: dict[str, Client] = field(default_factory=dict)

    @property
    def engine(self) -> Any:
        return self.store.engine()

    def client(self, agent: str) -> Client:
        """The agent's connected client, reused across attempts (connecting parses every contract).

        Reuse weakens nothing: a client re-checks its token on every call.
        """
        if agent not in self.clients:
            self.clients[agent] = connect(
                self.store,
                agent,
                self.tokens[agent],
                contracts_dir=CONTRACTS,
                policy_path=self.policy_path,
                audit_key=KEY,
            )
        return self.clients[agent]

    def table(self, dataset: str = DATASET) -> Path:
        return self.store.table_path(dataset)


def _stage(catalog: Catalog, dataset: str, batch: str, version: int, rows: int, *, certify: bool) -> None:
    """Walk a batch through the real catalog: register, start, stage and, if asked, certify."""
    contract = load_contract(CONTRACTS / f"{DATASET}.yaml")
    if catalog.dataset(dataset) is None:
        catalog.register_dataset(
            dataset,
            contract_version=contract.version,
            contract_checksum=contract.checksum,
            business_owner=contract.business_owner,
            operations_owner=contract.operations_owner,
        )
    state = catalog.dataset(dataset)
    record = catalog.start_batch(
        dataset,
        batch_id=batch,
        checksum=f"{batch:0>64}",
        source_file=None,
        business_date=date(2026, 11, 1),
        run_id="security-suite",
    )
    catalog.stage_batch(
        record, delta_version=version, rows_read=rows, rows_published=rows, rows_quarantined=0
    )
    if certify:
        catalog.certify(
            record,
            expected_version=state.certified_version if state else None,
            new_version=version,
            rows=rows,
            business_date=date(2026, 11, 1),
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    home = tmp_path_factory.mktemp("security")
    store = Store(home=home, catalog_url=f"sqlite:///{home}/catalog.db")
    catalog = Catalog(store.engine())
    policy_path = home / "policy.yaml"
    policy_path.write_text(POLICY, encoding="utf-8")
    # Delta version 0: certified.
    write_deltalake(str(store.table_path(DATASET)), ROWS.to_arrow())
    _stage(catalog, DATASET, "b0", 0, ROWS.height, certify=True)
    # Delta version 1: a newer batch written and staged, never certified.
    newer = ROWS.head(1).with_columns(
        pl.lit("001X").alias("account_id"),
        pl.lit(CANARY_UNCERTIFIED).alias("contact_email"),
        pl.lit("b1").alias("_batch_id"),
    )
    write_deltalake(str(store.table_path(DATASET)), newer.to_arrow(), mode="append")
    _stage(catalog, DATASET, "b1", 1, 1, certify=False)
    # A dataset that was only ever staged.
    staged = ROWS.head(1).with_columns(pl.lit(CANARY_STAGED_ONLY).alias("contact_email"))
    write_deltalake(str(store.table_path("crm.leads")), staged.to_arrow())
    _stage(catalog, "crm.leads", "l0", 0, 1, certify=False)
    # Quarantined rows: kept whole on disk, never a dataset.
    bad = ROWS.head(1).with_columns(
        pl.lit("001Q").alias("account_id"),
        pl.lit(CANARY_QUARANTINED).alias("contact_email"),
        pl.lit([{"column": "contact_email", "check": "pattern"}]).alias("reasons"),
    )
    quarantine_file = write_quarantine(
        store.quarantine / DATASET, "q" * 64, "b0", "security-suite", "accounts", bad.drop("_batch_id")
    )
    tokens = {name: add_agent(store.engine(), name, level) for name, level in LEVELS.items()}
    return Site(store, policy_path, tokens, quarantine_file)


# -- the one check every denied attempt must pass ---------------------------------------------------------
def _new_records(site: Site, since: int) -> list[AuditRecord]:
    return records(site.engine, since_seq=since)


def _no_canary(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"a canary value reached {where}"


def assert_denied(
    site: Site,
    attempt: Callable[[], object],
    *,
    rule: str,
    action: str,
    actor: str,
    error: type[Exception] = AccessDenied,
) -> AuditRecord:
    """``attempt`` raises ``error`` naming ``rule``, returns nothing, and leaves one deny record; chain holds."""
    since, _ = head(site.engine)
    returned: list[object] = []
    with pytest.raises(error) as caught:
        returned.append(attempt())
    assert not returned, "the denied attempt returned data"
    message = str(caught.value)
    assert f"rule '{rule}'" in message or rule == "identity", message
    _no_canary(message, "the error message")
    new = _new_records(site, since)
    denies = [r for r in new if r.action == action and r.decision == "deny"]
    assert len(denies) == 1, [(r.action, r.decision) for r in new]
    record = denies[0]
    assert record.actor == actor
    assert record.detail.get("rule") == rule, record.detail
    assert not [r for r in new if r.decision == "allow" and r.action == action], "an allow was recorded too"
    _no_canary(json.dumps([r.detail for r in new], ensure_ascii=False), "the audit log")
    result = verify(site.engine, KEY)
    assert result.ok and result.anchors >= 0, result.message
    return record


# -- 1. odd and traversing dataset ids ----------------------------------------------------------------------
BAD_IDS: list[tuple[str, object, str]] = [
    ("parent", "../crm.accounts", "dataset_id"),
    ("traversal-to-etc", "crm/../../etc/passwd", "dataset_id"),
    ("traversal-inside", "crm.accounts/../x", "dataset_id"),
    ("delta-log", "crm.accounts/_delta_log", "dataset_id"),
    ("absolute", "/etc/passwd", "dataset_id"),
    ("upper-case", "CRM.ACCOUNTS", "dataset_id"),
    ("semicolon", "crm.accounts;", "dataset_id"),
    ("nul", "crm.accounts\x00", "dataset_id"),
    ("newline", "crm.accounts\n", "dataset_id"),
    ("empty", "", "dataset_id"),
    ("very-long-garbage", "x" * 100_000, "dataset_id"),
    # Well-formed and granted by the glob crm.*, but no such dataset: refused as not certified.
    ("long-well-formed", "crm." + "a" * 146, "certified"),
    # Longer than any id can be (150 characters; catalog and audit columns hold 200): refused as an id.
    ("very-long-well-formed", "crm." + "a" * 5_000, "dataset_id"),
    ("cyrillic-a", "crm.\u0430ccounts", "dataset_id"),
    ("fullwidth", "\uff43\uff52\uff4d.accounts", "dataset_id"),
    ("zero-width-space", "crm.accounts\u200b", "dataset_id"),
    ("dot", ".", "dataset_id"),
    ("glob", "crm.*", "dataset_id"),
    ("question-glob", "crm.account?", "dataset_id"),
    ("not-a-string", None, "dataset_id"),
    ("bytes", b"crm.accounts", "dataset_id"),
]


@pytest.mark.parametrize(("label", "dataset", "rule"), BAD_IDS, ids=[b[0] for b in BAD_IDS])
@pytest.mark.parametrize("action", ["read", "describe"])
def test_odd_dataset_ids_are_denied_and_audited(
    site: Site, label: str, dataset: object, rule: str, action: str
) -> None:
    client = site.client("demo-senior")
    call = getattr(client, action)
    record = assert_denied(
        site, lambda: call(cast(str, dataset)), rule=rule, action=action, actor="demo-senior"
    )
    if rule == "dataset_id":
        assert record.dataset is None, "an invalid id must not be stored as a dataset"
    assert "passwd" not in json.dumps(record.detail)


# -- 2. SQL in where that reads files, names other tables or columns, or smuggles statements ---------------
WHERE_ATTACKS: list[tuple[str, str, str]] = [
    # Files and URLs: refused before polars parses anything (parsing a subquery already opens its FROM).
    ("read-csv-subquery", "account_id IN (SELECT column_1 FROM read_csv('/etc/passwd'))", "demo-junior"),
    ("read-csv-exists", "EXISTS (SELECT * FROM read_csv('/etc/passwd'))", "demo-junior"),
    ("read-csv-scalar", "read_csv('/etc/passwd') IS NOT NULL", "demo-junior"),
    (
        "read-parquet-own-table",
        "account_id = (SELECT min(account_id) FROM read_parquet('{table}/*.parquet') "
        "WHERE national_id LIKE '5%')",
        "demo-intern",
    ),
    ("read-parquet-quarantine", "account_id IN (FROM read_parquet('{quarantine}'))", "demo-senior"),
    ("read-ipc", "account_id IN (SELECT a FROM read_ipc('/etc/hostname'))", "demo-junior"),
    ("pg-read-file", "pg_read_file('/etc/passwd') IS NOT NULL", "demo-junior"),
    # Other tables, other columns.
    ("scalar-subquery", "(select contact_name from accounts) = 'x'", "demo-junior"),
    ("in-subquery", "account_id IN (SELECT account_id FROM accounts)", "demo-junior"),
    ("in-values", "account_id IN (VALUES ('001A'))", "demo-junior"),
    ("any-subquery", "account_id = ANY(SELECT '001A')", "demo-junior"),
    ("cte", "(WITH t AS (SELECT 1 AS a) SELECT a FROM t) = 1", "demo-junior"),
    ("other-table-column", "other_table.col = 1", "demo-junior"),
    ("qualified-withheld", "accounts.national_id = 'x'", "demo-junior"),
    ("withheld-by-level", f"national_id = '{CANARY_NATIONAL_ID}'", "demo-junior"),
    ("withheld-by-level-intern", "contact_email LIKE 'canary%'", "demo-intern"),
    ("confidential-number-intern", "lifetime_value > 100", "demo-intern"),
    ("denied-by-policy", "account_name = 'Secret Corp'", "de-bot"),
    ("internal-batch-id", "_batch_id = 'b0'", "demo-senior"),
    ("internal-quoted", '"_source_line" > 0', "demo-senior"),
    ("undeclared-stored-column", "cf_0137__c IS NOT NULL", "demo-senior"),
    ("physical-name", "\"National_Id__c\" = 'x'", "demo-junior"),
    ("upper-case-name", "NATIONAL_ID IS NOT NULL", "demo-junior"),
    ("regex-selector", "COLUMNS('^national_id$') IS NOT NULL", "demo-junior"),
    ("all-columns", "COLUMNS('.*') IS NOT NULL", "demo-junior"),
    # Statements, comments, broken nesting.
    ("drop-table", "account_id = '001A'; DROP TABLE accounts", "demo-senior"),
    ("second-select", "1 = 1; SELECT * FROM accounts", "demo-senior"),
    ("line-comment", "account_id = '001A' -- ' OR national_id IS NOT NULL", "demo-junior"),
    ("block-comment", "account_id = '001A' /* */ OR 1 = 1", "demo-junior"),
    ("comment-hides-subquery", "account_id IN (/**/SELECT '001A')", "demo-junior"),
    ("unbalanced", "1 = 1) OR (1 = 1", "demo-junior"),
    ("star", "*", "demo-junior"),
    ("too-long", "account_id = '" + "a" * 5_000 + "'", "demo-junior"),
    # Functions whose output size an argument sets (memory exhaustion of the gateway).
    ("lpad-amplifier", "lpad(account_id, 2000000000, 'x') = 'y'", "demo-junior"),
    ("repeat-amplifier", "REPEAT(account_name, 100000000) <> ''", "demo-junior"),
]


@pytest.mark.parametrize(("label", "where", "agent"), WHERE_ATTACKS, ids=[w[0] for w in WHERE_ATTACKS])
def test_sql_attacks_in_where_are_denied_and_audited(site: Site, label: str, where: str, agent: str) -> None:
    text = where.format(table=site.table(), quarantine=site.quarantine_file)
    client = site.client(agent)
    record = assert_denied(
        site, lambda: client.read(DATASET, where=text), rule="where", action="read", actor=agent
    )
    assert record.dataset == DATASET


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server in its own process, serving a CSV and logging every request it gets."""
    (tmp_path / "leak.csv").write_text("a\n1\n", encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "requests.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(tmp_path)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/leak.csv", log
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_where_never_makes_the_gateway_fetch_a_url(site: Site, http_server: tuple[str, Path]) -> None:
    """A subquery over read_csv('http://…') must be refused before polars' parser fetches the URL."""
    url, log = http_server
    client = site.client("demo-junior")
    for where in (
        f"account_id IN (SELECT a FROM read_csv('{url}'))",
        f"account_id = (SELECT max(a) FROM read_csv('{url}'))",
        f"account_id IN (FROM read_parquet('{url}'))",
    ):
        assert_denied(
            site,
            lambda w=where: client.read(DATASET, where=w),
            rule="where",
            action="read",
            actor="demo-junior",
        )
    time.sleep(0.2)  # let the server flush a request line, had there been one
    assert "GET" not in log.read_text() and "HEAD" not in log.read_text(), "the gateway fetched the URL"


def test_a_missing_and_an_existing_file_are_refused_alike(site: Site) -> None:
    """No file-existence oracle: the deny does not depend on whether the named file exists."""
    client = site.client("demo-senior")
    reasons = set()
    for path in (site.quarantine_file, site.quarantine_file.with_name("missing.parquet")):
        record = assert_denied(
            site,
            lambda p=path: client.read(DATASET, where=f"EXISTS (SELECT 1 FROM read_parquet('{p}'))"),
            rule="where",
            action="read",
            actor="demo-senior",
        )
        reasons.add(record.detail["reason"])
    assert len(reasons) == 1


# -- 3. predicates over masked columns see only the masked values ------------------------------------------
MASKED_PROBES = [
    ("length", "length(contact_name) > 12"),
    ("substr", "substr(contact_name, 1, 6) = 'Cassia'"),
    ("like", "contact_email LIKE 'canary%'"),
    ("upper", f"upper(contact_email) = '{CANARY_EMAIL.upper()}'"),
    ("cast", f"cast(phone AS varchar) = '{CANARY_PHONE}'"),
    ("guess-equals", f"phone = '{CANARY_PHONE}'"),
    ("guess-prefix", "phone LIKE '+1-646%'"),
    ("guess-in", f"contact_name IN ('{CANARY_NAME}', 'Olivia Smith')"),
    ("error-oracle", f"cast(CASE WHEN contact_name = '{CANARY_NAME}' THEN 'x' ELSE '1' END AS int) = 1"),
]


def _raw_matches(where: str) -> list[str] | None:
    """What the predicate would select over the stored (unmasked) values; None if it errors there."""
    try:
        return ROWS.filter(pl.sql_expr(where))["account_id"].to_list()
    except pl.exceptions.PolarsError:
        return None


@pytest.mark.parametrize(("label", "where"), MASKED_PROBES, ids=[m[0] for m in MASKED_PROBES])
def test_predicates_on_masked_columns_run_on_the_masked_values(site: Site, label: str, where: str) -> None:
    client = site.client("demo-junior")
    masked = client.read(DATASET).frame
    expected = masked.filter(pl.sql_expr(where))["account_id"].to_list()
    assert _raw_matches(where) != expected, "the probe must tell masked from clear values apart"
    result = client.read(DATASET, where=where)
    assert result.frame["account_id"].to_list() == expected
    _no_canary(result.frame.write_csv(), "a junior's result")
    last = records(site.engine)[-1]
    assert (last.action, last.decision, last.actor) == ("read", "allow", "demo-junior")
    assert {"contact_name", "contact_email", "phone"} <= set(last.detail["masks"])
    _no_canary(json.dumps(last.detail), "the audit log")


def test_where_cannot_widen_or_probe_past_the_policy_row_filter(site: Site) -> None:
    client = site.client("de-bot")
    germany = client.read(DATASET).frame
    assert set(germany["billing_country"]) == {"Germany"} and germany.height == 2
    assert client.read(DATASET, where="billing_country = 'France' OR 1 = 1").frame.height == 2
    assert client.read(DATASET, where="NOT (billing_country = 'Germany')").frame.height == 0
    # A predicate that fails on one row: failing on a hidden row would tell the agent that row exists.
    oracle = "cast(CASE WHEN account_id = '{}' THEN 'x' ELSE '1' END AS int) = 1"
    assert client.read(DATASET, where=oracle.format("001D")).frame.height == 2  # 001D is outside the filter
    assert_denied(
        site,
        lambda: client.read(DATASET, where=oracle.format("001B")),  # 001B is visible: its own error
        rule="query",
        action="read",
        actor="de-bot",
    )


# -- 4. forged, expired, rotated and revoked tokens -----------------------------------------------------------
def _fresh_agent(site: Site, name: str, level: str = "senior", **kwargs: Any) -> str:
    return add_agent(site.engine, name, level, **kwargs)


def _forge(site: Site, how: str) -> tuple[str, str]:
    """(agent, token) for one kind of forged or stale credential."""
    name = f"tok-{how}"
    token = _fresh_agent(site, name)
    token_id, secret = token.split("_")[1], token.split("_", 2)[2]
    if how == "wrong-secret":
        return name, f"assay_{token_id}_{secret[::-1]}"
    if how == "wrong-id":
        return name, f"assay_{'0' * 12 if token_id != '0' * 12 else '1' * 12}_{secret}"
    if how == "another-agents-token":
        return name, site.tokens["demo-senior"]
    if how == "unknown-agent":
        return "ghost-bot", token
    if how == "rotated-old":
        rotate_token(site.engine, name, reason="suite")
        return name, token
    if how == "revoked":
        revoke_agent(site.engine, name, reason="suite")
        return name, token
    if how == "reissued-old":
        revoke_agent(site.engine, name, reason="suite")
        add_agent(site.engine, name, "senior")
        return name, token
    if how == "expired":
        expiring = f"{name}-x"
        return expiring, _fresh_agent(site, expiring, expires_in=timedelta(microseconds=1))
    malformed = {
        "empty": "",
        "prefix-only": "assay_",
        "bearer": f"Bearer {token}",
        "trailing-newline": token + "\n",
        "upper-case": token.upper(),
        "truncated": token[:-1],
        "extra-char": token + "A",
        "sql": "' OR '1'='1",
        "not-a-string": cast(str, None),
    }
    return name, malformed[how]


TOKEN_ATTACKS = [
    "wrong-secret",
    "wrong-id",
    "another-agents-token",
    "unknown-agent",
    "rotated-old",
    "revoked",
    "reissued-old",
    "expired",
    "empty",
    "prefix-only",
    "bearer",
    "trailing-newline",
    "upper-case",
    "truncated",
    "extra-char",
    "sql",
    "not-a-string",
]


@pytest.mark.parametrize("how", TOKEN_ATTACKS)
def test_forged_and_stale_tokens_cannot_connect(site: Site, how: str) -> None:
    agent, token = _forge(site, how)
    record = assert_denied(
        site,
        lambda: connect(
            site.store, agent, token, contracts_dir=CONTRACTS, policy_path=site.policy_path, audit_key=KEY
        ),
        rule="identity",
        action="connect",
        actor=agent,
        error=AuthenticationError,
    )
    if isinstance(token, str) and len(token) > 20:
        # assay_<12 hex id>_<urlsafe secret>; the secret itself may hold "_" or "-".
        secret = token.strip().removeprefix("Bearer ").split("_", 2)[-1]
        assert len(secret) >= 16
        assert secret.lower() not in json.dumps(record.detail).lower(), "a token secret reached the audit log"


@pytest.mark.parametrize("how", ["rotated", "revoked", "expired"])
@pytest.mark.parametrize("action", ["read", "describe", "datasets"])
def test_a_connected_client_fails_at_once_when_its_token_stops_holding(
    site: Site, how: str, action: str
) -> None:
    name = f"live-{how}-{action}"
    lifetime = timedelta(hours=1) if how == "expired" else None
    token = _fresh_agent(site, name, expires_in=lifetime)
    policy = site.policy_path.parent / f"policy-{name}.yaml"
    policy.write_text(POLICY + f'  {name}: {{datasets: ["crm.*"], purpose: demo}}\n', encoding="utf-8")
    client = connect(site.store, name, token, contracts_dir=CONTRACTS, policy_path=policy, audit_key=KEY)
    if how == "rotated":
        rotate_token(site.engine, name, reason="suite")
    elif how == "revoked":
        revoke_agent(site.engine, name, reason="suite")
    else:  # the hour passes: the stored expiry is now in the past (a fixed sleep is flaky under load)
        with site.engine.begin() as conn:
            past = datetime.now(UTC) - timedelta(seconds=1)
            conn.execute(update(agents).where(agents.c.name == name).values(expires_at=past))
    calls: dict[str, Callable[[], object]] = {
        "read": lambda: client.read(DATASET),
        "describe": lambda: client.describe(DATASET),
        "datasets": client.datasets,
    }
    assert_denied(site, calls[action], rule="identity", action=action, actor=name, error=AuthenticationError)


# -- 5. staging, quarantine and uncertified Delta versions ---------------------------------------------------
def test_a_staged_newer_delta_version_is_invisible(site: Site) -> None:
    client = site.client("demo-senior")
    result = client.read(DATASET)
    assert result.provenance["version"] == 0
    assert "001X" not in result.frame["account_id"].to_list()
    assert client.read(DATASET, where="account_id = '001X'").frame.height == 0
    assert client.describe(DATASET)["version"] == 0
    assert {d["id"]: d["version"] for d in client.datasets()} == {DATASET: 0}
    assert CANARY_UNCERTIFIED not in result.frame.write_csv()


@pytest.mark.parametrize("action", ["read", "describe"])
def test_a_dataset_that_was_only_staged_is_denied(site: Site, action: str) -> None:
    client = site.client("demo-senior")
    assert "crm.leads" not in [d["id"] for d in client.datasets()]
    call = getattr(client, action)
    assert_denied(site, lambda: call("crm.leads"), rule="certified", action=action, actor="demo-senior")


QUARANTINE_IDS = [
    ("quarantine.crm_accounts", "certified"),
    ("quarantine.accounts", "certified"),
    ("crm.quarantine", "certified"),
    ("quarantine/crm.accounts", "dataset_id"),
    ("../quarantine/crm.accounts", "dataset_id"),
    ("crm.accounts/../../quarantine/crm.accounts", "dataset_id"),
]


@pytest.mark.parametrize(("dataset", "rule"), QUARANTINE_IDS, ids=[q[0] for q in QUARANTINE_IDS])
def test_quarantine_is_never_a_dataset_even_for_a_wildcard_grant(site: Site, dataset: str, rule: str) -> None:
    assert site.quarantine_file.exists() and CANARY_QUARANTINED.encode() in site.quarantine_file.read_bytes()
    client = site.client("greedy-bot")
    assert_denied(site, lambda: client.read(dataset), rule=rule, action="read", actor="greedy-bot")


def test_everything_a_wildcard_agent_can_list_holds_no_quarantined_or_uncertified_row(site: Site) -> None:
    client = site.client("greedy-bot")
    listed = [d["id"] for d in client.datasets()]
    assert listed == [DATASET]
    for dataset in listed:
        text = client.read(dataset).frame.write_csv()
        for canary in (CANARY_QUARANTINED, CANARY_UNCERTIFIED, CANARY_STAGED_ONLY, CANARY_UNDECLARED):
            assert canary not in text


# -- 6. columns above the level ----------------------------------------------------------------------------
COLUMN_ATTACKS = [
    ("intern-confidential", "demo-intern", ["account_id", "contact_email"], "classification"),
    ("intern-confidential-number", "demo-intern", ["lifetime_value"], "classification"),
    ("intern-restricted", "demo-intern", ["national_id"], "classification"),
    ("junior-restricted", "demo-junior", ["account_id", "national_id"], "classification"),
    ("policy-denied", "de-bot", ["account_name"], "policy_columns"),
    ("internal-column", "demo-senior", ["_batch_id"], "columns"),
    ("undeclared-stored-column", "demo-senior", ["cf_0137__c"], "columns"),
    ("physical-name", "demo-senior", ["National_Id__c"], "columns"),
    ("star", "demo-junior", ["*"], "columns"),
    ("expression", "demo-junior", ["account_id, national_id"], "columns"),
    ("a-string-not-a-list", "demo-junior", "national_id", "columns"),
]


@pytest.mark.parametrize(
    ("label", "agent", "columns", "rule"), COLUMN_ATTACKS, ids=[c[0] for c in COLUMN_ATTACKS]
)
def test_columns_above_the_level_or_outside_the_view_are_denied(
    site: Site, label: str, agent: str, columns: Any, rule: str
) -> None:
    client = site.client(agent)
    assert_denied(site, lambda: client.read(DATASET, columns=columns), rule=rule, action="read", actor=agent)


def test_what_each_level_gets_holds_no_clear_personal_data(site: Site) -> None:
    """The baseline the attacks above try to beat: intern and junior reads carry no canary at all."""
    for agent in ("demo-intern", "demo-junior", "de-bot"):
        result = site.client(agent).read(DATASET)
        _no_canary(result.frame.write_csv(), f"{agent}'s result")
        assert "cf_0137__c" not in result.frame.columns
        assert not [c for c in result.frame.columns if c.startswith("_")]


# -- 7. a policy file with an error: nothing is served, nobody is authenticated ------------------------------
BROKEN_POLICIES = {
    "yaml-syntax": "agents:\n  demo-senior: {datasets: [crm.*\n",
    "unknown-key": 'agents:\n  demo-senior: {datasets: ["crm.*"], purpose: demo, sudo: true}\n',
    "bad-glob": 'agents:\n  demo-senior: {datasets: ["../*"], purpose: demo}\n',
    "bad-row-filter": 'agents:\n  demo-senior: {datasets: ["crm.*"], purpose: demo, row_filter: "1 = ("}\n',
    "not-a-mapping": "- demo-senior\n",
}


@pytest.mark.parametrize("kind", sorted(BROKEN_POLICIES))
def test_a_policy_with_an_error_refuses_everyone_before_authenticating(
    site: Site, tmp_path: Path, kind: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(BROKEN_POLICIES[kind], encoding="utf-8")
    for token in (site.tokens["demo-senior"], "assay_000000000000_" + "A" * 43):
        since, _ = head(site.engine)
        with pytest.raises(PolicyError) as caught:
            connect(
                site.store, "demo-senior", token, contracts_dir=CONTRACTS, policy_path=policy, audit_key=KEY
            )
        assert str(policy) in str(caught.value) and "Fix" in str(caught.value)
        new = _new_records(site, since)
        assert not [r for r in new if r.action == "connect"], (
            "someone was authenticated under a broken policy"
        )
        assert not [r for r in new if r.decision == "allow"]
    invalid = [r for r in records(site.engine) if r.action == "policy_invalid"]
    assert invalid and invalid[-1].decision == "deny" and str(policy) in json.dumps(invalid[-1].detail)
    assert verify(site.engine, KEY).ok


# -- 8. what the audit log keeps of a where clause ---------------------------------------------------------
QUOTINGS = [
    ("single-quoted", f"contact_name = '{CANARY_NAME}'"),
    ("dollar-quoted", f"contact_name = $${CANARY_NAME}$$"),
    ("tagged-dollar-quoted", f"contact_name = $q${CANARY_NAME}$q$"),
]
# Ways to write a value that are not string literals; whether or not polars accepts them, the log hashes them.
SPELLINGS = [
    ("hex-literal", "contact_name = 0x" + CANARY_NAME.encode().hex(), CANARY_NAME.encode().hex()),
    ("binary-literal", "account_id = 0b1010011010", "1010011010"),
    ("underscored-number", "lifetime_value = 512_47_8093", "512_47_8093"),
    ("backtick-identifier", f"contact_name = `{CANARY_NAME}`", "Canaryfield"),
    ("double-quoted-identifier", f'contact_name = "{CANARY_NAME}"', "Canaryfield"),
    ("bare-word", "contact_name = canaryfield", "canaryfield"),
]


@pytest.mark.parametrize(("label", "where", "secret"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_a_value_spelled_as_anything_but_a_string_is_hashed_in_the_audit_log(
    site: Site, label: str, where: str, secret: str
) -> None:
    client = site.client("demo-senior")
    with contextlib.suppress(AccessDenied):
        client.read(DATASET, where=where)
    last = records(site.engine)[-1]
    assert last.action == "read"
    assert secret.lower() not in json.dumps(last.detail).lower(), f"the {label} value is stored in clear"
    assert (
        "contact_name" in json.dumps(last.detail)
        or "account_id" in json.dumps(last.detail)
        or ("lifetime_value" in json.dumps(last.detail))
    ), "column names stay readable"


def test_a_query_that_panics_polars_is_denied_and_audited_not_raised(site: Site) -> None:
    """A polars panic is a BaseException: it must become an audited deny, never a crash or a traceback."""
    client = site.client("demo-senior")
    for where in ("lifetime_value::decimal(50,2) > 0", "lifetime_value::decimal(38,40) > 0"):
        assert_denied(
            site,
            lambda w=where: client.read(DATASET, where=w),
            rule="internal",
            action="read",
            actor="demo-senior",
        )
    assert client.read(DATASET, where="account_id = '001A'").frame.height == 1, "the client still works"


@pytest.mark.parametrize(("label", "where"), QUOTINGS, ids=[q[0] for q in QUOTINGS])
def test_a_literal_is_hashed_in_the_audit_log_however_it_is_quoted(
    site: Site, label: str, where: str
) -> None:
    """polars accepts all three quotings as the same string literal; none may reach the log in clear."""
    client = site.client("demo-senior")
    result = client.read(DATASET, where=where)
    assert result.frame["account_id"].to_list() == ["001A"]
    last = records(site.engine)[-1]
    assert (last.action, last.decision) == ("read", "allow")
    assert "Canaryfield" not in json.dumps(last.detail), f"the {label} literal is stored in clear"
