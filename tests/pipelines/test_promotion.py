"""Promotion against a real MLflow registry (temporary SQLite store) and rollback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipelines.package import package_candidate, register_version, weakness_candidate
from tests.fixtures.store import fresh_tracking_uri
from tests.fixtures.weakness import make_weakness_export
from training.packaging import promotion as pr
from training.packaging import registry as reg


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A private registry, artifact store and test table; returns a `package(noise)` helper."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_tracking_uri(tmp_path))
    root = tmp_path / "artifacts"
    test_file = tmp_path / "test.parquet"

    def package(noise: float) -> int:
        src = tmp_path / f"onnx-{noise}"
        src.mkdir()
        df = make_weakness_export(src, noise=noise)
        df.to_parquet(test_file, index=False)  # same rows whatever the noise
        result = package_candidate(weakness_candidate(src, auc_floor=0.5), root)
        register_version(root / "weakness" / str(result["version"]), experiment="t")
        return int(result["version"])

    return root, test_file, package


def _promote(root, test_file, floor=0.5, **kw):
    rules = {"auc": pr.MetricRule(threshold=floor, min_relative_change=0.0)}
    return pr.promote(
        "weakness",
        artifacts_root=root,
        rules=rules,
        evaluate=pr.weakness_evaluator(test_file),
        **kw,
    )


def _champion(root):
    from mlflow import MlflowClient

    mv = MlflowClient().get_model_version_by_alias("ludora-weakness", "champion")
    aliases = json.loads((root / "weakness/aliases.json").read_text())
    assert aliases["champion"] == int(mv.tags["ludora.version"])  # mirror agrees
    return int(mv.tags["ludora.version"])


def test_first_candidate_is_promoted_iff_its_floors_pass(env):
    root, test_file, package = env
    v1 = package(0.0)
    refused = _promote(root, test_file, floor=0.999)
    assert not refused.passed and not refused.promoted and refused.champion is None
    assert any("auc" in r for r in refused.reasons)
    assert reg.current_champion(reg.client(), "ludora-weakness") is None
    accepted = _promote(root, test_file, floor=0.5)
    assert accepted.passed and accepted.promoted
    assert _champion(root) == v1


def test_refuses_worse_accepts_better_and_rollback_restores(env):
    root, test_file, package = env
    v1 = package(0.2)
    assert _promote(root, test_file).promoted
    v2 = package(0.4)  # trained on noisier labels: worse on held-out data (AUC ~0.75)
    worse = _promote(root, test_file)
    assert not worse.passed and not worse.promoted
    assert worse.candidate_metrics["auc"] < worse.champion_metrics["auc"]
    assert any("auc" in r for r in worse.reasons)
    assert _champion(root) == v1
    v3 = package(0.0)
    thresholds = root / "weakness" / str(v3) / "thresholds.json"
    original = thresholds.read_bytes()
    thresholds.write_bytes(original.replace(b"0.3", b"0.4"))
    tampered = _promote(root, test_file)
    assert not tampered.promoted and any("thresholds.json: sha256" in r for r in tampered.reasons)
    thresholds.write_bytes(original)
    dry = _promote(root, test_file, dry_run=True)
    assert dry.passed and not dry.promoted and _champion(root) == v1
    better = _promote(root, test_file)
    assert better.promoted and better.champion == v1 and better.candidate == v3
    assert _champion(root) == v3
    assert v2 == 2
    assert pr.rollback("weakness", artifacts_root=root) == (v3, v1)
    assert _champion(root) == v1
    aliases = json.loads((root / "weakness/aliases.json").read_text())
    assert aliases["history"] == [v1]
    with pytest.raises(pr.PromotionError, match="no previous champion"):
        pr.rollback("weakness", artifacts_root=root)


def test_a_forged_manifest_is_refused_before_evaluation(env):
    """Resealing the edited manifest does not help: the registry recorded the digest."""
    from serving.manifest import seal

    root, test_file, package = env
    v1 = package(0.0)
    path = root / "weakness" / str(v1) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["gates"][0]["value"] = 0.99
    path.write_text(json.dumps(seal(manifest)))
    forged = _promote(root, test_file)
    assert not forged.passed and not forged.promoted
    assert forged.candidate_metrics == {}  # refused before anything was evaluated
    assert any("differs from the one registered" in r for r in forged.reasons), forged.reasons
    assert reg.current_champion(reg.client(), "ludora-weakness") is None


def test_a_flipped_byte_is_refused_without_evaluating_it(env):
    root, test_file, package = env
    v1 = package(0.0)
    model = root / "weakness" / str(v1) / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    refused = _promote(root, test_file)
    assert not refused.promoted and refused.candidate_metrics == {}
    assert [r for r in refused.reasons if "model.onnx: sha256" in r]


def test_cli_promote_exits_1_when_refused(env, monkeypatch, declare_stage_paths):
    import pipelines.package as pkg
    from pipelines.cli import app

    root, test_file, package = env
    monkeypatch.setattr(pkg, "ARTIFACTS_ROOT", root)
    declare_stage_paths("package", features_test=test_file)
    package(0.2)
    runner = CliRunner()
    ok = runner.invoke(app, ["promote", "--model", "weakness"])
    assert ok.exit_code == 0, ok.output
    assert "promoted" in ok.output
    package(0.4)
    refused = runner.invoke(app, ["promote", "--model", "weakness"])
    assert refused.exit_code == 1
    assert "refused" in refused.output and "auc" in refused.output
    missing = runner.invoke(app, ["promote", "--model", "weakness", "--version", "9"])
    assert missing.exit_code == 1
    nothing = runner.invoke(app, ["rollback", "--model", "weakness"])
    assert nothing.exit_code == 1  # one champion so far: nothing to roll back to
    package(0.0)
    assert runner.invoke(app, ["promote", "--model", "weakness", "--version", "3"]).exit_code == 0
    back = runner.invoke(app, ["rollback", "--model", "weakness"])
    assert back.exit_code == 0 and "from v3 to v1" in back.output


def test_rules_from_params_and_mlflow_semantics():
    gates = {"weakness": {"auc_floor": 0.7, "promotion": {"auc": {"min_relative_change": 0.0}}}}
    rules = pr.rules_from_params(gates, "weakness")
    assert rules["auc"].threshold == 0.7 and rules["auc"].min_relative_change == 0.0
    assert pr.validate({"auc": 0.8}, {"auc": 0.8}, rules) == []  # holds
    assert pr.validate({"auc": 0.8}, None, rules) == []  # no champion: floor only
    assert pr.validate({"auc": 0.79}, {"auc": 0.8}, rules)  # worse
    assert pr.validate({"auc": 0.6}, None, rules)  # below the floor
    abs_rule = {"logloss": pr.MetricRule(greater_is_better=False, min_absolute_change=0.01)}
    assert pr.validate({"logloss": 0.40}, {"logloss": 0.45}, abs_rule) == []
    assert pr.validate({"logloss": 0.445}, {"logloss": 0.45}, abs_rule)
    with pytest.raises(ValueError, match="min_absolute_change"):
        pr.rules_from_params(
            {"weakness": {"promotion": {"auc": {"min_absolute_change": 0}}}}, "weakness"
        )


def test_cli_rollback_on_a_new_registry_is_one_line(tmp_path, monkeypatch):
    """One line, not an 87-line MlflowException traceback, on a registry never used."""
    import pipelines.package as pkg
    from pipelines.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_tracking_uri(tmp_path))
    monkeypatch.setattr(pkg, "ARTIFACTS_ROOT", tmp_path / "artifacts")
    result = CliRunner().invoke(app, ["rollback", "--model", "weakness"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "no previous champion" in lines[0] and "no champion yet" in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "artifacts").exists()  # a refused rollback creates nothing


def test_generator_floors_on_served_rates_survive_a_re_evaluation(tmp_path):
    """New held-out data (a changed skeleton bank) forces a re-evaluation that does not
    measure the served policy: the candidate's served rates still come from its manifest."""
    from serving.manifest import REQUIRED_KEYS, SCHEMA_VERSION

    def manifest(name, data, metrics):
        d = tmp_path / name
        d.mkdir()
        doc = {k: "x" for k in REQUIRED_KEYS} | {
            "schema_version": SCHEMA_VERSION,
            "files": {"a": {}},
            "eval_data": data,
            "metrics": metrics,
        }
        (d / "manifest.json").write_text(json.dumps(doc))
        return d

    cand = manifest("cand", "new", {"served_role_fit": 1.0, "keyword_coverage": 0.1})
    champ = manifest("champ", "old", {"served_role_fit": 0.9, "keyword_coverage": 0.2})
    evaluate = pr.generator_evaluator(lambda d: {"keyword_coverage": 0.5 if d == cand else 0.4})
    c, h = evaluate(cand, champ)
    assert c == {"served_role_fit": 1.0, "keyword_coverage": 0.5}
    assert h == {"served_role_fit": 0.9, "keyword_coverage": 0.4}
