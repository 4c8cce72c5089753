"""Agent identities: who an agent is, its autonomy level, and the token that proves it.

A token is printed once, when the agent is added, and looks like ``assay_<token_id>_<secret>``:
``token_id`` is 12 hex characters that name the token in logs and the catalog, ``secret`` is 256 random
bits. The catalog keeps only the SHA-256 of the whole token (the secret has enough entropy that a slow
password hash adds nothing), and :func:`authenticate` compares hashes in constant time.

Autonomy levels cap the classification an agent may see: ``intern`` up to ``internal``, ``junior`` up
to ``confidential`` (personal data masked), ``senior`` up to ``restricted``.

Every change to an identity (add, promote, demote, rotate, revoke) is one transaction with its audit
record: the change never happens unrecorded. A rotated or revoked token, and an expired one, fails at
once, also for a client that connected before (:func:`current` re-checks on every call).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError

from governance import audit
from governance.catalog import migrate
from governance.catalog_schema import agents, retired_tokens
from governance.errors import AuditError, AuthenticationError, GovernanceError
from governance.store import reading

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
    engine: Engine,
    name: str,
    level: str,
    expires_in: timedelta | None = None,
    *,
    actor: str = "admin",
    audit_key: bytes | None = None,
) -> str:
    """Create an agent and return its token; the token is shown only this once.

    A name that belongs to a revoked agent may be reused (the audit log keeps the history); a name in
    use raises :class:`GovernanceError`. The act is recorded in the audit log under ``actor``
    (``audit_key``, when given, lets the append anchor the chain).
    """
    _check_name(name)
    _check_level(name, level)
    _check_lifetime(name, expires_in)
    migrate(engine)
    token, token_id = _new_token()
    at = datetime.now(UTC)
    values: dict[str, Any] = dict(
        level=level,
        token_id=token_id,
        token_hash=_token_hash(token),
        created_at=at,
        expires_at=at + expires_in if expires_in is not None else None,
        revoked_at=None,
    )
    with _change(engine, name, "new agent") as conn:
        existing = conn.execute(select(agents).where(agents.c.name == name)).mappings().first()
        if existing is not None and existing["revoked_at"] is None:
            raise GovernanceError(
                f"agent {name} already exists. Fix: pick another name, or revoke it first "
                "(`assay agents revoke`) to issue a new token."
            )
        if existing is None:
            conn.execute(agents.insert().values(name=name, **values))
        else:
            _retire(conn, existing, "reissued", at)
            conn.execute(update(agents).where(agents.c.name == name).values(**values))
        detail = {"level": level, "token_id": token_id, "expires_at": _iso(values["expires_at"])}
        _record(conn, actor, "agent.add", name, detail, audit_key)
    return token


def revoke_agent(
    engine: Engine, name: str, *, actor: str = "admin", reason: str = "", audit_key: bytes | None = None
) -> None:
    """Revoke an agent's token at once; later calls with it fail. Recorded in the audit log."""
    _check_name(name)
    migrate(engine)
    with _change(engine, name, "revocation") as conn:
        row = _active_row(conn, name)
        conn.execute(update(agents).where(agents.c.name == name).values(revoked_at=datetime.now(UTC)))
        detail = {"token_id": row["token_id"], "level": row["level"], "reason": reason}
        _record(conn, actor, "agent.revoke", name, detail, audit_key)


def promote_agent(
    engine: Engine,
    name: str,
    level: str,
    *,
    reason: str,
    actor: str = "admin",
    audit_key: bytes | None = None,
) -> Agent:
    """Raise an agent's autonomy level; ``reason`` is required and recorded with the old and new level."""
    return _set_level(engine, name, level, reason, "promote", actor, audit_key)


def demote_agent(
    engine: Engine,
    name: str,
    level: str,
    *,
    reason: str,
    actor: str = "admin",
    audit_key: bytes | None = None,
) -> Agent:
    """Lower an agent's autonomy level; takes effect on the agent's next call, even on an open client."""
    return _set_level(engine, name, level, reason, "demote", actor, audit_key)


