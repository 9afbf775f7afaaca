"""Bronze: raw files -> bronze Delta tables (typed copies with lineage) + a quarantine table for every bad record.

For each source file described by a :class:`~recspark.sources.spec.FileSpec`:

1. the file is read as text (one record per line; gzip is decompressed by Spark; a gzip file is unsplittable, so
   its lines are repartitioned right after the read so later stages use every core);
2. each line is parsed with an explicit schema (``from_csv`` / ``from_json`` in PERMISSIVE mode, keeping the
   corrupt text), then converted to the bronze types once per line (the checks read the converted columns);
3. a line gets a ``reason`` when it is empty, malformed JSON, not a JSON object, has the wrong number of CSV
   fields, a value of the wrong type, a missing required field or a value out of range; those lines go to
   ``bronze.quarantine`` with the source file and the raw text;
4. valid rows are de-duplicated on the spec's key (keeping the row with the largest ``prefer`` columns, then the
   smallest content, so the choice is deterministic). The duplicated keys are found first from the key columns
   alone, so a file without duplicates (the usual case) is never shuffled row by row (:func:`dedupe`). The
   parsed lines are cached once for the counts, the duplicate keys and the write (uncompressed, and without the
   raw text of valid lines, which nothing reads: the quarantine keeps only rejected lines' text);
5. counts per file are checked and stored: ``read = ingested + quarantined + duplicates``.

Stops with :class:`IngestError` and commits nothing (tables written by the failed run are rolled back) when a
required file is missing, a CSV header lacks a required column (columns are matched by name, in any order; an
optional column it lacks is read as empty, with a warning), or a gzip stream is truncated or corrupt.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import math
import time
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recspark import columns as C
from recspark.frames import union_all
from recspark.sources.spec import STRING, UCSD_DATE_PATTERN, Field, FileSpec, SourceFiles
from recspark.spark import session_conf
from recspark.tables import BRONZE, Lakehouse, hadoop_path

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"
QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField(C.INGEST_RUN_ID, STRING, False),
        T.StructField(C.STAGE, STRING, False),
        T.StructField(C.SOURCE_FILE, STRING, False),
        T.StructField(C.RAW, STRING, True),
        T.StructField(C.REASON, STRING, False),
        T.StructField(C.INGESTED_AT, T.TimestampType(), False),
    ]
)
_REASON = "_reason"
_RAW = "_raw"
_VARIANT = "_v"
_PARSED = "_p"
# bronze tables are read whole (by the silver build), never filtered, so Delta's per-column min/max statistics would
# go unused; they cost a third of the write of the dedup JSON (long string ids). numRecords is still kept.
BRONZE_TABLE_OPTIONS = {"delta.dataSkippingNumIndexedCols": "0"}
# the parsed lines are cached once and read three times (counts, duplicate keys, the write): encoding the cache
# compressed costs more than it saves here (scale-0.01 dedup JSON: parse and cache 9.5 s instead of 12.0 s)
UNCOMPRESSED_CACHE = {"spark.sql.inMemoryColumnarStorage.compressed": "false"}
GZ_BYTES_PER_PARTITION = 32 << 20  # compressed bytes per partition after a gzip read (~150 MB of text)


class IngestError(RuntimeError):
    """Input that stops the run: nothing is committed."""


@dataclass(frozen=True)
class FileCounts:
    table: str
    file: str
    read: int
    ingested: int
    quarantined: int
    duplicates: int
    seconds: float = 0.0  # wall time to parse, count and write this file (or the silver build)

    def __post_init__(self) -> None:
        if self.read != self.ingested + self.quarantined + self.duplicates:
            raise AssertionError(f"counts do not add up for {self.file}: {self}")


# -- finding files ------------------------------------------------------------------------------------------
def list_dir(spark: SparkSession, directory: str) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of the files in ``directory`` (any Hadoop file system: local, s3a, abfss, dbfs)."""
    fs, path = hadoop_path(spark, directory)
    if not fs.exists(path):
        raise IngestError(f"source directory not found: {directory}")
    return sorted(
        (st.getPath().toString(), int(st.getLen()), int(st.getModificationTime()))
        for st in fs.listStatus(path)
        if st.isFile()
    )


