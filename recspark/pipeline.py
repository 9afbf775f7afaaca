"""Stages after ingest, each reading and writing Delta tables: split -> train -> evaluate -> recommend ->
similar -> publish. ``run_pipeline`` chains them with step timings (``recspark run``).

Model tables (``<lakehouse>/model/...``): ``split_train``/``split_test`` (the persisted split),
``user_factors``/``item_factors`` (``run_id, user_idx|book_idx, features``), ``neighbours`` (item-CF),
``content_vectors``, ``stars`` (the predicted-stars model: ``run_id, term, idx, bias, features``) and ``params``
(written last: a model run is trained once its params row exists).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recspark import (
    als,
    baselines,
    candidates,
    content,
    diversity,
    evaluate,
    itemcf,
    publish,
    series,
    split,
    stars,
    topk,
    tune,
    twostage,
)
from recspark import columns as C
from recspark.blend import Blend
from recspark.config import RunConfig, TuneOptions, with_tuned
from recspark.content import ContentParams
from recspark.features import Weights, preference
from recspark.ingest import last_fingerprint
from recspark.itemcf import ItemCfParams
from recspark.ranker import RankerParams
from recspark.spark import after_ingest
from recspark.stars import StarsParams
from recspark.tables import GOLD, MODEL, SILVER, Lakehouse, ShrinkGuard, hadoop_path
from recspark.works import Works, candidates_of, seen_of

log = logging.getLogger(__name__)


class NotFound(LookupError):
    """A stage needs something an earlier stage has not made yet (silver tables, a trained model)."""


def with_ranker(cfg: RunConfig, tuning: dict | None) -> RunConfig:
    """``cfg`` publishing the ranker its tuning trained (``--model ranker``, whether or not it won)."""
    path = ((tuning or {}).get("ranker") or {}).get("path")
    if not path:
        why = ((tuning or {}).get("ranker") or {}).get(
            "skipped"
        ) or "the search trained no ranker (--tune off?)"
        raise NotFound(f"--model ranker: no trained ranker for these inputs: {why}")
    return replace(cfg, model="ranker", ranker_model=path, blend=None, blend_prior=0.0)


def input_key(versions: dict) -> str:
    """What a tuning result is keyed by: the silver input versions and the holdouts' per-user caps (a search on a
    split made under another rule is not reused: its validation books could be the evaluation's now)."""
    rule = {"max_held_out": split.MAX_HELD_OUT, "min_validation_rows": split.MIN_VALIDATION_ROWS}
    return json.dumps({**versions, **rule}, sort_keys=True)


@after_ingest
def tune_on(
    spark: SparkSession, lake: Lakehouse, train: DataFrame, cfg: RunConfig, opts: TuneOptions, tracker=None
) -> tune.Search:
    """Search on ``train`` (the training side of the evaluation split) for the current inputs."""
    versions = input_versions(lake)
    return tune.tune(
        spark,
        lake,
        train,
        input_key(versions),
        n_configs=opts.configs,
        k=cfg.k if cfg.k else 10,
        seed=cfg.seed,
        max_iter=cfg.als.max_iter,
        budget_s=opts.budget_s,
        space=opts.space,
        tracker=tracker,
        models=cfg.models,
        books=books_of(lake),
        ranker_params=replace(cfg.ranker, seed=cfg.seed) if opts.ranker != "off" else None,
        ranker_path=ranker_path(lake, versions),
        evaluation_fraction=cfg.test_fraction,
        ranker_required=opts.model == "ranker",
        full_rows=lake.read(SILVER, "interactions").count(),
    )


class Timer:
    """Seconds per named step of a run (``timings``); each step's start and end are logged as progress. With a
    ``spark`` session each step also names its Spark jobs (the job description the Spark UI and its REST API
    show per job and stage), so a stage in the UI can be traced to the step that ran it."""

    def __init__(self, spark: SparkSession | None = None) -> None:
        self.timings: dict[str, float] = {}
        self.spark = spark

    def _describe(self, text: str | None) -> None:
        if self.spark is None:
            return
        try:
            self.spark.sparkContext.setJobDescription(text)
        except Exception:  # noqa: BLE001 - Spark Connect has no SparkContext; the name is only for the UI
            self.spark = None

    @contextmanager
    def step(self, name: str, n: int | None = None, total: int | None = None) -> Iterator[None]:
        where = f"[{n}/{total}] " if n is not None else ""
        log.info("%s%s ...", where, name)
        self._describe(f"recspark: {name}")
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - t, 1)
            self._describe(None)
        log.info("%s%s done in %.1f s", where, name, self.timings[name])


def input_versions(lake: Lakehouse) -> dict[str, int | str | None]:
    """What identifies the inputs of a run: the silver table versions and a fingerprint of the source files of
    the latest ingest (names, sizes, modification times), so two lakehouses built from different files never
    share a run id even when their table versions are equal."""
    versions: dict[str, int | str | None] = {
        t: lake.version(SILVER, t) for t in ("users", "books", "interactions")
    }
    versions["source"] = source_fingerprint(lake)
    return versions


def source_fingerprint(lake: Lakehouse) -> str | None:
    """A short hash of the file fingerprint recorded by the latest successful ingest (None before any)."""
    found = last_fingerprint(lake)
    return hashlib.sha1(found.encode()).hexdigest()[:12] if found else None


MODEL_FIELDS = (
    "seed",
    "weights",
    "als",
    "model",
    "itemcf",
    "content",
    "stars",
    "ranker",
    "ranker_model",
    "blend",
    "blend_prior",
    "item_level",
)  # what a trained model depends on
PUBLISH_FIELDS = (
    "k",
    "similar_k",
    "min_readers",
    "diversity",
    "series_order",
)  # what its published lists depend on besides the model
# What a published run's gold tables hold for consumers, as a number: raised when publishing writes something new
# that a consumer reads (2, 2026-12-06: gold/serving_model.blend and .diversity, gold/serving_books.liked_share;
# 3, 2026-12-06: gold/serving_model.item_level, gold/serving_books.trained_readers, a work-level run's YᵀY;
# 4, 2026-12-07: gold/serving_model.series_order),
# so that the next run on the same inputs publishes again, reusing the trained model, instead of serving the older
# tables as they are (pipeline.served_as_is)
GOLD_FORMAT = 4


def _digest(blob: object) -> str:
    return hashlib.sha1(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:12]


def model_run_id(versions: dict, cfg: RunConfig) -> str:
    """Key of a trained model (``model-…``): its inputs and the parameters that determine it, nothing else; so
    ``--k 20``, ``--no-evaluate`` or ``--keep-runs`` reuse the model of an otherwise identical run."""
    params = {name: value for name, value in cfg.as_dict().items() if name in MODEL_FIELDS}
    return "model-" + _digest({"inputs": versions, "params": params})


