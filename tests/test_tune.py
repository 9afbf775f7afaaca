"""Self-tuning: the search space and sampler, the successive-halving schedule and budget (pure Python, a fake
clock and scores), and on Spark: validation carved from the training side only, the small-data fallback,
``run --tune auto`` storing its choice in ``gold/runs`` and reusing it, MLflow tracking when installed."""

from __future__ import annotations

import collections
import json
import math

import numpy as np
import pytest
from chispa import assert_df_equality

from recspark import ranker, split, stars, tracking, tune, twostage
from recspark.als import AlsParams
from recspark.config import RunConfig, TuneOptions
from recspark.features import PREFERENCE, Weights, preference
from recspark.pipeline import HITS, make_split, run_pipeline
from recspark.tune import Trial
from tests.conftest import copy_of


def test_sample_spans_the_space_and_starts_with_the_default():
    trials = tune.sample(40, seed=3)
    assert trials[0] == tune.default_trial()
    assert len(set(trials)) == 40
    assert tune.sample(40, seed=3) == trials  # seeded
    assert tune.sample(40, seed=4) != trials
    rest = trials[1:]
    assert {t.rank for t in rest} == set(tune.SPACE["rank"])
    assert {t.scheme for t in rest} == set(tune.SPACE["scheme"])
    assert {t.signals for t in rest} == set(tune.SPACE["signals"])
    regs = [t.reg for t in rest]
    alphas = [t.alpha for t in rest]
    assert min(regs) >= 0.003 and max(regs) <= 10 and min(alphas) >= 0.1 and max(alphas) <= 100
    # log-uniform: every decade of regParam [0.003, 10] is visited, including the rating-data region < 0.1
    for lo in (0.003, 0.01, 0.1, 1.0):
        assert any(lo <= r < lo * 10 for r in regs), lo
    assert sum(r < 0.1 for r in regs) >= 0.3 * len(regs)


def test_halton_is_low_discrepancy():
    pts = tune.halton(64, 2, seed=0)
    # every cell of an 8x8 grid holds exactly one point of 64 (shifted Halton in bases 2 and 3: at most 2)
    cells = {}
    for x, y in pts:
        cells[(int(x * 8), int(y * 8))] = cells.get((int(x * 8), int(y * 8)), 0) + 1
    assert max(cells.values()) <= 2 and len(cells) >= 48


def test_rungs_schedule():
    assert tune.rungs(12, 18) == [(18, 3), (6, 6), (2, 12)]
    assert tune.rungs(12, 9) == [(9, 6), (3, 12)]
    assert tune.rungs(10, 1) == [(1, 10)]
    assert tune.rungs(12, 3) == [(3, 12)]
    for n in range(1, 40):
        plan = tune.rungs(12, n)
        assert plan[0][0] == n and plan[-1][1] == 12
        assert all(a[0] >= b[0] and a[1] <= b[1] for a, b in zip(plan, plan[1:]))


def _trials(n):
    return [Trial(rank=16, reg=0.01 * (i + 1), alpha=1.0, scheme="binary", signals="all") for i in range(n)]


def test_successive_halving_promotes_the_best_and_reports_every_trial():
    calls = []

    def score(t: Trial, iters: int, limit_s) -> float:
        calls.append((t.reg, iters))
        return -abs(t.reg - 0.05) + 0.001 * iters  # best: reg 0.05

    configs = _trials(9)
    s = tune.successive_halving(configs, score, max_iter=12, budget_s=1e9)
    assert [c[1] for c in calls] == [6] * 9 + [12] * 3
    assert s.best["reg"] == 0.05 and s.best["iterations"] == 12 and s.best["rung"] == 1
    assert s.runner_up["reg"] in (0.04, 0.06) and s.runner_up["iterations"] == 12
    assert len(s.trials) == 12 and all("seconds" in r and "ndcg" in r for r in s.trials)


def test_budget_stops_the_search_and_keeps_the_best_so_far():
    now = [0.0]

    def clock() -> float:
        return now[0]

    def score(t: Trial, iters: int, limit_s) -> float:
        now[0] += 10.0  # every trial takes 10 fake seconds
        return t.reg

    s = tune.successive_halving(_trials(9), score, max_iter=12, budget_s=45, clock=clock)
    assert len(s.trials) == 5  # started at 0, 10, 20, 30, 40 s; none after 45 s
    assert s.best["reg"] == 0.05 and s.runner_up["reg"] == 0.04
    auto = tune.successive_halving(_trials(3), score, max_iter=12, budget_s=None, clock=clock)
    assert auto.budget_s == tune.BUDGET_PER_FIRST_TRIAL * 10.0  # 50 x the first trial's 10 s
    now[0] = 0.0

    def quick(t: Trial, iters: int, limit_s) -> float:
        now[0] += 1.0
        return t.reg

    floor = tune.successive_halving(_trials(3), quick, max_iter=12, budget_s=None, clock=clock)
    assert floor.budget_s == tune.MIN_BUDGET_S  # 50 x 1 s is below the floor


def test_parsimony_prefers_a_smaller_rank_within_one_percent():
    configs = [Trial(rank=r, reg=0.1, alpha=1.0, scheme="log", signals="all") for r in (256, 64, 16)]
    scores = {256: 0.300, 64: 0.2985, 16: 0.28}  # 64 is within 1% of 256; 16 is not

    s = tune.successive_halving(configs, lambda t, i, lim: scores[t.rank], max_iter=4, budget_s=1e9)
    assert s.best["rank"] == 64 and s.runner_up["rank"] == 256
    # the summary says why the higher score lost
    said = tune.describe_runner_up(s.best, s.runner_up, s.default_check)
    assert said.startswith("rank 256,") and "within 1% of the winner at a larger rank" in said
    # a runner-up that scored lower needs no reason
    assert tune.describe_runner_up(s.runner_up, s.best) == tune.describe(s.best)


def test_the_report_names_item_cfs_choice_and_the_families_not_searched():
    from recspark import evaluate

    tuning = {
        "skipped": "too few users",
        "itemcf": {"similarity": "ease", "neighbours": 400, "ease_l2": 8.0, "shelf_weights": "stars"},
        "models": {"itemcf": 0.0336, "popularity": 0.0242},
        "notes": ["content skipped: no metadata"],
    }
    lines = evaluate.tuning_section(tuning).splitlines()
    assert (
        "- **item-CF**: EASE weights (l2 8), 400 per book at most, shelves weighted: a rated shelf weighs "
        "rating / 5 (validation NDCG 0.0336)"
    ) in lines
    assert "- **not searched**: content skipped: no metadata" in lines
    assert not any("item-CF" in line for line in evaluate.tuning_section({"skipped": "x"}).splitlines())


def test_a_family_the_search_skipped_is_not_evaluated_or_published_again():
    from recspark import pipeline
    from recspark.config import RunConfig

    found = {"notes": [f"content{tune.SKIPPED_NOTE}no book metadata"]}
    assert tune.families_skipped(found) == {"content"} and tune.families_skipped({"notes": None}) == set()
    cfg = RunConfig(models=("als", "itemcf", "content"))
    assert pipeline.without_skipped(cfg, found).models == ("als", "itemcf")
    assert pipeline.without_skipped(cfg, {}).models == cfg.models
    # named by --model: kept, so that its run fails with the reason; never left with no family
    assert pipeline.without_skipped(cfg, found, forced="content").models == cfg.models
    alone = RunConfig(models=("content",), model="content")
    assert pipeline.without_skipped(alone, found) == alone


