"""``recspark <verb>``: generate, ingest, run (and the later stages as they land).

The CLI is the only place that chooses a local master (``local[N]``, N = the machine's cores); under
spark-submit (or with ``--master``) the platform's settings are used.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from recspark import columns as C

log = logging.getLogger("recspark")

DEFAULT_LAKEHOUSE = "data/lakehouse"
DEFAULT_RAW = "data/raw"


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)


def session(args: argparse.Namespace, app: str):
    """The CLI's SparkSession: local[N] by default, the platform's master under spark-submit."""
    from recspark.spark import get_spark, launched_by_spark_submit, on_databricks

    master = args.master
    platform = launched_by_spark_submit() or on_databricks() or os.environ.get("SPARK_REMOTE")
    if master is None and not platform:
        master = f"local[{os.cpu_count() or 2}]"
    lakehouse = getattr(args, "lakehouse", DEFAULT_LAKEHOUSE)
    checkpoint = f"{lakehouse.rstrip('/')}/_checkpoints"
    if "://" not in checkpoint:
        Path(checkpoint).mkdir(parents=True, exist_ok=True)
        checkpoint = str(Path(checkpoint).resolve())
    return get_spark(app_name=f"recspark-{app}", master=master, checkpoint_dir=checkpoint)


def _remote(path: str) -> bool:
    """A URI (``s3://``, ``abfss://``, ``dbfs:``), not a local path."""
    return "://" in path or path.startswith("dbfs:")


def _abs(path: str) -> str:
    return path if _remote(path) else str(Path(path).resolve())


def reports_dir(args: argparse.Namespace) -> Path:
    """Where the evaluation report goes: ``--reports``, else ``_reports/`` in a local lakehouse (everything a run
    writes under the one folder named), else ``data/reports`` under the working directory (a remote lakehouse:
    the report is a local Markdown file and plot)."""
    if args.reports:
        return Path(args.reports)
    if _remote(args.lakehouse):
        return Path("data/reports")
    return Path(_abs(args.lakehouse)) / C.REPORTS


def lakehouse_for(spark, args: argparse.Namespace):
    from recspark.tables import Lakehouse

    lake = Lakehouse(
        spark,
        _abs(args.lakehouse),
        catalog=getattr(args, "catalog", None),
        schema=getattr(args, "schema", None),
    )
    lake.ensure_schema()
    return lake


# -- verbs ----------------------------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    from recspark.sources.synthetic import generate

    t0 = time.perf_counter()
    if args.format == "goodbooks":  # ratings-like data: the rated shelves of generated UCSD data
        from recspark.sources.synthetic import to_goodbooks

        ucsd = Path(args.out) / "_ucsd"
        generate(ucsd, scale=args.scale, seed=args.seed)
        counts = to_goodbooks(ucsd, args.out)
        shutil.rmtree(ucsd)
    else:
        counts = generate(args.out, scale=args.scale, seed=args.seed, subsets=args.subsets)
    print(f"wrote {len(counts)} files to {args.out} in {time.perf_counter() - t0:.1f} s")
    for name, n in counts.items():
        print(f"  {name:<42} {n:>12,} rows")
    return 0


def print_ingest(result, lake) -> None:
    from recspark.ingest import format_counts

    if result.skipped:
        print(f"ingest: input unchanged since the last successful ingest; nothing changed ({lake.root})")
    else:
        print(format_counts(result.counts))
    for name, n in result.tables.items():
        print(f"  silver.{name:<14} {n:>12,} rows  {lake.path(C.SILVER, name)}")


def cmd_ingest(args: argparse.Namespace) -> int:
    from recspark.ingest import run_ingest

    spark = session(args, "ingest")
    lake = lakehouse_for(spark, args)
    result = run_ingest(
        spark,
        lake,
        _abs(args.source),
        args.format,
        new_run_id(),
        force=args.force,
        max_shrink=args.max_shrink,
    )
    print_ingest(result, lake)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The main job: (generate) -> ingest -> ... ; prints where the results are."""
    t0 = time.perf_counter()
    run_id = new_run_id()
    timings: dict[str, float] = {}
    if args.source is None:
        raw = str(Path(args.lakehouse).parent / "raw" / f"generated-scale{args.scale}-seed{args.seed}")
        if not (Path(raw) / "goodreads_interactions.csv").exists():
            print(f"[generate] no --source given: generating scale {args.scale} into {raw}")
            from recspark.sources.synthetic import generate

            t = time.perf_counter()
            generate(raw, scale=args.scale, seed=args.seed)
            timings["generate"] = time.perf_counter() - t
        else:
            print(f"[generate] reusing {raw}")
        args.source, args.format = raw, "goodreads"
    print(f"[ingest] {args.source} ({args.format}) -> {args.lakehouse}")
    t = time.perf_counter()
    spark = session(args, "run")
    timings["start Spark"] = time.perf_counter() - t

    from recspark.config import TuneOptions
    from recspark.pipeline import run_job
    from recspark.tracking import tracker

    lake = lakehouse_for(spark, args)
    tuning = TuneOptions(
        mode="off" if args.no_tuned else args.tune,
        budget_s=args.tune_budget,
        model=args.model,
        ranker=args.ranker,
    )
    # auto/full start from the built-in values and let the search (or its stored result) decide; off takes the
    # latest stored tuning, if any (unless --no-tuned)
    use_stored = tuning.mode == "off" and not args.no_tuned
    cfg = _cfg(args, lake, evaluate=not args.no_evaluate, use_tuned=use_stored)
    report_dir = reports_dir(args)
    summary = run_job(
        spark,
        lake,
        _abs(args.source),
        args.format,
        cfg,
        report_dir,
        run_id,
        force=args.force,
        guard=guard_of(args),
        tuning=tuning,
        tracker=tracker(enabled=not args.no_mlflow),
    )
    print_ingest(summary["ingest"], lake)
    timings.update(summary["timings"])
    print_summary(spark, lake, summary, cfg.k, report_dir)
    print_parameters(summary)
    if summary.get("reused"):
        print(
            f"\nrun {summary['run_id']} was already published from these inputs and parameters: served as is"
        )
    else:
        print(f"\nrun {summary['run_id']} published in {time.perf_counter() - t0:.0f} s")
    width = max((len(step) for step in timings), default=0)
    for step, secs in timings.items():
        print(f"  {step:<{width}} {secs:7.1f} s")
    from recspark.publish import RUN_TABLES

    tables = ", ".join((*RUN_TABLES, "evaluations", "runs"))
    print(f"results: {_abs(args.lakehouse)}/gold  (Delta tables: {tables})")
    print(f"serve them: python -m recspark.serve --lakehouse {_abs(args.lakehouse)} --port 8000")
    return 0


def print_summary(spark, lake, summary: dict, k: int, report_dir: Path) -> None:
    from pyspark.sql import functions as F

    print("\n== tables written (this run) ==")
    for name, n in summary["row_counts"].items():
        print(f"  gold.{name:<22} {n:>10,} rows  {lake.path(C.GOLD, name)}")
    ev = summary.get("evaluation")
    if ev is not None and summary["config"].model in ev.results:
        from recspark import evaluate, split

        print(
            f"\n== offline evaluation (per-user holdout: {split.describe(summary['config'].test_fraction)}) =="
        )
        print(ev.table(10))
        model, label = summary["config"].model, summary["config"].published_label
        ratio = ev.value(model, "ndcg", 10) / max(ev.value("popularity", "ndcg", 10), 1e-12)
        what = "published" if label == model else f"published; {label}"
        liked = f"{evaluate.LIKED_PREFIX}ndcg"
        on_liked = (
            f" ({ev.value(model, liked, 10) / max(ev.value('popularity', liked, 10), 1e-12):.2f}x counting only "
            "the liked held-out books, as validation does)"
            if liked in ev.results[model].get(10, {})
            else ""
        )
        print(
            f"{model} ({what}) NDCG@10 is {ratio:.2f}x popularity's{on_liked}. "
            f"Report: {report_dir.resolve()}/evaluation-{summary['run_id']}.md"
        )
    recs = lake.read(C.GOLD, "user_recommendations").where(F.col(C.RUN_ID) == summary["run_id"])
    # a user whose first five show the series rule when there is one, else the first user
    noted = (
        recs.where(F.col(C.EXPLANATION).startswith("next in series") & (F.col(C.RANK) <= 5))
        if C.EXPLANATION in recs.columns
        else recs
    )
    user = (
        noted.select(C.USER_ID).orderBy(C.USER_ID).first()
        or recs.select(C.USER_ID).orderBy(C.USER_ID).first()
    )
    if user is None:
        return
    rows = recs.where(F.col(C.USER_ID) == user[0]).orderBy(C.RANK).limit(5).collect()
    print(f"\n== sample recommendations for user {user[0]} ==")
    for r in rows:
        reason = r.asDict().get(C.EXPLANATION) or "popular"
        print(
            f"  {r['rank']:>2}. {r['title'] or r['book_id']} -- {r['authors'] or 'unknown author'}  ({reason})"
        )


def print_parameters(summary: dict) -> None:
    """Which ALS parameters the run used and how they were chosen."""
    from recspark import metrics
    from recspark.blend import DEFAULT_PRIOR
    from recspark.tune import describe_runner_up, describe_series, describe_validation
    from recspark.twostage import published_in, vs_blend

    cfg, tuning = summary["config"], summary.get("tuning")
    scores = (tuning or {}).get("models") or {}
    shown = ", ".join(f"{m} {v:.4f}" for m, v in scores.items())
    print(f"\n== published model: {cfg.published_label} ==")
    relevant = f" (relevant: held-out books {tuning['relevant']})" if (tuning or {}).get("relevant") else ""
    if made := describe_validation((tuning or {}).get("validation")):
        relevant += f" ({made})"
    print(
        f"  validation NDCG@10 by model{relevant}: {shown}"
        if shown
        else "  (no validation scores: tuning off or skipped)"
    )
    if "itemcf" in cfg.models:
        print(f"  item-CF: {cfg.itemcf.describe()}")
    if (tuning or {}).get("series"):
        print(f"  series order: {describe_series(tuning['series'])}")
    rk = (tuning or {}).get("ranker")
    if rk and rk.get("skipped"):
        print(f"  two-stage ranker: not trained ({rk['skipped']})")
    elif rk:
        verdict = (
            "wins"
            if published_in(rk) == "ranker"
            else f"beats the single models, but not the blend by two standard errors{vs_blend(rk)}"
            if rk.get("wins")
            else f"not published: {rk.get('best_single')} is as good (paired z {metrics.z_text(rk.get('z'))} < 2)"
            if rk.get("ranker") is not None and rk["ranker"] > max((rk.get("single") or {0: 0}).values())
            else f"loses to {rk.get('best_single')}"
        )
        print(
            f"  two-stage ranker: validation NDCG@10 {rk.get('ranker')} on held-out validation users vs single "
            f"models {rk.get('single')}: {verdict}; candidate recall {rk.get('recall')}"
        )
    b = (rk or {}).get("blend")
    if b:
        won = "published" if published_in(rk) == "blend" else "not published"
        if "single" in b:  # cross-fitted on every validation user
            best = b["best_single"]
            how = (
                "an even mix unless another weight is a standard error ahead on the validation users; cross-fitted: "
                "each half ranked with the other half's choice"
                if "even_mix_z" in b
                else "best on the validation users; cross-fitted: each half ranked with the other half's best"
            )
            if "prior_z" in b:
                how = f"γ {DEFAULT_PRIOR:g} unless another γ is a standard error ahead, then {how}"
            against = f"{best}'s {b['single'][best]} on the same users"
        else:  # records from before the cross-fitting
            how = "chosen on the fit users"
            against = f"the best single model's {max((rk.get('single') or {0: 0}).values())}"
        if b.get("learning_curve"):
            c = b["learning_curve"]
            how += (
                f"; then where the scores are heading, extrapolated {c['reach']:g} steps from a thinner fit, the "
                f"even mix moved a weight towards the best for every half standard error of its lead "
                f"(w {c['weight_on_validation']:g} on validation alone)"
            )
        liked = f", liked share's weight {b['prior']:g}" if b.get("prior") else ""
        print(
            f"  two-stage blend of ALS and item-CF: weight {b['weight']:g}{liked} ({how}), validation NDCG@10 "
            f"{b['ndcg']} against {against} (paired z {metrics.z_text(b['z'])}): {won}"
        )
    p, w = cfg.als, cfg.weights
    used = f"rank {p.rank}, regParam {p.reg:g}, alpha {p.alpha:g}, scheme {w.scheme}, {p.max_iter} iterations"
    print(f"\n== ALS parameters ==\n  {used}")
    if tuning is None:
        print("  (tuning off: stored or built-in values)")
    elif tuning.get("skipped"):
        print(f"  (built-in values: {tuning['skipped']})")
    else:
        best, second = tuning["best"], tuning.get("runner_up")
        how = "reused the search stored for these inputs" if tuning.get("reused") else "searched now"
        print(
            f"  chosen by self-tuning ({how}; {tuning['trials']} trials, {tuning['seconds']} s): signals "
            f"{best['signals']}, validation NDCG@10 {best['ndcg']:.4f}"
        )
        if second:
            print(f"  runner-up: {describe_runner_up(best, second, tuning.get('default_check'))}")
        check = tuning.get("default_check") or {}
        if "winner_ndcg" in check:  # else the search's best is the built-in configuration itself
            kept = "kept" if check["chosen"] == "winner" else "not kept: the built-in configuration wins"
            crossed = metrics.z_text(check["z_cross_fitted"]) if "z_cross_fitted" in check else "n/a"
            print(
                f"  against the built-in configuration at {check['iterations']} iterations: "
                f"{check['winner_ndcg']:.4f} vs {check['default_ndcg']:.4f}, paired z {metrics.z_text(check['z'])}, "
                f"cross-fitted {crossed} (each needs {check['min_z']:g}): the search's best {kept}"
            )


def cmd_tune(args: argparse.Namespace) -> int:
    from recspark.config import TuneOptions
    from recspark.pipeline import input_versions, make_split, tune_on
    from recspark.tracking import tracker

    spark = session(args, "tune")
    lake = lakehouse_for(spark, args)
    cfg = _cfg(args, lake, evaluate=False)
    if not lake.exists(C.SILVER, "interactions"):
        from recspark.pipeline import NotFound

        raise NotFound(f"no silver interactions in {lake.root}: run `recspark ingest` first")
    s = make_split(spark, lake, lake.read(C.SILVER, "interactions"), cfg)
    opts = TuneOptions(mode="full", budget_s=args.budget, configs=args.configs, ranker=args.ranker)
    search = tune_on(spark, lake, s.train, cfg, opts, tracker(enabled=not args.no_mlflow))
    if search.best is None:
        print(f"no search: {search.skipped}")
        return 0
    skipped = f", {search.n_skipped} more skipped as too slow" if search.n_skipped else ""
    print(
        f"{len(search.trials) - search.n_skipped} trials{skipped} in {search.seconds:.0f} s "
        f"(budget {search.budget_s:.0f} s on the {search.clock} clock)"
    )
    print(f"best:      {search.best}")
    print(f"runner-up: {search.runner_up}")
    print(f"against the built-in configuration: {search.default_check}")
    print(f"validation NDCG by model: {search.models} -> publish {search.model}; item-CF {search.itemcf}")
    print(
        f"stored in {lake.path(C.MODEL, 'best_params')} for inputs {input_versions(lake)}; "
        "`recspark run` uses it"
    )
    return 0


def _cfg(args: argparse.Namespace, lake, evaluate: bool = True, use_tuned: bool | None = None):
    """Defaults, then the latest stored tuning unless --no-tuned or ``use_tuned`` is False (make_config logs
    which it used)."""
    from recspark.config import make_config

    if use_tuned is None:
        use_tuned = not getattr(args, "no_tuned", False)
    return make_config(
        lake,
        k=getattr(args, "k", 10),
        seed=getattr(args, "seed", 42),
        evaluate=evaluate,
        use_tuned=use_tuned,
        models=getattr(args, "models", None),
        model=getattr(args, "model", None),
        split_kind=getattr(args, "split", "holdout"),
        diversity=getattr(args, "diversity", 0.0),
        item_level=getattr(args, "item_level", None),
        keep_runs=getattr(args, "keep_runs", 5),
        series_order=getattr(args, "series_order", "auto"),
    )


def _models(text: str) -> tuple[str, ...]:
    from recspark.tune import trained_families

    try:
        return trained_families(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def model_opts(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--models",
        type=_models,
        default=None,
        help="model families to train and evaluate, comma-separated (default: als,itemcf,content)",
    )
    sp.add_argument(
        "--model",
        choices=["auto", "als", "itemcf", "content", "popularity", "ranker"],
        default="auto",
        help="the family whose lists are published (default auto: the best validation NDCG of the search)",
    )
    sp.add_argument(
        "--item-level",
        choices=["edition", "work"],
        default=None,
        help="what the models learn from: edition (default: each Goodreads book_id) or work (the editions of "
        "one work merged first). Lists show one edition per work and skip every edition of a shelved work "
        "either way",
    )


def diversity_opts(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--diversity",
        type=_share,
        default=0.0,
        help="MMR weight of the published lists, in [0, 1): 0 (default) keeps the model's order; higher trades "
        "NDCG for broader lists (the evaluation report shows the trade-off at 0.3 and 0.6)",
    )


def series_opts(sp: argparse.ArgumentParser) -> None:
    from recspark.config import SERIES_ORDER_CHOICES

    sp.add_argument(
        "--series-order",
        choices=SERIES_ORDER_CHOICES,
        default="auto",
        help="auto (default): a later volume of a series the reader has not started gives way to its first "
        "volume unless the search found that this costs validation hits; on: always; off: the model's order",
    )


def ranker_opts(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--ranker",
        choices=["auto", "off"],
        default="auto",
        help="auto (default): the search also trains the two-stage ranker (candidates from every model, "
        "xgboost LambdaMART) and a one-weight blend of ALS and item-CF over the same candidates, and publishes "
        "whichever beats every single model on validation (the ranker by z >= 2; the blend when both do, unless "
        "the ranker leads it by z >= 2 too); off: single models",
    )


def split_opts(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--split",
        choices=["holdout", "temporal"],
        default="holdout",
        help="evaluation holdout: 20%% of each user's books at random (holdout, default) or their latest 20%% "
        "by date added (temporal; needs dates)",
    )


def cmd_train(args: argparse.Namespace) -> int:
    from recspark.pipeline import train_all

    spark = session(args, "train")
    lake = lakehouse_for(spark, args)
    t = time.perf_counter()
    run_id, fitted = train_all(spark, lake, _cfg(args, lake), force=args.force)
    if fitted:
        print(f"trained {run_id} in {time.perf_counter() - t:.1f} s -> {lake.path(C.MODEL, 'item_factors')}")
    else:
        print(f"{run_id} is already trained on these inputs with these parameters (--force fits it again)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recspark.pipeline import evaluate_model, input_versions, make_split, run_id_for

    spark = session(args, "evaluate")
    lake = lakehouse_for(spark, args)
    cfg = _cfg(args, lake)
    run_id = run_id_for(input_versions(lake), cfg)
    s = make_split(spark, lake, lake.read(C.SILVER, "interactions"), cfg)
    report_dir = reports_dir(args)
    ev = evaluate_model(spark, lake, cfg, s, run_id, report_dir)
    for k in cfg.ks:
        print(ev.table(k) + "\n")
    print(
        f"report: {report_dir.resolve()}/evaluation-{run_id}.md; rows in {lake.path(C.GOLD, 'evaluations')}"
    )
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from recspark.pipeline import latest_model_run, recommend_stage

    spark = session(args, "recommend")
    lake = lakehouse_for(spark, args)
    run_id = args.run_id or latest_model_run(lake)
    users = [u for u in (args.users or "").split(",") if u]
    recs = recommend_stage(spark, lake, run_id, args.k, users or None)
    print(f"{recs.count():,} recommendations ({run_id}) -> {lake.path(C.MODEL, 'recommendations')}")
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from recspark.pipeline import latest_model_run, similar_stage

    spark = session(args, "similar")
    lake = lakehouse_for(spark, args)
    run_id = args.run_id or latest_model_run(lake)
    sims = similar_stage(spark, lake, run_id, args.k, args.min_readers)
    print(f"{sims.count():,} neighbours ({run_id}) -> {lake.path(C.MODEL, 'similar_books')}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from recspark.pipeline import publish_stage

    spark = session(args, "publish")
    lake = lakehouse_for(spark, args)
    summary = publish_stage(spark, lake, _cfg(args, lake, evaluate=False), args.run_id, guard=guard_of(args))
    for name, n in summary["row_counts"].items():
        print(f"  gold.{name:<22} {n:>10,} rows  {lake.identifier(C.GOLD, name)}")
    how = "was already published: served as is" if summary.get("reused") else "published"
    print(f"run {summary['run_id']} {how}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _lakehouse(text: str) -> str:
    """A lakehouse root: a URI, or a local folder (existing or not), never an existing file."""
    if not _remote(text) and os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder for the lakehouse")
    return text


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a share in [0, 1), not {value}")
    return value


def guard_opts(sp: argparse.ArgumentParser, what: str) -> None:
    sp.add_argument(
        "--max-shrink",
        type=_share,
        default=None,
        help=f"refuse {what} shrinking by more than this share (e.g. 0.2; default: refuse only an empty "
        "one, warn above 0.5)",
    )


def retention_opts(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--keep-runs",
        type=_positive_int,
        default=5,
        help="published runs kept in gold after a publish (older ones and their rankers are deleted; default 5)",
    )


def guard_of(args: argparse.Namespace):
    from recspark.tables import ShrinkGuard

    return ShrinkGuard(getattr(args, "max_shrink", None), getattr(args, "force", False))


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recspark", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="verb", required=True)

    def spark_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--lakehouse",
            type=_lakehouse,
            default=DEFAULT_LAKEHOUSE,
            help="root folder/URI of the Delta tables",
        )
        sp.add_argument(
            "--catalog", default=None, help="write catalog tables catalog.schema.layer_name instead"
        )
        sp.add_argument("--schema", default=None, help="schema for --catalog (default recspark)")
        sp.add_argument(
            "--master", default=None, help="Spark master (default: local[cores], or spark-submit's)"
        )

    g = sub.add_parser("generate", help="write UCSD-format Goodreads files with planted taste structure")
    g.add_argument(
        "--scale", type=_positive_float, default=0.001, help="1.0 = the real sizes (228.6M interactions)"
    )
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--out", default=DEFAULT_RAW)
    g.add_argument("--subsets", action="store_true", help="also write the per-genre subset files")
    g.add_argument(
        "--format",
        choices=["goodreads", "goodbooks"],
        default="goodreads",
        help="goodreads: the UCSD files; goodbooks: ratings-like data (ratings.csv + books.csv)",
    )
    g.set_defaults(func=cmd_generate)

    i = sub.add_parser("ingest", help="raw files -> bronze and silver Delta tables")
    i.add_argument("--source", required=True, help="directory with the raw files")
    i.add_argument("--format", choices=["goodreads", "goodbooks"], default="goodreads")
    i.add_argument(
        "--force",
        action="store_true",
        help="re-ingest even when the input is unchanged; accept an input with no interactions",
    )
    guard_opts(i, "a new silver.interactions")
    spark_opts(i)
    i.set_defaults(func=cmd_ingest)

    r = sub.add_parser("run", help="the main job end to end (generates data when no --source is given)")
    r.add_argument("--source", default=None)
    r.add_argument("--format", choices=["goodreads", "goodbooks"], default="goodreads")
    r.add_argument(
        "--scale", type=_positive_float, default=0.001, help="scale of generated data when no --source"
    )
    r.add_argument("--seed", type=int, default=42)
    r.add_argument("--k", type=_positive_int, default=10, help="recommendations per user")
    r.add_argument(
        "--force",
        action="store_true",
        help="re-ingest even when the input is unchanged; accept an input with no interactions or lists that "
        "shrink past --max-shrink",
    )
    guard_opts(r, "a new silver.interactions or new published lists")
    retention_opts(r)
    r.add_argument("--no-evaluate", action="store_true", help="skip the offline evaluation")
    r.add_argument(
        "--tune",
        choices=["auto", "off", "full"],
        default="auto",
        help="auto (default): search ALS parameters when these inputs have no tuning result yet; "
        "full: always search; off: use the stored or built-in values",
    )
    r.add_argument(
        "--tune-budget",
        type=_positive_float,
        default=None,
        help="seconds the search may take, counted as Spark's CPU seconds per core in local mode "
        "(default: 50x its first trial, at least 180 s)",
    )
    r.add_argument("--no-tuned", action="store_true", help="built-in parameters only (implies --tune off)")
    r.add_argument(
        "--no-mlflow", action="store_true", help="do not track the run in MLflow even if installed"
    )
    r.add_argument(
        "--reports",
        default=None,
        help="folder for the evaluation report (default: _reports/ in a local lakehouse)",
    )
    spark_opts(r)
    model_opts(r)
    split_opts(r)
    ranker_opts(r)
    diversity_opts(r)
    series_opts(r)
    r.set_defaults(func=cmd_run)
    tr = sub.add_parser(
        "train",
        help=(
            "fit the chosen model on all silver interactions (ALS factors, item-CF neighbours or content"
            " vectors; and the predicted stars)"
        ),
    )
    tr.add_argument("--seed", type=int, default=42)
    tr.add_argument("--no-tuned", action="store_true")
    tr.add_argument("--force", action="store_true", help="fit again a model already trained on these inputs")
    spark_opts(tr)
    model_opts(tr)
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "evaluate", help="models side by side with baselines on a per-user holdout; table, Delta rows, report"
    )
    ev.add_argument("--seed", type=int, default=42)
    ev.add_argument("--no-tuned", action="store_true")
    ev.add_argument(
        "--reports",
        default=None,
        help="folder for the evaluation report (default: _reports/ in a local lakehouse)",
    )
    spark_opts(ev)
    model_opts(ev)
    split_opts(ev)
    ev.set_defaults(func=cmd_evaluate)

    rc = sub.add_parser("recommend", help="top-K per user (read books excluded) from a trained model")
    rc.add_argument("--k", type=_positive_int, default=10)
    rc.add_argument("--users", default=None, help="comma-separated source user ids (default: all users)")
    rc.add_argument("--run-id", default=None, help="model run (default: the latest trained)")
    spark_opts(rc)
    rc.set_defaults(func=cmd_recommend)

    si = sub.add_parser("similar", help="top-K similar books (cosine on item factors)")
    si.add_argument("--k", type=_positive_int, default=20)
    si.add_argument(
        "--min-readers", type=_positive_int, default=5, help="only books with at least this many readers"
    )
    si.add_argument("--run-id", default=None)
    spark_opts(si)
    si.set_defaults(func=cmd_similar)

    pb = sub.add_parser(
        "publish", help="gold tables from a trained model: recommendations, similar, popular; check, publish"
    )
    pb.add_argument("--k", type=_positive_int, default=10, help="recommendations per user")
    pb.add_argument("--run-id", default=None, help="model run (default: the latest trained)")
    pb.add_argument(
        "--force", action="store_true", help="publish even when the lists shrink past --max-shrink"
    )
    guard_opts(pb, "new published lists")
    retention_opts(pb)
    diversity_opts(pb)
    series_opts(pb)
    spark_opts(pb)
    # no model options, no --seed or --no-tuned: a trained model is published as it was trained (its family,
    # parameters, seed and item level; pipeline.as_trained), so `publish --model als` of a ranker model would be
    # ignored: argparse refuses it
    pb.set_defaults(func=cmd_publish)

    t = sub.add_parser(
        "tune", help="search ALS parameters (quasi-random + successive halving) on a validation split"
    )
    t.add_argument(
        "--configs", "--trials", dest="configs", type=_positive_int, default=18, help="configurations"
    )
    t.add_argument(
        "--budget",
        type=_positive_float,
        default=None,
        help="seconds, CPU per core in local mode (default: automatic)",
    )
    t.add_argument("--k", type=_positive_int, default=10)
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--no-mlflow", action="store_true")
    spark_opts(t)
    model_opts(t)
    split_opts(t)
    ranker_opts(t)
    t.set_defaults(func=cmd_tune)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    model, models = getattr(args, "model", "auto"), getattr(args, "models", None)
    if models and model not in ("auto", "popularity", "ranker", *models):
        parser.error(f"--model {model} is not among --models {','.join(models)}")
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return code


def exit_code(exc: Exception) -> int | None:
    """The documented exit code of a known failure (README "The CLI"), None for an unexpected one (traceback):
    2 bad input (ingest refused it, the books lack the metadata the chosen model needs, a temporal split has
    no dates, or the ranker's extra is not installed), 3 a gold check failed (nothing published), 4 a model or
    run asked for does not exist yet."""
    from recspark.content import NoMetadata
    from recspark.ingest import IngestError
    from recspark.pipeline import NotFound
    from recspark.publish import PublishCheckError
    from recspark.ranker import RankerUnavailable
    from recspark.split import NoTimestamps

    if isinstance(exc, IngestError | NoMetadata | NoTimestamps | RankerUnavailable):
        return 2
    if isinstance(exc, PublishCheckError):
        return 3
    if isinstance(exc, NotFound):
        return 4
    return None


if __name__ == "__main__":
    sys.exit(main())
