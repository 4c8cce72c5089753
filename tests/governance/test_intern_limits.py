"""The intern level: identifiers hashed per purpose (still joinable), a small row cap, and the prefix mask."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from deltalake import write_deltalake

from governance import Catalog, Store, add_agent, connect, explain, load_policy
from governance.masks import mask_expr
from schemas.contract import ContractError, load_contract, load_contracts

KEY = b"intern-limits-audit-key-0123456789"

HEADER = """\
apiVersion: v3.1.0
kind: DataContract
id: {id}
name: {name}
domain: {domain}
version: 1.0.0
status: active
description:
  purpose: Test data for the intern level.
team:
  name: t
  members:
    - username: owner@example.com
      role: businessOwner
    - username: team:ops
      role: operationsOwner
schema:
  - name: {name}
    physicalName: {name}
    physicalType: table
    properties:
"""
SOURCE = """\
customProperties:
  - property: source
    value: {{kind: sql, connection: db, table: {name}}}
"""
ACCOUNTS = """\
      - name: account_id
        logicalType: string
        primaryKey: true
        classification: internal
      - name: region
        logicalType: string
        classification: public
      - name: postcode
        logicalType: string
        classification: confidential
        customProperties:
          - property: piiType
            value: address
          - property: mask
            value: {postcode_mask}
"""
ORDERS = """\
      - name: order_id
        logicalType: string
        primaryKey: true
        classification: internal
        customProperties:
          - property: identifier
            value: false
      - name: customer_id
        logicalType: string
        classification: internal
        customProperties:
          - property: identifier
            value: true
      - name: quantity
        logicalType: integer
        classification: internal
"""
POLICY = """\
agents:
  intern-support:
    datasets: ["crm.accounts", "erp.orders"]
    purpose: support
  intern-billing:
    datasets: ["crm.accounts", "erp.orders"]
    purpose: billing
  junior-support:
    datasets: ["crm.accounts", "erp.orders"]
    purpose: support
