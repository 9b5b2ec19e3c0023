"""Moving packaged versions through a DVC remote, as the model registry names them.

A packaged version lives in ``artifacts/<model>/<version>/`` (git-ignored, not a DVC output:
versions accumulate and DVC would delete the old ones). To store one in the DVC remote, a
transient ``.dvc`` pointer names a staging copy of it; the directory hash DVC computes
(``<md5>.dir``) is kept in the registry as the model version's ``ludora.dvc_md5`` tag, so any
clone can pull exactly the version the registry names, and checks that it holds the content
the registry recorded (``ludora.content_sha256``).

DVC refuses a pointer inside a git-ignored folder, so pointers sit in ``.ludora-store/`` at the
checkout's root, removed after each transfer. DVC also records every file it commits or checks
out as a link it owns and deletes such links at a later ``dvc repro`` / ``exp run`` once no
pointer names them; so DVC only ever sees hidden staging folders, never a version folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from training.packaging import registry as reg
from training.packaging.store import CHAMPION, PREVIOUS

logger = logging.getLogger(__name__)

POINTER_DIR = ".ludora-store"
DVC_TAG = "ludora.dvc_md5"
CONTENT_TAG = "ludora.content_sha256"


class TransferError(RuntimeError):
    """A command failed or a version cannot be moved; the message names it and why."""


def dvc_exe() -> str:
    """The venv's ``dvc`` beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.is_file() else "dvc"


def run_cmd(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    stream: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise :class:`TransferError` with its last stderr line.

    ``stream``: the output goes to this process's own streams (the job log) instead of being
    captured, for long commands whose log is the diagnosis (``dvc repro``).
    """
    logger.debug("$ %s", " ".join(args))
    proc = subprocess.run(
        list(args),
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=not stream,
        text=True,
    )
    if proc.stdout and proc.stdout.strip():
        logger.debug(proc.stdout.rstrip())
    if check and proc.returncode != 0:
        out = (proc.stderr or "").strip() or (proc.stdout or "").strip()
        tail = out.splitlines()[-1] if out else "see its output above"
        raise TransferError(f"`{' '.join(args[:3])} ...` exited {proc.returncode}: {tail}")
    return proc


@contextlib.contextmanager
def _pointer(root: Path, target: Path, md5: str | None = None) -> Iterator[Path]:
    """A transient ``.dvc`` pointer to ``target`` (removed on exit, whatever happens)."""
    folder = root.resolve() / POINTER_DIR
    folder.mkdir(exist_ok=True)
    pointer = folder / f"{target.parent.name}{target.name}.dvc"
    out: dict[str, Any] = {"path": os.path.relpath(target.resolve(), folder)}
    if md5 is not None:
        out.update(md5=md5, hash="md5")
    pointer.write_text(yaml.safe_dump({"outs": [out]}, sort_keys=False))
    try:
        yield pointer
    finally:
        pointer.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()


def push_version(root: Path, version_dir: Path) -> str:
    """Store one packaged version in the DVC remote; returns its directory hash.

    DVC records every file it commits or checks out as a link it owns, and a later ``dvc
    repro`` / ``exp run`` deletes such links once no pointer names them ("Removing ... as unused
    link"). So DVC only ever sees a hidden staging copy, never the store's version folder.
    """
    staging = version_dir.with_name(f".push-{version_dir.name}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(version_dir, staging)
    try:
        with _pointer(root, staging) as pointer:
            run_cmd([dvc_exe(), "commit", "-f", "-q", str(pointer)], cwd=root)
            md5 = str(yaml.safe_load(pointer.read_text())["outs"][0]["md5"])
            run_cmd([dvc_exe(), "push", "-q", str(pointer)], cwd=root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return md5


def pull_version(root: Path, version_dir: Path, md5: str, content_sha256: str | None) -> None:
    """Bring the version with directory hash ``md5`` from the DVC remote to ``version_dir``.

    Pulled into a hidden staging folder, checked against the registry's content hash, then
    renamed into place (atomic, and out of the path DVC recorded, see :func:`push_version`):
    a wrong or partial pull never becomes a version folder.
    """
    from serving.manifest import load_manifest

    version_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = version_dir.with_name(f".pull-{version_dir.name}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with _pointer(root, staging, md5) as pointer:
            run_cmd([dvc_exe(), "pull", "-q", str(pointer)], cwd=root)
        got = load_manifest(staging).get("content_sha256")
        if got != content_sha256:
            raise TransferError(
                f"{version_dir}: the remote's {md5} holds content {got}, the registry "
                f"recorded {CONTENT_TAG} {content_sha256}; nothing was written"
            )
        os.rename(staging, version_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def registry_versions(client: Any, name: str) -> dict[int, Any]:
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return {}
    return {int(mv.tags["ludora.version"]): mv for mv in found if "ludora.version" in mv.tags}


def hydrate(root: Path, artifacts_root: Path, model: str) -> list[int]:
    """Pull the versions the registry needs here: champion, previous champion, the newest.

    The newest keeps local version numbers in step with the registry (a new version is
    ``max(local) + 1``). A version already here, or pulled, must hold the content the registry
    recorded. Returns the versions pulled.
    """
    from mlflow.exceptions import MlflowException

    from serving.manifest import MANIFEST_NAME, load_manifest

    name = reg.REGISTRY_NAMES[model]
    client = reg.client()
    versions = registry_versions(client, name)
    if not versions:
        return []
    wanted = {max(versions)}
    for alias in (CHAMPION, PREVIOUS):
        with contextlib.suppress(MlflowException, KeyError, ValueError):  # alias unset
            wanted.add(int(client.get_model_version_by_alias(name, alias).tags["ludora.version"]))
    pulled = []
    for v in sorted(wanted):
        target = artifacts_root / model / str(v)
        expected = versions[v].tags.get(CONTENT_TAG)
        if (target / MANIFEST_NAME).is_file():
            here = load_manifest(target).get("content_sha256")
            if here != expected:  # this store numbered another model v{v}: never compare it
                raise TransferError(
                    f"{target} holds content {here}, the registry's {name} ludora v{v} is "
                    f"{expected}: this store diverged from the registry (use a fresh clone or "
                    "move the folder aside)"
                )
            continue
        md5 = versions[v].tags.get(DVC_TAG)
        if not md5:
            raise TransferError(
                f"{name}: ludora v{v} is registered but absent from {target} and has no "
                f"'{DVC_TAG}' tag (never pushed to a DVC remote); push it from the machine "
                "that packaged it: python -m pipelines.ci push --model M --version V"
            )
        pull_version(root, target, md5, expected)
        pulled.append(v)
    return pulled


def push_and_tag(root: Path, artifacts_root: Path, model: str, version: int) -> str:
    """Push ``artifacts/<model>/<version>`` and record its pointer on the registry version."""
    name = reg.REGISTRY_NAMES[model]
    client = reg.client()
    mv = reg.registry_version_for(client, name, version)
    md5 = push_version(root, artifacts_root / model / str(version))
    client.set_model_version_tag(name, mv.version, DVC_TAG, md5)
    return md5
