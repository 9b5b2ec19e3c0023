"""T5 word-problem generator: build or load the model, train it with a plain torch loop, generate.

The stage ``pipelines.train_generator`` wires these pure-ish functions together. A clean loop
(rather than ``Seq2SeqTrainer``) keeps the dependency set small (no ``accelerate``) and makes the
best-on-validation checkpoint and the loss curve explicit. Heavy imports stay inside functions.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCRATCH = "scratch"


@dataclass
class EncodedSplit:
    """Token ids of one split: encoder inputs and decoder labels (both end with eos)."""

    sources: list[list[int]]
    targets: list[list[int]]

    def __len__(self) -> int:
        return len(self.sources)


@dataclass
class TrainHistory:
    """What the loop learned: per-step train loss, per-epoch val loss, the best epoch."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    epoch_train_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    seconds: float = 0.0
    # Where the loop's time goes (seconds): batching, forward, backward, optimizer, validation.
    time_s: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("collate", "forward", "backward", "optimizer", "validation"), 0.0
        )
    )

    @property
    def step_seconds(self) -> float:
        """Seconds spent in optimizer steps (everything but validation)."""
        return sum(v for k, v in self.time_s.items() if k != "validation")

    @property
    def steps_per_s(self) -> float:
        """Optimizer steps per second of step time (the budget's unit, docs/design.md)."""
        return len(self.steps) / self.step_seconds if self.step_seconds > 0 else 0.0

    def curve_rows(self, every: int = 1) -> list[dict[str, float | int | None]]:
        """Rows (step, train_loss, val_loss) for the DVC plot; val_loss only at epoch ends."""
        val_at = dict(zip(self.val_steps, self.val_loss, strict=True))
        rows: list[dict[str, float | int | None]] = []
        for i, (step, loss) in enumerate(zip(self.steps, self.train_loss, strict=True)):
            if i % every == 0 or step in val_at or i == len(self.steps) - 1:
                rows.append({"step": step, "train_loss": loss, "val_loss": val_at.get(step)})
        return rows


def special_ids(tokenizer: Any) -> dict[str, int]:
    """pad / eos / unk ids of a HF tokenizer; T5 convention: decoder starts with pad."""
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "unk_token_id": tokenizer.unk_token_id,
    }
    missing = [k for k in ("pad_token_id", "eos_token_id") if ids[k] is None]
    if missing:
        raise ValueError(f"tokenizer: special token(s) {missing} are not set")
    return {k: int(v) for k, v in ids.items() if v is not None}


def encode_text(tokenizer: Any, text: str, max_len: int) -> list[int]:
    """Token ids of ``text`` ending with exactly one eos, truncated to ``max_len``.

    Serving (``serving.decode_loop``) encodes prompts the same way, whether or not the tokenizer's
    post-processor already appends eos.
    """
    eos = int(tokenizer.eos_token_id)
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    if not ids or ids[-1] != eos:
        ids.append(eos)
    if len(ids) > max_len:
        ids = [*ids[: max_len - 1], eos]
    return ids


def encode_records(
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    *,
    max_source_len: int,
    max_target_len: int,
    where: str = "records",
) -> EncodedSplit:
    """Encode ``prompt`` and ``target`` of each record; errors name the record and field."""
    sources, targets = [], []
    for i, rec in enumerate(records):
        for key in ("prompt", "target"):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                raise ValueError(f"{where}[{i}].{key}: expected a non-empty string")
        sources.append(encode_text(tokenizer, rec["prompt"], max_source_len))
        targets.append(encode_text(tokenizer, rec["target"], max_target_len))
    return EncodedSplit(sources, targets)


def build_model(
    base_model: str,
    *,
    model_config: Mapping[str, Any],
    tokenizer: Any,
) -> Any:
    """A ``T5ForConditionalGeneration``: from ``model_config`` when ``base_model == 'scratch'``.

    Otherwise ``base_model`` is a hub id or a local checkpoint path loaded with
    ``from_pretrained`` (the only place a download can happen); its embeddings are resized when
    the tokenizer is larger than its vocabulary.
    """
    from transformers import T5Config, T5ForConditionalGeneration

    ids = special_ids(tokenizer)
    if base_model == SCRATCH:
        cfg = T5Config(
            vocab_size=len(tokenizer),
            decoder_start_token_id=ids["pad_token_id"],
            pad_token_id=ids["pad_token_id"],
            eos_token_id=ids["eos_token_id"],
            **dict(model_config),
        )
        model = T5ForConditionalGeneration(cfg)
    else:
        model = T5ForConditionalGeneration.from_pretrained(base_model)
        if len(tokenizer) > model.config.vocab_size:
            model.resize_token_embeddings(len(tokenizer))
        model.config.pad_token_id = ids["pad_token_id"]
        model.config.eos_token_id = ids["eos_token_id"]
        if model.config.decoder_start_token_id is None:
            model.config.decoder_start_token_id = ids["pad_token_id"]
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("generator model %s: %.2fM parameters", base_model, n_params / 1e6)
    return model


