"""Tiny inline word-problem data, tokenizer and T5 for the generator tests (no files needed)."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NAMES = ["tom", "ana", "li", "sam"]
THINGS = ["apples", "pens", "cards", "books"]


def make_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Template records with the prepare_text fields (prompt/target in the shared format)."""
    from serving.prompt import format_prompt, format_target

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        problem = f"{name} has {a} {thing} and gets {b} more . how many {thing} now ?"
        equation = f"{a} + {b}"
        out.append(
            {
                "topic": "addition",
                "keywords": [name, thing],
                "prompt_prefix": "",
                "problem": problem,
                "equation": equation,
                "answer": a + b,
                "prompt": format_prompt("addition", [name, thing]),
                "target": format_target(problem, equation),
            }
        )
    return out


def make_tokenizer(records: list[dict[str, Any]]) -> Any:
    """A WordLevel tokenizer with T5 ids (pad 0, eos 1, unk 2) wrapped for transformers."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"])
    texts = [r["prompt"] for r in records] + [r["target"] for r in records]
    texts += [str(d) for d in range(20)]
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: tiny ops on a shared, loaded machine thrash with more."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


TINY_T5 = {
    "d_model": 32,
    "d_ff": 64,
    "d_kv": 8,
    "num_layers": 1,
    "num_decoder_layers": 1,
    "num_heads": 2,
    "dropout_rate": 0.0,
}


def tiny_model(tokenizer: Any, seed: int = 0, **overrides: Any) -> Any:
    """A random-init tiny T5 built through the stage's own ``build_model``."""
    import torch

    from training.generator import SCRATCH, build_model

    torch.manual_seed(seed)
    return build_model(SCRATCH, model_config={**TINY_T5, **overrides}, tokenizer=tokenizer).eval()


def write_text_dir(root: Path, n_train: int = 48, n_eval: int = 8) -> Path:
    """outputs/text-like dir: {train,val,test,test_unseen}.jsonl + tokenizer/; returns the dir."""
    from serving.prompt import format_prompt

    root.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": make_records(n_train, seed=1),
        "val": make_records(n_eval, seed=2),
        "test": make_records(n_eval, seed=3),
    }
    for name, recs in splits.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    unseen = [
        {
            "id": f"unseen-{i:04d}",
            "topic": "addition",
            "keywords": [kw],
            "prompt_prefix": "",
            "prompt": format_prompt("addition", [kw]),
            "keyword_sources": ["list"],
        }
        for i, kw in enumerate(["walruses", "igloo", "kazoos"])
    ]
    (root / "test_unseen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in unseen))
    make_tokenizer(splits["train"]).save_pretrained(str(root / "tokenizer"))
    return root


def quick_train(model: Any, tok: Any, recs: list[dict[str, Any]], epochs: int = 4) -> Any:
    """A few optimiser steps so greedy outputs are varied tokens, not one repeated id."""
    from training.generator import encode_records, train

    enc = encode_records(tok, recs, max_source_len=64, max_target_len=64)
    with one_thread():
        train(
            model,
            enc,
            enc,
            epochs=epochs,
            batch_size=8,
            learning_rate=1e-2,
            weight_decay=0.0,
            warmup_ratio=0.0,
            max_grad_norm=1.0,
            patience=0,
            seed=0,
            pad_id=int(tok.pad_token_id),
        )
    return model


def save_checkpoint_dir(
    path: Path, *, seed: int = 0, max_new_tokens: int = 16, train_epochs: int = 4, **overrides: Any
) -> tuple[Any, Any, list[dict[str, Any]]]:
    """A saved tiny checkpoint (model + tokenizer + generation config) like train_generator's."""
    from training.generator import save_checkpoint

    recs = make_records(32, seed=seed)
    tok = make_tokenizer(recs)
    model = tiny_model(tok, seed=seed, **overrides)
    if train_epochs:
        quick_train(model, tok, recs, epochs=train_epochs)
    save_checkpoint(
        model,
        tok,
        path,
        max_new_tokens=max_new_tokens,
        training_config={"max_source_len": 64, "max_new_tokens": max_new_tokens},
    )
    return model, tok, recs
