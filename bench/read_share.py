"""How much books differ in how often their shelvers have read them: real goodbooks-10k against the generator.

    python bench/read_share.py [--goodbooks ../shared/data/goodbooks-10k] [--scale 0.01] [--seed 42]

**Real.** goodbooks-10k has no read flags, but two counts per book from two populations: its to-read shelves
(``to_read.csv``) and its ratings on Goodreads (``books.csv`` ``ratings_count``; a rating means read). If every
book were read by the same share of its shelvers, a book's to-read shelves would follow its share of all ratings.
``ln(to_read / expected)`` is then ``-logit(read share)`` up to a constant, and its standard deviation over books
(minus the Poisson noise of the counts) is the spread of the logit read share. Books published after
``--max-year`` are left out: they are far rarer in ``to_read.csv`` than their ratings say (the file was
collected before most of their ratings), which would widen the spread for a reason that is not reading.

**Generated.** The read share of every book with ``--min-shelves`` or more shelves at ``--scale`` (drawn in
memory with :mod:`recspark.sources.synthetic`, no files), its logit's standard deviation and percentiles.

Writes ``bench/results/read_share.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recspark.sources import synthetic as S

OUT = Path(__file__).parent / "results" / "read_share.json"


def real(goodbooks: Path, max_year: int, min_expected: float) -> dict:
    books = pd.read_csv(goodbooks / "books.csv").set_index("book_id")
    to_read = pd.read_csv(goodbooks / "to_read.csv")["book_id"].value_counts()
    d = (
        books[["ratings_count", "original_publication_year"]]
        .join(to_read.rename("to_read"))
        .fillna({"to_read": 0})
    )
    d["expected"] = d["ratings_count"] / d["ratings_count"].sum() * d["to_read"].sum()
    kept = d[(d["expected"] >= min_expected) & (d["original_publication_year"] <= max_year)]
    log_ratio = np.log((kept["to_read"] + 0.5) / kept["expected"])
    return {
        "books": len(kept),
        "to_read_rows": int(d["to_read"].sum()),
        "sd_logit_read_share": round(float(log_ratio.std()), 3),
        "poisson_noise": round(float(np.sqrt(1 / kept["expected"]).mean()), 3),
        "percentiles_5_25_50_75_95_of_ln_ratio": np.percentile(log_ratio, [5, 25, 50, 75, 95])
        .round(2)
        .tolist(),
    }


def generated(scale: float, seed: int, min_shelves: int) -> dict:
    sizes = S.Sizes.for_scale(scale)
    cat = S.Catalogue(sizes, seed)
    shelves = np.zeros(sizes.books)
    read = np.zeros(sizes.books)
    for ch in S.iter_chunks(cat, S.user_activity(sizes, seed), seed):
        shelves += np.bincount(ch.book, minlength=sizes.books)
        read += np.bincount(ch.book, weights=ch.is_read, minlength=sizes.books)
    many = shelves >= min_shelves
    share = (read[many] + 0.5) / (shelves[many] + 1.0)
    return {
        "books": int(many.sum()),
        "overall_read_share": round(float(read.sum() / shelves.sum()), 4),
        "sd_logit_read_share": round(float(np.std(np.log(share) - np.log1p(-share))), 3),
        "read_share_percentiles_5_25_50_75_95": np.quantile(share, [0.05, 0.25, 0.5, 0.75, 0.95])
        .round(2)
        .tolist(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--goodbooks", default=str(Path(__file__).parents[2] / "shared" / "data" / "goodbooks-10k")
    )
    p.add_argument("--max-year", type=int, default=2010)
    p.add_argument("--min-expected", type=float, default=20.0)
    p.add_argument("--scale", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--min-shelves", type=int, default=200)
    a = p.parse_args()
    record = {
        "command": "python bench/read_share.py "
        + f"--scale {a.scale} --seed {a.seed} --max-year {a.max_year} --min-shelves {a.min_shelves}",
        "measured": time.strftime("%Y-%m-%d %H:%M"),
        "real_goodbooks_10k": real(Path(a.goodbooks), a.max_year, a.min_expected),
        "generated": {
            "scale": a.scale,
            "seed": a.seed,
            "read_sd": S.READ_SD,
            **generated(a.scale, a.seed, a.min_shelves),
        },
    }
    print(json.dumps(record, indent=1))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
