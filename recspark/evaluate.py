"""Offline evaluation: the model against baselines on a persisted split, every metric at several K.

Writes ``gold.evaluations`` rows ``(run_id, model, k, metric, value, split, params)`` and a Markdown report with
a PNG plot (metric vs K per model).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recspark import baselines, candidates, metrics, topk, tune
from recspark import columns as C
from recspark.blend import DEFAULT_PRIOR
from recspark.frames import union_all
from recspark.itemcf import ItemCfParams
from recspark.tune import describe, describe_runner_up, describe_series, describe_validation
from recspark.twostage import THIN_SHARE, published_in, vs_blend
from recspark.works import Works, candidates_of, seen_of

log = logging.getLogger(__name__)

DEFAULT_KS = [5, 10, 20]
_MODEL = "_model"  # which model's list a row of the evaluated lists belongs to
WORK_PREFIX = "work_"  # work-level ranking metrics: work_ndcg, work_recall, ...
# ranking metrics over the held-out books validation counts relevant (recspark.candidates.liked: not rated below 4
# stars, and read where the data records reading), over the users with at least one: liked_ndcg, liked_recall, ...
# What the plain rows count is every held-out book; where the two sets are the same, these rows are not written
LIKED_PREFIX = "liked_"
EVAL_SCHEMA = T.StructType(
    [
        T.StructField(C.RUN_ID, T.StringType(), False),
        T.StructField("model", T.StringType(), False),
        T.StructField("k", T.IntegerType(), False),
        T.StructField("metric", T.StringType(), False),
        T.StructField("value", T.DoubleType(), False),
        T.StructField("split", T.StringType(), True),
        T.StructField("params", T.StringType(), True),
    ]
)


@dataclass
class Evaluation:
    results: dict[str, dict[int, dict[str, float]]] = field(
        default_factory=dict
    )  # model -> k -> metric -> value
    timings: dict[str, float] = field(default_factory=dict)  # seconds: fit, recommend, baselines, metrics
    stars: dict[str, dict] | None = None  # predicted ratings: {"stars"|"book_mean": {"rmse", "mae", "n"}}

    def value(self, model: str, metric: str, k: int) -> float:
        return self.results[model][k][metric]

    def rows(self, run_id: str, split: str, params: dict) -> list[tuple]:
        """Ranking and beyond-accuracy metrics at each K; predicted-star errors with ``k = 0``."""
        p = json.dumps(params, sort_keys=True, default=str)
        rows = [
            (run_id, model, k, metric, float(v), split, p)
            for model, by_k in self.results.items()
            for k, ms in by_k.items()
            for metric, v in ms.items()
        ]
        for model, errs in (self.stars or {}).items():
            rows += [(run_id, model, 0, m, float(errs[m]), split, p) for m in ("rmse", "mae")]
        return rows

    def table(self, k: int) -> str:
        models = list(self.results)
        names = (
            list(metrics.RANKING)
            + [LIKED_PREFIX + m for m in metrics.RANKING]
            + list(metrics.BEYOND)
            + [WORK_PREFIX + m for m in metrics.RANKING]
        )
        head = f"| metric@{k} | " + " | ".join(models) + " |"
        lines = [head, "|" + "---|" * (len(models) + 1)]
        for m in names:
            if all(m in self.results[x].get(k, {}) for x in models):
                lines.append(f"| {m} | " + " | ".join(f"{self.results[x][k][m]:.4f}" for x in models) + " |")
        return "\n".join(lines)


def materialise(recs: DataFrame) -> DataFrame:
    """Compute a model's lists once (cached, counted) so that the metric passes read them instead of running
    the top-K again for every action."""
    recs = recs.select(C.USER_IDX, C.RANK, C.BOOK_IDX, C.SCORE).cache()
    recs.count()
    return recs


def evaluate_lists(
    recs_by_model: dict[str, DataFrame],
    train: DataFrame,
    test: DataFrame,
    item_factors: DataFrame | None,
    ks: list[int],
    works: Works | None = None,
    liked: DataFrame | None = None,
) -> Evaluation:
    """Every metric at every K for each model's lists (materialised with :func:`materialise`): one pass over all
    models' lists for the ranking metrics, one for coverage/novelty/popularity and one for diversity; the
    catalogue statistics are computed once. With ``works`` the ranking metrics are also computed at work
    level (``work_ndcg`` ...): a held-out edition is a hit when any edition of its work is shown. With ``liked``
    (the rows of ``test`` that count as relevant, :func:`liked_rows`) they are also computed over those books
    only, averaged over the users with at least one (``liked_ndcg`` ...)."""
    ev = Evaluation()
    catalogue = metrics.Catalogue.of(train, item_factors)
    truth = test.select(C.USER_IDX, C.BOOK_IDX).cache()
    work_truth = works.to_work_level(truth).cache() if works is not None else None
    names = list(recs_by_model)
    # every model's lists in one frame, told apart by a model column: each metric is one Spark job for all
    lists = union_all(
        [
            recs.select(F.lit(name).alias(_MODEL), C.USER_IDX, C.RANK, C.BOOK_IDX)
            for name, recs in recs_by_model.items()
        ]
    )
    try:
        log.info("evaluating %s", ", ".join(names))
        rank_m = metrics.ranking_metrics_by(lists, truth, ks, names, by=_MODEL)
        beyond = metrics.beyond_accuracy_by(lists, catalogue, ks, names, by=_MODEL)
        for name in names:
            ev.results[name] = {k: {**rank_m[name][k], **beyond[name][k]} for k in ks}
        if liked is not None:
            by_liked = metrics.ranking_metrics_by(
                lists, liked.select(C.USER_IDX, C.BOOK_IDX), ks, names, by=_MODEL
            )
            for name in names:
                for k in ks:
                    ev.results[name][k].update(
                        {f"{LIKED_PREFIX}{m}": v for m, v in by_liked[name][k].items()}
                    )
        if work_truth is not None:
            by_work = metrics.ranking_metrics_by(
                works.to_work_level(lists, by=[_MODEL]), work_truth, ks, names, by=_MODEL
            )
            for name in names:
                for k in ks:
                    ev.results[name][k].update({f"{WORK_PREFIX}{m}": v for m, v in by_work[name][k].items()})
    finally:
        catalogue.release()
        truth.unpersist()
        if work_truth is not None:
            work_truth.unpersist()
    return ev


def liked_rows(test: DataFrame, train: DataFrame) -> DataFrame | None:
    """The held-out rows validation counts relevant (:func:`recspark.tune.liked`, reading judged on ``train`` as
    validation judges it on its training side), or None when they are all of ``test`` (unrated to-read shelves):
    then the ``liked_`` metrics would repeat the plain ones."""
    reads = candidates.reads_recorded(train)
    n, n_liked = test.agg(F.count(F.lit(1)), F.count(F.when(candidates.liked(reads), 1))).first()
    return None if n_liked == n else tune.liked(test, reads)


def baseline_lists(
    spark: SparkSession,
    train: DataFrame,
    test: DataFrame,
    k: int,
    with_trending: bool,
    works: Works | None = None,
) -> dict[str, DataFrame]:
    """Top-k lists of the baselines for the users in ``test``, seen (train) books excluded (with ``works``: one
    edition per work, every edition of a seen work excluded)."""
    users = baselines.constant_user_factors(test)
    seen = seen_of(works, train.join(test.select(C.USER_IDX).distinct(), on=C.USER_IDX, how="left_semi"))
    scores = {"popularity": baselines.popularity(train)}
    if with_trending:
        scores["trending"] = baselines.trending(train)
    return {
        name: topk.recommend(spark, users, candidates_of(works, baselines.as_factors(s)), k, seen=seen)
        for name, s in scores.items()
    }


def budget_clock(clock: str | None) -> str:
    """How the report names the clock of a search's budget (:func:`recspark.spark.work_clock`): nothing for the
    wall clock (and older records, which have no clock)."""
    if not clock or clock == "wall":
        return ""
    cores = clock.removeprefix("cpu/")
    return f" of Spark's CPU time over {cores} core{'s' if cores != '1' else ''}"


def default_check_lines(check: dict | None) -> list[str]:
    """The report's line on the search's best against the built-in configuration (none when they are one)."""
    if not check or "winner_ndcg" not in check:  # the search's best is the built-in configuration itself
        return []
    verdict = (
        "the search's best is kept"
        if check["chosen"] == "winner"
        else "the built-in configuration is chosen (the search's best is the runner-up)"
    )
    return [
        f"- **against the built-in configuration** ({check['iterations']} iterations, the same validation users): "
        f"{check['winner_ndcg']} vs {check['default_ndcg']}, paired z {metrics.z_text(check['z'])}"
        + (
            f"; a choice among the first rung's {check['configurations']} configurations, cross-fitted: z "
            f"{metrics.z_text(check['z_cross_fitted'])}"
            if "z_cross_fitted" in check  # older records have the direct z only
            else ""
        )
        + f" (each needs {check['min_z']}): {verdict}"
    ]


def tuning_section(tuning: dict) -> str:
    """The report's account of how the ALS parameters were chosen."""

    def fmt(row: dict | None) -> str:
        return describe(row) if row else "none"

    lines = ["## How the parameters were chosen", ""]
    if tuning.get("skipped"):
        lines.append(f"No search: {tuning['skipped']}.")
    else:
        how = "reused from the earlier search on these inputs" if tuning.get("reused") else "searched now"
        best, second = tuning.get("best"), tuning.get("runner_up")
        lines += [
            f"- **chosen** ({how}): {fmt(best)}",
            "- **runner-up**: "
            + (
                describe_runner_up(best, second, tuning.get("default_check"))
                if best and second
                else fmt(second)
            ),
            *default_check_lines(tuning.get("default_check")),
            f"- **search**: {tuning.get('trials')} trials"
            + (f" ({n} more skipped as too slow)" if (n := tuning.get("trials_skipped")) else "")
            + f" in {tuning.get('seconds')} s "
            f"(budget {tuning.get('budget_s')} s{budget_clock(tuning.get('clock'))}); "
            "validation split carved from the training side only"
            + (f" ({made})" if (made := describe_validation(tuning.get("validation"))) else ""),
        ]
    if tuning.get("itemcf"):
        scored = (tuning.get("models") or {}).get("itemcf")
        lines.append(
            f"- **item-CF**: {ItemCfParams(**tuning['itemcf']).describe()}"
            + (f" (validation NDCG {scored})" if scored is not None else "")
        )
    lines += [f"- **not searched**: {note}" for note in tuning.get("notes") or []]
    if tuning.get("series"):
        lines.append(f"- **series order**: {describe_series(tuning['series'])}")
    rk = tuning.get("ranker")
    if rk:
        lines += ["", "### Two-stage ranker (candidates from every model, LambdaMART)", ""]
        if rk.get("skipped"):
            lines.append(f"Not trained: {rk['skipped']}.")
        else:
            verdict = (
                "published"
                if published_in(rk) == "ranker"
                else f"not published (not two standard errors ahead of the blend below{vs_blend(rk)})"
                if rk.get("wins")
                else f"not published ({rk.get('best_single')} is better, or the gain is within the noise)"
            )
            lines.append(
                f"Validation NDCG: ranker {rk.get('ranker')} vs single models {json.dumps(rk.get('single'))} "
                f"on held-out validation users ({rk.get('lift')}x the best, paired z "
                f"{metrics.z_text(rk.get('z'))}; published when z >= 2): {verdict}."
            )
        if rk.get("blend"):  # also when the learned ranker was not trained
            lines.append(blend_line(rk))
        if rk.get("recall"):  # not when the check was skipped before any candidates were drawn
            lines.append(
                f"Candidate recall (top-{rk.get('n_candidates')} per source): {json.dumps(rk.get('recall'))}."
            )
        if rk.get("importances"):
            top = ", ".join(f"{k} {v:.1%}" for k, v in list(rk["importances"].items())[:8])
            lines.append(f"Feature importance (share of gain): {top}.")
    return "\n".join(lines) + "\n"


