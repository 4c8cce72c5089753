"""Promote, demote, rotate, revoke and expire: each audited with the change, each effective at once,
even for a client that connected before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import update

from governance import (
    AuditError,
    AuthenticationError,
    Client,
    GovernanceError,
    add_agent,
    connect,
    demote_agent,
    get_agent,
    promote_agent,
    revoke_agent,
    rotate_token,
    verify,
)
from governance.audit import records
from governance.catalog_schema import agents

if TYPE_CHECKING:
    from conftest import Installation


def _connect(install: Installation, agent: str, token: str | None = None) -> Client:
    return connect(
        install.store,
        agent,
        token or install.tokens[agent],
        contracts_dir=install.contracts_dir,
        policy_path=install.policy_path,
        audit_key=install.audit_key,
    )


def test_promotion_and_demotion_apply_to_an_open_client_and_are_audited(install: Installation) -> None:
    engine = install.store.engine()
    client = _connect(install, "junior-bot")
    assert "national_id" in client.read("crm.customers").provenance["withheld"]
    promoted = promote_agent(engine, "junior-bot", "senior", reason="90 days clean", actor="officer:ana")
    assert promoted.level == "senior"
    assert "national_id" in client.read("crm.customers").frame.columns  # at the next call
    last = [r for r in records(engine) if r.action.startswith("agent.")][-1]
    assert (last.actor, last.action, last.decision) == ("officer:ana", "agent.promote", "allow")
    assert last.detail == {
        "agent": "junior-bot",
        "old_level": "junior",
        "new_level": "senior",
        "reason": "90 days clean",
        "token_id": promoted.token_id,
    }
    demote_agent(engine, "junior-bot", "intern", reason="leaked a summary", actor="officer:ana")
    frame = client.read("crm.customers").frame
    assert "email" not in frame.columns and "full_name" not in frame.columns
    assert get_agent(engine, "junior-bot").level == "intern"  # type: ignore[union-attr]
    assert records(engine)[-2].detail["old_level"] == "senior"
    assert verify(engine, install.audit_key).ok


@pytest.mark.parametrize(
    "change, level, reason, message",
    [
        (promote_agent, "intern", "x", "above"),  # a promotion must go up
        (promote_agent, "junior", "x", "above"),  # ... not sideways
        (demote_agent, "senior", "x", "below"),
        (promote_agent, "senior", "   ", "reason is required"),
        (promote_agent, "admin", "x", "not known"),
    ],
)
def test_level_changes_need_a_direction_and_a_reason(
    install: Installation, change: object, level: str, reason: str, message: str
) -> None:
    engine = install.store.engine()
    before = len(records(engine))
    with pytest.raises(GovernanceError, match=message):
        change(engine, "junior-bot", level, reason=reason)  # type: ignore[operator]
    assert get_agent(engine, "junior-bot").level == "junior"  # type: ignore[union-attr]
    assert len(records(engine)) == before  # nothing happened, so nothing is recorded


def test_unknown_or_revoked_agents_cannot_change_level(install: Installation) -> None:
    engine = install.store.engine()
    with pytest.raises(GovernanceError, match="does not exist"):
        promote_agent(engine, "ghost-bot", "senior", reason="x")
    revoke_agent(engine, "junior-bot", reason="left")
    with pytest.raises(GovernanceError, match="revoked"):
        promote_agent(engine, "junior-bot", "senior", reason="x")


def test_a_change_whose_audit_record_fails_does_not_happen(install: Installation) -> None:
    engine = install.store.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_log_gone")
    with pytest.raises(AuditError):
        promote_agent(engine, "junior-bot", "senior", reason="x")
    with pytest.raises(AuditError):
        rotate_token(engine, "junior-bot")
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_log_gone RENAME TO audit_log")
    assert get_agent(engine, "junior-bot").level == "junior"  # type: ignore[union-attr]
    _connect(install, "junior-bot")  # the old token still works: the rotation rolled back


def test_rotation_fails_the_old_token_at_once_even_on_an_open_client(install: Installation) -> None:
    engine = install.store.engine()
    client = _connect(install, "junior-bot")
    old_id = client.agent.token_id
    new_token = rotate_token(engine, "junior-bot", reason="suspected leak", actor="officer:ana")
    with pytest.raises(AuthenticationError, match="replaced"):
        client.read("crm.customers")
    denied = records(engine)[-1]
    assert (denied.action, denied.decision, denied.detail["rule"]) == ("read", "deny", "identity")
    with pytest.raises(AuthenticationError):
        _connect(install, "junior-bot")
    fresh = _connect(install, "junior-bot", new_token)
    assert fresh.read("crm.customers", limit=1).frame.height == 1
    rotated = [r for r in records(engine) if r.action == "agent.rotate"][-1]
    assert rotated.detail["old_token_id"] == old_id and rotated.detail["token_id"] == fresh.agent.token_id
    assert new_token not in str(rotated.detail) and new_token.split("_", 2)[2] not in str(records(engine))


def test_a_retired_token_is_recognised_by_its_whole_secret_and_named_in_the_audit(
    install: Installation,
) -> None:
    """Rotated away or revoked and reissued: a later use says so (audited under the agent), a forgery does not."""
    from governance.identity import retired_token

    engine = install.store.engine()
    first = install.tokens["junior-bot"]
    second = rotate_token(engine, "junior-bot", reason="routine")
    with pytest.raises(AuthenticationError, match=r"this token was retired \(rotated at"):
        _connect(install, "junior-bot", first)
    denied = records(engine)[-1]
    assert (denied.actor, denied.action, denied.detail["rule"]) == ("junior-bot", "connect", "identity")
    assert first.split("_", 2)[2] not in str(denied.detail)

    revoke_agent(engine, "junior-bot", reason="left the project")
    third = add_agent(engine, "junior-bot", "junior")
    found = retired_token(engine, second)
    assert found is not None and (found.agent, found.how) == ("junior-bot", "reissued")
    assert retired_token(engine, first) is not None and retired_token(engine, third) is None
    forged = first[: len("assay_") + 13] + "q" * 43  # a retired id with a made-up secret proves nothing
    assert retired_token(engine, forged) is None
    with pytest.raises(AuthenticationError, match="unknown agent or wrong token"):
        _connect(install, "junior-bot", forged)
    assert _connect(install, "junior-bot", third).agent.token_id == third.split("_")[1]


def test_rotation_keeps_the_lifetime_unless_given_a_new_one(install: Installation) -> None:
    engine = install.store.engine()
    add_agent(engine, "temp-bot", "intern", expires_in=timedelta(days=2))
    expires = get_agent(engine, "temp-bot").expires_at  # type: ignore[union-attr]
    rotate_token(engine, "temp-bot")
    assert get_agent(engine, "temp-bot").expires_at == expires  # type: ignore[union-attr]
    with engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(minutes=1)
        conn.execute(update(agents).where(agents.c.name == "temp-bot").values(expires_at=past))
    with pytest.raises(GovernanceError, match="expired"):
        rotate_token(engine, "temp-bot")  # never silently turn an expired token into a lasting one
    rotate_token(engine, "temp-bot", expires_in=timedelta(days=7))
    renewed = get_agent(engine, "temp-bot").expires_at  # type: ignore[union-attr]
    assert renewed is not None and renewed > datetime.now(UTC) + timedelta(days=6)
    with pytest.raises(GovernanceError, match="positive"):
        rotate_token(engine, "temp-bot", expires_in=timedelta(0))


def test_revocation_fails_an_open_client_at_once(install: Installation) -> None:
    engine = install.store.engine()
    client = _connect(install, "senior-bot")
    client.datasets()
    revoke_agent(engine, "senior-bot", reason="decommissioned", actor="officer:ana")
    for call in (
        client.datasets,
        lambda: client.read("crm.customers"),
        lambda: client.describe("crm.customers"),
    ):
        with pytest.raises(AuthenticationError, match="revoked"):
            call()
    revoked = [r for r in records(engine) if r.action == "agent.revoke"][-1]
    assert revoked.detail["reason"] == "decommissioned" and revoked.detail["agent"] == "senior-bot"
    with pytest.raises(GovernanceError, match="revoked"):
        revoke_agent(engine, "senior-bot")


def test_an_expiring_token_fails_at_once_when_it_expires(install: Installation) -> None:
    engine = install.store.engine()
    token = add_agent(engine, "temp-bot", "intern", expires_in=timedelta(hours=1))
    install.tokens["temp-bot"] = token
    with open(install.policy_path, "a", encoding="utf-8") as policy:
        policy.write('  temp-bot:\n    datasets: ["crm.*"]\n    purpose: support\n')
    client = _connect(install, "temp-bot")
    assert client.read("crm.customers").frame.height == 4
    with engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(update(agents).where(agents.c.name == "temp-bot").values(expires_at=past))
    with pytest.raises(AuthenticationError, match="expired"):
        client.read("crm.customers")
    with pytest.raises(AuthenticationError, match="expired"):
        _connect(install, "temp-bot")
    assert records(engine)[-1].detail["rule"] == "identity"