def test_the_default_is_kept_unless_the_winner_is_ahead_by_two_standard_errors():
    """The winner and the default compared user by user at the default's last rung. Hand-made per-user scores:
    differences (0.1, 0.1, 0.1, 0) are a mean of 0.075 with standard deviation 0.05, standard error 0.025
    (z = 3.0), and the winner is also the best on either half of the users (even positions 0, 2; odd 1, 3), so
    the cross-fitted z is the same: kept. (0.1, 0.1, 0, 0) have mean 0.05, standard error 0.0289 (z = 1.73:
    ahead by one standard error but not two, the default wins); (0.1, 0, 0, -0.05) mean 0.0125, standard error
    0.0315 (z = 0.40, the default wins)."""
    default, other, weak = (
        Trial(rank=r, reg=0.5, alpha=5.0, scheme="log", signals="all") for r in (64, 128, 16)
    )
    base = np.array([0.2, 0.1, 0.0, 0.3])

    def searched(winner_scores):
        per_user = {
            (default, 3): base,
            (other, 3): winner_scores,
            (weak, 3): base * 0,
            (other, 6): winner_scores + 0.05,
        }
        scores = {(t, i): float(v.mean()) for (t, i), v in per_user.items()}
        s = tune.successive_halving(  # rungs: 3 trials at 3 iterations, the best at 6
            [default, other, weak], lambda t, i, lim: scores[(t, i)], max_iter=6, budget_s=1e9, eta=2
        )
        assert s.best["rank"] == 128 and s.best["iterations"] == 6  # the search's own choice
        return tune.keep_the_default_unless_beaten(s, default, per_user)

    kept = searched(base + np.array([0.1, 0.1, 0.1, 0.0]))
    assert kept.best["rank"] == 128 and kept.default_check["chosen"] == "winner"
    assert kept.default_check["z"] == pytest.approx(3.0, abs=0.01) and kept.default_check["iterations"] == 3
    assert kept.default_check["min_z"] == 2.0
    assert kept.default_check["z_cross_fitted"] == kept.default_check["z"]
    assert (
        kept.default_check["configurations"] == 3
    )  # the first rung's (the winner's 6-iteration fit is not one)
    assert kept.default_check["cross_fitted_iterations"] == 3
    one_se = searched(base + np.array([0.1, 0.1, 0.0, 0.0]))
    assert one_se.default_check["chosen"] == "default" and one_se.best["rank"] == 64
    assert one_se.default_check["z"] == pytest.approx(1.73, abs=0.01)
    assert one_se.default_check["z_cross_fitted"] == one_se.default_check["z"]
    lucky = searched(base + np.array([0.1, 0.0, 0.0, -0.05]))
    assert lucky.default_check["chosen"] == "default" and lucky.default_check["z"] == pytest.approx(
        0.4, abs=0.01
    )
    assert lucky.best["rank"] == 64 and lucky.best["iterations"] == 3  # the default's own trial
    assert lucky.runner_up["rank"] == 128 and lucky.runner_up["iterations"] == 6
    said = tune.describe_runner_up(lucky.best, lucky.runner_up, lucky.default_check)
    assert said.endswith("not kept: the built-in configuration was not beaten (below)")
    assert lucky.default_check["default_ndcg"] == pytest.approx(base.mean())
    # the default as the search's winner: nothing to compare
    same = tune.successive_halving([default], lambda t, i, lim: 0.1, max_iter=6, budget_s=1e9)
    same = tune.keep_the_default_unless_beaten(same, default, {})
    assert same.best["rank"] == 64 and same.default_check["chosen"] == "default"


def test_a_winner_ahead_by_the_same_for_every_user_is_kept():
    """Every user 0.125 ahead of the default (exact in binary): no spread, so the paired z is infinite rather
    than 0, and the winner is kept, cross-fitted too; the record holds None for both z."""
    from recspark.evaluate import default_check_lines

    default, other = (Trial(rank=r, reg=0.5, alpha=5.0, scheme="log", signals="all") for r in (64, 128))
    base = np.array([0.5, 0.25, 0.0, 0.75])
    per_user = {(default, 3): base, (other, 3): base + 0.125}
    scores = {t: float(v.mean()) for (t, _), v in per_user.items()}
    s = tune.successive_halving([default, other], lambda t, i, lim: scores[t], max_iter=3, budget_s=1e9)
    s = tune.keep_the_default_unless_beaten(s, default, per_user)
    assert s.default_check["chosen"] == "winner" and s.best["rank"] == 128
    assert s.default_check["z"] is None and s.default_check["z_cross_fitted"] is None
    (line,) = default_check_lines(s.default_check)  # the report still says what was compared and chosen
    assert "paired z n/a (the same difference for every user)" in line and "the search's best is kept" in line
    # the default won the search itself: nothing compared, no line
    assert default_check_lines({"chosen": "default", "z": None, "min_z": 2.0}) == []


def test_a_winner_whose_choice_does_not_hold_on_other_users_gives_way_to_the_default():
    """The winner's curse, hand-made: one configuration is ahead of the default by 0.2 on the even users only,
    another by 0.15 on the odd users only. The first wins the search: differences (0.2, 0, 0.2, 0, 0.2, 0),
    mean 0.1, standard deviation 0.1095, z = 2.24. Cross-fitted, the even users get the choice made on the odd
    ones (the second, no better than the default there) and the odd users the choice made on the even ones (the
    first, likewise): every difference is 0, z 0, and the default is kept."""
    default, even, odd = (
        Trial(rank=r, reg=0.5, alpha=5.0, scheme="log", signals="all") for r in (64, 128, 32)
    )
    base = np.array([0.2, 0.1, 0.0, 0.3, 0.1, 0.2])
    per_user = {
        (default, 3): base,
        (even, 3): base + np.array([0.2, 0.0, 0.2, 0.0, 0.2, 0.0]),
        (odd, 3): base + np.array([0.0, 0.15, 0.0, 0.15, 0.0, 0.15]),
    }
    np.testing.assert_allclose(tune.chosen_on_the_other_half({t: v for (t, _), v in per_user.items()}), base)
    scores = {t: float(v.mean()) for (t, _), v in per_user.items()}
    s = tune.successive_halving([default, even, odd], lambda t, i, lim: scores[t], max_iter=3, budget_s=1e9)
    assert s.best["rank"] == 128
    s = tune.keep_the_default_unless_beaten(s, default, per_user)
    assert s.default_check["z"] == pytest.approx(2.24, abs=0.01)
    assert s.default_check["z_cross_fitted"] == 0.0 and s.default_check["chosen"] == "default"
    assert s.best["rank"] == 64 and s.runner_up["rank"] == 128


def test_the_default_is_compared_with_the_winners_iterations():
    """The default converges slower: 0.10 at 6 iterations (behind three others there, so the search leaves it at
    6), 0.21 at 12, where the winner has 0.12. It is scored again with 12, and the check compares the two there."""
    default, fast, a, b = (
        Trial(rank=r, reg=0.5, alpha=5.0, scheme="log", signals="all") for r in (64, 32, 16, 128)
    )
    users = np.array([0.0, 0.1, 0.2, 0.3])
    per_user: dict = {}
    calls = []

    def score(t: Trial, iters: int, limit_s) -> float:
        calls.append((t.rank, iters))
        lift = {(64, 6): -0.05, (64, 12): 0.01 * np.array([5, 6, 7, 6]), (32, 6): -0.03, (32, 12): -0.03}
        lift |= {(16, 6): -0.04, (128, 6): -0.045}
        per_user[(t, iters)] = users + lift.get((t.rank, iters), -0.08)
        return float(per_user[(t, iters)].mean())

    s = tune.successive_halving([default, fast, a, b], score, max_iter=12, budget_s=1e9, eta=2)
    assert s.best["rank"] == 32 and s.best["iterations"] == 12 and (64, 12) not in calls
    tune.level_the_default(s, default, score)
    assert calls[-1] == (64, 12) and s.trials[-1]["iterations"] == 12 and s.trials[-1]["ndcg"] == 0.21
    s = tune.keep_the_default_unless_beaten(s, default, per_user)
    assert s.default_check["iterations"] == 12 and s.default_check["chosen"] == "default"
    assert s.best["rank"] == 64 and s.best["iterations"] == 12
    # the default already at the winner's iterations: nothing more is fitted
    before = len(calls)
    tune.level_the_default(s, default, score)
    assert len(calls) == before


