"""The in-process agent client: identity, then policy, then a masked view, then the agent's query, then audit.

For trusted code in the same process as the catalog (untrusted agents go through the gateway server);
built by :func:`governance.client_connect.connect`.
Every call, allowed or denied, appends exactly one audit record before anything is returned; if the
record cannot be written the call raises :class:`AuditError` and returns nothing.

Every call re-checks the agent's token first, so a token rotated, revoked or expired after connecting
fails at once, and a promotion or demotion applies to the next call.

Every call also counts against the agent's daily quota (:mod:`governance.quota`): the decision, the
audit record and the count are one transaction under the audit log's write lock. A call over quota is
denied by rule ``quota``; a read that finds more rows than are left today returns the rows left and
says so in ``provenance["quota"]["truncated"]``. Connecting records the policy in force when its text
changed (:mod:`governance.policy_log`).

A read sees only the policy view of the dataset's certified Delta version::

    scan at datasets.certified_version
      -> keep the contract's columns (internal ``_`` columns and undeclared ones dropped)
      -> withhold columns above the level's cap or denied by policy
      -> mask personal data (intern, junior) and identifiers (intern)
      -> the policy's row_filter (over the masked view)
      -> the agent's where (over the masked view, only its columns), columns, limit (capped per level)
      -> the quota: at most the rows left today
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import Connection

from governance import audit, quota
from governance.catalog import Catalog, DatasetState
from governance.errors import AccessDenied, AuditError, AuthenticationError
from governance.identity import Agent, current
from governance.ledger import Ledger
from governance.masks import ColumnPlan
from governance.policy import Grant
from governance.read_cache import FRAMES, CertifiedFrame, decode
from governance.read_index import equality_terms
from governance.store import Store, reading
from governance.view import (
    Denied,
    limit_rows,
    max_rows,
    policy_view,
    run,
    select_columns,
    view_plan,
    where_expr,
)
from schemas.contract import COLUMN_NAME, DATASET_ID, Contract

MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class ReadResult:
    """Rows an agent may see, and where they came from.

    ``provenance`` holds ``dataset``, ``version``, ``certified_at`` (ISO 8601), ``purpose``, ``masks``
    (returned column -> mask), ``withheld`` (columns left out), ``row_filter`` (whether the policy
    filtered rows), ``limit`` (the rows asked for, after the level's cap), ``max_rows`` (the level's
    per-call cap), ``rows``, and ``quota`` (``day``, ``calls`` and ``rows`` as ``{limit, used}`` after this
    call, and ``truncated``: whether the day's row quota cut the result short).
    """

    frame: pl.DataFrame
    provenance: dict[str, Any]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Target:
    """A dataset the agent may read: its certified state, contract and the agent's grant."""

    state: DatasetState
    version: int
    contract: Contract
    grant: Grant


class Client:
    """An authenticated agent's door to certified data. Build with :func:`connect`."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        agent: Agent,
        grant: Grant | None,
        contracts: dict[str, Contract],
        audit_key: bytes,
        in_memory: bool = True,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.in_memory = in_memory
        self.store = store
        self.catalog = catalog
        self.agent = agent
        self.grant = grant
        self._contracts = contracts
        self._audit_key = audit_key
        self._ledger = Ledger(catalog.engine, audit_key, clock or _utc_now)

    # -- the three calls --------------------------------------------------------------------------
    def datasets(self) -> list[dict[str, Any]]:
        """The certified datasets this agent's policy grants, newest facts from the catalog."""
        try:
            with _guarded():
                self._refresh()
                grant = self._grant()
                self._gate(reading=False)
        except Denied as denied:
            raise self._deny("datasets", None, denied, {}) from None
        listed = [
            _summary(state, self._contracts[state.id], grant)
            for state in self.catalog.datasets()
            if state.certified_version is not None
            and grant.allows_dataset(state.id)
            and state.id in self._contracts
        ]
        detail = {"purpose": grant.purpose, "datasets": [d["id"] for d in listed], "reason": None}
        self._allow("datasets", None, detail)
        return listed

    def describe(self, dataset: str) -> dict[str, Any]:
        """The columns this agent would see of ``dataset``: type, classification, mask or withheld."""
        try:
            with _guarded():
                target = self._target(dataset)
                self._gate(reading=False)
                view, plan, _ = self._view(target)
                schema = view.collect_schema()
        except Denied as denied:
            raise self._deny("describe", dataset, denied, {}) from None
        columns = []
        for column in target.contract.columns:
            if column.name not in plan.shown and column.name not in plan.withheld:
                continue  # declared but not stored in this version
            shown = column.name in plan.shown
            columns.append(
                {
                    "name": column.name,
                    # the type as stored: a text column held dictionary-encoded in memory is still text
                    "type": str(pl.String if schema[column.name] == pl.Categorical else schema[column.name])
                    if shown
                    else column.logical_type,
                    "classification": column.classification,
                    "pii": column.pii,
                    "mask": plan.masks.get(column.name),
                    "withheld": plan.withheld.get(column.name),
                    "description": column.description,
                }
            )
        description = {
            **_summary(target.state, target.contract, target.grant),
            "purpose": target.grant.purpose,
            "row_filter": target.grant.row_filter is not None,
            "columns": columns,
        }
        detail = {
            "purpose": target.grant.purpose,
            "version": target.version,
            "columns": list(plan.shown),
            "withheld": sorted(plan.withheld),
            "masks": plan.masks,
            "reason": None,
        }
        self._allow("describe", dataset, detail)
        return description

    def read(
        self,
        dataset: str,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        limit: int | None = None,
    ) -> ReadResult:
        """Rows of ``dataset``'s certified version through this agent's policy view.

        ``where`` is a SQL boolean expression over the view's columns (as masked); ``limit`` defaults
        to 1000 and is capped at 10000, and at the level's own cap (an intern: 100). The day's row
        quota may cut the result shorter (``provenance["quota"]["truncated"]``). Raises
        :class:`AccessDenied` naming the rule that denied (``quota`` when the day's calls or rows are
        used up).
        """
        detail: dict[str, Any] = {
            "columns": self._safe_names(columns),
            "where": audit.redact_sql(self._audit_key, where, self._column_names(dataset))
            if isinstance(where, str)
            else None,
            "limit": limit if isinstance(limit, int) else None,
        }
        try:
            with _guarded():
                target = self._target(dataset)
                self._gate(reading=True)
                rows_cap = limit_rows(limit, self.agent.level)
                plan = view_plan(
                    self._scan(dataset, target.version), target.contract, self.agent.level, target.grant
                )
                selected = select_columns(columns, plan, dataset, self.agent.name, self.agent.level)
                condition = where_expr(where, plan) if where is not None else None
                rows = self._candidates(target, plan, condition)
                view, plan, encoded = self._view(target, rows=rows)
                try:
                    frame = decode(run(view, condition, selected, rows_cap), encoded)
                except Denied:
                    if not encoded:
                        raise
                    # Some text operations are not defined on the encoded form: run on plain text instead.
                    view, plan, encoded = self._view(target, decoded=True, rows=rows)
                    frame = run(view, condition, selected, rows_cap)
        except Denied as denied:
            raise self._deny("read", dataset, denied, detail) from None
        masks = {c: plan.masks[c] for c in selected if c in plan.masks}
        detail.update(
            purpose=target.grant.purpose,
            version=target.version,
            columns=selected,
            withheld=sorted(plan.withheld),
            masks=masks,
            rows=frame.height,
            limit=rows_cap,
            row_filter=target.grant.row_filter is not None,
            reason=None,
        )
        charge = self._allow("read", dataset, detail, rows=frame.height)
        if charge.rows < frame.height:
            frame = frame.head(charge.rows)
        provenance = {
            "dataset": dataset,
            "version": target.version,
            "certified_at": target.state.certified_at.isoformat() if target.state.certified_at else None,
            "purpose": target.grant.purpose,
            "masks": masks,
            "withheld": sorted(plan.withheld),
            "row_filter": target.grant.row_filter is not None,
            "limit": rows_cap,
            "max_rows": max_rows(self.agent.level),
            "rows": frame.height,
            "quota": charge.extra["quota"],
        }
        return ReadResult(frame=frame, provenance=provenance)

    # -- gates --------------------------------------------------------------------------------------
    def _refresh(self, conn: Connection | None = None) -> None:
        """Re-check the token on every call: rotated, revoked or expired fails at once; a new level applies."""
        try:
            self.agent = current(conn if conn is not None else self.catalog.engine, self.agent)
        except AuthenticationError as exc:
            raise Denied("identity", str(exc)) from None

    def _grant(self) -> Grant:
        if self.grant is None:
            raise Denied(
                "policy",
                f"agent {self.agent.name} has no policy entry, so it reads nothing (deny by default). "
                "Fix: ask the governance officer to add it under 'agents:' in the policy.",
            )
        return self.grant

    def _target(self, dataset: str) -> _Target:
        with reading(self.catalog.engine) as conn:  # the agent and the dataset, on one connection
            self._refresh(conn)
            if not isinstance(dataset, str) or not DATASET_ID.fullmatch(dataset):
                raise Denied(
                    "dataset_id", "the dataset id is not 'domain.name' of [a-z0-9_]. Fix: e.g. erp.orders."
                )
            grant = self._grant()
            if not grant.allows_dataset(dataset):
                raise Denied(
                    "policy",
                    f"dataset {dataset} is not granted to agent {self.agent.name} by {grant.source}.",
                )
            state = self.catalog.dataset(dataset, conn)
        if state is None or state.certified_version is None:
            raise Denied(
                "certified", f"dataset {dataset} has no certified version; only certified data is readable."
            )
        contract = self._contracts.get(dataset)
        if contract is None:
            raise Denied("contract", f"dataset {dataset} has no contract, so its classification is unknown.")
        return _Target(state=state, version=state.certified_version, contract=contract, grant=grant)

    def _candidates(self, target: _Target, plan: ColumnPlan, condition: pl.Expr | None) -> pl.Series | None:
        """Rows that can satisfy the row filter and the agent's where, from the version's row indexes.

        Only ``column = literal`` terms on columns the agent sees unmasked use an index (a masked column's
        predicate tests the masked value); None means no index applies and the whole version is read.
        """
        if not self.in_memory:
            return None
        terms = equality_terms(condition) if condition is not None else []
        row_filter = target.grant.row_filter_expr()
        if row_filter is not None:
            terms += equality_terms(row_filter)
        if not terms:
            return None
        indexes = self._scan(target.state.id, target.version).indexes
        if indexes is None:
            return None
        return indexes.candidate_rows(terms, usable=set(plan.shown) - set(plan.masks))

    def _view(
        self, target: _Target, *, decoded: bool = False, rows: pl.Series | None = None
    ) -> tuple[pl.LazyFrame | pl.DataFrame, ColumnPlan, frozenset[str]]:
        """The policy view: certified version, contract columns, withheld, masked, policy-filtered.

        Dictionary-encoded text columns stay encoded (fast equality filters) unless ``decoded``; the
        third value names the columns the caller must decode after collecting.
        """
        cached = self._scan(target.state.id, target.version)
        return policy_view(
            cached,
            target.contract,
            target.grant,
            level=self.agent.level,
            secret=self._audit_key,
            agent=self.agent.name,
            dataset=target.state.id,
            decoded=decoded,
            rows=rows,
        )

    def _scan(self, dataset: str, version: int) -> CertifiedFrame:
        """The Delta table at exactly ``version``, held in memory: a certified version never changes."""
        try:
            table = self.store.table_path(dataset)
            if not self.in_memory:
                scan = pl.scan_delta(str(table), version=version)
                return CertifiedFrame(frame=scan, schema=scan.collect_schema(), encoded=frozenset())
            return FRAMES.get(table, version)
        except Exception:  # a missing table or version; the driver's message is not passed on
            raise Denied(
                "storage",
                f"dataset {dataset}: certified version {version} cannot be read from the warehouse.",
            ) from None

    # -- quota and audit ------------------------------------------------------------------------------
    def daily_quota(self) -> quota.Quota:
        """This agent's daily quota: its policy entry's, else its level's default."""
        return self._ledger.daily_quota(self.agent, self.grant)

    def _gate(self, *, reading: bool) -> None:
        self._ledger.gate(self.agent, self.grant, reading=reading)

    def _allow(
        self, action: str, dataset: str | None, detail: dict[str, Any], rows: int | None = None
    ) -> quota.Charge:
        return self._ledger.allow(self.agent, self.grant, action, dataset, detail, rows)

    def _deny(self, action: str, dataset: str | None, denied: Denied, detail: dict[str, Any]) -> AccessDenied:
        return self._ledger.deny(self.agent, self.grant, action, dataset, denied, detail)

    def _column_names(self, dataset: object) -> frozenset[str]:
        """The contract's column names of ``dataset`` (kept in clear in audited filters), else none."""
        contract = self._contracts.get(dataset) if isinstance(dataset, str) else None
        return frozenset(c.name for c in contract.columns) if contract is not None else frozenset()

    def _safe_names(self, columns: Sequence[str] | None) -> list[str] | None:
        """Requested column names for the audit log; anything that is not a column name is hashed."""
        if columns is None or isinstance(columns, str) or not isinstance(columns, Sequence):
            return None
        return [
            c if isinstance(c, str) and COLUMN_NAME.fullmatch(c) else audit.literal_hash(self._audit_key, c)
            for c in columns
        ]


@contextmanager
def _guarded() -> Iterator[None]:
    """Turn an unexpected failure inside a call into a deny the caller audits, without its message.

    A polars panic (a ``BaseException``), a driver error or a bug must neither return data nor escape
    unaudited, and its text may quote values; the agent and the audit record get the type name only.
    """
    try:
        yield
    except (Denied, AuditError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        raise Denied(
            "internal", f"the call could not be completed ({type(exc).__name__}); nothing was returned."
        ) from None


def _summary(state: DatasetState, contract: Contract, grant: Grant) -> dict[str, Any]:
    """What an agent is told of a dataset. The row count is the whole version's, so an agent whose policy
    filters rows is not told it: it would learn how much data lies outside its filter."""
    return {
        "id": state.id,
        "description": contract.description,
        "version": state.certified_version,
        "certified_at": state.certified_at.isoformat() if state.certified_at else None,
        "status": state.status,
        "rows": state.rows if grant.row_filter is None else None,
        "latest_business_date": state.latest_business_date.isoformat()
        if state.latest_business_date
        else None,
        "contract_version": contract.version,
        "business_owner": state.business_owner,
        "operations_owner": state.operations_owner,
    }
