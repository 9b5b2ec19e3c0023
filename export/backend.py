"""``ludora-ml export-backend``: the backend's drop-in directory from verified artifacts.

Writes, atomically (built in a temp sibling, renamed into place only when every gate passed):

- ``lightgbm_weakness_predictor.onnx``: calibrated probability and action level in-graph
  (:mod:`export.weakness_backend`), feature names and thresholds in ``metadata_props``;
- ``t5_small_word_problem.onnx``: one graph with the generation loop (:mod:`export.
  generation_graph`);
- ``tokenizer/``: ``tokenizer.json`` + the two small files ``transformers.AutoTokenizer`` needs;
- ``manifest.json``: sources (name, version, content sha256), every file's sha256 and size, io
  names with what each means, settings and both parity results.

Only artifacts that pass ``serving.store.open_verified_artifact`` (sha256 of every file, gates)
are read. Target safety: a missing or empty DIR, or a DIR holding exactly a previous export (its
manifest says so and nothing else is in it), is replaced; any other existing DIR is refused
unless ``force``, and then it is *moved aside* to ``DIR.replaced-<UTC time>``, never deleted.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.io import read_json
from export.draft_loop import bank_sequences
from export.generation_graph import (
    LOOP_IO_DOC,
    TRIE_INPUTS_DOC,
    GenerationParityError,
    GenerationSettings,
    build_loop_model,
    check_generation_parity,
    save_generation_model,
)
from export.weakness_backend import (
    OUTPUT_DOC,
    VIEW_INPUT,
    WEAKNESS_FILE,
    build_backend_weakness,
    calibration_views,
    run_backend_weakness,
)
from serving.backend import FORMAT, MANIFEST, TOKENIZER_DIR
from serving.generator import request_tries
from serving.one_file import one_file_session
from serving.onnx_files import ONE_FILE_NAME, WEAKNESS_MODEL_FILE
from serving.roles import SKELETONS_FILE, TYPED_FILES

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
OWN_ENTRIES = frozenset({WEAKNESS_FILE, ONE_FILE_NAME, TOKENIZER_DIR, MANIFEST})
POST_PROCESSING = "serving.realize.render_output(decoded, keywords, topic=, prompt_prefix=, seed=)"
PROMPT_FORMAT = "serving.prompt.format_prompt(topic, keywords, prompt_prefix)"


class BackendExportError(RuntimeError):
    """The target is unsafe to write, an input is missing, or a parity gate failed."""


@dataclass(frozen=True)
class BackendExportConfig:
    """What to export, where, and the data the two parity gates run on."""

    to: Path
    weakness_ref: str = "champion"
    generator_ref: str = "champion"
    force: bool = False
    features_test: Path | None = None  # outputs/features/test.parquet
    prompts_file: Path | None = None  # outputs/text/test.jsonl ("prompt" field)
    max_prompts: int | None = None  # None: every prompt of the file
    max_new_tokens: int | None = None  # None: the artifact's generation_config
    weakness_atol: float = 1e-6
    # Try the fused step first (ORT contrib ops: SkipSimplifiedLayerNormalization, one q/k/v
    # MatMul, GroupQueryAttention / MultiHeadAttention; 37 kernels a step against the exact
    # step's 59, docs/benchmarks.md), falling back to the exact lean step when its ids differ
    # (the gate).
    fused_attention: bool = True


def target_action(to: Path, *, force: bool) -> str:
    """``create`` / ``replace`` (empty or our own previous export) / ``move_aside`` (forced).

    Raises BackendExportError for a file, or a foreign non-empty directory without ``force``.
    """
    if to.is_symlink() or (to.exists() and not to.is_dir()):
        raise BackendExportError(f"--to {to}: exists and is not a directory; refusing to touch it")
    if not to.exists():
        return "create"
    entries = {p.name for p in to.iterdir()}
    if not entries:
        return "replace"
    own = False
    if entries <= OWN_ENTRIES and MANIFEST in entries:
        try:
            own = json.loads((to / MANIFEST).read_text()).get("format") == FORMAT
        except (OSError, ValueError, AttributeError):
            own = False
    if own:
        return "replace"
    if not force:
        raise BackendExportError(
            f"--to {to}: a non-empty directory that is not a previous export-backend output "
            f"(holds {sorted(entries)[:5]}); choose another DIR, or --force to move it aside"
        )
    return "move_aside"


def _file_entries(root: Path) -> dict[str, dict[str, Any]]:
    from serving.manifest import file_entry

    return {
        str(p.relative_to(root)): file_entry(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def _source(artifact_dir: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": manifest.get("name"),
        "version": manifest.get("version"),
        "variant": manifest.get("variant"),
        "content_sha256": manifest.get("content_sha256"),
        "artifact_dir": str(artifact_dir),
        "mlflow_run_id": manifest.get("mlflow_run_id"),
        "git_commit": manifest.get("git_commit"),
    }


def _artifact_json(path: Path) -> Any:
    return read_json(path, missing="required artifact file missing", error=BackendExportError)


# ---------------------------------------------------------------------------------- weakness


def weakness_parity(
    session: Any, reference: Any, rows: np.ndarray, *, atol: float
) -> dict[str, Any]:
    """One-file probabilities vs the HTTP app's (``WeaknessModel.predict_features`` + clip).

    Every view of a per-view calibration is checked on all rows, and the default (no view).
    """
    views = calibration_views(reference.calibration)
    worst: dict[str, float] = {}
    for k, view in [(None, None), *enumerate(views)]:
        want = reference.predict_features(rows, [view] * len(rows)) if view else None
        if want is None:
            want = reference.predict_features(rows)
        want = np.clip(want, 0.0, 1.0)
        got, _ = run_backend_weakness(session, rows, None if k is None else [k] * len(rows))
        diff = float(np.max(np.abs(got - want), initial=0.0))
        worst[view or "default"] = diff
        if not diff <= atol:
            i = int(np.argmax(np.abs(got - want)))
            raise BackendExportError(
                f"weakness parity: one-file probability differs from the HTTP app's by "
                f"{diff:.3g} > {atol:g} (view {view or 'default'}, row {i}: app {want[i]:.9f}, "
                f"one-file {got[i]:.9f})"
            )
    return {"n_rows": len(rows), "atol": atol, "max_abs_diff": worst}


def export_weakness(
    artifact_dir: Path, manifest: Mapping[str, Any], out_dir: Path, cfg: BackendExportConfig
) -> dict[str, Any]:
    """Write the backend weakness graph and gate it; returns its manifest section."""
    import onnx

    from serving.weakness import load_weakness
    from serving.weakness_post import validate_calibration

    spec = _artifact_json(artifact_dir / "feature_spec.json")
    calibration = _artifact_json(artifact_dir / "calibration.json")
    validate_calibration(calibration)
    levels = _artifact_json(artifact_dir / "thresholds.json")
    model = build_backend_weakness(
        onnx.load(str(artifact_dir / WEAKNESS_MODEL_FILE)),
        spec=spec,
        calibration=calibration,
        thresholds=levels["thresholds"],
        labels=levels["labels"],
        probability_output=str(manifest.get("probability_output", "probabilities")),
        probability_column=int(manifest.get("probability_column", 1)),
        extra_metadata={
            "source_version": str(manifest.get("version")),
            # serving.backend recomputes features from a request with this spec (peer table,
            # pass mark, windows) and reads the training topics / aliases like serving does.
            "feature_spec": json.dumps(spec, sort_keys=True),
            "topics": manifest.get("topics"),
            "topic_aliases": manifest.get("topic_aliases"),
        },
    )
    path = out_dir / WEAKNESS_FILE
    onnx.save(model, str(path))
    session = one_file_session(path)
    parity: dict[str, Any] = {"skipped": "no --features-test file"}
    if cfg.features_test is not None:
        import pandas as pd

        if not cfg.features_test.is_file():
            raise BackendExportError(f"{cfg.features_test}: test features not found")
        table = pd.read_parquet(cfg.features_test, columns=list(spec["names"]))
        rows = table.to_numpy(dtype=np.float32)
        parity = weakness_parity(session, load_weakness(artifact_dir), rows, atol=cfg.weakness_atol)
        logger.info("weakness parity: %s", parity["max_abs_diff"])
    views = calibration_views(calibration)
    inputs = {
        spec["input_name"]: f"float32 [N, {len(spec['names'])}]: feature rows, columns in "
        "metadata feature_names order (core.online.request_features)",
    }
    if views:
        inputs[VIEW_INPUT] = (
            "int64 [N] or [1], optional (default -1): position of the row's request view in "
            "metadata calibration_views (serving.weakness.request_views); -1 or unknown = "
            "the top-level calibration"
        )
    return {
        "file": WEAKNESS_FILE,
        "source": _source(artifact_dir, manifest),
        "inputs": inputs,
        "outputs": OUTPUT_DOC,
        "feature_names": list(spec["names"]),
        "action_thresholds": list(levels["thresholds"]),
        "action_labels": list(levels["labels"]),
        "calibration_views": views,
        "parity": parity,
    }


# ---------------------------------------------------------------------------------- generator


def read_prompt_records(path: Path, limit: int | None) -> list[dict[str, Any]]:
    """Every JSONL record with its ``prompt`` (the evaluation prompts; ``topic`` and
    ``keywords`` too when the records have them)."""
    if not path.is_file():
        raise BackendExportError(f"{path}: evaluation prompts not found (give --prompts FILE)")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            record["prompt"] = str(record["prompt"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendExportError(f"{path}:{n}: no 'prompt' field ({exc})") from exc
        records.append(record)
    return records[:limit] if limit else records


def read_prompts(path: Path, limit: int | None) -> list[str]:
    """The ``prompt`` field of every JSONL record (the evaluation prompts)."""
    return [r["prompt"] for r in read_prompt_records(path, limit)]


def write_tokenizer_dir(tokenizer_json: Path, settings: GenerationSettings, out: Path) -> None:
    """``tokenizer.json`` plus the config files ``AutoTokenizer.from_pretrained(out)`` reads."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    names = {
        "pad_token": tok.id_to_token(settings.pad_token_id),
        "eos_token": tok.id_to_token(settings.eos_token_id),
        "unk_token": tok.id_to_token(2),
    }
    names = {k: v for k, v in names.items() if v is not None}
    out.mkdir()
    shutil.copy2(tokenizer_json, out / "tokenizer.json")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1024, **names}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(names, indent=2) + "\n")


