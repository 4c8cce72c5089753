"""Policy-as-code: which datasets, columns and rows each agent may read, and for what purpose.

Policies are YAML files (by default every ``*.yaml`` in ``schemas/policies/``)::

    agents:
      support-bot:
        datasets: ["crm.*", "erp.orders"]    # fnmatch globs on dataset ids
        purpose: customer_support
        columns: {deny: [annual_revenue]}    # optional allow and/or deny lists
        row_filter: "billing_country = 'DE'" # optional SQL boolean, applied to the masked view
        quota: {calls: 5000, rows: 1000000}  # optional, per UTC day; unset keys take the level's default

Deny by default: an agent without an entry reads nothing. Files are checked when loaded and every
problem is reported at once with its file, line and fix; a gateway with an invalid policy refuses to
start. Policy cases (``*.cases.yaml``, see :mod:`governance.policy_cases`) live in the same folder and
are not policy files.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

import schemas
from governance.errors import PolicyError
from governance.identity import AGENT_NAME
from schemas._yaml import PathKey, YamlSyntaxError, line_of, load_with_lines

DEFAULT_POLICY_DIR = Path(schemas.__file__).parent / "policies"
DATASET_GLOB = re.compile(r"^[a-z0-9_.*?\[\]!-]+$")
COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
PURPOSE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_AGENT_KEYS = ("datasets", "purpose", "columns", "row_filter", "quota", "description")
QUOTA_KEYS = ("calls", "rows")
MAX_QUOTA = 10**12
CASES_SUFFIX = ".cases.yaml"


@dataclass(frozen=True)
class Grant:
    """One agent's entry: what it may read and why."""

    agent: str
    datasets: tuple[str, ...]
    purpose: str
    allow_columns: tuple[str, ...] | None
    deny_columns: tuple[str, ...]
    row_filter: str | None
    source: str
    # file:line of each rule, for explanations: "datasets", "purpose", "row_filter", "columns.allow",
    # "columns.deny", "deny:<column>" per denied column, "quota.calls", "quota.rows".
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    # Daily limits the entry sets ("calls", "rows"); the rest come from the level (governance.quota).
    quota: Mapping[str, int] | None = field(default=None, compare=False, hash=False)
    # The entry as written, key by key, so a policy change can name the keys that changed.
    settings: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def origin(self, rule: str) -> str:
        """Where ``rule`` of this grant is written (file:line), else where the agent's entry starts."""
        return self.origins.get(rule, self.source)

    def allows_dataset(self, dataset_id: str) -> bool:
        return any(fnmatch.fnmatchcase(dataset_id, glob) for glob in self.datasets)

    def allows_column(self, column: str) -> bool:
        """Deny wins over allow; without an allow list every column not denied is allowed."""
        if column in self.deny_columns:
            return False
        return self.allow_columns is None or column in self.allow_columns

    def row_filter_expr(self) -> pl.Expr | None:
        return pl.sql_expr(self.row_filter) if self.row_filter is not None else None


@dataclass(frozen=True)
class Policy:
    """Every grant loaded from one file or folder, by agent name."""

    grants: dict[str, Grant]
    path: Path
    files: tuple[Path, ...] = ()
    digest: str = ""  # sha256 over the files' names and contents: what the audit log records on a change

    def grant_for(self, agent: str) -> Grant | None:
        return self.grants.get(agent)

    def allows(self, agent: str, dataset_id: str) -> bool:
        grant = self.grants.get(agent)
        return grant is not None and grant.allows_dataset(dataset_id)


def load_policy(path: str | Path = DEFAULT_POLICY_DIR) -> Policy:
    """Load a policy file, or every ``*.yaml`` in a folder; raise :class:`PolicyError` listing every problem."""
    path = Path(path)
    files = policy_files(path)
    problems: list[str] = []
    grants: dict[str, Grant] = {}
    for file in files:
        for grant in _load_file(file, problems):
            if grant.agent in grants:
                problems.append(
                    f"{grant.source}: agent {grant.agent} is also granted in {grants[grant.agent].source}. "
                    "Fix: keep one entry per agent."
                )
            else:
                grants[grant.agent] = grant
    if problems:
        raise PolicyError("\n".join(problems))
    return Policy(grants=grants, path=path, files=tuple(files), digest=content_digest(files))


