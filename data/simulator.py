"""Seeded learner simulator: the default event source, with the ground truth kept beside it.

Each (learner, topic) has a latent skill in logit units:

    skill = ability[learner] + affinity[learner, topic] + learned(practice, time since practice)
    P(correct on item i) = sigmoid(skill - difficulty[topic] - item_offset[i])

``learned`` grows with practice with diminishing returns (``gain * (1 - exp(-rate * units /
practice_scale))``) and decays between practices toward a floor (a fraction ``forget_floor`` of it
is never lost), so the count, the recency and the learner's overall level all carry signal, and
the skill never jumps at random between events. The simulator keeps, for every event, the exact
probability that its score is below ``pass_mark`` (binomial CDF for quizzes, Beta CDF for
minigames): the oracle a perfect predictor would reach.

Vectorised: Python loops run over session index and activity slot only (a few hundred
iterations); each iteration updates every learner active at that step with numpy.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import numpy as np

from data.params import ConfigError, Range, require
from serving.ids import id_problem, id_rule_text

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

_QUIZ, _MINIGAME = 0, 1
_DAY_S = 86_400.0
# The simulated event columns, filled by event position: the one list of their names and types.
_EVENT_DTYPES: dict[str, type[np.generic]] = {
    "user": np.int32,
    "topic": np.int32,
    "item": np.int32,
    "kind": np.int8,
    "ts": np.int64,
    "score": np.float64,
    "time_spent": np.float64,
    "hints": np.int16,
    "attempt": np.int16,
    "revisit": np.bool_,
    "p_fail": np.float64,
    "mastery": np.float64,
}


# Field constraints (data/params.Range): a bad value fails at load time naming
# `data.simulator.<key>`, the allowed range and the value.
_Count = Annotated[int, Range(1, integer=True)]
_Share = Annotated[float, Range(0.0, 1.0)]
_Positive = Annotated[float, Range(0.0, lo_open=True)]
_NonNegative = Annotated[float, Range(0.0)]


@dataclass(frozen=True)
class SimulatorConfig:
    """Simulator knobs (``params.yaml`` data.simulator); behaviour constants have defaults."""

    seed: Annotated[int, Range(0, integer=True)]
    n_learners: Annotated[int, Range(1, 10_000_000, integer=True)]
    # null when ``topics`` names them (then len(topics)); topics without names are t00, t01, ...
    n_topics: Annotated[int, Range(1, 10_000, integer=True)] | None
    days: Annotated[int, Range(1, 3650, integer=True)]
    sessions_per_week: Annotated[float, Range(0.0, 70.0, lo_open=True)]
    activities_per_session: Annotated[int, Range(1, 50, integer=True)]
    quiz_share: _Share
    start: str
    # a quiz score is correct/n_questions: the binomial noise
    quiz_questions: Annotated[int, Range(1, 100, integer=True)] = 5
    # per activity type (quiz items, minigame items)
    items_per_topic: Annotated[int, Range(1, 10_000, integer=True)] = 30
    dropout_share: _Share = 0.3  # learners who stop early (after ~exp(dropout_mean_days))
    dropout_mean_days: _Positive = 30.0
    join_window: _Share = 0.4  # learners join uniformly over the first join_window * days
    ability_sd: _NonNegative = 0.5  # learner ability, logits
    difficulty_mean: float = 0.3  # mean topic difficulty, logits
    difficulty_range: _NonNegative = 1.0  # topic difficulties spread evenly over this many logits
    affinity_sd: _NonNegative = 0.3  # learner x topic deviation, logits
    item_sd: _NonNegative = 0.15  # item difficulty around its topic, logits
    gain: _NonNegative = 1.5  # logits learned at saturation
    practice_scale: _Positive = 8.0  # practice units to reach ~63% of the gain
    learning_rate_sd: _NonNegative = 0.3  # log-sd of the per-learner learning rate
    forget_days: _Positive = 10.0  # e-folding time of forgetting
    forget_floor: _Share = 0.4  # share of what was learned that is never forgotten
    minigame_concentration: _Positive = 5.0  # Beta(kappa*mu, kappa*(1-mu)): lower = noisier
    minigame_bonus: float = 0.4  # minigames are easier than quizzes, logits
    weak_topic_bias: _NonNegative = 3.0  # preference for weak topics when picking a session topic
    # topic id -> difficulty (logits): the topics a served model must know by name (Ludora's),
    # each as hard as declared; None: n_topics unnamed topics spread over difficulty_range
    topics: dict[str, float] | None = None

    def __post_init__(self) -> None:
        where = "data.simulator"
        if self.topics is None:
            require(
                self.n_topics is not None,
                f"{where}.n_topics",
                "required (an integer in [1, 10000]) when data.simulator.topics is not given",
            )
        else:
            require(len(self.topics) > 0, f"{where}.topics", "must name at least one topic")
            for name, value in self.topics.items():
                problem = id_problem(name, "topic_id")
                require(
                    problem is None,
                    f"{where}.topics",
                    f"topic id {name!r} is not allowed ({problem}); allowed: "
                    f"{id_rule_text('topic_id')}",
                )
                require(
                    np.isfinite(value) and abs(value) <= 10.0,
                    f"{where}.topics.{name}",
                    f"difficulty must be a number in [-10, 10] logits, got {value!r}",
                )
            require(
                self.n_topics in (None, len(self.topics)),
                f"{where}.n_topics",
                f"must be null or {len(self.topics)} (the number of data.simulator.topics), "
                f"got {self.n_topics}",
            )
            object.__setattr__(self, "n_topics", len(self.topics))
        try:
            start_s = parse_start(self.start)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"{where}.start: must be an ISO-8601 instant such as 2026-01-05T00:00:00Z, "
                f"got {self.start!r}"
            ) from exc
        require(
            start_s >= 0, f"{where}.start", f"must be at or after 1970-01-01, got {self.start!r}"
        )


def parse_start(text: str) -> int:
    """ISO-8601 instant -> int seconds since epoch (UTC; a naive time is taken as UTC)."""
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp())


def fail_threshold(n_questions: int, pass_mark: float) -> int:
    """Number of correct answers k with k/n < pass_mark, computed exactly as labels are."""
    k = np.arange(n_questions + 1, dtype=np.float64)
    return int(np.count_nonzero(k / n_questions < pass_mark))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _session_plan(
    cfg: SimulatorConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per learner: planned session start times (s from start, padded with inf) and counts.

    Returns (planned [L, K] float64, n_sessions [L], n_acts [L, K] int16).
    """
    n = cfg.n_learners
    horizon = cfg.days * _DAY_S
    join = rng.uniform(0.0, cfg.join_window * horizon, n)
    drops = rng.random(n) < cfg.dropout_share
    stop = np.where(drops, join + rng.exponential(cfg.dropout_mean_days * _DAY_S, n), horizon).clip(
        max=horizon
    )
    # Activity rate varies by learner (lognormal, mean 1).
    rate = cfg.sessions_per_week / 7.0 / _DAY_S * rng.lognormal(-0.125, 0.5, n)
    n_sessions = np.maximum(1, rng.poisson(rate * (stop - join)))
    k_max = int(n_sessions.max())
    planned = rng.random((n, k_max))
    planned[np.arange(k_max)[None, :] >= n_sessions[:, None]] = np.inf
    planned.sort(axis=1)
    planned = join[:, None] + planned * (stop - join)[:, None]
    # Activities per session: 1 + Binomial(2(a-1), 1/2), mean a.
    aps = cfg.activities_per_session
    n_acts = (1 + rng.binomial(2 * (aps - 1), 0.5, (n, k_max))).astype(np.int16)
    n_acts[~np.isfinite(planned)] = 0
    return planned, n_sessions, n_acts