def rotate_token(
    engine: Engine,
    name: str,
    *,
    expires_in: timedelta | None = None,
    reason: str = "",
    actor: str = "admin",
    audit_key: bytes | None = None,
) -> str:
    """Replace an agent's token and return the new one (shown only this once); the old one fails at once.

    The new token keeps the old one's expiry unless ``expires_in`` gives it a new lifetime; an expired
    token must be given one, so a rotation never silently turns an expiring token into a lasting one.
    """
    _check_name(name)
    _check_lifetime(name, expires_in)
    migrate(engine)
    token, token_id = _new_token()
    at = datetime.now(UTC)
    with _change(engine, name, "token rotation") as conn:
        row = _active_row(conn, name)
        old = _agent(row)
        if expires_in is not None:
            expires_at: datetime | None = at + expires_in
        elif old.expires_at is not None and old.expires_at <= at:
            raise GovernanceError(
                f"agent {name}: its token expired at {old.expires_at.isoformat()}. "
                "Fix: give the new token a lifetime (--expires-days N)."
            )
        else:
            expires_at = old.expires_at
        _retire(conn, row, "rotated", at)
        conn.execute(
            update(agents)
            .where(agents.c.name == name)
            .values(token_id=token_id, token_hash=_token_hash(token), expires_at=expires_at)
        )
        detail = {
            "old_token_id": old.token_id,
            "token_id": token_id,
            "expires_at": _iso(expires_at),
            "reason": reason,
        }
        _record(conn, actor, "agent.rotate", name, detail, audit_key)
    return token


def get_agent(engine: Engine, name: str) -> Agent | None:
    """The agent called ``name`` (revoked or not), or None."""
    if not isinstance(name, str) or not AGENT_NAME.fullmatch(name):
        return None
    migrate(engine)
    with reading(engine) as conn:
        return _agent_in(conn, name)


_BY_NAME = select(agents).where(agents.c.name == bindparam("name"))


def _agent_in(conn: Connection, name: str) -> Agent | None:
    row = conn.execute(_BY_NAME, {"name": name}).mappings().first()
    return _agent(row) if row is not None else None


def current(engine: Engine | Connection, agent: Agent, *, at: datetime | None = None) -> Agent:
    """``agent`` as it stands now, or :class:`AuthenticationError` if its token no longer holds.

    Called on every client call, so a rotated, revoked or expired token fails at once, and a new level
    applies at once. Pass a ``Connection`` to read it in the caller's transaction.
    """
    if isinstance(engine, Connection):
        now_agent = _agent_in(engine, agent.name)
    else:
        now_agent = get_agent(engine, agent.name)
    if now_agent is None or now_agent.token_id != agent.token_id:
        raise AuthenticationError(
            f"authentication failed for agent {agent.name}: the token was replaced (rotated or reissued). "
            "Fix: use the new token."
        )
    _check_state(now_agent, at or datetime.now(UTC))
    return now_agent


def list_agents(engine: Engine) -> list[Agent]:
    """Every agent, revoked ones included, by name."""
    migrate(engine)
    with reading(engine) as conn:
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
    with reading(engine) as conn:
        row = conn.execute(select(agents).where(agents.c.name == name)).mappings().first()
        stored = row["token_hash"] if row is not None else _DUMMY_HASH
        wrong = not hmac.compare_digest(stored.encode(), _token_hash(token).encode()) or row is None
        old = _retired_in(conn, token) if wrong else None
    if old is not None and old.agent == name:
        raise AuthenticationError(old.reason())
    if wrong:
        raise AuthenticationError(
            f"authentication failed for agent {name}: unknown agent or wrong token. "
            "Fix: use the token printed when the agent was added."
        )
    agent = _agent(row)
    _check_state(agent, at or datetime.now(UTC))
    return agent


@dataclass(frozen=True)
class RetiredToken:
    """A token its agent no longer holds: rotated away, or revoked and then reissued."""

    agent: str
    token_id: str
    retired_at: datetime
    how: str  # rotated | reissued

    def reason(self) -> str:
        return (
            f"authentication failed for agent {self.agent}: this token was retired ({self.how} at "
            f"{self.retired_at.isoformat()}); whoever still holds it should not. Fix: use the agent's current "
            "token, and find out where the old one is still in use."
        )


def retired_token(engine: Engine, token: str) -> RetiredToken | None:
    """The retired token ``token`` is, its whole secret checked against the stored hash; else None.

    Lets the gateway audit a retired token's use under its agent's name: a rotated token still in use
    is a leaked or forgotten one, which a security officer wants to see by name.
    """
    if not isinstance(token, str) or not TOKEN_FORMAT.fullmatch(token):
        return None
    migrate(engine)
    with reading(engine) as conn:
        return _retired_in(conn, token)