def publication_id(model_run: str, cfg: RunConfig) -> str:
    """Key of a published run (``run-…``, gold's ``run_id``): a trained model, the shape of its lists and the
    gold format (:data:`GOLD_FORMAT`)."""
    fields = {f: getattr(cfg, f) for f in PUBLISH_FIELDS}
    return "run-" + _digest({"model": model_run, "gold_format": GOLD_FORMAT, **fields})


def run_id_for(versions: dict, cfg: RunConfig) -> str:
    """Same inputs + same model parameters and seed + same list shape -> same run id (a rerun is served as is)."""
    return publication_id(model_run_id(versions, cfg), cfg)


def trained(lake: Lakehouse, model_run: str) -> bool:
    """Whether ``model_run`` is already fitted and saved (its params row is written last)."""
    if not lake.exists(MODEL, "params"):
        return False
    return lake.read(MODEL, "params").where(F.col(C.RUN_ID) == model_run).limit(1).count() > 0


@after_ingest
def make_split(spark: SparkSession, lake: Lakehouse, interactions: DataFrame, cfg: RunConfig) -> split.Split:
    """Per-user random holdout (sparse users: one half of them, :class:`recspark.split.Sparse`), persisted to Delta
    and read back (deterministic input for ALS), then checked."""
    s = split.make(
        cfg.split,
        interactions,
        fraction=cfg.test_fraction,
        seed=cfg.seed,
        sparse=split.for_evaluation(cfg.seed),
    )
    lake.write(s.train, MODEL, "split_train")
    lake.write(s.test, MODEL, "split_test")
    persisted = split.Split(
        train=lake.read(MODEL, "split_train"), test=lake.read(MODEL, "split_test"), kind=s.kind
    )
    sizes = split.check_split(persisted)
    log.info("split %s: %s", s.kind, sizes)
    return persisted


def train(spark: SparkSession, interactions: DataFrame, cfg: RunConfig):
    prefs = interactions.transform(preference(cfg.weights))
    return als.fit(spark, prefs, cfg.als)


def fit_and_save(
    spark: SparkSession, lake: Lakehouse, interactions: DataFrame, cfg: RunConfig, run_id: str
) -> None:
    """Fit what the published family needs on ``interactions`` and save it under ``run_id``: ALS factors for
    ``als``; the item-CF neighbour table for ``itemcf`` and for ``popularity`` (whose similar-books lists come
    from item-CF). ``cfg.item_level == "work"``: fitted on the interactions moved to works."""
    fit_and_save_stars(spark, lake, interactions, cfg.stars, run_id)  # of editions: the lists cite editions
    works = works_of(lake, interactions)
    interactions = training_view(interactions, works, cfg)
    try:
        _fit_and_save(spark, lake, interactions, cfg, run_id)  # writes the params row, last
    finally:
        if works is not None:
            works.release()


def fit_and_save_stars(
    spark: SparkSession, lake: Lakehouse, interactions: DataFrame, params: StarsParams, run_id: str
) -> None:
    """The predicted-stars model of every rated shelf, saved as ``model/stars`` (:func:`recspark.stars.terms`)
    for the publishes of this trained model; nothing is saved with too few ratings."""
    model = stars.fit_if_enough(spark, interactions, params)
    if model is not None:
        write_keyed(lake, MODEL, "stars", stars.terms(model), run_id)
        model.release()


def works_of(lake: Lakehouse, interactions: DataFrame) -> Works | None:
    """The edition -> work map of the lakehouse's books, editions ranked by readers in ``interactions`` (None
    when no work has two editions)."""
    return Works.of(books_of(lake), interactions)


def training_view(interactions: DataFrame, works: Works | None, cfg: RunConfig) -> DataFrame:
    """What the models learn from: the interactions, or with ``item_level = work`` the same moved to works."""
    if works is None or cfg.item_level != "work":
        return interactions
    return works.to_works(interactions)


def _fit_and_save(
    spark: SparkSession, lake: Lakehouse, interactions: DataFrame, cfg: RunConfig, run_id: str
) -> None:
    if "content" in cfg.models or cfg.model == "content":  # also the similar-books lists of new books
        vectors = content_vectors(lake, cfg, required=cfg.model == "content")
        if vectors is not None:
            write_keyed(lake, MODEL, "content_vectors", vectors, run_id)
            vectors.unpersist()
    if cfg.model == "als":
        save_model(lake, train(spark, interactions, cfg), run_id, cfg)
        return
    if cfg.model == "ranker":  # every candidate source: ALS factors and item-CF neighbours (content above)
        model = train(spark, interactions, cfg)
        write_keyed(lake, MODEL, "user_factors", als.user_factors(model), run_id)
        write_keyed(lake, MODEL, "item_factors", als.item_factors(model), run_id)
    if cfg.model in ("itemcf", "popularity", "ranker"):
        neighbours = itemcf.fit(interactions, cfg.itemcf)
        write_keyed(lake, MODEL, "neighbours", neighbours, run_id)
        neighbours.unpersist()
    save_params(lake, run_id, cfg)


def content_vectors(lake: Lakehouse, cfg: RunConfig, required: bool = False) -> DataFrame | None:
    """The books' content vectors (materialised), or None with a message when the books carry no metadata
    (``required``: raise instead)."""
    try:
        if not lake.exists(SILVER, "books"):
            raise content.NoMetadata(
                f"no silver.books table in {lake.root}: the content model needs book metadata"
            )
        return content.book_vectors(lake.read(SILVER, "books"), cfg.content.seed)
    except content.NoMetadata as exc:
        if required:
            raise
        log.warning("content model skipped: %s", exc)
        return None


def save_model(lake: Lakehouse, model, run_id: str, cfg: RunConfig) -> None:
    write_keyed(lake, MODEL, "user_factors", als.user_factors(model), run_id)
    write_keyed(lake, MODEL, "item_factors", als.item_factors(model), run_id)
    save_params(lake, run_id, cfg)


def save_params(lake: Lakehouse, run_id: str, cfg: RunConfig) -> None:
    params = lake.spark.createDataFrame(
        [(json.dumps(cfg.as_dict(), default=str), publish.now())], "params string, trained_at timestamp"
    )
    write_keyed(lake, MODEL, "params", params, run_id)


def sources_of(
    cfg: RunConfig,
    user_factors: DataFrame | None,
    item_factors: DataFrame | None,
    neighbours: DataFrame | None,
    vectors: DataFrame | None,
    works: Works | None,
) -> twostage.Sources:
    """The two-stage sources of a run: the fitted artefacts with what ``cfg`` chose for them (content parameters,
    item-CF's parameters: its prior and shelf weights). Evaluation and publishing both build them here, so neither
    misses a field."""
    return twostage.Sources(
        user_factors,
        item_factors,
        neighbours,
        vectors,
        cfg.content,
        works,
        itemcf_params=cfg.itemcf,
    )


