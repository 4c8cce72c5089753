"""What an agent sees through the client: certified rows only, within its level and policy, every call audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl
import pytest
from deltalake import write_deltalake
from sqlalchemy import update

from governance import (
    AccessDenied,
    AuditError,
    AuthenticationError,
    Client,
    connect,
    literal_hash,
    revoke_agent,
    verify,
)
from governance.audit import AuditRecord, records
from governance.catalog_schema import agents

if TYPE_CHECKING:
    from conftest import Installation


def _connect(install: Installation, agent: str, token: str | None = None) -> Client:
    return connect(
        install.store,
        agent,
        token if token is not None else install.tokens[agent],
        contracts_dir=install.contracts_dir,
        policy_path=install.policy_path,
        audit_key=install.audit_key,
    )


def _last(install: Installation) -> AuditRecord:
    return records(install.store.engine())[-1]


def _audit_text(install: Installation) -> str:
    with install.store.engine().connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM audit_log").fetchall()
    return "\n".join(str(tuple(r)) for r in rows)


def _cells(frame: pl.DataFrame) -> set[str]:
    """Every value in the frame as text, to look for canaries anywhere in it."""
    return {str(v) for col in frame.columns for v in frame[col].to_list()}


def _raw_pii(install: Installation) -> set[str]:
    return {str(v) for col in install.pii for v in install.rows[col].to_list()}


def test_intern_sees_only_public_and_internal_columns(install: Installation) -> None:
    result = _connect(install, "intern-bot").read("crm.customers")
    assert result.frame.columns == ["customer_id", "billing_country", "segment"]
    assert result.frame.height == 4
    assert not _cells(result.frame) & _raw_pii(install)
    prov = result.provenance
    assert prov["dataset"] == "crm.customers" and prov["version"] == 0 and prov["rows"] == 4
    assert datetime.fromisoformat(prov["certified_at"]).tzinfo is not None
    assert set(prov["withheld"]) == {"annual_revenue", "full_name", "email", "birth_date", "national_id"}
    # customer_id is the primary key: an identifier, which interns see only through the keyed hash.
    assert prov["masks"] == {"customer_id": "hash"} and prov["row_filter"] is False
    clear = set(install.rows["customer_id"].to_list())
    hashed = result.frame["customer_id"].to_list()
    assert not clear & set(hashed) and all(len(h) == 16 for h in hashed) and len(set(hashed)) == 4


def test_junior_sees_personal_data_masked_and_restricted_withheld(install: Installation) -> None:
    client = _connect(install, "junior-bot")
    result = client.read("crm.customers")
    frame = result.frame
    assert "national_id" not in frame.columns and "national_id" in result.provenance["withheld"]
    assert not any(c.startswith("_") for c in frame.columns)
    assert not _cells(frame) & _raw_pii(install)
    assert frame["full_name"].to_list()[0] == "********nary"
    assert frame["birth_date"].dt.day().to_list() == [1, 1, 1, 1]
    assert all(len(h) == 16 for h in frame["email"].to_list())
    assert result.provenance["masks"] == {"full_name": "partial", "email": "hash", "birth_date": "month"}
    # Filters run on the masked view, so they cannot be used to probe clear values.
    assert client.read("crm.customers", where="email = 'alice@canary.test'").frame.height == 0


def test_senior_sees_personal_data_but_never_internal_columns(install: Installation) -> None:
    frame = _connect(install, "senior-bot").read("crm.customers").frame
    expected = install.rows.drop("_batch_id", "_source_line")
    assert frame.columns == expected.columns
    assert frame.equals(expected)


def test_requesting_a_withheld_column_denies_the_call_and_is_audited(install: Installation) -> None:
    client = _connect(install, "intern-bot")
    with pytest.raises(AccessDenied, match="classification") as err:
        client.read("crm.customers", columns=["customer_id", "annual_revenue"])
    assert "annual_revenue" in str(err.value) and "9800000" not in str(err.value)
    last = _last(install)
    assert (last.actor, last.action, last.dataset, last.decision) == (
        "intern-bot",
        "read",
        "crm.customers",
        "deny",
    )
    assert last.detail["rule"] == "classification"
    with pytest.raises(AccessDenied, match="not a column"):
        client.read("crm.customers", columns=["no_such_column"])
    with pytest.raises(AccessDenied, match="not a column"):
        client.read("crm.customers", columns=["_batch_id"])


def test_agent_without_policy_reads_nothing_and_is_audited(install: Installation) -> None:
    client = _connect(install, "stranger")
    with pytest.raises(AccessDenied, match="no policy entry"):
        client.datasets()
    assert (_last(install).action, _last(install).decision) == ("datasets", "deny")
    with pytest.raises(AccessDenied, match="no policy entry"):
        client.read("crm.customers")
    last = _last(install)
    assert (last.actor, last.action, last.decision, last.detail["rule"]) == (
        "stranger",
        "read",
        "deny",
        "policy",
    )


@pytest.mark.parametrize("how", ["wrong", "revoked", "expired", "unknown"])
def test_bad_credentials_fail_connect_and_are_audited(install: Installation, how: str) -> None:
    token = install.tokens["junior-bot"]
    agent = "junior-bot"
    if how == "wrong":
        token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    elif how == "revoked":
        revoke_agent(install.store.engine(), "junior-bot")
    elif how == "expired":
        with install.store.engine().begin() as conn:
            past = datetime.now(UTC) - timedelta(days=1)
            conn.execute(update(agents).where(agents.c.name == "junior-bot").values(expires_at=past))
    else:
        agent = "ghost-bot"
    with pytest.raises(AuthenticationError):
        _connect(install, agent, token)
    last = _last(install)
    assert (last.actor, last.action, last.decision, last.detail["rule"]) == (
        agent,
        "connect",
        "deny",
        "identity",
    )
    assert token.split("_", 2)[2] not in _audit_text(install)


def test_where_on_a_withheld_column_is_denied(install: Installation) -> None:
    client = _connect(install, "intern-bot")
    with pytest.raises(AccessDenied, match="where tests annual_revenue, withheld"):
        client.read("crm.customers", where="annual_revenue > 1000000")
    assert _last(install).detail["rule"] == "where"
    for sneaky in (
        "\"_batch_id\" = 'b1'",
        "customer_id IN (SELECT customer_id FROM customers)",
        "1 = 1) OR (1 = 1",
        "COLUMNS('.*') IS NOT NULL",
    ):
        with pytest.raises(AccessDenied, match="where"):
            client.read("crm.customers", where=sneaky)


def test_where_literals_are_stored_as_keyed_hashes(install: Installation) -> None:
    client = _connect(install, "senior-bot")
    result = client.read("crm.customers", where="full_name = 'Chloe Canary' OR annual_revenue = 9876543")
    assert result.frame["customer_id"].to_list() == ["C000003"]
    logged = _audit_text(install)
    assert "Chloe" not in logged and "9876543" not in logged
    assert literal_hash(install.audit_key, "Chloe Canary") in _last(install).detail["where"]


def test_an_uncertified_newer_delta_version_is_never_read(install: Installation) -> None:
    newer = install.rows.with_columns(
        pl.col("customer_id").str.replace("C0", "X9"), pl.lit("b2").alias("_batch_id")
    )
    write_deltalake(install.table(), newer.to_arrow(), mode="append")  # Delta version 1, not certified
    client = _connect(install, "senior-bot")
    result = client.read("crm.customers")
    assert result.provenance["version"] == 0
    assert sorted(result.frame["customer_id"]) == sorted(install.rows["customer_id"])
    install.certify("crm.customers", version=1, rows=8)
    after = client.read("crm.customers")
    assert after.provenance["version"] == 1 and after.frame.height == 8


def test_datasets_lists_only_granted_certified_datasets(install: Installation) -> None:
    install.catalog.register_dataset(
        "crm.leads",
        contract_version="1.0.0",
        contract_checksum="0" * 64,
        business_owner="a@example.com",
        operations_owner="team:x",
    )
    client = _connect(install, "intern-bot")
    listed = client.datasets()
    assert [d["id"] for d in listed] == ["crm.customers"]
    assert listed[0]["version"] == 0 and listed[0]["rows"] == 4
    with pytest.raises(AccessDenied, match="no certified version"):
        client.read("crm.leads")
    with pytest.raises(AccessDenied, match="not granted"):
        client.read("erp.orders")


def test_policy_row_filter_and_column_deny(install: Installation) -> None:
    result = _connect(install, "de-bot").read("crm.customers")
    assert result.frame["billing_country"].to_list() == ["DE", "DE"]
    assert "segment" not in result.frame.columns and "segment" in result.provenance["withheld"]
    assert result.provenance["row_filter"] is True
    # How many rows lie outside its filter is not the agent's to know: no whole-table count.
    client = _connect(install, "de-bot")
    assert [d["rows"] for d in client.datasets() if d["id"] == "crm.customers"] == [None]
    assert client.describe("crm.customers")["rows"] is None
    with pytest.raises(AccessDenied, match="policy denies"):
        _connect(install, "de-bot").read("crm.customers", columns=["segment"])


def test_bad_dataset_ids_and_limits(install: Installation) -> None:
    client = _connect(install, "junior-bot")
    for bad in ("../../etc/passwd", "crm.customers; DROP TABLE agents", "CRM.customers", ""):
        with pytest.raises(AccessDenied, match="dataset_id"):
            client.read(bad)
        assert _last(install).dataset is None
    with pytest.raises(AccessDenied, match="limit"):
        client.read("crm.customers", limit=-1)
    assert client.read("crm.customers", limit=2).frame.height == 2
    assert client.read("crm.customers", limit=10**9).provenance["limit"] == 10_000
    assert client.read("crm.customers").provenance["limit"] == 1000


def test_describe_shows_what_the_agent_would_see(install: Installation) -> None:
    described = _connect(install, "junior-bot").describe("crm.customers")
    columns = {c["name"]: c for c in described["columns"]}
    assert columns["email"]["mask"] == "hash" and columns["email"]["type"] == "String"
    assert columns["national_id"]["withheld"] == "classification"
    assert columns["customer_id"]["mask"] is None and columns["customer_id"]["withheld"] is None
    assert "_batch_id" not in columns
    assert (_last(install).action, _last(install).decision) == ("describe", "allow")


def test_every_call_is_audited_and_the_chain_holds(install: Installation) -> None:
    _connect(install, "junior-bot")  # the first connect also records the policy it loaded (policy_change)
    before = len(records(install.store.engine()))
    client = _connect(install, "junior-bot")
    client.datasets()
    client.describe("crm.customers")
    client.read("crm.customers", limit=1)
    with pytest.raises(AccessDenied):
        client.read("hr.salaries")
    logged = records(install.store.engine())[before:]
    assert [(r.action, r.decision) for r in logged] == [
        ("connect", "allow"),
        ("datasets", "allow"),
        ("describe", "allow"),
        ("read", "allow"),
        ("read", "deny"),
    ]
    assert logged[3].detail["rows"] == 1 and logged[3].detail["version"] == 0
    assert verify(install.store.engine()).ok


def test_no_data_without_an_audit_record(install: Installation) -> None:
    client = _connect(install, "senior-bot")
    with install.store.engine().begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_log_gone")
    with pytest.raises(AuditError):
        client.read("crm.customers")
