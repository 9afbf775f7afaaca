"""Two-stage recommendations: candidates from every model family, ordered by a learned ranker.

1. Every source is fitted on one training set (:func:`fit_sources`: implicit ALS, item-CF neighbours, content
   vectors, popularity) and proposes its top-``n`` books per user (:func:`source_lists`, shelved books excluded).
   On the tuning split the search has fitted the chosen item-CF table and, when its winner ran the full
   iterations, the ALS model already: those are reused (:class:`Fitted`), not fitted a second time.
2. :mod:`recspark.candidates` unions them and computes the features; :mod:`recspark.ranker` learns the order.
3. :func:`validate` decides whether the ranker is worth publishing. On the tuning split (carved from the training
   side of the evaluation split; the evaluation holdout is never seen), the validation users are cut in two by a
   hash: the ranker learns from the first part's held-out books, and on the second part its NDCG@K is compared
   with every single source's. It is published only when it beats the best of them by more than the noise: the
   per-user NDCG@K differences on the same users must have a mean of at least :data:`MIN_Z` standard errors
   (a paired z test; ``make run`` once published a ranker that won validation by 1.6% and then lost the
   evaluation by 4.6%). Beside it, :func:`blend_check` scores the one-weight blend of ALS and item-CF
   (:mod:`recspark.blend`) on the same candidates, cross-fitted on every validation user: the weight chosen on
   one half ranks the other half, and the blend is published when those lists score higher than every single
   model on all the validation users. When both win, the blend is published unless the ranker leads it on the
   check users by :data:`MIN_Z` standard errors too (:func:`published_kind`): in every run so far where the
   ranker won validation it scored below the blend from outside. Cross-fitting judges on all users instead of the
   30% check part: with a few hundred users the check part alone is a few dozen users, too few to tell a gain
   from noise.
4. The blend's weight is chosen where the validation scores are heading (:class:`Thinner`): ALS and item-CF are
   fitted again on a per-user 80% of the validation training rows, the same users' blend lists scored at every
   weight, and each user's NDCG extrapolated linearly on a log scale of rows from that level through validation
   to the rows a published run fits on (:func:`reach_of`, at most two steps; :func:`extrapolated_choice`); there
   the even mix moves one weight towards the best for every half standard error of its lead
   (:func:`towards_the_best`). Validation fits on about two thirds of the data, and which family gains more from
   the rest differs between data sets. Cost: one more fit of each.

The lists of a published ranker run come from :func:`ranked_lists`: the same sources fitted on all interactions,
the ranker trained on the tuning split, the explanations of ALS ("because you shelved ...").
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recspark import als, baselines, blend, candidates, content, itemcf, metrics, ranker, split, topk
from recspark import columns as C
from recspark.content import ContentParams
from recspark.features import Weights, preference
from recspark.itemcf import ItemCfParams
from recspark.works import Works, candidates_of, seen_of

log = logging.getLogger(__name__)

FIT_SHARE = 0.7  # validation users the ranker learns from; the rest judge it against the single models
MIN_Z = 2.0  # the ranker is published only when its per-user NDCG gain over the best single model has z >= 2
# the blend's one-standard-error rules (blend_check): it is kept unless the best single model is ahead of it by this
# many standard errors of the paired difference, its liked share's weight stays at blend.DEFAULT_PRIOR and its
# weight at the even mix unless another is ahead of it by as many. Why: validation fits on about two thirds of the
# data, and item-CF gains more from the rest than ALS (real to_read shelves: item-CF 0.92 of ALS on validation, 1.13
# on the test; docs/quality.md, "Native BLAS and the search"); on the test an even mix was within about 1% of the
# best weight on every shape but one (bench/results/blend.json)
BLEND_MARGIN_Z = 1.0
EVEN_MIX = 0.5
# the learning curve's weight moves from the even mix towards the best extrapolated weight by one step of
# blend.WEIGHTS for every this many standard errors of the best's lead (at most to the best; so at BLEND_MARGIN_Z
# all the way, as the even mix's rule elsewhere). Why: a lead inside a standard error still points the right way more
# often than not, and a step costs little where it does not: the curve is flat near its top. Measured from outside
# (docs/quality.md, "The learning curve's half step"): MovieLens 100k, lead 0.97 standard errors, w 0.35 instead of
# 0.5, 0.3717 -> 0.3794; goodbooks-like ratings, 0.96, w 0.65, 0.0970 -> 0.0974; bench/blend_curve.py's levels,
# 0.71, w 0.65, 0.10732 -> 0.10737; no set measured where it lost
BLEND_STEP_Z = 0.5
# the blend's learning curve (Thinner): the weight is chosen where the validation scores are heading as the data
# grows, measured against sources fitted on this share of each user's validation training rows, and extrapolated
# at most this many such steps (on a log scale of rows) towards the data a published run fits on. Why: the family
# that gains more from the rest of the data differs between data sets (MovieLens ratings: ALS, the best weight 0.5
# at half the data and 0.2 at all of it; to-read shelves the other way; bench/blend_curve.py)
THIN_SHARE = 0.8
MAX_REACH = 2.0
_SOURCE = "_source"


@dataclass
class Sources:
    """The fitted artefacts of every source on one training set (None: the source is unavailable)."""

    user_factors: DataFrame | None
    item_factors: DataFrame | None
    neighbours: DataFrame | None
    vectors: DataFrame | None
    content_params: ContentParams
    works: Works | None = None  # one edition per work, shelved works excluded (recspark.works)
    # the parameters item-CF's table was fitted with: its lists use the same popularity prior β and shelf weights
    itemcf_params: ItemCfParams = field(default_factory=ItemCfParams)


@dataclass
class Fitted:
    """Models a caller already fitted on the same training set with the same parameters (None: fit it here)."""

    als_model: ALSModel | None = None
    neighbours: DataFrame | None = None

    def names(self) -> list[str]:
        """The sources given (``als``, ``itemcf``): what is reused rather than fitted again."""
        return [name for name, v in (("als", self.als_model), ("itemcf", self.neighbours)) if v is not None]


@dataclass
class Thinner:
    """The thinner end of the blend's learning curve: sources fitted on :func:`thinned` validation training rows,
    and ``reach``, how many thinning steps the published run's data lies beyond validation (:func:`reach_of`)."""

    train: DataFrame
    sources: Sources
    reach: float