def discover(spark: SparkSession, directory: str, specs: tuple[FileSpec, ...]) -> SourceFiles:
    """Match the files of ``directory`` to specs (first matching spec wins for each file)."""
    found = SourceFiles()
    claimed: set[str] = set()
    for spec in specs:
        for path, size, mtime in list_dir(spark, directory):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if path not in claimed and any(fnmatch.fnmatchcase(name, p) for p in spec.patterns):
                found.files.setdefault(spec.table, []).append((path, size, mtime))
                claimed.add(path)
    return found


# -- parsing ------------------------------------------------------------------------------------------------
def read_lines(spark: SparkSession, path: str, size: int) -> DataFrame:
    """The file's lines as ``_raw``; gzip input is repartitioned (it arrives as one partition)."""
    df = spark.read.text(path).select(F.col("value").alias(_RAW))
    if path.endswith(".gz"):
        cores = max(1, spark.sparkContext.defaultParallelism)
        # a whole number of waves: 5 equal tasks on 2 cores take 3 rounds with one core idle in the last
        parts = math.ceil(max(cores, math.ceil(size / GZ_BYTES_PER_PARTITION)) / cores) * cores
        # by a hash of the line, not round robin: round robin sorts every line in the one reading task first
        # (so that a retried task deals the same lines to the same partitions); a hash is just as deterministic
        # and needs no sort (the read + repartition of the scale-0.01 dedup JSON: 4.7 s instead of 6.7 s)
        df = df.repartition(parts, F.xxhash64(_RAW))
    return df


def first_line(spark: SparkSession, path: str) -> str | None:
    row = spark.read.text(path).limit(1).collect()
    return row[0][0] if row else None


@dataclass(frozen=True)
class CsvHeader:
    """A CSV file's first line and what each of its columns is: the spec field of that name, or ``None`` for a
    column the spec does not know (parsed, then dropped)."""

    line: str
    fields: tuple[str | None, ...]
    absent: tuple[str, ...] = ()  # optional spec fields the file lacks: read as empty (null) on every line

    @property
    def ignored(self) -> list[int]:
        return [i for i, f in enumerate(self.fields) if f is None]


def _column_name(text: str) -> str:
    """A header cell as a name: surrounding whitespace and quotes removed, lower case."""
    return text.strip().strip('"').strip().lower()


def read_header(line: str, spec: FileSpec, path: str) -> CsvHeader:
    """Map a CSV header onto the spec's fields by name. The columns may come in any order (goodbooks-10k's first
    release wrote ``book_id,user_id,rating``) and may be quoted; a column the spec does not know is ignored with a
    warning. A header without one of the spec's *required* columns, or naming a column twice, raises
    :class:`IngestError`: mapping such a file by position would silently mix columns up. An optional column the
    file lacks (a ``books.csv`` cut down to ids, titles and authors) is read as empty on every line, with a
    warning."""
    expected = spec.header or ()
    got = [_column_name(c) for c in line.lstrip("\ufeff").rstrip("\r").split(",")]
    wanted = {name.lower(): name for name in expected}
    required = {f.name for f in spec.fields if f.required}
    missing = [name for name in expected if name.lower() not in got]
    twice = sorted({c for c in got if c in wanted and got.count(c) > 1})
    if twice or any(name in required for name in missing):
        problem = (
            f"the column(s) {', '.join(twice)} appear twice"
            if twice
            else f"missing {', '.join(n for n in missing if n in required)}"
        )
        raise IngestError(
            f"{path}: CSV header does not match ({problem}).\n  expected: {','.join(expected)}\n  found:    {line}\n"
            f"Columns are matched by name (in any order); each must appear at most once, and these must be there: "
            f"{', '.join(n for n in expected if n in required)}."
        )
    header = CsvHeader(line, tuple(wanted.get(c) for c in got), tuple(missing))
    if header.absent:
        log.warning(
            "%s: no column(s) %s (optional in the %s format): read as empty",
            path,
            ", ".join(header.absent),
            spec.table,
        )
    if header.ignored:
        log.warning(
            "%s: ignoring column(s) %s (not part of the %s format)",
            path,
            ", ".join(got[i] or f"#{i + 1}" for i in header.ignored),
            spec.table,
        )
    if tuple(f for f in header.fields if f is not None) != tuple(n for n in expected if n not in missing):
        log.info("%s: columns in the order %s (matched by name)", path, ",".join(got))
    return header


