"""Where tables live and how they are written.

Tables are addressed by ``(layer, name)``, e.g. ``("silver", "interactions")``. Two layouts:

* **path-based** (default): a Delta table at ``<root>/<layer>/<name>`` (local folder, ``s3://``, ``abfss://``,
  ``dbfs:/`` ...);
* **catalog**: ``<catalog>.<schema>.<layer>_<name>`` (Unity Catalog or the Hive metastore), when
  ``catalog`` is given.

Writes made through a :class:`Lakehouse` are recorded, so that :meth:`Lakehouse.rollback_on_error` can put every
table a failed step touched back to the version it had before (Delta ``RESTORE``), or remove it when it was new.
Delta gives atomic commits per table; this gives "nothing partial" across the tables of one step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from recspark.columns import BRONZE, GOLD, META, MODEL, RUN_ID, SILVER  # noqa: F401 -- layers re-exported

log = logging.getLogger(__name__)

SESSION_CATALOG = "spark_catalog"

WARN_SHRINK = 0.5  # a new table version with less than half the rows of the one it replaces is logged


def hadoop_path(spark: SparkSession, location: str):
    """``(file system, path)`` of ``location`` through Hadoop (any scheme Spark reads: local, s3a, abfss, dbfs)."""
    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(location)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


@dataclass(frozen=True)
class ShrinkGuard:
    """How far a new silver table, or a new published run's gold lists, may shrink against what it replaces.

    An empty table is always refused; ``max_shrink`` (a share in [0, 1), None: no limit) refuses any larger
    shrink, and a shrink above :data:`WARN_SHRINK` is logged either way. ``force`` accepts everything (the
    warning is still logged)."""

    max_shrink: float | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if self.max_shrink is not None and not 0 <= self.max_shrink < 1:
            raise ValueError(f"max_shrink must be a share in [0, 1), not {self.max_shrink}")

    def problem(self, what: str, old_rows: int | None, new_rows: int) -> str | None:
        """Why ``what`` may not go from ``old_rows`` (None: nothing before) to ``new_rows``; None if it may."""
        shrink = 1 - new_rows / old_rows if old_rows else 0.0
        if shrink > WARN_SHRINK:
            log.warning(
                "%s shrinks from %s to %s rows (-%.0f%%)",
                what,
                f"{old_rows:,}",
                f"{new_rows:,}",
                100 * shrink,
            )
        if self.force:
            return None
        if new_rows == 0:
            kept = f"; the current version keeps its {old_rows:,} rows" if old_rows else ""
            return f"{what} would be empty{kept}"
        if self.max_shrink is not None and shrink > self.max_shrink:
            return (
                f"{what} would shrink from {old_rows:,} to {new_rows:,} rows (-{100 * shrink:.1f}%, more than "
                f"--max-shrink {self.max_shrink:g})"
            )
        return None


@dataclass
class Lakehouse:
    spark: SparkSession
    root: str
    catalog: str | None = None
    schema: str | None = None
    _touched: dict[tuple[str, str], int | None] | None = field(default=None, repr=False)

    # -- addressing -------------------------------------------------------------------------------------
    def path(self, layer: str, name: str) -> str:
        return f"{self.root.rstrip('/')}/{layer}/{name}"

    def identifier(self, layer: str, name: str) -> str:
        """SQL identifier of a table: ``delta.`path``` or ``catalog.schema.layer_name``.

        In Spark's own session catalog (``spark_catalog``: the Hive metastore or the in-memory catalog) the
        name is ``schema.layer_name``; Delta's table builder does not parse three parts there.
        """
        if self.catalog:
            return self._in_catalog(f"{self.schema or 'recspark'}.{layer}_{name}")
        return f"delta.`{self.path(layer, name)}`"

    def _in_catalog(self, name: str) -> str:
        """``name`` qualified by the catalog (not in the session catalog; see :meth:`identifier`)."""
        return name if self.catalog == SESSION_CATALOG else f"{self.catalog}.{name}"

    def ensure_schema(self) -> None:
        """Create ``catalog.schema`` when tables live in a catalog (path tables need nothing)."""
        if self.catalog:
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self._in_catalog(self.schema or 'recspark')}")

    def exists(self, layer: str, name: str) -> bool:
        if self.catalog:
            return self.spark.catalog.tableExists(self.identifier(layer, name))
        return DeltaTable.isDeltaTable(self.spark, self.path(layer, name))

    def delta(self, layer: str, name: str) -> DeltaTable:
        if self.catalog:
            return DeltaTable.forName(self.spark, self.identifier(layer, name))
        return DeltaTable.forPath(self.spark, self.path(layer, name))

    def read(self, layer: str, name: str, version: int | None = None) -> DataFrame:
        if self.catalog:
            if version is not None:
                return self.spark.sql(f"SELECT * FROM {self.identifier(layer, name)} VERSION AS OF {version}")
            return self.spark.table(self.identifier(layer, name))
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.path(layer, name))

    def version(self, layer: str, name: str) -> int | None:
        """Latest committed version, or None when the table does not exist."""
        if not self.exists(layer, name):
            return None
        return int(self.delta(layer, name).history(1).select("version").first()[0])

    def rows_written(self, layer: str, name: str) -> int:
        """Rows the latest commit of a table wrote (its ``numOutputRows``; a count when the commit has none, e.g.
        with Delta's history metrics off). A second or more cheaper than counting the table on small data: the
        fixed cost of a Spark job over a Delta snapshot, instead of a read of the last commit's metrics."""
        last = self.delta(layer, name).history(1).select("operationMetrics").first()
        metrics = (last["operationMetrics"] or {}) if last else {}
        if "numOutputRows" in metrics:
            return int(metrics["numOutputRows"])
        return self.read(layer, name).count()

    # -- writing ----------------------------------------------------------------------------------------
    def write(
        self,
        df: DataFrame,
        layer: str,
        name: str,
        mode: str = "overwrite",
        partition_by: list[str] | None = None,
        properties: dict[str, str] | None = None,
        keep_schema: bool = False,
        options: dict[str, str] | None = None,
    ) -> None:
        """Write ``df`` as a Delta table (overwrite replaces the data, and the schema unless ``keep_schema``);
        ``options`` are Delta writer options (e.g. ``mergeSchema`` for an append that adds columns)."""
        self._remember(layer, name)
        writer = df.write.format("delta").mode(mode).options(**(options or {}))
        if mode == "overwrite" and not keep_schema:
            writer = writer.option("overwriteSchema", "true")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if self.catalog:
            writer.saveAsTable(self.identifier(layer, name))
        else:
            writer.save(self.path(layer, name))
        if properties:
            props = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
            self.spark.sql(f"ALTER TABLE {self.identifier(layer, name)} SET TBLPROPERTIES ({props})")

    def replace_run(
        self, df: DataFrame, layer: str, name: str, run_id: str, properties: dict[str, str] | None = None
    ) -> None:
        """Replace the rows of one run in a table partitioned by ``run_id`` (created when missing).

        ``df`` carries the ``run_id`` column; a rerun with the same run id replaces its own rows instead of
        adding duplicates.
        """
        if not self.exists(layer, name):
            self.write(df, layer, name, partition_by=[RUN_ID], properties=properties)
            return
        self._remember(layer, name)
        writer = (
            df.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", f"run_id = '{run_id}'")
            .option(
                "mergeSchema", "true"
            )  # a column added since the table was created (e.g. similar_books.method)
        )
        if self.catalog:
            writer.saveAsTable(self.identifier(layer, name))
        else:
            writer.save(self.path(layer, name))

    def ensure_table(
        self, layer: str, name: str, schema: StructType, not_null: list[str], checks: dict[str, str]
    ) -> None:
        """Create the table with NOT NULL columns and named CHECK constraints when it does not exist yet.

        Delta cannot make an existing column NOT NULL, so the contract is laid down at creation; later writes
        use ``keep_schema=True`` and Delta enforces both kinds of constraint on every write. A new table gets
        its CHECK constraints in its first commit (Delta keeps them as ``delta.constraints.<name>`` table
        properties); an existing table gets each one it lacks with ``ALTER TABLE ADD CONSTRAINT``, one commit
        per constraint, which Delta checks against the rows already there.
        """
        if not self.exists(layer, name):
            self._remember(layer, name)
            builder = DeltaTable.createIfNotExists(self.spark)
            builder = (
                builder.tableName(self.identifier(layer, name))
                if self.catalog
                else builder.location(self.path(layer, name))
            )
            for f in schema.fields:
                builder = builder.addColumn(f.name, f.dataType, nullable=f.name not in not_null)
            for cname, expr in checks.items():
                builder = builder.property(f"delta.constraints.{cname.lower()}", expr)
            builder.execute()
        existing = self.constraints(layer, name)
        for cname, expr in checks.items():
            if cname.lower() not in existing:
                self.spark.sql(
                    f"ALTER TABLE {self.identifier(layer, name)} ADD CONSTRAINT {cname} CHECK ({expr})"
                )

    def constraints(self, layer: str, name: str) -> dict[str, str]:
        rows = self.spark.sql(f"SHOW TBLPROPERTIES {self.identifier(layer, name)}").collect()
        return {
            r["key"].removeprefix("delta.constraints."): r["value"]
            for r in rows
            if r["key"].startswith("delta.constraints.")
        }

    # -- all-or-nothing steps ---------------------------------------------------------------------------
    def _remember(self, layer: str, name: str) -> None:
        if self._touched is not None and (layer, name) not in self._touched:
            self._touched[(layer, name)] = self.version(layer, name)

    @contextmanager
    def rollback_on_error(self) -> Iterator[None]:
        """Undo every table write made inside the block when the block raises."""
        outer = self._touched
        self._touched = {}
        try:
            yield
        except BaseException:
            for (layer, name), before in reversed(list(self._touched.items())):
                try:
                    self._undo(layer, name, before)
                except Exception:  # keep undoing the others; report
                    log.exception("could not roll back %s.%s", layer, name)
            raise
        finally:
            self._touched = outer

    def _undo(self, layer: str, name: str, before: int | None) -> None:
        now = self.version(layer, name)
        if now is None or now == before:
            return
        if before is None:
            log.warning("rolling back: removing %s.%s (created by the failed step)", layer, name)
            self.drop(layer, name)
        else:
            log.warning("rolling back: restoring %s.%s to version %d", layer, name, before)
            self.spark.sql(f"RESTORE TABLE {self.identifier(layer, name)} TO VERSION AS OF {before}")

    def drop(self, layer: str, name: str) -> None:
        if self.catalog:
            self.spark.sql(f"DROP TABLE IF EXISTS {self.identifier(layer, name)}")
            return
        fs, path = hadoop_path(self.spark, self.path(layer, name))
        fs.delete(path, True)
