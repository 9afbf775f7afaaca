"""Declarative description of a source file: its format, fields, types, checks and de-duplication key.

A :class:`FileSpec` is all the ingest needs to turn a raw file into a typed bronze table plus quarantined rows.
Schemas are explicit; nothing is inferred.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import types as T

STRING = T.StringType()
INT = T.IntegerType()
LONG = T.LongType()
DOUBLE = T.DoubleType()
BOOL = T.BooleanType()
TIMESTAMP = T.TimestampType()

# UCSD dates: "Thu Aug 17 15:15:28 -0700 2017". Spark cannot parse the weekday ("EEE" is format-only), so the
# first four characters are dropped before parsing with this pattern.
UCSD_DATE_PATTERN = "MMM dd HH:mm:ss Z yyyy"


@dataclass(frozen=True)
class Field:
    """One field of a source record.

    ``source`` is how the raw file spells it (JSON type for JSON files; always string for CSV);
    ``target`` is the bronze type (``None``: same as source). String-to-number conversion treats ``""`` as
    missing and any other unparseable text as a wrong type (quarantined); an integer may be written as a whole
    decimal (``4.0``), a fraction (``4.5``) is the wrong type. ``check`` is a SQL predicate on the
    typed value (``{c}`` stands for the column) that must hold when the value is present.
    """

    name: str
    source: T.DataType = STRING
    target: T.DataType | None = None
    required: bool = False
    check: str | None = None
    date: bool = False  # a UCSD date string -> timestamp


@dataclass(frozen=True)
class FileSpec:
    """A kind of source file and the bronze table it lands in."""

    table: str  # bronze table name
    patterns: tuple[str, ...]  # file names or globs, relative to the source directory
    kind: str  # "csv" | "json"
    fields: tuple[Field, ...]
    key: tuple[str, ...]  # de-duplication key within the file
    prefer: tuple[
        str, ...
    ] = ()  # among duplicates keep the row with the largest of these (then the first raw)
    header: tuple[str, ...] | None = None  # CSV columns, found by name in the file's header
    description: str = ""
    extra_fields_ok: bool = True  # JSON: unknown fields are ignored (real files gain fields over time)

    def __post_init__(self) -> None:
        required = {f.name for f in self.fields if f.required}
        if not set(self.key) <= required:  # the de-duplication joins on the key: a null key would never match
            raise ValueError(f"{self.table}: key fields {self.key} must all be required fields")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def source_schema(self) -> T.StructType:
        return T.StructType([T.StructField(f.name, f.source, True) for f in self.fields])

    def target_type(self, f: Field) -> T.DataType:
        if f.date:
            return TIMESTAMP
        return f.target or f.source


@dataclass
class SourceFiles:
    """The files found for each spec in a source directory (with sizes and modification times)."""

    files: dict[str, list[tuple[str, int, int]]] = field(
        default_factory=dict
    )  # table -> [(path, size, mtime)]

    def paths(self, table: str) -> list[str]:
        return [p for p, _, _ in self.files.get(table, [])]

    def has(self, table: str) -> bool:
        return bool(self.files.get(table))

    def fingerprint(self) -> list[tuple[str, str, int, int]]:
        return sorted((t, p, s, m) for t, fs in self.files.items() for p, s, m in fs)
