"""Contracts written on the fly: a data owner's YAML for a hand-made layout or a corpus format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from schemas import Contract, load_contract

MakeContract = Callable[..., Contract]


def contract_document(source: dict[str, Any], columns: list[dict[str, Any]], dataset: str) -> dict[str, Any]:
    """An ODCS v3.1 contract with both owners, the given columns and ``customProperties.source``."""
    domain, name = dataset.split(".")
    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": dataset,
        "name": name,
        "domain": domain,
        "version": "1.0.0",
        "status": "active",
        "description": {"purpose": f"{dataset} as the source writes it."},
        "team": {
            "name": "payments",
            "members": [
                {"username": "treasury@example.com", "role": "businessOwner"},
                {"username": "team:payments-ops", "role": "operationsOwner"},
            ],
        },
        "schema": [{"name": name, "physicalType": "file", "properties": columns}],
        "customProperties": [{"property": "source", "value": source}],
    }


@pytest.fixture(scope="module")
def make_contract(tmp_path_factory: pytest.TempPathFactory) -> MakeContract:
    """Write a contract YAML to a temporary folder and load it as assay does."""
    folder = tmp_path_factory.mktemp("contracts")
    written = iter(range(1_000_000))

    def make(
        source: dict[str, Any], columns: list[dict[str, Any]], dataset: str = "bank.records"
    ) -> Contract:
        path = folder / f"{next(written)}-{dataset}.yaml"
        path.write_text(yaml.safe_dump(contract_document(source, columns, dataset), sort_keys=False), "utf-8")
        return load_contract(path)

    return make
