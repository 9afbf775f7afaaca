"""The CLI's documented exit codes: a one-line message, never a traceback, for each known failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from recspark import cli
from recspark.content import NoMetadata
from recspark.ingest import IngestError
from recspark.pipeline import NotFound
from recspark.publish import PublishCheckError


@pytest.mark.parametrize(
    "exc, code",
    [
        (IngestError("bad header"), 2),
        (NoMetadata("no metadata"), 2),
        (PublishCheckError("3 users do not have exactly 10 distinct books"), 3),
        (NotFound("run `recspark train` first"), 4),
        (KeyError("a bug"), None),  # an unexpected error keeps its traceback
        (RuntimeError("a bug"), None),
    ],
)
def test_exit_codes(exc, code):
    assert cli.exit_code(exc) == code


def test_publish_without_a_trained_model_exits_4_with_one_line(spark, tmp_path, capsys):
    assert cli.main(["publish", "--lakehouse", str(tmp_path / "empty")]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: no trained model in {tmp_path / 'empty'}: run `recspark train` first"]


def test_model_outside_models_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--models", "als", "--model", "itemcf"])
    assert exit_info.value.code == 2 and "--model itemcf is not among --models als" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--models", "als,knn"])
    assert "comma-separated list of als, itemcf" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "--scale", "-1"], "must be positive"),
        (["generate", "--scale", "abc"], "is not a number"),
        (["run", "--k", "0"], "must be at least 1"),
        (["recommend", "--k", "-3"], "must be at least 1"),
        (["similar", "--min-readers", "0"], "must be at least 1"),
        (["publish", "--keep-runs", "0"], "must be at least 1"),
        # publish publishes the trained model as it was trained: a family or level asked of it was once ignored
        (["publish", "--model", "als"], "unrecognized arguments: --model als"),
        (["publish", "--item-level", "work"], "unrecognized arguments: --item-level work"),
        (["publish", "--seed", "7"], "unrecognized arguments: --seed 7"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing created (generate used to leave an empty folder)


def test_a_lakehouse_that_is_a_file_is_refused(tmp_path, capsys):
    not_a_folder = tmp_path / "lake.txt"
    not_a_folder.write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--lakehouse", str(not_a_folder)])
    assert exit_info.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err


def test_the_report_goes_into_the_lakehouse_named_unless_told_otherwise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parse = cli.build_parser().parse_args
    for verb in ("run", "evaluate"):
        assert cli.reports_dir(parse([verb, "--lakehouse", "lakes/a"])) == tmp_path / "lakes/a/_reports"
        assert cli.reports_dir(parse([verb])) == tmp_path / "data/lakehouse/_reports"  # make run's default
        assert cli.reports_dir(parse([verb, "--reports", "elsewhere"])) == Path("elsewhere")
        remote = parse([verb, "--lakehouse", "s3://bucket/lake"])
        assert cli.reports_dir(remote) == Path("data/reports")  # a local file, not written to the bucket


def test_keep_runs_reaches_the_run_configuration_and_no_key(tmp_path):
    from recspark.config import RunConfig
    from recspark.pipeline import model_run_id, publication_id

    args = cli.build_parser().parse_args(["run", "--keep-runs", "2", "--lakehouse", str(tmp_path / "lake")])
    cfg = cli._cfg(args, None, use_tuned=False)
    assert cfg.keep_runs == 2
    default = RunConfig()
    assert model_run_id({}, cfg) == model_run_id({}, default)
    assert publication_id("model-x", cfg) == publication_id("model-x", default)


def test_series_order_forces_the_series_rule_over_the_search_and_is_another_publication(
    tmp_path, monkeypatch
):
    """--series-order auto follows a stored search that switched the rule off; on and off override it, for run
    and publish alike; the same model published with and without the rule are two publications."""
    from recspark import config
    from recspark.pipeline import model_run_id, publication_id

    monkeypatch.setattr(config.tune, "stored", lambda lake: {"model": "itemcf", "series": {"kept": False}})
    lake = object()  # make_config only hands it to tune.stored (patched)
    parse = cli.build_parser().parse_args
    for verb in ("run", "publish"):
        got = {
            choice: cli._cfg(parse([verb, "--series-order", choice]), lake).series_order
            for choice in ("auto", "on", "off")
        }
        assert got == {"auto": False, "on": True, "off": False}
        assert cli._cfg(parse([verb]), lake).series_order is False
    with pytest.raises(SystemExit):
        parse(["run", "--series-order", "sometimes"])
    with pytest.raises(ValueError, match="series order"):
        config.make_config(None, series_order="sometimes")
    on, off = (cli._cfg(parse(["run", "--series-order", c]), lake) for c in ("on", "off"))
    assert publication_id("model-x", on) != publication_id("model-x", off)
    assert model_run_id({}, on) == model_run_id({}, off)


def test_a_new_gold_format_publishes_the_same_model_again(monkeypatch):
    """The same trained model and list shape under a newer gold format is another publication (a run published
    by an older version is published again, not served as it is); the model's key does not move."""
    from recspark import pipeline
    from recspark.config import RunConfig

    cfg = RunConfig()
    before = pipeline.publication_id("model-x", cfg), pipeline.model_run_id({}, cfg)
    monkeypatch.setattr(pipeline, "GOLD_FORMAT", pipeline.GOLD_FORMAT + 1)
    after = pipeline.publication_id("model-x", cfg), pipeline.model_run_id({}, cfg)
    assert after[0] != before[0] and after[1] == before[1]


def test_the_summary_describes_item_cf():
    from recspark.itemcf import SHELF_WEIGHTS, ItemCfParams

    said = {how: ItemCfParams(shelf_weights=how).describe() for how in SHELF_WEIGHTS}
    plain = "cosine similarity, 100 neighbours per book"
    assert said == {
        "binary": plain,
        "stars": f"{plain}, shelves weighted: a rated shelf weighs rating / 5",
        "read": f"{plain}, shelves weighted: an unread shelf weighs 0.5",
        "read+stars": f"{plain}, shelves weighted: an unread shelf weighs 0.5 and a rated shelf weighs rating / 5",
    }
    ease = ItemCfParams(
        similarity="ease", neighbours=400, ease_l2=8.0, popularity_weight=0.3, half_life_days=90
    )
    assert ease.describe() == (
        "EASE weights (l2 8), 400 per book at most, popularity prior 0.3, "
        "shelves decayed with a half-life of 90 days"
    )
