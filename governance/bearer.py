"""Bearer tokens on the gateway's HTTP requests: the token in a header, and the agent it claims to be.

A token ``assay_<token_id>_<secret>`` carries its id in clear, and the catalog maps the id to the agent,
so over HTTP an agent presents its token alone. The lookup proves nothing: the caller still checks the
whole token against its stored hash (:func:`governance.identity.authenticate`, through
:func:`governance.client_connect.connect`), and revocation and expiry with it.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from governance.catalog import migrate
from governance.catalog_schema import agents
from governance.identity import TOKEN_FORMAT
from governance.store import reading

SCHEME = "bearer"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None if there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == SCHEME and token else None


def token_id(token: str) -> str | None:
    """The public id of a well-formed token (safe to log), or None if the token is malformed."""
    match = TOKEN_FORMAT.fullmatch(token)
    return match.group(1) if match else None


def agent_for_token(engine: Engine, token: str) -> str | None:
    """The name of the agent whose current token has this token's id, or None (malformed or unknown).

    Revoked agents are returned too, so that the check that follows fails with "revoked" and is
    audited under the agent's name.
    """
    tid = token_id(token)
    if tid is None:
        return None
    migrate(engine)
    with reading(engine) as conn:
        return conn.execute(select(agents.c.name).where(agents.c.token_id == tid)).scalar_one_or_none()