def test_a_trial_over_its_share_of_the_budget_is_cancelled_not_chosen():
    now = [0.0]
    limits = []

    def score(t: Trial, iters: int, limit_s) -> float:
        limits.append(limit_s)
        if t.reg == 0.02:  # the "expensive" configuration: it would be the best, but runs out of time
            now[0] += limit_s
            raise tune.TrialTimeout("cancelled")
        now[0] += 1.0
        return t.reg if t.reg != 0.02 else 1.0

    s = tune.successive_halving(_trials(3), score, max_iter=12, budget_s=100, clock=lambda: now[0])
    assert limits == [100 * tune.MAX_TRIAL_SHARE] * 3
    assert [r["ndcg"] for r in s.trials] == [0.01, None, 0.03]
    assert s.best["reg"] == 0.03 and s.runner_up["reg"] == 0.01


def _paced(pace: dict[int, float]):
    """A fake clock and a score for successive_halving: a trial of rank r takes ``pace[r]`` fake seconds per
    iteration and scores its reg; past its limit it is cancelled one second after the limit (the settling).
    Returns (clock, score, calls)."""
    now = [0.0]
    calls = []

    def score(t: Trial, iters: int, limit_s) -> float:
        calls.append((t.rank, t.reg, iters))
        if pace[t.rank] * iters > limit_s:
            now[0] += limit_s + 1.0
            raise tune.TrialTimeout("cancelled")
        now[0] += pace[t.rank] * iters
        return t.reg

    return (lambda: now[0]), score, calls


def _trial(rank: int, reg: float) -> Trial:
    return Trial(rank=rank, reg=reg, alpha=1.0, scheme="binary", signals="all")


def test_a_trial_bound_to_be_cancelled_is_skipped_and_the_next_best_runs_in_its_place():
    """Budget 1000 fake seconds: a trial may take 250. Rank 256 takes 30 s per iteration (180 s at rung 0's 6
    iterations, 360 at 12), rank 128 100 s (cancelled at 6 iterations, after 251 s), rank 16 one. Rung 0: the
    rank-128 trial after the cancelled one is skipped; 7 scores, so the best two go on. Rung 1 (12 iterations):
    the leader (rank 16, reg 0.09) runs; the rank-256 second would need 360 s: skipped, and the third best
    (reg 0.05) runs in its place."""
    clock, score, calls = _paced({256: 30.0, 128: 100.0, 16: 1.0})
    configs = [_trial(16, 0.01), _trial(16, 0.09), _trial(256, 0.08), _trial(128, 0.07), _trial(128, 0.065)]
    configs += [_trial(16, reg) for reg in (0.02, 0.03, 0.04, 0.05)]
    s = tune.successive_halving(configs, score, max_iter=12, budget_s=1000, clock=clock)
    assert (128, 0.065, 6) not in calls and (256, 0.08, 12) not in calls
    assert calls[-2:] == [(16, 0.09, 12), (16, 0.05, 12)]
    skipped = [(r["rank"], r["iterations"], r["ndcg"]) for r in s.trials if r.get("skipped")]
    assert skipped == [(128, 6, None), (256, 12, None)]
    assert "about 360 s, more than the 250 s one trial may take" in s.trials[-2]["skipped"]
    assert s.best["reg"] == 0.09 and s.best["iterations"] == 12
    assert s.runner_up["reg"] == 0.05 and s.runner_up["iterations"] == 12
    assert s.n_skipped == 2 and s.summary()["trials"] == len(s.trials) - 2 == 10


def test_a_leader_too_slow_for_the_next_rung_ends_the_search_with_its_rung():
    """The rank-256 configuration leads rung 0 (180 s at 6 iterations) but would need 360 s at 12: the others'
    scores at 12 iterations are not comparable with its own at 6, so the search stops and rung 0 stands."""
    clock, score, calls = _paced({256: 30.0, 16: 1.0})
    configs = [_trial(16, 0.01), _trial(256, 0.09), _trial(16, 0.02), _trial(16, 0.03)]
    s = tune.successive_halving(configs, score, max_iter=12, budget_s=1000, clock=clock)
    assert [c[2] for c in calls] == [6] * 4  # nothing ran at 12 iterations
    assert s.best["rank"] == 256 and s.best["iterations"] == 6
    assert s.runner_up["reg"] == 0.03 and s.runner_up["iterations"] == 6
    assert s.trials[-1]["skipped"] and s.trials[-1]["iterations"] == 12


def scorer(peak: float, top: float = 3.0):
    """A try_value for tune.beyond_the_edge whose score is highest at ``peak`` (on a log scale), the grid's top
    value ``top`` already scored as the best; it records every value tried."""
    tried: list[float] = []
    best = [-abs(math.log(top / peak))]

    def try_value(x: float) -> bool:
        tried.append(x)
        score = -abs(math.log(x / peak))
        if score > best[0]:
            best[0] = score
            return True
        return False

    return try_value, tried


def test_a_search_goes_beyond_the_top_of_its_grid_only_while_it_improves():
    grid = (0.1, 0.3, 1.0, 3.0)
    # the best inside the grid: nothing else tried
    try_value, tried = scorer(1.0)
    assert tune.beyond_the_edge(grid, 1.0, try_value) == 1.0 and tried == []
    # the top of the grid won and the peak is further: 9 (the grid's last ratio, 3) is better, 27 is not
    try_value, tried = scorer(10.0)
    assert tune.beyond_the_edge(grid, 3.0, try_value) == 9.0 and tried == [9.0, 27.0]
    # the top won, but one step further is worse: stop there
    try_value, tried = scorer(3.5)
    assert tune.beyond_the_edge(grid, 3.0, try_value) == 3.0 and tried == [9.0]
    # still improving after every step: at most `steps` values beyond the grid
    try_value, tried = scorer(1000.0)
    assert tune.beyond_the_edge(grid, 3.0, try_value, steps=2) == 27.0 and tried == [9.0, 27.0]
    # EASE's l2 grid steps by 4
    try_value, tried = scorer(300.0, top=64.0)
    assert tune.beyond_the_edge((1.0, 4.0, 16.0, 64.0), 64.0, try_value) == 256.0 and tried == [256.0, 1024.0]


def test_a_geometric_grid_is_refined_halfway_on_either_side_of_its_best():
    ease_grid = (1.0, 4.0, 16.0, 64.0)  # steps of 4: the halfway points are a factor 2 away
    # the peak between 4 and 16, nearer 8: 8 tried and kept, 2 tried and not
    try_value, tried = scorer(7.0, top=4.0)
    assert tune.refined(ease_grid, 4.0, try_value) == 8.0 and tried == [2.0, 8.0]
    # the grid's best is the peak: both tried, neither kept
    try_value, tried = scorer(16.0, top=16.0)
    assert tune.refined(ease_grid, 16.0, try_value) == 16.0 and tried == [8.0, 32.0]
    # past the grid's end (beyond_the_edge went to 256): still one halving either side
    try_value, tried = scorer(400.0, top=256.0)
    assert tune.refined(ease_grid, 256.0, try_value) == 512.0 and tried == [128.0, 512.0]
    # a grid of one value has no step to halve
    try_value, tried = scorer(3.0, top=1.0)
    assert tune.refined((1.0,), 1.0, try_value) == 1.0 and tried == []


def test_cancel_after_stops_a_running_spark_job(spark):
    import time as _time

    def slow(batches):
        for b in batches:
            _time.sleep(60)
            yield b

    from recspark.spark import logger_level

    loggers = tune.QUIET_WHILE_CANCELLING
    before = [logger_level(spark, name) for name in loggers]
    assert None not in before
    during = []
    t0 = _time.perf_counter()
    with pytest.raises(tune.TrialTimeout), tune.cancel_after(spark, 2.0):
        try:
            spark.range(2).repartition(2).mapInPandas(slow, "id long").collect()
        finally:  # a cancelled ALS fit would log an ERROR with a Java stack trace, each killed task a WARN
            during = [logger_level(spark, name) for name in loggers]
    assert _time.perf_counter() - t0 < 30
    assert during == ["OFF"] * len(loggers)
    assert [logger_level(spark, name) for name in loggers] == before  # restored after
    with tune.cancel_after(spark, 30.0):  # the job group is cleared: the session keeps working
        assert spark.range(5).count() == 5
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None


