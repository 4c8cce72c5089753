"""The agents' gateway: certified data over MCP (Streamable HTTP), served from its own process.

Untrusted agents reach data only here. This process holds the catalog and warehouse credentials and
the audit key; an agent holds only its token, sent as ``Authorization: Bearer assay_<id>_<secret>`` on
every HTTP request::

    HTTP request ─▶ bearer token ─▶ agent named by the token id ─▶ connect() (audited), once per token
       │            then re-checked on every request: missing, malformed, unknown, forged, expired or
       │            revoked ─▶ HTTP 401 and an audited deny, before any MCP message is read
       ▼
    MCP tool call ─▶ Client.datasets / describe / read: policy ─▶ masks ─▶ filters ─▶ audit ─▶ JSON

Tools: ``list_datasets``, ``describe_dataset(dataset)``, ``read_dataset(dataset, columns, where,
limit)``. A deny is an MCP tool error ``<call> denied by rule '<rule>': <reason>`` and carries no data.
The policy and contracts are loaded and checked before the port is bound (:class:`Gateway` raises
:class:`PolicyError` / ``ContractError``); when their files change, every cached client is dropped so
the next request connects under the new policy, and a policy that no longer loads answers HTTP 503
(fail closed) until it is fixed. Each request is logged as one line (agent, tool, dataset, outcome,
rows, time), never a value or a ``where`` literal: the audit log has the detail, with literals hashed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
import polars as pl
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from governance import audit, policy_log
from governance.access import Client
from governance.auth_limit import DEFAULT_LIMIT, FailureLimiter
from governance.bearer import agent_for_token, bearer_token, token_id
from governance.client_connect import connect
from governance.errors import AccessDenied, AuditError, AuthenticationError, GovernanceError, PolicyError
from governance.identity import authenticate, current, retired_token
from governance.policy import CASES_SUFFIX, Policy, load_policy
from governance.store import Store
from schemas.contract import DATASET_ID, ContractError, load_contracts

LOG = logging.getLogger("assay.gateway")
MCP_PATH = "/mcp"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_RULE = re.compile(r"denied by rule '([a-z_]+)'")
_METHOD = re.compile(r"^[a-z][a-zA-Z/_]{0,40}$")


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway holds on behalf of agents: the store, contracts, policy and audit key."""

    store: Store
    contracts_dir: Path
    policy_path: Path
    audit_key: bytes
    failure_limit: int = DEFAULT_LIMIT  # failed authentications per address per minute audited one by one


TOO_MANY = (
    "authentication failed too often from this address; wait a minute. Fix: use the agent's current token."
)


class TooManyFailures(AuthenticationError):
    """Failed authentications from one address past the limit: answered 429, not audited one by one."""


INVALID_TOKEN = (
    "authentication failed: the token is not valid (unknown, wrong, rotated, revoked or expired). "
    "Fix: use the agent's current token, as printed by `assay agents add` or `assay agents rotate`."
)


