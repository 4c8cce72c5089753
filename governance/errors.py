"""Errors raised by ``governance``.

GovernanceError
├── PublishConflict     another publisher moved the certified version first (rerun)
├── PolicyError         a policy file is invalid (file, line, fix); the gateway refuses to start
├── AccessDenied        an agent asked for something its policy does not allow (always audited)
│   └── AuthenticationError   unknown, forged, expired or revoked token
└── AuditError          the audit record could not be written, so no data is returned
"""


class GovernanceError(Exception):
    """Base of every error raised by ``governance``."""


class PublishConflict(GovernanceError):
    """The certified version changed under a publisher; nothing was certified."""


class PolicyError(GovernanceError):
    """A policy file breaks the policy format; the message names file, line and fix."""


class AccessDenied(GovernanceError):
    """The call is not allowed; the reason says which rule denied it, never a protected value."""


class AuthenticationError(AccessDenied):
    """The agent's identity could not be established."""


class AuditError(GovernanceError):
    """The audit trail could not record a decision; the decision is not carried out (fail closed)."""
