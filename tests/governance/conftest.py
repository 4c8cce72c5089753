"""A real assay installation in tmp_path: catalog, one certified Delta table, a contract, a policy, agents."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from deltalake import write_deltalake

from governance import Catalog, Store, add_agent
from schemas.contract import load_contract

AUDIT_KEY = b"test-audit-key-0123456789abcdef"

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: crm.customers
name: customers
domain: crm
version: 1.0.0
status: active
description:
  purpose: Customers from the CRM, for support agents.
team:
  name: customer-care
  members:
    - username: care-lead@example.com
      role: businessOwner
    - username: team:crm-integration
      role: operationsOwner
schema:
  - name: customers
    physicalName: CUSTOMERS
    physicalType: table
    properties:
      - name: customer_id
        logicalType: string
        required: true
        primaryKey: true
        classification: internal
      - name: billing_country
        logicalType: string
        classification: public
      - name: segment
        logicalType: string
        classification: internal
      - name: annual_revenue
        logicalType: number
        physicalType: double
        classification: confidential
      - name: full_name
        logicalType: string
        classification: confidential
        customProperties:
          - property: piiType
            value: person_name
          - property: mask
            value: partial
      - name: email
        logicalType: string
        classification: confidential
        customProperties:
          - property: piiType
            value: email
          - property: mask
            value: hash
      - name: birth_date
        logicalType: date
        classification: confidential
        customProperties:
          - property: piiType
            value: date_of_birth
          - property: mask
            value: month
      - name: national_id
        logicalType: string
        classification: restricted
        customProperties:
          - property: piiType
            value: national_id
          - property: mask
            value: redact
customProperties:
  - property: source
    value: {kind: sql, connection: crm, table: customers}
"""

POLICY = """\
agents:
  intern-bot:
    datasets: ["crm.*"]
    purpose: support
  junior-bot:
    datasets: ["crm.*"]
    purpose: support
  senior-bot:
    datasets: ["crm.customers", "erp.orders"]
    purpose: support
  de-bot:
    datasets: ["crm.customers"]
    purpose: support
    columns: {deny: [segment]}
    row_filter: "billing_country = 'DE'"
"""

# Canary values: none of them may ever reach an intern or junior unmasked.
CUSTOMERS = pl.DataFrame(
    {
        "customer_id": ["C000001", "C000002", "C000003", "C000004"],
        "billing_country": ["DE", "FR", "DE", "US"],
        "segment": ["smb", "enterprise", "smb", "mid"],
        "annual_revenue": [120_000.0, 9_800_000.0, 75_500.0, 1_250_000.0],
        "full_name": ["Alice Canary", "Bruno Canary", "Chloe Canary", "Dmitri Canary"],
        "email": ["alice@canary.test", "bruno@canary.test", "chloe@canary.test", "dmitri@canary.test"],
        "birth_date": [date(1980, 5, 17), date(1975, 1, 2), date(1990, 12, 31), date(1988, 7, 4)],
        "national_id": ["DE-111-222", "FR-333-444", "DE-555-666", "US-777-888"],
        "_batch_id": ["b1"] * 4,
        "_source_line": [1, 2, 3, 4],
    }
)
PII = ("full_name", "email", "birth_date", "national_id")


@dataclass
class Installation:
    """What a test needs: the store, its catalog, file locations, agents' tokens and the canary rows."""

    store: Store
    catalog: Catalog
    contracts_dir: Path
    policy_path: Path
    tokens: dict[str, str]
    audit_key: bytes = AUDIT_KEY
    rows: pl.DataFrame = field(default_factory=lambda: CUSTOMERS)
    pii: tuple[str, ...] = PII

    def table(self, dataset_id: str = "crm.customers") -> str:
        return str(self.store.table_path(dataset_id))

    def certify(self, dataset_id: str, version: int, rows: int) -> None:
        certify(self.catalog, self.contracts_dir / f"{dataset_id}.yaml", dataset_id, version, rows)


def customer_rows(n: int, *, customers: int | None = None, emails: int | None = None) -> pl.DataFrame:
    """``n`` rows of the crm.customers contract; ``customers``/``emails`` distinct values (default: all)."""
    return pl.DataFrame(
        {
            "customer_id": [f"C{k % (customers or n):06d}" for k in range(n)],
            "billing_country": [("DE", "FR", "US", "GB")[k % 4] for k in range(n)],
            "segment": [("smb", "mid", "enterprise")[k % 3] for k in range(n)],
            "annual_revenue": [float(k) for k in range(n)],
            "full_name": [f"Person {k}" for k in range(n)],
            "email": [f"p{k % (emails or n)}@canary.test" for k in range(n)],
            "birth_date": [None] * n,
            "national_id": [f"ID-{k}" for k in range(n)],
            "_batch_id": ["b1"] * n,
            "_source_line": list(range(n)),
        },
        schema_overrides={"birth_date": pl.Date},
    )


def certify(catalog: Catalog, contract_path: Path, dataset_id: str, version: int, rows: int) -> None:
    """Walk a batch through the real catalog: register, start, stage, certify."""
    contract = load_contract(contract_path)
    catalog.register_dataset(
        dataset_id,
        contract_version=contract.version,
        contract_checksum=contract.checksum,
        business_owner=contract.business_owner,
        operations_owner=contract.operations_owner,
    )
    state = catalog.dataset(dataset_id)
    batch = catalog.start_batch(
        dataset_id,
        batch_id=f"b{version}",
        checksum=f"{version:064d}",
        source_file=None,
        business_date=date(2024, 6, 1),
        run_id="test",
    )
    catalog.stage_batch(batch, delta_version=version, rows_read=rows, rows_published=rows, rows_quarantined=0)
    expected = state.certified_version if state else None
    catalog.certify(
        batch, expected_version=expected, new_version=version, rows=rows, business_date=date(2024, 6, 1)
    )


@pytest.fixture
def install(tmp_path: Path) -> Installation:
    store = Store(home=tmp_path, catalog_url=f"sqlite:///{tmp_path}/catalog.db")
    catalog = Catalog(store.engine())
    contracts_dir = tmp_path / "contracts"
    contracts_dir.mkdir()
    (contracts_dir / "crm.customers.yaml").write_text(CONTRACT, encoding="utf-8")
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(POLICY, encoding="utf-8")
    write_deltalake(str(store.table_path("crm.customers")), CUSTOMERS.to_arrow())
    certify(catalog, contracts_dir / "crm.customers.yaml", "crm.customers", version=0, rows=CUSTOMERS.height)
    engine = store.engine()
    tokens = {
        "intern-bot": add_agent(engine, "intern-bot", "intern"),
        "junior-bot": add_agent(engine, "junior-bot", "junior"),
        "senior-bot": add_agent(engine, "senior-bot", "senior"),
        "de-bot": add_agent(engine, "de-bot", "junior"),
        "stranger": add_agent(engine, "stranger", "senior"),
    }
    return Installation(store, catalog, contracts_dir, policy_path, tokens)
