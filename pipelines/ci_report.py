"""The CI report: what a reviewer of a change reads (job summary, PR comment).

The promotion decision with its reasons and both models' metrics, every gate with its
threshold and value, ``dvc metrics diff`` / ``dvc params diff`` against the base branch, and
the generator's blind-rating sample when it changed. Rendering is pure (:func:`render_report`);
:func:`collect_diffs` asks DVC and git.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.common import atomic_write_text
from training.packaging.transfer import dvc_exe, run_cmd

RUBRIC_PATHS = ("eval/rubric", "docs/generator_eval.md")
HEADLINE_FILES = (paths.WEAKNESS_METRICS, paths.GENERATOR_METRICS, paths.QUANTIZE_METRICS)


def _git(root: Path, *args: str) -> str:
    proc = run_cmd(["git", *args], cwd=root, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def base_ref(root: Path, wanted: str | None) -> str | None:
    """The ref to diff against: ``wanted``, else origin/main, else main (None: none exists)."""
    for ref in [wanted] if wanted else ["origin/main", "main"]:
        if ref and _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"):
            return ref
    return None


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return "-" if x is None else str(x)


def decision_md(d: Any) -> list[str]:
    """Markdown lines for one decision: verdict, reasons, candidate vs champion metrics."""
    champ = "none" if d.champion is None else f"v{d.champion}"
    if d.promoted:
        verdict = "**promoted**"
    elif d.passed:
        verdict = f"passes ({d.note or 'not moved'})"
    else:
        verdict = "**refused**" + (f" ({d.note})" if d.note else "")
    cand = f"v{d.candidate}" if d.candidate else "none"
    lines = [f"### {d.model}: candidate {cand} vs champion {champ}: {verdict}", ""]
    if d.reasons:
        lines += [*(f"- {r}" for r in d.reasons), ""]
    if d.candidate_metrics:
        lines += ["| metric | candidate | champion | change |", "|---|---|---|---|"]
        for k in sorted(d.candidate_metrics):
            c = d.candidate_metrics[k]
            h = (d.champion_metrics or {}).get(k)
            delta = c - h if isinstance(c, int | float) and isinstance(h, int | float) else None
            lines.append(f"| {k} | {_fmt(c)} | {_fmt(h)} | {_fmt(delta)} |")
    return [*lines, ""]


def _gate_row(model: str, g: Mapping[str, Any]) -> str:
    ok = g.get("passed", g.get("pass"))
    return (
        f"| {model} | {g['name']} | {_fmt(g.get('threshold'))} | "
        f"{_fmt(g.get('value'))} | {'pass' if ok else '**fail**'} |"
    )


def gates_md(package_report: Mapping[str, Any]) -> list[str]:
    """A line per model, the failed gates, then every gate with threshold and value (folded).

    The weakness model alone has ~35 gates (parity, and per request view): the failures are
    what a reviewer needs first.
    """
    head = ["| model | gate | threshold | value | result |", "|---|---|---|---|---|"]
    summary, failed, every = [], [], []
    for model, rec in package_report.items():
        gates = list(rec.get("gates", []))
        bad = [g for g in gates if not g.get("passed", g.get("pass"))]
        state = "all pass" if not bad else f"{len(bad)} failed"
        summary.append(f"- {model}: {len(gates)} gates, {state} (package: {rec.get('status')})")
        failed += [_gate_row(model, g) for g in bad]
        every += [_gate_row(model, g) for g in gates]
    lines = [*summary, ""]
    if failed:
        lines += [*head, *failed, ""]
    if every:
        lines += ["<details><summary>Every gate</summary>", "", *head, *every, "", "</details>"]
    return lines


def _headline(path: str, name: str) -> bool:
    """The model metrics a reviewer reads first; the rest (data, per view) stay in the details."""
    if path not in HEADLINE_FILES:
        return False
    return "." not in name or name.startswith("served.")


def metrics_md(diff: Mapping[str, Any], against: str) -> list[str]:
    """Headline table of ``dvc metrics diff --json``: the models' numeric metrics that changed."""
    rows = []
    for path, metrics in sorted(diff.items()):
        for name, d in sorted(metrics.items()):
            if not _headline(path, name) or not isinstance(d.get("new", d.get("old")), int | float):
                continue
            rows.append(
                f"| {path} | {name} | {_fmt(d.get('old'))} | {_fmt(d.get('new'))} | "
                f"{_fmt(d.get('diff'))} |"
            )
    if not rows:
        return ["No metric changed."]
    return [f"| file | metric | {against} | this run | change |", "|---|---|---|---|---|", *rows]