"""

N_ACCOUNTS, N_ORDERS = 40, 250
ACCOUNT_ROWS = pl.DataFrame(
    {
        "account_id": [f"A{i:04d}" for i in range(N_ACCOUNTS)],
        "region": ["EU" if i % 2 else "US" for i in range(N_ACCOUNTS)],
        "postcode": ["SW1A 1AA", "94103", " 10115 ", "941", "", None, "M1 1AE", "K1A 0B1"]
        * (N_ACCOUNTS // 8),
    }
)
ORDER_ROWS = pl.DataFrame(
    {
        "order_id": [f"O{i:05d}" for i in range(N_ORDERS)],
        "customer_id": [f"A{(i * 7) % N_ACCOUNTS:04d}" for i in range(N_ORDERS)],
        "quantity": list(range(N_ORDERS)),
    }
)


def _contract(dataset: str, columns: str) -> str:
    domain, name = dataset.split(".")
    return HEADER.format(id=dataset, name=name, domain=domain) + columns + SOURCE.format(name=name)


def _certify(catalog: Catalog, store: Store, contracts: Path, dataset: str, frame: pl.DataFrame) -> None:
    write_deltalake(str(store.table_path(dataset)), frame.to_arrow())
    contract = load_contract(contracts / f"{dataset}.yaml")
    catalog.register_dataset(
        dataset,
        contract_version=contract.version,
        contract_checksum=contract.checksum,
        business_owner=contract.business_owner,
        operations_owner=contract.operations_owner,
    )
    batch = catalog.start_batch(
        dataset,
        batch_id="b0",
        checksum="0" * 64,
        source_file=None,
        business_date=date(2024, 6, 1),
        run_id="t",
    )
    catalog.stage_batch(
        batch, delta_version=0, rows_read=frame.height, rows_published=frame.height, rows_quarantined=0
    )
    catalog.certify(
        batch, expected_version=None, new_version=0, rows=frame.height, business_date=date(2024, 6, 1)
    )


@pytest.fixture
def site(tmp_path: Path) -> dict[str, object]:
    store = Store(home=tmp_path, catalog_url=f"sqlite:///{tmp_path}/catalog.db")
    catalog = Catalog(store.engine())
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "crm.accounts.yaml").write_text(
        _contract("crm.accounts", ACCOUNTS.format(postcode_mask="prefix"))
    )
    (contracts / "erp.orders.yaml").write_text(_contract("erp.orders", ORDERS))
    (tmp_path / "policy.yaml").write_text(POLICY)
    _certify(catalog, store, contracts, "crm.accounts", ACCOUNT_ROWS)
    _certify(catalog, store, contracts, "erp.orders", ORDER_ROWS)
    engine = store.engine()
    tokens = {
        "intern-support": add_agent(engine, "intern-support", "intern"),
        "intern-billing": add_agent(engine, "intern-billing", "intern"),
        "junior-support": add_agent(engine, "junior-support", "junior"),
    }
    return {"store": store, "contracts": contracts, "policy": tmp_path / "policy.yaml", "tokens": tokens}


def _client(site: dict[str, object], agent: str):  # type: ignore[no-untyped-def]
    tokens = site["tokens"]
    assert isinstance(tokens, dict)
    return connect(
        site["store"],  # type: ignore[arg-type]
        agent,
        tokens[agent],
        contracts_dir=site["contracts"],  # type: ignore[arg-type]
        policy_path=site["policy"],  # type: ignore[arg-type]
        audit_key=KEY,
    )


def test_intern_hashed_identifiers_join_within_a_purpose_never_across(site: dict[str, object]) -> None:
    support = _client(site, "intern-support")
    accounts = support.read("crm.accounts", limit=100)
    orders = support.read("erp.orders", columns=["order_id", "customer_id"], limit=100)
    assert accounts.provenance["masks"] == {"account_id": "hash"}  # primaryKey
    assert orders.provenance["masks"] == {"customer_id": "hash"}  # identifier: true; order_id opted out
    assert orders.frame["order_id"].to_list() == ORDER_ROWS["order_id"].head(100).to_list()
    clear_ids = set(ACCOUNT_ROWS["account_id"])
    assert not set(accounts.frame["account_id"]) & clear_ids
    assert not set(orders.frame["customer_id"]) & clear_ids
    # The hashed keys join exactly as the clear ones do.
    joined = orders.frame.join(accounts.frame, left_on="customer_id", right_on="account_id")
    clear = ORDER_ROWS.head(100).join(ACCOUNT_ROWS, left_on="customer_id", right_on="account_id")
    assert joined.height == clear.height == 100
    assert sorted(joined["order_id"]) == sorted(clear["order_id"])
    # Another purpose gets other hashes: nothing links across purposes.
    billing = _client(site, "intern-billing").read("crm.accounts", limit=100)
    assert not set(billing.frame["account_id"]) & set(accounts.frame["account_id"])
    # A junior sees identifiers as stored.
    junior = _client(site, "junior-support").read("crm.accounts", columns=["account_id"], limit=100)
    assert set(junior.frame["account_id"]) == clear_ids and junior.provenance["masks"] == {}


def test_intern_where_on_a_hashed_identifier_cannot_probe_clear_values(site: dict[str, object]) -> None:
    support = _client(site, "intern-support")
    assert support.read("erp.orders", where="customer_id = 'A0007'").frame.height == 0
    hashed = support.read("erp.orders", columns=["customer_id"], limit=1).frame["customer_id"][0]
    found = support.read("erp.orders", where=f"customer_id = '{hashed}'", limit=100).frame
    assert found.height == (ORDER_ROWS["customer_id"] == ORDER_ROWS["customer_id"][0]).sum()


def test_intern_row_cap_applies_on_top_of_the_global_cap(site: dict[str, object]) -> None:
    intern = _client(site, "intern-support")
    capped = intern.read("erp.orders", limit=10_000)
    assert capped.frame.height == 100
    assert (capped.provenance["limit"], capped.provenance["max_rows"]) == (100, 100)
    assert intern.read("erp.orders").frame.height == 100  # the default (1000) is capped too
    assert intern.read("erp.orders", limit=7).frame.height == 7
    junior = _client(site, "junior-support").read("erp.orders", limit=10_000)
    assert junior.frame.height == N_ORDERS and junior.provenance["max_rows"] == 10_000


def test_explain_reports_identifier_masks_and_the_row_cap_with_their_rule(site: dict[str, object]) -> None:
    contracts = {c.id: c for c in load_contracts(site["contracts"])}  # type: ignore[arg-type]
    policy = load_policy(site["policy"])  # type: ignore[arg-type]
    found = explain(policy, contracts, "intern-support", "erp.orders", level="intern")
    by_name = {c.name: c for c in found.columns}
    customer = by_name["customer_id"]
    assert (customer.decision, customer.mask, customer.rule) == ("masked", "hash", "identifier")
    lines = (site["contracts"] / "erp.orders.yaml").read_text().splitlines()  # type: ignore[operator]
    flag = lines.index("      - name: customer_id") + 5  # its "- property: identifier" line, 1-based
    assert lines[flag - 1].strip() == "- property: identifier"
    assert customer.source is not None and customer.source.endswith(f"erp.orders.yaml:{flag}")
    assert (by_name["order_id"].decision, by_name["order_id"].rule) == ("shown", "classification")
    assert (found.max_rows, found.max_rows_rule) == (100, "level")
    postcode = {
        c.name: c
        for c in explain(policy, contracts, "junior-support", "crm.accounts", level="junior").columns
    }["postcode"]
    assert (postcode.mask, postcode.rule) == ("prefix", "contract_mask") and "outward code" in (
        postcode.how or ""
    )


def test_junior_sees_postcodes_generalised_to_their_prefix(site: dict[str, object]) -> None:
    frame = _client(site, "junior-support").read("crm.accounts", columns=["postcode"], limit=8).frame
    assert frame["postcode"].to_list() == ["SW1A", "941", "101", None, None, None, "M1", "K1A"]


def _prefix(values: list[str | None], mask: str) -> list[object]:
    frame = pl.DataFrame({"p": values}, schema={"p": pl.String})
    return frame.select(mask_expr("p", mask, pl.String(), b"k" * 32)).to_series().to_list()


def test_prefix_mask_on_nulls_short_values_and_whitespace() -> None:
    values = ["SW1A 1AA", "94103", "10115", "  EC1A  1BB ", "941", "AB", "", "   ", None, "K1A\t0B1"]
    assert _prefix(values, "prefix") == ["SW1A", "941", "101", "EC1A", None, None, None, None, None, "K1A"]
    assert _prefix(values, "prefix:2") == ["SW", "94", "10", "EC", "94", None, None, None, None, "K1"]
    assert _prefix(values, "prefix:5") == ["SW1A", None, None, "EC1A", None, None, None, None, None, "K1A"]
    numbers = pl.DataFrame({"zip": [94103, None, 12]})
    masked = numbers.select(mask_expr("zip", "prefix", pl.Int64(), b"k" * 32)).to_series().to_list()
    assert masked == ["941", None, None]


@pytest.mark.parametrize(
    ("mask", "ok"), [("prefix", True), ("prefix:4", True), ("prefix:0", False), ("prefix:x", False)]
)
def test_contracts_accept_prefix_masks_and_name_the_line_of_a_bad_one(
    tmp_path: Path, mask: str, ok: bool
) -> None:
    path = tmp_path / "crm.accounts.yaml"
    path.write_text(_contract("crm.accounts", ACCOUNTS.format(postcode_mask=mask)))
    if ok:
        postcode = next(c for c in load_contract(path).columns if c.name == "postcode")
        assert postcode.mask == mask
        return
    with pytest.raises(ContractError) as err:
        load_contract(path)
    text = str(err.value)
    assert f"mask '{mask}' is not known" in text and "prefix:N" in text and f"{path}:" in text
