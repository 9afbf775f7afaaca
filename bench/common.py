"""What the quality and numpy benchmarks share: their results files (``bench/results/<name>.json``, a list of
runs that each script adds to) and which goodbooks file a folder holds."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def append_result(name: str, result: dict, replace_key: str | None = None) -> Path:
    """Add ``result`` to ``bench/results/<name>.json`` (created when missing). With ``replace_key``, an earlier
    run with the same value of that key is dropped first (a re-run under the same name replaces it)."""
    path = RESULTS / f"{name}.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    if replace_key is not None:
        runs = [r for r in runs if r.get(replace_key) != result[replace_key]]
    path.write_text(json.dumps([*runs, result], indent=1) + "\n")
    return path


def goodbooks_rows(folder: Path) -> str:
    """The interaction file of a goodbooks folder: ``ratings.csv`` when there is one, else ``to_read.csv``."""
    return "ratings.csv" if (folder / "ratings.csv").exists() else "to_read.csv"
