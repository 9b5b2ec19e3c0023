"""`serve`: both endpoints over HTTP, from the light install alone.

One command for both installs: ``ludora-ml serve`` mounts :func:`serve`, and the light wheel's
``ludora-serving serve`` (``python -m ludora_serving serve``; ``python -m serving serve`` in
this repo) runs it through :func:`main`, so a backend that installs only ``ludora-serving``
serves exactly like the pipeline's CLI, without the pipeline code.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Ludora's light serving runtime: the weakness and word-problem endpoints.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False):
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    weakness: Annotated[
        str | None,
        typer.Option(
            help="Weakness artifact: dir, version, alias or models:/ludora-weakness@champion "
            "(default: the champion).",
        ),
    ] = None,
    generator: Annotated[
        str | None,
        typer.Option(
            help="Generator artifact: dir, version, alias or models:/ludora-generator@champion "
            "(default: the champion).",
        ),
    ] = None,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial", help="Start even if a model fails to load (/readyz says which)."
        ),
    ] = False,
    artifact_root: Annotated[
        str | None, typer.Option(help="Local artifact store (default: artifacts/).")
    ] = None,
    max_concurrency: Annotated[
        int | None, typer.Option(help="Concurrent inferences (default 2).")
    ] = None,
    request_timeout_s: Annotated[
        float | None, typer.Option(help="Per-request inference timeout.")
    ] = None,
) -> None:
    """Serve the weakness and word-problem endpoints over HTTP (FastAPI + uvicorn)."""
    import uvicorn

    from serving.app import create_app
    from serving.generator import load_generator
    from serving.settings import ServingSettings, SettingsError
    from serving.weakness import load_weakness

    settings = ServingSettings.from_env(  # SettingsError: one line, exit 1
        artifact_root=artifact_root,
        max_concurrency=max_concurrency,
        request_timeout_s=request_timeout_s,
    )
    # The socket first (cheap): a bad --host or a port in use is one line before minutes of
    # model loading, and uvicorn serves on this very socket (no race for the port).
    sock = bind_socket(host, port)
    # No flags: serve the champions. Models are loaded here, before serving, so a bad reference
    # fails the start (exit 1) instead of a server that answers 503 forever. An empty reference
    # is a mistake, not "the default": it fails like any other bad reference.
    refs = {
        "weakness": "champion" if weakness is None else weakness,
        "generator": "champion" if generator is None else generator,
    }
    loaded: dict[str, Any] = {}
    for model, load in (("weakness", load_weakness), ("generator", load_generator)):
        try:
            loaded[model] = load(refs[model], settings)
        except Exception as exc:
            if not allow_partial:
                raise SettingsError(
                    f"{model} model {refs[model]!r} failed to load: {exc} "
                    "(--allow-partial starts without it)"
                ) from exc
            typer.echo(f"serve: {model} model {refs[model]!r} not loaded: {exc}", err=True)
    api = create_app(
        weakness_ref=refs["weakness"] if "weakness" not in loaded else None,
        generator_ref=refs["generator"] if "generator" not in loaded else None,
        settings=settings,
        weakness=loaded.get("weakness"),
        generator=loaded.get("generator"),
    )
    server = uvicorn.Server(uvicorn.Config(api, host=host, port=port, log_level="info"))
    try:  # as uvicorn.run does: Ctrl-C (re-raised by uvicorn after its shutdown) ends quietly
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE (a lifespan error, already logged)


def bind_socket(host: str, port: int) -> Any:
    """A listening TCP socket on ``host:port``; SettingsError (one line) when it cannot be."""
    import errno
    import socket

    from serving.settings import SettingsError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise SettingsError(
            f"--host {host!r}: not an IP address or a host name this machine resolves ({exc})"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SettingsError(
                f"--port {port}: {host}:{port} is already in use (another server?); "
                "stop it or choose another --port"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise SettingsError(f"--host {host!r}: not an address of this machine") from None
        if exc.errno == errno.EACCES:
            raise SettingsError(
                f"--port {port}: permission denied (ports below 1024 need privileges)"
            ) from None
        raise SettingsError(f"--host {host!r} --port {port}: cannot listen ({exc})") from None
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> None:
    """The ``ludora-serving`` console script: a bad setting or model is one line and exit 1."""
    from serving.settings import SettingsError

    try:
        app(args=argv, prog_name="ludora-serving")
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from None
