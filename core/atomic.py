"""Atomic writes of files and folders: a failed or killed write never leaves half an output.

At the bottom of the stack (stdlib only) so that every layer writes the same way: stages,
training (promotion), export. ``pipelines.common`` re-exports these names.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# A test hook: when LUDORA_PAUSE_BEFORE_RENAME names a target (its file or folder name),
# atomic_path touches ``<target>.paused`` beside it and sleeps just before the rename, so a test
# can kill a real stage at the worst moment. Unset in normal runs.
PAUSE_ENV = "LUDORA_PAUSE_BEFORE_RENAME"
# Leftovers whose name carries no pid (older code) are swept once this old (seconds).
_LEGACY_LEFTOVER_AGE_S = 600.0


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (owned by anyone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftover_pid(name: str, target: str, suffix: str) -> int | None:
    """The creator pid in ``.{target}.{pid}.{rand}.tmp`` / ``.{target}.{pid}.old``.

    0 for the pid-less names older code wrote (``.{target}.{8 random chars}.tmp`` and
    ``.{target}.old``); None when the name is not one of ours (another target's leftover).
    """
    middle = name[len(target) + 2 : len(name) - len(suffix)]
    if suffix == ".old" and middle == "":
        return 0
    head, _, rest = middle.partition(".")
    if head.isdigit() and (rest if suffix == ".tmp" else not rest) and "." not in rest:
        return int(head)
    if suffix == ".tmp" and len(middle) == 8 and "." not in middle:
        return 0
    return None


def sweep_leftovers(path: Path | str, *, dead_pid: int | None = None) -> list[Path]:
    """Remove what killed writes of ``path`` left beside it; return what was removed/restored.

    Only temp folders ``.{name}.{pid}.*.tmp`` and swap copies ``.{name}.{pid}.old`` whose pid is
    dead are touched (never a live process's write in progress); pid-less ones from older code
    once they are ten minutes old. A swap copy whose target is missing (killed between the two
    renames of a directory swap) is the only copy of the previous output: it is renamed back.
    ``dead_pid`` is known dead to the caller (the leftover guard: its writer just died, and may
    still be an unreaped zombie that ``kill(pid, 0)`` reports alive).
    """
    path = Path(path)
    parent, name = path.parent, path.name
    if not parent.is_dir():
        return []
    done: list[Path] = []
    now = time.time()
    if name.startswith("."):
        return []  # our own temp names start with a dot: never sweep around those
    for entry in parent.glob(f".{glob.escape(name)}.*"):
        suffix = (
            ".tmp"
            if entry.name.endswith(".tmp")
            else ".old"
            if entry.name.endswith(".old")
            else None
        )
        if suffix is None:
            continue
        pid = _leftover_pid(entry.name, name, suffix)
        if pid is None or pid == os.getpid():
            continue
        if pid and pid != dead_pid and _pid_alive(pid):
            continue
        if pid == 0:
            try:
                if now - entry.lstat().st_mtime < _LEGACY_LEFTOVER_AGE_S:
                    continue
            except FileNotFoundError:
                continue
        if suffix == ".old" and not path.exists() and not path.is_symlink():
            entry.rename(path)
            logger.warning("restored %s from an interrupted swap (%s)", path, entry.name)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        done.append(entry)
    if done:
        logger.info("removed %d leftover(s) of interrupted writes of %s", len(done), path)
    return done


def _pause_hook(path: Path) -> None:
    if os.environ.get(PAUSE_ENV) == path.name:
        path.with_name(f"{path.name}.paused").write_text(str(os.getpid()))
        time.sleep(3600)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds.

    Works for files and directories (a directory target is replaced as a whole by a new
    directory). A file never replaces an existing directory, nor a directory a file: that would
    delete what the user did not ask to delete (``--out results/`` once wiped a results folder).
    The temp folder's name carries this pid, so a later write of the same target sweeps what a
    killed run left (:func:`sweep_leftovers`) without touching a live run's work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(path)
    _guard_register(path)
    pid = os.getpid()
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{pid}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise FileNotFoundError(f"atomic write of {path}: nothing was written")
        if path.is_dir() and not path.is_symlink() and not target.is_dir():
            raise IsADirectoryError(f"{path} is an existing directory; refusing to replace it")
        if path.exists() and not path.is_dir() and target.is_dir():
            raise NotADirectoryError(f"{path} is an existing file; refusing to replace it")
        _pause_hook(path)
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.{pid}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            target.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_outputs(out: Path | str, metrics_file: Path | str) -> Iterator[tuple[Path, Path]]:
    """Temp paths for a stage's output and its metrics file, committed so they never disagree.

    The old metrics file is removed only once both are fully written, just before the output's
    rename, and the new metrics land after it: a SIGKILL at any moment leaves either the old
    pair, or the new output without metrics (DVC then re-runs the stage), never new outputs
    beside stale metrics. An exception or SIGTERM before the output's rename puts the old
    metrics back.
    """
    metrics_file = require_file_target(metrics_file)
    with atomic_path(metrics_file) as m_tmp:
        out_cm = atomic_path(out)
        o_tmp = out_cm.__enter__()
        try:
            yield o_tmp, m_tmp
            if not m_tmp.exists():
                raise FileNotFoundError(f"atomic write of {metrics_file}: nothing was written")
        except BaseException:
            out_cm.__exit__(*sys.exc_info())
            raise
        old = metrics_file.read_bytes() if metrics_file.is_file() else None
        metrics_file.unlink(missing_ok=True)
        try:
            out_cm.__exit__(None, None, None)  # the output's rename
        except BaseException:
            if old is not None and not metrics_file.exists():
                _write_bytes_atomic(metrics_file, old)
            raise


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def require_file_target(path: Path | str) -> Path:
    """Refuse, before any work is done, a file output that names an existing directory."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is an existing directory; give a file path")
    return path


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write text to ``path`` atomically."""
    require_file_target(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: Path | str, obj: Any) -> None:
    """Write JSON (sorted keys, indented, NaN rejected) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def atomic_write_parquet(path: Path | str, df: Any) -> None:
    """Write a pandas DataFrame to Parquet atomically."""
    require_file_target(path)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


# ----------------------------------------------------------------------------- leftover guard
# ``kill -9`` (or the OOM killer) gives a process no chance to remove its temp folders, and the
# next run that would sweep them may never come: ``dvc repro`` skips a stage whose outputs still
# match dvc.lock. So a stage starts one small watcher process that learns each target this
# process writes (one line on a pipe) and, when the pipe closes (this process ended, however),
# sweeps what was left beside those targets. It runs in its own session, so a Ctrl-C or a
# process-group kill aimed at the stage does not take it down before it has cleaned up.

_guard: Any = None
_guard_enabled = False


def enable_leftover_guard() -> None:
    """Start the watcher lazily, at this process's first atomic write (entry points call this)."""
    global _guard_enabled
    _guard_enabled = True


def _guard_register(path: Path) -> None:
    global _guard
    if not _guard_enabled:
        return
    import subprocess

    try:
        if _guard is None or _guard.poll() is not None:
            # the folder this module is imported from (the checkout, or a wheel's site-packages)
            root = str(Path(__file__).resolve().parents[__name__.count(".")])
            code = f"import sys; sys.path.insert(0, {root!r}); import {__name__} as a; a._watch()"
            _guard = subprocess.Popen(
                [sys.executable, "-c", code, str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                text=True,
            )
        target = path.parent.resolve() / path.name
        _guard.stdin.write(f"{target}\n")
        _guard.stdin.flush()
    except OSError as exc:  # the guard is a safety net; a write must not fail for it
        logger.debug("leftover guard unavailable: %s", exc)


def _watch() -> None:
    """The watcher's body: read targets until EOF, then sweep the writer's leftovers."""
    pid = int(sys.argv[1])
    targets = list(dict.fromkeys(line.strip() for line in sys.stdin if line.strip()))
    for target in targets:
        try:
            sweep_leftovers(target, dead_pid=pid)
        except OSError:
            continue