def policy_files(path: str | Path) -> list[Path]:
    """The policy files at ``path``: the file itself, or every ``*.yaml`` in the folder but the cases."""
    path = Path(path)
    if path.is_dir():
        return sorted(f for f in path.glob("*.yaml") if not f.name.endswith(CASES_SUFFIX))
    if path.is_file():
        return [path]
    raise PolicyError(f"{path}: no such policy file or folder. Fix: pass the path of a policy YAML file.")


def content_digest(files: list[Path] | tuple[Path, ...]) -> str:
    """sha256 over each file's name and bytes, in order: equal exactly when the policy text is equal."""
    digest = hashlib.sha256()
    for file in files:
        try:
            data = file.read_bytes()
        except OSError:
            data = b"\0unreadable"
        name = file.name.encode("utf-8")
        digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _load_file(file: Path, problems: list[str]) -> list[Grant]:
    try:
        data, lines = load_with_lines(file)
    except YamlSyntaxError as exc:
        problems.append(str(exc))
        return []
    except OSError as exc:
        problems.append(f"{file}:1: cannot read ({exc.strerror}). Fix: check the path and permissions.")
        return []
    checker = _FileChecker(file, lines, problems)
    return checker.grants(data)


class _FileChecker:
    def __init__(self, file: Path, lines: dict[PathKey, int], problems: list[str]) -> None:
        self.file = file
        self.lines = lines
        self.problems = problems

    def problem(self, where: PathKey, message: str, fix: str) -> None:
        self.problems.append(f"{self.at(where)}: {message}. Fix: {fix}.")

    def grants(self, data: Any) -> list[Grant]:
        if data is None:
            return []
        if not isinstance(data, dict):
            self.problem((), "a policy file is a YAML mapping", "start the file with 'agents:'")
            return []
        for key in data:
            if key != "agents":
                self.problem((key,), f"unknown top-level key {key!r}", "the only top-level key is 'agents'")
        entries = data.get("agents") or {}
        if not isinstance(entries, dict):
            self.problem(("agents",), "'agents' is not a mapping", "write one 'agent-name:' entry per agent")
            return []
        out = []
        for name, entry in entries.items():
            grant = self.grant(name, entry)
            if grant is not None:
                out.append(grant)
        return out

    def grant(self, name: Any, entry: Any) -> Grant | None:
        where: PathKey = ("agents", name)
        count = len(self.problems)
        if not isinstance(name, str) or not AGENT_NAME.fullmatch(name):
            self.problem(where, f"agent name {name!r} is not valid", "use 1-63 characters of [a-z0-9_-]")
            return None
        if not isinstance(entry, dict):
            self.problem(where, f"agent {name}: the entry is not a mapping", "give it datasets: and purpose:")
            return None
        for key in entry:
            if key not in _AGENT_KEYS:
                self.problem(
                    (*where, key), f"agent {name}: unknown key {key!r}", f"use {', '.join(_AGENT_KEYS)}"
                )
        datasets = self.datasets(name, entry.get("datasets"), (*where, "datasets"))
        purpose = entry.get("purpose")
        if not isinstance(purpose, str) or not PURPOSE.fullmatch(purpose):
            self.problem(
                (*where, "purpose") if "purpose" in entry else where,
                f"agent {name}: purpose {purpose!r} is missing or not [a-z0-9_-]",
                "state why the agent reads, e.g. purpose: customer_support",
            )
        allow, deny = self.columns(name, entry.get("columns"), (*where, "columns"))
        row_filter = self.row_filter(name, entry.get("row_filter"), (*where, "row_filter"))
        quota = self.quota(name, entry.get("quota"), (*where, "quota"))
        if len(self.problems) != count:
            return None
        origins = {key: self.at((*where, key)) for key in entry if key in _AGENT_KEYS}
        for key in quota or {}:
            origins[f"quota.{key}"] = self.at((*where, "quota", key))
        columns = entry.get("columns") or {}
        for key in ("allow", "deny"):
            if key in columns:
                origins[f"columns.{key}"] = self.at((*where, "columns", key))
        for i, column in enumerate(deny):
            origins[f"deny:{column}"] = self.at((*where, "columns", "deny", i))
        return Grant(
            agent=name,
            datasets=datasets,
            purpose=str(purpose),
            allow_columns=allow,
            deny_columns=deny,
            row_filter=row_filter,
            source=self.at(where),
            origins=origins,
            quota=quota,
            settings={key: entry[key] for key in entry if key in _AGENT_KEYS},
        )

    def at(self, where: PathKey) -> str:
        return f"{self.file}:{line_of(self.lines, where)}"

    def datasets(self, name: str, raw: Any, where: PathKey) -> tuple[str, ...]:
        if not isinstance(raw, list) or not raw:
            self.problem(
                where, f"agent {name}: datasets is missing or empty", 'list dataset globs, e.g. ["crm.*"]'
            )
            return ()
        for i, glob in enumerate(raw):
            if not isinstance(glob, str) or not DATASET_GLOB.fullmatch(glob):
                self.problem(
                    (*where, i),
                    f"agent {name}: dataset glob {glob!r} is not valid",
                    "write a dataset id or fnmatch glob of [a-z0-9_.*?], e.g. erp.orders or crm.*",
                )
        return tuple(str(g) for g in raw)

    def columns(self, name: str, raw: Any, where: PathKey) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        if raw is None:
            return None, ()
        if not isinstance(raw, dict) or set(raw) - {"allow", "deny"}:
            self.problem(
                where, f"agent {name}: columns takes only allow and deny lists", "write {deny: [col, ...]}"
            )
            return None, ()
        lists: dict[str, tuple[str, ...]] = {}
        for key in ("allow", "deny"):
            items = raw.get(key)
            if items is None:
                continue
            if not isinstance(items, list) or not all(
                isinstance(c, str) and COLUMN_NAME.fullmatch(c) for c in items
            ):
                self.problem(
                    (*where, key), f"agent {name}: columns.{key} is not a list of column names", "use [a, b]"
                )
                continue
            lists[key] = tuple(items)
        return lists.get("allow"), lists.get("deny", ())

    def quota(self, name: str, raw: Any, where: PathKey) -> dict[str, int] | None:
        if raw is None:
            return None
        fix = "write e.g. quota: {calls: 5000, rows: 1000000} (per UTC day; leave a key out for the level default)"
        if not isinstance(raw, dict) or not raw:
            self.problem(where, f"agent {name}: quota is not a mapping of calls and/or rows", fix)
            return None
        out: dict[str, int] = {}
        for key, value in raw.items():
            if key not in QUOTA_KEYS:
                self.problem((*where, key), f"agent {name}: unknown quota key {key!r}", fix)
            elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUOTA:
                self.problem(
                    (*where, key),
                    f"agent {name}: quota {key} is not a whole number from 0 to {MAX_QUOTA}",
                    fix,
                )
            else:
                out[key] = value
        return out

    def row_filter(self, name: str, raw: Any, where: PathKey) -> str | None:
        if raw is None:
            return None
        fix = "write a SQL boolean over the dataset's columns, e.g. billing_country = 'DE'"
        if not isinstance(raw, str) or not raw.strip():
            self.problem(where, f"agent {name}: row_filter is not a SQL expression", fix)
            return None
        try:
            expr = pl.sql_expr(raw)
        except Exception:  # polars raises several error types for unparsable SQL
            self.problem(where, f"agent {name}: row_filter does not parse as SQL", fix)
            return None
        if expr.meta.has_multiple_outputs() or not expr.meta.root_names():
            self.problem(where, f"agent {name}: row_filter must name the columns it tests", fix)
            return None
        return raw
