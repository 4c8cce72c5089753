"""Group commit for audit appends: concurrent callers in one process share one locked transaction.

Every agent call appends its audit record (and, for reads, charges its quota) under the audit log's
write lock before it returns data. Taken one call at a time, that lock and the commit's flush to disk
are the whole cost of a read when many agents read at once: each waits for every other's commit.

Here the first caller to arrive becomes the *leader*: it takes every piece of work queued so far, runs
them one after another in a single transaction that holds the lock, commits once, and hands each
caller its own result. Callers that arrived meanwhile form the next group, led by the first of them.
Nothing is weaker than one transaction per call: each caller's work still reads the state left by the
work before it (the chain head, today's quota use) inside the same locked transaction, and no caller
gets a result before the transaction holding its record has committed; if the commit fails, every
caller in the group gets the error. An uncontended call is a group of one.

If one caller's work raises (not a database error), the group's transaction is rolled back and each
work of the group runs again alone, so one failing caller never decides another's outcome.

While a group's transaction holds the lock, what its works read and then write themselves (the chain
head, the newest anchor, an agent's usage today) cannot change underneath them, so each is read from the
database once per transaction and carried from work to work in :func:`memo` (fresh for every attempt,
dropped with the transaction).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from governance.errors import AuditError

MAX_GROUP = 64
_INSIDE = threading.local()  # set while this thread runs a group's transaction
_MEMO = "assay.audit_group.memo"


_PENDING = "assay.audit_group.pending"


def defer(conn: Connection, key: str, write: Callable[[Connection], None]) -> bool:
    """Inside a group transaction, queue ``write(conn)`` to run once just before it commits; False outside.

    Writes nothing in the transaction reads back (the audit rows, the usage counts) are made once per
    group, not once per work: each statement lets other threads take the interpreter lock, and the lock
    holder is the one transaction every caller waits for. ``key`` makes queueing idempotent; the callable
    flushes what its caller accumulated in :func:`memo`. Anything that reads those tables in the
    transaction calls :func:`flush` first.
    """
    held = memo(conn)
    if held is None:
        return False
    held.setdefault(_PENDING, {})[key] = write
    return True


def flush(conn: Connection) -> None:
    """Run the writes :func:`defer` queued on ``conn``'s group transaction (none outside one)."""
    held = memo(conn)
    if held is None:
        return
    pending: dict[str, Callable[[Connection], None]] = held.pop(_PENDING, {})
    for write in pending.values():
        write(conn)


def memo(conn: Connection) -> dict[Any, Any] | None:
    """State carried between the works of one locked group transaction on ``conn``; None outside one.

    Only for what nothing but those works can change while the lock is held; a work that writes such
    a value stores it back, so the next work reads what the database would answer.
    """
    found: dict[Any, Any] | None = conn.info.get(_MEMO)
    return found


@dataclass(eq=False)
class _Work:
    what: str
    run: Callable[[Connection], Any]
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    finished: bool = False
    result: Any = None
    error: BaseException | None = None


class _WorkFailed(Exception):
    """One work of a group raised: roll the group back and run each work alone."""


class GroupCommit:
    """Serialises ``run(conn)`` works for one engine, several per transaction when callers overlap."""

    def __init__(self, engine: Engine, lock: Callable[[Connection], None], attempts: int) -> None:
        self.engine = engine
        self._lock = lock
        self._attempts = attempts
        self._mutex = threading.Lock()
        self._queue: list[_Work] = []
        self._leading = False

    def run(self, what: str, work: Callable[[Connection], Any]) -> Any:
        if getattr(_INSIDE, "group", False):
            raise AuditError(
                f"audit_log: the {what} was asked for inside another audit transaction, which would wait "
                "for itself. Fix: append with append_in(conn, ...) on the connection you were given."
            )
        item = _Work(what, work)
        with self._mutex:
            self._queue.append(item)
            if not self._leading:
                self._leading = item.lead = True
        while not item.finished:
            if item.lead:
                item.lead = False
                self._lead()
            else:
                item.wake.wait()
                item.wake.clear()
        if item.error is not None:
            raise item.error
        return item.result

    def _lead(self) -> None:
        """Commit one group (the leader's own work is its first), then pass the lead to the next."""
        with self._mutex:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
        try:
            self._commit(group)
        finally:
            for item in group:
                item.finished = True
                item.wake.set()
            with self._mutex:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.wake.set()
                else:
                    self._leading = False

    def _commit(self, group: list[_Work]) -> None:
        try:
            results = self._transaction(group)
        except (_WorkFailed, AuditError) as exc:
            if len(group) == 1:
                group[0].error = exc
                return
            # One work failed, or the group could not commit: run each alone, so a failure (a value
            # the database refuses, say) stays its own caller's and never decides another's outcome.
            for item in group:
                try:
                    (item.result,) = self._transaction([item])
                except BaseException as alone:  # handed to the caller, who raises it
                    item.error = alone
            return
        except BaseException as exc:
            for item in group:
                item.error = exc
            return
        for item, result in zip(group, results, strict=True):
            item.result = result

    def _transaction(self, group: list[_Work]) -> list[Any]:
        """Run the group's works in one locked transaction; retry a lost race or lock wait.

        In a group of several, a work that raises (anything, a database refusal included) raises
        :class:`_WorkFailed` at once, so the caller reruns each work alone; alone, a work's own error is
        raised as it is (a database error as :class:`AuditError`).
        """
        alone = len(group) == 1
        what = group[0].what if alone else f"{len(group)} audit records"
        last: Exception | None = None
        for attempt in range(self._attempts):
            try:
                with self.engine.begin() as conn:
                    self._lock(conn)
                    results = []
                    _INSIDE.group = True
                    conn.info[_MEMO] = {}
                    try:
                        for item in group:
                            try:
                                results.append(item.run(conn))
                            except (IntegrityError, OperationalError):
                                raise  # a lost race or lock wait: the whole group retries
                            except Exception as exc:
                                if alone:
                                    raise
                                raise _WorkFailed() from exc
                        flush(conn)
                    finally:
                        _INSIDE.group = False
                        conn.info.pop(_MEMO, None)
                    return results
            except (IntegrityError, OperationalError) as exc:  # lost a race for seq, or the lock timed out
                last = exc
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
            except _WorkFailed:
                raise
            except SQLAlchemyError as exc:
                raise AuditError(f"audit_log: could not record the {what} ({type(exc).__name__}).") from exc
        raise AuditError(
            f"audit_log: could not record the {what} after {self._attempts} attempts ({type(last).__name__}). "
            "Fix: check that the catalog database is reachable and not locked by a long transaction."
        ) from last


_GROUPS: dict[int, GroupCommit] = {}
_GROUPS_LOCK = threading.Lock()


def group_for(engine: Engine, lock: Callable[[Connection], None], attempts: int) -> GroupCommit:
    """The process's group committer for ``engine`` (one per engine object)."""
    with _GROUPS_LOCK:
        group = _GROUPS.get(id(engine))
        if group is None or group.engine is not engine:
            group = _GROUPS[id(engine)] = GroupCommit(engine, lock, attempts)
        return group