def thinned(train: DataFrame, seed: int) -> DataFrame:
    """A per-user :data:`THIN_SHARE` of ``train``'s rows (chosen by a hash of user, book and ``seed``; no cap, so
    heavy users are thinned alike): the thinner level of the blend's learning curve."""
    return split.holdout(train, fraction=1 - THIN_SHARE, seed=seed, min_user=2, max_held_out=None).train


def reach_of(full_rows: int, valid_rows: int, thin_rows: int) -> float:
    """How far the published run's ``full_rows`` lie beyond validation's ``valid_rows``, in steps of the thinning
    from ``valid_rows`` to ``thin_rows`` on a log scale of rows (2 when each is 80% of the next), at most
    :data:`MAX_REACH`; 0 when there is no step to measure or no data beyond validation."""
    if not 0 < thin_rows < valid_rows or full_rows <= valid_rows:
        return 0.0
    return min(MAX_REACH, math.log(full_rows / valid_rows) / math.log(valid_rows / thin_rows))


def top_setting(means: dict[blend.Blend, float]) -> blend.Blend:
    """The setting of the highest mean NDCG (compared at 5 decimals, as records keep them; ties: the nearer an even
    mix, then the smaller γ)."""
    return max(means, key=lambda b: (round(means[b], 5), -abs(b.weight - EVEN_MIX), -b.prior))


