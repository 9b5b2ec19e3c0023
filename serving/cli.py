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
    # No flags: serve the champions. Models are loaded here, before binding the port, so a bad
    # reference fails the start (exit 1) instead of a server that answers 503 forever.
    refs = {"weakness": weakness or "champion", "generator": generator or "champion"}
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
    uvicorn.run(api, host=host, port=port, log_level="info")


def main(argv: list[str] | None = None) -> None:
    """The ``ludora-serving`` console script: a bad setting or model is one line and exit 1."""
    from serving.settings import SettingsError

    try:
        app(args=argv, prog_name="ludora-serving")
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from None