def check_header(spark: SparkSession, path: str, spec: FileSpec) -> CsvHeader:
    """A CSV file's header, matched to the spec's fields by name (:func:`read_header`); raises IngestError when
    the file is empty or lacks an expected column."""
    line = first_line(spark, path)
    if line is None:
        raise IngestError(f"{path}: the file is empty (expected the header {','.join(spec.header or ())})")
    return read_header(line, spec, path)


def _present(field: Field) -> Column:
    """The JSON key exists with a non-null value (looked up in the variant parse of the line)."""
    v = F.expr(f"variant_get({_VARIANT}, '$.{field.name}')")
    return v.isNotNull() & ~F.expr(f"is_variant_null(variant_get({_VARIANT}, '$.{field.name}'))")


def _typed(field: Field, spec: FileSpec, done: Column | None = None) -> tuple[Column, Column | None]:
    """(typed value, condition under which the raw value is of the wrong type). ``done``: the column that already
    holds the typed value; the condition then reads it instead of converting the raw value again (a date parse
    costs as much as the JSON parse of the whole line)."""
    raw = F.col(f"{_PARSED}.{field.name}")
    target = spec.target_type(field)
    if field.date:
        text = F.trim(raw)
        value = F.when(text == "", F.lit(None)).otherwise(
            F.expr(f"try_to_timestamp(substring(trim({_PARSED}.{field.name}), 5), '{UCSD_DATE_PATTERN}')")
        )
        return value.cast(target), (text != "") & (value if done is None else done).isNull()
    if isinstance(field.source, T.StringType) and not isinstance(target, T.StringType):
        text = F.trim(raw)
        converted = text.try_cast(target)
        if isinstance(target, (T.IntegerType, T.LongType)):
            # an integer written as a whole decimal ("4.0", "1e3": how pandas writes a column that once held a
            # NaN) is that integer; a fraction ("4.5") stays the wrong type. Tried only where the plain cast fails
            exact = text.try_cast(T.DecimalType(38, 10))
            converted = F.coalesce(converted, F.when(exact == F.floor(exact), exact.try_cast(target)))
        value = F.when(text == "", F.lit(None)).otherwise(converted)
        return value, (text != "") & (value if done is None else done).isNull()
    if field.source != target:
        value = raw.try_cast(target)
        return value, raw.isNotNull() & (value if done is None else done).isNull()
    return raw, None