def test_cancel_after_follows_its_clock_not_the_wall_clock(spark):
    """A budget counted on the work clock: a trial is cancelled when its clock passes the limit, however little
    wall time went by, and not while its clock stands still, however much did."""
    import time as _time

    def slow(batches):
        for b in batches:
            _time.sleep(3)
            yield b

    job = spark.range(2).repartition(2).mapInPandas(slow, "id long")
    frozen = tune.cancel_after(spark, 1.0, clock=lambda: 0.0)
    with frozen:  # 3 s of wall time, no time on its clock: it finishes
        assert job.count() == 2
    with (
        pytest.raises(tune.TrialTimeout),
        tune.cancel_after(spark, 10.0, clock=lambda: 20 * _time.perf_counter()),
    ):
        job.count()  # its clock passes 10 s after 0.5 s of wall time: cancelled while its tasks sleep


def test_work_clock_counts_spark_cpu_per_core_and_not_waiting(spark):
    """In local mode the tuning budget's clock is Spark's CPU time over its cores: a CPU-bound job moves it, a
    second of sleeping does not (a wall clock would move by the second)."""
    import time as _time

    from recspark.spark import WALL_CLOCK, Clock, local_cores, work_clock

    assert local_cores("local") == 1 and local_cores("local[1]") == 1
    assert local_cores("local[2]") == min(2, local_cores("local[*]"))
    assert local_cores("local[1, 3]") == 1 and local_cores("local[64]") == local_cores("local[*]")
    assert local_cores("spark://host:7077") is None and local_cores("yarn") is None
    clock = work_clock(spark)
    assert clock.name == f"cpu/{local_cores(spark.sparkContext.master)}" and not clock.is_wall
    assert WALL_CLOCK.name == "wall" and WALL_CLOCK.is_wall and WALL_CLOCK() > 0
    assert Clock(cores=2).is_wall and Clock(cores=2).name == "wall"  # no process to count: the wall clock
    before = clock()
    _time.sleep(1.0)
    idle = clock() - before
    before = clock()
    spark.range(0, 20_000_000, numPartitions=2).selectExpr("sum(sqrt(id * 1.0) * ln(id + 1.0))").collect()
    busy = clock() - before
    assert idle < 0.25, idle
    assert busy > idle + 0.05, (busy, idle)


def test_settle_waits_for_the_running_tasks_of_a_job_group(spark):
    """What keeps a cancelled trial's task WARNs inside the quiet window: ``settle`` returns once no task of the
    group runs, and gives up (False) at its timeout."""
    import threading
    import time as _time

    def slow(batches):
        for b in batches:
            _time.sleep(4)
            yield b

    group = "recspark-test-settle"

    def job() -> None:
        spark.sparkContext.setJobGroup(group, "settle test")
        spark.range(2).repartition(2).mapInPandas(slow, "id long").collect()

    worker = threading.Thread(target=job, daemon=True)
    worker.start()
    deadline = _time.monotonic() + 30
    while tune.settle(spark, group, timeout_s=0):  # idle until the group's job is submitted
        assert _time.monotonic() < deadline, "the job never started"
        _time.sleep(0.05)
    assert tune.settle(spark, group, timeout_s=0.5) is False  # still sleeping
    assert tune.settle(spark, group, timeout_s=30) is True
    worker.join(5)
    assert not worker.is_alive()  # the job had finished
    assert tune.settle(spark, "recspark-test-no-such-group", timeout_s=0) is True


def test_binary_scheme_and_signal_presets(spark):
    df = spark.createDataFrame(
        [(0, 0, True, 5, True, None), (0, 1, False, 0, False, None)],
        "user_idx int, book_idx int, is_read boolean, rating int, is_reviewed boolean, date_added timestamp",
    )
    binary = df.transform(preference(Weights.preset("all", "binary")))
    expected = spark.createDataFrame(
        [(0, 0, 1.0), (0, 1, 1.0)], f"user_idx int, book_idx int, {PREFERENCE} float"
    )
    assert_df_equality(binary, expected, ignore_row_order=True, ignore_nullable=True)
    rating = df.transform(preference(Weights.preset("rating", "linear")))  # 1 + rating/5
    expected = spark.createDataFrame(
        [(0, 0, 2.0), (0, 1, 1.0)], f"user_idx int, book_idx int, {PREFERENCE} float"
    )
    assert_df_equality(rating, expected, ignore_row_order=True, ignore_nullable=True)
    read = df.transform(preference(Weights.preset("read", "linear")))  # 1 + is_read
    assert sorted(r[PREFERENCE] for r in read.collect()) == [1.0, 2.0]
    with pytest.raises(ValueError, match="unknown signals"):
        Weights.preset("likes")


def test_liked_keeps_unrated_and_four_or_five_stars(spark):
    df = spark.createDataFrame(
        [(0, b, r) for b, r in enumerate([0, 1, 2, 3, 4, 5])], "user_idx int, book_idx int, rating int"
    )
    assert sorted(r["rating"] for r in tune.liked(df).collect()) == [0, 4, 5]


