"""Why an agent sees what it sees: each column shown, masked or withheld, and the rule that decided it.

:func:`explain` reads no data. It runs the gateway's own gates on the policy, the agent's level and the
dataset's contract (the grant's dataset globs, :func:`governance.masks.column_plan` for the columns, the
row filter check) and attaches to every decision the rule and where that rule is written: the policy's
``file:line``, the contract's ``file:line``, or the level's classification cap. It also states the
level's per-call row cap and the agent's daily quota with where each limit comes from; given the
agent's usage today (:func:`governance.quota.usage`), it shows that too. ``assay policy explain``
prints it and ``assay policy test`` checks it against cases, so both say what the gateway does.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from governance.errors import GovernanceError
from governance.identity import LEVEL_CAP, LEVELS, Agent
from governance.masks import MASKED_LEVELS, PREFIX_DEFAULT_CHARS, ColumnPlan, column_plan
from governance.policy import Grant, Policy
from governance.quota import Quota, Usage, quota_for
from governance.view import DEFAULT_LIMIT, LEVEL_MAX_ROWS, MAX_LIMIT, max_rows
from schemas._yaml import YamlSyntaxError, line_of, load_with_lines
from schemas.contract import DATASET_ID, Column, Contract

MASK_HOW = {
    "hash": "keyed HMAC-SHA256 under purpose {purpose}'s key: equal values join within it, never across purposes",
    "partial": "all but the last four characters replaced by *",
    "redact": "text replaced by [REDACTED] (other types: null)",
    "null": "always null",
    "month": "date or timestamp truncated to the first of its month",
    "prefix": "postcode cut to its outward code (before the first space), else its first "
    f"{PREFIX_DEFAULT_CHARS} characters; a value no longer than that becomes null",
}
PREFIX_N_HOW = (
    "postcode cut to at most {n} characters, never past the first space; a value no longer becomes null"
)


@dataclass(frozen=True)
class ColumnDecision:
    """One contract column for one agent: ``shown``, ``masked`` or ``withheld``, and why."""

    name: str
    classification: str
    pii: str | None
    decision: str
    mask: str | None
    how: str | None
    rule: str
    why: str
    source: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Explanation:
    """What ``agent`` at ``level`` would see of ``dataset``, and the rule behind each part.

    ``decision`` is ``allow`` or ``deny``; a deny names its ``rule`` (as in the audit record:
    ``identity``, ``dataset_id``, ``policy``, ``contract``, ``row_filter``) and ``reason``.
    """

    agent: str
    level: str
    cap: str
    dataset: str
    decision: str
    rule: str | None
    reason: str
    policy: str | None = None
    purpose: str | None = None
    row_filter: str | None = None
    row_filter_source: str | None = None
    columns: tuple[ColumnDecision, ...] = ()
    notes: tuple[str, ...] = ()
    plan: ColumnPlan | None = field(default=None, repr=False, compare=False)
    max_rows: int = MAX_LIMIT  # rows per call at this level
    max_rows_rule: str = "global"  # "level" when the level's own cap is lower than the global one
    quota: Quota | None = None
    usage: Usage | None = None

    @property
    def withheld(self) -> dict[str, str]:
        """Withheld column -> the rule that withheld it."""
        return {c.name: c.rule for c in self.columns if c.decision == "withheld"}

    @property
    def masked(self) -> dict[str, str]:
        """Masked column -> its mask."""
        return {c.name: c.mask for c in self.columns if c.decision == "masked" and c.mask is not None}

    def to_dict(self) -> dict[str, Any]:
        skip = ("plan", "columns", "notes", "quota", "usage")
        out = {k: v for k, v in self.__dict__.items() if k not in skip}
        out["quota"] = self.quota.to_dict() if self.quota is not None else None
        out["usage"] = self.usage.to_dict() if self.usage is not None else None
        out["columns"] = [c.to_dict() for c in self.columns]
        out["withheld"] = self.withheld
        out["masked"] = self.masked
        out["notes"] = list(self.notes)
        return out


def explain(
    policy: Policy,
    contracts: Mapping[str, Contract],
    agent: str,
    dataset: str,
    *,
    level: str | None = None,
    identity: Agent | None = None,
    at: datetime | None = None,
    usage: Usage | None = None,
) -> Explanation:
    """Explain what ``agent`` would see of ``dataset``, without reading it.

    ``level`` is the autonomy level to explain at; without it, ``identity``'s (the agent as registered,
    whose revoked or expired token is then a deny too). ``usage`` is the agent's use of its quota today.
    """
    if level is None:
        if identity is None:
            raise GovernanceError(
                f"agent {agent}: no level to explain at. Fix: pass the level, or the registered agent."
            )
        level = identity.level
    if level not in LEVELS:
        raise GovernanceError(f"level {level!r} is not known. Fix: use one of {', '.join(LEVELS)}.")
    limits = quota_for(policy.grant_for(agent), level)
    cap_rule = "level" if level in LEVEL_MAX_ROWS and max_rows(level) < MAX_LIMIT else "global"
    base: dict[str, Any] = dict(
        agent=agent,
        level=level,
        cap=LEVEL_CAP[level],
        dataset=dataset,
        max_rows=max_rows(level),
        max_rows_rule=cap_rule,
        quota=limits,
        usage=usage,
    )
    notes = (_rows_note(level, cap_rule), _quota_note(limits, usage))

    def deny(rule: str, reason: str, grant: Grant | None = None) -> Explanation:
        who: dict[str, Any] = dict(policy=grant.source, purpose=grant.purpose) if grant else {}
        return Explanation(**base, decision="deny", rule=rule, reason=reason, **who, notes=notes)

    if identity is not None:
        problem = _token_problem(identity, at or datetime.now(UTC))
        if problem is not None:
            return deny("identity", problem)
    if not isinstance(dataset, str) or not DATASET_ID.fullmatch(dataset):
        return deny("dataset_id", "the dataset id is not 'domain.name' of [a-z0-9_], so nothing is read.")
    grant = policy.grant_for(agent)
    if grant is None:
        return deny(
            "policy",
            f"agent {agent} has no entry in the policy at {policy.path}, so it reads nothing (deny by "
            "default). Fix: add it under 'agents:' to grant it datasets.",
        )
    if not grant.allows_dataset(dataset):
        globs = ", ".join(grant.datasets)
        return deny(
            "policy",
            f"dataset {dataset} matches none of agent {agent}'s dataset globs ({globs}) at "
            f"{grant.origin('datasets')}, so it reads nothing of it.",
            grant,
        )
    contract = contracts.get(dataset)
    if contract is None:
        return deny(
            "contract",
            f"dataset {dataset} has no contract, so its classification is unknown and nothing is shown.",
            grant,
        )
    plan = column_plan(contract, level, grant)
    columns = tuple(_column(c, level, grant, plan, _contract_lines(contract)) for c in contract.columns)
    found = {
        **base,
        "policy": grant.source,
        "purpose": grant.purpose,
        "row_filter": grant.row_filter,
        "row_filter_source": grant.origin("row_filter") if grant.row_filter is not None else None,
        "columns": columns,
        "plan": plan,
    }
    expr = grant.row_filter_expr()
    if expr is not None and not set(expr.meta.root_names()) <= set(plan.shown):
        return Explanation(
            **found,
            decision="deny",
            rule="row_filter",
            reason=f"the policy's row_filter at {grant.origin('row_filter')} tests a column agent {agent} "
            f"does not see in {dataset}, so no row can be shown. Fix the row_filter.",
            notes=notes,
        )
    glob = next(g for g in grant.datasets if fnmatch.fnmatchcase(dataset, g))
    more = [
        "Only the certified version is read. Columns the source has but the contract does not declare, and "
        "assay's own _ columns, are never shown.",
    ]
    if grant.row_filter is not None:
        more.append(
            f"Rows: only those where {grant.row_filter} (policy at {grant.origin('row_filter')}), "
            "tested on the masked view."
        )
    if plan.masks:
        more.append(
            "Masks apply before the row filter and the agent's where, so no predicate sees a clear value."
        )
    if plan.identifiers:
        more.append(
            f"Identifiers ({', '.join(sorted(plan.identifiers))}) are hashed for the {level} level under "
            f"purpose {grant.purpose}'s key: they join across datasets read for that purpose, never across purposes."
        )
    return Explanation(
        **found,
        decision="allow",
        rule=None,
        reason=f"granted by {grant.source} (dataset glob {glob!r}) for purpose {grant.purpose}.",
        notes=(*more, *notes),
    )


def _column(
    column: Column, level: str, grant: Grant, plan: ColumnPlan, lines: dict[str, dict[str, str]]
) -> ColumnDecision:
    where = lines.get(column.name, {})
    cap = LEVEL_CAP[level]
    base: dict[str, Any] = dict(name=column.name, classification=column.classification, pii=column.pii)
    withheld = plan.withheld.get(column.name)
    if withheld == "classification":
        return ColumnDecision(
            **base,
            decision="withheld",
            mask=None,
            how=None,
            rule="classification",
            why=f"classified {column.classification}, above the {level} level's cap ({cap})",
            source=where.get("classification"),
        )
    if withheld == "policy":
        denied = column.name in grant.deny_columns
        return ColumnDecision(
            **base,
            decision="withheld",
            mask=None,
            how=None,
            rule="policy_columns",
            why="in the agent's columns.deny list" if denied else "not in the agent's columns.allow list",
            source=grant.origin(f"deny:{column.name}" if denied else "columns.allow"),
        )
    mask = plan.masks.get(column.name)
    if mask is not None and column.name in plan.identifiers:
        return ColumnDecision(
            **base,
            decision="masked",
            mask=mask,
            how=_how(mask, grant.purpose),
            rule="identifier",
            why=f"an identifier ({'identifier: true' if 'identifier' in where else 'primaryKey'}); the {level} "
            "level sees identifiers only hashed, so it can join on them but not read them",
            source=where.get("identifier", where.get("primaryKey", where.get("column"))),
        )
    if mask is not None:
        return ColumnDecision(
            **base,
            decision="masked",
            mask=mask,
            how=_how(mask, grant.purpose),
            rule="contract_mask",
            why=f"personal data ({column.pii}); the {level} level sees personal data only masked, "
            f"with the contract's mask{'' if 'mask' in where else ' (none declared: hash)'}",
            source=where.get("mask", where.get("column")),
        )
    if column.pii is not None:
        why = (
            f"personal data ({column.pii}); the {level} level sees it unmasked, within policy"
            if level not in MASKED_LEVELS
            else f"personal data ({column.pii}) the contract leaves unmasked (mask: none)"
        )
        source = where.get("mask") if level in MASKED_LEVELS else where.get("classification")
        return ColumnDecision(
            **base, decision="shown", mask=None, how=None, rule="level", why=why, source=source
        )
    return ColumnDecision(
        **base,
        decision="shown",
        mask=None,
        how=None,
        rule="classification",
        why=f"classified {column.classification}, within the {level} level's cap ({cap})",
        source=where.get("classification"),
    )


def _how(mask: str, purpose: str) -> str:
    if mask.startswith("prefix:"):
        return PREFIX_N_HOW.format(n=mask.split(":", 1)[1])
    return MASK_HOW.get(mask, mask).format(purpose=purpose)


def _rows_note(level: str, rule: str) -> str:
    if rule == "level":
        return (
            f"At most {max_rows(level)} rows per call at the {level} level (the level's own cap; "
            f"global cap {MAX_LIMIT}, default {min(DEFAULT_LIMIT, max_rows(level))})."
        )
    return f"At most {MAX_LIMIT} rows per call (default {DEFAULT_LIMIT})."


def _quota_note(limits: Quota, usage: Usage | None) -> str:
    text = (
        f"Daily quota (UTC day): {limits.calls} calls ({limits.calls_source}), {limits.rows} rows read "
        f"({limits.rows_source}); a call over it is denied by rule quota, a read returns at most the rows left."
    )
    if usage is not None:
        text += (
            f" Used on {usage.day.isoformat()}: {usage.calls} calls, {usage.rows} rows"
            f" ({usage.denied} call(s) refused by the quota)."
        )
    return text


def _token_problem(agent: Agent, now: datetime) -> str | None:
    if agent.revoked_at is not None:
        return (
            f"agent {agent.name}'s token was revoked at {agent.revoked_at.isoformat()}, so it reads nothing."
        )
    if agent.expires_at is not None and agent.expires_at <= now:
        return f"agent {agent.name}'s token expired at {agent.expires_at.isoformat()}, so it reads nothing."
    return None


def _contract_lines(contract: Contract) -> dict[str, dict[str, str]]:
    """Column -> where its definition, classification and mask are written (``file:line``)."""
    try:
        data, lines = load_with_lines(contract.path)
        props = data["schema"][0]["properties"]
    except (OSError, YamlSyntaxError, KeyError, IndexError, TypeError):
        return {}
    out: dict[str, dict[str, str]] = {}
    for i, prop in enumerate(props if isinstance(props, list) else []):
        if not isinstance(prop, dict) or not isinstance(prop.get("name"), str):
            continue
        at = ("schema", 0, "properties", i)
        entry = {
            "column": f"{contract.path}:{line_of(lines, at)}",
            "classification": f"{contract.path}:{line_of(lines, (*at, 'classification'))}",
        }
        if "primaryKey" in prop:
            entry["primaryKey"] = f"{contract.path}:{line_of(lines, (*at, 'primaryKey'))}"
        for j, custom in enumerate(prop.get("customProperties") or []):
            if isinstance(custom, dict) and custom.get("property") in ("mask", "identifier"):
                entry[custom["property"]] = f"{contract.path}:{line_of(lines, (*at, 'customProperties', j))}"
        out[prop["name"]] = entry
    return out