def _reasons(
    spec: FileSpec,
    typed: dict[str, tuple[Column, Column | None]],
    first: list[Column] | None = None,
    n_fields: int | None = None,
) -> Column:
    """Why a line is rejected ('; '-joined, the ``first`` checks first), or null when it is valid. ``n_fields``:
    how many fields a CSV line must have (the spec's, unless the file has columns the spec ignores)."""
    checks: list[Column] = [*(first or []), F.when(F.trim(F.col(_RAW)) == "", F.lit("empty line"))]
    if spec.kind == "csv":
        checks.append(
            F.when(
                F.col(f"{_PARSED}.{C.CORRUPT}").isNotNull(),
                F.lit(f"wrong number of fields (expected {n_fields or len(spec.fields)})"),
            )
        )
        structural = F.col(f"{_PARSED}.{C.CORRUPT}").isNotNull()
    else:
        # the variant parse only runs for lines from_json rejected (see parse), to tell why
        corrupt = F.col(f"{_PARSED}.{C.CORRUPT}").isNotNull()
        variant_ok = F.col(_VARIANT).isNotNull()
        is_object = F.expr(f"substring(schema_of_variant({_VARIANT}), 1, 6)") == "OBJECT"
        checks.append(F.when((F.trim(F.col(_RAW)) != "") & corrupt & ~variant_ok, F.lit("malformed JSON")))
        checks.append(F.when(corrupt & variant_ok & ~is_object, F.lit("not a JSON object")))
        structural = corrupt & (~variant_ok | ~is_object)
        for f in spec.fields:  # JSON type mismatches make from_json null the field
            checks.append(
                F.when(
                    variant_ok & is_object & _present(f) & F.col(f"{_PARSED}.{f.name}").isNull(),
                    F.lit(f"{f.name}: wrong JSON type (expected {f.source.simpleString()})"),
                )
            )
    for f in spec.fields:
        value, wrong = typed[f.name]
        raw = F.col(f"{_PARSED}.{f.name}")
        if f.required:
            missing = (
                raw.isNull() | (F.trim(raw.cast("string")) == "")
                if isinstance(f.source, T.StringType)
                else raw.isNull()
            )
            checks.append(F.when(~structural & missing, F.lit(f"missing required field {f.name}")))
        if wrong is not None:
            checks.append(
                F.when(
                    wrong,
                    F.concat(
                        F.lit(f"{f.name}: not a {spec.target_type(f).simpleString()}: '"),
                        raw.cast("string"),
                        F.lit("'"),
                    ),
                )
            )
        if f.check:
            ok = F.expr(f.check.format(c=f"`{f.name}__typed`"))
            checks.append(
                F.when(
                    value.isNotNull() & ~ok,
                    F.concat(
                        F.lit(f"{f.name} out of range ({f.check.format(c='value')}): "), value.cast("string")
                    ),
                )
            )
    # nullif names the joined text once: `when(joined != "", joined)` would generate the (large, for wide
    # specs) expression twice and push the generated code of wide files past the JVM's method size limit
    return F.nullif(F.concat_ws("; ", *checks), F.lit(""))


HEADER_AGAIN = "a repeated CSV header line"


def csv_schema(spec: FileSpec, header: CsvHeader | None) -> T.StructType:
    """The schema ``from_csv`` parses a line with: the spec's fields in the file's column order (the spec's own
    order without a header), a column the spec does not know as a string that is dropped after the parse."""
    if header is None:
        return spec.source_schema()
    source = {f.name: f.source for f in spec.fields}
    return T.StructType(
        [
            T.StructField(name, source[name], True) if name else T.StructField(f"_ignored_{i}", STRING, True)
            for i, name in enumerate(header.fields)
        ]
    )


def parse(lines: DataFrame, spec: FileSpec, header: CsvHeader | None = None) -> DataFrame:
    """Lines (``_raw``) -> typed spec fields + ``_raw`` + ``_reason`` (null for valid rows). A CSV ``header``
    gives the column order; lines equal to its text get the reason :data:`HEADER_AGAIN` (the caller drops the
    file's own first one)."""
    fields = csv_schema(spec, header) if spec.kind == "csv" else spec.source_schema()
    schema = T.StructType(list(fields.fields) + [T.StructField(C.CORRUPT, STRING)])
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": C.CORRUPT}
    if spec.kind == "csv":
        # RFC 4180: a quote inside a quoted field is doubled (Spark's default escape is a backslash)
        parsed = F.from_csv(F.col(_RAW), schema.simpleString(), {**options, "escape": '"'})
        for name in header.absent if header is not None else ():  # optional columns the file lacks: empty
            parsed = parsed.withField(name, F.lit(None).cast(spec.source_schema()[name].dataType))
        df = lines.select(F.col(_RAW), parsed.alias(_PARSED))
    else:
        parsed = F.from_json(F.col(_RAW), schema, options)
        df = lines.select(F.col(_RAW), parsed.alias(_PARSED))
        df = df.select(
            "*",
            F.when(F.col(f"{_PARSED}.{C.CORRUPT}").isNotNull(), F.expr(f"try_parse_json({_RAW})")).alias(
                _VARIANT
            ),
        )
    typed = {f.name: _typed(f, spec) for f in spec.fields}
    df = df.select("*", *[value.alias(f"{name}__typed") for name, (value, _) in typed.items()])
    # the checks read the typed columns: each value is converted once per line, not once per check
    done = {f.name: F.col(f"`{f.name}__typed`") for f in spec.fields}
    typed = {f.name: (done[f.name], _typed(f, spec, done[f.name])[1]) for f in spec.fields}
    # a line with bytes that are not UTF-8 is quarantined whole: such bytes would reach silver strings and make
    # the tables unreadable outside Spark (pyarrow/deltalake refuse invalid UTF-8)
    bad_utf8 = F.when(~F.is_valid_utf8(F.col(_RAW)), F.lit("invalid UTF-8"))
    checks = [bad_utf8]
    if spec.kind != "csv":  # {"rating": 3, "rating": 5} parses as 5: which one the source meant is unknown
        keys = F.json_object_keys(F.col(_RAW))
        checks.append(
            F.when(F.size(F.array_distinct(keys)) < F.size(keys), F.lit("duplicate key in the object"))
        )
    reason = _reasons(spec, typed, checks, n_fields=len(fields.fields))
    if header is not None:
        reason = F.when(F.col(_RAW) == header.line, F.lit(HEADER_AGAIN)).otherwise(reason)
    return df.select(
        *[F.col(f"{f.name}__typed").alias(f.name) for f in spec.fields],
        F.col(_RAW),
        reason.alias(_REASON),
    )


