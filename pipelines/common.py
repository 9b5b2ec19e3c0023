"""Shared plumbing for pipeline stages: params, typed configs, atomic writes, logging, provenance.

Stages stay thin: ``main()`` reads its ``params.yaml`` section through :func:`load_section`,
builds a frozen dataclass with :func:`build_config`, calls pure functions and writes its
declared outputs with the ``atomic_*`` helpers so that a failed stage leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

# Atomic writes live at the bottom of the stack too (core/atomic.py); re-exported here.
from core.atomic import (  # noqa: F401
    PAUSE_ENV,
    atomic_outputs,
    atomic_path,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
    enable_leftover_guard,
    require_file_target,
    sweep_leftovers,
)

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

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = REPO_ROOT / "params.yaml"


def setup_logging(level: int = logging.INFO) -> None:
    """Configure root logging once; only entry points call this."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


# The top-level sections a params file may hold: one per stage that has settings (plus the
# shared engine settings and the gates). Anything else is a typo or a leftover whose values would
# silently do nothing, so it is refused. A new stage adds its section here, and its config model
# to tests/pipelines/test_params_defaults.py.
SECTIONS = (
    "engine",
    "dask",
    "data",
    "features",
    "train_weakness",
    "score",
    "export_weakness",
    "prepare_text",
    "train_generator",
    "export_generator",
    "quantize_generator",
    "gates",
    "package",
    "quests",
)


def _yaml_loader() -> Any:
    """A safe YAML loader that refuses a key repeated in one mapping (YAML keeps the last)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: let the base constructor report it
                continue
            if first is not key_node.start_mark:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first.line + 1}); "
                    "YAML would silently keep only the last value",
                    mark,
                )
        return loader.construct_mapping(node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


def read_yaml(path: Path | str) -> Any:
    """Parse a YAML file; a syntax error or a duplicate key is ONE line ``file:line:col: what``."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start})") from None
    try:
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        if exc.context and exc.problem and "duplicate key" not in what:
            context = " ".join(str(exc.context).split())
            cm = exc.context_mark
            if cm is not None and mark is not None and cm.line != mark.line:
                context += f" started at line {cm.line + 1}, column {cm.column + 1}"
            what = f"{what} ({context})"
        raise ConfigError(f"{where}: invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None


def load_params(path: Path | str | None = None) -> dict[str, Any]:
    """Read the whole params file (YAML) and return it as a dict.

    Refused with one line: a syntax error (file, line and column), a duplicated key, a top-level
    section no stage reads.
    """
    path = Path(PARAMS_FILE if path is None else path)  # resolved at call time (tests swap it)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    params = read_yaml(path) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(params).__name__}")
    unknown = [k for k in params if k not in SECTIONS]
    if unknown:
        raise ConfigError(f"{path}:{unknown[0]}: unknown section; allowed: {list(SECTIONS)}")
    return params


def load_section(section: str, path: Path | str | None = None) -> dict[str, Any]:
    """Return one top-level section of ``params.yaml``; error names the file and section."""
    path = PARAMS_FILE if path is None else path
    params = load_params(path)
    if section not in params or not isinstance(params[section], dict):
        raise ConfigError(f"{path}: section '{section}' missing or not a mapping")
    return dict(params[section])


def stage_config(cls: type[T], section: str) -> T:
    """A stage's validated config: its ``params.yaml`` section built into the frozen ``cls``.

    The one way a stage turns its section into a typed config, so that a bad value is refused
    with the same one-line error (naming the section) whichever stage reads it.
    """
    return build_config(cls, load_section(section), section)


def write_json(path: Path, obj: Any) -> None:
    """JSON as the stages' model files and metrics are written (sorted keys, indented).

    For a path inside a folder the caller is already writing atomically (``atomic_path``,
    ``atomic_outputs``); NaN stays allowed here, unlike :func:`atomic_write_json`, so that
    these files keep the bytes they always had.
    """
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_csv(path: Path, rows: Any, columns: list[str] | None = None) -> None:
    """A plot table (rows of dicts or tuples) as CSV without the index, written atomically."""
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False)


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


def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of a live process from /proc; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces
    if fields[0] in ("Z", "X"):  # exited, not yet reaped: as good as gone
        return None
    return fields[0], int(fields[1]), fields[19]


