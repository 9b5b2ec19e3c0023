"""Shared plumbing for pipeline stages: params, typed configs, atomic writes, logging, provenance.

Stages stay thin: ``main()`` reads its ``params.yaml`` section through :func:`load_section`,
builds a frozen dataclass with :func:`build_config`, calls pure functions and writes its
declared outputs with the ``atomic_*`` helpers so that a failed stage leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import numbers
import os
import shutil
import subprocess
import tempfile
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = REPO_ROOT / "params.yaml"

T = TypeVar("T")


class ConfigError(ValueError):
    """A params section is missing a key, has an unknown key, or a value out of range."""


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


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Check (and lightly coerce) ``value`` against a dataclass field type hint."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in args:
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} matches none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return build_config(hint, value, where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def build_config(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    """Build a frozen dataclass from a params mapping, rejecting unknown and missing keys.

    Type hints are checked (lists become tuples so the config stays hashable and frozen);
    range checks belong in the dataclass's ``__post_init__``, which should raise ConfigError.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name in values:
            kwargs[name] = _check_type(values[name], hints[name], f"{where}.{name}")
        elif (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING  # type: ignore[misc]
        ):
            raise ConfigError(f"{where}: missing required key '{name}'")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def require(cond: bool, where: str, message: str) -> None:
    """Raise ConfigError naming the field when a range check fails (used in __post_init__)."""
    if not cond:
        raise ConfigError(f"{where}: {message}")


def _fmt_bound(x: float) -> str:
    """A range bound as written in params: ``0`` rather than ``0.0``, ``1e-05`` as is."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return str(x)


def _fmt_range(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    """Interval notation: ``in [1, 64]``, ``in (0, 1]``, ``>= 0``, ``> 0``, ``<= 1``, ``< 1``."""
    if lo is not None and hi is not None:
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        return f"in {left}{_fmt_bound(lo)}, {_fmt_bound(hi)}{right}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_fmt_bound(lo)}"
    assert hi is not None
    return f"{'<' if hi_open else '<='} {_fmt_bound(hi)}"


def require_range(
    value: object,
    where: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
    note: str = "",
) -> None:
    """Raise ConfigError unless ``value`` is a number in the given range (used in __post_init__).

    Bounds are inclusive unless ``lo_open``/``hi_open``; leave ``lo`` or ``hi`` as None for a
    one-sided bound. ``integer=True`` also rejects floats (even ``2.0``). Bools, strings, None
    and NaN are always rejected. The message names the field, the range in interval notation
    and the value, e.g. ``train_generator.epochs: must be an integer in [1, 1000], got 0``;
    ``note`` (e.g. ``"0 = off"``) is added in parentheses after the range.
    """
    if lo is None and hi is None:
        raise TypeError("require_range needs lo, hi or both")
    rng = _fmt_range(lo, hi, lo_open, hi_open)
    if note:
        rng = f"{rng} ({note})"
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a number"
        raise ConfigError(f"{where}: must be {what} {rng}, got {value!r}")
    num = typing.cast(float, value)  # a Real; compared as is, so big ints stay exact
    # Written as "ok" conditions so that NaN (which fails every comparison) is rejected.
    ok = True
    if lo is not None:
        ok = ok and (num > lo if lo_open else num >= lo)
    if hi is not None:
        ok = ok and (num < hi if hi_open else num <= hi)
    if not ok:
        what = "an integer " if integer else ""
        raise ConfigError(f"{where}: must be {what}{rng}, got {value}")


# ----------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds.

    Works for files and directories (a directory target is replaced as a whole by a new
    directory). A file never replaces an existing directory, nor a directory a file: that would
    delete what the user did not ask to delete (``--out results/`` once wiped a results folder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise FileNotFoundError(f"atomic write of {path}: nothing was written")
        if path.is_dir() and not path.is_symlink() and not target.is_dir():
            raise IsADirectoryError(f"{path} is an existing directory; refusing to replace it")
        if path.exists() and not path.is_dir() and target.is_dir():
            raise NotADirectoryError(f"{path} is an existing file; refusing to replace it")
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            target.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