def blend_line(rk: dict) -> str:
    """The report's line on the blend of ALS and item-CF (recspark.blend) from the two-stage record ``rk``."""
    b = rk["blend"]
    best = b.get("best_single", rk.get("best_single"))
    verdict = (
        "published"
        if published_in(rk) == "blend"
        else "not published (the ranker above led it by two standard errors)"
        if b.get("wins")
        else f"not published ({best} is ahead by a standard error or more)"
    )
    head = (
        "Blend of ALS and item-CF, `(1 - w) · ALS + w · item-CF + γ · liked` over the same candidates (each "
        "scaled by the user's top score; liked: the book's share of shelves not rated below 4 stars, and read "
        "where the data records reading; γ searched only when the books differ in it)"
    )
    if "ndcg_by_weight" not in b:  # records from before the cross-fitting: chosen on the fit users
        return (
            f"{head}: w = {b['weight']:g} chosen on the fit users (NDCG by w: "
            f"{json.dumps(b['ndcg_by_weight_on_fit_users'])}); on the held-out validation users NDCG {b['ndcg']} "
            f"vs the best single model's {max((rk.get('single') or {0: 0}).values())} (paired z "
            f"{metrics.z_text(b['z'])}; published when higher): {verdict}."
        )
    if "even_mix_z" in b:  # since the one-standard-error rules
        rules = (
            "an even mix w 0.5 unless another weight is a standard error ahead, z of the best against it: "
            f"{json.dumps(b['even_mix_z'])}"
        )
        if "prior_z" in b:  # since the γ rule (2026-12-06)
            rules = (
                f"γ {DEFAULT_PRIOR:g} unless another γ is a standard error ahead, z of the best against the best "
                f"with γ {DEFAULT_PRIOR:g}: {json.dumps(b['prior_z'])}; then {rules}"
            )
        kept = "published unless the best single model is a standard error ahead"
        if b.get("learning_curve"):  # since the learning curve (2026-12-07)
            rules += f"; then {curve_text(b['learning_curve'])}"
    else:
        rules, kept = "the best", "published when higher"
    return (
        f"{head}: w = {b['weight']:g}, γ = {b.get('prior', 0.0):g} (NDCG by setting `w` or `w+γ` on the "
        f"validation users: {json.dumps(b['ndcg_by_weight'])}; chosen: {rules}). "
        f"Cross-fitted (each half of the users ranked with the weight chosen on the other half; by half: "
        f"{json.dumps(b['weight_best_on_half'])}): NDCG {b['ndcg']} vs the best single model's "
        f"{b['single'][best]} ({best}) on the same users (paired z {metrics.z_text(b['z'])}; {kept}): {verdict}."
    )