def params_md(diff: Mapping[str, Any], against: str) -> list[str]:
    """``dvc params diff --json`` as a table (every changed parameter)."""
    rows = [
        f"| {path} | {name} | {_fmt(d.get('old'))} | {_fmt(d.get('new'))} |"
        for path, params in sorted(diff.items())
        for name, d in sorted(params.items())
    ]
    if not rows:
        return ["No parameter changed."]
    return [f"| file | param | {against} | this run |", "|---|---|---|---|", *rows]


@dataclasses.dataclass(frozen=True)
class Diffs:
    """What changed against the base branch (DVC's own diffs, and the rubric sample)."""

    metrics: dict[str, Any]
    metrics_table: str  # `dvc metrics diff --md`, every changed metric
    params: dict[str, Any]
    rubric_changes: list[str]
    rubric_shares: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def render_report(
    *,
    mode: str,
    commit: str,
    base: str | None,
    stores: Sequence[str],
    decisions: Sequence[Any],
    package_report: Mapping[str, Any],
    diffs: Diffs,
) -> str:
    """The markdown report: stores, decisions, gates, metric and param diffs, blind rating."""
    against = base or "(no base branch found)"
    lines = [f"# ludora-ml CI: {mode} run of {commit[:12] or 'a workspace'} vs {against}", ""]
    lines += [f"- {s}" for s in stores]
    if mode == "smoke":
        lines.append("- smoke parameters (lowered floors): compared with the champion only")
    lines += ["", "## Promotion", ""]
    for d in decisions:
        lines += decision_md(d)
    if not decisions:
        lines += ["No candidate (package.models packaged nothing).", ""]
    lines += ["## Gates", "", *gates_md(package_report), ""]
    lines += [f"## Metrics vs {against}", "", *metrics_md(diffs.metrics, against), ""]
    if diffs.metrics_table.strip():
        lines += [
            "<details><summary>Every changed metric (dvc metrics diff --md)</summary>",
            "",
            diffs.metrics_table.strip(),
            "",
            "</details>",
            "",
        ]
    lines += [f"## Params vs {against}", "", *params_md(diffs.params, against), ""]
    lines += ["## Generator blind rating", ""]
    if diffs.rubric_changes:
        lines += ["Changed since the base (rate or review the sample):", ""]
        lines += [f"- `{p}`" for p in diffs.rubric_changes]
        lines += ["", *rubric_md(diffs.rubric_shares)] if diffs.rubric_shares else []
    else:
        lines.append(f"Unchanged since {against}.")
    return "\n".join(lines) + "\n"


def rubric_md(shares: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Shares of each criterion per rated sample (``training.rubric_sample.summarize``)."""
    criteria = sorted({k for s in shares.values() for k in s if k != "n"})
    lines = [f"| sample | n | {' | '.join(criteria)} |", "|---" * (len(criteria) + 2) + "|"]
    for name, s in sorted(shares.items()):
        cells = " | ".join(_fmt(s.get(c)) for c in criteria)
        lines.append(f"| {name} | {s.get('n')} | {cells} |")
    return lines


def rated_samples(root: Path, changed: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The rated rubric samples among the changed files (unrated ones are listed only)."""
    from training.rubric_sample import summarize

    shares = {}
    for folder in sorted({Path(c).parent for c in changed if c.startswith("eval/rubric/")}):
        if any((root / folder).glob("ratings*.json")):
            shares[folder.name] = summarize(root / folder)
    return shares


def collect_diffs(root: Path, base: str | None) -> Diffs:
    """``dvc metrics diff`` / ``dvc params diff`` and the changed rubric files vs ``base``."""
    if base is None:
        return Diffs({}, "", {}, [])

    def dvc_json(*args: str) -> dict[str, Any]:
        out = run_cmd([dvc_exe(), *args, base, "--json"], cwd=root).stdout.strip()
        return dict(json.loads(out or "{}"))

    table = run_cmd([dvc_exe(), "metrics", "diff", base, "--md"], cwd=root).stdout
    changed = [
        c for c in _git(root, "diff", "--name-only", base, "--", *RUBRIC_PATHS).splitlines() if c
    ]
    return Diffs(
        dvc_json("metrics", "diff"),
        table,
        dvc_json("params", "diff"),
        changed,
        rated_samples(root, changed),
    )


def write_report(text: str, path: Path, env: Mapping[str, str]) -> None:
    """The report as a file (for a PR comment) and in the job summary when there is one."""
    atomic_write_text(path, text)
    summary = env.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text)
