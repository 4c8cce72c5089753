"""Group commit: concurrent appends share transactions, and the chain stays whole and gap-free."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, event

from governance import audit
from governance.audit_group import GroupCommit
from governance.errors import AuditError
from governance.store import Store

KEY = b"group-commit-test-key-0123456789"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = Store(home=tmp_path, catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}")
    engine = store.engine()
    audit.head(engine)  # migrate
    yield engine
    engine.dispose()


def _append(n: int, actor: str = "bot") -> Callable[[Connection], audit.AuditRecord]:
    def work(conn: Connection) -> audit.AuditRecord:
        return audit.append_in(
            conn, actor=actor, action="read", dataset="crm.accounts", decision="allow", detail={"n": n}
        )

    return work


def test_sixteen_threads_share_commits_and_leave_a_valid_gap_free_chain(engine: Engine) -> None:
    group = GroupCommit(engine, audit.lock_in, attempts=8)
    commits = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    results: list[audit.AuditRecord] = []
    lock = threading.Lock()

    def reader(worker: int) -> None:
        for i in range(40):
            record = group.run("read record", _append(worker * 1000 + i))
            with lock:
                results.append(record)

    threads = [threading.Thread(target=reader, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(results) == 640
    assert sorted(r.seq for r in results) == list(range(1, 641)), "every caller got its own committed seq"
    stored = audit.records(engine)
    assert [r.seq for r in stored] == list(range(1, 641))
    assert sorted(r.detail["n"] for r in stored) == sorted(r.detail["n"] for r in results)
    assert audit.verify(engine).ok
    assert len(commits) < 640, f"{len(commits)} commits for 640 records: no group formed"


def test_a_failing_work_fails_only_its_caller(engine: Engine) -> None:
    group = GroupCommit(engine, audit.lock_in, attempts=8)
    barrier = threading.Barrier(8)
    outcomes: dict[int, object] = {}

    def caller(n: int) -> None:
        append = _append(n)

        def work(conn: Connection) -> audit.AuditRecord:
            record = append(conn)
            if n == 3:
                raise ValueError("this caller's decision failed")
            return record

        barrier.wait()
        try:
            outcomes[n] = group.run("read record", work)
        except ValueError as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(outcomes[3], ValueError)
    assert all(isinstance(outcomes[n], audit.AuditRecord) for n in range(8) if n != 3)
    stored = audit.records(engine)
    assert sorted(r.detail["n"] for r in stored) == [0, 1, 2, 4, 5, 6, 7], "the failed work left no record"
    assert audit.verify(engine).ok


def test_asking_for_an_audit_transaction_inside_one_fails_instead_of_waiting_for_itself(
    engine: Engine,
) -> None:
    group = GroupCommit(engine, audit.lock_in, attempts=8)

    def nested(conn: Connection) -> object:
        return group.run("inner record", _append(2))

    with pytest.raises(AuditError, match="inside another audit transaction"):
        group.run("outer record", nested)
    assert audit.records(engine) == []
    assert group.run("next record", _append(3)).seq == 1, "the committer is usable afterwards"


def test_a_value_the_database_refuses_fails_only_its_own_caller(engine: Engine) -> None:
    """One caller's record the database refuses (PostgreSQL: a too-long value) must not fail the group."""
    from sqlalchemy.exc import DataError

    group = GroupCommit(engine, audit.lock_in, attempts=3)
    barrier = threading.Barrier(6)
    outcomes: dict[int, object] = {}

    def caller(n: int) -> None:
        append = _append(n)

        def work(conn: Connection) -> audit.AuditRecord:
            if n == 2:
                raise DataError("INSERT INTO audit_log ...", {}, Exception("value too long for type"))
            return append(conn)

        barrier.wait()
        try:
            outcomes[n] = group.run("read record", work)
        except AuditError as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(outcomes[2], AuditError) and "DataError" in str(outcomes[2])
    assert all(isinstance(outcomes[n], audit.AuditRecord) for n in range(6) if n != 2), outcomes
    assert sorted(r.detail["n"] for r in audit.records(engine)) == [0, 1, 3, 4, 5]
    assert audit.verify(engine).ok


def test_works_of_one_transaction_see_what_earlier_works_wrote_though_rows_are_written_once(
    engine: Engine,
) -> None:
    """Audit rows and usage counts are written once per group, yet every work reads what came before."""
    from datetime import date

    from governance import quota
    from governance.audit_group import _Work

    group = GroupCommit(engine, audit.lock_in, attempts=8)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2].split()[0].upper()))
    day = date(2026, 11, 25)

    def count(conn: Connection) -> quota.Usage:
        used = quota._usage_in(conn, "bot", day)
        after = quota.Usage("bot", day, used.calls + 1, used.rows + 10, used.denied)
        quota._store_in(conn, after, new=used.calls == 0)
        return after

    def newest(conn: Connection) -> object:
        return audit.last_of(conn, ("read",))

    works = [_append(1), newest, count, _append(2), count, count, _append(3)]
    results = group._transaction([_Work(str(i), w) for i, w in enumerate(works)])
    written = list(statements)

    assert [getattr(r, "seq", None) for r in results[:2]] == [1, 1], "last_of sees the group's earlier record"
    assert [r.calls for r in results if isinstance(r, quota.Usage)] == [1, 2, 3]
    assert [r.detail for r in audit.records(engine)] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert audit.verify(engine).ok
    stored = quota.usage(engine, "bot", day)
    assert (stored.calls, stored.rows) == (3, 30), "the group's last counts were stored"
    # records: one insert before last_of, one for the two after it; usage: one row, written once
    assert written.count("INSERT") == 3
    assert written.count("UPDATE") == 0