def curve_text(curve: dict) -> str:
    """The blend's learning curve in words (:func:`recspark.twostage.extrapolated_choice`'s record)."""
    return (
        f"the weight where the scores are heading: each setting's NDCG extrapolated {curve['reach']:g} steps "
        f"from sources fitted on {100 * THIN_SHARE:.0f}% of each user's validation training rows "
        f"({json.dumps(curve['thin'])}) to the validation ones and on ({json.dumps(curve['extrapolated'])}), the "
        f"even mix moved one weight towards the best for every half standard error of its lead (z "
        f"{metrics.z_text(curve['best_z_vs_even_mix'])}): w {curve['weight']:g} (validation alone: "
        f"{curve['weight_on_validation']:g})"
    )


def stars_section(errors: dict[str, dict], params: dict) -> str:
    """The report's predicted-stars table: the explicit model against the per-book mean."""
    lines = [
        "## Predicted stars (explicit ALS on rated shelves)",
        "",
        f"Model: {json.dumps(params)}; held-out rated shelves: {errors['stars']['n']:,}.",
        "",
        "| | RMSE | MAE |",
        "|---|---|---|",
    ]
    for name, label in (("stars", "explicit ALS"), ("book_mean", "per-book mean (baseline)")):
        lines.append(f"| {label} | {errors[name]['rmse']:.4f} | {errors[name]['mae']:.4f} |")
    return "\n".join(lines) + "\n"


def write_report(
    ev: Evaluation, path: Path, title: str, details: dict, sections: list[str] | None = None
) -> Path:
    """Markdown report with the metric tables and a PNG plot of each ranking metric vs K."""
    path.parent.mkdir(parents=True, exist_ok=True)
    png = path.with_suffix(".png")
    plot(ev, png)
    ks = sorted(next(iter(ev.results.values())).keys())
    lines = [f"# {title}", ""]
    for key, val in details.items():
        lines.append(f"- **{key}**: {val}")
    lines += ["", f"![metrics vs K]({png.name})", ""]
    for k in ks:
        lines += [ev.table(k), ""]
    lines += list(sections or [])
    path.write_text("\n".join(lines))
    return path


def plot(ev: Evaluation, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics.RANKING)
    fig, axes = plt.subplots(2, 3, figsize=(12, 7))
    for ax, m in zip(axes.ravel(), names):
        for model, by_k in ev.results.items():
            ks = sorted(by_k)
            ax.plot(ks, [by_k[k][m] for k in ks], marker="o", label=model)
        ax.set_title(m)
        ax.set_xlabel("K")
        ax.grid(alpha=0.3)
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
