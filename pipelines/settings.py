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
        audit_key=env.get("ASSAY_AUDIT_KEY", ""),
        connections=connections,
    )


def contracts_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("ASSAY_CONTRACTS") or DEFAULT_CONTRACTS)


def policy_path(environ: dict[str, str] | None = None) -> Path:
    """Policy files: ``ASSAY_POLICY`` (a file or folder), else ``schemas/policies/``."""
    env = os.environ if environ is None else environ
    return Path(env.get("ASSAY_POLICY") or DEFAULT_CONTRACTS.parent / "policies")


def audit_key(home: Path, environ: dict[str, str] | None = None) -> bytes:
    """The key for audit hashes and hash masks, kept outside the catalog database.

    ``ASSAY_AUDIT_KEY`` (hex, at least 32 hex digits) in production; otherwise a random key created
    once in ``ASSAY_HOME/keys/audit.key`` with owner-only permissions.
    """
    env = os.environ if environ is None else environ
    value = env.get("ASSAY_AUDIT_KEY")
    if value:
        try:
            key = bytes.fromhex(value)
        except ValueError:
            raise ValueError(
                "ASSAY_AUDIT_KEY is not hex. Fix: set it to e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            ) from None
        if len(key) < 16:
            raise ValueError(
                "ASSAY_AUDIT_KEY is shorter than 16 bytes (32 hex digits). Fix: use a longer key."
            )
        return key
    path = home / "keys" / "audit.key"
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(secrets.token_bytes(32))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_bytes()
