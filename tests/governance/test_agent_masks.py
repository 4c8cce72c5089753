"""Masks as a user sees them, and which columns each level gets."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from governance import column_plan, load_policy
from governance.masks import mask_expr, purpose_key
from schemas.contract import load_contract

if TYPE_CHECKING:
    from conftest import Installation


def _apply(frame: pl.DataFrame, name: str, mask: str, key: bytes = b"k" * 32) -> list[object]:
    return frame.lazy().select(mask_expr(name, mask, frame.schema[name], key)).collect()[name].to_list()


def test_each_mask() -> None:
    frame = pl.DataFrame(
        {
            "s": ["DE89370400440532013000", "abcd", None],
            "n": [1.5, 2.5, None],
            "d": [date(1980, 5, 17), date(1990, 12, 31), None],
        }
    )
    assert _apply(frame, "s", "redact") == ["[REDACTED]", "[REDACTED]", None]
    assert _apply(frame, "n", "redact") == [None, None, None]
    assert _apply(frame, "s", "partial") == ["*" * 18 + "3000", "****", None]
    assert _apply(frame, "s", "null") == [None, None, None]
    assert _apply(frame, "d", "month") == [date(1980, 5, 1), date(1990, 12, 1), None]
    assert _apply(frame, "s", "month") == [None, None, None]
    assert _apply(frame, "s", "none") == frame["s"].to_list()
    hashed = _apply(frame, "s", "hash")
    assert all(isinstance(h, str) and len(h) == 16 for h in hashed[:2]) and hashed[2] is None
    assert _apply(frame, "s", "hash") == hashed  # deterministic: equal values still join
    other = _apply(frame, "s", "hash", purpose_key(b"k" * 32, "billing"))
    assert other[0] != hashed[0]  # keyed: another purpose cannot join


def test_plan_by_level(install: Installation) -> None:
    contract = load_contract(install.contracts_dir / "crm.customers.yaml")
    grant = load_policy(install.policy_path).grant_for("intern-bot")
    assert grant is not None
    intern = column_plan(contract, "intern", grant)
    assert intern.shown == ("customer_id", "billing_country", "segment")
    assert intern.masks == {"customer_id": "hash"} and intern.identifiers == {"customer_id"}  # its primaryKey
    assert set(intern.withheld) == {"annual_revenue", "full_name", "email", "birth_date", "national_id"}
    junior = column_plan(contract, "junior", grant)
    assert junior.masks == {"full_name": "partial", "email": "hash", "birth_date": "month"}  # keys in clear
    assert junior.identifiers == frozenset()
    assert junior.withheld == {"national_id": "classification"}
    senior = column_plan(contract, "senior", grant)
    assert senior.masks == {} and senior.withheld == {}
    de_grant = load_policy(install.policy_path).grant_for("de-bot")
    assert de_grant is not None
    assert column_plan(contract, "senior", de_grant).withheld == {"segment": "policy"}