def _is_dvc(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(Path(a.decode(errors="replace")).name in ("dvc", "dvc.exe") for a in argv[:2]) or (
        len(argv) > 2 and argv[1] == b"-m" and argv[2].startswith(b"dvc")
    )


def tie_to_parent(poll_s: float = 0.5) -> None:
    """End this process (as SIGTERM would) when the process that started it ends.

    ``dvc repro`` killed with SIGTERM exits at once and leaves its stage running alone; the
    stage would later write outputs that dvc.lock never records. The kernel's parent-death
    signal (``prctl(PR_SET_PDEATHSIG)``) covers a direct parent; a watcher thread also follows
    the nearest ``dvc`` ancestor, since DVC runs the command through ``$SHELL -c``, which may
    stay in between. Linux only (elsewhere a no-op).
    """
    import signal

    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    chain: list[tuple[int, str]] = []
    pid = parent
    for _ in range(4):  # parent, then up to three more ancestors while looking for dvc
        stat = _proc_stat(pid)
        if stat is None or pid <= 1:
            break
        chain.append((pid, stat[2]))
        if _is_dvc(pid):
            break
        pid = stat[1]
    # Up to the dvc ancestor when there is one, else the parent alone.
    watched = chain if chain and _is_dvc(chain[-1][0]) else chain[:1]
    if os.getppid() != parent:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)
        return

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            for wpid, started in watched:
                stat = _proc_stat(wpid)
                if stat is None or stat[2] != started or os.getppid() != parent:
                    logger.warning("the parent process (pid %d) ended; stopping", wpid)
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

    threading.Thread(target=watch, name="tie-to-parent", daemon=True).start()


def run_stage(main: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any) -> Any:
    """Run a stage or CLI body: expected errors -> one line on stderr and exit 1.

    Tracebacks only with LUDORA_DEBUG=1 (or the CLI's ``--debug``). SIGTERM and Ctrl-C both
    unwind through ``finally`` (temp outputs removed) and exit 130 / 143.
    """
    label = name or getattr(main, "__module__", "ludora-ml")
    install_sigterm_handler()
    enable_leftover_guard()
    try:
        return main(*args, **kwargs)
    except KeyboardInterrupt as exc:
        sys.stderr.write(f"{label}: interrupted; nothing was written, previous outputs kept\n")
        raise SystemExit(143 if "signal" in str(exc) else 130) from None
    except Exception as exc:
        if debug_enabled() or not is_expected_error(exc):
            raise
        sys.stderr.write(f"error: {error_line(exc)}\n")
        raise SystemExit(1) from None


def stage_main(main: Callable[..., Any]) -> None:
    """``if __name__ == "__main__": stage_main(main)``: logging, then :func:`run_stage`.

    A stage ends with the process that started it (:func:`tie_to_parent`).
    """
    setup_logging()
    tie_to_parent()
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


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow 3's experiment type
MODEL_TRAINING = "custom_model_development"  # not GenAI: the UI's runs view, not traces


@contextlib.contextmanager
def store_lock(tracking_uri: str, timeout_s: float = 600.0) -> Iterator[None]:
    """Serialise first access to a local SQLite store across processes.

    Two processes opening a new ``mlflow.db`` at once both run MLflow's schema migrations and one
    fails (alembic: "Online migration expected to match one row ... 0 found", reproduced with two
    processes); two creating the same experiment at once collide too. The lock file lives in the
    temp dir, keyed by the database path, so the repository gains no file.
    """
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock

    db = Path(tracking_uri[len("sqlite:///") :]).resolve()
    key = hashlib.sha256(str(db).encode()).hexdigest()[:16]
    with FileLock(str(Path(tempfile.gettempdir()) / f"ludora-mlflow-{key}.lock"), timeout_s):
        yield


def setup_mlflow(experiment: str, root: Path = REPO_ROOT) -> None:
    """Point MLflow at the tracking store and select ``experiment`` (artifacts under the root).

    The experiment is tagged as model training (see ``pipelines.tracking`` for what the UI shows).
    """
    import mlflow

    uri = default_tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    with store_lock(uri):  # parallel `dvc queue` workers: one creates the store / experiment
        if mlflow.get_experiment_by_name(experiment) is None:
            artifact_location = None
            if uri.startswith("sqlite:///"):
                artifact_location = (main_repo_root(root) / "mlartifacts" / experiment).as_uri()
            mlflow.create_experiment(experiment, artifact_location=artifact_location)
        exp = mlflow.set_experiment(experiment)
        if exp.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
            mlflow.MlflowClient().set_experiment_tag(
                exp.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING
            )
    logger.info("MLflow tracking at %s, experiment %s", uri, experiment)