def simulate(cfg: SimulatorConfig, *, pass_mark: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate learner events.

    Returns ``(events, oracle)``: events in the schema of ``core/schema.py`` sorted by
    ``(timestamp, user_id)``; oracle aligned row by row with ``p_fail_true`` (exact probability,
    under the simulator, that the score is < ``pass_mark``) and ``mastery_true`` (the latent
    probability of a correct answer on that activity's item).
    """
    return _simulate(cfg, pass_mark=pass_mark, rng=np.random.default_rng(cfg.seed))


# Seed streams of the sharded simulator: [seed, WORLD_STREAM] draws the topics and items every
# shard shares, [seed, SHARD_STREAM, shard] the learners of one shard.
WORLD_STREAM, SHARD_STREAM = 0, 1


@dataclass(frozen=True)
class World:
    """What all learners share: topic difficulties and item offsets (logits)."""

    difficulty: np.ndarray
    item_offset: np.ndarray


def topic_names(cfg: SimulatorConfig) -> list[str]:
    """The topic ids of the events: the declared ``topics`` in order, else t00, t01, ..."""
    if cfg.topics is not None:
        return list(cfg.topics)
    return _labels("t", topic_count(cfg))


def topic_count(cfg: SimulatorConfig) -> int:
    """Number of topics (``n_topics``, which ``topics`` sets when it names them)."""
    if cfg.n_topics is None:  # guarded in __post_init__; kept for the type checker
        raise ConfigError("data.simulator.n_topics: required when topics is not given")
    return cfg.n_topics


def topic_difficulty(cfg: SimulatorConfig, rng: np.random.Generator) -> np.ndarray:
    """Difficulty per topic (logits): as declared in ``topics``, else evenly spread over
    ``difficulty_range`` around ``difficulty_mean`` in a random order drawn from ``rng``."""
    if cfg.topics is not None:
        return np.array(list(cfg.topics.values()), dtype=np.float64)
    n_t = topic_count(cfg)
    difficulty = cfg.difficulty_mean + cfg.difficulty_range * np.linspace(-0.5, 0.5, n_t)
    rng.shuffle(difficulty)
    return difficulty


def shared_world(cfg: SimulatorConfig) -> World:
    """The topics and items of the sharded simulator (its own seed stream)."""
    rng = np.random.default_rng([cfg.seed, WORLD_STREAM])
    difficulty = topic_difficulty(cfg, rng)
    item_offset = rng.normal(0.0, cfg.item_sd, (topic_count(cfg), 2, cfg.items_per_topic))
    return World(difficulty=difficulty, item_offset=item_offset)


def shard_count(cfg: SimulatorConfig, learners_per_shard: int) -> int:
    """Number of shards of ``learners_per_shard`` learners (the last may be smaller)."""
    return -(-cfg.n_learners // learners_per_shard)


def simulate_shard(
    cfg: SimulatorConfig, *, pass_mark: float, shard: int, learners_per_shard: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Learners ``[shard * learners_per_shard, ...)`` of a sharded simulation, on their own.

    Why a second mode: `simulate` draws every learner from one random stream, step by step for
    all learners at once, so no learner can be produced without the others (and their memory).
    Here each shard has its own seed stream and the topics come from `shared_world`, so a shard
    depends only on (seed, shard, learners_per_shard): shards are produced in any order, on any
    worker, one at a time. The price: the events differ from `simulate`'s for the same seed
    (same model of learning, other draws); ``engine: local`` keeps `simulate`.
    """
    n_shards = shard_count(cfg, learners_per_shard)
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} not in [0, {n_shards})")
    first = shard * learners_per_shard
    n = min(learners_per_shard, cfg.n_learners - first)
    block = dataclasses.replace(cfg, n_learners=n)
    rng = np.random.default_rng([cfg.seed, SHARD_STREAM, shard])
    return _simulate(
        block,
        pass_mark=pass_mark,
        rng=rng,
        world=shared_world(cfg),
        first_user=first,
        total_users=cfg.n_learners,
    )


def _simulate(
    cfg: SimulatorConfig,
    *,
    pass_mark: float,
    rng: np.random.Generator,
    world: World | None = None,
    first_user: int = 0,
    total_users: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The simulation of `simulate` (``world`` None: topics drawn from ``rng`` in between the
    learner draws, as always) or of one shard (``world`` given, users numbered from
    ``first_user`` of ``total_users``)."""
    if not 0.0 < pass_mark <= 1.0:
        raise ConfigError(f"features.pass_mark: {pass_mark} not in (0, 1]")
    from scipy.special import bdtr, betainc

    n_l, n_t, n_i = cfg.n_learners, topic_count(cfg), cfg.items_per_topic
    start_s = parse_start(cfg.start)

    # ---- latent structure (this draw order is the local engine's events: keep it)
    ability = rng.normal(0.0, cfg.ability_sd, n_l)
    difficulty = topic_difficulty(cfg, rng) if world is None else world.difficulty
    affinity = rng.normal(0.0, cfg.affinity_sd, (n_l, n_t))
    if world is None:
        item_offset = rng.normal(0.0, cfg.item_sd, (n_t, 2, n_i))
    else:
        item_offset = world.item_offset
    learn_rate = rng.lognormal(0.0, cfg.learning_rate_sd, n_l) / cfg.practice_scale
    speed = rng.lognormal(0.0, 0.2, n_l)  # a learner's own pace (time spent)
    item_perm_shift = rng.integers(0, n_i, (n_l, n_t, 2))  # learners meet items in own order

    planned, n_sessions, n_acts = _session_plan(cfg, rng)
    # Learners sorted by session count (descending): the learners active at session k are a
    # prefix, so each step works on slices instead of index arrays.
    order = np.argsort(-n_sessions, kind="stable")
    inv_order = np.empty_like(order)
    inv_order[order] = np.arange(n_l)
    planned, n_sessions, n_acts = planned[order], n_sessions[order], n_acts[order]
    ability, affinity, learn_rate, speed = (
        ability[order],
        affinity[order],
        learn_rate[order],
        speed[order],
    )
    item_perm_shift = item_perm_shift[order]

    counts = n_acts.astype(np.int64)
    total = int(counts.sum())
    offsets = (np.cumsum(counts.ravel()) - counts.ravel()).reshape(counts.shape)
    logger.info(
        "simulating %d learners x %d topics: %d sessions, %d events",
        n_l,
        n_t,
        int(n_sessions.sum()),
        total,
    )

    # ---- outputs (indexed by event position)
    cols = {name: np.empty(total, dtype) for name, dtype in _EVENT_DTYPES.items()}

    # ---- state
    units = np.zeros((n_l, n_t))  # practice units per (learner, topic)
    last = np.full((n_l, n_t), -np.inf)  # time of last practice, s from start
    seen = np.zeros((n_l, n_t, 2, n_i), np.int16)  # tries per item
    next_item = np.zeros((n_l, n_t, 2), np.int32)
    clock = np.full(n_l, -np.inf)  # end of the learner's last activity

    k_fail = fail_threshold(cfg.quiz_questions, pass_mark)
    nq = cfg.quiz_questions
    kappa = cfg.minigame_concentration
    floor = cfg.forget_floor
    forget_s = cfg.forget_days * _DAY_S
    gain = cfg.gain

    def learned(u_units: np.ndarray, u_last: np.ndarray, now: np.ndarray) -> np.ndarray:
        """Learned logits: saturating in practice, decaying toward the floor since last use."""
        sat = gain * (1.0 - np.exp(-u_units))
        age = np.maximum(now - u_last, 0.0)
        return sat * (floor + (1.0 - floor) * np.exp(-age / forget_s))

    n_active_by_k = np.searchsorted(-n_sessions, -np.arange(planned.shape[1]), side="right")
    try:
        from tqdm import tqdm

        steps = tqdm(range(planned.shape[1]), desc="simulate", unit="session", leave=False)
    except ImportError:  # pragma: no cover - tqdm is a declared dependency
        steps = range(planned.shape[1])

    for k in steps:
        na = int(n_active_by_k[k])
        if na == 0:
            break
        now = np.maximum(planned[:na, k], clock[:na] + 300.0)  # sessions never overlap
        # Pick the session topic: weak topics are revisited more (Gumbel-max sampling).
        skill_all = (
            ability[:na, None]
            + affinity[:na]
            + learned(units[:na] * learn_rate[:na, None], last[:na], now[:, None])
            - difficulty[None, :]
        )
        logits = -cfg.weak_topic_bias * _sigmoid(skill_all) + rng.gumbel(size=(na, n_t))
        topic = np.argmax(logits, axis=1)
        prev_failed = np.zeros(na, np.bool_)
        prev_item = np.full(na, -1, np.int64)
        prev_kind = np.zeros(na, np.int8)
        for j in range(int(n_acts[:na, k].max())):
            u = np.nonzero(n_acts[:na, k] > j)[0]
            if u.size == 0:
                break
            t = topic[u]
            now_u = now[u]
            base_skill = (
                ability[u]
                + affinity[u, t]
                + learned(units[u, t] * learn_rate[u], last[u, t], now_u)
                - difficulty[t]
            )
            p_topic = _sigmoid(base_skill)
            # Activity kind and item: immediate retry after a fail (weaker retries more),
            # a revisit of a seen item (weaker revisits more), or the next new item.
            r = rng.random((4, u.size))
            kind = np.where(r[0] < cfg.quiz_share, _QUIZ, _MINIGAME).astype(np.int8)
            retry = prev_failed[u] & (r[1] < 0.1 + 0.4 * (1.0 - p_topic))
            kind = np.where(retry, prev_kind[u], kind)
            n_next = next_item[u, t, kind]
            revisit = ~retry & (n_next > 0) & (r[2] < 0.05 + 0.3 * (1.0 - p_topic))
            pick_seen = (r[3] * np.maximum(n_next, 1)).astype(np.int64)
            fresh = ~retry & ~revisit
            slot = np.where(retry, -1, np.where(revisit, pick_seen, n_next))
            item = np.where(retry, prev_item[u], (slot + item_perm_shift[u, t, kind]) % n_i)
            next_item[u[fresh], t[fresh], kind[fresh]] += 1
            tries = seen[u, t, kind, item]
            attempt = tries.astype(np.int64) + 1
            is_revisit = (tries > 0) & ~retry

            p = _sigmoid(
                base_skill
                - item_offset[t, kind, item]
                + np.where(kind == _MINIGAME, cfg.minigame_bonus, 0.0)
            )
            # Scores: quiz = fraction correct of nq questions; minigame = Beta around p.
            is_quiz = kind == _QUIZ
            correct = rng.binomial(nq, p)
            p_c = np.clip(p, 1e-6, 1 - 1e-6)
            mg = rng.beta(kappa * p_c, kappa * (1.0 - p_c))
            score = np.where(is_quiz, correct / nq, mg)
            p_fail = np.where(
                is_quiz,
                bdtr(k_fail - 1, nq, p) if k_fail > 0 else 0.0,
                betainc(kappa * p_c, kappa * (1.0 - p_c), pass_mark),
            )
            weak = 1.0 - p
            spent = (
                np.where(is_quiz, 120.0, 90.0)
                * (0.6 + 1.2 * weak)
                * speed[u]
                * rng.lognormal(-0.06, 0.35, u.size)
            )
            spent = np.round(spent, 1)
            hints = np.minimum(rng.poisson(2.5 * weak * np.where(is_quiz, 1.0, 0.5)), 5)

            pos = offsets[u, k] + j
            cols["user"][pos] = u
            cols["topic"][pos] = t
            cols["item"][pos] = item + kind * n_i
            cols["kind"][pos] = kind
            cols["ts"][pos] = np.floor(now_u).astype(np.int64)
            cols["score"][pos] = score
            cols["time_spent"][pos] = spent
            cols["hints"][pos] = hints
            cols["attempt"][pos] = attempt
            cols["revisit"][pos] = is_revisit
            cols["p_fail"][pos] = p_fail
            cols["mastery"][pos] = p

            # State update: practice (quizzes count more), recency, the learner's clock.
            units[u, t] += np.where(is_quiz, 1.0, 0.6)
            last[u, t] = now_u
            seen[u, t, kind, item] = tries + 1
            now[u] = np.floor(now_u) + np.ceil(spent) + rng.integers(5, 60, u.size)
            prev_failed[u] = score < pass_mark
            prev_item[u] = item
            prev_kind[u] = kind
        clock[:na] = now

    # Free the simulation state before building the frames (peak memory at 10M events).
    del planned, offsets, counts, n_acts, seen, units, last, next_item
    cols["user"] = inv_order[cols["user"]]  # back to the learners' own numbering
    return _to_frames(
        cfg, start_s=start_s, cols=cols, first_user=first_user, total_users=total_users
    )


def _labels(prefix: str, n: int, first: int = 0, total: int | None = None) -> list[str]:
    """Zero-padded ids ``first .. first + n - 1`` (width of ``total``, default ``n``), so string
    order equals numeric order."""
    total = n if total is None else total
    width = max(1, len(str(max(total - 1, 0))))
    return [f"{prefix}{i:0{width}d}" for i in range(first, first + n)]


def _decode(codes: np.ndarray, labels: list[str]) -> pd.Series:
    """Integer codes -> pandas string column, built in Arrow (no Python object per row)."""
    import pandas as pd
    import pyarrow as pa

    arr = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(labels)).dictionary_decode()
    return pd.Series(arr.to_pandas(), dtype="str")


def _to_frames(
    cfg: SimulatorConfig,
    *,
    start_s: int,
    cols: dict[str, np.ndarray],
    first_user: int = 0,
    total_users: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sort by (timestamp, user_id) and build the event and oracle frames.

    Consumes ``cols`` (arrays indexed by event position), one column at a time, so that at
    most one unsorted and one sorted copy of a column are alive together.
    """
    import pandas as pd

    order = np.lexsort((cols["user"], cols["ts"]))

    def take(name: str) -> np.ndarray:
        return cols.pop(name)[order]

    n_i = cfg.items_per_topic
    t_labels = topic_names(cfg)
    width = len(str(n_i - 1))
    item_labels = [
        f"{tl}-{'q' if k == _QUIZ else 'g'}{i:0{width}d}"
        for tl in t_labels
        for k in (_QUIZ, _MINIGAME)
        for i in range(n_i)
    ]
    topic = take("topic")
    data: dict[str, object] = {}
    data["user_id"] = _decode(take("user"), _labels("u", cfg.n_learners, first_user, total_users))
    data["topic_id"] = _decode(topic, t_labels)
    data["item_id"] = _decode(topic * (2 * n_i) + take("item"), item_labels)
    del topic
    data["timestamp"] = take("ts") + start_s
    data["activity"] = _decode(take("kind").astype(np.int32), ["quiz", "minigame"])
    data["score"] = take("score")
    data["time_spent_s"] = take("time_spent")
    data["hints_used"] = take("hints").astype(np.int64)
    data["attempt"] = take("attempt").astype(np.int64)
    data["is_revisit"] = take("revisit")
    events = pd.DataFrame(data, copy=False)
    oracle = pd.DataFrame(
        {"p_fail_true": take("p_fail"), "mastery_true": take("mastery")}, copy=False
    )
    return events, oracle
