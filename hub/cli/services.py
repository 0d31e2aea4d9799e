"""The long-running `hub` commands: the demo, a sandbox, the web face, the Dagster UI."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from hub.cli.base import FAILED, app, console, fail, failures_as_one_line, settings
from hub.errors import ConfigError

HOST_HELP = "Address to listen on (0.0.0.0: every interface)."


def port_free(host: str, port: int) -> None:
    """Refuse, in one line and before any banner, a port something else listens on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port") \
                from None


@app.command()
def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Keep the previous demo data instead of starting fresh.")] = False,
) -> None:
    """Run the main flow end to end on the embedded Postgres and the sandboxes."""
    from hub.demo import run_demo

    with failures_as_one_line():
        run_demo(settings(), fresh=not keep, console=console)


@app.command()
def sandbox(
    system: Annotated[str, typer.Argument(help="kingdee, wecom, …")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8600,
    host: Annotated[str, typer.Option(help=HOST_HELP)] = "127.0.0.1",
    scale: Annotated[float | None, typer.Option(min=0.001, help="Kingdee: seed size (1.0 = 2,000 customers).")] = None,
    order_quota: Annotated[int | None, typer.Option(
        min=0, help="Yonyou: sales order list/detail/singleSave calls a minute per API (default 60; 0: none).")] = None,
) -> None:
    """Run a connector's sandbox in the foreground and print how to point the hub at it."""
    import uvicorn

    from hub.registry import connector
    from hub.runtime import load_sandbox

    with failures_as_one_line():
        spec = connector(system)
        sandbox_spec = load_sandbox(spec)
        options: dict[str, object] = {} if scale is None else {"scale": scale}
        if order_quota is not None:
            if system != "yonyou":
                raise typer.BadParameter("--order-quota is Yonyou's sales order quota", param_hint="--order-quota")
            options["order_calls_per_minute"] = order_quota
        port_free(host, port)
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        base = spec.settings_model()
        # the sandbox speaks plain http on this machine: allowed explicitly (ConnectorSettings.allow_http)
        pointed = sandbox_spec.client_settings(url, base).model_copy(update={"allow_http": True})
        if order_quota is not None:  # the hub paces itself at the quota the sandbox enforces
            pointed = pointed.model_copy(update={"order_calls_per_minute": order_quota})
        console.print(f"{spec.title} sandbox at {url} (admin: {url}/__sandbox__/); Ctrl-C stops it.")
        console.print("Point the hub at it (these are the sandbox's own test credentials):")
        for line in env_lines(system, base, pointed):
            console.print(f"  export {line}", highlight=False, soft_wrap=True)
        app_ = sandbox_spec.create_app(**options)
    uvicorn.run(app_, host=host, port=port, log_level="warning")


def env_lines(system: str, base: object, pointed: object) -> list[str]:
    """``HUB_<SYSTEM>__FIELD=value`` for each setting the sandbox changes, secrets included."""
    from pydantic import BaseModel, SecretStr

    assert isinstance(base, BaseModel) and isinstance(pointed, BaseModel)
    lines = []
    for name in type(pointed).model_fields:
        value, before = getattr(pointed, name), getattr(base, name)
        if value == before or value is None:
            continue
        shown = value.get_secret_value() if isinstance(value, SecretStr) else value
        lines.append(f"HUB_{system.upper()}__{name.upper()}={shown}")
    return lines


@app.command()
def serve(
    host: Annotated[str, typer.Option(help=HOST_HELP)] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
) -> None:
    """Serve the 360° profile pages, the JSON API (/docs) and the chat callbacks."""
    from hub.web import serve as serve_web
    from hub.web.server import tls_options

    with failures_as_one_line():
        config = settings()
        scheme = "https" if tls_options(config) else "http"
        port_free(host, port)
        console.print(f"profiles at {scheme}://{host}:{port}/customers (sign in at /login), API at /docs, "
                      f"callbacks at /callbacks/<system>; reminder links use {config.public_url} (HUB_PUBLIC_URL)")
        serve_web(config, host=host, port=port)


@app.command()
def ui(
    host: Annotated[str, typer.Option(help=HOST_HELP)] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 3000,
) -> None:
    """Start the Dagster UI (webserver) and daemon on the hub's Postgres; Ctrl-C stops both."""
    from pipelines.instance import run_ui

    with failures_as_one_line():
        config = settings()
        port_free(host, port)
        console.print(f"Dagster UI at http://{host}:{port} (storage: database {config.dagster.database!r} on the "
                      "hub's Postgres); Ctrl-C stops it.")
        code = run_ui(config, host=host, port=port)
    if code:
        raise fail(f"the Dagster webserver or daemon exited with code {code}", FAILED)