class Gateway:
    """Authenticated agents' clients, one per token, kept while the token and the policy files hold.

    Building it loads and validates the policy and every contract, raising :class:`PolicyError` or
    ``ContractError`` (file, line, fix), so a server with a broken policy never starts listening.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.engine = settings.store.engine()
        self.policy = self._load_policy()
        self.contracts = load_contracts(settings.contracts_dir)
        self._fingerprint = self._files()
        self._clients: dict[str, Client] = {}
        self._generation = 0  # bumped by every reload
        self._failures = FailureLimiter(settings.failure_limit)
        self._lock = threading.Lock()

    def client_for(self, authorization: str | None, address: str = "-") -> Client:
        """The client for the token in an ``Authorization`` header value; a failure is audited and raises.

        Raises :class:`AuthenticationError` (answered with HTTP 401; :class:`TooManyFailures`, 429, once
        ``address`` has failed too often, see :mod:`governance.auth_limit`), or :class:`PolicyError`,
        ``ContractError`` or :class:`AuditError` (HTTP 503: nothing is served until fixed).
        """
        token = bearer_token(authorization)
        if token is None:
            raise self._deny(
                "<no-token>",
                None,
                "authentication failed: no bearer token. Fix: send 'Authorization: Bearer <the agent's token>'.",
                address,
            )
        for _ in range(3):  # a policy reload while connecting means connecting again, under the new policy
            self._reload_if_changed()
            with self._lock:
                generation = self._generation
            client = self._client(token, address)
            with self._lock:
                if generation == self._generation:
                    self._clients.setdefault(hashlib.sha256(token.encode()).hexdigest(), client)
                    return client
        raise PolicyError("gateway: the policy keeps changing while agents connect. Fix: retry in a moment.")

    def _client(self, token: str, address: str) -> Client:
        """The cached client for ``token`` if it still holds, else a new connection (audited either way)."""
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            client = self._clients.get(key)
        if client is not None:
            try:
                current(self.engine, client.agent)
                return client
            except AuthenticationError:  # rotated, revoked or expired: authenticate again, auditing the deny
                with self._lock:
                    self._clients.pop(key, None)
        name = agent_for_token(self.engine, token)
        retired = retired_token(self.engine, token) if name is None else None
        if retired is not None:  # a token its agent no longer holds: audited under that agent's name
            raise self._deny(retired.agent, retired.token_id, retired.reason(), address)
        if name is None:
            raise self._deny(
                "<unknown-token>",
                token_id(token),
                "authentication failed: unknown or malformed token. Fix: use the whole token printed by "
                "`assay agents add` (assay_<id>_<secret>).",
                address,
            )
        try:  # cheap, before connect() loads policy and contracts: a forged token costs little
            authenticate(self.engine, name, token)
        except AuthenticationError as exc:
            raise self._deny(name, token_id(token), str(exc), address) from None
        s = self.settings
        try:
            return connect(
                s.store,
                name,
                token,
                contracts_dir=s.contracts_dir,
                policy_path=s.policy_path,
                audit_key=s.audit_key,
                in_memory=True,  # one long-lived process: certified versions stay cached in memory
                loaded_by="gateway",
            )
        except AuthenticationError:  # revoked in the meantime; connect() has audited the deny
            raise AuthenticationError(INVALID_TOKEN) from None

    def _deny(self, actor: str, tid: str | None, reason: str, address: str) -> AuthenticationError:
        """Audit a failed authentication as connect() does, and build the error for its 401 (or 429)."""
        verdict = self._failures.record(address)
        if verdict == "suppress":
            return TooManyFailures(TOO_MANY)
        detail: dict[str, Any] = {"rule": "identity", "reason": reason, "token_id": tid, "address": address}
        if verdict == "reached":
            actor, tid = "<rate-limited>", None
            detail = {
                "rule": "rate_limit",
                "reason": f"{self._failures.limit} failed authentications from this address within "
                f"{self._failures.window_s:.0f} s; further failures from it are refused (HTTP 429) and not "
                "recorded one by one until the window passes",
                "address": address,
            }
        audit.append(
            self.engine,
            actor=actor,
            action="connect",
            dataset=None,
            decision="deny",
            detail=detail,
            anchor_key=self.settings.audit_key,
        )
        if verdict == "reached":
            return TooManyFailures(TOO_MANY)
        if actor == "<no-token>":
            return AuthenticationError(reason)
        # One answer for every bad token: which agent a token id belongs to is not the caller's business.
        return AuthenticationError(INVALID_TOKEN)

    def _load_policy(self) -> Policy:
        """Load the policy and audit what was loaded: a change (``policy_change``) or a broken file."""
        s = self.settings
        try:
            policy = load_policy(s.policy_path)
        except PolicyError as exc:
            policy_log.record_invalid_quietly(self.engine, s.policy_path, exc, s.audit_key, by="gateway")
            raise
        policy_log.record_policy(self.engine, policy, s.audit_key, by="gateway")
        return policy

    def _files(self) -> tuple[tuple[str, int, int], ...]:
        """Name, modification time and size of every policy and contract file: a change means reload."""
        files: list[Path] = []
        for place in (self.settings.policy_path, self.settings.contracts_dir):
            if place.is_dir():
                files += [f for f in place.glob("*.yaml") if not f.name.endswith(CASES_SUFFIX)]
            elif place.exists():
                files.append(place)
        stats = [(str(f), f.stat()) for f in sorted(files) if f.exists()]
        return tuple((name, st.st_mtime_ns, st.st_size) for name, st in stats)

    def _reload_if_changed(self) -> None:
        seen = self._files()
        if seen == self._fingerprint:
            return
        with self._lock:
            self._clients.clear()  # every agent connects again, under the policy as it now stands
            self._generation += 1  # and a connection begun under the old one is not cached
        self.policy = self._load_policy()  # raises while broken: 503, nothing served
        self.contracts = load_contracts(self.settings.contracts_dir)
        self._fingerprint = seen
        LOG.info("policy or contracts changed: reloaded, every agent reconnects")


# -- rows as JSON ---------------------------------------------------------------------------------------
def rows_as_json(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: decimals as exact strings, dates and timestamps in ISO 8601."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Decimal):
            col = col.cast(pl.String)  # exact: never through a float
        elif isinstance(dtype, pl.Datetime):
            col = col.dt.to_string("%Y-%m-%dT%H:%M:%S%.f" + ("%:z" if dtype.time_zone else ""))
        elif isinstance(dtype, pl.Date):
            col = col.dt.to_string("%Y-%m-%d")
        exprs.append(col)
    return frame.select(exprs).to_dicts()


# -- MCP tools ------------------------------------------------------------------------------------------
def mcp_server() -> MCPServer:
    """The MCP server with the three tools; each runs as the agent its HTTP request authenticated."""
    server: MCPServer = MCPServer(
        "assay",
        instructions="Certified datasets, read within this agent's policy. Every call is audited.",
        log_level="WARNING",
    )

    async def note_method(ctx: Any, call_next: Any) -> Any:
        """Put the MCP method of each message on the request's log line."""
        state = getattr(getattr(ctx, "request", None), "state", None)
        note = getattr(state, "assay_call", None)
        if isinstance(note, dict) and isinstance(ctx.method, str):
            note.setdefault("method", ctx.method if _METHOD.fullmatch(ctx.method) else "other")
        return await call_next(ctx)

    server.middleware.append(note_method)

    def call(ctx: Context, tool: str, dataset: str | None, run: Callable[[Client], Any]) -> Any:
        state = ctx.request_context.request.state  # type: ignore[union-attr]
        note: dict[str, Any] = state.assay_call
        note.update(
            tool=tool, dataset=dataset if isinstance(dataset, str) and DATASET_ID.fullmatch(dataset) else None
        )
        try:
            result = run(state.assay_client)
        except AccessDenied as exc:
            rule = _RULE.search(str(exc))
            note["outcome"] = f"deny:{rule.group(1) if rule else 'other'}"
            raise ToolError(str(exc)) from None
        except AuditError as exc:
            note["outcome"] = "audit-unavailable"
            raise ToolError(f"audit trail unavailable, nothing returned: {exc}") from None
        except GovernanceError as exc:
            note["outcome"] = "error"
            raise ToolError(str(exc)) from None
        except Exception as exc:  # its message may quote data: only the type is logged or returned
            note["outcome"] = f"internal:{type(exc).__name__}"
            raise ToolError(
                f"{tool}: the gateway failed ({type(exc).__name__}); nothing was returned. "
                "Fix: report it to the gateway's operators with the time of the call."
            ) from None
        note["outcome"] = "allow"
        return result

    @server.tool()
    def list_datasets(ctx: Context) -> dict[str, Any]:
        """The certified datasets your policy grants: id, description, certified version and time,
        freshness (latest business date), row count, contract version and owners."""
        return {"datasets": call(ctx, "list_datasets", None, lambda c: c.datasets())}

    @server.tool()
    def describe_dataset(
        ctx: Context, dataset: Annotated[str, Field(description="Dataset id, e.g. crm.accounts.")]
    ) -> dict[str, Any]:
        """The columns you would see of a dataset: type, classification, personal-data kind, and the
        mask applied or why a column is withheld; plus its certified version and your purpose."""
        described: dict[str, Any] = call(ctx, "describe_dataset", dataset, lambda c: c.describe(dataset))
        return described

    @server.tool()
    def read_dataset(
        ctx: Context,
        dataset: Annotated[str, Field(description="Dataset id, e.g. crm.accounts.")],
        columns: Annotated[
            list[str] | None, Field(description="Columns to return (default: all you may see).")
        ] = None,
        where: Annotated[
            str | None,
            Field(description="One SQL boolean expression over the columns as you see them (masked)."),
        ] = None,
        limit: Annotated[
            int | None, Field(description="At most this many rows (default 1000, max 10000).")
        ] = None,
    ) -> dict[str, Any]:
        """Rows of the dataset's certified version within your policy, with provenance (dataset,
        version, certified_at, purpose, masks, withheld columns, row filter, limit, rows).
        Decimals come as exact strings, dates and timestamps in ISO 8601."""

        def run(client: Client) -> dict[str, Any]:
            result = client.read(dataset, columns=columns, where=where, limit=limit)
            return {
                "columns": result.frame.columns,
                "rows": rows_as_json(result.frame),
                "provenance": result.provenance,
            }

        read: dict[str, Any] = call(ctx, "read_dataset", dataset, run)
        ctx.request_context.request.state.assay_call["rows"] = read["provenance"]["rows"]  # type: ignore[union-attr]
        return read

    return server


