"""`ludora-ml`: the commands people run by hand (stages run through `dvc repro`).

Each command imports its heavy dependencies inside its body so `ludora-ml --help` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="Ludora ML pipeline: training, export, promotion and serving.", no_args_is_help=True)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    import logging

    from pipelines.common import setup_logging

    setup_logging(logging.DEBUG if verbose else logging.INFO)


# Commands are added below, one block per command, each owning its own imports.
