"""Policy cases: the decisions a policy must make, written beside it and checked against the contracts.

A cases file (``<name>.cases.yaml`` in the policy folder) is a list of cases::

    - agent: demo-junior            # the policy entry under test
      level: junior                 # the autonomy level to test it at
      dataset: crm.accounts
      expect: allow                 # allow | deny
      withheld: [national_id]       # optional: exactly these columns are withheld
      masked: {contact_email: hash} # optional: exactly these columns are masked, with these masks
      rules: {account_id: identifier}  # optional: these columns are decided by these rules
      max_rows: 1000                # optional: the most rows one call may return at this level
      quota: {calls: 5000, rows: 1000000}  # optional: the daily quota in force (policy or level default)
    - agent: demo-intern
      level: intern
      dataset: crm.accounts
      columns: [account_id, national_id]   # optional: the columns a read asks for
      expect: deny
      rule: classification          # optional: the rule that must deny (as in the audit record)

Cases read no data and need no catalog: each runs :func:`governance.explain.explain` and the gateway's
column gate (:func:`governance.view.select_columns`), so a passing case is what the gateway does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from governance.errors import PolicyError
from governance.explain import explain
from governance.identity import AGENT_NAME, LEVELS
from governance.policy import CASES_SUFFIX, Policy
from governance.view import Denied, select_columns
from schemas._yaml import PathKey, YamlSyntaxError, line_of, load_with_lines
from schemas.contract import COLUMN_NAME, MASKS, Contract, is_mask

RULES = (
    "identity",
    "dataset_id",
    "policy",
    "contract",
    "row_filter",
    "classification",
    "policy_columns",
    "columns",
)
Problem = Callable[[PathKey, str, str], None]
_KEYS = (
    "name",
    "agent",
    "level",
    "dataset",
    "columns",
    "expect",
    "withheld",
    "masked",
    "rules",
    "rule",
    "max_rows",
    "quota",
)
COLUMN_RULES = ("classification", "policy_columns", "contract_mask", "identifier", "level")


@dataclass(frozen=True)
class PolicyCase:
    """One expected decision; ``source`` is its ``file:line``."""

    agent: str
    level: str
    dataset: str
    expect: str
    source: str
    name: str | None = None
    columns: tuple[str, ...] | None = None
    withheld: tuple[str, ...] | None = None
    masked: Mapping[str, str] | None = field(default=None, hash=False)
    rule: str | None = None
    rules: Mapping[str, str] | None = field(default=None, hash=False)
    max_rows: int | None = None
    quota: Mapping[str, int] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class CaseResult:
    """A case and what the policy actually decided; ``problems`` lists each mismatch."""

    case: PolicyCase
    decision: str
    rule: str | None
    reason: str
    problems: tuple[str, ...]
    max_rows: int | None = None  # the per-call row cap in force
    quota: dict[str, int] | None = field(default=None, hash=False)  # the daily quota in force

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        c = self.case
        return {
            "source": c.source,
            "name": c.name,
            "agent": c.agent,
            "level": c.level,
            "dataset": c.dataset,
            "expect": c.expect,
            "decision": self.decision,
            "rule": self.rule,
            "reason": self.reason,
            "max_rows": self.max_rows,
            "quota": self.quota,
            "passed": self.passed,
            "problems": list(self.problems),
        }


def case_files(path: str | Path) -> tuple[list[Path], Path]:
    """The cases files at ``path`` (a folder, a cases file, or a policy file) and the policy they test.

    Cases in a folder test the whole folder's policy, as the gateway loads it; a policy file
    ``p.yaml`` is tested by ``p.cases.yaml`` beside it.
    """
    path = Path(path)
    if path.is_dir():
        files, policy = sorted(path.glob(f"*{CASES_SUFFIX}")), path
    elif path.is_file() and path.name.endswith(CASES_SUFFIX):
        files, policy = [path], path.parent
    elif path.is_file():
        beside = path.with_name(path.name.removesuffix(path.suffix) + CASES_SUFFIX)
        files, policy = ([beside] if beside.is_file() else []), path
    else:
        raise PolicyError(f"{path}: no such policy cases file or folder. Fix: pass the policy folder.")
    if not files:
        raise PolicyError(
            f"{path}: no policy cases found. Fix: write the expected decisions in <name>{CASES_SUFFIX} "
            "beside the policy (docs/policy.md, 'Testing a policy')."
        )
    return files, policy


def load_cases(path: str | Path) -> list[PolicyCase]:
    """Load one cases file; raise :class:`PolicyError` listing every problem with file, line and fix."""
    path = Path(path)
    try:
        data, lines = load_with_lines(path)
    except YamlSyntaxError as exc:
        raise PolicyError(str(exc)) from exc
    except OSError as exc:
        raise PolicyError(f"{path}:1: cannot read ({exc.strerror}). Fix: check the path.") from exc
    problems: list[str] = []

    def problem(where: PathKey, message: str, fix: str) -> None:
        problems.append(f"{path}:{line_of(lines, where)}: {message}. Fix: {fix}.")

    if not isinstance(data, list):
        problem((), "a cases file is a YAML list of cases", "start each case with '- agent: NAME'")
        raise PolicyError("\n".join(problems))
    cases = []
    for i, raw in enumerate(data):
        count = len(problems)
        case = _case(raw, (i,), f"{path}:{line_of(lines, (i,))}", problem)
        if case is not None and len(problems) == count:
            cases.append(case)
    if problems:
        raise PolicyError("\n".join(problems))
    return cases


def _case(raw: Any, where: PathKey, source: str, problem: Problem) -> PolicyCase | None:
    if not isinstance(raw, dict):
        problem(where, "a case is a mapping", "write agent:, level:, dataset: and expect:")
        return None
    for key in raw:
        if key not in _KEYS:
            problem((*where, key), f"unknown key {key!r}", f"use {', '.join(_KEYS)}")
    agent, level, dataset, expect = (raw.get(k) for k in ("agent", "level", "dataset", "expect"))
    if not isinstance(agent, str) or not AGENT_NAME.fullmatch(agent):
        problem((*where, "agent"), f"agent {agent!r} is missing or not a valid name", "name a policy agent")
    if level not in LEVELS:
        problem((*where, "level"), f"level {level!r} is not known", f"use one of {', '.join(LEVELS)}")
    if not isinstance(dataset, str) or not dataset:
        problem((*where, "dataset"), "dataset is missing", "name a dataset id, e.g. crm.accounts")
    if expect not in ("allow", "deny"):
        problem((*where, "expect"), f"expect {expect!r} is not allow or deny", "write expect: allow|deny")
    rule = raw.get("rule")
    if rule is not None and (rule not in RULES or expect != "deny"):
        problem(
            (*where, "rule"),
            f"rule {rule!r} is not a deny rule",
            f"use it with expect: deny, and one of {', '.join(RULES)}",
        )
    columns = _names(raw, "columns", where, problem)
    withheld = _names(raw, "withheld", where, problem)
    masked = raw.get("masked")
    if masked is not None and (
        not isinstance(masked, dict) or not all(isinstance(k, str) and is_mask(v) for k, v in masked.items())
    ):
        problem(
            (*where, "masked"),
            "masked is not a mapping of column: mask",
            f"masks are {', '.join(MASKS)} and prefix:N",
        )
        masked = None
    rules = raw.get("rules")
    if rules is not None and (
        not isinstance(rules, dict)
        or not all(isinstance(k, str) and v in COLUMN_RULES for k, v in rules.items())
    ):
        problem(
            (*where, "rules"),
            "rules is not a mapping of column: rule",
            f"column rules are {', '.join(COLUMN_RULES)}",
        )
        rules = None
    max_rows = raw.get("max_rows")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0):
        problem((*where, "max_rows"), "max_rows is not a whole number", "write e.g. max_rows: 100")
        max_rows = None
    quota = raw.get("quota")
    if quota is not None and (
        not isinstance(quota, dict)
        or not quota
        or not all(
            k in ("calls", "rows") and isinstance(v, int) and not isinstance(v, bool)
            for k, v in quota.items()
        )
    ):
        problem((*where, "quota"), "quota is not a mapping of calls and/or rows", "write e.g. {calls: 1000}")
        quota = None
    name = raw.get("name")
    return PolicyCase(
        agent=str(agent),
        level=str(level),
        dataset=str(dataset),
        expect=str(expect),
        source=source,
        name=str(name) if name is not None else None,
        columns=columns,
        withheld=withheld,
        masked=dict(masked) if masked is not None else None,
        rule=rule,
        rules=dict(rules) if rules is not None else None,
        max_rows=max_rows,
        quota=dict(quota) if quota is not None else None,
    )


def _names(raw: dict[str, Any], key: str, where: PathKey, problem: Problem) -> tuple[str, ...] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, str) and COLUMN_NAME.fullmatch(c) for c in value):
        problem((*where, key), f"{key} is not a list of column names", "write e.g. [account_id, phone]")
        return None
    return tuple(value)


def run_cases(
    cases: Sequence[PolicyCase], policy: Policy, contracts: Mapping[str, Contract]
) -> list[CaseResult]:
    """Every case's result, in order."""
    return [run_case(case, policy, contracts) for case in cases]