HITS = (  # what the evaluation report counts as a hit, against what validation counts (tune.liked)
    "every held-out book (any shelf, read or not, whatever its stars); validation, which chose the model, counts "
    "the held-out books the user did not dislike (unrated, or 4-5 stars) and, where the data records reading, read: "
    "the liked_ rows (liked_ndcg, ...) count those, over the users with at least one (absent where every held-out "
    "book counts)"
)


@after_ingest
def evaluate_model(
    spark: SparkSession,
    lake: Lakehouse,
    cfg: RunConfig,
    s: split.Split,
    run_id: str,
    report_dir: Path,
    tuning: dict | None = None,
    tracker=None,
):
    """Fit on the split's train side, score model and baselines on its test side (each list computed once).
    ``Evaluation.timings`` holds the seconds of the fit, the ALS lists of the test users (``recommend``), the
    baselines' lists and the metrics."""
    timings: dict[str, float] = {}
    max_k = max(cfg.ks)
    lists: dict[str, DataFrame] = {}
    items = ufs = neighbours = vectors = None
    works = works_of(lake, s.train)
    fit_on = training_view(s.train, works, cfg)  # editions, or works with --item-level work
    if works is not None and cfg.item_level == "work":
        fit_on = fit_on.cache()
    test_seen = seen_of(
        works, fit_on.join(s.test.select(C.USER_IDX).distinct(), on=C.USER_IDX, how="left_semi")
    )
    if "als" in cfg.models:
        t = time.perf_counter()
        model = train(spark, fit_on, cfg)
        items = als.item_factors(model).cache()
        items.count()
        ufs = als.user_factors(model)
        timings["fit"] = time.perf_counter() - t
        t = time.perf_counter()
        test_users = ufs.join(s.test.select(C.USER_IDX).distinct(), on=C.USER_IDX, how="left_semi")
        deep = evaluate.materialise(
            topk.recommend(
                spark, test_users, candidates_of(works, items), diversity.DEPTH * max_k, seen=test_seen
            )
        )
        lists["als"] = evaluate.materialise(deep.where(F.col(C.RANK) <= max_k))
        timings["recommend"] = time.perf_counter() - t
        t = time.perf_counter()
        for weight in DIVERSITY_REPORTED:  # the NDCG-for-diversity trade-off the report shows
            lists[f"als_mmr{weight:g}"] = evaluate.materialise(diversity.rerank(deep, items, max_k, weight))
        deep.unpersist()
        timings["diversity"] = time.perf_counter() - t
    if "itemcf" in cfg.models:
        t = time.perf_counter()
        neighbours = itemcf.fit(fit_on, cfg.itemcf)
        recs = itemcf.recommend(
            fit_on,
            neighbours,
            max_k,
            users=s.test,
            works=works,
            popularity_weight=cfg.itemcf.popularity_weight,
            shelf_weights=cfg.itemcf.shelf_weights,
            half_life_days=cfg.itemcf.half_life_days,
            liked_weight=cfg.itemcf.liked_weight,
        )
        lists["itemcf"] = evaluate.materialise(recs)
        timings["itemcf"] = time.perf_counter() - t
    if "content" in cfg.models:
        t = time.perf_counter()
        vectors = content_vectors(lake, cfg)
        if vectors is not None:
            recs = content.recommend(spark, fit_on, vectors, max_k, cfg.content, users=s.test, works=works)
            lists["content"] = evaluate.materialise(recs)
            timings["content"] = time.perf_counter() - t
    if cfg.model == "ranker" and items is not None and neighbours is not None:
        t = time.perf_counter()
        sources = sources_of(cfg, ufs, items, neighbours, vectors, works)
        test = s.test.select(C.USER_IDX).distinct()
        recs = twostage.ranked_lists(
            spark, fit_on, sources, test, books_of(lake), load_ranker(cfg), max_k, cfg.ranker.n_candidates
        )
        lists["ranker"] = recs  # already computed once (ranked_lists' local checkpoint)
        timings["ranker"] = time.perf_counter() - t
    for df in (neighbours, vectors):
        if df is not None:
            df.unpersist()
    t = time.perf_counter()
    has_time = s.train.where(F.col(C.DATE_ADDED).isNotNull()).limit(1).count() > 0
    baseline = evaluate.baseline_lists(spark, fit_on, s.test, max_k, with_trending=has_time, works=works)
    lists.update({name: evaluate.materialise(recs) for name, recs in baseline.items()})
    timings["baselines"] = time.perf_counter() - t
    t = time.perf_counter()
    liked = evaluate.liked_rows(s.test, s.train)
    ev = evaluate.evaluate_lists(lists, fit_on, s.test, items, cfg.ks, works, liked=liked)
    timings["metrics"] = time.perf_counter() - t
    if stars.enough(stars.rated(s.train)):
        t = time.perf_counter()
        ev.stars = stars.evaluate(spark, s.train, s.test, cfg.stars)
        timings["stars"] = time.perf_counter() - t
    for recs in lists.values():
        recs.unpersist()
    if items is not None:
        items.unpersist()
    if works is not None:
        fit_on.unpersist()
        works.release()
    ev.timings = {name: round(v, 2) for name, v in timings.items()}
    rows = ev.rows(run_id, s.kind, cfg.as_dict())
    publish.write_run_rows(lake, "evaluations", spark.createDataFrame(rows, evaluate.EVAL_SCHEMA), run_id)
    ratio = (
        ev.value(cfg.model, "ndcg", 10) / max(ev.value("popularity", "ndcg", 10), 1e-12)
        if 10 in cfg.ks and cfg.model in ev.results
        else None
    )
    details = {
        "run": run_id,
        "split": f"{s.kind}, held out: {split.describe(cfg.test_fraction)} (seed {cfg.seed})",
        "hits": HITS,
        "published model": cfg.model,
        "ALS": json.dumps(cfg.als.as_dict()),
        "weights": json.dumps(cfg.weights.as_dict()),
        "item-CF": json.dumps(cfg.itemcf.as_dict()),
        "items": (
            f"{cfg.item_level}s; {works.n_books:,} books in {works.n_works:,} works: one edition per work shown, "
            "every edition of a shelved work excluded"
            if works is not None
            else "books (no work has two editions)"
        ),
        f"{cfg.model} / popularity NDCG@10": f"{ratio:.2f}x" if ratio else "n/a",
        "seconds": ", ".join(f"{k} {v:.1f}" for k, v in ev.timings.items()),
    }
    sections = [evaluate.tuning_section(tuning)] if tuning else []
    if ev.stars:
        sections.append(evaluate.stars_section(ev.stars, cfg.stars.as_dict()))
    report = evaluate.write_report(
        ev, report_dir / f"evaluation-{run_id}.md", "recspark offline evaluation", details, sections
    )
    if tracker is not None:
        tracker.evaluation(ev, report)
    return ev


