"""What the Databricks notebooks (``notebooks/*.py``) share: their common widgets, opening the lakehouse, and
turning the model widgets into a :class:`~recspark.config.RunConfig`.

``dbutils`` is the notebook's own object (on Databricks) or any stand-in with the same ``widgets`` methods
(``text``, ``dropdown``, ``get``), as in ``tests/test_notebooks.py``. The SparkSession is the notebook's
``spark``; nothing here creates one.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import SparkSession

from recspark import columns as C
from recspark import config, tune
from recspark.spark import get_spark
from recspark.tables import Lakehouse

log = logging.getLogger(__name__)

# (name, default, label)
COMMON_WIDGETS = (
    ("lakehouse", "/Volumes/main/recspark/lakehouse", "Lakehouse folder (path tables, checkpoints, reports)"),
    ("catalog", "", "Catalog for tables catalog.schema.layer_name (empty: Delta paths under the lakehouse)"),
    ("schema", "recspark", "Schema (with a catalog)"),
)
MODEL_WIDGETS = (
    ("k", "10", "Recommendations per user"),
    ("seed", "42", "Seed"),
    ("rank", "", "ALS rank (empty: tuned or default)"),
    ("reg", "", "ALS regParam (empty: tuned or default)"),
    ("alpha", "", "ALS alpha (empty: tuned or default)"),
    ("iterations", "", "ALS iterations (empty: default)"),
    ("scheme", "", "Confidence scheme log|bm25|linear (empty: tuned or default)"),
    ("item_level", "", "Train on edition|work (empty: default)"),
    ("models", "", "Families to train and evaluate, e.g. als,itemcf (empty: als,itemcf,content)"),
)


def define_widgets(dbutils: Any, widgets: tuple[tuple[str, str, str], ...]) -> None:
    for name, default, label in widgets:
        dbutils.widgets.text(name, default, label)


def define_common_widgets(dbutils: Any) -> None:
    """``lakehouse``, ``catalog``, ``schema``: where the tables are."""
    define_widgets(dbutils, COMMON_WIDGETS)


def define_model_widgets(dbutils: Any) -> None:
    """``k``, ``seed`` and the ALS parameters (empty = the tuned or default value), plus ``use_tuned``."""
    define_widgets(dbutils, MODEL_WIDGETS)
    dbutils.widgets.dropdown("use_tuned", "true", ["true", "false"], "Use `tune`'s best parameters")


def open_lakehouse(spark: SparkSession, dbutils: Any) -> Lakehouse:
    """The lakehouse the widgets name; sets the checkpoint directory (ALS needs one) under it."""
    root = dbutils.widgets.get("lakehouse").rstrip("/")
    if not root:
        raise ValueError("the `lakehouse` widget is empty: give a folder (also used for checkpoints)")
    get_spark(checkpoint_dir=f"{root}/_checkpoints")
    lake = Lakehouse(
        spark,
        root,
        catalog=dbutils.widgets.get("catalog") or None,
        schema=dbutils.widgets.get("schema") or None,
    )
    lake.ensure_schema()
    log.info("tables: %s", lake.identifier(C.SILVER, "interactions"))
    return lake


def _number(dbutils: Any, name: str, kind: type) -> Any:
    raw = dbutils.widgets.get(name).strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"widget `{name}`: {raw!r} is not a {kind.__name__}") from None


def parse(dbutils: Any, name: str, kind: type) -> Any:
    """A required number widget: a clear error when it is empty or not a number (never a silent default)."""
    value = _number(dbutils, name, kind)
    if value is None:
        raise ValueError(f"widget `{name}` is empty: give a {kind.__name__}")
    return value


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def tune_options(dbutils: Any) -> config.TuneOptions:
    """The ``tune`` and ``tune_budget`` widgets; off when ``use_tuned`` is false or an ALS parameter is given."""
    explicit = any(dbutils.widgets.get(n).strip() for n in ("rank", "reg", "alpha", "scheme"))
    mode = dbutils.widgets.get("tune")
    if explicit or dbutils.widgets.get("use_tuned") != "true":
        mode = "off"
    return config.TuneOptions(mode=mode, budget_s=_number(dbutils, "tune_budget", float))


def run_config(dbutils: Any, lake: Lakehouse, evaluate: bool = True) -> config.RunConfig:
    """Defaults, then ``tune``'s best parameters (when ``use_tuned``), then any non-empty model widget."""
    return config.make_config(
        lake,
        k=_or(_number(dbutils, "k", int), 10),
        seed=_or(_number(dbutils, "seed", int), 42),
        evaluate=evaluate,
        use_tuned=dbutils.widgets.get("use_tuned") == "true",
        rank=_number(dbutils, "rank", int),
        reg=_number(dbutils, "reg", float),
        alpha=_number(dbutils, "alpha", float),
        max_iter=_number(dbutils, "iterations", int),
        scheme=dbutils.widgets.get("scheme").strip() or None,
        item_level=dbutils.widgets.get("item_level").strip() or None,
        models=_families(dbutils),
    )


def _families(dbutils: Any) -> tuple[str, ...] | None:
    """The ``models`` widget (``--models`` of the CLI): None when empty; a clear error for an unknown family."""
    text = dbutils.widgets.get("models")
    if not text.strip():
        return None
    try:
        return tune.trained_families(text)
    except ValueError as exc:
        raise ValueError(f"widget `models`: {exc}") from None
