"""Tokens: printed once, stored hashed, and every way of presenting a bad one is refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update

from governance import (
    AuthenticationError,
    GovernanceError,
    add_agent,
    authenticate,
    list_agents,
    revoke_agent,
)
from governance.catalog_schema import agents

if TYPE_CHECKING:
    from conftest import Installation


def test_token_format_and_only_its_hash_is_stored(install: Installation) -> None:
    token = install.tokens["junior-bot"]
    match = re.fullmatch(r"assay_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", token)
    assert match
    with install.store.engine().connect() as conn:
        row = conn.execute(select(agents).where(agents.c.name == "junior-bot")).mappings().one()
    assert row["token_id"] == match.group(1)
    assert match.group(2) not in str(dict(row))
    agent = authenticate(install.store.engine(), "junior-bot", token)
    assert (agent.name, agent.level, agent.cap) == ("junior-bot", "junior", "confidential")


@pytest.mark.parametrize(
    "who, token",
    [
        ("junior-bot", "assay_000000000000_" + "A" * 43),  # well formed, wrong
        ("junior-bot", "not-a-token"),  # malformed
        ("nobody", None),  # unknown agent, with someone else's valid token
        ("intern-bot", None),  # another agent's token
    ],
)
def test_wrong_malformed_or_borrowed_token_is_refused(
    install: Installation, who: str, token: str | None
) -> None:
    presented = token or install.tokens["junior-bot"]
    with pytest.raises(AuthenticationError) as err:
        authenticate(install.store.engine(), who, presented)
    assert presented not in str(err.value)
    assert install.tokens["junior-bot"].split("_", 2)[2] not in str(err.value)


def test_revoked_token_is_refused(install: Installation) -> None:
    engine = install.store.engine()
    revoke_agent(engine, "junior-bot", reason="rotated")
    with pytest.raises(AuthenticationError, match="revoked"):
        authenticate(engine, "junior-bot", install.tokens["junior-bot"])


def test_expired_token_is_refused(install: Installation) -> None:
    engine = install.store.engine()
    token = add_agent(engine, "temp-bot", "intern", expires_in=timedelta(hours=1))
    assert authenticate(engine, "temp-bot", token).expires_at is not None
    with pytest.raises(AuthenticationError, match="expired"):
        authenticate(engine, "temp-bot", token, at=datetime.now(UTC) + timedelta(hours=2))
    with engine.begin() as conn:
        conn.execute(
            update(agents).where(agents.c.name == "temp-bot").values(expires_at=datetime(2000, 1, 1))
        )
    with pytest.raises(AuthenticationError, match="expired"):
        authenticate(engine, "temp-bot", token)


def test_names_levels_and_duplicates_are_checked(install: Installation) -> None:
    engine = install.store.engine()
    for name in ("Upper", "-dash", "a" * 64, "has space", ""):
        with pytest.raises(GovernanceError, match="agent name"):
            add_agent(engine, name, "intern")
    with pytest.raises(GovernanceError, match="level"):
        add_agent(engine, "ok-bot", "admin")
    with pytest.raises(GovernanceError, match="already exists"):
        add_agent(engine, "junior-bot", "senior")
    revoke_agent(engine, "junior-bot")
    new_token = add_agent(engine, "junior-bot", "senior")  # a revoked name may be reissued
    assert authenticate(engine, "junior-bot", new_token).level == "senior"
    with pytest.raises(AuthenticationError):
        authenticate(engine, "junior-bot", install.tokens["junior-bot"])
    assert "junior-bot" in [a.name for a in list_agents(engine)]