def choose_parameters(
    spark: SparkSession,
    lake: Lakehouse,
    cfg: RunConfig,
    train_side: DataFrame,
    opts: TuneOptions,
    tracker=None,
) -> tuple[RunConfig, dict]:
    """``auto``: reuse the tuning stored for the current inputs, or search; ``full``: search. Returns the
    configuration with the winner applied (unchanged when the search was skipped) and the tuning summary."""
    found = tune.stored(lake, input_key(input_versions(lake))) if opts.mode == "auto" else None
    if found is not None:
        log.info("reusing the tuning of these inputs (--tune full searches again): %s", found.get("best"))
        found = {**found, "reused": True}
    else:
        found = {**tune_on(spark, lake, train_side, cfg, opts, tracker).summary(), "reused": False}
    if found.get("best") or found.get("model"):
        cfg = with_tuned(cfg, found)
    else:
        log.warning("no tuned parameters (%s): using the built-in values", found.get("skipped"))
    return without_skipped(cfg, found, opts.model), found


def without_skipped(cfg: RunConfig, found: dict, forced: str = "auto") -> RunConfig:
    """``cfg`` without the families the search on these inputs skipped for want of data (its notes: content
    without book metadata), so that evaluation and publishing neither try them again nor warn again; a family
    named by ``--model`` (``forced``) is kept, so that its run fails with the reason."""
    skipped = tune.families_skipped(found) - {forced}
    kept = tuple(m for m in cfg.models if m not in skipped)
    if not kept or kept == cfg.models:
        return cfg
    log.info("not evaluated or published (the search skipped them): %s", ", ".join(sorted(skipped)))
    return replace(cfg, models=kept)


@contextmanager
def recorded_run(
    lake: Lakehouse,
    run_id: str,
    cfg: RunConfig,
    versions: dict,
    timer: Timer,
    tuning: dict | None = None,
    model_run: str | None = None,
) -> Iterator[Callable[[dict[str, int]], None]]:
    """The run protocol in ``gold.runs``: ``running`` now, ``failed`` if the block raises, ``published`` when
    the block calls the function it is given (with the row counts), which it does only after the checks. The
    params recorded include the model run the lists come from."""
    started = publish.now()
    params = {**cfg.as_dict(), "model_run_id": model_run}
    common = {"params": params, "input_versions": versions, "tuning": tuning}
    publish.record_run(lake, run_id, "running", started, **common)

    def mark_published(counts: dict[str, int]) -> None:
        publish.record_run(
            lake,
            run_id,
            "published",
            started,
            finished_at=publish.now(),
            row_counts=counts,
            timings=timer.timings,
            **common,
        )

    try:
        yield mark_published
    except BaseException:
        publish.record_run(
            lake, run_id, "failed", started, finished_at=publish.now(), timings=timer.timings, **common
        )
        raise


def served_as_is(lake: Lakehouse, run_id: str) -> dict | None:
    """When ``run_id`` is already published (same inputs, parameters and seed), make it the served run again if
    it is not, and return its summary; None otherwise. Recomputing a published run would take it out of service
    meanwhile (``running`` over ``published``), and leave it out if the rerun were killed."""
    done = publish.run_row(lake, run_id)
    if done is None or done["status"] != "published":
        return None
    if publish.latest_published(lake) != run_id:
        publish.republish(lake, run_id)
    log.info("run %s is already published from these inputs and parameters: nothing to recompute", run_id)
    counts = json.loads(done["row_counts"] or "{}")
    return {"run_id": run_id, "row_counts": counts, "cleaned": [], "reused": True}


@after_ingest
def run_pipeline(
    spark: SparkSession,
    lake: Lakehouse,
    cfg: RunConfig,
    report_dir: Path,
    tuning: TuneOptions | None = None,
    tracker=None,
    guard: ShrinkGuard | None = None,
) -> dict:
    """(tune ->) split -> evaluate -> train on everything -> recommend -> similar -> publish. ``tuning`` None
    means off: ``cfg`` is used as given; ``guard`` bounds how far the new lists may shrink against the served
    run's (default: refuse empty lists). Returns a summary (run id, evaluation, tuning, row counts, timings)."""
    timer = Timer(spark)
    tuning = tuning or TuneOptions(mode="off")
    searching = tuning.mode != "off"
    total = 7 + int(searching)  # publish_model counts 5 steps
    versions = input_versions(lake)
    interactions = lake.read(SILVER, "interactions")
    if interactions.limit(1).count() == 0:
        raise NotFound(f"{SILVER}.interactions in {lake.root} is empty: there is nothing to train on")
    ev = None
    s = None
    tune_summary = None
    n = 1
    if searching:
        with timer.step("split + tune (ALS search, item-CF, choice of model)", n, total):
            s = make_split(spark, lake, interactions, cfg)
            cfg, tune_summary = choose_parameters(spark, lake, cfg, s.train, tuning, tracker)
        n += 1
    if tuning.model == "ranker":
        cfg = with_ranker(cfg, tune_summary)
    elif tuning.model != "auto":
        cfg = replace(cfg, model=tuning.model)
    model_run = model_run_id(versions, cfg)
    run_id = publication_id(model_run, cfg)
    reused = served_as_is(lake, run_id)
    if reused is not None:
        return {**reused, "evaluation": None, "tuning": tune_summary, "config": cfg, "timings": timer.timings}
    if tracker is not None:
        tracker.start(run_id, cfg.as_dict(), tune_summary)
    with recorded_run(lake, run_id, cfg, versions, timer, tune_summary, model_run) as mark_published:
        if cfg.evaluate:
            with timer.step("split + evaluate (models side by side with baselines)", n, total):
                s = s or make_split(spark, lake, interactions, cfg)
                ev = evaluate_model(spark, lake, cfg, s, run_id, report_dir, tune_summary, tracker)
        n += 1
        if trained(lake, model_run):  # e.g. the same model published with another k: not fitted again
            with timer.step(f"reuse the trained {cfg.model} model {model_run}", n, total):
                log.info("model %s is already trained on these inputs with these parameters", model_run)
        else:
            with timer.step(f"train {cfg.model} on all interactions", n, total):
                fit_and_save(spark, lake, interactions, cfg, model_run)
        counts = publish_model(spark, lake, cfg, run_id, model_run, timer, first_step=n + 1, guard=guard)
        mark_published(counts)
    cleaned = clean_old(spark, lake, cfg.keep_runs)
    if tracker is not None:
        tracker.finish(timer.timings, counts)
    return published_summary(run_id, model_run, cfg, counts, timer, cleaned, ev, tune_summary)


def published_summary(
    run_id: str,
    model_run: str,
    cfg: RunConfig,
    counts: dict[str, int],
    timer: Timer,
    cleaned: list[str],
    evaluation=None,
    tuning: dict | None = None,
) -> dict:
    """What :func:`run_pipeline` and :func:`publish_stage` return for a run they published."""
    return {
        "run_id": run_id,
        "model_run_id": model_run,
        "evaluation": evaluation,
        "tuning": tuning,
        "config": cfg,
        "row_counts": counts,
        "timings": timer.timings,
        "cleaned": cleaned,
        "reused": False,
    }


