"""Agent identities: who an agent is, its autonomy level, and the token that proves it.

A token is printed once, when the agent is added, and looks like ``assay_<token_id>_<secret>``:
``token_id`` is 12 hex characters that name the token in logs and the catalog, ``secret`` is 256 random
bits. The catalog keeps only the SHA-256 of the whole token (the secret has enough entropy that a slow
password hash adds nothing), and :func:`authenticate` compares hashes in constant time.

Autonomy levels cap the classification an agent may see: ``intern`` up to ``internal``, ``junior`` up
to ``confidential`` (personal data masked), ``senior`` up to ``restricted``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from governance import audit
from governance.catalog import migrate
from governance.catalog_schema import agents
from governance.errors import AuditError, AuthenticationError, GovernanceError

LEVELS = ("intern", "junior", "senior")
LEVEL_CAP = {"intern": "internal", "junior": "confidential", "senior": "restricted"}
AGENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
TOKEN_FORMAT = re.compile(r"^assay_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")

# Compared against when the agent is unknown, so a miss costs the same as a wrong token.
_DUMMY_HASH = hashlib.sha256(b"assay-no-such-agent").hexdigest()


@dataclass(frozen=True)
class Agent:
    """An authenticated (or listed) agent; never carries its token or the token's hash."""

    name: str
    level: str
    token_id: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def cap(self) -> str:
        """The highest classification this agent's level may see."""
        return LEVEL_CAP[self.level]


def add_agent(
    engine: Engine, name: str, level: str, expires_in: timedelta | None = None, *, actor: str = "admin"
) -> str:
    """Create an agent and return its token; the token is shown only this once.

    A name that belongs to a revoked agent may be reused (the audit log keeps the history); a name in
    use raises :class:`GovernanceError`. The act is recorded in the audit log under ``actor``.
    """
    _check_name(name)
    if level not in LEVELS:
        raise GovernanceError(
            f"agent {name}: level {level!r} is not known. Fix: use one of {', '.join(LEVELS)}."
        )
    if expires_in is not None and expires_in <= timedelta(0):
        raise GovernanceError(
            f"agent {name}: expires_in must be positive. Fix: pass e.g. timedelta(days=90)."
        )
    migrate(engine)
    token_id = secrets.token_hex(6)
    token = f"assay_{token_id}_{secrets.token_urlsafe(32)}"
    at = datetime.now(UTC)
    values: dict[str, Any] = dict(
        level=level,
        token_id=token_id,
        token_hash=_token_hash(token),
        created_at=at,
        expires_at=at + expires_in if expires_in is not None else None,
        revoked_at=None,
    )
    try:
        with engine.begin() as conn:
            existing = conn.execute(select(agents.c.revoked_at).where(agents.c.name == name)).first()
            if existing is not None and existing.revoked_at is None:
                raise GovernanceError(
                    f"agent {name} already exists. Fix: pick another name, or revoke it first "
                    "(`assay agents revoke`) to issue a new token."
                )
            if existing is None:
                conn.execute(agents.insert().values(name=name, **values))
            else:
                conn.execute(update(agents).where(agents.c.name == name).values(**values))
            detail = {"level": level, "token_id": token_id, "expires_at": _iso(values["expires_at"])}
            audit.append_in(
                conn, actor=actor, action="agent.add", dataset=None, decision="allow", detail=detail
            )
    except SQLAlchemyError as exc:
        raise AuditError(f"agent {name}: could not record the new agent ({type(exc).__name__}).") from exc
    return token


def revoke_agent(engine: Engine, name: str, *, actor: str = "admin", reason: str = "") -> None:
    """Revoke an agent's token at once; later connects fail. Recorded in the audit log."""
    _check_name(name)
    migrate(engine)
    try:
        with engine.begin() as conn:
            result = conn.execute(
                update(agents)
                .where(agents.c.name == name, agents.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            if result.rowcount != 1:
                raise GovernanceError(
                    f"agent {name} does not exist or is already revoked. Fix: check the name."
                )
            audit.append_in(
                conn,
                actor=actor,
                action="agent.revoke",
                dataset=None,
                decision="allow",
                detail={"reason": reason},
            )
    except SQLAlchemyError as exc:
        raise AuditError(f"agent {name}: could not record the revocation ({type(exc).__name__}).") from exc


def list_agents(engine: Engine) -> list[Agent]:
    """Every agent, revoked ones included, by name."""
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(agents).order_by(agents.c.name)).mappings().all()
    return [_agent(r) for r in rows]


def authenticate(engine: Engine, name: str, token: str, *, at: datetime | None = None) -> Agent:
    """The agent that ``token`` proves, or :class:`AuthenticationError`.

    Rejects a malformed token, an unknown agent, a wrong token (both with the same message, so a caller
    cannot probe for names), and an expired or revoked token. Messages never contain the token.
    """
    if not isinstance(name, str) or not AGENT_NAME.fullmatch(name):
        raise AuthenticationError(
            "authentication failed: the agent name is not valid ([a-z0-9][a-z0-9_-]{0,62})."
        )
    if not isinstance(token, str) or not TOKEN_FORMAT.fullmatch(token):
        raise AuthenticationError(
            f"authentication failed for agent {name}: the token is malformed. "
            "Fix: pass the whole token printed by `assay agents add` (assay_<id>_<secret>)."
        )
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(select(agents).where(agents.c.name == name)).mappings().first()
    stored = row["token_hash"] if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(stored.encode(), _token_hash(token).encode()) or row is None:
        raise AuthenticationError(
            f"authentication failed for agent {name}: unknown agent or wrong token. "
            "Fix: use the token printed when the agent was added."
        )
    agent = _agent(row)
    now = at or datetime.now(UTC)
    if agent.revoked_at is not None:
        raise AuthenticationError(f"authentication failed for agent {name}: the token was revoked.")
    if agent.expires_at is not None and agent.expires_at <= now:
        raise AuthenticationError(
            f"authentication failed for agent {name}: the token expired at {agent.expires_at.isoformat()}. "
            "Fix: ask an administrator for a new token."
        )
    return agent


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not AGENT_NAME.fullmatch(name):
        raise GovernanceError(
            "agent name is not valid. Fix: 1-63 characters of [a-z0-9_-], starting with a letter or digit."
        )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _agent(row: Any) -> Agent:
    return Agent(
        name=row["name"],
        level=row["level"],
        token_id=row["token_id"],
        created_at=_utc(row["created_at"]),
        expires_at=_utc(row["expires_at"]) if row["expires_at"] is not None else None,
        revoked_at=_utc(row["revoked_at"]) if row["revoked_at"] is not None else None,
    )


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; the catalog only ever stores UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
