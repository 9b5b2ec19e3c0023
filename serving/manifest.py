"""Read and verify a packaged artifact's ``manifest.json`` (stdlib + onnxruntime only).

Serving refuses an artifact whose files differ from what was packaged and gated: every listed
file must exist with its recorded size and sha256, and each ONNX file's input/output names must
match the manifest. ``pipelines.package`` uses the same helpers to write manifests, so the two
sides cannot drift apart.

Manifest layout (``schema_version`` 1)::

    {"schema_version": 1, "name": "weakness", "version": 3, "created_at": "...",
     "git_commit": "...", "params_hash": "...", "mlflow_run_id": "...", "variant": "fp32",
     "content_sha256": "...",                       # hash over files (name, sha256), see below
     "files": {"model.onnx": {"sha256": "...", "size": 1234}, ...},
     "onnx": {"model.onnx": {"opset": 17, "inputs": [{"name", "shape", "type"}], "outputs": [...]}},
     "metrics": {...}, "gates": [{"name", "metric", "kind", "threshold", "value", "passed"}],
     "gates_passed": true, ...model-specific keys (feature_names, generation)...}

``artifacts/<model>/aliases.json`` maps aliases to versions: ``{"champion": 3, "history": [..]}``.

The manifest vouches for the files (their sha256), so it is sealed too: ``manifest_sha256`` is the
sha256 of the manifest's canonical JSON without that key (:func:`manifest_digest`), written at
packaging and recorded in the registry version's tags. An edit that does not recompute it (a gate
value, a ``passed`` flag) is refused here; ``gates_passed`` must also agree with the gates it
summarises. The digest is not a signature: whoever can rewrite the store can recompute it, which
the registry tag (checked by ``ludora-ml promote``) catches unless the registry was rewritten too
(docs/promotion.md "What the manifest seal protects").
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.io import read_json

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
ALIASES_NAME = "aliases.json"
SCHEMA_VERSION = 1
REQUIRED_KEYS = (
    "schema_version",
    "name",
    "version",
    "created_at",
    "variant",
    "content_sha256",
    "files",
    "onnx",
    "gates",
    "gates_passed",
)


DIGEST_KEY = "manifest_sha256"


class ManifestError(ValueError):
    """An artifact's manifest is malformed or its files do not match it."""


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no spaces), without the digest."""
    body = {k: v for k, v in manifest.items() if k != DIGEST_KEY}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def seal(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with its ``manifest_sha256`` set (packaging calls this last)."""
    return {**manifest, DIGEST_KEY: manifest_digest(manifest)}


def check_seal(manifest: Mapping[str, Any], where: Path | str) -> None:
    """Refuse a manifest edited after packaging: digest, and gates_passed against its gates."""
    recorded = manifest.get(DIGEST_KEY)
    if not recorded:
        raise ManifestError(
            f"{where}: no {DIGEST_KEY} (packaged before manifests were sealed, or removed); "
            "re-package it (dvc repro package)"
        )
    if recorded != manifest_digest(manifest):
        raise ManifestError(
            f"{where}: {DIGEST_KEY} does not match the manifest's content: it was edited after "
            "packaging; re-package it (dvc repro package)"
        )
    gates = manifest.get("gates")
    if not isinstance(gates, list) or not all(isinstance(g, dict) for g in gates):
        raise ManifestError(f"{where}: 'gates' must be a list of gate records")
    if not all(isinstance(g.get("passed"), bool) for g in gates):
        raise ManifestError(f"{where}: every gate record needs a true/false 'passed'")
    summary = bool(gates) and all(g.get("passed") is True for g in gates)
    if manifest.get("gates_passed") is not summary:
        raise ManifestError(
            f"{where}: gates_passed is {manifest.get('gates_passed')!r} but its gates say {summary}"
        )


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (read in chunks: ONNX files can be large)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_entry(path: Path | str) -> dict[str, Any]:
    """The manifest entry of one file: its sha256 and size in bytes."""
    path = Path(path)
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def content_hash(files: Mapping[str, Mapping[str, Any]]) -> str:
    """Hash of an artifact's payload: sorted (relative name, sha256) pairs.

    Two candidates with the same content hash are the same model; packaging reuses the existing
    version instead of minting a new one.
    """
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]['sha256']}\n".encode())
    return h.hexdigest()


