"""Shared plumbing for pipeline stages: params, typed configs, atomic writes, logging, provenance.

Stages stay thin: ``main()`` reads its ``params.yaml`` section through :func:`load_section`,
builds a frozen dataclass with :func:`build_config`, calls pure functions and writes its
declared outputs with the ``atomic_*`` helpers so that a failed stage leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

# The config layer lives at the bottom of the stack (data/params.py); re-exported here so stage
# code written against pipelines.common keeps working.
from data.params import (  # noqa: F401
    ConfigError,
    build_config,
    check_value,
    require,
    require_range,
)

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = REPO_ROOT / "params.yaml"

T = TypeVar("T")


def setup_logging(level: int = logging.INFO) -> None:
    """Configure root logging once; only entry points call this."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def load_params(path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    """Read the whole params file (YAML) and return it as a dict."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    with path.open() as fh:
        params = yaml.safe_load(fh) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(params).__name__}")
    return params


def load_section(section: str, path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    """Return one top-level section of ``params.yaml``; error names the file and section."""
    params = load_params(path)
    if section not in params or not isinstance(params[section], dict):
        raise ConfigError(f"{path}: section '{section}' missing or not a mapping")
    return dict(params[section])


# ----------------------------------------------------------------------------- atomic writes


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


def sweep_leftovers(path: Path | str) -> list[Path]:
    """Remove what killed writes of ``path`` left beside it; return what was removed/restored.

    Only temp folders ``.{name}.{pid}.*.tmp`` and swap copies ``.{name}.{pid}.old`` whose pid is
    dead are touched (never a live process's write in progress); pid-less ones from older code
    once they are ten minutes old. A swap copy whose target is missing (killed between the two
    renames of a directory swap) is the only copy of the previous output: it is renamed back.
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
        if pid is None or pid == os.getpid() or (pid and _pid_alive(pid)):
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


# ----------------------------------------------------------------------------- entry points

DEBUG_ENV = "LUDORA_DEBUG"
# Packages of this repo: their own exception types are expected errors (a gate failed, an
# artifact is bad), never bugs of a library underneath.
_REPO_PACKAGES = ("data", "features", "training", "export", "quantize", "serving", "pipelines")


def debug_enabled() -> bool:
    """``--debug`` (which sets LUDORA_DEBUG=1) or ``LUDORA_DEBUG=1``: show tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def is_expected_error(exc: BaseException) -> bool:
    """Errors a user causes and can fix from the message (bad params, files, inputs, gates).

    ValueError (ConfigError, EventValidationError, SpecError, ... all derive from it) and the
    OSErrors of missing or misplaced files, plus any exception class defined in this repo.
    """
    if isinstance(exc, ValueError | FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return True
    if isinstance(exc, PermissionError | FileExistsError):
        return True
    return type(exc).__module__.split(".", 1)[0] in _REPO_PACKAGES


def error_line(exc: BaseException) -> str:
    """The message a user sees: the exception's text (its own first line names file/key)."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return text


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_sigterm_handler() -> None:
    """Turn SIGTERM into KeyboardInterrupt so ``finally`` blocks (atomic_path) clean up."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def run_stage(main: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any) -> Any:
    """Run a stage or CLI body: expected errors -> one line on stderr and exit 1.

    Tracebacks only with LUDORA_DEBUG=1 (or the CLI's ``--debug``). SIGTERM and Ctrl-C both
    unwind through ``finally`` (temp outputs removed) and exit 130 / 143.
    """
    label = name or getattr(main, "__module__", "ludora-ml")
    install_sigterm_handler()
    try:
        return main(*args, **kwargs)
    except KeyboardInterrupt as exc:
        sys.stderr.write(f"{label}: interrupted; nothing was written\n")
        raise SystemExit(143 if "signal" in str(exc) else 130) from None
    except Exception as exc:
        if debug_enabled() or not is_expected_error(exc):
            raise
        sys.stderr.write(f"error: {error_line(exc)}\n")
        raise SystemExit(1) from None


def stage_main(main: Callable[..., Any]) -> None:
    """``if __name__ == "__main__": stage_main(main)``: logging, then :func:`run_stage`."""
    setup_logging()
    run_stage(main)


# ----------------------------------------------------------------------------- provenance


def git_commit(root: Path = REPO_ROOT) -> str:
    """The current git commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def params_hash(section: Mapping[str, Any]) -> str:
    """Stable sha256 of a params mapping (sorted-key JSON)."""
    blob = json.dumps(section, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


# ----------------------------------------------------------------------------- mlflow


def default_tracking_uri(root: Path = REPO_ROOT) -> str:
    """Tracking URI: ``MLFLOW_TRACKING_URI`` if set, else a SQLite store at the *main* repo root.

    ``dvc exp run`` executes in a temporary copy of the repo (under ``.dvc/tmp/exps``); we
    walk up out of it so every experiment lands in the same store the MLflow UI reads.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{main_repo_root(root) / 'mlflow.db'}"


def main_repo_root(root: Path = REPO_ROOT) -> Path:
    """The checkout that owns this tree, escaping DVC's temporary experiment workspaces."""
    parts = root.resolve().parts
    if ".dvc" in parts:
        idx = parts.index(".dvc")
        return Path(*parts[:idx])
    return root.resolve()


def resolve_input_path(path: Path | str, base: Path) -> Path:
    """An input file named in params: absolute as is, relative to ``base`` (the params file's
    folder), else relative to the main checkout.

    ``dvc exp run --temp`` / ``dvc queue`` copy the repo to ``.dvc/tmp/exps/...``: a file inside
    the repo is copied along, but one beside it (``../shared/data/...``) is only reachable from
    the main checkout, so the fallback keeps such params working in every way DVC runs a stage.
    """
    p = Path(path)
    if p.is_absolute():
        return p
    local = base / p
    if local.exists():
        return local
    main = main_repo_root(base) / p
    return main if main.exists() else local


def setup_mlflow(experiment: str, root: Path = REPO_ROOT) -> None:
    """Point MLflow at the tracking store and select ``experiment`` (artifacts under the root)."""
    import mlflow

    uri = default_tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        artifact_location = None
        if uri.startswith("sqlite:///"):
            artifact_location = (main_repo_root(root) / "mlartifacts" / experiment).as_uri()
        mlflow.create_experiment(experiment, artifact_location=artifact_location)
    mlflow.set_experiment(experiment)
    logger.info("MLflow tracking at %s, experiment %s", uri, experiment)