def export_generator(
    artifact_dir: Path, manifest: Mapping[str, Any], out_dir: Path, cfg: BackendExportConfig
) -> dict[str, Any]:
    """Write the one-file generator + tokenizer and gate it; returns its manifest section."""
    from serving.decode_loop import OnnxSeq2SeqGenerator

    gen_cfg = _artifact_json(artifact_dir / "generation_config.json")
    settings = GenerationSettings.from_config(gen_cfg)
    doc = f"ludora generator v{manifest.get('version')}"
    path = out_dir / ONE_FILE_NAME
    write_tokenizer_dir(artifact_dir / "tokenizer.json", settings, out_dir / TOKENIZER_DIR)
    for name in TYPED_FILES:  # a typed-role model: its noun lexicon and role plans too
        if (artifact_dir / name).is_file():
            shutil.copy2(artifact_dir / name, out_dir / TOKENIZER_DIR / name)
    parity: dict[str, Any] = {"skipped": "no --prompts file"}
    if cfg.prompts_file is None:
        # Without the gate, ship the step that repeats optimum's arithmetic node for node.
        save_generation_model(build_loop_model(artifact_dir, settings, doc=doc), path)
    else:
        records = read_prompt_records(cfg.prompts_file, cfg.max_prompts)
        prompts = [r["prompt"] for r in records]
        reference = OnnxSeq2SeqGenerator(artifact_dir, intra_op_num_threads=1)
        ids = [reference.encode(p) for p in prompts]
        tries = request_tries(artifact_dir, reference.encode, records)
        n_new = cfg.max_new_tokens or settings.max_new_tokens
        # Candidates in order (fused attention only when asked; drafting from the skeleton
        # bank where the weights allow it), the exact lean step last; the first whose greedy
        # ids equal the Python loop's on every prompt ships.
        failures: list[str] = []
        constrained: dict[str, Any] = {}
        candidates: list[tuple[str, bool, list[list[int]] | None]] = []
        if cfg.fused_attention:
            bank = bank_sequences(artifact_dir, eos=settings.eos_token_id)
            if bank:
                candidates.append(("draft loop", True, bank))
            candidates.append(("fused attention", True, None))
        candidates.append(("exact lean step", False, None))
        while candidates:
            label, fused, draft = candidates.pop(0)
            model = build_loop_model(
                artifact_dir, settings, doc=doc, fused_attention=fused, draft=draft
            )
            built = {p.key: p.value for p in model.metadata_props}.get("step", "")
            if draft is not None and not built.endswith("+draft"):
                # int8 weights cannot draft: the graph built is the next candidate's, the fused
                # step, so it is gated as that one (not built twice)
                label, fused, _ = candidates.pop(0)
            save_generation_model(model, path)
            try:
                session = one_file_session(path)
                report = check_generation_parity(
                    session, reference, ids, max_new_tokens=n_new, prompts=prompts
                )
                if tries is not None:  # and as the app decodes: within the skeleton bank
                    banked = check_generation_parity(
                        session, reference, ids, max_new_tokens=n_new, prompts=prompts, tries=tries
                    )
                    constrained = banked.as_dict()
            except GenerationParityError as exc:
                if not fused:
                    raise BackendExportError(
                        "; ".join([*failures, f"exact lean step: {exc}"])
                    ) from exc
                failures.append(f"{label}: {exc}")
                logger.warning("%s graph failed the gate; trying the next candidate", label)
                continue
            break
        step = {p.key: p.value for p in model.metadata_props}.get("step")
        parity = {
            **report.as_dict(),
            **({"bank_constrained": constrained} if tries is not None else {}),
            "prompts_file": str(cfg.prompts_file),
            "step": step,
            "rejected": failures,
        }
    return {
        "file": ONE_FILE_NAME,
        "source": _source(artifact_dir, manifest),
        "inputs": {
            **LOOP_IO_DOC["inputs"],
            **(TRIE_INPUTS_DOC if (artifact_dir / SKELETONS_FILE).is_file() else {}),
        },
        "outputs": LOOP_IO_DOC["outputs"],
        "generation": {
            "decoder_start_token_id": settings.decoder_start_token_id,
            "eos_token_id": settings.eos_token_id,
            "pad_token_id": settings.pad_token_id,
            "max_new_tokens": settings.max_new_tokens,
            "search": "greedy: argmax per step in a standard ONNX Loop",
        },
        "tokenizer": f"{TOKENIZER_DIR}/",
        "prompt_format": PROMPT_FORMAT,
        "post_processing": POST_PROCESSING,
        "parity": parity,
    }


