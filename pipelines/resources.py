"""The one Dagster resource: where assay keeps its state and how it reaches its sources."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from governance.catalog import Catalog
from governance.store import Store

DEFAULT_CONTRACTS = Path(__file__).resolve().parent.parent / "schemas" / "contracts"


class AssayResource(dg.ConfigurableResource):
    """Settings bound once in ``defs/resources.py`` from the environment; passed to every asset."""

    home: str
    catalog_url: str = ""
    contracts_dir: str = str(DEFAULT_CONTRACTS)
    fault: str = ""
    audit_key: str = ""  # hex; empty: the key file under ASSAY_HOME/keys
    connections: dict[str, str] = {}

    def store(self) -> Store:
        home = Path(self.home).resolve()
        return Store(home=home, catalog_url=self.catalog_url or f"sqlite:///{home / 'catalog.db'}")

    def catalog(self) -> Catalog:
        from pipelines.settings import audit_key

        home = self.store().home
        key = audit_key(home, {"ASSAY_AUDIT_KEY": self.audit_key} if self.audit_key else {})
        return Catalog(self.store().engine(), audit_key=key)

    def connection_url(self, name: str) -> str:
        """A SQL source's URL: ``ASSAY_CONN_<NAME>``; the demo CRM defaults to its seeded SQLite file."""
        url = self.connections.get(name)
        if url:
            return url
        if name == "crm":
            return f"sqlite:///{self.store().home / 'demo' / 'crm' / 'crm.db'}"
        raise dg.Failure(
            description=f"no connection named {name!r}. Fix: set ASSAY_CONN_{name.upper()} to its "
            "SQLAlchemy URL (e.g. postgresql+psycopg://user@host/db)."
        )
