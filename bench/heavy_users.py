"""The hidden UCSD-shelves shape from generated data: a few hundred heavy users over a large catalogue, the three
CSVs only (no metadata), as ``../shared/quality-protocol.md`` describes it.

    recspark generate --scale 0.05 --seed 3 --out /tmp/heavy/full
    python bench/heavy_users.py --source /tmp/heavy/full --out /tmp/heavy/heavy300 --users 300
    python bench/quality.py --name generated-heavy-users-300 --source /tmp/heavy/heavy300 --format goodreads

Keeps ``--users`` users drawn at random (``--seed``) among those with ``--min``..``--max`` shelves, every row of
theirs in ``goodreads_interactions.csv``, and copies the two id maps. Plain Python, no Spark; prints the shape.
"""

from __future__ import annotations

import argparse
import collections
import csv
import random
import shutil
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="a generated UCSD folder (recspark generate)")
    p.add_argument("--out", required=True)
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--min", type=int, default=400, help="fewest shelves of a kept user")
    p.add_argument("--max", type=int, default=3000, help="most shelves of a kept user")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()

    src, out = Path(a.source), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    interactions = src / "goodreads_interactions.csv"
    counts: collections.Counter[str] = collections.Counter()
    with open(interactions, newline="") as f:
        rows = csv.reader(f)
        next(rows)
        for row in rows:
            counts[row[0]] += 1
    pool = sorted(u for u, c in counts.items() if a.min <= c <= a.max)
    random.Random(a.seed).shuffle(pool)
    keep = set(pool[: a.users])
    readers: collections.Counter[str] = collections.Counter()
    n = 0
    with open(interactions, newline="") as f, open(out / interactions.name, "w", newline="") as g:
        rows, w = csv.reader(f), csv.writer(g)
        w.writerow(next(rows))
        for row in rows:
            if row[0] in keep:
                w.writerow(row)
                n += 1
                readers[row[1]] += 1
    for name in ("user_id_map.csv", "book_id_map.csv"):
        shutil.copy(src / name, out / name)
    single = sum(1 for c in readers.values() if c == 1)
    print(
        f"{len(keep)} of {len(pool)} users with {a.min}-{a.max} shelves: {n:,} rows, {len(readers):,} books, "
        f"{single:,} shelved by one user ({single / max(len(readers), 1):.0%})"
    )


if __name__ == "__main__":
    main()