# ---------------------------------------------------------------------------------- command


def export_backend(cfg: BackendExportConfig, settings: Any = None) -> dict[str, Any]:
    """Resolve and verify both artifacts, write the drop-in directory, return its manifest."""
    import onnxruntime as ort

    from core.atomic import atomic_path
    from serving.settings import ServingSettings
    from serving.store import open_verified_artifact

    to = Path(cfg.to)
    action = target_action(to, force=cfg.force)  # before any work: refuse early
    settings = settings or ServingSettings.from_env()
    w_dir, w_man = open_verified_artifact(cfg.weakness_ref, "weakness", settings)
    g_dir, g_man = open_verified_artifact(cfg.generator_ref, "generator", settings)
    with atomic_path(to) as tmp:
        tmp.mkdir()
        weakness = export_weakness(w_dir, w_man, tmp, cfg)
        generator = export_generator(g_dir, g_man, tmp, cfg)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "onnxruntime": ort.__version__,
            "weakness": weakness,
            "generator": generator,
            "files": _file_entries(tmp),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        # Re-check at commit time: the directory may have changed while we built.
        action = target_action(to, force=cfg.force)
        if action == "move_aside":
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            aside = to.with_name(f"{to.name}.replaced-{stamp}")
            to.rename(aside)
            logger.warning("--force: moved the existing %s aside to %s", to, aside)
            manifest["replaced_dir_moved_to"] = str(aside)
    logger.info("export-backend: wrote %s (%s)", to, action)
    return manifest


def summarize(manifest: Mapping[str, Any]) -> Sequence[str]:
    """Short lines for the CLI: sources and parity."""
    w, g = manifest["weakness"], manifest["generator"]
    return [
        f"weakness v{w['source']['version']} -> {w['file']} (parity {w['parity']})",
        f"generator v{g['source']['version']} -> {g['file']} (parity "
        f"{ {k: v for k, v in g['parity'].items() if k != 'mismatched'} })",
    ]