def run_job(
    spark: SparkSession,
    lake: Lakehouse,
    source: str,
    fmt: str,
    cfg: RunConfig,
    report_dir: Path,
    ingest_run_id: str,
    force: bool = False,
    guard: ShrinkGuard | None = None,
    tuning: TuneOptions | None = None,
    tracker=None,
) -> dict:
    """The main job, every stage in its order: ingest (raw files -> bronze -> silver; nothing on unchanged
    input) -> :func:`run_pipeline` ((tune ->) evaluate -> train -> recommend -> similar -> popular -> serving
    tables -> check -> publish). ``recspark run``, ``jobs/run.py`` and the end-to-end notebook call this. Returns
    :func:`run_pipeline`'s summary with the ingest result (``ingest``) and its seconds in ``timings``."""
    from recspark.ingest import run_ingest

    guard = guard or ShrinkGuard(force=force)
    timer = Timer(spark)
    with timer.step("ingest (raw files -> bronze -> silver)"):
        ingested = run_ingest(
            spark, lake, source, fmt, ingest_run_id, force=force, max_shrink=guard.max_shrink
        )
    summary = run_pipeline(spark, lake, cfg, report_dir, tuning=tuning, tracker=tracker, guard=guard)
    return {**summary, "ingest": ingested, "timings": {**timer.timings, **summary["timings"]}}


DIVERSITY_REPORTED = (0.3, 0.6)  # MMR weights the evaluation shows beside the model's own order


def diverse_lists(
    spark: SparkSession,
    lake: Lakehouse,
    model_run: str,
    model: str,
    interactions: DataFrame,
    cfg: RunConfig,
    items: DataFrame | None,
    vectors: DataFrame | None,
    works: Works | None = None,
) -> DataFrame:
    """The model's top-k lists (with explanations), re-ranked by MMR when ``cfg.diversity`` > 0: over ALS factors
    when the run has them, else content vectors (no similarity space: the model's order, with a warning)."""
    if cfg.diversity <= 0:
        return model_lists(
            spark, lake, model_run, model, interactions, cfg.k, cfg, vectors=vectors, works=works
        )
    space = items if items is not None else vectors
    if space is None:
        log.warning(
            "--diversity %g: this run has no item vectors to measure similarity; lists unchanged",
            cfg.diversity,
        )
        return model_lists(
            spark, lake, model_run, model, interactions, cfg.k, cfg, vectors=vectors, works=works
        )
    deep = model_lists(
        spark,
        lake,
        model_run,
        model,
        interactions,
        diversity.DEPTH * cfg.k,
        cfg,
        vectors=vectors,
        works=works,
    )
    deep = deep.cache()
    picked = diversity.rerank(deep, space, cfg.k, cfg.diversity)
    because = deep.select(C.USER_IDX, C.BOOK_IDX, C.BECAUSE_BOOK_IDX)
    return picked.join(because, on=[C.USER_IDX, C.BOOK_IDX], how="left").select(
        C.USER_IDX, C.RANK, C.BOOK_IDX, C.SCORE, C.BECAUSE_BOOK_IDX
    )


def serving_blend(cfg: RunConfig) -> dict | None:
    """What the consumer needs to fold a reader in with the blend a ranker run publishes (``gold/serving_model``
    ``blend``): item-CF's share, the liked share's weight and the candidates per source; None for other runs."""
    if cfg.model != "ranker" or cfg.blend is None:
        return None
    return {"weight": cfg.blend, "prior": cfg.blend_prior, "candidates": cfg.ranker.n_candidates}


def serves_liked_prior(cfg: RunConfig) -> bool:
    """Whether the published lists are item-CF's with a liked-share prior (recspark.itemcf, step 5; a ranker
    run's item-CF candidates go without it: recspark.twostage.source_lists)."""
    return cfg.model == "itemcf" and cfg.itemcf.liked_weight > 0


