"""Certified versions served from memory: encoded for speed, identical to what the table holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
from deltalake import write_deltalake
from polars.testing import assert_frame_equal

from governance import connect
from governance.read_cache import FRAMES, CertifiedFrames, decode
from tests.governance.conftest import customer_rows

if TYPE_CHECKING:
    from conftest import Installation


def test_low_cardinality_text_is_encoded_and_decodes_to_the_stored_values(install: Installation) -> None:
    write_deltalake(install.table(), customer_rows(2000).to_arrow(), mode="overwrite")
    cache = CertifiedFrames()
    cached = cache.get(install.store.table_path("crm.customers"), 1)
    assert {"billing_country", "segment"} <= cached.encoded
    assert "customer_id" not in cached.encoded and "email" not in cached.encoded
    assert cached.schema["billing_country"] == pl.String
    stored = pl.read_delta(install.table(), version=1)
    assert_frame_equal(decode(cached.frame, cached.encoded), stored)


def test_reads_on_encoded_columns_match_plain_polars_including_text_operations(install: Installation) -> None:
    write_deltalake(install.table(), customer_rows(2000).to_arrow(), mode="overwrite")
    install.certify("crm.customers", 1, 2000)
    FRAMES.clear()
    client = connect(  # junior: customer_id in clear (interns see it hashed) and no 100-row cap
        install.store,
        "junior-bot",
        install.tokens["junior-bot"],
        contracts_dir=install.contracts_dir,
        policy_path=install.policy_path,
        audit_key=install.audit_key,
    )
    stored = pl.read_delta(install.table(), version=1)
    for where, expected in (
        (
            "billing_country = 'FR' AND segment = 'smb'",
            (pl.col("billing_country") == "FR") & (pl.col("segment") == "smb"),
        ),
        ("segment LIKE 'ent%'", pl.col("segment").str.starts_with("ent")),
        ("upper(billing_country) = 'GB'", pl.col("billing_country") == "GB"),
    ):
        result = client.read("crm.customers", where=where, limit=5000)
        clear = [c for c in result.frame.columns if c not in result.provenance["masks"]]
        assert {"customer_id", "billing_country", "segment"} <= set(clear)
        want = stored.filter(expected).select(clear)
        assert result.frame.schema["billing_country"] == pl.String
        assert_frame_equal(result.frame.select(clear).sort("customer_id"), want.sort("customer_id"))
