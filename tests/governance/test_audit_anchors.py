"""An audit trail that holds: every tampering attack found and the first untrusted record named, anchors
that catch a re-hashed tail and a cut one, batch outcomes, SIEM export, and 8 processes appending at once
to SQLite and to PostgreSQL."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from governance import Store, anchor, export_lines, record_batch_outcome, verify
from governance.anchors import Anchor, audit_anchors
from governance.audit import append, canonical_json, chain_hash, records
from governance.catalog import migrate
from governance.errors import AuditError
from governance.store import catalog_engine

KEY = b"anchor-test-key-0123456789abcdef"
EVERY = 5
N = 22  # anchors at seq 5, 10, 15, 20


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = Store(home=tmp_path, catalog_url=f"sqlite:///{tmp_path}/catalog.db").engine()
    migrate(engine)
    return engine


def _fill(engine: Engine, n: int = N, key: bytes | None = KEY) -> None:
    for i in range(n):
        append(
            engine,
            actor="bot",
            action="read",
            dataset="crm.accounts",
            decision="allow",
            detail={"rows": i},
            anchor_key=key,
            anchor_every=EVERY,
        )


def _sql(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)


def _anchored(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [
            int(s) for s in conn.execute(select(audit_anchors.c.seq).order_by(audit_anchors.c.seq)).scalars()
        ]


def _rehash_from(engine: Engine, seq: int, edit: Callable[[str], str] = lambda r: r) -> None:
    """What an attacker with write access does: change a record, then recompute every hash after it."""
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT seq, prev_hash, record FROM audit_log WHERE seq >= :s ORDER BY seq"), {"s": seq}
        ).all()
        prev_hash = rows[0].prev_hash
        for row in rows:
            record = edit(row.record) if row.seq == seq else row.record
            digest = chain_hash(prev_hash, record)
            conn.execute(
                text("UPDATE audit_log SET record = :r, prev_hash = :p, hash = :h WHERE seq = :s"),
                {"r": record, "p": prev_hash, "h": digest, "s": row.seq},
            )
            prev_hash = digest


def _edit(engine: Engine) -> None:
    _sql(engine, "UPDATE audit_log SET record = replace(record, '\"rows\":6', '\"rows\":0') WHERE seq = 7")


def _delete(engine: Engine) -> None:
    _sql(engine, "DELETE FROM audit_log WHERE seq = 7")


def _reorder(engine: Engine) -> None:
    _sql(engine, "UPDATE audit_log SET seq = -1 WHERE seq = 7")
    _sql(engine, "UPDATE audit_log SET seq = 7 WHERE seq = 8")
    _sql(engine, "UPDATE audit_log SET seq = 8 WHERE seq = -1")


def _truncate(engine: Engine) -> None:
    _sql(engine, "DELETE FROM audit_log WHERE seq > 12")


def _rehash_tail(engine: Engine) -> None:
    _rehash_from(engine, 7, lambda r: r.replace('"decision":"allow"', '"decision":"deny"'))
    _sql(engine, "UPDATE audit_log SET decision = 'deny' WHERE seq = 7")


@pytest.mark.parametrize(
    "attack, first_bad, words, found_without_key",
    [
        (_edit, 7, ["seq 7", "edited"], True),
        (_delete, 7, ["seq 7 is missing", "deleted"], True),
        (_reorder, 7, ["seq 7", "reordered"], True),
        (_truncate, 13, ["ends at seq 12", "up to seq 15", "13..15", "cut off"], False),
        (_rehash_tail, 6, ["seq 10", "records 6..10", "rewritten"], False),
    ],
    ids=["edit", "delete", "reorder", "truncate", "rehash-tail"],
)
def test_each_attack_is_found_and_the_first_untrusted_record_named(
    engine: Engine,
    attack: Callable[[Engine], None],
    first_bad: int,
    words: list[str],
    found_without_key: bool,
) -> None:
    _fill(engine)
    assert _anchored(engine) == [5, 10, 15, 20]
    intact = verify(engine, KEY)
    assert (intact.ok, intact.records, intact.anchors) == (True, N, 4)
    attack(engine)
    result = verify(engine, KEY)
    assert not result.ok
    assert result.first_bad_seq == first_bad, result.message
    for word in words:
        assert word in result.message
    # Without the key only the chain itself is checked: a rewritten or cut tail is consistent on its own.
    assert verify(engine).ok is not found_without_key


def test_a_forged_anchor_is_found(engine: Engine) -> None:
    _fill(engine)
    _rehash_tail(engine)
    # The attacker also points the anchors at the new hashes, but cannot compute their MACs.
    with engine.begin() as conn:
        for seq, digest in conn.execute(text("SELECT seq, hash FROM audit_log")).all():
            conn.execute(
                text("UPDATE audit_anchors SET head_hash = :h WHERE seq = :s"), {"h": digest, "s": seq}
            )
    result = verify(engine, KEY)
    assert not result.ok and result.first_bad_seq == 6
    assert "anchor of seq 10" in result.message and "no valid MAC" in result.message


def test_the_wrong_key_trusts_nothing(engine: Engine) -> None:
    _fill(engine)
    result = verify(engine, b"some-other-key-0123456789abcdef!")
    assert not result.ok and result.first_bad_seq == 1 and "no valid MAC" in result.message


def test_anchors_kept_outside_catch_a_cut_tail_whose_anchors_were_deleted_too(engine: Engine) -> None:
    _fill(engine)
    kept = [anchor(engine, KEY)]  # e.g. `assay audit anchor --json >> siem`
    _sql(engine, "DELETE FROM audit_log WHERE seq > 12")
    _sql(engine, "DELETE FROM audit_anchors WHERE seq > 12")
    assert verify(engine, KEY).ok  # nothing in the catalog contradicts the cut
    result = verify(engine, KEY, anchors=[Anchor.from_dict(json.loads(json.dumps(kept[0].to_dict())))])
    assert not result.ok and result.first_bad_seq == 13 and f"up to seq {N}" in result.message
    with pytest.raises(AuditError, match="key"):
        verify(engine, anchors=kept)


def test_anchor_on_demand_and_automatically_after_a_keyless_gap(engine: Engine) -> None:
    first = anchor(engine, KEY)
    assert (first.seq, first.head_hash) == (0, "0" * 64)
    _fill(engine, 7, key=None)  # appends without the key never anchor
    assert _anchored(engine) == [0]
    _fill(engine, 5)  # the first keyed append 5+ records past the newest anchor anchors
    assert _anchored(engine) == [0, 8]
    _fill(engine, 5)
    assert _anchored(engine) == [0, 8, 13]
    made = anchor(engine, KEY)
    assert made.seq == 17 and made.head_hash == records(engine)[-1].hash
    assert verify(engine, KEY).anchors == 4
    with pytest.raises(AuditError, match="at least 16 bytes"):
        anchor(engine, b"short")


def test_batch_outcomes_are_recorded_and_commit_with_the_certification(engine: Engine) -> None:
    reasons = [{"check": "control_totals", "column": "amount", "message": "trailer total differs"}]
    rejected = record_batch_outcome(
        engine, "erp.orders", "b-0002", "rejected", reasons, detail={"rows_read": 9}
    )
    assert (rejected.action, rejected.decision, rejected.dataset) == ("batch.reject", "deny", "erp.orders")
    assert rejected.detail == {
        "batch_id": "b-0002",
        "outcome": "rejected",
        "reasons": reasons,
        "rows_read": 9,
    }
    certified = record_batch_outcome(engine, "erp.orders", "b-0003", "certified", anchor_key=KEY)
    assert (certified.action, certified.decision, certified.actor) == ("batch.certify", "allow", "pipeline")
    with pytest.raises(RuntimeError), engine.begin() as conn:  # the certification fails: no record either
        record_batch_outcome(conn, "erp.orders", "b-0004", "certified")
        raise RuntimeError("publish failed")
    assert [r.detail["batch_id"] for r in records(engine)] == ["b-0002", "b-0003"]
    with pytest.raises(AuditError, match="not known"):
        record_batch_outcome(engine, "erp.orders", "b-0005", "published")


def test_export_writes_lines_a_siem_can_check(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import governance.audit_chain

    monkeypatch.setattr(governance.audit_chain, "_PAGE", 3)  # several pages, each its own transaction
    _fill(engine, 8)
    lines = [json.loads(line) for line in export_lines(engine)]
    assert [line["seq"] for line in lines] == list(range(1, 9))
    prev = "0" * 64
    for line in lines:
        body = {k: v for k, v in line.items() if k not in ("hash", "prev_hash")}
        assert line["prev_hash"] == prev and chain_hash(prev, canonical_json(body)) == line["hash"]
        prev = line["hash"]
    assert [json.loads(line)["seq"] for line in export_lines(engine, since_seq=6)] == [7, 8]
    assert verify(engine, KEY).ok


def _writers(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_writer: int = 25) -> None:
    """Eight spawned processes append at once, released together by a barrier."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # spawned children inherit sys.path
    import audit_writer

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(8)
    procs = [
        ctx.Process(target=audit_writer.append_many, args=(url, w, per_writer, KEY, start)) for w in range(8)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * 8


def _check_eight_writers(engine: Engine, per_writer: int = 25) -> None:
    total = 8 * per_writer
    logged = records(engine)
    assert [r.seq for r in logged] == list(range(1, total + 1))
    for w in range(8):
        assert sorted(r.detail["i"] for r in logged if r.actor == f"proc-{w}") == list(range(per_writer))
    result = verify(engine, KEY)
    assert result.ok and result.records == total, result.message
    assert result.anchors == len(_anchored(engine)) >= total // 10


def test_eight_processes_appending_to_sqlite_leave_one_valid_chain(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _writers(str(engine.url), tmp_path, monkeypatch)
    _check_eight_writers(engine)


@pytest.mark.server
def test_eight_processes_appending_to_postgresql_leave_one_valid_chain(
    postgres_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = catalog_engine(postgres_schema)
    migrate(engine)  # once, before the writers, as a deployment would
    try:
        _writers(postgres_schema, tmp_path, monkeypatch)
        _check_eight_writers(engine)
    finally:
        engine.dispose()