DEDUPE_BROADCAST_KEYS = 1_000_000  # duplicated keys up to this many are broadcast; more take the full shuffle


def dedupe(valid: DataFrame, spec: FileSpec, n_valid: int) -> tuple[DataFrame, int]:
    """``(rows, their count)``: one row per key, the largest ``prefer`` values win, then the smallest content
    (deterministic).

    Duplicates are rare in the sources (the UCSD files are deduplicated already), so the keys that occur more
    than once are found first by a shuffle of the key columns only. With none, the rows are kept as they are;
    with a few (up to :data:`DEDUPE_BROADCAST_KEYS`), only the rows of those keys (a broadcast semi-join) go
    through the ranking window; otherwise every row does. The wide rows (raw text included) are never shuffled
    just to find that nothing is duplicated."""
    dup = valid.groupBy(*spec.key).count().where(F.col("count") > 1)
    stats = dup.agg(F.count(F.lit(1)).alias("keys"), F.sum("count").alias("rows")).first()
    n_dup_keys, n_dup_rows = int(stats["keys"]), int(stats["rows"] or 0)
    n_kept = n_valid - n_dup_rows + n_dup_keys  # each duplicated key keeps exactly one of its rows
    if n_dup_keys == 0:
        return valid, n_kept
    # ties: the smallest row content (as JSON, since maps do not sort); rows whose content is equal are written
    # identically, so which of them is kept does not matter
    content = F.to_json(F.struct(*[c for c in valid.columns if c not in (_RAW, _REASON)]))
    order = [F.col(c).desc_nulls_last() for c in spec.prefer] + [content.asc()]
    w = Window.partitionBy(*spec.key).orderBy(*order)
    first = F.row_number().over(w) == 1
    if n_dup_keys > DEDUPE_BROADCAST_KEYS:
        return valid.withColumn("_first", first).where("_first").drop("_first"), n_kept
    keys = F.broadcast(dup.select(*spec.key).localCheckpoint())  # the same keys for both joins below
    single = valid.join(keys, on=list(spec.key), how="left_anti")
    best = valid.join(keys, on=list(spec.key), how="left_semi").withColumn("_first", first)
    return single.unionByName(best.where("_first").drop("_first")), n_kept


def with_lineage(df: DataFrame, path: str, run_id: str, ingested_at: Column) -> DataFrame:
    return df.select(
        "*",
        F.lit(path).alias(C.SOURCE_FILE),
        ingested_at.alias(C.INGESTED_AT),
        F.lit(run_id).alias(C.INGEST_RUN_ID),
    )