def publish_model(
    spark: SparkSession,
    lake: Lakehouse,
    cfg: RunConfig,
    run_id: str,
    model_run: str,
    timer: Timer,
    first_step: int = 1,
    guard: ShrinkGuard | None = None,
) -> dict[str, int]:
    """From the saved model ``model_run`` (ALS factors, item-CF neighbours or content vectors, and the predicted
    stars): recommendations with predicted stars, similar books, popular books -> gold, then the checks. Returns
    the row counts; the caller marks the run published, then cleans old runs."""
    total = first_step + 4
    interactions = lake.read(SILVER, "interactions")
    users = lake.read(SILVER, "users")
    books = lake.read(SILVER, "books")
    model = cfg.model
    vectors = load_content_vectors(lake, model_run)
    items = load_factors(lake, model_run)[1] if model in ("als", "ranker") else None
    neighbours = load_neighbours(lake, model_run) if model in ("itemcf", "popularity", "ranker") else None
    works = works_of(lake, interactions)
    fitted = training_view(interactions, works, cfg)  # what the model learnt from
    on_works = works is not None and cfg.item_level == "work"
    solved_with = items  # the vectors ALS solved with (a work-level run's: one per work): their YᵀY is served
    if on_works:
        fitted = fitted.cache()  # read by the lists, the liked shares and the serving tables
        if items is not None:
            items = works.edition_factors(items).cache()  # every edition carries its work's factors

    def in_order(lists: DataFrame) -> DataFrame:  # the series rule, unless the search switched it off
        if cfg.series_order:
            return series.in_series_order(lists, interactions, books, works)
        return series.as_ranked(lists)

    in_series = ", series in order" if cfg.series_order else ""
    with timer.step(f"recommend ({model}, read works excluded{in_series})", first_step, total):
        seen = seen_of(works, interactions)
        recs = diverse_lists(spark, lake, model_run, model, fitted, cfg, items, vectors, works)
        if on_works:
            recs = works.cited_editions(recs, interactions)
        recs = in_order(recs)
        pop = baselines.popularity(interactions)
        all_users = users.select(C.USER_IDX)
        pop_recs = topk.recommend(  # the fill, twice as deep: series order may fold some of it together
            spark,
            baselines.constant_user_factors(all_users),
            candidates_of(works, baselines.as_factors(pop)),
            2 * cfg.k,
            seen=seen,
        )
        pop_recs = in_order(pop_recs)
        recs = publish.fill_from_popular(recs, pop_recs, cfg.k)
        recs, stars_model = with_predicted_stars(spark, lake, model_run, interactions, recs, cfg.stars)
        publish.write_run_rows(
            lake,
            "user_recommendations",
            publish.user_recommendation_rows(recs, users, books, run_id),
            run_id,
        )
        if stars_model is not None:
            stars_model.release()
    method = {"als": "als", "ranker": "als", "content": "content"}.get(model, "itemcf")
    with timer.step(f"similar books ({method}; new books: content)", first_step + 1, total):
        if model in ("als", "ranker"):
            sims = similar_books(spark, interactions, items, cfg.similar_k, cfg.min_readers, works)
        elif model == "content":  # every book by content: no book has enough readers to count as well read
            sims = content.cold_similar(spark, interactions, vectors, cfg.similar_k, 1 << 62, works)
        else:
            sims = similar_from_neighbours(interactions, neighbours, cfg.similar_k, cfg.min_readers, works)
        rows = publish.similar_rows(sims, books, run_id, method)
        if vectors is not None and model != "content":  # books with too few readers: content neighbours
            cold = content.cold_similar(spark, interactions, vectors, cfg.similar_k, cfg.min_readers, works)
            rows = rows.unionByName(publish.similar_rows(cold, books, run_id, "content"))
        publish.write_run_rows(lake, "similar_books", rows, run_id)
    with timer.step("popular books (cold start)", first_step + 2, total):
        pop_rows = publish.popular_rows(candidates_of(works, pop), books, run_id, "all", max(100, cfg.k))
        has_time = interactions.where(F.col(C.DATE_ADDED).isNotNull()).limit(1).count() > 0
        if has_time:
            recent = candidates_of(works, baselines.trending(interactions))
            pop_rows = pop_rows.unionByName(
                publish.popular_rows(recent, books, run_id, "recent", max(100, cfg.k))
            )
        publish.write_run_rows(lake, "popular_books", pop_rows, run_id)
    with timer.step("serving model (book factors, YᵀY, content vectors)", first_step + 3, total):
        blend_params = serving_blend(cfg)
        liked = None
        if blend_params is not None or serves_liked_prior(cfg):  # the liked share the blend orders candidates
            # by, or item-CF's liked prior adds, as the batch lists do
            shares, overall = candidates.book_features(fitted)
            liked = (shares.select(C.BOOK_IDX, F.col(candidates.LIKED_SHARE).alias(C.LIKED_SHARE)), overall)
        publish.write_run_rows(
            lake,
            "serving_books",
            publish.serving_book_rows(
                books,
                interactions,
                run_id,
                items,
                vectors,
                works.table if works is not None else None,
                liked,
                trained=fitted if on_works else None,
            ),
            run_id,
        )
        model_row = publish.serving_model_row(
            spark,
            run_id,
            model,
            fitted,
            cfg.als.as_dict() if items is not None else None,
            cfg.weights.as_dict(),
            als.gram(solved_with).ravel().tolist() if solved_with is not None else None,
            cfg.content.as_dict(),
            cfg.itemcf.as_dict(),
            blend_params,
            cfg.diversity if model != "popularity" else 0.0,
            "work" if on_works else "edition",
            cfg.series_order,
        )
        publish.write_run_rows(lake, "serving_model", model_row, run_id)
        if neighbours is not None:
            rows = publish.serving_neighbour_rows(neighbours, books, run_id)
            publish.write_run_rows(lake, "serving_neighbours", rows, run_id)
    with timer.step("check and publish", first_step + 4, total):
        counts = publish.check_gold(lake, run_id, cfg.k, publish.shelved_ids(interactions, users, books))
        publish.guard_run_shrink(lake, run_id, counts, guard or ShrinkGuard())
        publish.optimize_run(lake, run_id, counts)
    if vectors is not None:
        vectors.unpersist()
    if works is not None:
        if on_works:
            fitted.unpersist()
            if items is not None:
                items.unpersist()
        works.release()
    return counts


@after_ingest
def publish_stage(
    spark: SparkSession,
    lake: Lakehouse,
    cfg: RunConfig,
    model_run: str | None = None,
    guard: ShrinkGuard | None = None,
) -> dict:
    """``recspark publish``: gold tables from an already trained model (default: the latest), checked, then
    marked published in ``gold.runs``: the last task of a multi-task job (ingest -> tune -> evaluate -> train ->
    publish). The model is published as it was trained (its family and parameters); ``cfg`` gives the shape of
    the lists. Returns a summary like :func:`run_pipeline`'s."""
    model_run = model_run or latest_model_run(lake)
    cfg = as_trained(cfg, trained_params(lake, model_run))
    run_id = publication_id(model_run, cfg)
    timer = Timer(spark)
    reused = served_as_is(lake, run_id)
    if reused is not None:
        return {**reused, "evaluation": None, "timings": timer.timings}
    with recorded_run(lake, run_id, cfg, input_versions(lake), timer, model_run=model_run) as mark_published:
        counts = publish_model(spark, lake, cfg, run_id, model_run, timer, guard=guard)
        mark_published(counts)
    return published_summary(run_id, model_run, cfg, counts, timer, clean_old(spark, lake, cfg.keep_runs))


def as_trained(cfg: RunConfig, trained: dict) -> RunConfig:
    """``cfg`` with the model parameters a trained model was fitted with (``RunConfig.as_dict`` of its run)."""
    return replace(
        cfg,
        seed=trained.get("seed", cfg.seed),
        model=trained.get("model", "als"),
        als=als.AlsParams(**trained["als"]) if "als" in trained else cfg.als,
        weights=Weights(**trained["weights"]) if "weights" in trained else cfg.weights,
        itemcf=ItemCfParams(**trained["itemcf"]) if "itemcf" in trained else cfg.itemcf,
        content=ContentParams(**trained.get("content", {})),
        stars=StarsParams(**trained["stars"]) if "stars" in trained else cfg.stars,
        ranker=RankerParams(**trained["ranker"]) if "ranker" in trained else cfg.ranker,
        ranker_model=trained.get("ranker_model"),
        blend=trained.get("blend"),
        blend_prior=trained.get("blend_prior", 0.0),
        item_level=trained.get("item_level", "edition"),
    )


def books_of(lake: Lakehouse) -> DataFrame | None:
    """``silver.books`` when the input has book metadata, else None."""
    return lake.read(SILVER, "books") if lake.exists(SILVER, "books") else None


def ranker_path(lake: Lakehouse, versions: dict) -> str:
    """Where the ranker trained by the tuning of these inputs is saved."""
    return f"{lake.root.rstrip('/')}/{MODEL}/_ranker/{_digest(input_key(versions))}"


def clean_old(spark: SparkSession, lake: Lakehouse, keep_runs: int) -> list[str]:
    """Retention after a publish: all but the newest ``keep_runs`` published runs leave gold, then the rankers no
    kept run publishes with. Returns the removed run ids."""
    cleaned = publish.clean_old_runs(lake, keep_runs)
    clean_old_rankers(spark, lake)
    return cleaned


