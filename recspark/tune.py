"""Self-tuning of implicit ALS: quasi-random search plus successive halving on a validation split.

What is searched (:data:`SPACE`), chosen to span real data rather than one dataset:

* ``rank`` in {16, 32, 64, 128, 256};
* ``reg`` (Spark's ``regParam``) log-uniform in [0.003, 10]. Spark's ALS is ALS-WR: the penalty of each user
  (book) is ``regParam`` times its number of interactions, so the best value moves with user activity (dense
  raters with ~100 ratings want a small value, a long tail of one-book shelvers a larger one) -- the search finds
  it per dataset instead of fixing it;
* ``alpha`` log-uniform in [0.1, 100] (confidence ``1 + alpha * r``);
* ``scheme`` in binary / linear / log / bm25 and ``signals`` in all / shelved / read / rating / review
  (:mod:`recspark.features`).

How (``successive_halving``): ``n`` configurations -- the built-in default first, the rest from a scrambled
Halton sequence over the space (seeded, so a rerun samples the same) -- are each fitted with few iterations
(a quarter of ``max_iter``) and scored by NDCG@K on the validation split; the best third go on with twice the
iterations, and so on until the survivors run the full ``max_iter``. The cost is about ``log_3(n) + 1`` full fits'
worth of iterations per surviving configuration instead of ``n`` full fits. A time budget ends the search early
(in local mode counted on :func:`recspark.spark.work_clock`, Spark's CPU seconds over its cores, so that a machine
busy with other work buys the same trials and the same choice, only later; on a cluster the wall clock):
no new trial starts after it, and one trial may use at most a quarter of it (a slower one is cancelled through
its Spark job group). A trial bound to pass that share -- at the pace per iteration it or its rank has shown --
is not started: the next best of its rung runs in its place (on ~50k books three rank-256 trials were once
cancelled in turn, 360 s of a 440-s budget), or, when it is the best so far, the search stops with the rung
before. The best configuration of the highest rung reached wins; a smaller rank within 1% of its
validation score is preferred (the difference is noise, the cost is not). It then has to beat the built-in
default by two standard errors, user by user at the same iterations, or the default wins
(:func:`keep_the_default_unless_beaten`), compared with the winner's iterations (:func:`level_the_default`).

Where (``validation_split``): a per-user holdout carved from the *training* side of the evaluation split (never
the evaluation holdout), with its own seed; a sparse user is held out here only when the evaluation split did not
hold them out (the other half, :class:`recspark.split.Sparse`). Relevant validation books are the held-out ones
the user did not dislike (``rating`` 0 = unrated, or >= 4) and, where the data records reading (UCSD shelves:
read and unread ones), that they read (:func:`recspark.candidates.liked`): a book waiting on a to-read shelf is
not yet a success where the data can tell. When the training
data is large, a hashed sample of users (all of each sampled user's books, so the activity distribution that
``regParam`` depends on is kept) bounds the tuning cost. With fewer than :data:`MIN_USERS` validation users the
search is skipped and the built-in defaults are used, with a message.

Results: every trial goes to ``model/tuning_trials``; the winner, its validation score and the runner-up to
``model/best_params``, keyed by the silver input versions, so ``recspark run --tune auto`` searches once per input
and reuses the result afterwards.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recspark import (
    als,
    baselines,
    candidates,
    content,
    itemcf,
    metrics,
    ranker,
    series,
    split,
    stars,
    topk,
    twostage,
)
from recspark import columns as C
from recspark.features import SCHEMES, SIGNALS, Weights, preference
from recspark.spark import WALL_CLOCK, set_logger_level, work_clock
from recspark.tables import MODEL, Lakehouse

log = logging.getLogger(__name__)

SPACE = {
    "rank": (16, 32, 64, 128, 256),
    "reg": (0.003, 10.0),  # log-uniform
    "alpha": (0.1, 100.0),  # log-uniform
    "scheme": SCHEMES,
    "signals": tuple(SIGNALS),
}
MIN_USERS = 50  # fewer validation users: too noisy to choose from, use the built-in defaults
MAX_TUNE_INTERACTIONS = 2_000_000  # larger training data is tuned on a sample of users
DEFAULT_CONFIGS = 18
FAMILIES = ("als", "itemcf", "content", "popularity")  # what `run` can publish, chosen by validation NDCG


def trained_families(text: str) -> tuple[str, ...]:
    """``"als, itemcf"`` -> ``("als", "itemcf")``: the families to train and evaluate (``--models``, the notebooks'
    ``models`` widget); ValueError for an empty list or one that names anything else (popularity needs no
    training and is always evaluated)."""
    names = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    bad = [n for n in names if n not in FAMILIES or n == "popularity"]
    if not names or bad:
        raise ValueError(
            f"{text!r}: give a comma-separated list of als, itemcf, content (popularity is always evaluated)"
        )
    return names


# item-CF configurations scored on the validation split (one co-occurrence count serves them all)
ITEMCF_GRID = (
    {"similarity": "cosine", "neighbours": 100},
    {"similarity": "cosine", "neighbours": 400},
    {"similarity": "jaccard", "neighbours": 100},
    {"similarity": "jaccard", "neighbours": 400},
    # EASE (recspark.ease): λ relative to the mean readers per catalogue book. On validation the best l2 was 4
    # on the real goodbooks-10k to_read shelves, 16 (the top of the first grid, still rising) on generated
    # ratings and shelves: the grid spans 1 to 64, and goes on (256, 1024) while its top wins (beyond_the_edge)
    {"similarity": "ease", "neighbours": 400, "ease_l2": 1.0},
    {"similarity": "ease", "neighbours": 400, "ease_l2": 4.0},
    {"similarity": "ease", "neighbours": 400, "ease_l2": 16.0},
    {"similarity": "ease", "neighbours": 400, "ease_l2": 64.0},
)
# EASE's cut: how many weights each book keeps of B (by magnitude, negative ones too; 400 in ITEMCF_GRID). With its
# l2 chosen, half and twice as many are tried, each kept where it scores higher (the same rule and the same factor-2
# step as refined). The cut moves the test score more than l2 on some data and little on others. Numpy EASE on
# bench/quality.py's split, the product's l2 chosen on 3 emulated tuning splits each (bench/ease_cut.py): 300
# generated heavy shelvers 0.2212 -> 0.2225 (test: 0.2312 at 200 against 0.2155 at 400 for l2 4, but 0.1572 at 800);
# goodbooks-like ratings 0.0976 -> 0.0997; MovieLens 100k 0.3555 -> 0.3568; generated UCSD 0.3240 -> 0.3232 and
# ratings 0.1493 -> 0.1479. Searching every cut of 100-800 instead lost on the heavy shelvers (0.2146): validation
# fits thinner shelves and wants smaller cuts than the test. Through the product (docs/quality.md, "EASE's cut
# searched"): goodbooks-like ratings 0.1042 -> 0.1082, heavy shelvers and MovieLens unchanged, three sets -0.2% to
# -1.5%, every choice on a validation margin of 1% or less
EASE_CUT_STEPS = (0.5, 2.0)
# the weight β of item-CF's popularity prior, tried on the best configuration of ITEMCF_GRID (β = 0 there). In
# numpy on sparse "next shelves" users a blend beat popularity by 7% (bench/next_blend.py: validation best β 1,
# published-shape best 0.3); on validation in the product β rose to 3 there and tied with popularity, while
# generated ratings and shelves kept β = 0 (README, "The sparse next shelves shape"); beyond 3 (9, 27) while the
# top wins (beyond_the_edge)
ITEMCF_PRIOR_GRID = (0.1, 0.3, 1.0, 3.0)
# the weight γ of item-CF's liked-share prior (recspark.itemcf, step 5), tried after β where some shelves are liked
# and others not (kept at 0 unless one scores higher; beyond the grid likewise). Numpy EASE on bench/quality.py's
# split with the book's liked share added to the scaled sums (bench/liked_prior.py; relevant: read, or rated 4+):
# 300 heavy shelvers 0.2260 -> 0.2409 at γ 0.1 (-8% at 0.3: the sums of hundreds of seeds lie close below the
# top); generated UCSD shelves (read weights) 0.3887 -> 0.3945 at 0.2; MovieLens (star weights) 0.3741 -> 0.3715
# at 0.1, lower at every γ (docs/quality.md, "Item-CF's liked-share prior")
ITEMCF_LIKED_GRID = (0.03, 0.1, 0.3)
# item-CF's configuration is chosen by validation NDCG at this many times K, not at K: a top 20 holds about twice
# the hits of a top 10, so the choice is steadier, and it is near enough to the top 10 to want the same model (at 50
# sparse to-read shelves wanted a larger l2 than at 10). Emulated tuning splits, EASE's l2 scored on the test with
# all the data (bench/itemcf_choice.py; docs/quality.md, "Item-CF chosen at twice K"): MovieLens 100k by NDCG@10
# 0.3419, by @20 and refined 0.3508; generated goodbooks-like ratings 0.0805 / 0.0829; real to-read shelves 0.0817
# / 0.0821
ITEMCF_CHOICE_DEPTH = 2
# content configurations: the weight of the popularity prior and the taste half-life (days)
CONTENT_GRID = (
    {"popularity_weight": 0.3, "half_life_days": 365.0},
    {"popularity_weight": 1.0, "half_life_days": 365.0},
    {"popularity_weight": 3.0, "half_life_days": 365.0},
    {"popularity_weight": 1.0, "half_life_days": None},
)
SKIPPED_NOTE = " skipped: "  # a search note "<family> skipped: <why>" (Search.notes; families_skipped)
ETA = 3  # successive halving keeps the best 1/ETA of each rung
MIN_BUDGET_S = 180.0
ML_INSTRUMENTATION = "org.apache.spark.ml.util.Instrumentation"  # Spark ML's logger of a failed fit
# what logs a cancelled trial's killed tasks (a WARN per task and cached block: "TaskKilled", "Putting block ...
# failed"): quiet while the trial is being cancelled, as Spark ML's ERROR is
QUIET_WHILE_CANCELLING = (
    ML_INSTRUMENTATION,
    "org.apache.spark.scheduler.TaskSetManager",
    "org.apache.spark.storage.BlockManager",
)
# auto budget: this many times the first (default, lowest-rung) trial. 40 on the wall clock until 2026-12-07; on
# the work clock 50, as the first trial's one-off serial work (the first fit, the first preference table cached)
# counts less there: its CPU seconds per core were 0.77-0.81 of its wall seconds alone on 2 cores, the later
# trials' 0.9-0.99 (to_read, MovieLens 100k), so 40 / 0.8 keeps the budget the wall clock gave an idle machine
BUDGET_PER_FIRST_TRIAL = 50.0
MAX_TRIAL_SHARE = 0.25  # one trial may take at most this share of the budget
PARSIMONY = 0.01  # a smaller rank within 1% of the best validation score wins (noise, not a real difference)
# the search's winner replaces the built-in configuration only when its per-user validation NDCG is ahead of the
# default's, at the same iterations, by at least this many standard errors of the paired difference
# (keep_the_default_unless_beaten). 2, not 1: the winner is the best of 18, and the expected largest of 18
# independent standard normals is about 1.8; every winner measured at z 0.7-1.25 scored lower out of sample, those
# at z 5-7 higher as ALS alone (docs/quality.md, "Self-tuning: two standard errors against the default")
DEFAULT_MARGIN_Z = 2.0
# the series rule (recspark.series) is switched off only where it costs validation NDCG@K by at least this many
# standard errors of the paired difference: it is the product's rule (a reader is sent to volume 1), kept unless
# the data shows its readers start series elsewhere (series_check)
SERIES_MARGIN_Z = 2.0


@dataclass(frozen=True)
class Trial:
    """One point of the search space."""

    rank: int
    reg: float
    alpha: float
    scheme: str
    signals: str

    def weights(self) -> Weights:
        return Weights.preset(self.signals, self.scheme)

    def als_params(self, max_iter: int, seed: int) -> als.AlsParams:
        return als.AlsParams(rank=self.rank, reg=self.reg, alpha=self.alpha, max_iter=max_iter, seed=seed)

    def as_dict(self) -> dict:
        return asdict(self)


def default_trial() -> Trial:
    """The built-in configuration (``AlsParams`` and ``Weights`` defaults)."""
    p, w = als.AlsParams(), Weights()
    return Trial(rank=p.rank, reg=p.reg, alpha=p.alpha, scheme=w.scheme, signals="all")


def _primes(n: int) -> list[int]:
    out, c = [], 2
    while len(out) < n:
        if all(c % p for p in out):
            out.append(c)
        c += 1
    return out


def halton(n: int, dims: int, seed: int) -> np.ndarray:
    """``n`` points of the Halton sequence in ``[0, 1)^dims``, randomly shifted (Cranley-Patterson) by ``seed``."""
    pts = np.zeros((n, dims))
    for d, base in enumerate(_primes(dims)):
        for i in range(n):
            f, x, k = 1.0, 0.0, i + 1
            while k:
                f /= base
                x += f * (k % base)
                k //= base
            pts[i, d] = x
    shift = np.random.default_rng(seed).random(dims)
    return (pts + shift) % 1.0


def sample(n: int, seed: int, space: dict | None = None) -> list[Trial]:
    """The default configuration, then ``n - 1`` quasi-random points of ``space``."""
    space = space or SPACE

    def pick(options: tuple, u: float):
        return options[min(int(u * len(options)), len(options) - 1)]

    def log_uniform(bounds: tuple[float, float], u: float) -> float:
        lo, hi = math.log(bounds[0]), math.log(bounds[1])
        return float(f"{math.exp(lo + u * (hi - lo)):.3g}")

    first = default_trial()
    if first.rank not in space["rank"]:  # a narrowed space: the default at the nearest rank searched
        first = replace(first, rank=min(space["rank"], key=lambda r: abs(math.log(r / first.rank))))
    out = [first]
    for u in halton(max(n - 1, 0), 5, seed):
        scheme = pick(space["scheme"], u[3])
        t = Trial(
            rank=int(pick(space["rank"], u[0])),
            reg=log_uniform(space["reg"], u[1]),
            alpha=log_uniform(space["alpha"], u[2]),
            scheme=scheme,
            # binary confidence ignores the signal: one name for it, so equal configurations compare equal
            signals="shelved" if scheme == "binary" else pick(space["signals"], u[4]),
        )
        if t not in out:
            out.append(t)
    return out[:n]


def rungs(max_iter: int, n_configs: int, eta: int = ETA) -> list[tuple[int, int]]:
    """``(configurations, iterations)`` per rung: ``n, n/eta, ...`` configurations, iterations doubling up to
    ``max_iter`` (the last rung always runs the full ``max_iter``)."""
    levels = max(1, math.ceil(math.log(max(n_configs, 1), eta)))
    out, n = [], n_configs
    for level in range(levels):
        iters = max(1, round(max_iter / 2 ** (levels - 1 - level)))
        out.append((n, iters))
        n = max(1, n // eta)
        if n == 1 and level < levels - 1:
            out.append((1, max_iter))
            break
    if out[-1][1] != max_iter:
        out.append((max(1, out[-1][0] // eta), max_iter))
    return out


@dataclass
class Search:
    """What a search found: every trial (in order), the winner and the runner-up."""

    trials: list[dict]
    best: dict | None
    runner_up: dict | None
    budget_s: float
    seconds: float
    skipped: str | None = None  # why no search ran (then best is None)
    model: str | None = None  # the family with the best validation score (what `run` publishes)
    models: dict[str, float] | None = None  # family -> its best validation NDCG@K
    itemcf: dict | None = None  # the best item-CF configuration (ItemCfParams fields)
    content: dict | None = None  # the best content configuration (ContentParams fields)
    notes: list[str] | None = None  # families skipped, and why
    stars: dict | None = None  # predicted stars: the chosen regParam, user shrinkage and validation RMSE
    ranker: dict | None = (
        None  # the two-stage check: ranker vs every single model on held-out validation users
    )
    relevant: str | None = None  # which held-out validation books counted (candidates.liked, in words)
    default_check: dict | None = (
        None  # the winner against the built-in configuration (keep_the_default_unless_beaten)
    )
    validation: dict | None = None  # how the validation split was made (validation_split)
    series: dict | None = None  # the series rule on validation (series_check); None: not checked
    clock: str = "wall"  # what budget_s and the trials' seconds count (spark.Clock.name)

    @property
    def n_skipped(self) -> int:
        """Trials not started because they would have been cancelled (:func:`unaffordable`)."""
        return sum(1 for r in self.trials if r.get("skipped"))

    def summary(self) -> dict:
        return {
            "best": self.best,
            "runner_up": self.runner_up,
            "trials": len(self.trials) - self.n_skipped,
            "trials_skipped": self.n_skipped,
            "budget_s": round(self.budget_s, 1),
            "clock": self.clock,
            "seconds": round(self.seconds, 1),
            "skipped": self.skipped,
            "model": self.model,
            "models": self.models,
            "itemcf": self.itemcf,
            "content": self.content,
            "notes": self.notes,
            "stars": self.stars,
            "ranker": self.ranker,
            "relevant": self.relevant,
            "default_check": self.default_check,
            "validation": self.validation,
            "series": self.series,
        }


class TrialTimeout(RuntimeError):
    """A trial ran past its share of the budget and was cancelled."""


def unaffordable(pace_s: float | None, iters: int, limit_s: float | None) -> str | None:
    """Why a trial of ``iters`` iterations is not worth starting, or None: at ``pace_s`` seconds per iteration
    it would run past ``limit_s`` and be cancelled. The pace includes a trial's fixed costs (scoring the
    validation users), so it overstates longer trials a little: a trial close to the limit may be skipped that
    would just have fitted."""
    if pace_s is None or limit_s is None or pace_s * iters <= limit_s:
        return None
    return (
        f"{iters} iterations at {pace_s:.1f} s each would take about {pace_s * iters:.0f} s, more than the "
        f"{limit_s:.0f} s one trial may take"
    )


def run_trial(
    score: Callable[[Trial, int, float | None], float],
    t: Trial,
    rung: int,
    iters: int,
    limit: float | None,
    clock: Callable[[], float],
) -> tuple[float | None, dict]:
    """Fit and score one trial: its score (None when it ran past ``limit`` and was cancelled) and its row (the
    score rounded; ``seconds`` on ``clock``, and ``wall_seconds`` too when that is not the wall clock)."""
    t0, wall0 = clock(), time.perf_counter()
    try:
        value: float | None = float(score(t, iters, limit))
    except TrialTimeout:
        value = None
        log.warning("trial cancelled after %.0f s (its share of the budget): %s", clock() - t0, t)
    row = {**t.as_dict(), "rung": rung, "iterations": iters}
    row["ndcg"] = round(value, 5) if value is not None else None
    row["seconds"] = round(clock() - t0, 1)
    if clock != WALL_CLOCK:  # the budget's clock is not the wall clock: both are kept
        row["wall_seconds"] = round(time.perf_counter() - wall0, 1)
    return value, row


def successive_halving(
    configs: list[Trial],
    score: Callable[[Trial, int, float | None], float],
    max_iter: int,
    budget_s: float | None,
    eta: int = ETA,
    clock: Callable[[], float] = WALL_CLOCK,
    on_trial: Callable[[dict], None] | None = None,
) -> Search:
    """Run the rungs; ``score(trial, iterations, limit_s)`` fits and scores one configuration and raises
    :class:`TrialTimeout` when it takes longer than ``limit_s`` (None: no limit).

    ``budget_s`` None: auto, :data:`BUDGET_PER_FIRST_TRIAL` times the first trial (the default configuration at
    the first rung's iterations, about ten full fits of it), at least :data:`MIN_BUDGET_S`. No trial starts
    after the budget is spent, and each may take at most :data:`MAX_TRIAL_SHARE` of it (an expensive
    configuration, e.g. rank 256 on a large catalogue, is cancelled rather than eating the search), so the
    search ends within ``(1 + MAX_TRIAL_SHARE)`` times the budget.

    A trial bound to pass that share is not started (:func:`unaffordable`; recorded with ``"skipped"``: why).
    Its pace per iteration is its own at the rung before, or on the first rung the fastest of its rank so far
    (a cancelled trial's included). A skipped configuration's place in the rung goes to the next best, except
    the rung's leader (the best of the rung before): when it cannot go on, the search stops and the rung
    before stands, as the others' scores at more iterations are not comparable with its own."""
    start = clock()
    plan = rungs(max_iter, len(configs), eta)
    alive = list(configs)  # this rung's candidates, best first from the second rung on
    quota = len(configs)  # how many of them run
    results: list[dict] = []
    finished: list[dict] = []  # results of the last rung that ran, best first
    budget = budget_s
    stopped = None  # why the search ended early
    rank_pace: dict[int, float] = {}  # rank -> the fewest seconds per iteration a trial of that rank took
    own_pace: dict[Trial, float] = {}  # configuration -> its seconds per iteration at its latest rung

    def record(row: dict) -> None:
        results.append(row)
        if on_trial:
            on_trial(row)

    for level, (n_keep, iters) in enumerate(plan):
        quota = min(quota, n_keep)
        rung_results = []
        ran = 0
        for position, t in enumerate(alive):
            if ran >= quota:
                break
            if budget is not None and clock() - start > budget and (rung_results or finished):
                stopped = f"tuning budget of {budget:.0f} s reached"
                break
            leader = level > 0 and position == 0
            limit = None if budget is None else budget * MAX_TRIAL_SHARE
            if too_slow := unaffordable(own_pace.get(t, rank_pace.get(t.rank)), iters, limit):
                skipped = {
                    "rung": level,
                    "iterations": iters,
                    "ndcg": None,
                    "seconds": 0.0,
                    "skipped": too_slow,
                }
                record({**t.as_dict(), **skipped})
                log.debug("trial skipped: %s: %s", t, too_slow)
                if leader:
                    stopped = f"the best configuration so far is too slow for rung {level} ({too_slow})"
                    break
                continue
            ran += 1
            value, row = run_trial(score, t, level, iters, limit, clock)
            record(row)
            # a cancelled trial's pace is a lower bound of its true one, which is all the skipping needs
            own_pace[t] = row["seconds"] / iters
            rank_pace[t.rank] = min(rank_pace.get(t.rank, math.inf), own_pace[t])
            if value is not None:
                rung_results.append((value, t, row))
            elif leader:
                stopped = f"the best configuration so far was cancelled at rung {level}"
                break
            if budget is None:
                budget = max(MIN_BUDGET_S, BUDGET_PER_FIRST_TRIAL * row["seconds"])
        if rung_results:
            rung_results.sort(key=lambda r: -r[0])
            finished = [r[2] for r in rung_results]
            alive = [r[1] for r in rung_results]
            quota = max(1, len(alive) // eta)
        if stopped:
            log.warning("%s: keeping the best of rung %d", stopped, level if rung_results else level - 1)
            break
    if (
        finished
    ):  # parsimony: the smallest rank within PARSIMONY of the best score (cheaper to train and serve)
        top = finished[0]["ndcg"]
        near = [r for r in finished if r["ndcg"] >= top * (1 - PARSIMONY)]
        pick = min(near, key=lambda r: (r["rank"], -r["ndcg"]))
        finished = [pick] + [r for r in finished if r is not pick]
    best = finished[0] if finished else None
    runner_up = finished[1] if len(finished) > 1 else None
    if runner_up is None and best is not None:  # the best other configuration of an earlier rung
        others = [
            r
            for r in results
            if r["rung"] < best["rung"] and r["ndcg"] is not None and _trial_of(r) != _trial_of(best)
        ]
        runner_up = max(others, key=lambda r: (r["rung"], r["ndcg"]), default=None)
    return Search(results, best, runner_up, budget or 0.0, clock() - start)


def chosen_on_the_other_half(scores: dict[Trial, np.ndarray]) -> np.ndarray:
    """Per-user scores of a selection made without the user: the validation users (one order, every array) are
    split in two halves by position (even, odd); each half gets the scores of the configuration with the best
    mean on the *other* half. Compared with the default, the result estimates what choosing among ``scores``
    gains on users the choice did not see: the best of many configurations looks better on the users it was
    chosen on than it is (the winner's curse), the more so the fewer the hits."""
    arrays = list(scores.values())
    half = np.arange(len(arrays[0])) % 2
    out = np.empty(len(arrays[0]))
    for h in (0, 1):
        best = max(arrays, key=lambda v: float(v[half != h].mean()))
        out[half == h] = best[half == h]
    return out


def level_the_default(
    search: Search,
    default: Trial,
    score: Callable[[Trial, int, float | None], float],
    on_trial: Callable[[dict], None] | None = None,
    clock: Callable[[], float] = WALL_CLOCK,
) -> None:
    """Score the default with the winner's iterations when the search left it on an earlier rung, so that
    :func:`keep_the_default_unless_beaten` compares the two at the same, higher fidelity. Configurations converge
    at different speeds: on 300 generated heavy shelvers the default scored 0.104 / 0.132 / 0.160 on the held-out
    test at 3 / 6 / 12 iterations and the search's winner (rank 32, binary) 0.116 / 0.123 / 0.123
    (``bench/als_configs.py --iterations``), so a comparison at 6 iterations kept the wrong one. One trial more
    (appended to ``search.trials``), capped at its share of the budget like the others; cancelled, the comparison
    stays where it was."""
    best = search.best
    if best is None or _trial_of(best) == default:
        return
    done = [r["iterations"] for r in search.trials if r["ndcg"] is not None and _trial_of(r) == default]
    if not done or max(done) >= best["iterations"]:
        return
    limit = search.budget_s * MAX_TRIAL_SHARE if search.budget_s else None
    _, row = run_trial(score, default, best["rung"], best["iterations"], limit, clock)
    search.trials.append(row)
    if on_trial:
        on_trial(row)


def keep_the_default_unless_beaten(
    search: Search,
    default: Trial,
    per_user: dict[tuple[Trial, int], np.ndarray],
    min_z: float = DEFAULT_MARGIN_Z,
) -> Search:
    """The built-in configuration unless beaten: the search's winner is kept only when it beats the default
    (``default``, the first trial) by at least ``min_z`` standard errors (:data:`DEFAULT_MARGIN_Z`, 2), else the
    default wins and the search's winner becomes the runner-up.

    Why: validation NDCG is an average over few hits where users are few, and the best of 18 configurations is
    partly the luckiest. On 300 generated heavy shelvers the search's winner (regParam 0.0095, alpha 0.26,
    linear; 0.0108 on validation against the default's 0.0090, both at 3 iterations) scored 0.1151 on the
    held-out test against the default's 0.1601 (``bench/als_configs.py``, ``bench/results/als_configs.json``).
    The default was chosen to hold across kinds of data (never below 89% of the best of 16 candidates on real
    ``to_read`` shelves, generated ratings and generated shelves; ``bench/tune_defaults.py``), so a winner has
    to show that it is better, not only that it scored higher.

    How: the two are compared at the highest rung the default reached (:func:`level_the_default` takes it to the
    winner's), where the winner was scored with the same iterations (it passed every rung up to its own): user
    by user, ``z`` = the mean per-user difference over its standard error (:func:`recspark.metrics.paired_z`).
    The winner was chosen on those same users, so the search's choosing is also cross-fitted
    (:func:`chosen_on_the_other_half`) on the first rung, where every configuration was scored and none chosen
    yet (a later rung holds only those promoted on every user's scores): each half of the users gets the
    configuration that scored best on the other half, and that too must be ahead of the default by ``min_z``
    (``z_cross_fitted``). ``per_user[(trial, iterations)]`` holds each scored trial's NDCG@K per validation
    user, in one user order. Sets ``default_check`` (the scores, both z, and which was chosen)."""
    best = search.best
    scored = [r for r in search.trials if r["ndcg"] is not None and _trial_of(r) == default]
    if best is None or not scored:
        return search
    if _trial_of(best) == default:
        search.default_check = {"chosen": "default", "z": None, "min_z": min_z}
        return search
    at = max(scored, key=lambda r: r["iterations"])
    iters = at["iterations"]
    ours, theirs = per_user[(_trial_of(best), iters)], per_user[(default, iters)]
    _, z = metrics.paired_z(ours, theirs)
    first = min(i for _, i in per_user)  # the first rung: every configuration, none chosen yet
    rivals = {t: v for (t, i), v in per_user.items() if i == first}
    _, z_cross = metrics.paired_z(chosen_on_the_other_half(rivals), per_user[(default, first)])
    check = {
        "iterations": iters,
        "cross_fitted_iterations": first,
        "winner_ndcg": metrics.recorded_mean(ours),
        "default_ndcg": metrics.recorded_mean(theirs),
        "z": metrics.recorded_z(z),  # None: the same difference for every user
        "z_cross_fitted": metrics.recorded_z(z_cross),
        "configurations": len(rivals),
        "min_z": min_z,
    }
    if z >= min_z and z_cross >= min_z:
        search.default_check = {**check, "chosen": "winner"}
        return search
    log.info(
        "the search's winner (%s) is not ahead of the default by %.1f standard errors (z %.2f at %d iterations; "
        "a choice among the %d configurations of the first rung, cross-fitted: z %.2f): keeping the default",
        describe(best),
        min_z,
        z,
        iters,
        len(rivals),
        z_cross,
    )
    search.default_check = {**check, "chosen": "default"}
    search.runner_up, search.best = best, at
    return search


SETTLE_S = 10.0  # after a cancellation, wait at most this long for the killed tasks to end


def settle(spark: SparkSession, group: str, timeout_s: float = SETTLE_S) -> bool:
    """Wait until no task of the job group ``group`` is running (True), or ``timeout_s`` passed (False). Cancelling
    a job group returns before its tasks end, and each killed task logs its WARNs when it does ("Lost task ...
    TaskKilled", "Putting block ... failed"): waiting keeps them inside the quiet window of :func:`cancel_after`."""
    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + timeout_s
    while True:
        busy = False  # a job still running (between two stages no task may be), or a task not yet ended
        for job in tracker.getJobIdsForGroup(group):
            info = tracker.getJobInfo(job)
            if info is None:
                continue
            busy |= info.status == "RUNNING"
            for stage in info.stageIds:
                stage_info = tracker.getStageInfo(stage)
                busy |= stage_info is not None and stage_info.numActiveTasks > 0
        if not busy:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


WATCH_S = 0.5  # how often cancel_after reads its clock


@contextmanager
def cancel_after(
    spark: SparkSession, limit_s: float | None, clock: Callable[[], float] = WALL_CLOCK
) -> Iterator[None]:
    """Run the block's Spark jobs in a job group that is cancelled once ``limit_s`` seconds of ``clock`` have
    passed (read every :data:`WATCH_S` s); the block then raises :class:`TrialTimeout`. None: no limit. The
    loggers of :data:`QUIET_WHILE_CANCELLING` are off from the cancellation until its tasks have ended
    (:func:`settle`)."""
    if limit_s is None:
        yield
        return
    sc = spark.sparkContext
    group = f"recspark-tune-{uuid.uuid4().hex[:8]}"
    done = threading.Event()
    fired = threading.Event()
    quieted: dict[str, str | None] = {}
    t0 = clock()

    def watchdog() -> None:
        while (left := limit_s - (clock() - t0)) > 0:
            if done.wait(min(left, WATCH_S)):
                return
        fired.set()
        # Spark ML logs a cancelled fit as an ERROR with a Java stack trace, and every killed task a WARN: this
        # cancellation is intended (the warning below says so), and the exception still reaches the block
        for name in QUIET_WHILE_CANCELLING:
            quieted[name] = set_logger_level(spark, name, "OFF")
        while not done.wait(0.5):  # a fit submits job after job: cancel each until the block gives up
            sc.cancelJobGroup(group)

    sc.setJobGroup(group, "recspark tuning trial", interruptOnCancel=True)
    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    try:
        yield
    except Exception as exc:
        if fired.is_set():
            raise TrialTimeout(f"cancelled after {limit_s:.0f} s") from exc
        raise
    finally:
        done.set()
        thread.join()
        if fired.is_set() and not settle(spark, group):
            log.debug("tasks of the cancelled trial still running after %.0f s", SETTLE_S)
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
        for name, level in quieted.items():
            if level is not None:
                set_logger_level(spark, name, level)


def describe(row: dict) -> str:
    """One trial result in words (the CLI summary and the report)."""
    return (
        f"rank {row['rank']}, regParam {row['reg']:g}, alpha {row['alpha']:g}, scheme {row['scheme']}, "
        f"signals {row['signals']} (validation NDCG@10 {row['ndcg']:.4f} at {row['iterations']} iterations)"
    )


def describe_runner_up(best: dict, second: dict, check: dict | None = None) -> str:
    """The runner-up in words (:func:`describe`), with why it was not chosen where it scored higher: the search's
    winner that the default check (``check``, :func:`keep_the_default_unless_beaten`) did not keep, or, at the
    winner's iterations, a larger rank the parsimony rule (:data:`PARSIMONY`) passed over."""
    text = describe(second)
    if (check or {}).get("chosen") == "default" and "winner_ndcg" in check:
        return text + "; the search's best, not kept: the built-in configuration was not beaten (below)"
    same_rung = second["iterations"] == best["iterations"]
    if same_rung and second["ndcg"] > best["ndcg"] and second["rank"] > best["rank"]:
        text += (
            f"; it scored higher, but within {PARSIMONY:.0%} of the winner at a larger rank, so the smaller rank"
            " was chosen (cheaper to train and serve)"
        )
    return text


def describe_validation(made: dict | None) -> str:
    """The validation split in words (``Search.validation``), or "" for a record written before it was kept."""
    if not made:
        return ""
    return f"{made['held_out']:,} books held out from {made['users']:,} users, at most {made['held_out_cap']:,} each"


def describe_series(found: dict) -> str:
    """The series rule's check on validation (:func:`recspark.tune.series_check`) in words."""
    z = found.get("z")
    return (
        f"{'kept' if found['kept'] else 'switched off'}: item-CF's validation lists scored NDCG "
        f"{found['ndcg_in_order']} in series order against {found['ndcg_as_ranked']} as ranked "
        f"(z {z if z is not None else 'n/a'}; off only below -{found['min_z']:g}), "
        f"{100 * found['replaced_share']:.1f}% of their rows replaced by a first volume"
    )


def _trial_of(row: dict) -> Trial:
    return Trial(**{k: row[k] for k in ("rank", "reg", "alpha", "scheme", "signals")})


# -- on Spark -------------------------------------------------------------------------------------------------
def liked(df: DataFrame, reads: bool | None = None) -> DataFrame:
    """Held-out books that count as relevant (:func:`recspark.candidates.liked`): unrated or rated 4 or 5, and
    read when ``reads`` (by default, when ``df`` itself records reading:
    :func:`recspark.candidates.reads_recorded`)."""
    if reads is None:
        reads = candidates.reads_recorded(df)
    return df.where(candidates.liked(reads))


def user_sample(train: DataFrame, max_interactions: int, seed: int) -> tuple[DataFrame, float]:
    """All books of a hashed sample of users, so that about ``max_interactions`` rows remain."""
    n = train.count()
    if n <= max_interactions:
        return train, 1.0
    fraction = max_interactions / n
    h = F.abs(F.xxhash64(F.lit(seed), F.col(C.USER_IDX)) % F.lit(1_000_003)) / F.lit(1_000_003.0)
    return train.where(h < fraction), fraction


def validation_split(
    lake: Lakehouse,
    train: DataFrame,
    seed: int,
    evaluation_fraction: float,
    max_interactions: int = MAX_TUNE_INTERACTIONS,
) -> tuple[split.Split, dict]:
    """Tuning train/validation from ``train`` (the training side of the evaluation split, which held out
    ``evaluation_fraction`` with ``seed``), persisted and checked; and how it was made (users, the per-user cap of
    :func:`recspark.split.validation_cap`, held-out rows, the share of users sampled)."""
    sampled, fraction = user_sample(train, max_interactions, seed)
    sparse = split.for_validation(seed, evaluation_fraction)
    n_users = sampled.select(C.USER_IDX).distinct().count()
    cap = split.validation_cap(n_users)
    if cap > split.MAX_HELD_OUT:
        log.info(
            "%d users: validation holds out up to %d books per user (not %d), at least %s in all",
            n_users,
            cap,
            split.MAX_HELD_OUT,
            f"{split.MIN_VALIDATION_ROWS:,}",
        )
    s = split.holdout(sampled, fraction=0.2, seed=seed + 1000, sparse=sparse, max_held_out=cap)
    lake.write(s.train, MODEL, "tune_train")
    lake.write(s.test, MODEL, "tune_valid")
    persisted = split.Split(lake.read(MODEL, "tune_train"), lake.read(MODEL, "tune_valid"), "holdout")
    split.check_split(persisted)
    made = {"users": n_users, "held_out_cap": cap, "held_out": persisted.test.count(), "sampled": fraction}
    return persisted, made


def tune(
    spark: SparkSession,
    lake: Lakehouse,
    train: DataFrame,
    input_key: str,
    n_configs: int = DEFAULT_CONFIGS,
    k: int = 10,
    seed: int = 42,
    max_iter: int = 12,
    budget_s: float | None = None,
    space: dict | None = None,
    tracker=None,
    models: tuple[str, ...] = ("als", "itemcf", "content"),
    books: DataFrame | None = None,
    ranker_params: ranker.RankerParams | None = None,
    ranker_path: str | None = None,
    evaluation_fraction: float = 0.2,
    ranker_required: bool = False,
    full_rows: int | None = None,
) -> Search:
    """Search ALS parameters on a validation split carved from ``train`` (the training side of an evaluation
    split of ``evaluation_fraction`` and ``seed``), score the other ``models`` (item-CF
    configurations of :data:`ITEMCF_GRID`, popularity) on the same split, and store the trials, the ALS winner
    and the winning family. With ``ranker_params`` (and ALS and item-CF among ``models``) the two-stage ranker
    is trained and checked on the same split too (:func:`recspark.twostage.validate`) and saved to
    ``ranker_path``; when it beats every single model it becomes the winning family. The check is skipped when
    it would refit ALS beyond what the budget allows (:func:`ranker_check_skipped`), unless ``ranker_required``
    (``--model ranker``). ``full_rows``: the rows a published run fits on, how far the blend's learning curve
    reaches (:class:`recspark.twostage.Thinner`; None: ``train``'s rows over ``1 - evaluation_fraction``)."""
    t0 = time.perf_counter()
    s, made = validation_split(lake, train, seed, evaluation_fraction)
    tune_train = s.train.cache()
    reads = candidates.reads_recorded(tune_train)
    truth = liked(s.test, reads).select(C.USER_IDX, C.BOOK_IDX).cache()
    relevant = f"{'read and ' if reads else ''}not rated below {candidates.LIKED_STARS} stars"
    log.info("validation counts the held-out books %s", relevant)
    n_users = truth.select(C.USER_IDX).distinct().count()
    if n_users < MIN_USERS:
        msg = f"only {n_users} validation users (< {MIN_USERS}): too few to tune; using the built-in defaults"
        log.warning(msg)
        tune_train.unpersist()
        truth.unpersist()
        search = Search([], None, None, 0.0, time.perf_counter() - t0, skipped=msg, relevant=relevant)
        search.validation = made
        save(spark, lake, search, input_key, k)  # stored too, so `--tune auto` does not try again
        return search
    log.info(
        "tuning on %s interactions of %.0f%% of users, %d validation users",
        f"{tune_train.count():,}",
        100 * made["sampled"],
        n_users,
    )
    valid_users = truth.select(C.USER_IDX).distinct().cache()
    clock = work_clock(spark)  # the budget buys the same trials on a busy machine (spark.work_clock)
    log.info("tuning budget counted on the %s clock", clock.name)
    prefs_cache: dict[tuple[str, str], DataFrame] = {}
    # the models fitted with every iteration (the last rung's few): the ranker's check reuses the winner's
    full_fits: dict[Trial, object] = {}
    # every scored trial's NDCG@K per validation user (in user order), for the comparison with the default
    per_user: dict[tuple[Trial, int], np.ndarray] = {}

    def score(t: Trial, iters: int, limit_s: float | None) -> float:
        key = (t.scheme, t.signals)
        if key not in prefs_cache:
            prefs_cache[key] = tune_train.transform(preference(t.weights())).cache()
        with cancel_after(spark, limit_s, clock):
            model = als.fit(spark, prefs_cache[key], t.als_params(iters, seed))
            users = als.user_factors(model).join(valid_users, on=C.USER_IDX, how="left_semi")
            recs = topk.recommend(spark, users, als.item_factors(model), k, seen=tune_train)
            scores = metrics.per_user_scores(recs, truth, k)
        per_user[(t, iters)] = scores
        if iters == max_iter:
            full_fits[t] = model
        return metrics.mean_score(scores)

    def report(row: dict) -> None:
        log.info("trial %d: %s", len(search_rows) + 1, json.dumps(row))
        search_rows.append(row)
        if tracker is not None:
            tracker.trial(row)

    search_rows: list[dict] = []
    if "als" in models:
        configs = sample(n_configs, seed, space)
        search = successive_halving(configs, score, max_iter, budget_s, clock=clock, on_trial=report)
        level_the_default(search, configs[0], score, on_trial=report, clock=clock)
        search.clock = clock.name
        search = keep_the_default_unless_beaten(search, configs[0], per_user)
        per_user.clear()
    else:
        search = Search([], None, None, 0.0, 0.0)
    scores = {"als": search.best["ndcg"]} if search.best else {}
    best_neighbours = None
    if "itemcf" in models:
        search.itemcf, scores["itemcf"], best_neighbours = best_itemcf(
            tune_train, truth, valid_users, k, seed
        )
    vectors = None
    if "content" in models and books is not None:
        try:
            vectors = content.book_vectors(books, seed)
        except content.NoMetadata as exc:
            log.warning("content model skipped: %s", exc)
            search.notes = [f"content{SKIPPED_NOTE}{exc}"]
        else:
            search.content, scores["content"] = best_content(
                spark, tune_train, vectors, truth, valid_users, k, seed
            )
    scores["popularity"] = round(score_popularity(spark, tune_train, truth, valid_users, k), 5)
    if best_neighbours is not None and books is not None and series.has_volumes(books):
        params = itemcf.ItemCfParams(**search.itemcf)
        lists = itemcf.recommend_configured(tune_train, best_neighbours, params, 2 * k, users=valid_users)
        search.series = series_check(lists, tune_train, truth, books, k)
    if stars.enough(stars.rated(tune_train)):
        search.stars = stars.choose(spark, tune_train, s.test, stars.StarsParams(seed=seed))
    search.models = scores
    search.relevant = relevant
    search.validation = made
    search.model = max(scores, key=lambda m: (scores[m], m != "popularity"))
    log.info("validation NDCG@%d by model: %s -> %s", k, scores, search.model)
    checking = ranker_params is not None and search.best is not None and "itemcf" in models
    too_costly = ranker_check_skipped(search, max_iter) if checking and not ranker_required else None
    if checking:
        # a winner too slow to refit with every iteration: the check fits it with the iterations its trial had (a
        # cost the search paid once already) and scores the blend only; the learned ranker is not trained, as it
        # would learn from the scores of a weaker ALS than the one it would be applied to
        als_iter = search.best["iterations"] if too_costly else max_iter
        if too_costly:
            log.warning(
                "two-stage ranker not trained: %s; blend checked with ALS at %d iterations",
                too_costly,
                als_iter,
            )
        fitted = twostage.Fitted(winner_fit(search.best, full_fits, als_iter), best_neighbours)
        search.ranker = two_stage(
            spark,
            tune_train,
            truth,
            valid_users,
            books,
            vectors,
            search,
            k,
            seed,
            als_iter,
            ranker_params,
            fitted,
            learned=not too_costly,
            full_rows=full_rows or round(train.count() / (1 - evaluation_fraction)),
        )
        search.ranker["als_iterations"] = als_iter
        if too_costly:
            search.ranker["skipped"] = too_costly
        model = search.ranker.pop("model", None)
        if model is not None and ranker_path:  # saved even when it loses: `--model ranker` may ask for it
            model.write().overwrite().save(ranker_path)
            search.ranker["path"] = ranker_path
        kind = search.ranker.get("publish")  # the blend needs no file: its weight is in the record
        if kind == "blend" or (kind == "ranker" and search.ranker.get("path")):
            search.model = "ranker"
    full_fits.clear()
    if best_neighbours is not None:
        best_neighbours.unpersist()
    if vectors is not None:
        vectors.unpersist()
    search.seconds = time.perf_counter() - t0
    for df in [*prefs_cache.values(), tune_train, truth, valid_users]:
        df.unpersist()
    save(spark, lake, search, input_key, k)
    return search


def two_stage(
    spark: SparkSession,
    tune_train: DataFrame,
    truth: DataFrame,
    valid_users: DataFrame,
    books: DataFrame | None,
    vectors: DataFrame | None,
    search: Search,
    k: int,
    seed: int,
    max_iter: int,
    params: ranker.RankerParams,
    fitted: twostage.Fitted | None = None,
    learned: bool = True,
    full_rows: int | None = None,
) -> dict:
    """The ranker and the blend checked against every single model on the validation split (the chosen
    configurations of each family, ALS fitted with ``max_iter`` iterations; ``fitted`` holds those the search
    already fitted on the same split; ``learned`` False: the blend only); the summary carries the fitted model
    (None when none was trained) under ``model``. With ``full_rows`` (the rows a published run fits on) ALS and
    item-CF are fitted again on :func:`recspark.twostage.thinned` rows, for the blend's learning curve."""
    als_params, weights = apply(search.best, als.AlsParams(max_iter=max_iter, seed=seed), Weights())
    itemcf_params = itemcf.ItemCfParams(**(search.itemcf or {"seed": seed}))
    content_params = content.ContentParams(**(search.content or {"seed": seed}))
    sources = twostage.fit_sources(
        spark, tune_train, als_params, weights, itemcf_params, content_params, vectors, fitted
    )
    thinner = None
    t_thin = time.perf_counter()
    if full_rows:
        thin_train = twostage.thinned(tune_train, seed + 2000).cache()
        valid_rows, thin_rows = tune_train.count(), thin_train.count()
        reach = twostage.reach_of(full_rows, valid_rows, thin_rows)
        log.info(
            "blend learning curve: %s of %s validation training rows, %s rows published, reach %.2f",
            f"{thin_rows:,}",
            f"{valid_rows:,}",
            f"{full_rows:,}",
            reach,
        )
        if reach > 0:
            thin_sources = twostage.fit_sources(
                spark, thin_train, als_params, weights, itemcf_params, content_params, None
            )
            thinner = twostage.Thinner(thin_train, thin_sources, reach)
        else:
            thin_train.unpersist()
    thin_seconds = round(time.perf_counter() - t_thin, 1) if thinner is not None else None
    summary, model = twostage.validate(
        spark, tune_train, truth, valid_users, books, sources, k, params, learned=learned, thinner=thinner
    )
    # what fit_sources cached is released here; item-CF's table only when fit_sources fitted it (the search's
    # table, in ``fitted``, belongs to the caller)
    own = [sources.user_factors, sources.item_factors]
    if fitted is None or fitted.neighbours is None:
        own.append(sources.neighbours)
    if thinner is not None:
        thin = thinner.sources
        own += [thinner.train, thin.user_factors, thin.item_factors, thin.neighbours]
    for df in own:
        df.unpersist()
    reused = [] if fitted is None else fitted.names()
    # the learning curve's own fits (its candidates are in the summary's seconds); None: not fitted
    return {**summary, "reused": reused, "model": model, "thin_fit_seconds": thin_seconds}


def beyond_the_edge(
    grid: tuple[float, ...], best: float, try_value: Callable[[float], bool], steps: int = 2
) -> float:
    """A search that does not stop at the top of its grid: when ``best`` is the grid's largest value, values one
    step further (the grid's last ratio) are tried in turn, at most ``steps``, each by ``try_value`` (True: it
    scored higher than the best so far and is the new best), until one does not improve. Returns the best value.
    A grid is fixed in advance, and the best value of a data set it was not made for can lie beyond it (on
    generated heavy shelvers and sparse "next shelves" users EASE's best l2 and item-CF's best prior were both
    the largest of their grids)."""
    if len(grid) < 2 or best != grid[-1]:
        return best
    ratio, value = grid[-1] / grid[-2], grid[-1]
    for _ in range(steps):
        value = round(value * ratio, 6)
        if not try_value(value):
            break
        best = value
    return best


def refined(grid: tuple[float, ...], best: float, try_value: Callable[[float], bool]) -> float:
    """A geometric grid's best value refined by one halving of its step: the points halfway (on a log scale)
    between ``best`` and its neighbours on the grid (or one step beyond, past the grid's ends, as
    :func:`beyond_the_edge` went), each tried by ``try_value`` (True: the new best). Returns the best value.
    EASE's grid steps l2 by 4x, and its best value falls between the grid's points on some data (generated
    goodbooks-like ratings: l2 8 scored 3% above 4 and 16 on the test; docs/quality.md)."""
    if len(grid) < 2:
        return best
    ratio = math.sqrt(grid[1] / grid[0])
    found = best
    for value in (round(best / ratio, 6), round(best * ratio, 6)):
        if try_value(value):
            found = value
    return found


def best_itemcf(
    train: DataFrame, truth: DataFrame, users: DataFrame, k: int, seed: int
) -> tuple[dict, float, DataFrame]:
    """The item-CF configuration of :data:`ITEMCF_GRID` with the best validation NDCG at
    :data:`ITEMCF_CHOICE_DEPTH` times ``k`` (co-occurrence counted once for all of them; EASE's l2 searched beyond
    the grid when its top wins, :func:`beyond_the_edge`, and then at the halfway points on either side of the
    best, :func:`refined`; then half and twice as many EASE weights kept per book, :data:`EASE_CUT_STEPS`), then
    the best with its shelves weighed by what they say (:mod:`recspark.itemcf`,
    step 1): by their stars where some shelf is rated below 5, by whether they were read where the data records
    reading (:func:`shelf_weight_options`), and by both when each in turn scored higher; each kept when it
    scores higher, then
    the weight of its popularity prior from :data:`ITEMCF_PRIOR_GRID` by NDCG@k (kept at 0 unless one scores
    higher; beyond the grid likewise), then likewise the weight of its liked-share prior from
    :data:`ITEMCF_LIKED_GRID` where some shelves are liked and others not
    (:func:`recspark.candidates.likes_differ`), its NDCG@k, and its neighbour table (cached: the caller unpersists
    it).
    The first configuration wins ties."""
    counted: dict[str, itemcf.Cooccurrence] = {}  # one count per way of weighing the shelves
    depth = ITEMCF_CHOICE_DEPTH * k
    # (NDCG@depth: what chooses, NDCG@k: what is reported and what the prior must beat, params, table)
    best: tuple[float, float, itemcf.ItemCfParams, DataFrame] | None = None

    def try_config(cfg: dict) -> bool:
        nonlocal best
        t0 = time.perf_counter()
        params = itemcf.ItemCfParams(seed=seed, **cfg)
        if params.shelf_weights not in counted:
            counted[params.shelf_weights] = itemcf.Cooccurrence(train, params)
        co = counted[params.shelf_weights]
        nb = co.neighbours(params.similarity, params.neighbours, ease_l2=params.ease_l2).cache()
        recs = itemcf.recommend(
            train,
            nb,
            depth,
            users=users,
            shelf_weights=params.shelf_weights,
            half_life_days=params.half_life_days,
        )
        found = metrics.ranking_metrics(recs, truth, sorted({k, depth}))
        value, at_k = found[depth]["ndcg"], found[k]["ndcg"]
        log.info(
            "item-CF %s: validation NDCG@%d %.4f, NDCG@%d %.4f (%.1f s)",
            cfg,
            depth,
            value,
            k,
            at_k,
            time.perf_counter() - t0,
        )
        if best is not None and value <= best[0]:
            nb.unpersist()
            return False
        if best is not None:
            best[3].unpersist()
        best = (value, at_k, params, nb)
        return True

    try:
        for cfg in ITEMCF_GRID:
            try_config(cfg)
        if best[2].similarity == "ease":
            ease_grid = tuple(c["ease_l2"] for c in ITEMCF_GRID if c["similarity"] == "ease")
            neighbours = best[2].neighbours

            def try_l2(l2: float) -> bool:
                return try_config({"similarity": "ease", "neighbours": neighbours, "ease_l2": l2})

            beyond_the_edge(ease_grid, best[2].ease_l2, try_l2)
            refined(ease_grid, best[2].ease_l2, try_l2)
            at_l2 = {key: v for key, v in best[2].as_dict().items() if key != "seed"}
            for factor in EASE_CUT_STEPS:
                try_config({**at_l2, "neighbours": round(neighbours * factor)})
        chosen = {key: v for key, v in best[2].as_dict().items() if key != "seed"}
        won = [how for how in shelf_weight_options(train) if try_config({**chosen, "shelf_weights": how})]
        if len(won) == 2:
            try_config({**chosen, "shelf_weights": "+".join(sorted(won))})
    finally:
        for co in counted.values():
            co.release()
    _, value, params, table = best

    def sweep(priors: list[tuple[float, float]]) -> bool:
        nonlocal value, params
        improved = False
        t0 = time.perf_counter()
        for (beta, gamma), recs in itemcf.recommend_each_prior(
            train,
            table,
            k,
            priors,
            users=users,
            shelf_weights=params.shelf_weights,
            half_life_days=params.half_life_days,
        ):
            scored = metrics.ranking_metrics(recs, truth, [k])[k]["ndcg"]
            log.info(
                "item-CF popularity prior %g, liked-share prior %g: validation NDCG@%d %.4f (%.1f s)",
                beta,
                gamma,
                k,
                scored,
                time.perf_counter() - t0,
            )
            if scored > value:
                value, improved = scored, True
                params = replace(params, popularity_weight=beta, liked_weight=gamma)
            t0 = time.perf_counter()
        return improved

    sweep([(beta, 0.0) for beta in ITEMCF_PRIOR_GRID])
    beyond_the_edge(ITEMCF_PRIOR_GRID, params.popularity_weight, lambda b: sweep([(b, 0.0)]))
    if candidates.likes_differ(train):
        beta = params.popularity_weight
        sweep([(beta, gamma) for gamma in ITEMCF_LIKED_GRID])
        beyond_the_edge(ITEMCF_LIKED_GRID, params.liked_weight, lambda g: sweep([(beta, g)]))
    return params.as_dict(), round(value, 5), table


AS_RANKED, IN_SERIES_ORDER = "as ranked", "in series order"


def series_check(recs: DataFrame, train: DataFrame, truth: DataFrame, books: DataFrame, k: int) -> dict:
    """Whether the series rule (:mod:`recspark.series`: a later volume of a series the reader has not started gives
    way to its first volume) holds on this data: validation lists ``recs`` (item-CF's in the search,
    :func:`recspark.itemcf.recommend_configured`, ``2k`` deep so that a list the rule closes up is refilled from the model's own next picks,
    as publishing refills it) are scored at ``k`` against ``truth`` as ranked and in series order, user by user,
    the readers' series read from ``train``. The rule is ``kept`` unless it costs by :data:`SERIES_MARGIN_Z`
    standard errors (``z``, the paired z of in order minus as ranked). Why: the rule is right where readers start
    a series at its first volume, and costs hits where they shelve later volumes first. The generator draws a
    reader's volumes independently (volume 3 as likely as volume 1): on its goodbooks-like ratings the rule
    replaced 11% of item-CF's validation top 10s and cost 8% of validation NDCG@10 (z -7.3), and switching it
    off raised the published lists from 0.0967 to 0.1042 from outside. On the real goodbooks-10k ``to_read``
    shelves, where a later volume is often shelved to read after a first volume read elsewhere, it cost 2% (z
    -3.0; docs/quality.md, "Series order checked on validation"). Editions are not merged into works here (both
    lists alike). Call it only where some title names a volume (:func:`recspark.series.has_volumes`)."""
    recs = recs.cache()
    ordered = series.in_series_order(recs, train, books).cache()
    cols = [C.USER_IDX, C.RANK, C.BOOK_IDX]
    both = (
        recs.select(*cols, F.lit(AS_RANKED).alias("_list"))
        .unionByName(ordered.select(*cols, F.lit(IN_SERIES_ORDER).alias("_list")))
        .where(F.col(C.RANK) <= k)
    )
    _, by_list = metrics.per_user_scores_by(both, truth, k, [AS_RANKED, IN_SERIES_ORDER], "_list")
    _, z = metrics.paired_z(by_list[IN_SERIES_ORDER], by_list[AS_RANKED])
    # the top k in series order: how many rows the rule replaced (a note counts where it is not null), of how many
    replaced, rows = (
        ordered.where(F.col(C.RANK) <= k).agg(F.count(series.SERIES_NOTE), F.count(F.lit(1))).first()
    )
    recs.unpersist()
    ordered.unpersist()
    found = {
        "kept": bool(z > -SERIES_MARGIN_Z),
        "z": metrics.recorded_z(z),
        "ndcg_in_order": metrics.recorded_mean(by_list[IN_SERIES_ORDER]),
        "ndcg_as_ranked": metrics.recorded_mean(by_list[AS_RANKED]),
        "replaced_share": round(replaced / rows, 4) if rows else 0.0,
        "min_z": SERIES_MARGIN_Z,
    }
    log.info(
        "series rule on validation (item-CF's lists): NDCG@%d %.4f in series order, %.4f as ranked (z %s, %.1f%% of "
        "rows replaced): %s",
        k,
        found["ndcg_in_order"],
        found["ndcg_as_ranked"],
        found["z"],
        100 * found["replaced_share"],
        "kept" if found["kept"] else "switched off",
    )
    return found


def families_skipped(found: dict) -> set[str]:
    """The families a search (its summary ``found``) skipped for want of data, from its notes."""
    return {note.split(SKIPPED_NOTE)[0] for note in found.get("notes") or [] if SKIPPED_NOTE in note}


def shelf_weight_options(train: DataFrame) -> list[str]:
    """The ways of weighing item-CF's shelves (:data:`recspark.itemcf.SHELF_WEIGHTS`) that ``train`` can tell
    from unit weights: ``stars`` where some shelf is rated 1-4 stars, ``read`` where some shelves are read and
    others not (otherwise each gives every shelf the same weight, or a common factor that ranks alike)."""
    found = train.agg(
        F.max((F.col(C.RATING) > 0) & (F.col(C.RATING) < 5)) if C.RATING in train.columns else F.lit(False),
        F.max(F.col(C.IS_READ)) if C.IS_READ in train.columns else F.lit(False),
        F.min(F.col(C.IS_READ)) if C.IS_READ in train.columns else F.lit(True),
    ).first()
    return (["stars"] if found[0] else []) + (["read"] if found[1] and not found[2] else [])


def ranker_check_skipped(search: Search, max_iter: int) -> str | None:
    """Why the two-stage check is not run, or None. The check needs the ALS winner fitted with ``max_iter``
    iterations. When the budget ended the search before that (the winner was tried with fewer), the check would
    refit it outside the budget; its cost is extrapolated from the winner's trial (seconds per iteration times
    ``max_iter``). Above the share of the budget one trial may take (:data:`MAX_TRIAL_SHARE`) the check is
    skipped: a trial that slow would have been cancelled in the search, and the budget exists to bound exactly
    that (a rank-256 winner on a catalogue of ~50k books: a 400 s refit for a check on a few dozen users)."""
    best = search.best
    if best is None or best["iterations"] >= max_iter or not best.get("seconds"):
        return None
    projected = best["seconds"] * max_iter / best["iterations"]
    limit = MAX_TRIAL_SHARE * search.budget_s
    if projected <= limit:
        return None
    return (
        f"the ALS winner (rank {best['rank']}) was tried with {best['iterations']} of {max_iter} iterations before "
        f"the budget ran out; refitting it for the check would take about {projected:.0f} s, more than the "
        f"{limit:.0f} s one trial may take ({MAX_TRIAL_SHARE:.0%} of the {search.budget_s:.0f} s budget). "
        "`recspark run --tune full --model ranker` checks it regardless"
    )


def winner_fit(best: dict | None, full_fits: dict[Trial, object], max_iter: int):
    """The search's model of the winning configuration when it was fitted with ``max_iter`` iterations, else None."""
    if best is None or best["iterations"] != max_iter:
        return None
    return full_fits.get(_trial_of(best))


def best_content(
    spark: SparkSession,
    train: DataFrame,
    vectors: DataFrame,
    truth: DataFrame,
    users: DataFrame,
    k: int,
    seed: int,
) -> tuple[dict, float]:
    """The content configuration of :data:`CONTENT_GRID` with the best validation NDCG@k, and that score."""
    results = []
    for cfg in CONTENT_GRID:
        t0 = time.perf_counter()
        params = content.ContentParams(seed=seed, **cfg)
        recs = content.recommend(spark, train, vectors, k, params, users=users)
        value = metrics.ranking_metrics(recs, truth, [k])[k]["ndcg"]
        log.info("content %s: validation NDCG@%d %.4f (%.1f s)", cfg, k, value, time.perf_counter() - t0)
        results.append((value, params))
    value, params = max(results, key=lambda r: r[0])
    return params.as_dict(), round(value, 5)


def score_popularity(
    spark: SparkSession, train: DataFrame, truth: DataFrame, users: DataFrame, k: int
) -> float:
    """Validation NDCG@k of the most-read books (seen ones excluded): the bar every model must clear."""
    pop = baselines.as_factors(baselines.popularity(train))
    recs = topk.recommend(spark, baselines.constant_user_factors(users), pop, k, seen=train)
    return metrics.ranking_metrics(recs, truth, [k])[k]["ndcg"]


def save(spark: SparkSession, lake: Lakehouse, search: Search, input_key: str, k: int) -> str:
    tune_id = f"tune-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"  # sorts by time
    rows = [(tune_id, input_key, json.dumps(r), r["ndcg"], float(r["seconds"])) for r in search.trials]
    if rows:
        lake.write(
            spark.createDataFrame(
                rows, "tune_id string, input_key string, trial string, ndcg double, seconds double"
            ),
            MODEL,
            "tuning_trials",
            mode="append",
            options={"mergeSchema": "true"},
        )
    summary = {**search.summary(), "metric": f"ndcg@{k}"}
    lake.write(
        spark.createDataFrame(
            [(tune_id, input_key, json.dumps(search.best) if search.best else None, json.dumps(summary))],
            "tune_id string, input_key string, params string, summary string",
        ),
        MODEL,
        "best_params",
        mode="append",
        options={"mergeSchema": "true"},
    )
    return tune_id


def stored(lake: Lakehouse, input_key: str | None = None) -> dict | None:
    """The summary of the latest tuning (for ``input_key`` when given), or None. ``summary["best"]`` is None
    when that tuning fell back to the defaults."""
    if not lake.exists(MODEL, "best_params"):
        return None
    df = lake.read(MODEL, "best_params")
    if "summary" not in df.columns:  # written by an older version: no key, no summary
        return None
    df = df.where(F.col("summary").isNotNull())
    if input_key is not None:
        df = df.where(F.col("input_key") == input_key)
    row = df.orderBy(F.col("tune_id").desc()).first()
    return json.loads(row["summary"]) if row else None


def apply(best: dict, cfg_als: als.AlsParams, weights: Weights) -> tuple[als.AlsParams, Weights]:
    """The tuned trial's parameters over the given ALS parameters and weights."""
    t = _trial_of(best)
    return (
        replace(cfg_als, rank=t.rank, reg=t.reg, alpha=t.alpha),
        replace(t.weights(), half_life_days=weights.half_life_days),
    )
