"""Reading the environment, in one place (the composition root). Nothing else reads it."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.resources import DEFAULT_CONTRACTS, AssayResource


def assay_resource(environ: dict[str, str] | None = None) -> AssayResource:
    env = dict(os.environ if environ is None else environ)
    connections = {
        key[len("ASSAY_CONN_") :].lower(): value
        for key, value in env.items()
        if key.startswith("ASSAY_CONN_") and value
    }
    return AssayResource(
        home=env.get("ASSAY_HOME") or ".assay",
        catalog_url=env.get("ASSAY_CATALOG_URL", ""),
        contracts_dir=env.get("ASSAY_CONTRACTS") or str(DEFAULT_CONTRACTS),
        fault=env.get("ASSAY_FAULT", ""),
        connections=connections,
    )


def contracts_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("ASSAY_CONTRACTS") or DEFAULT_CONTRACTS)
