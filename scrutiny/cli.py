"""The ``scrutiny`` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from scrutiny import __version__
from scrutiny.config import Settings

app = typer.Typer(help="Scrutiny: monitor models served anywhere.", no_args_is_help=True, add_completion=False)
engine_app = typer.Typer(help="Demo engines.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys (run on the server's machine: talks to the store directly).", no_args_is_help=True
)
app.add_typer(engine_app, name="engine")
app.add_typer(keys_app, name="keys")
console = Console(soft_wrap=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="store, key files and spool [env SCRUTINY_DATA_DIR]")]
DbUrl = Annotated[str | None, typer.Option("--database-url", help="store URL [env SCRUTINY_DATABASE_URL]")]
Host = Annotated[str | None, typer.Option("--host", help="interface to listen on (default 127.0.0.1)")]
Port = Annotated[int | None, typer.Option("--port", help="port (default 8080)")]


def settings_from(
    data_dir: Path | None = None,
    database_url: str | None = None,
    host: str | None = None,
    port: int | None = None,
    **more: object,
) -> Settings:
    return Settings.from_env(data_dir=data_dir, database_url=database_url, host=host, port=port, **more)  # type: ignore[arg-type]


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


Scheduler = Annotated[
    bool | None,
    typer.Option(
        "--scheduler/--no-scheduler",
        help="run monitors on their schedules, deliver alerts [env SCRUTINY_SCHEDULER; default on]",
    ),
]


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    scheduler: Scheduler = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="serve https with this PEM certificate [env SCRUTINY_TLS_CERT]")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="the certificate's PEM private key [env SCRUTINY_TLS_KEY]")
    ] = None,
) -> None:
    """Run the API (and everything registered with it) on the configured store; on https with
    ``--tls-cert`` and ``--tls-key`` (OpenScale's v2 SDK calls discovery over https only)."""
    import uvicorn

    from scrutiny.api.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from(
        data_dir,
        database_url,
        host,
        port,
        scheduler=scheduler,
        tls_cert=tls_cert,
        tls_key=tls_key,
        defaults={"SCRUTINY_SCHEDULER": "1"},
    )
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise typer.BadParameter("give both --tls-cert and --tls-key (or neither)")
    app_ = create_app(settings)
    created = app_.state.service.keys.ensure_admin_key()
    from scrutiny._runtime import tune_gc

    tune_gc()
    console.print(
        f"Scrutiny {__version__} on {settings.url} (dashboard at {settings.url}/, API docs at {settings.url}/docs),"
        f" store {_safe_url(settings.store_url)}"
    )
    if created:
        console.print(f"Admin API key in {settings.api_key_file} (readable by you only)")
    uvicorn.run(
        app_,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )


@app.command()
def proxy(
    host: Host = None,
    port: Annotated[int | None, typer.Option("--port", help="port (default 8090) [env SCRUTINY_PROXY_PORT]")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    spool_dir: Annotated[
        Path | None, typer.Option("--spool-dir", help="this process's spool (default <data dir>/spool/proxy-<port>)")
    ] = None,
    spool_max_bytes: Annotated[
        int | None,
        typer.Option("--spool-max-bytes", help="spool bound; at it requests get 503 [env SCRUTINY_SPOOL_MAX_BYTES]"),
    ] = None,
) -> None:
    """Run the scoring proxy alone: POST /proxy/{subscription_id} logs every scoring call (docs/proxy.md)."""
    import uvicorn

    from scrutiny.proxy.asgi import create_proxy_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env(
        data_dir=data_dir, database_url=database_url, host=host, proxy_port=port, spool_max_bytes=spool_max_bytes
    )
    app_ = create_proxy_app(settings, spool_dir)
    from scrutiny._runtime import tune_gc

    tune_gc()
    url = f"http://{settings.host}:{settings.proxy_port}"
    console.print(
        f"Scrutiny proxy {__version__} on {url}/proxy/<subscription_id>, store {_safe_url(settings.store_url)}"
    )
    uvicorn.run(app_, host=settings.host, port=settings.proxy_port, log_level="warning")


@app.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: run until Ctrl+C)")
    ] = None,
    rate: Annotated[float, typer.Option(help="scoring requests per second")] = 20.0,
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """The whole product in one command: API + demo engine + subscription + live traffic."""
    from scrutiny.demo.run import run_demo

    logging.basicConfig(level=logging.WARNING)
    run_demo(settings_from(data_dir, database_url, host, port), duration=duration, rate=rate)


@engine_app.command("demo")
def engine_demo(
    host: Annotated[str, typer.Option(help="interface")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8081,
    auth: Annotated[str, typer.Option(help="none | basic | bearer | minted")] = "none",
    discovery_form: Annotated[str, typer.Option(help="A (engines written for OpenScale) or B (normalised)")] = "A",
    prefix: Annotated[str, typer.Option(help="path prefix, e.g. /spaces/abc")] = "",
) -> None:
    """Serve the demo custom ML engine alone: a working example of the OpenScale custom-engine contract."""
    import uvicorn

    from scrutiny.demo.engine import EngineOptions, create_engine_app

    opts = EngineOptions(auth=auth, discovery_form=discovery_form, prefix=prefix)
    console.print(f"Demo engine on http://{host}:{port}{prefix}/v1/deployments (auth: {auth})")
    uvicorn.run(create_engine_app(opts), host=host, port=port, log_level="warning")


@app.command()
def migrate(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """Create or upgrade the data mart's tables."""
    from scrutiny.store import Store

    s = settings_from(data_dir, database_url)
    s.ensure_data_dir()
    Store.open(s.store_url).close()
    console.print(f"store at {_safe_url(s.store_url)} is up to date")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="what the key is for")],
    role: Annotated[str, typer.Option(help="admin | viewer | logger")] = "viewer",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Create an API key and print it (once: only its hash is stored)."""
    from scrutiny.security import Role
    from scrutiny.service import Service

    svc = Service(settings_from(data_dir, database_url))
    key, row = svc.keys.create(name, Role(role))
    svc.close()
    console.print(f"{row.id}  {row.role.value}  {row.name}")
    print(key)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    from scrutiny.service import Service

    svc = Service(settings_from(data_dir, database_url))
    for k in svc.store.catalog.list_api_keys():
        state = "revoked" if k.revoked_at else "active"
        console.print(f"{k.id}  {k.role.value:7} {state:8} {k.hint}  {k.name}")
    svc.close()


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    from scrutiny.service import Service

    svc = Service(settings_from(data_dir, database_url))
    svc.keys.revoke(key_id)
    svc.close()
    console.print(f"revoked {key_id}")


def _safe_url(url: str) -> str:
    """The store URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<store>"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
