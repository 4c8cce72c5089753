"""What every agent call leaves behind: the quota gate before any work, then the decision, its audit record
and the day's usage, committed together (:func:`governance.quota.record`).

A :class:`Ledger` belongs to one client. It remembers the usage that client last recorded, so the gate
before a call needs no query while that usage leaves room (use only grows within a UTC day; the decision
under the audit lock still counts what every other client used since, and denies there if need be).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from governance import quota
from governance.errors import AccessDenied, AuthenticationError
from governance.identity import Agent
from governance.policy import Grant
from governance.view import Denied
from schemas.contract import DATASET_ID


class QuotaHit(Denied):
    """The quota refuses a call before any work is done (re-decided under the lock when recorded)."""

    def __init__(self, which: str, reason: str) -> None:
        super().__init__("quota", reason)
        self.which = which


@dataclass
class Ledger:
    engine: Engine
    audit_key: bytes
    clock: Callable[[], datetime]
    usage_hint: quota.Usage | None = None  # today's use as this client last recorded it

    def daily_quota(self, agent: Agent, grant: Grant | None) -> quota.Quota:
        """The agent's daily quota: its policy entry's, else its level's default."""
        return quota.quota_for(grant, agent.level)

    def gate(self, agent: Agent, grant: Grant | None, *, reading: bool) -> None:
        """Raise :class:`QuotaHit` before any work when today's quota is already used up."""
        limits = self.daily_quota(agent, grant)
        day = quota.utc_day(self.clock())
        hint = self.usage_hint
        if hint is not None and hint.day == day and quota.exhausted(limits, hint, reading=reading) is None:
            return
        used = quota.usage(self.engine, agent.name, day)
        which = quota.exhausted(limits, used, reading=reading)
        if which is not None:
            raise QuotaHit(which, quota.hit_reason(agent.name, limits, used, which))

    def allow(
        self,
        agent: Agent,
        grant: Grant | None,
        action: str,
        dataset: str | None,
        detail: dict[str, Any],
        rows: int | None = None,
    ) -> quota.Charge:
        """Record an allowed call; if the quota ran out meanwhile, it is recorded as a quota deny and raised."""
        limits = self.daily_quota(agent, grant)
        charge = self._record(agent, limits, action, dataset, quota.allow(agent.name, limits, detail, rows))
        if charge.quota_denied:
            raise AccessDenied(f"{action} denied by rule 'quota': {charge.detail['reason']}")
        return charge

    def deny(
        self,
        agent: Agent,
        grant: Grant | None,
        action: str,
        dataset: str | None,
        denied: Denied,
        detail: dict[str, Any],
    ) -> AccessDenied:
        """Audit a deny (raising :class:`AuditError` if that fails) and build the error to raise."""
        limits = self.daily_quota(agent, grant)
        decide = quota.deny({**detail, "rule": denied.rule, "reason": denied.reason})
        if isinstance(denied, QuotaHit):
            hint = denied.which

            def decide(used: quota.Usage) -> quota.Charge:
                which = quota.exhausted(limits, used, reading=action == "read") or hint
                return quota.refusal(agent.name, limits, used, which, detail)

        charge = self._record(agent, limits, action, dataset, decide)
        error = AuthenticationError if denied.rule == "identity" else AccessDenied
        return error(f"{action} denied by rule '{denied.rule}': {charge.detail['reason']}")

    def _record(
        self,
        agent: Agent,
        limits: quota.Quota,
        action: str,
        dataset: str | None,
        decide: Callable[[quota.Usage], quota.Charge],
    ) -> quota.Charge:
        """Decide, audit and count one call in one transaction (raising :class:`AuditError` if it fails)."""
        charge, self.usage_hint = quota.record(
            self.engine,
            agent=agent.name,
            quota=limits,
            clock=self.clock,
            action=action,
            dataset=dataset if isinstance(dataset, str) and DATASET_ID.fullmatch(dataset) else None,
            decide=decide,
            anchor_key=self.audit_key,
        )
        return charge
