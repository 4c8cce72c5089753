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
@friendly
def gateway_serve(host: str, port: int, auth_failures: int) -> None:
    """Serve certified datasets to agents over MCP (Streamable HTTP at /mcp) until stopped."""
    from governance.gateway import Gateway, GatewaySettings, asgi_app, bind, serve
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
    click.echo(
        f"assay: gateway serving MCP at http://{shown}:{port}/mcp ({len(found.contracts)} contracts from "
        f"{contracts}, policy {policy}, catalog {store.engine().url.render_as_string(hide_password=True)})",
        err=True,
    )
    serve(app, sock)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