def clean_old_rankers(spark: SparkSession, lake: Lakehouse) -> list[str]:
    """Delete the saved rankers under ``model/_ranker`` that no run left in ``gold.runs`` publishes with and that
    were not trained for the current inputs (:func:`clean_old` calls it after :func:`publish.clean_old_runs`). A
    ranker is saved per input key, and an old key never comes back (table versions only grow), so nothing else
    can load these."""
    fs, path = hadoop_path(spark, f"{lake.root.rstrip('/')}/{MODEL}/_ranker")
    if not fs.exists(path):
        return []
    keep = [ranker_path(lake, input_versions(lake))]
    if lake.exists(GOLD, "runs"):
        for row in lake.read(GOLD, "runs").select("params").collect():
            keep.append(json.loads(row["params"] or "{}").get("ranker_model") or "")
    kept = {k.rstrip("/").rsplit("/", 1)[-1] for k in keep if k}  # by digest: paths may differ in scheme
    doomed = [
        st.getPath() for st in fs.listStatus(path) if st.isDirectory() and st.getPath().getName() not in kept
    ]
    for p in doomed:
        fs.delete(p, True)
    if doomed:
        log.info("removed %d rankers of runs no longer kept", len(doomed))
    return [p.getName() for p in doomed]


def load_ranker(cfg: RunConfig):
    """The ranker model a ranker run publishes with (saved by its tuning), or its blend (:mod:`recspark.blend`)."""
    if cfg.blend is not None:
        return Blend(cfg.blend, cfg.blend_prior)
    if not cfg.ranker_model:
        raise NotFound(
            "this run publishes the ranker, but no trained ranker is recorded: run with --tune full"
        )
    from recspark.ranker import require_xgboost

    require_xgboost()  # a clear message naming the extra when xgboost is missing
    from xgboost.spark import SparkXGBRankerModel

    return SparkXGBRankerModel.load(cfg.ranker_model)


def with_predicted_stars(
    spark: SparkSession,
    lake: Lakehouse,
    model_run: str,
    interactions: DataFrame,
    recs: DataFrame,
    params: StarsParams,
) -> tuple[DataFrame, stars.StarsModel | None]:
    """``recs`` with ``predicted_rating`` from the stars model trained with ``model_run`` (``model/stars``; null
    when there are too few ratings, or for a user or book without ratings), and the model (None without one): the
    caller releases it (:meth:`recspark.stars.StarsModel.release`) once the lists are written. A model trained
    before the stars were saved with it has them fitted here, on ``interactions``."""
    model = load_stars(lake, model_run)
    if model is None:
        log.info(
            "model %s has no saved stars (too few ratings, or trained before they were saved)", model_run
        )
        model = stars.fit_if_enough(spark, interactions, params)
    if model is None:
        return recs.withColumn(stars.PREDICTED, F.lit(None).cast("float")), None
    return stars.predict(model, recs), model


def load_stars(lake: Lakehouse, model_run: str) -> stars.StarsModel | None:
    """The predicted-stars model saved with ``model_run`` (None when none was)."""
    if not lake.exists(MODEL, "stars"):
        return None
    return stars.from_terms(lake.read(MODEL, "stars").where(F.col(C.RUN_ID) == model_run).drop(C.RUN_ID))


def well_read(interactions: DataFrame, min_readers: int) -> DataFrame:
    """``(book_idx)`` of the books with at least ``min_readers`` readers."""
    return (
        interactions.groupBy(C.BOOK_IDX)
        .agg(F.count(F.lit(1)).alias("_r"))
        .where(F.col("_r") >= min_readers)
        .select(C.BOOK_IDX)
    )


def similar_books(
    spark: SparkSession,
    interactions: DataFrame,
    items: DataFrame,
    k: int,
    min_readers: int,
    works: Works | None = None,
) -> DataFrame:
    """Top-k cosine neighbours ``(book_idx, rank, neighbour_idx, score)`` of ALS factors for books with at least
    ``min_readers`` readers; a book is never its own neighbour (with ``works``: no edition of its own work is,
    and each work is listed by one edition)."""
    unit = items.select(C.BOOK_IDX, topk.unit_length(F.col(C.FEATURES)).alias(C.FEATURES)).join(
        well_read(interactions, min_readers), on=C.BOOK_IDX, how="left_semi"
    )
    own = works.own_work(unit) if works is not None else None
    return topk.item_neighbours(spark, unit, candidates_of(works, unit), k, seen=own)


def similar_from_neighbours(
    interactions: DataFrame, neighbours: DataFrame, k: int, min_readers: int, works: Works | None = None
) -> DataFrame:
    """The item-CF neighbour table cut to ``k`` per book, between books with at least ``min_readers`` readers
    (same shape as :func:`similar_books`; with ``works``: one edition per work, never the query's own work);
    positive weights only (EASE keeps negative ones for scoring: "readers of this book are *less* likely to
    shelve that one" is no similarity); ranks renumbered after the cut."""
    read = well_read(interactions, min_readers).cache()
    positive = neighbours.where(F.col(C.SCORE) > 0)
    kept = positive.join(read, on=C.BOOK_IDX, how="left_semi").join(
        read.select(F.col(C.BOOK_IDX).alias(C.NEIGHBOUR_IDX)), on=C.NEIGHBOUR_IDX, how="left_semi"
    )
    if works is not None:
        kept = works.not_own_work(kept, C.NEIGHBOUR_IDX)
    return itemcf.top_neighbours(kept.select(C.BOOK_IDX, C.NEIGHBOUR_IDX, C.SCORE), k)


# -- single stages, for `recspark train | evaluate | recommend | similar` --------------------------------------
def write_keyed(lake: Lakehouse, layer: str, name: str, df: DataFrame, run_id: str) -> None:
    """Replace the rows of ``run_id`` in a table partitioned by run_id (create it when missing)."""
    lake.replace_run(df.select(F.lit(run_id).alias(C.RUN_ID), "*"), layer, name, run_id)


def latest_model_run(lake: Lakehouse) -> str:
    if not lake.exists(MODEL, "params"):
        raise NotFound(f"no trained model in {lake.root}: run `recspark train` first")
    return lake.read(MODEL, "params").orderBy(F.col("trained_at").desc()).first()[C.RUN_ID]


def trained_params(lake: Lakehouse, run_id: str) -> dict:
    """The configuration a trained run was fitted with (``RunConfig.as_dict``)."""
    if not lake.exists(MODEL, "params"):
        raise NotFound(f"no trained model in {lake.root}: run `recspark train` first")
    row = lake.read(MODEL, "params").where(F.col(C.RUN_ID) == run_id).select("params").first()
    if row is None:
        raise NotFound(f"no trained model {run_id!r} in {lake.root}: run `recspark train` first")
    return json.loads(row["params"])


def model_of(lake: Lakehouse, run_id: str) -> str:
    """The family a trained run fitted (``als`` for runs saved before families existed)."""
    return trained_params(lake, run_id).get("model", "als")


