"""Memory budget of the local simulator: refuse, before simulating, what the machine cannot hold.

Kept apart from the simulator itself because it reads the host (``/proc``, cgroups), not the
simulated world.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from data.params import ConfigError


class SimulatorScale(Protocol):
    """What the budget reads of a ``data.simulator.SimulatorConfig`` (a protocol, so that
    this module, which the simulator's stage calls first, does not import the simulator)."""

    @property
    def n_learners(self) -> int: ...

    @property
    def days(self) -> int: ...

    @property
    def sessions_per_week(self) -> float: ...

    @property
    def activities_per_session(self) -> int: ...


# Peak memory of the local simulator and data stage, per nominal event (learners x sessions x
# activities, before join dates and dropout thin them): about 160 bytes traced in `simulate`
# per event actually produced (~0.6 of nominal at the default params), plus validation and the
# Parquet write. 250 leaves room without refusing what fits.
BYTES_PER_NOMINAL_EVENT = 250


def nominal_events(cfg: SimulatorScale) -> float:
    """Upper estimate of the events ``cfg`` produces (every learner active every day)."""
    return cfg.n_learners * cfg.days / 7.0 * cfg.sessions_per_week * cfg.activities_per_session


def available_memory() -> int | None:
    """Bytes this process may still use: MemAvailable, capped by a cgroup limit; None if unknown."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit.isdigit():
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            return None
    return max(0, min(found))


def check_fits_in_memory(cfg: SimulatorScale, where: str, available: int | None = None) -> None:
    """Refuse, before simulating, a simulation the machine cannot hold (one line, not a
    MemoryError traceback minutes later)."""
    available = available_memory() if available is None else available
    if available is None:
        return
    events = nominal_events(cfg)
    need = events * BYTES_PER_NOMINAL_EVENT
    if need <= available:
        return
    per_learner = need / cfg.n_learners
    fits = int(available // per_learner)
    gib = 1024**3
    raise ConfigError(
        f"{where}.n_learners: {cfg.n_learners} learners over {cfg.days} days would simulate up "
        f"to {events:.3g} events needing about {need / gib:.1f} GiB of memory, "
        f"{available / gib:.1f} GiB available; allowed here: at most {fits} learners (or fewer "
        "days / sessions), or engine: dask, which writes learner shards"
    )
