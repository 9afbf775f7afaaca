"""Small DataFrame helpers shared by the stages."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame


def union_all(frames: list[DataFrame]) -> DataFrame:
    """The rows of every frame, matched by column name (at least one frame)."""
    if not frames:
        raise ValueError("union_all needs at least one DataFrame")
    return reduce(DataFrame.unionByName, frames)