def one_se_choice(
    scores: dict[blend.Blend, np.ndarray], prior_zs: dict[str, float | None], even_zs: dict[str, float | None]
) -> blend.Blend:
    """The blend's one-standard-error rules on per-user NDCG@K (arrays in one user order): the best setting
    (:func:`top_setting`), or the best with γ :data:`recspark.blend.DEFAULT_PRIOR` unless the best is
    :data:`BLEND_MARGIN_Z` standard errors ahead of it (a paired z, recorded in ``prior_zs`` by the best's label);
    then that setting, or the even mix (:data:`EVEN_MIX`) with its γ unless the setting is as far ahead of it
    (recorded in ``even_zs``). Every rule on the blend's settings is this one function: the cross-fitted halves,
    all validation users, and the learning curve's extrapolated scores."""
    means = {b: metrics.mean_score(v) for b, v in scores.items()}
    top = top_setting(means)
    at_prior = {b: m for b, m in means.items() if b.prior == blend.DEFAULT_PRIOR}
    if at_prior and top.prior != blend.DEFAULT_PRIOR:
        kept = top_setting(at_prior)
        _, z = metrics.paired_z(scores[top], scores[kept])
        prior_zs[top.label] = metrics.recorded_z(z)
        top = top if z >= BLEND_MARGIN_Z else kept
    even = blend.Blend(EVEN_MIX, top.prior)
    if top == even or even not in scores:
        return top
    _, z = metrics.paired_z(scores[top], scores[even])
    even_zs[top.label] = metrics.recorded_z(z)  # None: ahead for every user alike
    return top if z >= BLEND_MARGIN_Z else even


def extrapolated_choice(
    valid: dict[blend.Blend, np.ndarray], thin: dict[blend.Blend, np.ndarray], reach: float
) -> tuple[blend.Blend, dict]:
    """The blend setting best where the validation scores are heading: each user's NDCG@K of each setting
    extrapolated linearly from the thinner level to validation and ``reach`` steps on,
    ``valid + reach · (valid - thin)`` (the arrays per user, in one user order), then :func:`one_se_choice` on
    those (the settings share one γ: the even mix kept unless the best is :data:`BLEND_MARGIN_Z` standard errors
    ahead of it), and where it keeps the even mix :func:`towards_the_best` (one weight of the grid for every
    :data:`BLEND_STEP_Z` standard errors of the best's lead). Returns (the setting, the record: the reach, each
    setting's mean NDCG at the thinner level and extrapolated, the z of the best against the even mix, whether
    the weight was stepped)."""
    ahead = {b: valid[b] + reach * (valid[b] - thin[b]) for b in valid}
    even_zs: dict[str, float | None] = {}
    top = one_se_choice(ahead, {}, even_zs)
    mean = {b: metrics.mean_score(v) for b, v in ahead.items()}
    stepped = towards_the_best(ahead, mean) if top.weight == EVEN_MIX else top
    return stepped, {
        "reach": round(reach, 3),
        "thin": {b.label: metrics.recorded_mean(thin[b]) for b in thin},
        "extrapolated": {b.label: round(m, 5) for b, m in mean.items()},
        "best_z_vs_even_mix": next(iter(even_zs.values()), None),
        "weight": float(stepped.weight),
        "stepped": stepped != top,  # moved from the even mix by steps of BLEND_STEP_Z (towards_the_best)
    }