def _pad(seqs: Sequence[Sequence[int]], value: int) -> Any:
    import torch

    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def collate(
    sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], pad_id: int
) -> dict[str, Any]:
    """Padded batch; padded label positions are -100 so the loss ignores them."""
    input_ids = _pad(sources, pad_id)
    labels = _pad(targets, -100)
    return {
        "input_ids": input_ids,
        "attention_mask": (input_ids != pad_id).long(),
        "labels": labels,
    }


def _batches(n: int, batch_size: int, order: Sequence[int]) -> list[list[int]]:
    return [list(order[i : i + batch_size]) for i in range(0, n, batch_size)]


def _length_bucketed_order(lengths: Sequence[int], batch_size: int, generator: Any) -> list[int]:
    """Shuffle, then sort within chunks of 50 batches by length: less padding, still random."""
    import torch

    perm = torch.randperm(len(lengths), generator=generator).tolist()
    chunk = batch_size * 50
    order: list[int] = []
    for i in range(0, len(perm), chunk):
        order.extend(sorted(perm[i : i + chunk], key=lambda j: lengths[j]))
    batches = _batches(len(order), batch_size, order)
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [j for b in shuffled for j in batches[b]]


def evaluate_loss(model: Any, data: EncodedSplit, *, batch_size: int, pad_id: int) -> float:
    """Mean per-token cross-entropy of ``data`` under ``model`` (teacher forcing)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for idx in _batches(len(data), batch_size, range(len(data))):
            batch = collate([data.sources[i] for i in idx], [data.targets[i] for i in idx], pad_id)
            n_tok = int((batch["labels"] != -100).sum())
            total += float(model(**batch).loss) * n_tok
            count += n_tok
    if count == 0:
        raise ValueError("evaluate_loss: empty split")
    return total / count


@dataclass(frozen=True)
class Schedule:
    """The optimisation settings of one :func:`train` run, as one value.

    The stage's config carries these under the same names, flat among its other keys (params.yaml
    keeps one flat ``train_generator`` section); :meth:`of` lifts them out, so the stage never
    restates them one keyword at a time. Ranges are not checked here: the config that holds the
    values validated them once (this layer never imports the stage).
    """

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    max_grad_norm: float
    patience: int  # epochs without a better val loss before stopping; 0 = never stop early
    seed: int  # batch order

    @classmethod
    def of(cls, source: object) -> Schedule:
        """The schedule read off ``source``'s attributes of this class's field names (the
        stage's validated config, say); an attribute it lacks raises ``AttributeError``, so a
        renamed config key fails at the call, not as a silent default."""
        return cls(**{f.name: getattr(source, f.name) for f in fields(cls)})


def train(
    model: Any,
    train_data: EncodedSplit,
    val_data: EncodedSplit,
    schedule: Schedule,
    *,
    pad_id: int,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> TrainHistory:
    """AdamW with linear warm-up/decay; keeps the weights of the best validation epoch.

    Stops after ``schedule.patience`` epochs without improvement (0 disables early stopping).
    The model is left holding the best weights, in eval mode.
    """
    import copy

    import torch
    from tqdm.auto import tqdm

    if len(train_data) == 0 or len(val_data) == 0:
        raise ValueError("train: train and val splits must not be empty")
    epochs, batch_size, patience = schedule.epochs, schedule.batch_size, schedule.patience
    gen = torch.Generator().manual_seed(schedule.seed)
    steps_per_epoch = math.ceil(len(train_data) / batch_size)
    total_steps = steps_per_epoch * epochs
    warmup = int(schedule.warmup_ratio * total_steps)

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optim = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": schedule.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=schedule.learning_rate,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_lambda)
    hist = TrainHistory()
    best_state: dict[str, Any] | None = None
    stale = 0
    step = 0
    t0 = time.perf_counter()
    lengths = [len(s) + len(t) for s, t in zip(train_data.sources, train_data.targets, strict=True)]
    for epoch in range(epochs):
        model.train()
        order = _length_bucketed_order(lengths, batch_size, gen)
        running, n_batches = 0.0, 0
        bar = tqdm(_batches(len(order), batch_size, order), desc=f"epoch {epoch + 1}/{epochs}")
        for idx in bar:
            t_start = time.perf_counter()
            batch = collate(
                [train_data.sources[i] for i in idx], [train_data.targets[i] for i in idx], pad_id
            )
            t_collate = time.perf_counter()
            loss = model(**batch).loss
            t_forward = time.perf_counter()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            t_backward = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(model.parameters(), schedule.max_grad_norm)
            optim.step()
            sched.step()
            t_end = time.perf_counter()
            hist.time_s["collate"] += t_collate - t_start
            hist.time_s["forward"] += t_forward - t_collate
            hist.time_s["backward"] += t_backward - t_forward
            hist.time_s["optimizer"] += t_end - t_backward
            step += 1
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"train: loss became {value} at step {step}")
            hist.steps.append(step)
            hist.train_loss.append(value)
            running += value
            n_batches += 1
            bar.set_postfix(loss=f"{value:.3f}")
        t_val = time.perf_counter()
        val = evaluate_loss(model, val_data, batch_size=batch_size * 2, pad_id=pad_id)
        hist.time_s["validation"] += time.perf_counter() - t_val
        hist.val_steps.append(step)
        hist.val_loss.append(val)
        hist.epoch_train_loss.append(running / max(1, n_batches))
        logger.info("epoch %d: train loss %.4f, val loss %.4f", epoch + 1, running / n_batches, val)
        if on_epoch is not None:
            on_epoch(epoch + 1, running / max(1, n_batches), val)
        if val < hist.best_val_loss:
            hist.best_val_loss, hist.best_epoch = val, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
            stale = 0
        else:
            stale += 1
            if patience and stale >= patience:
                logger.info("early stop: val loss has not improved for %d epoch(s)", stale)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    hist.seconds = time.perf_counter() - t0
    return hist


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_source_len: int,
    max_new_tokens: int,
    batch_size: int,
) -> list[str]:
    """Greedy (num_beams=1) generations for ``prompts``, batched, decoded without specials.

    Keyword slots a prompt has no keyword for are never generated
    (``serving.realize.banned_slot_ids``, as in every ONNX decoder): prompts are batched by
    their banned set, which ``generate`` takes as ``bad_words_ids``.
    """
    import torch
    from tqdm.auto import tqdm

    from serving.realize import banned_slot_ids, slot_guard

    pad_id = int(tokenizer.pad_token_id)
    model.eval()
    vocab = tokenizer.get_vocab()
    guard = slot_guard(vocab.get)
    encoded = [encode_text(tokenizer, p, max_source_len) for p in prompts]
    banned = [banned_slot_ids(ids, guard) for ids in encoded]
    # Same banned set per batch; longest prompts first keeps the padding per batch small.
    order = sorted(range(len(prompts)), key=lambda i: (banned[i], -len(prompts[i])))
    batches = []
    for _, run in itertools.groupby(order, key=banned.__getitem__):
        group = list(run)
        batches += [group[j : j + batch_size] for j in range(0, len(group), batch_size)]
    texts: dict[int, str] = {}
    with torch.no_grad():
        for idx in tqdm(batches, desc="generate"):
            input_ids = _pad([encoded[i] for i in idx], pad_id)
            bad = [[t] for t in banned[idx[0]]]
            gen = model.generate(
                input_ids=input_ids,
                attention_mask=(input_ids != pad_id).long(),
                max_new_tokens=max_new_tokens,
                num_beams=1,
                do_sample=False,
                **({"bad_words_ids": bad} if bad else {}),
            )
            for i, seq in zip(idx, gen, strict=True):
                texts[i] = tokenizer.decode(seq, skip_special_tokens=True).strip()
    return [texts[i] for i in range(len(prompts))]


def save_checkpoint(
    model: Any,
    tokenizer: Any,
    out_dir: Path,
    *,
    max_new_tokens: int,
    training_config: Mapping[str, Any],
) -> None:
    """save_pretrained model + tokenizer + generation config + ``training_config.json``."""
    import json

    from transformers import GenerationConfig

    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=model.config.decoder_start_token_id,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id,
        max_new_tokens=max_new_tokens,
        num_beams=1,
        do_sample=False,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "training_config.json").write_text(
        json.dumps(dict(training_config), indent=2, sort_keys=True, default=str) + "\n"
    )
