"""The artifact store: ``artifacts/<model>/<version>/`` directories and ``aliases.json``.

Parallel experiments (``dvc queue start -j 2``) run two ``package`` stages against the same
store at once, and a stage can be killed at any instant. So:

- every change to one model's store (version allocation, the copy, the rename, the alias
  mirror) and to its registry entries happens while holding :func:`model_lock`, a file lock
  ``artifacts/<model>/.lock`` (``filelock``: an OS lock, released by the kernel when a holder is
  killed, so a crash never leaves the store locked);
- a version is built in a hidden temporary directory and renamed into place with its manifest;
  a plain ``rename`` fails rather than replace an existing version, so nothing is overwritten;
- leftovers of a killed writer (``.<v>.*.tmp`` directories, ``.aliases.json.*.tmp`` files) are
  hidden from readers and swept by the next writer that holds the lock.

``LUDORA_CRASH_AT=<point>`` makes the process SIGKILL itself at a named point
(:func:`crash_point`), so tests can prove the store survives a kill exactly there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from serving.manifest import (
    ALIASES_NAME,
    MANIFEST_NAME,
    SCHEMA_VERSION,
    ManifestError,
    check_seal,
    content_hash,
    file_entry,
    list_versions,
    load_manifest,
    read_aliases,
    seal,
)
from training.packaging.candidates import Candidate, failed_gate_names, onnx_info

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"
CRASH_ENV = "LUDORA_CRASH_AT"
LOCK_TIMEOUT_S = 900.0  # a generator copy on a busy disk takes seconds; a stuck peer, not 15 min

CHAMPION = "champion"
PREVIOUS = "previous-champion"


class StoreLockTimeout(TimeoutError):
    """Another process has held the store lock for longer than the timeout."""


def crash_point(name: str) -> None:
    """SIGKILL this process when ``LUDORA_CRASH_AT`` names this point (crash-safety tests)."""
    if os.environ.get(CRASH_ENV) == name:
        logger.warning("%s=%s: killing the process here", CRASH_ENV, name)
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def model_lock(model_root: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the store lock of one model (``<model_root>/.lock``); sweep leftovers once held."""
    from filelock import FileLock, Timeout

    model_root.mkdir(parents=True, exist_ok=True)
    # One lock object per file and process (``is_singleton``): re-entrant, so a stage holding
    # the lock around package + register can call helpers that take it again.
    lock = FileLock(str(model_root / LOCK_NAME), timeout=timeout_s, is_singleton=True)
    try:
        lock.acquire()
    except Timeout as exc:
        raise StoreLockTimeout(
            f"{model_root / LOCK_NAME}: still held by another package/promote after "
            f"{timeout_s:.0f} s"
        ) from exc
    try:
        if lock.lock_counter == 1:  # outermost holder: no write of ours is in flight
            sweep_leftovers(model_root)
        yield
    finally:
        lock.release()


def sweep_leftovers(model_root: Path) -> list[str]:
    """Remove what killed writers left (hidden ``*.tmp``); call only while holding the lock."""
    removed = []
    for p in model_root.iterdir() if model_root.is_dir() else []:
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p.name)
    if removed:
        logger.info("%s: removed leftovers of an interrupted write %s", model_root, removed)
    return removed


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a hidden sibling, fsync, rename: readers see the old or the new file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _find_same_content(model_root: Path, versions: Sequence[int], digest: str) -> int | None:
    """The newest version with this content whose manifest is intact (sealed, unedited).

    A version packaged before manifests were sealed, or edited since, is never reused: serving
    and promotion refuse it, so the same content gets a new, sealed version.
    """
    for existing in reversed(versions):
        manifest = load_manifest(model_root / str(existing))
        if manifest.get("content_sha256") != digest:
            continue
        try:
            check_seal(manifest, model_root / str(existing))
        except ManifestError:
            continue
        return existing
    return None


def package_candidate(
    cand: Candidate, artifacts_root: Path, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Write (or reuse) a version of ``cand``; returns its status record for metrics/package.json.

    Status is ``packaged`` (new version), ``reused`` (same content as an existing version, the
    newest such) or ``skipped_gates_failed`` (nothing written). Callers that go on to register
    the version hold :func:`model_lock` around both; this function takes it when not held
    (the lock is re-entrant within a process).
    """
    if not cand.gates_passed:
        failed = failed_gate_names(cand.fields.get("gates", []))
        logger.warning("%s: gates failed %s; not packaged", cand.model, failed)
        return {"status": "skipped_gates_failed", "version": None, "failed_gates": failed}
    entries = {name: file_entry(cand.source_dir / name) for name in cand.files}
    digest = content_hash(entries)
    model_root = artifacts_root / cand.model
    onnx = {n: onnx_info(cand.source_dir / n) for n in cand.files if n.endswith(".onnx")}
    with model_lock(model_root):
        versions = list_versions(model_root)
        existing = _find_same_content(model_root, versions, digest)
        if existing is not None:
            logger.info("%s: same content as version %d, reusing it", cand.model, existing)
            path = model_root / str(existing)
            return {
                "status": "reused",
                "version": existing,
                "content_sha256": digest,
                "path": str(path.resolve()),
            }
        version = (versions[-1] if versions else 0) + 1
        target = model_root / str(version)
        manifest = seal(
            {
                "schema_version": SCHEMA_VERSION,
                "name": cand.model,
                "version": version,
                "created_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
                "content_sha256": digest,
                "files": entries,
                "onnx": onnx,
                **cand.fields,
            }
        )
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".tmp", dir=model_root))
        try:
            for name in cand.files:
                shutil.copy2(cand.source_dir / name, tmp / name)
            (tmp / MANIFEST_NAME).write_text(
                json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n"
            )
            tmp.chmod(0o755)  # mkdtemp makes it 0700: a server running as another user reads it
            crash_point("package:copied")
            # Under the lock nobody else allocates; the rename still refuses an existing
            # version (a store shared with a writer that does not lock): never overwrite.
            os.rename(tmp, target)
        except OSError as exc:
            raise FileExistsError(f"{target}: could not create version {version} ({exc})") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("%s: packaged version %d at %s", cand.model, version, target)
    return {
        "status": "packaged",
        "version": version,
        "content_sha256": digest,
        "path": str(target.resolve()),
    }


def write_aliases(model_root: Path, history: list[int], event: str) -> None:
    """Mirror the aliases for serving: ``{"champion", "previous-champion", "history", ...}``."""
    old = read_aliases(model_root)
    events = list(old.get("events", []))
    events.append(
        {
            "event": event,
            "champion": history[-1] if history else None,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )
    data: dict[str, Any] = {
        CHAMPION: history[-1] if history else None,
        "history": history,
        "events": events[-100:],
    }
    if len(history) > 1:
        data[PREVIOUS] = history[-2]
    write_json_atomic(model_root / ALIASES_NAME, data)
