"""Connecting an agent: policy and contracts loaded and checked, the token proved, the attempt audited.

The policy is loaded (and a change recorded, :mod:`governance.policy_log`) and the contracts parsed
before anyone is authenticated, so a broken file refuses everyone rather than allowing anyone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from governance import audit, policy_log
from governance.access import MIN_KEY_BYTES, Client
from governance.catalog import Catalog
from governance.errors import AuthenticationError, GovernanceError, PolicyError
from governance.identity import AGENT_NAME, authenticate
from governance.policy import DEFAULT_POLICY_DIR, load_policy
from governance.store import Store
from schemas.contract import load_contracts


def connect(
    store: Store,
    agent: str,
    token: str,
    *,
    contracts_dir: str | Path,
    policy_path: str | Path = DEFAULT_POLICY_DIR,
    audit_key: bytes,
    in_memory: bool = True,
    clock: Callable[[], datetime] | None = None,
    loaded_by: str = "connect",
) -> Client:
    """Authenticate ``agent`` and return its client; a failed attempt is audited as a deny and raises.

    ``audit_key`` (at least 16 random bytes, kept secret) keys the hashes of ``where`` literals in the
    audit log and, derived per purpose, the ``hash`` mask. Invalid policy or contract files raise
    :class:`PolicyError` / ``ContractError`` before anyone is authenticated. ``in_memory`` serves
    certified versions from the process-wide in-memory cache (:mod:`governance.read_cache`), right for a
    long-lived gateway; a one-shot process (the CLI) scans the Delta version instead.

    A policy whose text differs from the newest recorded one is recorded (``policy_change``) before anyone
    is authenticated, as ``loaded_by`` (a gateway passes ``"gateway"``); a policy that does not load is
    recorded as ``policy_invalid`` when the catalog is reachable, then raised. ``clock`` (UTC now by
    default) decides the quota day; tests inject it.
    """
    if not isinstance(audit_key, bytes) or len(audit_key) < MIN_KEY_BYTES:
        raise GovernanceError(
            f"audit_key must be at least {MIN_KEY_BYTES} bytes. Fix: generate one with secrets.token_bytes(32)."
        )
    engine = store.engine()
    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        policy_log.record_invalid_quietly(engine, policy_path, exc, audit_key, by=loaded_by)
        raise
    catalog = Catalog(engine)
    policy_log.record_policy(engine, policy, audit_key, by=loaded_by)
    contracts = {c.id: c for c in load_contracts(contracts_dir)}
    actor = agent if isinstance(agent, str) and AGENT_NAME.fullmatch(agent) else "<invalid-name>"
    try:
        identity = authenticate(engine, agent, token)
    except AuthenticationError as exc:
        audit.append(
            engine,
            actor=actor,
            action="connect",
            dataset=None,
            decision="deny",
            detail={"rule": "identity", "reason": str(exc)},
            anchor_key=audit_key,
        )
        raise
    grant = policy.grant_for(identity.name)
    detail = {
        "level": identity.level,
        "token_id": identity.token_id,
        "purpose": grant.purpose if grant else None,
        "policy": grant.source if grant else None,
        "reason": None,
    }
    audit.append(
        engine,
        actor=identity.name,
        action="connect",
        dataset=None,
        decision="allow",
        detail=detail,
        anchor_key=audit_key,
    )
    return Client(
        store=store,
        catalog=catalog,
        agent=identity,
        grant=grant,
        contracts=contracts,
        audit_key=audit_key,
        in_memory=in_memory,
        clock=clock,
    )