def run_case(case: PolicyCase, policy: Policy, contracts: Mapping[str, Contract]) -> CaseResult:
    """What the policy decides for ``case``, and how that differs from what the case expects."""
    found = explain(policy, contracts, case.agent, case.dataset, level=case.level)
    decision, rule, reason = found.decision, found.rule, found.reason
    if decision == "allow" and case.columns is not None and found.plan is not None:
        try:
            select_columns(case.columns, found.plan, case.dataset, case.agent, case.level)
        except Denied as denied:
            decision, rule, reason = "deny", denied.rule, denied.reason
    problems: list[str] = []
    if decision != case.expect:
        why = f" (rule {rule}: {reason})" if decision == "deny" else f" ({reason})"
        problems.append(f"expected {case.expect}, got {decision}{why}")
    elif case.rule is not None and rule != case.rule:
        problems.append(f"expected deny by rule {case.rule}, got rule {rule} ({reason})")
    if (case.withheld is not None or case.masked is not None) and found.plan is None:
        problems.append(f"no columns to compare: {reason}")
    else:
        if case.withheld is not None:
            problems += _differ("withheld", set(case.withheld), set(found.withheld))
        if case.masked is not None and dict(case.masked) != found.masked:
            problems.append(f"masked: expected {dict(case.masked)}, got {found.masked}")
    if case.rules is not None:
        decided = {c.name: c.rule for c in found.columns}
        for column, expected in case.rules.items():
            if decided.get(column) != expected:
                got = decided.get(column, "no such column")
                problems.append(f"rules: {column} expected rule {expected}, got {got}")
    if case.max_rows is not None and case.max_rows != found.max_rows:
        problems.append(
            f"max_rows: expected {case.max_rows}, got {found.max_rows} ({found.max_rows_rule} cap)"
        )
    limits = {"calls": found.quota.calls, "rows": found.quota.rows} if found.quota is not None else None
    if case.quota is not None and found.quota is not None and limits is not None:
        for key, expected_limit in case.quota.items():
            if limits[key] != expected_limit:
                source = found.quota.calls_source if key == "calls" else found.quota.rows_source
                problems.append(f"quota.{key}: expected {expected_limit}, got {limits[key]} ({source})")
    return CaseResult(
        case=case,
        decision=decision,
        rule=rule,
        reason=reason,
        problems=tuple(problems),
        max_rows=found.max_rows,
        quota=limits,
    )


def _differ(what: str, expected: set[str], actual: set[str]) -> list[str]:
    out = []
    if expected - actual:
        out.append(f"{what}: expected but not {what}: {', '.join(sorted(expected - actual))}")
    if actual - expected:
        out.append(f"{what}: {what} but not expected: {', '.join(sorted(actual - expected))}")
    return out