def test_liked_keeps_read_books_only_where_the_data_records_reading(spark):
    """3 of 5 held-out shelves read: relevant are the read ones not rated below 4 (unrated 0 and 4 stars); told
    that reading is not recorded, the unread ones count too."""
    df = spark.createDataFrame(
        [(0, 0, 0, True), (0, 1, 0, False), (0, 2, 4, True), (0, 3, 4, False), (0, 4, 2, True)],
        "user_idx int, book_idx int, rating int, is_read boolean",
    )
    assert sorted(r["book_idx"] for r in tune.liked(df).collect()) == [0, 2]
    assert sorted(r["book_idx"] for r in tune.liked(df, reads=False).collect()) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def tuned(spark, ingested, tmp_path_factory):
    lake = copy_of(ingested[0], tmp_path_factory.mktemp("tune") / "lakehouse")
    cfg = RunConfig(
        k=5,
        ks=[5, 10],
        als=AlsParams(rank=8, max_iter=4),
        similar_k=5,
        min_readers=2,
        # the mechanism at a small size: 30 candidates per source, 30 trees, at most 300 validation users
        ranker=ranker.RankerParams(n_candidates=30, n_estimators=30, max_validation_users=300),
    )
    # tiny trials: ranks 4 and 8 only
    opts = TuneOptions(mode="auto", configs=3, budget_s=600, space={**tune.SPACE, "rank": (4, 8)})
    reports = tmp_path_factory.mktemp("reports")
    mlruns = tmp_path_factory.mktemp("mlruns")
    track = tracking.tracker(uri=mlruns.as_uri())  # None when MLflow is not installed
    ranker_positives: list[tuple[int, int]] = []  # what the ranker was given as relevant, seen from outside
    real_fit = ranker.fit

    def spied_fit(train, *args, **kwargs):
        ranker_positives.extend(
            tuple(r) for r in train.where("label > 0").select("user_idx", "book_idx").collect()
        )
        return real_fit(train, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:  # two points of each family's grid: the choice, at half the cost
        mp.setattr(tune, "ITEMCF_GRID", tune.ITEMCF_GRID[::2])
        mp.setattr(tune, "CONTENT_GRID", tune.CONTENT_GRID[:2])
        mp.setattr(stars, "GRID", stars.GRID[::3])
        mp.setattr(ranker, "fit", spied_fit)
        first = run_pipeline(spark, lake, cfg, reports, tuning=opts, tracker=track)
        again = run_pipeline(spark, lake, cfg, reports, tuning=opts)
    return lake, cfg, first, again, reports, (track, mlruns), ranker_positives


@pytest.mark.slow
def test_validation_never_sees_the_evaluation_holdout(tuned):
    lake = tuned[0]
    key = ["user_idx", "book_idx"]
    held_out = lake.read("model", "split_test").select(*key)
    evaluation_train = lake.read("model", "split_train").select(*key)
    for side in ("tune_train", "tune_valid"):
        pairs = lake.read("model", side).select(*key)
        assert pairs.count() > 0
        assert pairs.join(held_out, on=key, how="inner").count() == 0, side
        assert pairs.join(evaluation_train, on=key, how="left_anti").count() == 0, side


@pytest.mark.slow
def test_run_tunes_records_the_choice_and_reuses_it(tuned):
    from deltalake import DeltaTable

    lake, cfg, first, again, reports, _, _ = tuned
    assert first["tuning"]["reused"] is False and first["tuning"]["trials"] == 3
    best = first["tuning"]["best"]
    used = first["config"]
    assert (used.als.rank, used.als.reg, used.als.alpha, used.weights.scheme) == (
        best["rank"],
        best["reg"],
        best["alpha"],
        best["scheme"],
    )
    assert used.als.max_iter == cfg.als.max_iter == best["iterations"]
    runs = DeltaTable(lake.path("gold", "runs")).to_pyarrow_table().to_pylist()
    row = next(r for r in runs if r["run_id"] == first["run_id"])
    recorded = json.loads(row["tuning"])
    assert recorded["best"] == best and recorded["runner_up"] is not None
    # local mode: the budget counted Spark's CPU seconds per core, and every trial kept its wall time too
    from recspark.spark import local_cores

    assert recorded["clock"] == f"cpu/{local_cores('local[2]')}" and best["wall_seconds"] >= 0
    assert recorded["best"]["ndcg"] >= recorded["runner_up"]["ndcg"] or (
        recorded["runner_up"]["rung"] < recorded["best"]["rung"]
    )
    # the second run found the stored result for the same inputs: no new trials, same parameters, same run
    assert again["tuning"]["reused"] is True and again["tuning"]["best"] == best
    assert again["run_id"] == first["run_id"]
    assert lake.read("model", "tuning_trials").count() == 3
    # every family scored on the same validation split; the best one is published and recorded
    scores = recorded["models"]
    assert set(scores) == {"als", "itemcf", "content", "popularity"} and scores["als"] == best["ndcg"]
    chosen = "ranker" if recorded["ranker"].get("publish") else max(scores, key=scores.get)
    assert recorded["model"] == used.model == chosen
    if recorded["ranker"].get("publish") == "blend":  # the blend's weight is the run's, no model file
        assert used.blend == recorded["ranker"]["blend"]["weight"] and used.ranker_model is None
        assert used.blend_prior == recorded["ranker"]["blend"]["prior"]
    assert recorded["itemcf"]["similarity"] == used.itemcf.similarity
    assert recorded["content"]["popularity_weight"] == used.content.popularity_weight
    chosen_stars = (recorded["stars"]["reg"], recorded["stars"]["user_prior"])  # chosen on validation RMSE
    assert chosen_stars == (used.stars.reg, used.stars.user_prior) and chosen_stars in stars.GRID
    sims = DeltaTable(lake.path("gold", "similar_books")).to_pyarrow_table().to_pylist()
    methods = {r["method"] for r in sims if r["run_id"] == first["run_id"]}
    assert {"als": "als", "ranker": "als", "content": "content"}.get(used.model, "itemcf") in methods
    report = (reports / f"evaluation-{first['run_id']}.md").read_text()
    assert "How the parameters were chosen" in report and "runner-up" in report
    assert f"- **hits**: {HITS}" in report  # what the metrics count, beside what validation counted
    # the validation split as recorded and reported, counted from outside: no user gave more than the cap
    made = recorded["validation"]
    valid = DeltaTable(lake.path("model", "tune_valid")).to_pyarrow_table()
    per_user = collections.Counter(valid.column("user_idx").to_pylist())
    assert made["held_out"] == valid.num_rows and made["users"] >= len(per_user)
    assert max(per_user.values()) <= made["held_out_cap"] == split.validation_cap(made["users"])
    assert tune.describe_validation(made) in report
    assert (
        report.count(f"{used.model} / popularity NDCG@10") == 1
    )  # the published family against the baseline


@pytest.mark.slow
def test_evaluation_tables_checked_from_outside(tuned, spark, tmp_path, capsys):
    """The run's evaluation in gold, read with deltalake: every family and baseline side by side (ALS re-ranked
    for diversity at the two reported weights, the ranker when it is published), every metric, and the error of
    the predicted stars against the books' mean rating."""
    from deltalake import DeltaTable

    lake, _, first, *_ = tuned
    rows = DeltaTable(lake.path("gold", "evaluations")).to_pyarrow_table().to_pylist()
    evals = [r for r in rows if r["run_id"] == first["run_id"]]
    ranked = {"ranker"} if first["config"].model == "ranker" else set()
    assert {r["model"] for r in evals if r["k"] > 0} == {
        "als",
        "als_mmr0.3",  # ALS re-ranked for diversity: the trade-off the report shows
        "als_mmr0.6",
        "itemcf",
        "content",
        "popularity",
        "trending",
        *ranked,
    }
    errors = {(r["model"], r["metric"]): r["value"] for r in evals if r["k"] == 0}
    assert set(errors) == {(m, e) for m in ("stars", "book_mean") for e in ("rmse", "mae")}
    assert {r["metric"] for r in evals} >= {
        "ndcg",
        "precision",
        "recall",
        "map",
        "mrr",
        "hit_rate",
        "coverage",
        "novelty",
        "diversity",
    }
    assert {r["k"] for r in evals if r["k"] > 0} == set(first["config"].ks)
    # the generated shelves have 1-3 star ratings and unread books: beside every held-out book, the liked_ rows
    # count what validation counts (tested by hand in test_metrics), for every model at every K
    plain = {(r["model"], r["k"]): r["value"] for r in evals if r["metric"] == "ndcg"}
    liked = {(r["model"], r["k"]): r["value"] for r in evals if r["metric"] == "liked_ndcg"}
    assert set(liked) == set(plain) and liked != plain
    # the printed summary gives the published family against popularity both ways
    from recspark.cli import print_summary

    print_summary(spark, lake, first, 5, tmp_path)
    model = first["config"].model
    both = (
        f"NDCG@10 is {plain[(model, 10)] / plain[('popularity', 10)]:.2f}x popularity's "
        f"({liked[(model, 10)] / liked[('popularity', 10)]:.2f}x counting only the liked held-out books"
    )
    assert both in capsys.readouterr().out


@pytest.mark.slow
def test_the_ranker_is_checked_against_every_model_and_learns_only_from_validation(tuned):
    lake, _, first, _, reports, _, positives = tuned
    rk = first["tuning"]["ranker"]
    assert set(rk["single"]) == {"als", "itemcf", "content", "popularity"}
    assert set(rk["recall"]) == {*rk["single"], "union"}
    assert rk["recall"]["union"] >= max(rk["recall"][s] for s in rk["single"])
    assert rk["wins"] == (rk["ranker"] > max(rk["single"].values()) and rk["z"] >= twostage.MIN_Z)
    # beside it, the blend of ALS and item-CF, cross-fitted on all validation users, published when it beats
    # every single model there
    b = rk["blend"]
    assert set(b["single"]) == set(rk["single"]) and b["best_single"] == max(b["single"], key=b["single"].get)
    assert b["wins"] == (b["ndcg"] > b["single"][b["best_single"]])
    assert rk["publish"] == twostage.published_kind(rk)
    # the weight published is the learning curve's: the even mix unless the best extrapolated weight is a standard
    # error ahead of it, at the γ chosen, from a thinner fit of the validation rows to the published run's
    curve = b["learning_curve"]
    assert 0 < curve["reach"] <= twostage.MAX_REACH and rk["thin_fit_seconds"] > 0
    at_prior = [
        g for g in b["ndcg_by_weight"] if g.partition("+")[2] == (f"{b['prior']:g}" if b["prior"] else "")
    ]
    assert set(curve["thin"]) == set(curve["extrapolated"]) == set(at_prior)
    top = max(
        curve["extrapolated"], key=lambda g: (curve["extrapolated"][g], -abs(float(g.split("+")[0]) - 0.5))
    )
    z = curve["best_z_vs_even_mix"]
    assert b["weight"] == curve["weight"] == (float(top.split("+")[0]) if z is None or z >= 1 else 0.5)
    assert rk["importances"] and abs(sum(rk["importances"].values()) - 1) < 0.01
    # the search's fits are reused, not fitted again: item-CF's chosen table always, ALS's winner when the search
    # fitted it with every iteration (a budget that stops at a lower rung leaves none)
    best = first["tuning"]["best"]
    full = best["iterations"] == tuned[1].als.max_iter
    assert rk["reused"] == (["als", "itemcf"] if full else ["itemcf"])
    # the labels it learned from: held-out books of the validation split, never of the evaluation holdout
    assert len(positives) >= ranker.RankerParams().min_positives
    got = lake.spark.createDataFrame(positives, "user_idx int, book_idx int")
    key = ["user_idx", "book_idx"]
    assert got.join(lake.read("model", "tune_valid").select(*key), on=key, how="left_anti").count() == 0
    assert got.join(lake.read("model", "split_test").select(*key), on=key, how="inner").count() == 0
    if rk["wins"]:  # published from the ranker, and the evaluation report shows it beside every model
        assert first["config"].model == "ranker"
        report = (reports / f"evaluation-{first['run_id']}.md").read_text()
        assert "ranker" in report


@pytest.mark.slow
def test_mlflow_run_with_nested_trials(tuned):
    pytest.importorskip("mlflow", reason='MLflow is the optional extra: pip install "recspark[mlflow]"')
    from mlflow import MlflowClient

    _, _, first, _, _, (track, mlruns), _ = tuned
    client = MlflowClient(tracking_uri=mlruns.as_uri())
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("recspark.run_id") == first["run_id"])
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trials) == first["tuning"]["trials"] == 3
    assert {"validation_ndcg", "seconds"} <= set(trials[0].data.metrics)
    m = parent.data.metrics
    assert (
        m["als.ndcg.at10"] >= 0
        and "popularity.recall.at5" in m
        and f"seconds.train {first['config'].model} on all interactions" in m
    )
    assert parent.data.params["als.rank"] == str(first["config"].als.rank)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert f"evaluation-{first['run_id']}.md" in artifacts and "tuning.json" in artifacts


