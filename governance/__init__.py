"""The governed store and the agents' door: catalog, identities, policy, masks, audit and the client.

Agents import only this package; nothing here imports dagster.
"""

from governance.access import Client, ReadResult
from governance.anchors import Anchor
from governance.audit import (
    ANCHOR_EVERY,
    AuditRecord,
    VerifyResult,
    anchor,
    export_lines,
    literal_hash,
    record_batch_outcome,
    redact_sql,
    verify,
)
from governance.catalog import Catalog, DatasetState
from governance.client_connect import connect
from governance.errors import (
    AccessDenied,
    AuditError,
    AuthenticationError,
    GovernanceError,
    PolicyError,
    PublishConflict,
)
from governance.explain import ColumnDecision, Explanation, explain
from governance.identity import (
    LEVEL_CAP,
    LEVELS,
    Agent,
    add_agent,
    authenticate,
    demote_agent,
    get_agent,
    list_agents,
    promote_agent,
    revoke_agent,
    rotate_token,
)
from governance.masks import ColumnPlan, column_plan
from governance.policy import DEFAULT_POLICY_DIR, Grant, Policy, load_policy
from governance.policy_cases import CaseResult, PolicyCase, load_cases, run_cases
from governance.store import Store
from governance.view import DEFAULT_LIMIT, MAX_LIMIT

__all__ = [
    "ANCHOR_EVERY",
    "DEFAULT_LIMIT",
    "DEFAULT_POLICY_DIR",
    "LEVELS",
    "LEVEL_CAP",
    "MAX_LIMIT",
    "AccessDenied",
    "Agent",
    "Anchor",
    "AuditError",
    "AuditRecord",
    "AuthenticationError",
    "CaseResult",
    "Catalog",
    "Client",
    "ColumnDecision",
    "ColumnPlan",
    "DatasetState",
    "Explanation",
    "GovernanceError",
    "Grant",
    "Policy",
    "PolicyCase",
    "PolicyError",
    "PublishConflict",
    "ReadResult",
    "Store",
    "VerifyResult",
    "add_agent",
    "anchor",
    "authenticate",
    "column_plan",
    "connect",
    "demote_agent",
    "explain",
    "export_lines",
    "get_agent",
    "list_agents",
    "literal_hash",
    "load_cases",
    "load_policy",
    "promote_agent",
    "record_batch_outcome",
    "redact_sql",
    "revoke_agent",
    "rotate_token",
    "run_cases",
    "verify",
]
