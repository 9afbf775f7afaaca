"""Real explicit ratings in the goodbooks format: MovieLens 100k (GroupLens), as a check of the hidden ratings shape.

The hidden ratings set (``../shared/quality-protocol.md``) is a few thousand real raters with about a hundred
ratings each, 1-5 stars, relevant = held-out rating >= 4. No real book ratings file can be fetched here, but
MovieLens 100k is real raters of the same shape: 943 users, 1,682 movies, 100,000 ratings of 1-5 stars, every
user with at least 20 (106 on average). It ships inside the ``recbole`` wheel on PyPI
(``recbole/dataset_example/ml-100k``), which this script fetches with ``pip download`` (a package registry,
the only network these machines have), caches under ``$RECSPARK_CACHE/movielens`` and never installs.

    python bench/movielens.py --out /tmp/ml100k
    python bench/quality.py --name movielens-100k --source /tmp/ml100k --format goodbooks
    python bench/hand_tuned_als.py --name movielens-100k --source /tmp/ml100k --format goodbooks

Written as goodbooks files: ``ratings.csv`` (``user_id, book_id, rating``; the timestamps are dropped, as
goodbooks has none), ``books.csv`` (a movie's id as both ``book_id`` and ``goodreads_book_id``, its title and
release year; no authors) and ``book_tags.csv`` + ``tags.csv`` (its genres, which ingest reads as shelves). The
data is GroupLens's and may not be redistributed, so nothing of it is committed: only this script and the
scores. No Spark session (recspark gives the cache folder and the header of `books.csv`).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recspark.sources.goodbooks import BOOK_COLUMNS  # noqa: E402  (the header ingest checks)
from recspark.spark import cache_dir  # noqa: E402  ($RECSPARK_CACHE, as the jars use it)

WHEEL = "recbole==1.2.1"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"


def fetch(cache: Path) -> Path:
    """The recbole wheel in ``cache`` (downloaded once, not installed)."""
    wheels = sorted(cache.glob("recbole-*.whl"))
    if wheels:
        return wheels[-1]
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, WHEEL]
        subprocess.run(cmd, check=True)
        (wheel,) = Path(tmp).glob("recbole-*.whl")
        return wheel.rename(cache / wheel.name)


def read_member(wheel: Path, ext: str) -> pd.DataFrame:
    """One of the dataset's tab-separated files; recbole's typed headers (``user_id:token``) lose their types."""
    with zipfile.ZipFile(wheel) as z, z.open(MEMBER.format(ext)) as f:
        df = pd.read_csv(f, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    return df.rename(columns=lambda c: c.split(":")[0])


def goodbooks_frames(inter: pd.DataFrame, items: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``ratings``, ``books``, ``book_tags``, ``tags`` in goodbooks' columns."""
    ratings = pd.DataFrame(
        {
            "user_id": inter["user_id"].astype(int),
            "book_id": inter["item_id"].astype(int),
            "rating": inter["rating"].astype(float).round().astype(int),
        }
    )
    ids = items["item_id"].astype(int)
    year = pd.to_numeric(items["release_year"], errors="coerce")
    books = pd.DataFrame({c: pd.Series([""] * len(items), dtype=object) for c in BOOK_COLUMNS})
    books["book_id"] = ids.to_numpy()
    books["goodreads_book_id"] = ids.to_numpy()
    books["best_book_id"] = ids.to_numpy()
    books["work_id"] = ids.to_numpy()
    books["title"] = items["movie_title"].to_numpy()
    books["original_title"] = items["movie_title"].to_numpy()
    books["original_publication_year"] = year.map(lambda y: "" if np.isnan(y) else f"{y:.1f}").to_numpy()
    genres = items.assign(genre=items["class"].str.split(" ")).explode("genre")
    genres = genres[genres["genre"].fillna("") != ""]
    names = sorted(genres["genre"].unique())
    tags = pd.DataFrame({"tag_id": range(len(names)), "tag_name": [n.lower() for n in names]})
    tag_of = dict(zip(names, tags["tag_id"], strict=True))
    book_tags = pd.DataFrame(
        {
            "goodreads_book_id": genres["item_id"].astype(int),
            "tag_id": genres["genre"].map(tag_of),
            "count": 1,
        }
    )
    return {"ratings": ratings, "books": books, "book_tags": book_tags, "tags": tags}


def shape(ratings: pd.DataFrame) -> str:
    per_user = ratings.groupby("user_id").size()
    per_book = ratings.groupby("book_id").size().sort_values(ascending=False)
    stars = ratings["rating"].value_counts(normalize=True).sort_index()
    return (
        f"{len(per_user):,} users, {len(per_book):,} items, {len(ratings):,} ratings; per user mean "
        f"{per_user.mean():.0f} (median {per_user.median():.0f}, {per_user.min()}-{per_user.max()}); the most rated "
        f"item by {per_book.iloc[0] / len(per_user):.0%} of users; stars 1-5: "
        + " / ".join(f"{s:.0%}" for s in stars)
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder to write the goodbooks files to (new)")
    args = p.parse_args()
    wheel = fetch(cache_dir() / "movielens")
    frames = goodbooks_frames(read_member(wheel, "inter"), read_member(wheel, "item"))
    args.out.mkdir(parents=True)
    for name, df in frames.items():
        df.to_csv(args.out / f"{name}.csv", index=False)
    print(f"{args.out}: {shape(frames['ratings'])}")


if __name__ == "__main__":
    main()
