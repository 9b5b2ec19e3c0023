"""Which prompts the quantize stage scores variants on: template test records + unseen requests."""

from __future__ import annotations

from pipelines.quantize_generator import eval_records
from tests.fixtures.quantize import quantize_config


def test_eval_records_take_template_test_records_then_unseen_requests() -> None:
    test = [{"id": f"t{i}", "source": "templates" if i % 2 else "gsm8k"} for i in range(40)]
    unseen = [{"id": f"unseen-{i:04d}"} for i in range(30)]
    cfg = quantize_config(eval_samples=10, unseen_eval_samples=5)
    recs = eval_records(cfg, test, unseen)
    assert len(recs) == 15
    assert all(r["source"] == "templates" for r in recs[:10])
    assert all(r["id"].startswith("unseen-") for r in recs[10:])
    assert recs == eval_records(cfg, test, unseen)  # fixed seeds: promotion redraws the same
    none = eval_records(quantize_config(eval_samples=10, unseen_eval_samples=0), test, unseen)
    assert len(none) == 10
