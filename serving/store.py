"""Resolve a model reference to an artifact directory, without importing MLflow.

A reference is one of:

- a directory holding ``manifest.json``;
- a version (``3``), ``latest`` or an alias (``champion``) under the local store
  ``<root>/<model>/`` (``aliases.json`` maps alias -> version; see :mod:`serving.manifest`);
- an MLflow registry URI ``models:/<name>@<alias>`` or ``models:/<name>/<version>``. With an
  http(s) tracking URI it is resolved through the tracking server's public REST API (urllib;
  the model version's ``ludora.artifact_dir`` tag names the directory; when that folder is on
  another machine, the local store's copy of the same version and content is used). Otherwise
  the alias is read from the artifact store's own ``aliases.json``, which promotion writes
  beside every registry alias change; MLflow's database is never opened (its tables are
  MLflow's private schema, which changes between releases). Registry version numbers exist
  only in the registry, so ``models:/<name>/<version>`` needs the REST API.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.settings import ServingSettings

from serving.manifest import MANIFEST_NAME, ManifestError, list_versions, read_aliases

logger = logging.getLogger(__name__)

ARTIFACT_DIR_TAG = "ludora.artifact_dir"
VERSION_TAG = "ludora.version"
CONTENT_TAG = "ludora.content_sha256"
REGISTRY_NAMES = {"weakness": "ludora-weakness", "generator": "ludora-generator"}


class ArtifactResolutionError(ValueError):
    """A model reference points at nothing usable; the message says what was tried."""


def resolve_artifact(
    ref: str | Path,
    model: str,
    *,
    artifact_root: Path,
    tracking_uri: str | None = None,
    http_timeout_s: float = 5.0,
) -> Path:
    """Return the artifact directory ``ref`` points at (it holds a ``manifest.json``)."""
    ref_s = str(ref).strip()
    if not ref_s:
        raise ArtifactResolutionError(f"{model}: empty model reference")
    if ref_s.startswith("models:/"):
        path = resolve_registry_uri(
            ref_s,
            tracking_uri=tracking_uri,
            artifact_root=Path(artifact_root),
            timeout_s=http_timeout_s,
        )
        return _require_manifest(path, ref_s)
    as_path = Path(ref_s).expanduser()
    if as_path.is_dir():
        return _require_manifest(as_path, ref_s)
    path = resolve_local(Path(artifact_root), model, ref_s)
    return _require_manifest(path, ref_s)


def resolve_local(artifact_root: Path, model: str, ref: str) -> Path:
    """``<root>/<model>/<version>`` for a version, ``latest`` or an alias of ``aliases.json``."""
    model_root = artifact_root / model
    try:
        if ref.isdigit():
            version = int(ref)
        elif ref == "latest":
            versions = list_versions(model_root)
            if not versions:
                raise ArtifactResolutionError(f"{model_root}: no packaged version")
            version = versions[-1]
        else:
            aliases = read_aliases(model_root)
            target = aliases.get(ref)
            if target is None or isinstance(target, bool) or not str(target).isdigit():
                # aliases name versions; "history" and "events" are the log beside them
                known = sorted(
                    k
                    for k, v in aliases.items()
                    if isinstance(v, int)
                    and not isinstance(v, bool)
                    and k not in ("history", "events")
                )
                raise ArtifactResolutionError(
                    f"'{ref}' is not a directory, a version or a set alias of {model_root} "
                    f"(aliases set: {known})"
                )
            version = int(target)
    except (ManifestError, OSError, ValueError) as exc:
        if isinstance(exc, ArtifactResolutionError):
            raise
        raise ArtifactResolutionError(f"{model_root}: cannot resolve '{ref}' ({exc})") from exc
    path = model_root / str(version)
    if not path.is_dir():
        raise ArtifactResolutionError(f"{path}: version {version} of {model} not found")
    return path


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """Split ``models:/name@alias`` / ``models:/name/version`` into (name, alias, version)."""
    body = uri[len("models:/") :]
    if "@" in body:
        name, alias = body.split("@", 1)
        if name and alias and "/" not in name:
            return name, alias, None
    elif body.count("/") == 1:
        name, version = body.split("/")
        if name and version.isdigit():
            return name, None, version
    raise ArtifactResolutionError(
        f"{uri}: expected models:/<name>@<alias> or models:/<name>/<version>"
    )


def resolve_registry_uri(
    uri: str, *, tracking_uri: str | None, artifact_root: Path, timeout_s: float = 5.0
) -> Path:
    """The artifact directory behind ``models:/...``: REST API for http(s), else aliases.json."""
    name, alias, version = parse_registry_uri(uri)
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        tags = _rest_version_tags(tracking_uri, name, alias, version, timeout_s)
        if ARTIFACT_DIR_TAG not in tags:
            raise ArtifactResolutionError(f"{uri}: model version has no '{ARTIFACT_DIR_TAG}' tag")
        recorded = Path(tags[ARTIFACT_DIR_TAG])
        return recorded if recorded.is_dir() else _pulled_copy(uri, name, tags, artifact_root)
    models = {v: k for k, v in REGISTRY_NAMES.items()}
    if name not in models:
        raise ArtifactResolutionError(
            f"{uri}: unknown registered model '{name}' (known: {sorted(models)})"
        )
    if alias is None:
        raise ArtifactResolutionError(
            f"{uri}: registry version numbers need an http(s) tracking URI (MLflow server); "
            f"with a local store use the packaged version ('{version}') or an alias"
        )
    return resolve_local(artifact_root, models[name], alias)


def _pulled_copy(uri: str, name: str, tags: dict[str, str], artifact_root: Path) -> Path:
    """The local store's copy of the registry's version, when the recorded folder is elsewhere.

    ``ludora.artifact_dir`` is a path on the machine that packaged the version (a CI runner);
    a serving host pulls the same version into its own store (``python -m pipelines.ci pull``,
    from the DVC remote). The copy is used only when it holds the content the registry recorded.
    """
    models = {v: k for k, v in REGISTRY_NAMES.items()}
    version = tags.get(VERSION_TAG, "")
    if name not in models or not version.isdigit():
        raise ArtifactResolutionError(
            f"{uri}: {tags[ARTIFACT_DIR_TAG]} does not exist here and the version has no "
            f"'{VERSION_TAG}' tag to find a local copy"
        )
    local = artifact_root / models[name] / version
    try:
        content = json.loads((local / MANIFEST_NAME).read_text()).get("content_sha256")
    except (OSError, ValueError):
        content = None
    if content is None or content != tags.get(CONTENT_TAG):
        raise ArtifactResolutionError(
            f"{uri}: {tags[ARTIFACT_DIR_TAG]} does not exist here and {local} does not hold "
            f"the registry's content {tags.get(CONTENT_TAG)} (pull it: python -m pipelines.ci pull)"
        )
    return local


def _rest_version_tags(
    base: str, name: str, alias: str | None, version: str | None, timeout_s: float
) -> dict[str, str]:
    if alias is not None:
        endpoint = "/api/2.0/mlflow/registered-models/alias"
        query = {"name": name, "alias": alias}
    else:
        endpoint = "/api/2.0/mlflow/model-versions/get"
        query = {"name": name, "version": str(version)}
    url = base.rstrip("/") + endpoint + "?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            payload = json.loads(resp.read().decode())
    except urllib.error.HTTPError as exc:
        raise ArtifactResolutionError(f"{url}: registry answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        raise ArtifactResolutionError(f"{url}: registry unreachable ({exc})") from exc
    mv = payload.get("model_version") if isinstance(payload, dict) else None
    if not isinstance(mv, dict):
        raise ArtifactResolutionError(f"{url}: no model_version in the answer")
    return {
        str(t.get("key")): str(t.get("value"))
        for t in mv.get("tags", [])
        if isinstance(t, dict) and "key" in t
    }


def _require_manifest(path: Path, what: str) -> Path:
    if not (path / MANIFEST_NAME).is_file():
        raise ArtifactResolutionError(f"{what}: {path} has no {MANIFEST_NAME}")
    return path


def open_verified_artifact(
    ref: str | Path, model: str, settings: ServingSettings
) -> tuple[Path, dict[str, Any]]:
    """Resolve ``ref`` for ``model``, verify every file's sha256 and io names, check its name.

    The one gate both loaders pass through, so a weakness artifact can never be opened as a
    generator (or the reverse) and no unverified file reaches an InferenceSession.
    """
    from serving.errors import ArtifactError
    from serving.manifest import verify_artifact

    artifact_dir = resolve_artifact(
        ref,
        model,
        artifact_root=settings.artifact_root,
        tracking_uri=settings.tracking_uri,
        http_timeout_s=settings.http_timeout_s,
    )
    manifest = verify_artifact(artifact_dir)
    _check_registry_seal(str(ref).strip(), manifest, artifact_dir, settings)
    if manifest.get("name") not in (model, f"ludora-{model}"):
        raise ArtifactError(
            f"{artifact_dir}: manifest name {manifest.get('name')!r} is not a {model} model"
        )
    return artifact_dir, manifest


def _check_registry_seal(
    ref: str, manifest: dict[str, Any], artifact_dir: Path, settings: ServingSettings
) -> None:
    """Served through an MLflow server: the manifest must be the one registered.

    Anyone who can write the store can recompute a manifest's digest after editing it; the
    registry version's ``ludora.manifest_sha256`` tag, written at registration, still holds the
    packaged one. (A version registered before manifests were sealed has no such tag.)
    """
    from serving.manifest import DIGEST_KEY

    uri = settings.tracking_uri
    if not ref.startswith("models:/") or not (uri and uri.startswith(("http://", "https://"))):
        return
    name, alias, version = parse_registry_uri(ref)
    tags = _rest_version_tags(uri, name, alias, version, settings.http_timeout_s)
    recorded = tags.get(f"ludora.{DIGEST_KEY}")
    if recorded is not None and recorded != manifest.get(DIGEST_KEY):
        raise ManifestError(
            f"{artifact_dir / MANIFEST_NAME}: {DIGEST_KEY} differs from the one registered for "
            f"{ref} ({recorded}); the manifest was rewritten after registration"
        )


class ArtifactIdentity:
    """``version`` and ``info()`` of a loaded, verified artifact (both model wrappers share it)."""

    model_name: str
    artifact_dir: Path
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.manifest.get("version"))

    def info(self) -> dict[str, Any]:
        """Identity of the loaded artifact, for ``GET /api/v1/ai/models``."""
        return {
            "name": str(self.manifest.get("name", self.model_name)),
            "version": self.version,
            "variant": self.manifest.get("variant"),
            "path": str(self.artifact_dir),
            "gates": self.manifest.get("gates"),
        }
