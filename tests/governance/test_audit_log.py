"""The hash-chained audit log: tampering is found and named; concurrent appends keep the chain whole."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from governance import Store, literal_hash, redact_sql, verify
from governance.audit import GENESIS, append, records
from governance.catalog import migrate

KEY = b"k" * 32


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = Store(home=tmp_path, catalog_url=f"sqlite:///{tmp_path}/catalog.db").engine()
    migrate(engine)
    return engine


def _fill(engine: Engine, n: int = 5) -> None:
    for i in range(n):
        append(
            engine,
            actor="bot",
            action="read",
            dataset="crm.customers",
            decision="allow",
            detail={"rows": i, "note": "ünïcode"},
        )


def test_chain_links_from_genesis(engine: Engine) -> None:
    assert verify(engine).ok and verify(engine).records == 0
    _fill(engine)
    logged = records(engine)
    assert [r.seq for r in logged] == [1, 2, 3, 4, 5]
    assert logged[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(logged, logged[1:], strict=False))
    assert logged[2].detail == {"rows": 2, "note": "ünïcode"}
    result = verify(engine)
    assert (result.ok, result.records, result.first_bad_seq) == (True, 5, None)


def _sql(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)


def test_edited_record_is_found(engine: Engine) -> None:
    _fill(engine)
    _sql(engine, "UPDATE audit_log SET record = replace(record, '\"rows\":2', '\"rows\":0') WHERE seq = 3")
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 3 and "edited" in result.message


def test_edited_column_outside_the_record_is_found(engine: Engine) -> None:
    _fill(engine)
    _sql(engine, "UPDATE audit_log SET decision = 'deny' WHERE seq = 2")
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 2 and "decision" in result.message


def test_deleted_record_is_found(engine: Engine) -> None:
    _fill(engine)
    _sql(engine, "DELETE FROM audit_log WHERE seq = 4")
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 4 and "deleted" in result.message


def test_reordered_records_are_found(engine: Engine) -> None:
    _fill(engine)
    _sql(engine, "UPDATE audit_log SET seq = -1 WHERE seq = 2")
    _sql(engine, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    _sql(engine, "UPDATE audit_log SET seq = 3 WHERE seq = -1")
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 2


def test_edited_and_rehashed_record_is_found_by_its_successor(engine: Engine) -> None:
    _fill(engine)
    from governance.audit import chain_hash

    with engine.begin() as conn:
        prev, record = conn.execute(text("SELECT prev_hash, record FROM audit_log WHERE seq = 2")).one()
        forged = record.replace('"rows":1', '"rows":99')
        conn.execute(
            text("UPDATE audit_log SET record = :r, hash = :h WHERE seq = 2"),
            {"r": forged, "h": chain_hash(prev, forged)},
        )
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 2 and "re-hashed" in result.message


def test_eight_threads_appending_leave_one_valid_chain(engine: Engine) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(15):
                append(
                    engine,
                    actor=f"bot-{worker}",
                    action="read",
                    dataset=None,
                    decision="allow",
                    detail={"i": i},
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = verify(engine)
    assert result.ok and result.records == 120
    assert [r.seq for r in records(engine)] == list(range(1, 121))


def test_redact_sql_hashes_literals_and_keeps_structure() -> None:
    sql = "email = 'o''brien@canary.test' AND revenue > 1250000.5 AND col1 IN (7, 8) -- note 4711"
    redacted = redact_sql(KEY, sql)
    for secret in ("brien", "1250000", "7,", "4711"):
        assert secret not in redacted
    assert literal_hash(KEY, "o'brien@canary.test") in redacted
    assert literal_hash(KEY, "1250000.5") in redacted
    assert redacted.startswith("email = <hmac:") and "col1 IN (" in redacted and "AND revenue >" in redacted
    assert "canary" not in redact_sql(KEY, "name = 'unterminated canary")
    assert literal_hash(KEY, "x") != literal_hash(b"other-key" * 4, "x")