def towards_the_best(scores: dict[blend.Blend, np.ndarray], means: dict[blend.Blend, float]) -> blend.Blend:
    """The even mix moved towards the best setting of ``scores`` (per-user arrays of one γ; ``means`` theirs) by one
    weight of the grid for every :data:`BLEND_STEP_Z` standard errors of the best's paired lead over the even mix,
    at most to the best; the even mix itself when the setting so reached does not score above it."""
    best = top_setting(means)
    even = blend.Blend(EVEN_MIX, best.prior)
    if best == even:
        return even
    _, z = metrics.paired_z(scores[best], scores[even])
    way = sorted(  # the weights from the even mix to the best, nearest the even mix first
        (b for b in scores if b.prior == best.prior and (b.weight - EVEN_MIX) * (best.weight - EVEN_MIX) > 0),
        key=lambda b: abs(b.weight - EVEN_MIX),
    )
    way = way[: way.index(best) + 1]
    steps = len(way) if math.isinf(z) else min(len(way), int(max(z, 0.0) // BLEND_STEP_Z))
    if steps == 0:
        return even
    reached = way[steps - 1]
    return reached if means[reached] > means[even] else even


def fit_sources(
    spark: SparkSession,
    train: DataFrame,
    als_params: als.AlsParams,
    weights: Weights,
    itemcf_params: ItemCfParams,
    content_params: ContentParams,
    vectors: DataFrame | None,
    fitted: Fitted | None = None,
) -> Sources:
    """ALS factors and item-CF neighbours fitted on ``train`` (materialised), or taken from ``fitted`` (the search
    fitted them already: refitting the same deterministic model would only cost time); content uses
    ``vectors``."""
    fitted = fitted or Fitted()
    model = fitted.als_model
    if model is None:
        model = als.fit(spark, train.transform(preference(weights)), als_params)
    else:
        log.info("two-stage: ALS factors of the search's winning trial reused")
    ufs, items = als.user_factors(model).cache(), als.item_factors(model).cache()
    neighbours = fitted.neighbours
    if neighbours is None:
        neighbours = itemcf.fit(train, itemcf_params)
    else:
        log.info("two-stage: item-CF neighbours of the search's chosen configuration reused")
    return Sources(
        ufs,
        items,
        neighbours,
        vectors,
        content_params,
        itemcf_params=itemcf_params,
    )


def itemcf_lists(train: DataFrame, sources: Sources, users: DataFrame, n: int, liked: bool) -> DataFrame:
    """Item-CF's top-``n`` for ``users`` with the parameters its table was fitted with, its liked-share prior
    only when ``liked``."""
    return itemcf.recommend_configured(
        train, sources.neighbours, sources.itemcf_params, n, users=users, works=sources.works, liked=liked
    )


def as_published(
    train: DataFrame, sources: Sources, users: DataFrame, n: int, lists: dict[str, DataFrame]
) -> dict[str, DataFrame]:
    """The single models' lists as a run publishes them: ``lists`` (cached), item-CF's with its liked-share
    prior when it has one (the candidates go without it: :func:`source_lists`), what the two-stage lists must
    beat."""
    if sources.itemcf_params.liked_weight <= 0 or "itemcf" not in lists:
        return lists
    return {**lists, "itemcf": itemcf_lists(train, sources, users, n, liked=True).cache()}


def source_lists(
    spark: SparkSession, train: DataFrame, sources: Sources, users: DataFrame, n: int
) -> dict[str, DataFrame]:
    """Each available source's top-``n`` ``(user_idx, rank, book_idx, score)`` for ``users``, shelved excluded
    (item-CF's with its popularity prior but not its liked-share prior, which the blend and the ranker add
    their own way)."""
    works = sources.works
    seen = seen_of(works, train.join(users, on=C.USER_IDX, how="left_semi"))
    lists: dict[str, DataFrame] = {}
    if sources.item_factors is not None:
        ufs = sources.user_factors.join(users, on=C.USER_IDX, how="left_semi")
        lists["als"] = topk.recommend(spark, ufs, candidates_of(works, sources.item_factors), n, seen=seen)
    if sources.neighbours is not None:
        # no liked-share prior of item-CF's own: the blend adds the liked share with its own γ, and the ranker
        # sees it as a feature (stacked under the blend's γ 0.3 it cost 2% on generated UCSD shelves)
        lists["itemcf"] = itemcf_lists(train, sources, users, n, liked=False)
    if sources.vectors is not None:
        lists["content"] = content.recommend(
            spark, train, sources.vectors, n, sources.content_params, users=users, works=works
        )
    pop = candidates_of(works, baselines.as_factors(baselines.popularity(train)))
    lists["popularity"] = topk.recommend(spark, baselines.constant_user_factors(users), pop, n, seen=seen)
    return {name: df.select(C.USER_IDX, C.RANK, C.BOOK_IDX, C.SCORE) for name, df in lists.items()}


def candidate_features(
    spark: SparkSession,
    train: DataFrame,
    sources: Sources,
    users: DataFrame,
    n: int,
    books: DataFrame | None,
) -> tuple[DataFrame, dict[str, DataFrame]]:
    """(materialised features of every candidate of ``users``, the source lists they came from)."""
    lists = {name: df.cache() for name, df in source_lists(spark, train, sources, users, n).items()}
    names = tuple(lists)
    feats = candidates.features(candidates.candidate_union(lists, n), train, books, names).cache()
    log.info("candidates: %s rows from %s", f"{feats.count():,}", ", ".join(names))
    return feats, lists


def validate(
    spark: SparkSession,
    train: DataFrame,
    truth: DataFrame,
    users: DataFrame,
    books: DataFrame | None,
    sources: Sources,
    k: int,
    params: ranker.RankerParams,
    learned: bool = True,
    thinner: Thinner | None = None,
) -> tuple[dict, object | None]:
    """Fit the ranker (unless not ``learned``) and choose the blend's weight on part of the validation users,
    compare both with every single source on the rest (with ``thinner``, the blend's weight from its learning
    curve: :func:`blend_check`). Returns (summary for the tuning record, the fitted model or None)."""
    t0 = time.perf_counter()
    n_users = users.count()
    if n_users > params.max_validation_users:  # a hashed sample bounds the cost of the check
        users = ranker.user_share(users, params.max_validation_users / n_users, params.seed + 1).cache()
    feats, lists = candidate_features(spark, train, sources, users, params.n_candidates, books)
    names = candidates.feature_names(tuple(lists))
    fit_users = ranker.user_share(users, FIT_SHARE, params.seed)
    check_users = users.join(fit_users, on=C.USER_IDX, how="left_anti")
    check_truth = truth.join(check_users, on=C.USER_IDX, how="left_semi").cache()
    summary: dict = {
        "recall": candidates.recall(feats, truth, tuple(lists), params.n_candidates),
        "n_candidates": params.n_candidates,
        "params": params.as_dict(),
    }
    singles_from = as_published(train, sources, users, params.n_candidates, lists)
    _, singles_on_check = single_scores(
        singles_from, check_truth, k
    )  # per user, ascending: the paired tests'
    singles = {name: metrics.recorded_mean(v) for name, v in singles_on_check.items()}
    summary["single"] = singles
    model = None
    try:
        if learned:
            fit_rows = ranker.labelled(feats.join(fit_users, on=C.USER_IDX, how="left_semi"), truth)
            model = ranker.fit(fit_rows, names, params)
    except ranker.TooFewPositives as exc:
        log.warning("ranker skipped: %s", exc)
        summary["skipped"] = str(exc)
    ranker_on_check = None
    if model is not None:
        ranked = ranker.rank(model, feats.join(check_users, on=C.USER_IDX, how="left_semi"), k)
        ranker_on_check = metrics.per_user_scores(ranked, check_truth, k)
        summary["ranker"] = metrics.recorded_mean(ranker_on_check)
        summary["importances"] = ranker.importances(model, names)
    best = max(singles, key=singles.get)
    summary["best_single"] = best
    summary["wins"] = False
    if model is not None:  # a paired test on the check users: a gain within the noise is no reason to switch
        _, z = metrics.paired_z(ranker_on_check, singles_on_check[best])
        summary["z"] = metrics.recorded_z(z)
        summary["wins"] = bool(summary["ranker"] > singles[best] and z >= MIN_Z)
    summary["lift"] = round(summary["ranker"] / max(singles[best], 1e-9), 4) if model is not None else None
    thin_feats = None
    if thinner is not None and thinner.reach > 0 and set(blend.SOURCES) <= set(lists):
        thin_feats, thin_lists = candidate_features(
            spark, thinner.train, thinner.sources, users, params.n_candidates, books
        )
        for df in thin_lists.values():
            df.unpersist()
    summary["blend"], blend_on_check = blend_check(
        feats,
        singles_from,
        users,
        truth,
        check_truth,
        k,
        params,
        thin_feats,
        thinner.reach if thinner else 0.0,
    )
    if thin_feats is not None:
        thin_feats.unpersist()
    if summary["wins"] and (summary["blend"] or {}).get("wins"):  # both won: the ranker against the blend
        if len(ranker_on_check) != len(blend_on_check):  # the same check users in the same order, or no test
            raise ValueError(
                f"ranker and blend on different check users: {len(ranker_on_check)}, {len(blend_on_check)}"
            )
        _, z = metrics.paired_z(ranker_on_check, blend_on_check)
        summary["z_vs_blend"] = metrics.recorded_z(z)
        summary["beats_blend"] = bool(z >= MIN_Z)  # z is infinite where every user gains alike
    summary["publish"] = published_kind(summary)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    b = summary["blend"] or {}
    log.info(
        "ranker NDCG@%d %s vs single models %s on %d check users; blend %s (cross-fitted, z %s) vs single "
        "models %s on all validation users: %s",
        k,
        summary.get("ranker"),
        singles,
        check_truth.select(C.USER_IDX).distinct().count(),
        b.get("ndcg"),
        b.get("z"),
        b.get("single"),
        f"publish the {summary['publish']}" if summary["publish"] else "keep the best single model",
    )
    check_truth.unpersist()
    for df in [feats, *lists.values(), *(v for name, v in singles_from.items() if v is not lists[name])]:
        df.unpersist()
    return summary, model


def blend_check(
    feats: DataFrame,
    lists: dict[str, DataFrame],
    users: DataFrame,
    truth: DataFrame,
    check_truth: DataFrame,
    k: int,
    params: ranker.RankerParams,
    thin_feats: DataFrame | None = None,
    reach: float = 0.0,
) -> tuple[dict | None, np.ndarray | None]:
    """The blend of ALS and item-CF (:mod:`recspark.blend`), judged by cross-fitting on every validation user
    against the single models' ``lists`` as published (:func:`as_published`):
    ``users`` are cut in two halves by a hash; the setting (weight, and the liked share's weight γ when the
    candidates' liked shares differ) chosen on each half (every setting scored in one job) ranks the other
    half's candidates, and those lists together are compared with the best single model on all of ``users``
    (with the paired z of the difference). Every user's blend score is thus out of sample, while the single
    models' configurations were chosen on these users: the comparison leans towards the single models. The blend
    wins unless the best single model is ahead of it by :data:`BLEND_MARGIN_Z` standard errors. The setting
    published is the one best on all of ``users``, and on each half the one that half chooses, each with γ
    :data:`recspark.blend.DEFAULT_PRIOR` unless the best γ is ahead of it by :data:`BLEND_MARGIN_Z`, and with the
    weight of an even mix (:data:`EVEN_MIX`, the same γ) unless the best weight is ahead of it by
    :data:`BLEND_MARGIN_Z` (the one-standard-error rules; the search's default check asks for two against the best
    of 18).
    ``ndcg_on_check_users`` is the same cross-fitted lists scored on ``check_truth``, where the learned ranker is
    judged. With ``thin_feats`` (the same users' candidates from sources fitted on a thinner training side,
    :class:`Thinner`) and ``reach`` > 0 the weight published is the one :func:`extrapolated_choice` makes at the
    γ chosen (``learning_curve`` in the record; the cross-fitting, which decides whether the blend is kept, is
    unchanged). Returns the record (None without both sources) and the cross-fitted lists' per-user NDCG@k of the
    users of ``check_truth`` in ascending order (:func:`recspark.metrics.per_user_scores`' order), what the learned
    ranker is compared with."""
    if not set(blend.SOURCES) <= set(lists):
        return None, None
    n = params.n_candidates
    settings = blend.grid(with_prior=liked_shares_differ(feats))
    truth = truth.join(users, on=C.USER_IDX, how="left_semi").cache()
    by_setting = blend.ranked_by_setting(feats, settings, k, n)  # feats: of ``users`` only
    # every setting's NDCG@k of every user in one job; the halves, the check users and the rules are then numpy
    user_ids, per_label = metrics.per_user_scores_by(
        by_setting, truth, k, [b.label for b in settings], blend.SETTING
    )
    per_user = {b: per_label[b.label] for b in settings}
    first = ranker.user_share(users, 0.5, params.seed + 2).select(C.USER_IDX)
    in_first = np.isin(user_ids, _ids(first))
    halves = {1: in_first, 2: ~in_first}

    def on(mask: np.ndarray) -> dict[blend.Blend, np.ndarray]:
        return {b: v[mask] for b, v in per_user.items()}

    even_z: dict[str, dict[str, float | None]] = {"all": {}, "1": {}, "2": {}}
    prior_z: dict[str, dict[str, float | None]] = {"all": {}, "1": {}, "2": {}}
    best_on_half = {h: one_se_choice(on(m), prior_z[str(h)], even_z[str(h)]) for h, m in halves.items()}
    # each half ranked with the other half's setting: every user's score out of sample
    crossed = np.where(in_first, per_user[best_on_half[2]], per_user[best_on_half[1]])
    _, by_source = single_scores(lists, truth, k)  # the same users in the same order as ``user_ids``
    singles = {name: metrics.recorded_mean(v) for name, v in by_source.items()}
    best_single = max(singles, key=singles.get)
    _, z = metrics.paired_z(crossed, by_source[best_single])
    in_check = np.isin(user_ids, _ids(check_truth))
    chosen_all = one_se_choice(per_user, prior_z["all"], even_z["all"])
    curve = None
    if thin_feats is not None and reach > 0:  # the weight where the scores are heading, at the γ chosen
        at_prior = tuple(b for b in settings if b.prior == chosen_all.prior)
        thin_by = blend.ranked_by_setting(thin_feats, at_prior, k, n)
        _, thin_label = metrics.per_user_scores_by(
            thin_by, truth, k, [b.label for b in at_prior], blend.SETTING
        )
        extrapolated, curve = extrapolated_choice(
            {b: per_user[b] for b in at_prior}, {b: thin_label[b.label] for b in at_prior}, reach
        )
        curve["weight_on_validation"] = float(chosen_all.weight)
        chosen_all = extrapolated
    truth.unpersist()
    record = {
        "weight": float(chosen_all.weight),
        "prior": float(chosen_all.prior),
        # by setting label (the key older records have)
        "ndcg_by_weight": {b.label: metrics.recorded_mean(v) for b, v in per_user.items()},
        "weight_best_on_half": {str(h): best_on_half[h].label for h in halves},
        # z of the best setting against the even mix (same γ), on all users and on each half, where they differ
        "even_mix_z": even_z,
        # z of the best setting against the best with the kept γ (blend.DEFAULT_PRIOR), where their γ differ
        "prior_z": prior_z,
        "ndcg": metrics.recorded_mean(crossed),
        "single": singles,
        "best_single": best_single,
        "z": metrics.recorded_z(z),  # None: the same difference for every user
        # kept unless the best single model is ahead by BLEND_MARGIN_Z standard errors
        "wins": bool(z > -BLEND_MARGIN_Z),
        "ndcg_on_check_users": metrics.recorded_mean(crossed[in_check]),
        # the weight from the learning curve (None: not measured): the weight above is its choice
        "learning_curve": curve,
    }
    return record, crossed[in_check]


def _ids(frame: DataFrame) -> np.ndarray:
    """The distinct user indexes of ``frame``, collected."""
    return frame.select(C.USER_IDX).distinct().toArrow().column(C.USER_IDX).to_numpy()


def liked_shares_differ(feats: DataFrame) -> bool:
    """Whether the candidates' books differ in their liked share (they do not on unrated to-read shelves: then
    the blend's γ changes nothing and is not searched)."""
    if candidates.LIKED_SHARE not in feats.columns:
        return False
    low, high = feats.agg(F.min(candidates.LIKED_SHARE), F.max(candidates.LIKED_SHARE)).first()
    return low is not None and high - low > 1e-6


def single_scores(
    lists: dict[str, DataFrame], truth: DataFrame, k: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every source's per-user NDCG@k of its top ``k`` over the users in ``truth`` (ascending; every source in one
    Spark job, :func:`recspark.metrics.per_user_scores_by`)."""
    every = None
    for name, df in lists.items():
        part = df.where(F.col(C.RANK) <= k).select(F.lit(name).alias(_SOURCE), C.USER_IDX, C.RANK, C.BOOK_IDX)
        every = part if every is None else every.unionByName(part)
    return metrics.per_user_scores_by(every, truth, k, list(lists), by=_SOURCE)


def vs_blend(summary: dict) -> str:
    """The ranker's paired z against the blend for the summary and the report ("" where not measured)."""
    if "z_vs_blend" not in summary:
        return ""
    return f" (paired z {metrics.z_text(summary['z_vs_blend'])})"


def published_in(summary: dict) -> str | None:
    """What a stored two-stage record says was published (its ``publish``; :func:`published_kind` of the record
    for records without one)."""
    return summary["publish"] if "publish" in summary else published_kind(summary)


def published_kind(summary: dict) -> str | None:
    """Which two-stage list a run publishes: ``ranker`` (the learned ranker won on the check users), ``blend`` (no
    single model was a standard error ahead of the cross-fitted blend on all validation users), None when neither.
    When both did, the blend unless the ranker leads it on the check users by :data:`MIN_Z` standard errors
    (``beats_blend``, with its ``z_vs_blend``): the ranker's validation leads have not carried over to held-out
    data, the blend's have (docs/quality.md, "The blend before the learned ranker")."""
    ranker_won = bool(summary.get("wins"))
    blend_won = bool((summary.get("blend") or {}).get("wins"))
    if ranker_won and blend_won:
        return "ranker" if summary.get("beats_blend") else "blend"
    return "ranker" if ranker_won else "blend" if blend_won else None


def ranked_lists(
    spark: SparkSession,
    train: DataFrame,
    sources: Sources,
    users: DataFrame,
    books: DataFrame | None,
    model,
    k: int,
    n: int,
) -> DataFrame:
    """Top-``k`` ``(user_idx, rank, book_idx, score)`` of the ranker (or a :class:`recspark.blend.Blend`) over every
    source's top-``n`` candidates, computed once into a local checkpoint: the lineage is cut, because the plan over
    every source's candidates and features is large (tens of thousands of nodes on a work-level run), and each
    later join of the lists (explanations, series order, the popular fill, stars) analysed and optimised it
    again: minutes, and at times a driver out of memory. The checkpoint's blocks go when the frame is dropped."""
    feats, lists = candidate_features(spark, train, sources, users, n, books)
    if isinstance(model, blend.Blend):
        out = blend.ranked(feats, model, k, n)
    else:
        expected = model.getOrDefault("features_cols")
        got = candidates.feature_names(tuple(lists))
        if list(expected) != got:
            raise ValueError(
                f"the ranker was trained on features {expected}, the candidates have {got} (a ranker saved by "
                "another recspark version?): run with --tune full to train it again"
            )
        out = ranker.rank(model, feats, k)
    out = out.localCheckpoint()  # computed once, and the lineage cut: the publish step joins the lists again
    feats.unpersist()
    for df in lists.values():
        df.unpersist()
    return out
