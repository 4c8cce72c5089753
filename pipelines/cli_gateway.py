"""``assay gateway serve``: the agents' gateway as its own server process (MCP over Streamable HTTP).

Attached to :mod:`pipelines.cli`'s ``main`` group when that module imports this one (at its end). The
process reads its settings from the environment (ASSAY_HOME, ASSAY_CATALOG_URL, ASSAY_CONTRACTS,
ASSAY_POLICY, ASSAY_AUDIT_KEY), loads and checks the policy and contracts, and only then binds the port.
Exit codes as in :mod:`pipelines.cli`: 2 for a configuration error (a policy or contract that does not
load, no ASSAY_AUDIT_KEY, a port in use).
"""

from __future__ import annotations

import ipaddress
import os

import click

from pipelines.cli import EXIT_USAGE, fail, friendly, main


@main.group()
def gateway() -> None:
    """The agents' gateway server: certified data over MCP, within policy, every call audited."""


@gateway.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="Port to listen on."
)
@click.option(
    "--auth-failures",
    type=click.IntRange(1, 100_000),
    default=20,
    show_default=True,
    help="Failed authentications per client address per minute audited one by one; past it, 429.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Gateway processes sharing the port (e.g. one per core); each holds its own copy of the data.",
)
@friendly
def gateway_serve(host: str, port: int, auth_failures: int, workers: int) -> None:
    """Serve certified datasets to agents over MCP (Streamable HTTP at /mcp) until stopped."""
    from governance.gateway import Gateway, GatewaySettings, asgi_app, bind, serve
    from governance.gateway_workers import serve_workers
    from pipelines.settings import assay_resource, audit_key, contracts_dir, policy_path

    if not os.environ.get("ASSAY_AUDIT_KEY"):
        fail(
            "the gateway needs ASSAY_AUDIT_KEY (it keys audit hashes and hash masks, and must be the same "
            "for every assay process of this installation). Fix: export ASSAY_AUDIT_KEY=<64 hex digits>, "
            "e.g. from `python -c 'import secrets; print(secrets.token_hex(32))'`, kept in your secret store.",
            EXIT_USAGE,
        )
    store = assay_resource().store()
    try:
        key = audit_key(store.home)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    policy, contracts = policy_path(), contracts_dir()
    settings = GatewaySettings(
        store=store, contracts_dir=contracts, policy_path=policy, audit_key=key, failure_limit=auth_failures
    )
    found = Gateway(settings)
    app = asgi_app(found, host)
    sock = bind(host, port)
    if not _loopback(host):
        click.echo(
            f"assay: warning: listening on {host}, beyond this machine, in plain HTTP. Put a TLS-terminating "
            "proxy in front so agents' tokens never cross the network in clear.",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    processes = f", {workers} worker processes" if workers > 1 else ""
    click.echo(
        f"assay: gateway serving MCP at http://{shown}:{port}/mcp ({len(found.contracts)} contracts from "
        f"{contracts}, policy {policy}, catalog {store.engine().url.render_as_string(hide_password=True)}"
        f"{processes})",
        err=True,
    )
    if workers == 1:
        serve(app, sock)
        return
    del found, app  # checked above; each worker loads its own
    code = serve_workers(settings, host, sock, workers)
    if code:
        raise SystemExit(code)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