# -- HTTP ------------------------------------------------------------------------------------------------
def asgi_app(gateway: Gateway, host: str = "127.0.0.1") -> ASGIApp:
    """The gateway as an ASGI app: bearer authentication in front of MCP's Streamable HTTP endpoint."""
    inner = mcp_server().streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, json_response=True, host=host
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: starts the MCP session manager
            await inner(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        note: dict[str, Any] = {}
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            address = str((scope.get("client") or ("-",))[0])
            client = await anyio.to_thread.run_sync(gateway.client_for, headers.get("authorization"), address)
        except TooManyFailures as exc:
            note["outcome"] = "deny:rate-limited"
            await _refuse(sending, 429, str(exc))
        except AuthenticationError as exc:
            note["outcome"] = "deny:identity"
            await _refuse(sending, 401, str(exc))
        except Exception as exc:  # a broken policy or contract, no audit trail, no catalog: fail closed
            note["outcome"] = "unavailable"
            known = isinstance(exc, PolicyError | ContractError | AuditError)
            LOG.error("refusing requests: %s", str(exc).replace("\n", " | ") if known else type(exc).__name__)
            await _refuse(
                sending,
                503,
                "the gateway cannot serve now (its policy, contracts or audit trail "
                "is broken); nothing is returned. Fix: ask its operators to check the gateway log.",
            )
        else:
            note["agent"] = client.agent.name
            state = scope.setdefault("state", {})
            state["assay_client"], state["assay_call"] = client, note
            await inner(scope, receive, sending)
        finally:
            _log_request(scope, status, note, headers, started)

    return app


async def _refuse(send: Send, status: int, message: str) -> None:
    """A JSON-RPC error body, so an MCP client shows the reason, at the HTTP status that fits."""
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="assay", error="invalid_token"'))
    if status == 429:
        headers.append((b"retry-after", b"60"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _log_request(
    scope: Scope, status: int, note: dict[str, Any], headers: dict[str, str], started: float
) -> None:
    """One line per request: who, which tool on which dataset, what came of it. No values, no literals."""
    tid = token_id(bearer_token(headers.get("authorization")) or "")
    fields = {
        "agent": note.get("agent", "-"),
        "token": tid or "-",
        "mcp": note.get("method", "-"),
        "tool": note.get("tool", "-"),
        "dataset": note.get("dataset") or "-",
        "outcome": note.get("outcome", "-"),
        "rows": note.get("rows", "-"),
    }
    LOG.info(
        "%s %s %d %s %.1fms",
        _loggable(scope.get("method", "-")),
        MCP_PATH if scope.get("path") == MCP_PATH else "(other path)",  # a path is the caller's text
        status,
        " ".join(f"{k}={_loggable(v)}" for k, v in fields.items()),
        (time.perf_counter() - started) * 1000,
    )


_LOGGABLE = re.compile(r"[A-Za-z0-9_.:<>/-]{1,120}")


def _loggable(value: object) -> str:
    """A log field as written, if it is a plain token; anything else (a newline, a value) as ``?``."""
    text = str(value)
    return text if _LOGGABLE.fullmatch(text) else "?"


def bind(host: str, port: int) -> socket.socket:
    """Listen on ``host:port`` now, so a port in use is a clear error before anything is served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise GovernanceError(
            f"gateway: cannot listen on {host}:{port} ({exc.strerror}). "
            "Fix: pick another --port, or stop the process that holds it."
        ) from None
    sock.listen(128)
    return sock


def serve(app: ASGIApp, sock: socket.socket, name: str | None = None) -> None:
    """Serve the gateway's app on a bound socket until SIGINT or SIGTERM; request lines go to stderr
    (prefixed ``assay.gateway[name]`` for one of several workers)."""
    import uvicorn

    handler = logging.StreamHandler(sys.stderr)
    label = f"assay.gateway[{name}]" if name else "assay.gateway"
    handler.setFormatter(logging.Formatter(f"%(asctime)s {label} %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,  # our own line per request replaces it
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])
