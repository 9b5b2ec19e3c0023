"""The word-problem generator at serving time: prompt -> decoder -> render -> checks.

One policy for both decoders of ``serving.decoding.TokenDecoder``: the HTTP app's three-file
Python loop (sampled) and the backend drop-in's one-file graph (greedy, ``serving.backend``).

Every decoded string goes through ``serving.story.render_any`` (``serving.realize.render_output``
for a keyword-slot model; roles, names and numbers rendered for a typed-role one), the one
post-processing that evaluation uses too.
Sampling is seeded so a request with a seed is reproducible; when a sample fails the consistency
check (equation missing, unparsable, or not answering the text with the text's own numbers),
leaves out a requested keyword or has a grammar defect (``serving.grammar``), it is retried with
a seed derived from the request's, up to ``settings.generator_max_attempts`` times and never past
the request's deadline. When no sample passes every check, the consistent one with the fewest
missing keywords, then the fewest grammar defects, is returned (and names what is wrong).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving import limits
from serving.consistency import check_consistency
from serving.decoding import TokenDecoder
from serving.errors import ArtifactError, RequestError
from serving.grammar import grammar_defects
from serving.keywords import missing_keywords
from serving.prompt import PromptError, format_prompt
from serving.settings import ServingSettings
from serving.store import ArtifactIdentity, open_verified_artifact
from serving.story import render_any

if TYPE_CHECKING:
    from serving.constrain import Trie

logger = logging.getLogger(__name__)

MODEL_NAME = "generator"


@dataclass(frozen=True)
class GenerationResult:
    generated_problem_text: str
    equation: str | None
    answer: float | None
    consistent: bool
    attempts: int
    seed: int
    reason: str
    missing_keywords: tuple[str, ...] = ()
    grammar_defects: tuple[str, ...] = ()
    # typed roles: keywords no role of the problem could take, with why (never forced in)
    keywords_unused: tuple[tuple[str, str], ...] = ()
    story_defects: tuple[str, ...] = ()  # failed rubric checks: entity_consistency, ...

    def rank(self) -> tuple[int, int, int, int]:
        """Smaller is better among consistent samples: failed story checks, unused keywords,
        missing keywords, then grammar defects."""
        return (
            len(self.story_defects),
            len(self.keywords_unused),
            len(self.missing_keywords),
            len(self.grammar_defects),
        )


def derive_seed(base: int, attempt: int) -> int:
    """Seed of retry ``attempt`` (0 = the request's own seed), deterministic and in range."""
    if attempt == 0:
        return base
    return (base * 1_000_003 + attempt * 7_919) % (limits.SEED_RANGE[1] + 1)


class GeneratorModel(ArtifactIdentity):
    """A verified generator artifact whose ONNX sessions are opened once and reused.

    The one generation policy of the HTTP app and the backend's drop-in: ``engine`` is the
    three-file Python loop (sampled, ``sample=True``) or the one-file graph (greedy,
    ``sample=False``); prompts, the skeleton constraint, retries and checks are the same.
    """

    model_name = MODEL_NAME

    def __init__(
        self,
        *,
        artifact_dir: Path,
        manifest: Mapping[str, Any],
        engine: TokenDecoder,
        settings: ServingSettings,
        lexicon: Any = None,
        planner: Any = None,
        bank: Any = None,
        sample: bool = True,
    ) -> None:
        self.artifact_dir = artifact_dir
        self.manifest = dict(manifest)
        self.engine = engine
        self.settings = settings
        self.sample = sample  # False: greedy ids; the seed then draws only the rendered values
        self.lexicon = lexicon  # a typed-role model's noun lexicon (serving.lexicon), else None
        self.planner = planner  # ... and its trained role plans (serving.planner)
        self.bank = bank  # ... and its skeleton bank for constrained decoding (serving.constrain)

    def generate(
        self,
        *,
        topic: str,
        keywords: Sequence[str],
        prompt_prefix: str = "",
        max_length: int = limits.DEFAULT_MAX_LENGTH,
        seed: int | None = None,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> GenerationResult:
        """Sample until a consistent, grammatical problem with every keyword comes out, or
        attempts run out.

        ``deadline`` is a ``time.monotonic()`` value; the first attempt always runs. Without a
        sample passing every check, the consistent sample missing the fewest keywords (then with
        the fewest grammar defects) is returned (first such attempt), else the last sample
        (``consistent=False``, no equation).
        """
        nouns = None
        if self.lexicon is not None:
            from serving.lexicon import describe

            nouns = describe(self.lexicon, list(keywords))

        def prompt_for(attempt: int) -> str:
            """The encoder input of ``attempt``: a typed-role model is asked for another role
            plan on each retry (``serving.roles.plan_roles``)."""
            from serving.roles import plan_roles

            roles = None
            if nouns is not None:
                roles = (
                    self.planner.plan(topic, nouns, attempt)
                    if self.planner is not None
                    else plan_roles(nouns, attempt)
                )
            return format_prompt(topic, list(keywords), prompt_prefix, roles=roles)

        try:
            prompt = prompt_for(0)
        except PromptError as exc:
            field = str(exc).split(":", 1)[0] or "body"
            raise RequestError(field, str(exc)) from exc
        base = secrets.randbelow(limits.SEED_RANGE[1] + 1) if seed is None else int(seed)
        constraint: dict[str, Any] = {}
        if nouns is not None and self.bank is not None:
            trie = self.bank.trie(topic, nouns, max_length, prompt_prefix)
            if trie is not None:  # decode only skeletons that can host every keyword
                constraint = {"trie": trie}
        temp = self.settings.temperature if temperature is None else float(temperature)
        unused: tuple[tuple[str, str], ...] = ()
        reason = "not_run"
        problem = ""
        attempts = 0
        best: GenerationResult | None = None
        for attempt in range(self.settings.generator_max_attempts):
            if attempt > 0 and deadline is not None and time.monotonic() >= deadline:
                break
            attempts = attempt + 1
            attempt_seed = derive_seed(base, attempt)
            if nouns is not None and attempt > 0:
                prompt = prompt_for(attempt)
            sampling: dict[str, Any] = {}
            if self.sample:
                sampling = {
                    "do_sample": True,
                    "temperature": temp,
                    "top_k": self.settings.top_k,
                    "top_p": self.settings.top_p,
                    "seed": attempt_seed,
                }
            try:
                text = self.engine.generate_text(
                    prompt, max_new_tokens=int(max_length), **sampling, **constraint
                )
            except ValueError as exc:  # e.g. the prompt tokenises beyond the encoder limit
                raise RequestError("body", f"cannot generate for this input: {exc}") from exc
            rendered = render_any(
                text,
                list(keywords),
                topic=topic,
                prompt_prefix=prompt_prefix,
                seed=attempt_seed,
                nouns=nouns,
            )
            problem, equation = rendered.problem_text, rendered.equation_text
            unused = tuple(rendered.keywords_unused)
            result = check_consistency(problem, equation)
            reason = result.reason
            if not result.ok:
                logger.debug("attempt %d inconsistent (%s): %r", attempts, reason, text)
                continue
            story_defects: tuple[str, ...] = ()
            if nouns is not None:
                from serving.story_checks import check_story

                checks = check_story(rendered, nouns)
                unused = checks.keywords_unused
                story_defects = tuple(
                    name
                    for name in ("role_fit", "entity_consistency", "keyword_natural")
                    if not getattr(checks, name)
                )
            used = [k for k in keywords if k not in {u[0] for u in unused}]
            missing = tuple(missing_keywords(problem, used))
            defects = tuple(grammar_defects(problem, list(used)))
            candidate = GenerationResult(
                generated_problem_text=problem,
                equation=equation,
                answer=result.value,
                consistent=True,
                attempts=attempts,
                seed=base,
                reason=(
                    story_defects[0]
                    if story_defects
                    else "keywords_unused"
                    if unused
                    else "missing_keywords"
                    if missing
                    else "grammar_defects"
                    if defects
                    else "ok"
                ),
                missing_keywords=missing,
                grammar_defects=defects,
                keywords_unused=unused,
                story_defects=story_defects,
            )
            if best is None or candidate.rank() < best.rank():
                best = candidate
            if not missing and not defects and not unused and not story_defects:
                break
            logger.debug(
                "attempt %d misses keywords %s, defects %s: %r", attempts, missing, defects, text
            )
        if best is not None:
            return dataclasses.replace(best, attempts=attempts)
        # the last sample, saying which keywords its story could not use and which it dropped
        used = [k for k in keywords if k not in {u[0] for u in unused}]
        return GenerationResult(
            generated_problem_text=problem,
            equation=None,
            answer=None,
            consistent=False,
            attempts=attempts,
            seed=base,
            reason=reason,
            missing_keywords=tuple(missing_keywords(problem, used)),
            grammar_defects=tuple(grammar_defects(problem, used)) if problem else (),
            keywords_unused=unused,
        )


def _onnx_files(manifest: Mapping[str, Any]) -> dict[str, str | None]:
    """Encoder / decoder / decoder-with-past file names as listed by the manifest."""
    names = list(manifest.get("onnx", {}))
    enc = next((n for n in names if "encoder" in n), None)
    past = next((n for n in names if "with_past" in n), None)
    dec = next((n for n in names if "decoder" in n and n != past), None)
    if enc is None or dec is None:
        raise ArtifactError(f"manifest lists no encoder/decoder ONNX files (got {names})")
    return {"encoder": enc, "decoder": dec, "decoder_with_past": past}


def load_generator(ref: str | Path, settings: ServingSettings | None = None) -> GeneratorModel:
    """Resolve ``ref``, verify the artifact (sha256, io names) and open its sessions once."""
    from serving.decode_loop import OnnxSeq2SeqGenerator

    settings = settings or ServingSettings.from_env()
    artifact_dir, manifest = open_verified_artifact(ref, MODEL_NAME, settings)
    files = _onnx_files(manifest)
    engine = OnnxSeq2SeqGenerator(
        artifact_dir,
        intra_op_num_threads=settings.intra_op_threads,
        graph_optimization_level=settings.graph_optimization,
        encoder_file=str(files["encoder"]),
        decoder_file=str(files["decoder"]),
        decoder_with_past_file=files["decoder_with_past"],
    )
    if engine.tokenizer is None:
        raise ArtifactError(f"{artifact_dir}: tokenizer.json missing")
    logger.info("loaded generator v%s from %s", manifest.get("version"), artifact_dir)
    return GeneratorModel(
        artifact_dir=artifact_dir,
        manifest=manifest,
        engine=engine,
        settings=settings,
        **typed_parts(artifact_dir, engine),
    )


def typed_parts(model_dir: Path, engine: Any) -> dict[str, Any]:
    """A typed-role model's lexicon, role planner and skeleton bank (``GeneratorModel``'s
    keyword arguments; all None for a keyword-slot model)."""
    from serving.constrain import load_bank
    from serving.planner import load_planner

    lexicon = load_lexicon(model_dir)
    if lexicon is None:
        return {"lexicon": None, "planner": None, "bank": None}
    return {
        "lexicon": lexicon,
        "planner": load_planner(model_dir),
        "bank": load_bank(model_dir, engine.encode),
    }


def load_lexicon(model_dir: Path) -> Any:
    """The noun lexicon of a typed-role model (``nouns.tsv`` beside its ONNX files), or None
    for a model trained on keyword slots."""
    from serving.lexicon import LEXICON_FILE, Lexicon, LexiconError

    path = Path(model_dir) / LEXICON_FILE
    if not path.is_file():
        return None
    try:
        return Lexicon.load(path)
    except LexiconError as exc:
        raise ArtifactError(str(exc)) from exc


def request_tries(
    model_dir: Path, encode: Callable[[str], list[int]], records: Sequence[Mapping[str, Any]]
) -> list[Trie | None] | None:
    """Per record (topic, keywords, prompt_prefix), the skeleton-bank trie the HTTP app decodes
    that request of a typed-role model under; None for a model without a bank or lexicon, or
    records without topics. What the drop-in's gate and timings decode with."""
    from serving.constrain import load_bank
    from serving.lexicon import describe

    bank = load_bank(model_dir, encode)
    lexicon = load_lexicon(model_dir)
    if bank is None or lexicon is None or not all("topic" in r for r in records):
        return None
    return [
        bank.trie(
            str(r["topic"]),
            describe(lexicon, list(r.get("keywords", []))),
            prompt_prefix=str(r.get("prompt_prefix") or ""),
        )
        for r in records
    ]