def load_content_vectors(lake: Lakehouse, run_id: str) -> DataFrame | None:
    """The run's saved content vectors, or None when it has none (no metadata, or content not trained)."""
    if not lake.exists(MODEL, "content_vectors"):
        return None
    vectors = lake.read(MODEL, "content_vectors").where(F.col(C.RUN_ID) == run_id).drop(C.RUN_ID).cache()
    if vectors.limit(1).count() == 0:
        vectors.unpersist()
        return None
    return vectors


def load_neighbours(lake: Lakehouse, run_id: str) -> DataFrame:
    if not lake.exists(MODEL, "neighbours"):
        raise NotFound(f"no item-CF model in {lake.root}: run `recspark train` with an item-CF choice first")
    return lake.read(MODEL, "neighbours").where(F.col(C.RUN_ID) == run_id).drop(C.RUN_ID)


def load_factors(lake: Lakehouse, run_id: str) -> tuple[DataFrame, DataFrame]:
    users = lake.read(MODEL, "user_factors").where(F.col(C.RUN_ID) == run_id).drop(C.RUN_ID)
    items = lake.read(MODEL, "item_factors").where(F.col(C.RUN_ID) == run_id).drop(C.RUN_ID)
    return users, items


@after_ingest
def train_all(spark: SparkSession, lake: Lakehouse, cfg: RunConfig, force: bool = False) -> tuple[str, bool]:
    """Fit on every silver interaction and save the model under its model run id. Returns ``(model run id,
    fitted)``: a model already trained on these inputs with these parameters is not fitted again unless
    ``force``."""
    model_run = model_run_id(input_versions(lake), cfg)
    if trained(lake, model_run) and not force:
        log.info("model %s is already trained on these inputs with these parameters", model_run)
        return model_run, False
    fit_and_save(spark, lake, lake.read(SILVER, "interactions"), cfg, model_run)
    return model_run, True


def model_lists(
    spark: SparkSession,
    lake: Lakehouse,
    run_id: str,
    model: str,
    interactions: DataFrame,
    k: int,
    cfg: RunConfig,
    users: DataFrame | None = None,
    vectors: DataFrame | None = None,
    works: Works | None = None,
) -> DataFrame:
    """Top-k ``(user_idx, rank, book_idx, score, because_book_idx)`` of the trained ``model`` of ``run_id`` for
    every user in ``interactions`` (what the model was fitted on; or only ``users``), shelved books excluded
    (with ``works``: one edition per work, every edition of a shelved work excluded). ``popularity`` returns
    no rows: its lists are the popular fill of the publish step."""
    seen = interactions.select(C.USER_IDX, C.BOOK_IDX)
    if model == "als":
        ufs, items = load_factors(lake, run_id)
        if users is not None:
            ufs = ufs.join(users, on=C.USER_IDX, how="left_semi")
        recs = topk.recommend(spark, ufs, candidates_of(works, items), k, seen=seen_of(works, interactions))
        return publish.explain(spark, recs, seen, items)
    if model == "itemcf":
        return itemcf.recommend(
            interactions,
            load_neighbours(lake, run_id),
            k,
            users=users,
            works=works,
            popularity_weight=cfg.itemcf.popularity_weight,
            shelf_weights=cfg.itemcf.shelf_weights,
            half_life_days=cfg.itemcf.half_life_days,
            liked_weight=cfg.itemcf.liked_weight,
        )
    if model == "content":
        vectors = vectors if vectors is not None else load_content_vectors(lake, run_id)
        if vectors is None:
            raise NotFound(f"run {run_id} has no content vectors: the books carry no metadata")
        recs = content.recommend(spark, interactions, vectors, k, cfg.content, users=users, works=works)
        return publish.explain(spark, recs, seen, vectors)
    if model == "ranker":
        ufs, items = load_factors(lake, run_id)
        vectors = vectors if vectors is not None else load_content_vectors(lake, run_id)
        sources = sources_of(cfg, ufs, items, load_neighbours(lake, run_id), vectors, works)
        wanted = users if users is not None else interactions.select(C.USER_IDX).distinct()
        recs = twostage.ranked_lists(
            spark, interactions, sources, wanted, books_of(lake), load_ranker(cfg), k, cfg.ranker.n_candidates
        )
        return publish.explain(spark, recs, seen, items)
    return spark.createDataFrame([], publish.EXPLAINED_SCHEMA)


@after_ingest
def recommend_stage(
    spark: SparkSession, lake: Lakehouse, run_id: str, k: int, user_ids: list[str] | None = None
) -> DataFrame:
    """Top-k for all users (or the given source user ids), read books excluded -> ``model/recommendations``."""
    interactions = lake.read(SILVER, "interactions")
    wanted = None
    if user_ids:
        wanted = lake.read(SILVER, "users").where(F.col(C.USER_ID).isin(user_ids)).select(C.USER_IDX)
    trained = trained_params(lake, run_id)
    model = trained.get("model", "als")
    cfg = as_trained(RunConfig(), trained)
    works = works_of(lake, interactions)
    if model == "popularity":
        users = wanted if wanted is not None else interactions.select(C.USER_IDX).distinct()
        pop = candidates_of(works, baselines.as_factors(baselines.popularity(interactions)))
        seen = seen_of(works, interactions)
        recs = topk.recommend(spark, baselines.constant_user_factors(users), pop, k, seen=seen)
    else:
        fitted = training_view(interactions, works, cfg)
        recs = model_lists(spark, lake, run_id, model, fitted, k, cfg, wanted, works=works)
    recs = recs.select(C.USER_IDX, C.RANK, C.BOOK_IDX, C.SCORE)
    write_keyed(lake, MODEL, "recommendations", recs, run_id)
    return lake.read(MODEL, "recommendations").where(F.col(C.RUN_ID) == run_id)


@after_ingest
def similar_stage(spark: SparkSession, lake: Lakehouse, run_id: str, k: int, min_readers: int) -> DataFrame:
    """Top-k cosine neighbours for books with at least ``min_readers`` readers -> ``model/similar_books``."""
    interactions = lake.read(SILVER, "interactions")
    trained = trained_params(lake, run_id)
    model = trained.get("model", "als")
    works = works_of(lake, interactions)
    if model == "als":
        items = load_factors(lake, run_id)[1]
        if works is not None and trained.get("item_level") == "work":
            items = works.edition_factors(items)
        sims = similar_books(spark, interactions, items, k, min_readers, works)
    elif model == "content":
        vectors = load_content_vectors(lake, run_id)
        sims = content.cold_similar(spark, interactions, vectors, k, 1 << 62, works)
    else:
        sims = similar_from_neighbours(interactions, load_neighbours(lake, run_id), k, min_readers, works)
    write_keyed(lake, MODEL, "similar_books", sims, run_id)
    return lake.read(MODEL, "similar_books").where(F.col(C.RUN_ID) == run_id)
