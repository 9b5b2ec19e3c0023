"""`serve` start-up mistakes are one line and exit 1, found before any model is loaded.

Real processes (`python -m serving serve`): a port in use used to print uvicorn's log and exit 3,
`--host 256.1.1.1` a traceback, `--weakness ''` silently served the champion.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.commands import assert_one_line_error, run_python
from tests.pipelines._mlflow_server import free_port


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return run_python(["-m", "serving", "serve", *args], timeout=120)


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        line = assert_one_line_error(_serve("--port", str(port), "--artifact-root", str(tmp_path)))
    assert f"--port {port}: 127.0.0.1:{port} is already in use" in line


@pytest.mark.parametrize("host", ["256.1.1.1", "no such host.invalid"])
def test_a_bad_host_is_one_line(tmp_path: Path, host: str) -> None:
    line = assert_one_line_error(
        _serve("--host", host, "--port", str(free_port()), "--artifact-root", str(tmp_path))
    )
    assert f"--host {host!r}" in line


def test_an_empty_model_reference_is_refused(tmp_path: Path) -> None:
    line = assert_one_line_error(
        _serve("--weakness", "", "--port", str(free_port()), "--artifact-root", str(tmp_path))
    )
    assert "weakness model '' failed to load: weakness: empty model reference" in line
