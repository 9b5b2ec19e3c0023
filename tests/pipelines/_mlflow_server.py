"""A real ``mlflow server`` subprocess for tests (REST registry, UI in a browser)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving._server import free_port

START_S = 120.0  # ~30 s measured on the shared 2-core machine under load


@contextlib.contextmanager
def mlflow_server(
    backend_uri: str, cwd: Path, artifacts_destination: Path | None = None
) -> Iterator[str]:
    """Run ``mlflow server`` on ``backend_uri``; yields its URL; skips if it never answers.

    With ``artifacts_destination`` the server stores and serves run artifacts itself
    (``--serve-artifacts``), as a shared tracking server does: clients upload over HTTP.
    """
    exe = Path(sys.executable).with_name("mlflow")
    port = free_port()
    cmd = [str(exe), "server", "--backend-store-uri", backend_uri, "--host", "127.0.0.1"]
    if artifacts_destination is not None:
        cmd += ["--artifacts-destination", artifacts_destination.as_uri(), "--serve-artifacts"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--workers", "1"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its uvicorn and job-runner children go down with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"mlflow server did not answer within {START_S:.0f} s")
                time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