def test_tracking_is_optional(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError("no mlflow here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    assert tracking.tracker() is None  # and run_pipeline(tracker=None) is what every other test runs
    assert tracking.tracker(enabled=False) is None


@pytest.mark.slow
def test_too_few_users_falls_back_to_builtin_values(spark, lake):
    rows = [(u, b, True, 4, False) for u in range(10) for b in range(u, u + 12)]
    inter = spark.createDataFrame(
        rows, "user_idx int, book_idx int, is_read boolean, rating int, is_reviewed boolean"
    )
    cfg = RunConfig(k=3, als=AlsParams(rank=4, max_iter=2))
    s = make_split(spark, lake, inter.withColumn("date_added", inter.rating.cast("timestamp")), cfg)
    search = tune.tune(spark, lake, s.train, "key", n_configs=3, max_iter=2)
    assert search.best is None and "too few to tune" in search.skipped and search.trials == []
    assert tune.stored(lake, "key")["skipped"] == search.skipped
    assert math.isclose(search.budget_s, 0.0)


def test_a_cancelled_trial_is_tracked_without_a_score(tmp_path):
    """A trial cut by the per-trial cap has no validation score (ndcg None): MLflow gets its seconds and a
    ``cancelled`` tag, and the run goes on (make run once stopped here with a TypeError)."""
    pytest.importorskip("mlflow", reason='MLflow is the optional extra: pip install "recspark[mlflow]"')
    from mlflow import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    track = tracking.tracker(uri=uri)
    row = {"rank": 256, "reg": 0.35, "alpha": 1.0, "scheme": "linear", "signals": "all", "iterations": 12}
    try:
        track.trial({**row, "rung": 2, "ndcg": None, "seconds": 49.6})
        track.trial({**row, "rung": 1, "ndcg": 0.25, "seconds": 20.0})
    finally:
        track.mlflow.end_run()
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id])
    trials = {r.data.tags.get("mlflow.runName"): r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert set(trials["trial-2-256"].data.metrics) == {"seconds"}
    assert trials["trial-2-256"].data.tags.get("cancelled") == "true"
    assert trials["trial-1-256"].data.metrics["validation_ndcg"] == 0.25


def test_the_winner_fit_is_the_search_model_at_full_iterations_only():
    t, other = tune.default_trial(), _trials(1)[0]
    fits = {t: "model of t"}
    assert tune.winner_fit({**t.as_dict(), "iterations": 12}, fits, 12) == "model of t"
    assert tune.winner_fit({**t.as_dict(), "iterations": 6}, fits, 12) is None  # a lower rung: refit
    assert tune.winner_fit({**other.as_dict(), "iterations": 12}, fits, 12) is None  # never fitted in full
    assert tune.winner_fit(None, fits, 12) is None


def test_fit_sources_takes_what_the_search_fitted(spark, monkeypatch):
    """Given the search's ALS model and item-CF table, the two-stage sources are exactly those: nothing refitted."""
    from recspark import als, itemcf
    from recspark.itemcf import ItemCfParams

    rows = [(u, b, True, 0, False, None) for u in range(4) for b in range(5) if (u + b) % 3]
    train = spark.createDataFrame(
        rows,
        "user_idx int, book_idx int, is_read boolean, rating int, is_reviewed boolean, date_added timestamp",
    )
    params = AlsParams(rank=2, max_iter=2)
    model = als.fit(spark, train.transform(preference(Weights())), params)
    table = itemcf.fit(train, ItemCfParams())

    def refit(*args, **kwargs):
        raise AssertionError("fitted again")

    monkeypatch.setattr(als, "fit", refit)
    monkeypatch.setattr(itemcf, "fit", refit)
    fitted = twostage.Fitted(model, table)
    sources = twostage.fit_sources(spark, train, params, Weights(), ItemCfParams(), None, None, fitted)
    assert fitted.names() == ["als", "itemcf"]
    assert sources.neighbours is table
    assert_df_equality(sources.item_factors, als.item_factors(model), ignore_row_order=True)
    assert_df_equality(sources.user_factors, als.user_factors(model), ignore_row_order=True)
    with pytest.raises(AssertionError, match="fitted again"):  # without them, both are fitted
        twostage.fit_sources(spark, train, params, Weights(), ItemCfParams(), None, None)


def test_the_ranker_check_is_skipped_when_its_als_refit_would_outrun_the_budget():
    """Hand-computed: a winner tried with 3 of 12 iterations in 100 s projects to a 400 s refit; one trial may
    take a quarter of the budget (400 s budget: 100 s), so the check is skipped; at 25 s (100 s projected) or when
    the winner already ran every iteration (its model is reused), it is not."""
    best = {**tune.default_trial().as_dict(), "rank": 256, "rung": 0, "iterations": 3, "seconds": 100.0}

    def search(**changes) -> tune.Search:
        return tune.Search([], {**best, **changes}, None, budget_s=400.0, seconds=500.0)

    why = tune.ranker_check_skipped(search(), 12)
    assert why is not None and "about 400 s, more than the 100 s one trial may take" in why
    assert "--model ranker" in why
    assert tune.ranker_check_skipped(search(seconds=25.0), 12) is None  # 100 s: within the share
    assert tune.ranker_check_skipped(search(iterations=12), 12) is None  # fitted in full: reused
    assert tune.ranker_check_skipped(tune.Search([], None, None, 400.0, 1.0), 12) is None


@pytest.mark.parametrize("required", [False, True])
def test_tune_skips_a_costly_ranker_check_unless_the_ranker_is_asked_for(
    spark, ingested, tmp_path, monkeypatch, required
):
    """The wiring in ``tune``: a search that ended at its first rung with a slow winner trains no ranker and
    records why, and checks the blend with ALS at the iterations its trial had; with ``ranker_required``
    (``--model ranker``) the whole check runs regardless, ALS with every iteration."""
    lake = copy_of(ingested[0], tmp_path / "lake")
    slow = {**tune.default_trial().as_dict(), "rung": 0, "iterations": 1, "ndcg": 0.1, "seconds": 100.0}
    monkeypatch.setattr(
        tune,
        "successive_halving",
        lambda *a, **kw: tune.Search([slow], slow, None, budget_s=200.0, seconds=1.0),
    )
    monkeypatch.setattr(tune, "best_itemcf", lambda *a: ({"similarity": "cosine"}, 0.05, None))
    monkeypatch.setattr(stars, "enough", lambda *a: False)
    checked: list[tuple[int, bool]] = []

    def fake_two_stage(*args, **kwargs) -> dict:
        checked.append(
            (args[9], kwargs.get("learned", True))
        )  # (ALS iterations, whether a ranker is trained)
        return {"wins": False, "single": {}}

    monkeypatch.setattr(tune, "two_stage", fake_two_stage)
    train = lake.read("silver", "interactions")
    search = tune.tune(
        spark,
        lake,
        train,
        "key",
        max_iter=4,
        models=("als", "itemcf"),
        ranker_params=ranker.RankerParams(),
        ranker_required=required,
    )
    assert checked == ([(4, True)] if required else [(1, False)])
    assert search.ranker["als_iterations"] == (4 if required else 1)
    if not required:  # 100 s x 4 iterations = 400 s, over a quarter of the 200 s budget
        assert search.ranker["wins"] is False and "about 400 s" in search.ranker["skipped"]
        assert tune.stored(lake, "key")["ranker"]["skipped"] == search.ranker["skipped"]


def test_the_two_stage_check_releases_what_it_fitted_and_keeps_the_callers_table(spark, monkeypatch):
    """The neighbour table the check fitted itself is unpersisted after it; the search's table (``fitted``) is
    the caller's and stays cached."""
    from recspark import itemcf
    from recspark.itemcf import ItemCfParams

    rows = [(u, b, True, 0, False, None) for u in range(4) for b in range(5) if (u + b) % 3]
    train = spark.createDataFrame(
        rows,
        "user_idx int, book_idx int, is_read boolean, rating int, is_reviewed boolean, date_added timestamp",
    )
    best = {**tune.default_trial().as_dict(), "rank": 2, "iterations": 2}
    search = tune.Search([best], best, None, budget_s=100.0, seconds=1.0)
    built: list[twostage.Sources] = []
    real = twostage.fit_sources

    def spy(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(twostage, "fit_sources", spy)
    monkeypatch.setattr(twostage, "validate", lambda *a, **kw: ({"wins": False}, None))
    args = (spark, train, train.limit(0), train.select("user_idx"), None, None, search, 3, 1, 2)
    tune.two_stage(*args, ranker.RankerParams())
    assert not built[-1].neighbours.is_cached and not built[-1].item_factors.is_cached
    table = itemcf.fit(train, ItemCfParams())
    tune.two_stage(*args, ranker.RankerParams(), twostage.Fitted(None, table))
    assert built[-1].neighbours is table and table.is_cached
    table.unpersist()


def test_the_item_cf_search_weighs_shelves_by_their_stars_where_that_wins(spark, monkeypatch):
    # books A 0, B 1, D 2, C 3. u0 rated A 5 stars and B 1 star, and held out C; u1 shelved A and C, u2 B and D
    # (5 stars each). Unit weights: cos(A, C) = cos(B, D) = 1 / sqrt(2), so C and D tie for u0 and D, the
    # smaller index, comes first (NDCG@2 of C at rank 2: 1 / log2(3)). Stars: B weighs 0.2 for u0, so
    # cos(B, D) = 1 / sqrt(1.04) and D scores 0.2 x 0.98 against C's 0.71: C first, NDCG 1
    from recspark import itemcf

    made: list[str] = []
    counting = itemcf.Cooccurrence

    class Spy(counting):
        def __init__(self, interactions, params, *a, **kw):
            made.append(params.shelf_weights)
            super().__init__(interactions, params, *a, **kw)

    monkeypatch.setattr(itemcf, "Cooccurrence", Spy)
    monkeypatch.setattr(tune, "ITEMCF_GRID", ({"similarity": "cosine", "neighbours": 10},))
    schema = "user_idx int, book_idx int, date_added timestamp, rating int"
    rows = [
        (0, 0, None, 5),
        (0, 1, None, 1),
        (1, 0, None, 5),
        (1, 3, None, 5),
        (2, 1, None, 5),
        (2, 2, None, 5),
    ]
    truth = spark.createDataFrame([(0, 3)], "user_idx int, book_idx int")
    users = spark.createDataFrame([(0,)], "user_idx int")
    params, value, table = tune.best_itemcf(spark.createDataFrame(rows, schema), truth, users, 1, 1)
    table.unpersist()
    assert made == ["binary", "stars"] and params["shelf_weights"] == "stars" and value == 1.0
    # every shelf rated 5 stars or unrated: the weights would all be 1, so the stars are not tried
    made.clear()
    flat = [(u, b, d, 5 if r else 0) for u, b, d, r in rows]
    params, _, table = tune.best_itemcf(spark.createDataFrame(flat, schema), truth, users, 1, 1)
    table.unpersist()
    assert made == ["binary"] and params["shelf_weights"] == "binary"


def test_the_item_cf_search_tries_half_and_twice_as_many_ease_weights_and_keeps_the_better(
    spark, monkeypatch
):
    # EASE's tables are hand-made per cut n (what ease.neighbours would keep: each book's n largest weights).
    # u0 shelved books 0 and 3 and held out 2. With 2 weights per book: 0 -> 2 (0.9), 1 (0.6); 3 -> 1 (0.85),
    # 5 (0.8), so 1 sums 1.45 and comes before 2 (0.9): NDCG@2 1 / log2(3). Cut to 1 weight: 0 -> 2, 3 -> 1, so 2
    # (0.9) comes before 1 (0.85): NDCG@2 1. With 4 weights the table is the one of 2 (no more weights). The
    # search keeps the cut of 1, half the grid's 2; a cosine winner is not cut
    from recspark import itemcf

    full = {0: [(2, 0.9), (1, 0.6)], 3: [(1, 0.85), (5, 0.8)]}
    asked: list[tuple[str, int]] = []

    def table(self, kind, n, min_common=1, ease_l2=1.0):
        asked.append((kind, n))
        rows = [(b, r + 1, nb, s) for b, lst in full.items() for r, (nb, s) in enumerate(lst[:n])]
        return spark.createDataFrame(rows, "book_idx int, rank int, neighbour_idx int, score float")

    monkeypatch.setattr(itemcf.Cooccurrence, "neighbours", table)
    monkeypatch.setattr(tune, "ITEMCF_GRID", ({"similarity": "ease", "neighbours": 2, "ease_l2": 1.0},))
    schema = "user_idx int, book_idx int, date_added timestamp, rating int"
    rows = [(0, 0, None, 5), (0, 3, None, 5), (1, 1, None, 5), (1, 2, None, 5), (1, 5, None, 5)]
    truth = spark.createDataFrame([(0, 2)], "user_idx int, book_idx int")
    users = spark.createDataFrame([(0,)], "user_idx int")
    params, value, table_kept = tune.best_itemcf(spark.createDataFrame(rows, schema), truth, users, 1, 1)
    table_kept.unpersist()
    assert asked == [("ease", 2), ("ease", 1), ("ease", 4)]
    assert params["neighbours"] == 1 and params["similarity"] == "ease" and value == 1.0
    asked.clear()
    monkeypatch.setattr(tune, "ITEMCF_GRID", ({"similarity": "cosine", "neighbours": 2},))
    params, _, table_kept = tune.best_itemcf(spark.createDataFrame(rows, schema), truth, users, 1, 1)
    table_kept.unpersist()
    assert asked == [("cosine", 2)] and params["neighbours"] == 2


def test_the_item_cf_search_adds_the_liked_share_where_that_wins(spark, monkeypatch):
    # books A 0, D 1, C 2. u1 shelved A (5 stars) and D (1 star), u2 A and C (5 stars); u0 shelved A and held out C.
    # cos(A, D) = cos(A, C) with unit weights and with stars alike, and D and C have one reader each, so no
    # similarity, shelf weight or popularity prior ranks C first (D, the smaller index, wins the tie: NDCG@1 0).
    # Liked shares (4 of 5 shelves liked; 10 pseudo-shelves at 0.8): D 8 / 11, C 9 / 11, so the first liked-share
    # prior of the grid puts C first (NDCG@1 1) and the larger ones score no higher
    from recspark import itemcf

    monkeypatch.setattr(tune, "ITEMCF_GRID", ({"similarity": "cosine", "neighbours": 10},))
    schema = "user_idx int, book_idx int, date_added timestamp, rating int"
    rows = [(0, 0, None, 5), (1, 0, None, 5), (1, 1, None, 1), (2, 0, None, 5), (2, 2, None, 5)]
    truth = spark.createDataFrame([(0, 2)], "user_idx int, book_idx int")
    users = spark.createDataFrame([(0,)], "user_idx int")
    train = spark.createDataFrame(rows, schema)
    params, value, table = tune.best_itemcf(train, truth, users, 1, 1)
    table.unpersist()
    assert params["liked_weight"] == tune.ITEMCF_LIKED_GRID[0] and value == 1.0
    assert params["popularity_weight"] == 0.0 and params["shelf_weights"] == "binary"
    assert (
        itemcf.ItemCfParams(**params).describe().endswith(f"liked-share prior {tune.ITEMCF_LIKED_GRID[0]:g}")
    )
    # every shelf liked (rated 4 or 5, or unrated): every share is the same, so no liked prior is tried
    tried: list = []
    each = itemcf.recommend_each_prior

    def spy(*a, **kw):
        tried.extend(a[3])
        return each(*a, **kw)

    monkeypatch.setattr(itemcf, "recommend_each_prior", spy)
    liked = spark.createDataFrame([(u, b, d, 5) for u, b, d, _ in rows], schema)
    params, _, table = tune.best_itemcf(liked, truth, users, 1, 1)
    table.unpersist()
    assert params["liked_weight"] == 0.0 and tried and all(gamma == 0.0 for _, gamma in tried)


def test_likes_differ_only_where_some_shelves_are_liked_and_others_not(spark):
    from recspark import candidates

    schema = "user_idx int, book_idx int, rating int, is_read boolean"

    def differ(rows):
        return candidates.likes_differ(spark.createDataFrame(rows, schema))

    assert differ([(0, 0, 2, True), (0, 1, 5, True)])  # ratings: 2 stars is not liked
    assert not differ([(0, 0, 4, True), (0, 1, 0, True)])  # 4 stars and unrated: both liked
    assert not differ(
        [(0, 0, 0, False), (0, 1, 0, False)]
    )  # to-read shelves: reading not recorded, all liked
    assert differ([(0, b, 0, b % 2 == 0) for b in range(10)])  # shelves half read: the unread are not liked
    assert not candidates.likes_differ(spark.createDataFrame([(0, 1)], "user_idx int, book_idx int"))


def test_shelf_weights_are_tried_only_where_the_data_tells_shelves_apart(spark):
    schema = "user_idx int, book_idx int, rating int, is_read boolean"

    def options(rows):
        return tune.shelf_weight_options(spark.createDataFrame(rows, schema))

    assert options([(0, 0, 3, True), (0, 1, 0, False)]) == ["stars", "read"]
    assert options([(0, 0, 5, True), (0, 1, 0, True)]) == []  # stars 5 or none, every shelf read
    assert options([(0, 0, 0, False), (0, 1, 0, False)]) == []  # to-read shelves: one weight for all
    assert options([(0, 0, 2, True), (0, 1, 5, True)]) == ["stars"]  # ratings: every row read
    assert tune.shelf_weight_options(spark.createDataFrame([(0, 1)], "user_idx int, book_idx int")) == []


def series_check_case(spark, later_volume_readers: int):
    """40 readers of "Emma" (book 3), each recommended "Saga III (Saga, #3)" (book 2) first, none having started
    the Saga; ``later_volume_readers`` of them hold book 2 out, the others the Saga's first volume (book 0). Books 4
    and 5 fill the lists, 2k = 4 deep (k 2). ``(recs, train, truth, books)``."""
    books = spark.createDataFrame(
        [
            (0, "Saga (Saga, #1)"),
            (1, "Saga II (Saga, #2)"),
            (2, "Saga III (Saga, #3)"),
            (3, "Emma"),
            (4, "Persuasion"),
            (5, "Walden"),
        ],
        "book_idx int, title string",
    )
    users = range(40)
    train = spark.createDataFrame([(u, 3) for u in users], "user_idx int, book_idx int")
    truth = spark.createDataFrame(
        [(u, 2 if u < later_volume_readers else 0) for u in users], "user_idx int, book_idx int"
    )
    recs = spark.createDataFrame(
        [(u, r + 1, b, 1.0 - r / 10) for u in users for r, b in enumerate((2, 4, 5, 1))],
        "user_idx int, rank int, book_idx int, score double",
    )
    return recs, train, truth, books


@pytest.mark.parametrize(
    "later, kept, in_order, as_ranked, z",
    [
        # 30 readers lose their hit at rank 1 (NDCG 1 -> 0), 10 gain one (0 -> 1): the differences are -1 (30x)
        # and +1 (10x), mean -0.5, standard deviation sqrt(30 / 39), z = -0.5 / (sqrt(30 / 39) / sqrt(40))
        (30, False, 0.25, 0.75, round(-0.5 / (math.sqrt(30 / 39) / math.sqrt(40)), 2)),
        # the other way round: the rule gains, kept
        (10, True, 0.75, 0.25, round(0.5 / (math.sqrt(30 / 39) / math.sqrt(40)), 2)),
        # 22 lose, 18 gain: mean -0.1, z = -0.1 / (sqrt((22 * 0.81 + 18 * 1.21) / 39) / sqrt(40)) = -0.63, kept
        (22, True, 0.45, 0.55, round(-0.1 / (math.sqrt((22 * 0.81 + 18 * 1.21) / 39) / math.sqrt(40)), 2)),
    ],
)
def test_series_check_switches_the_rule_off_only_where_it_costs(spark, later, kept, in_order, as_ranked, z):
    """The rule sends every reader from "Saga III" to "Saga" at rank 1 (half of each top 2 replaced); it is kept
    unless validation NDCG@2 in series order is two standard errors below the lists as ranked. Values by hand."""
    recs, train, truth, books = series_check_case(spark, later)
    found = tune.series_check(recs, train, truth, books, k=2)
    assert found == {
        "kept": kept,
        "z": z,
        "ndcg_in_order": in_order,
        "ndcg_as_ranked": as_ranked,
        "replaced_share": 0.5,
        "min_z": tune.SERIES_MARGIN_Z,
    }
    assert ("switched off" in tune.describe_series(found)) is not kept


def test_the_series_rule_is_followed_as_tuned(spark):
    """A search that found the rule costly switches it off in the run's configuration; a search that kept it, did
    not check it (no volumes), or a summary from before the check leave it on. ``series.has_volumes`` says whether
    there is anything to check; ``series.as_ranked`` keeps a list as ranked with a null note."""
    from recspark import series
    from recspark.config import with_tuned

    assert with_tuned(RunConfig(), {"series": {"kept": False}}).series_order is False
    for found in ({"series": {"kept": True}}, {"series": None}, {}):
        assert with_tuned(RunConfig(), found).series_order is True
    recs, _, _, books = series_check_case(spark, 0)
    assert series.has_volumes(books)
    assert not series.has_volumes(books.where("book_idx > 2"))
    assert not series.has_volumes(books.drop("title"))
    kept = series.as_ranked(recs)
    assert kept.columns == [*recs.columns, series.SERIES_NOTE]
    assert kept.where(f"{series.SERIES_NOTE} is not null").count() == 0
    assert_df_equality(kept.drop(series.SERIES_NOTE), recs, ignore_row_order=True)
