"""Quotas: calls and rows per agent per UTC day, so a runaway retry loop cannot multiply cost.

A policy entry may set ``quota: {calls: N, rows: M}``; a key it leaves out takes the agent's level
default (:data:`LEVEL_QUOTAS`). ``calls`` counts every ``datasets``, ``describe`` and ``read`` call the
gateway answers, allowed or denied by another rule (a loop of bad requests is capped too); ``rows``
counts rows returned by reads. Calls refused by the quota itself are not counted (they are tallied as
``denied``), so ``used <= limit`` always holds.

Usage lives in the catalog (``agent_usage``: agent, UTC day, calls, rows, denied) and is only ever
changed by :func:`record`, in the transaction that appends the call's audit record and under the audit
log's write lock (:func:`governance.audit.locked`: SQLite ``BEGIN IMMEDIATE``, PostgreSQL's EXCLUSIVE
lock on ``audit_log``). Check and increment are therefore one serialised step across threads, processes
and hosts: no call is counted without its audit record or recorded without being counted, and two
readers racing at the edge of a quota cannot both get past it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from governance import audit
from governance.audit_group import defer, memo
from governance.catalog import migrate
from governance.catalog_schema import agent_usage
from governance.policy import Grant
from governance.store import reading

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Quota:
    """An agent's daily limits and where they are written (``file:line`` or the level default)."""

    calls: int
    rows: int
    calls_source: str
    rows_source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "rows": self.rows,
            "calls_source": self.calls_source,
            "rows_source": self.rows_source,
        }


# Level defaults when the policy sets none: an intern gets a small allowance, a senior a working day's.
LEVEL_QUOTAS: dict[str, tuple[int, int]] = {
    "intern": (1_000, 10_000),
    "junior": (10_000, 1_000_000),
    "senior": (50_000, 10_000_000),
}


@dataclass(frozen=True)
class Usage:
    """What ``agent`` used on ``day`` (UTC)."""

    agent: str
    day: date
    calls: int = 0
    rows: int = 0
    denied: int = 0

    def calls_left(self, quota: Quota) -> int:
        return max(quota.calls - self.calls, 0)

    def rows_left(self, quota: Quota) -> int:
        return max(quota.rows - self.rows, 0)

    def to_dict(self, quota: Quota | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "agent": self.agent,
            "day": self.day.isoformat(),
            "calls": self.calls,
            "rows": self.rows,
            "denied": self.denied,
        }
        if quota is not None:
            out.update(calls_limit=quota.calls, rows_limit=quota.rows)
        return out


@dataclass(frozen=True)
class Charge:
    """What one call records: its decision and audit detail, the rows it returns, whether the quota refused it."""

    decision: str
    detail: dict[str, Any]
    rows: int = 0
    quota_denied: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # for the caller (e.g. how many rows to return)


def quota_for(grant: Grant | None, level: str) -> Quota:
    """The policy's quota for the agent, each key it leaves out taken from ``level``'s default."""
    calls, rows = LEVEL_QUOTAS[level]
    default = f"level {level} default"
    if grant is None or grant.quota is None:
        return Quota(calls=calls, rows=rows, calls_source=default, rows_source=default)
    set_calls, set_rows = grant.quota.get("calls"), grant.quota.get("rows")
    return Quota(
        calls=set_calls if set_calls is not None else calls,
        rows=set_rows if set_rows is not None else rows,
        calls_source=grant.origin("quota.calls") if set_calls is not None else default,
        rows_source=grant.origin("quota.rows") if set_rows is not None else default,
    )


def utc_day(now: datetime) -> date:
    """The quota day of an instant: its UTC date (a naive instant is taken as UTC)."""
    return (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).astimezone(UTC).date()


def exhausted(quota: Quota, used: Usage, *, reading: bool) -> str | None:
    """``calls`` or ``rows`` when that quota refuses the next call (``rows`` only for a read), else None."""
    if used.calls >= quota.calls:
        return "calls"
    if reading and used.rows >= quota.rows:
        return "rows"
    return None


def hit(quota: Quota, used: Usage, which: str) -> dict[str, Any]:
    """The audit detail of a quota hit: which quota, its limit, what was used, the day and the rule's source."""
    limit = quota.calls if which == "calls" else quota.rows
    return {
        "which": which,
        "limit": limit,
        "used": used.calls if which == "calls" else used.rows,
        "day": used.day.isoformat(),
        "source": quota.calls_source if which == "calls" else quota.rows_source,
    }


def hit_reason(agent: str, quota: Quota, used: Usage, which: str) -> str:
    what = "calls" if which == "calls" else "rows read"
    limit = quota.calls if which == "calls" else quota.rows
    source = quota.calls_source if which == "calls" else quota.rows_source
    return (
        f"agent {agent} has used its daily quota of {limit} {what} ({source}) for {used.day.isoformat()} "
        "(UTC). Fix: wait for the next UTC day, or ask the governance officer to raise the quota."
    )


def refusal(agent: str, quota: Quota, used: Usage, which: str, detail: dict[str, Any]) -> Charge:
    """The charge of a call the quota refuses: a deny by rule ``quota`` naming the quota hit."""
    return Charge(
        "deny",
        {
            **detail,
            "rule": "quota",
            "reason": hit_reason(agent, quota, used, which),
            "quota": hit(quota, used, which),
        },
        quota_denied=True,
    )