def describe_onnx_io(path: Path | str) -> dict[str, Any]:
    """Input and output names, shapes and element types of an ONNX file, via onnxruntime."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def _args(args: Any) -> list[dict[str, Any]]:
        return [{"name": a.name, "shape": list(a.shape), "type": a.type} for a in args]

    return {"inputs": _args(sess.get_inputs()), "outputs": _args(sess.get_outputs())}


def load_manifest(artifact_dir: Path | str) -> dict[str, Any]:
    """Read ``manifest.json`` and check its required keys and schema version."""
    path = Path(artifact_dir) / MANIFEST_NAME
    manifest = read_json(path, missing="manifest not found", error=ManifestError)
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: top level must be an object")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ManifestError(f"{path}: missing key(s) {missing}")
    if manifest["schema_version"] != SCHEMA_VERSION:
        raise ManifestError(
            f"{path}: schema_version {manifest['schema_version']!r} not supported "
            f"(expected {SCHEMA_VERSION})"
        )
    if not isinstance(manifest["files"], dict) or not manifest["files"]:
        raise ManifestError(f"{path}: 'files' must be a non-empty object")
    return manifest


def verify_artifact(artifact_dir: Path | str, *, check_io: bool = True) -> dict[str, Any]:
    """Verify every listed file (size, sha256) and the ONNX io names; return the manifest.

    Raises ManifestError naming the first file that is missing, resized or altered, or whose
    ONNX inputs/outputs differ from the manifest. A manifest whose gates did not pass is refused
    too: such an artifact should never have been packaged.
    """
    root = Path(artifact_dir)
    manifest = load_manifest(root)
    where = root / MANIFEST_NAME
    check_seal(manifest, where)
    for name, entry in manifest["files"].items():
        path = root / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ManifestError(
                f"{where}: file name {name!r} must be relative, inside the artifact"
            )
        if not path.is_file():
            raise ManifestError(f"{path}: listed in the manifest but missing")
        size = path.stat().st_size
        if size != entry.get("size"):
            raise ManifestError(
                f"{path}: size {size} bytes differs from the manifest ({entry.get('size')})"
            )
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            raise ManifestError(
                f"{path}: sha256 {digest} differs from the manifest ({entry.get('sha256')})"
            )
    if content_hash(manifest["files"]) != manifest["content_sha256"]:
        raise ManifestError(f"{where}: content_sha256 does not match the listed files")
    if manifest["gates_passed"] is not True:
        raise ManifestError(f"{where}: gates did not pass; this artifact must not be served")
    if check_io:
        for name, expected in manifest["onnx"].items():
            if name not in manifest["files"]:
                raise ManifestError(f"{where}: onnx entry {name!r} is not a listed file")
            actual = describe_onnx_io(root / name)
            for side in ("inputs", "outputs"):
                want = [a["name"] for a in expected.get(side, [])]
                got = [a["name"] for a in actual[side]]
                if want != got:
                    raise ManifestError(
                        f"{root / name}: ONNX {side} {got} differ from the manifest {want}"
                    )
    logger.info(
        "verified %s v%s (%d files)", manifest["name"], manifest["version"], len(manifest["files"])
    )
    return manifest


def read_aliases(model_root: Path | str) -> dict[str, Any]:
    """``aliases.json`` of one model (``{"champion": V | None, "history": [...]}``)."""
    path = Path(model_root) / ALIASES_NAME
    if not path.is_file():
        return {"champion": None, "history": []}
    data = read_json(path, error=ManifestError)  # a truncated file is named, not just "line 1"
    if not isinstance(data, dict) or "champion" not in data:
        raise ManifestError(f"{path}: expected an object with a 'champion' key")
    data.setdefault("history", [])
    return data


def list_versions(model_root: Path | str) -> list[int]:
    """Packaged versions of one model, ascending (directories named by an integer)."""
    root = Path(model_root)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
