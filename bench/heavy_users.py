"""The hidden UCSD-shelves shape from generated data: a few hundred heavy users over a large catalogue, the three
CSVs only (no metadata), as ``../shared/quality-protocol.md`` describes it.

    recspark generate --scale 0.05 --seed 3 --out /tmp/heavy/full
    python bench/heavy_users.py --source /tmp/heavy/full --out /tmp/heavy/heavy300 --users 300
    python bench/quality.py --name generated-heavy-users-300 --source /tmp/heavy/heavy300 --format goodreads

Keeps ``--users`` users drawn at random (``--seed``) among those with ``--min``..``--max`` shelves, every row of
theirs in ``goodreads_interactions.csv``, and copies the two id maps. Plain Python, no Spark; prints the shape.

The generator's heavy users share more of their books than real ones: a third of the kept books are shelved by one
user, where the hidden set has "most". ``--single-share S`` adds shelves of new books, each shelved by one kept user
only, until the share S of all books is shelved by one user. Each added row copies a random row of a kept user
(drawn in proportion to the user's rows), so it keeps the user's own read, rating and review habits, with a new
book id appended to ``book_id_map.csv`` (made-up original ids above the largest one there):

    python bench/heavy_users.py --source /tmp/heavy/full --out /tmp/heavy/heavy300-single60 --users 300 \
        --single-share 0.6
"""

from __future__ import annotations

import argparse
import collections
import csv
import random
import shutil
from pathlib import Path
from typing import Any


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="a generated UCSD folder (recspark generate)")
    p.add_argument("--out", required=True)
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--min", type=int, default=400, help="fewest shelves of a kept user")
    p.add_argument("--max", type=int, default=3000, help="most shelves of a kept user")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--single-share",
        type=float,
        default=None,
        help="add books shelved by one user until this share of all books is (0 to 1; default: add none)",
    )
    a = p.parse_args()
    if a.single_share is not None and not 0 <= a.single_share < 1:
        p.error(f"--single-share must be in [0, 1), got {a.single_share}")

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
    kept: list[list[str]] = []
    with open(interactions, newline="") as f, open(out / interactions.name, "w", newline="") as g:
        rows, w = csv.reader(f), csv.writer(g)
        w.writerow(next(rows))
        for row in rows:
            if row[0] in keep:
                w.writerow(row)
                kept.append(row)
                readers[row[1]] += 1
        added = add_single_books(kept, readers, src / "book_id_map.csv", out, a.single_share, a.seed, w)
    n = len(kept) + added
    shutil.copy(src / "user_id_map.csv", out / "user_id_map.csv")
    if not added:
        shutil.copy(src / "book_id_map.csv", out / "book_id_map.csv")
    single = sum(1 for c in readers.values() if c == 1)
    print(
        f"{len(keep)} of {len(pool)} users with {a.min}-{a.max} shelves: {n:,} rows, {len(readers):,} books, "
        f"{single:,} shelved by one user ({single / max(len(readers), 1):.0%})"
    )
    if added:
        print(
            f"  of them {added:,} rows of books added with one reader each (--single-share {a.single_share})"
        )


def add_single_books(
    kept: list[list[str]],
    readers: collections.Counter[str],
    book_map: Path,
    out: Path,
    share: float | None,
    seed: int,
    writer: Any,
) -> int:
    """Write rows of new one-reader books until ``share`` of all books have one reader; extend the book id map.

    With m books of several readers, the share S needs s = S * m / (1 - S) one-reader books, so
    s - (one-reader books already there) rows are added. Returns how many (0 when none are needed).
    """
    if share is None:
        return 0
    singles = sum(1 for c in readers.values() if c == 1)
    need = int(share * (len(readers) - singles) / (1 - share)) - singles
    if need <= 0:
        return 0
    with open(book_map, newline="") as f:
        ids = list(csv.reader(f))
    header, body = ids[0], ids[1:]
    next_csv = max(int(r[0]) for r in body) + 1
    next_orig = max(int(r[1]) for r in body) + 1
    rng = random.Random(seed)
    with open(out / "book_id_map.csv", "w", newline="") as g:
        w = csv.writer(g)
        w.writerow(header)
        w.writerows(body)
        for i in range(need):
            row = list(rng.choice(kept))
            row[1] = str(next_csv + i)
            writer.writerow(row)
            readers[row[1]] += 1
            w.writerow([next_csv + i, next_orig + i])
    return need


if __name__ == "__main__":
    main()