def allow(
    agent: str, quota: Quota, detail: dict[str, Any], rows: int | None = None
) -> Callable[[Usage], Charge]:
    """``decide`` for a call its other gates allowed; ``rows`` (for a read) is how many rows it found.

    Refused when the calls (or, for a read, the rows) are used up; otherwise allowed, a read returning
    at most the rows left today (``detail["rows"]`` and the charge's ``rows`` say how many, and
    ``extra["quota"]["truncated"]`` whether the quota cut it short).
    """

    def decide(used: Usage) -> Charge:
        which = exhausted(quota, used, reading=rows is not None)
        if which is not None:
            return refusal(agent, quota, used, which, detail)
        given = min(rows, used.rows_left(quota)) if rows is not None else 0
        info: dict[str, Any] = {
            "day": used.day.isoformat(),
            "calls": {"limit": quota.calls, "used": used.calls + 1},
            "rows": {"limit": quota.rows, "used": used.rows + given},
        }
        body = {**detail, "quota": info}
        if rows is not None:
            info["truncated"] = given < rows
            body["rows"] = given
        return Charge("allow", body, rows=given, extra={"quota": info})

    return decide


def deny(detail: dict[str, Any]) -> Callable[[Usage], Charge]:
    """``decide`` for a call another gate denied: recorded as that deny, counted as a call while calls are left."""
    return lambda used: Charge("deny", detail)


def usage(engine: Engine, agent: str, day: date) -> Usage:
    """What ``agent`` used on ``day``; a read without the lock, so only a hint for an in-flight decision."""
    migrate(engine)
    with reading(engine) as conn:
        return _usage_in(conn, agent, day)


def usage_on(engine: Engine, day: date, agent: str | None = None) -> list[Usage]:
    """Every agent's usage on ``day`` (or one agent's), by agent name."""
    migrate(engine)
    query = select(agent_usage).where(agent_usage.c.day == day).order_by(agent_usage.c.agent)
    if agent is not None:
        query = query.where(agent_usage.c.agent == agent)
    with reading(engine) as conn:
        rows = conn.execute(query).mappings().all()
    return [
        Usage(agent=r["agent"], day=day, calls=int(r["calls"]), rows=int(r["rows"]), denied=int(r["denied"]))
        for r in rows
    ]


def record(
    engine: Engine,
    *,
    agent: str,
    quota: Quota,
    clock: Clock,
    action: str,
    dataset: str | None,
    decide: Callable[[Usage], Charge],
    anchor_key: bytes | None,
) -> tuple[Charge, Usage]:
    """Decide a call against today's usage, append its audit record and count it, in one locked transaction.

    ``decide`` sees the usage as it stands under the audit log's write lock and returns the
    :class:`Charge`; it may run more than once (a lost race is retried) and must not act outside.
    Returns the charge and the usage after it.
    """

    def work(conn: Connection) -> tuple[Charge, Usage]:
        used = _usage_in(conn, agent, utc_day(clock()))
        charge = decide(used)
        if charge.rows > used.rows_left(quota):
            raise ValueError(
                f"quota: a charge of {charge.rows} rows exceeds the {used.rows_left(quota)} left"
            )
        audit.append_in(
            conn,
            actor=agent,
            action=action,
            dataset=dataset,
            decision=charge.decision,
            detail=charge.detail,
            anchor_key=anchor_key,
        )
        if charge.quota_denied:
            after = Usage(agent, used.day, used.calls, used.rows, used.denied + 1)
        elif used.calls < quota.calls:
            after = Usage(agent, used.day, used.calls + 1, used.rows + charge.rows, used.denied)
        else:  # denied by another rule after the calls ran out: recorded, nothing left to count
            after = used
        if after != used:
            _store_in(conn, after, new=used.calls == used.rows == used.denied == 0)
        return charge, after

    return audit.locked(engine, f"{action} record", work)


_KEY = (agent_usage.c.agent == bindparam("k_agent")) & (agent_usage.c.day == bindparam("k_day"))
_USAGE = select(agent_usage.c.calls, agent_usage.c.rows, agent_usage.c.denied).where(_KEY)
_INSERT = insert(agent_usage)
_UPDATE = update(agent_usage).where(_KEY)
_STORED = "agent_usage rows"


def _usage_in(conn: Connection, agent: str, day: date) -> Usage:
    """``agent``'s use on ``day``; inside a group transaction, read once and then carried (memo)."""
    held = memo(conn)
    if held is not None and ("usage", agent, day) in held:
        found: Usage = held[("usage", agent, day)]
        return found
    row = conn.execute(_USAGE, {"k_agent": agent, "k_day": day}).first()
    used = (
        Usage(agent=agent, day=day)
        if row is None
        else Usage(agent=agent, day=day, calls=int(row.calls), rows=int(row.rows), denied=int(row.denied))
    )
    if held is not None:
        held[("usage", agent, day)] = used
    return used


def _store_in(conn: Connection, after: Usage, *, new: bool) -> None:
    """Write the day's row; ``new`` when there was none (a stored row always has a count above zero).

    In a group transaction the row is written once, with the group's last counts, before it commits.
    """
    held = memo(conn)
    if held is None:
        _write(conn, after, new)
        return
    key = ("usage", after.agent, after.day)
    held[key] = after
    stored = held.setdefault(_STORED, {})
    stored[key] = (after, stored[key][1] if key in stored else new)  # latest counts; new at first store
    defer(conn, _STORED, _write_stored)


def _write_stored(conn: Connection) -> None:
    held = memo(conn)
    for after, new in (held.pop(_STORED, {}) if held is not None else {}).values():
        _write(conn, after, new)


def _write(conn: Connection, after: Usage, new: bool) -> None:
    values = dict(calls=after.calls, rows=after.rows, denied=after.denied, updated_at=datetime.now(UTC))
    if new:
        conn.execute(_INSERT, {"agent": after.agent, "day": after.day, **values})
    else:
        conn.execute(_UPDATE, {"k_agent": after.agent, "k_day": after.day, **values})