def quarantine_rows(bad: DataFrame, path: str, run_id: str, stage: str, ingested_at: Column) -> DataFrame:
    return bad.select(
        F.lit(run_id).alias(C.INGEST_RUN_ID),
        F.lit(stage).alias(C.STAGE),
        F.lit(path).alias(C.SOURCE_FILE),
        F.make_valid_utf8(F.col(_RAW)).alias(
            C.RAW
        ),  # invalid bytes -> U+FFFD: readable by every Delta reader
        F.make_valid_utf8(F.col(_REASON)).alias(C.REASON),  # a reason may quote the bad value
        ingested_at.alias(C.INGESTED_AT),
    )


def _is_corrupt_gzip(exc: BaseException) -> bool:
    text = str(exc)
    return any(
        s in text
        for s in (
            "Unexpected end of input stream",
            "EOFException",
            "Not in GZIP format",
            "invalid block type",
            "invalid distance",
            "incorrect header check",
            "ZLIB input stream",
            "Corrupt GZIP trailer",
        )
    )


def ingest_file(
    spark: SparkSession,
    spec: FileSpec,
    path: str,
    size: int,
    run_id: str,
    ingested_at: Column,
    header: CsvHeader | None = None,
) -> tuple[DataFrame, DataFrame, FileCounts, DataFrame]:
    """Parse one file. Returns (bronze rows, quarantine rows, counts, persisted frame to unpersist later).
    ``header``: a CSV file's header when :func:`check_header` already read it (else it is read here)."""
    lines = read_lines(spark, path, size)
    if spec.kind == "csv" and header is None:
        header = check_header(spark, path, spec)
    parsed = parse(lines, spec, header)
    # the raw text is kept for rejected lines only (the quarantine stores it): a valid line's raw text is the
    # largest column and nothing reads it, so caching it would only cost memory and spill (scale-0.01 dedup
    # JSON: 26.2 s -> 24.5 s)
    parsed = parsed.select(
        *[c for c in parsed.columns if c != _RAW],
        F.when(F.col(_REASON).isNotNull(), F.col(_RAW)).alias(_RAW),
    )
    try:
        with session_conf(spark, UNCOMPRESSED_CACHE):  # the cache is built by this first action
            parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
            row = parsed.agg(
                F.count(F.lit(1)).alias("n"),
                F.count(_REASON).alias("bad"),
                F.count(F.when(F.col(_REASON) == HEADER_AGAIN, 1)).alias("headers"),
            ).first()
    except Exception as exc:  # py4j / Spark errors carry the Java message
        parsed.unpersist()
        if _is_corrupt_gzip(exc):
            raise IngestError(
                f"{path}: the gzip stream is truncated or corrupt; nothing was committed."
            ) from exc
        raise
    valid = parsed.where(F.col(_REASON).isNull())
    own_header = (
        1 if header is not None else 0
    )  # the file's first line: not data, neither read nor quarantined
    n_read, n_bad = int(row["n"]) - own_header, int(row["bad"]) - own_header
    kept, n_kept = dedupe(valid, spec, n_read - n_bad)
    counts = FileCounts(
        table=spec.table,
        file=path,
        read=n_read,
        ingested=n_kept,
        quarantined=n_bad,
        duplicates=n_read - n_bad - n_kept,
    )
    bronze = with_lineage(kept.drop(_RAW, _REASON), path, run_id, ingested_at)
    rejected = parsed.where(F.col(_REASON).isNotNull())
    if header is not None:  # every copy of the header but one is a repeated header line
        again = rejected.where(F.col(_REASON) == HEADER_AGAIN).limit(max(int(row["headers"]) - 1, 0))
        rejected = rejected.where(F.col(_REASON) != HEADER_AGAIN).unionByName(again)
    bad = quarantine_rows(rejected, path, run_id, BRONZE, ingested_at)
    return bronze, bad, counts, parsed


