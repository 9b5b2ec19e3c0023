"""A live uvicorn server on a free loopback port, run in a thread, for real-HTTP tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from serving.app import create_app
from serving.settings import ServingSettings


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Any, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def store_client(
    store: Path, *, generator_max_attempts: int, timeout_s: float
) -> Iterator[httpx.Client]:
    """A client of the live app serving ``store``'s weakness v1 and generator v1, at most two
    requests at a time (so concurrent tests also meet the queue)."""
    settings = ServingSettings(
        artifact_root=store, generator_max_attempts=generator_max_attempts, max_concurrency=2
    )
    app = create_app(weakness_ref="1", generator_ref="1", settings=settings)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=timeout_s) as client:
        yield client