def _retired_in(conn: Connection, token: str) -> RetiredToken | None:
    match = TOKEN_FORMAT.fullmatch(token)
    if match is None:
        return None
    row = (
        conn.execute(select(retired_tokens).where(retired_tokens.c.token_id == match.group(1)))
        .mappings()
        .first()
    )
    if row is None or not hmac.compare_digest(row["token_hash"].encode(), _token_hash(token).encode()):
        return None
    at = row["retired_at"]
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return RetiredToken(agent=row["agent"], token_id=row["token_id"], retired_at=at, how=row["how"])


def _retire(conn: Connection, row: Any, how: str, at: datetime) -> None:
    """Keep the token ``row`` (an ``agents`` row) held until now, so a later use of it is recognised."""
    conn.execute(
        retired_tokens.insert().values(
            token_id=row["token_id"], agent=row["name"], token_hash=row["token_hash"], retired_at=at, how=how
        )
    )


def _check_state(agent: Agent, now: datetime) -> None:
    if agent.revoked_at is not None:
        raise AuthenticationError(f"authentication failed for agent {agent.name}: the token was revoked.")
    if agent.expires_at is not None and agent.expires_at <= now:
        raise AuthenticationError(
            f"authentication failed for agent {agent.name}: the token expired at "
            f"{agent.expires_at.isoformat()}. Fix: ask an administrator for a new token."
        )


def _set_level(
    engine: Engine, name: str, level: str, reason: str, direction: str, actor: str, audit_key: bytes | None
) -> Agent:
    _check_name(name)
    _check_level(name, level)
    why = _check_reason(name, reason, direction)
    migrate(engine)
    with _change(engine, name, direction) as conn:
        row = _active_row(conn, name)
        old, new = LEVELS.index(row["level"]), LEVELS.index(level)
        if direction == "promote" and new <= old or direction == "demote" and new >= old:
            way = "above" if direction == "promote" else "below"
            raise GovernanceError(
                f"agent {name} is {row['level']}; to {direction} it, pick a level {way} that. "
                f"Fix: use `assay agents {'demote' if direction == 'promote' else 'promote'}` to go the other way."
            )
        conn.execute(update(agents).where(agents.c.name == name).values(level=level))
        detail = {"old_level": row["level"], "new_level": level, "reason": why, "token_id": row["token_id"]}
        _record(conn, actor, f"agent.{direction}", name, detail, audit_key)
        updated = dict(row)
        updated["level"] = level
    return _agent(updated)


@contextmanager
def _change(engine: Engine, name: str, what: str) -> Iterator[Connection]:
    """One transaction for an identity change and its audit record; a database failure is an AuditError."""
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise AuditError(f"agent {name}: could not record the {what} ({type(exc).__name__}).") from exc


def _active_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(agents).where(agents.c.name == name).with_for_update()).mappings().first()
    if row is None:
        raise GovernanceError(f"agent {name} does not exist. Fix: check the name with `assay agents list`.")
    if row["revoked_at"] is not None:
        raise GovernanceError(
            f"agent {name} is revoked. Fix: issue it a new token with `assay agents add {name} --level L`."
        )
    return row


def _record(
    conn: Connection, actor: str, action: str, name: str, detail: dict[str, Any], key: bytes | None
) -> None:
    audit.append_in(
        conn,
        actor=actor,
        action=action,
        dataset=None,
        decision="allow",
        detail={"agent": name, **detail},
        anchor_key=key,
    )


def _new_token() -> tuple[str, str]:
    token_id = secrets.token_hex(6)
    return f"assay_{token_id}_{secrets.token_urlsafe(32)}", token_id


def _check_level(name: str, level: str) -> None:
    if level not in LEVELS:
        raise GovernanceError(
            f"agent {name}: level {level!r} is not known. Fix: use one of {', '.join(LEVELS)}."
        )


def _check_lifetime(name: str, expires_in: timedelta | None) -> None:
    if expires_in is not None and expires_in <= timedelta(0):
        raise GovernanceError(
            f"agent {name}: the token lifetime must be positive. Fix: pass e.g. timedelta(days=90)."
        )


def _check_reason(name: str, reason: str, act: str) -> str:
    why = reason.strip() if isinstance(reason, str) else ""
    if not why or len(why) > 1000:
        raise GovernanceError(
            f"agent {name}: a reason is required to {act} an agent (1-1000 characters). "
            "Fix: say why, e.g. --reason 'three months without a policy violation'."
        )
    return why


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