def check_required(found: SourceFiles, fmt: str, directory: str) -> None:
    """Stop early with a clear message when the interactions are not there."""
    if fmt == "goodreads":
        has_csv = found.has("interactions_csv")
        has_maps = found.has("user_id_map") and found.has("book_id_map")
        if has_csv and not has_maps:
            missing = [
                n for n in ("user_id_map.csv", "book_id_map.csv") if not found.has(n.removesuffix(".csv"))
            ]
            raise IngestError(
                f"{directory}: goodreads_interactions.csv needs {' and '.join(missing)} (its ids index those maps)."
            )
        if not has_csv and not found.has("interactions_json"):
            raise IngestError(
                f"{directory}: no interactions found. Expected goodreads_interactions.csv with user_id_map.csv and "
                "book_id_map.csv, or goodreads_interactions_dedup.json.gz (or a genre subset "
                "goodreads_interactions_<genre>.json.gz)."
            )
    elif fmt == "goodbooks":
        if not (found.has("ratings") or found.has("to_read")):
            raise IngestError(f"{directory}: no interactions found. Expected ratings.csv and/or to_read.csv.")
        if not found.has("gb_books"):
            raise IngestError(
                f"{directory}: books.csv is required with goodbooks-10k (it maps book_id to goodreads_book_id)."
            )
    else:
        raise IngestError(f"unknown format {fmt!r}: expected goodreads or goodbooks")


def ingest_bronze(
    spark: SparkSession,
    lake: Lakehouse,
    found: SourceFiles,
    specs: tuple[FileSpec, ...],
    run_id: str,
    ingested_at: Column,
) -> list[FileCounts]:
    """Write one bronze table per spec with files, and the quarantine. Call inside ``rollback_on_error``."""
    headers = {  # all header checks before any work (a Spark job each: read once)
        path: check_header(spark, path, spec)
        for spec in specs
        if spec.kind == "csv"
        for path in found.paths(spec.table)
    }
    all_counts: list[FileCounts] = []
    lake.write(spark.createDataFrame([], QUARANTINE_SCHEMA), BRONZE, QUARANTINE)  # this run's quarantine
    for spec in specs:
        files = found.files.get(spec.table, [])
        if not files:
            continue
        frames, bad_frames, persisted = [], [], []
        t0 = time.perf_counter()
        for path, size, _ in files:
            log.info("bronze.%s <- %s", spec.table, path.rsplit("/", 1)[-1])
            bronze, bad, counts, parsed = ingest_file(
                spark, spec, path, size, run_id, ingested_at, headers.get(path)
            )
            frames.append(bronze)
            bad_frames.append(bad)
            persisted.append(parsed)
            all_counts.append(counts)
            log.info(
                "  read %d = ingested %d + quarantined %d + duplicates %d",
                counts.read,
                counts.ingested,
                counts.quarantined,
                counts.duplicates,
            )
        lake.write(union_all(frames), BRONZE, spec.table, options=BRONZE_TABLE_OPTIONS)
        if any(c.quarantined for c in all_counts if c.table == spec.table):
            lake.write(union_all(bad_frames), BRONZE, QUARANTINE, mode="append")
        for p in persisted:
            p.unpersist()
        secs = time.perf_counter() - t0  # spread over the spec's files by rows read
        mine = [c for c in all_counts if c.table == spec.table]
        total = max(1, sum(c.read for c in mine))
        for i, c in enumerate(all_counts):
            if c.table == spec.table:
                all_counts[i] = dataclasses.replace(c, seconds=round(secs * c.read / total, 2))
    return all_counts


# -- the whole ingest: bronze, then silver ---------------------------------------------------------------------


def specs_for(fmt: str) -> tuple[FileSpec, ...]:
    from recspark.sources import goodbooks, goodreads

    if fmt == "goodreads":
        return goodreads.SPECS
    if fmt == "goodbooks":
        return goodbooks.SPECS
    raise IngestError(f"unknown format {fmt!r}: expected goodreads or goodbooks")


def format_counts(counts: list[FileCounts]) -> str:
    """A plain-text table of per-file counts."""
    head = f"{'table':<22} {'file':<44} {'read':>11} {'ingested':>11} {'quarantined':>11} {'duplicates':>10}"
    lines = [head, "-" * len(head)]
    for c in counts:
        name = c.file.rsplit("/", 1)[-1]
        lines.append(
            f"{c.table:<22} {name[:44]:<44} {c.read:>11,} {c.ingested:>11,} {c.quarantined:>11,} {c.duplicates:>10,}"
        )
    return "\n".join(lines)
