"""The governed store and the agents' door: catalog, identities, policy, masks, audit and the client.

Agents import only this package; nothing here imports dagster.
"""

from governance.access import DEFAULT_LIMIT, MAX_LIMIT, Client, ReadResult, connect
from governance.audit import AuditRecord, VerifyResult, literal_hash, redact_sql, verify
from governance.catalog import Catalog, DatasetState
from governance.errors import (
    AccessDenied,
    AuditError,
    AuthenticationError,
    GovernanceError,
    PolicyError,
    PublishConflict,
)
from governance.identity import LEVEL_CAP, LEVELS, Agent, add_agent, authenticate, list_agents, revoke_agent
from governance.masks import ColumnPlan, column_plan
from governance.policy import DEFAULT_POLICY_DIR, Grant, Policy, load_policy
from governance.store import Store

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_POLICY_DIR",
    "LEVELS",
    "LEVEL_CAP",
    "MAX_LIMIT",
    "AccessDenied",
    "Agent",
    "AuditError",
    "AuditRecord",
    "AuthenticationError",
    "Catalog",
    "Client",
    "ColumnPlan",
    "DatasetState",
    "GovernanceError",
    "Grant",
    "Policy",
    "PolicyError",
    "PublishConflict",
    "ReadResult",
    "Store",
    "VerifyResult",
    "add_agent",
    "authenticate",
    "column_plan",
    "connect",
    "list_agents",
    "literal_hash",
    "load_policy",
    "redact_sql",
    "revoke_agent",
    "verify",
]
