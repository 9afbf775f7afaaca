"""The CLI's documented exit codes: a one-line message, never a traceback, for each known failure."""

from __future__ import annotations

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
