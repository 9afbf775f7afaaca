"""Quality as the hidden checks measure it (../shared/quality-protocol.md), on data we do have.

Holds out 20% of each user's rows of a goodbooks (``ratings.csv`` or ``to_read.csv`` + ``books.csv``) or UCSD CSV
(three CSVs) dataset at random (seeded), writes the rest as a new source folder, runs plain
``recspark run --source ... --format ... --lakehouse ...`` (plus any extra arguments) in a subprocess, reads the
latest published ``gold/user_recommendations`` from outside with deltalake, and scores NDCG@10 and recall@10
over users with at least one relevant held-out book (goodbooks ratings: rating >= 4; UCSD: ``is_read``; to_read:
every held-out book). Appends the result, the chosen parameters and the wall time to
``bench/results/quality.json``.

    python bench/quality.py --name goodbooks-to_read --source ../shared/data/goodbooks-10k --format goodbooks
    python bench/quality.py --name generated-ratings --generate-ratings 0.002 --format goodbooks
    python bench/quality.py --name generated-ucsd --generate 0.001 --format goodreads
    python bench/quality.py --name goodbooks-next3 --source ../shared/data/goodbooks-10k --format goodbooks \
        --next-shelves 3
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # the recspark of the checkout that holds this script, as the run uses
from common import append_result, goodbooks_rows  # noqa: E402


def random_order(df: pd.DataFrame, user: str, seed: int) -> tuple[pd.Series, pd.Series]:
    """``(position, count)`` of each row within its user's rows, in a random (seeded) order: 1..n and n."""
    r = pd.Series(np.random.default_rng(seed).random(len(df)), index=df.index)
    return r.groupby(df[user]).rank(method="first"), df.groupby(user)[user].transform("size")


def holdout(df: pd.DataFrame, user: str, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, ``round(fraction * n)`` random rows held out (users with one row keep it)."""
    i, n = random_order(df, user, seed)
    test = (i <= np.floor(n * fraction + 0.5)) & (n > 1)
    return df[~test], df[test]


def prepare(src: Path, fmt: str, out: Path, seed: int) -> pd.DataFrame:
    """Write the training side to ``out``; return the held-out truth ``(user_id, book_id, relevant)`` in the ids
    the gold tables use."""
    out.mkdir(parents=True)
    if fmt == "goodbooks":
        books = pd.read_csv(src / "books.csv")
        shutil.copy(src / "books.csv", out / "books.csv")
        gr = dict(zip(books["book_id"], books["goodreads_book_id"], strict=True))
        name = goodbooks_rows(src)
        rows = pd.read_csv(src / name)
        train, test = holdout(rows, "user_id", 0.2, seed)
        train.to_csv(out / name, index=False)
        relevant = test["rating"] >= 4 if "rating" in test else pd.Series(True, index=test.index)
        return pd.DataFrame(
            {
                "user_id": test["user_id"].astype(str),
                "book_id": test["book_id"].map(gr).astype("int64"),
                "relevant": relevant.to_numpy(),
            }
        )
    rows = pd.read_csv(src / "goodreads_interactions.csv")
    for f in ("user_id_map.csv", "book_id_map.csv"):
        shutil.copy(src / f, out / f)
    train, test = holdout(rows, "user_id", 0.2, seed)
    train.to_csv(out / "goodreads_interactions.csv", index=False)
    users = pd.read_csv(src / "user_id_map.csv").set_index("user_id_csv")["user_id"]
    books = pd.read_csv(src / "book_id_map.csv").set_index("book_id_csv")["book_id"]
    return pd.DataFrame(
        {
            "user_id": test["user_id"].map(users).astype(str),
            "book_id": test["book_id"].map(books).astype("int64"),
            "relevant": (test["is_read"] == 1).to_numpy(),
        }
    )


def training_side(source: Path, fmt: str, seed: int) -> dict:
    """This bench's split of ``source`` read back as the numpy benches use it (``bench/ease_gap.py``,
    ``bench/ease_dual.py``): ``truth`` (the held-out rows), ``popularity`` (its score), ``name`` (the interaction
    file), ``train`` (its training rows, a pandas frame), ``user_key`` / ``book_key``, which map the file's user
    and book ids to the ids the scoring compares (a function of an id array, and a Series indexed by book id), and
    the rows indexed (``users``, ``user_pos``, ``book_ids``, ``by_readers``)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "input"
        truth = prepare(source.resolve(), fmt, src, seed)
        popularity = score(popularity_lists(src, fmt), truth)
        if fmt == "goodbooks":
            name = goodbooks_rows(src)
            train = pd.read_csv(src / name)
            user_key = lambda ids: ids.astype(str)  # noqa: E731
            book_key = pd.read_csv(src / "books.csv").set_index("book_id")["goodreads_book_id"]
        else:
            name = "goodreads_interactions.csv"
            train = pd.read_csv(src / name)
            users_map = pd.read_csv(src / "user_id_map.csv").set_index("user_id_csv")["user_id"]
            user_key = lambda ids: users_map.reindex(ids).to_numpy().astype(str)  # noqa: E731
            book_key = pd.read_csv(src / "book_id_map.csv").set_index("book_id_csv")["book_id"]
    users, user_pos = np.unique(train["user_id"].to_numpy(), return_inverse=True)
    book_ids = train["book_id"].to_numpy()
    codes, uniques = pd.factorize(book_ids)
    return {
        "truth": truth,
        "popularity": popularity,
        "name": name,
        "train": train,
        "user_key": user_key,
        "book_key": book_key,
        "users": users,  # the training side's user ids, ascending
        "user_pos": user_pos,  # each training row's position in ``users``
        "book_ids": book_ids,  # each training row's book id
        "by_readers": uniques[np.argsort(-np.bincount(codes), kind="stable")],  # book ids, most-read first
    }


def prepare_next(src: Path, fmt: str, out: Path, n: int, seed: int) -> pd.DataFrame:
    """The "next shelves" shape: every user with at least ``2n`` rows keeps ``n`` of them (in a random, seeded
    order) as the whole input and the next ``n`` are the truth (all relevant). Written as the three UCSD CSVs with
    made-up id maps and no metadata, whatever the source format. Returns the truth in the gold tables' ids."""
    out.mkdir(parents=True)
    if fmt == "goodbooks":
        name = goodbooks_rows(src)
        rows = pd.read_csv(src / name)[["user_id", "book_id"]].assign(is_read=0)
    else:
        rows = pd.read_csv(src / "goodreads_interactions.csv")[["user_id", "book_id", "is_read"]]
    i, size = random_order(rows, "user_id", seed)
    rows = rows.assign(_i=i)[(size >= 2 * n) & (i <= 2 * n)]
    users = {u: i for i, u in enumerate(sorted(rows["user_id"].unique()))}
    books = {b: i for i, b in enumerate(sorted(rows["book_id"].unique()))}
    csv = pd.DataFrame(
        {
            "user_id": rows["user_id"].map(users),
            "book_id": rows["book_id"].map(books),
            "is_read": rows["is_read"].astype(int),
            "rating": 0,
            "is_reviewed": 0,
        }
    )
    train = rows["_i"] <= n
    csv[train.to_numpy()].to_csv(out / "goodreads_interactions.csv", index=False)
    pd.DataFrame(
        {"user_id_csv": list(users.values()), "user_id": [f"user{i:07d}" for i in users.values()]}
    ).to_csv(out / "user_id_map.csv", index=False)
    pd.DataFrame({"book_id_csv": list(books.values()), "book_id": [i + 1 for i in books.values()]}).to_csv(
        out / "book_id_map.csv", index=False
    )
    test = csv[(~train).to_numpy()]
    return pd.DataFrame(
        {
            "user_id": test["user_id"].map(lambda i: f"user{i:07d}"),
            "book_id": (test["book_id"] + 1).astype("int64"),
            "relevant": True,
        }
    )


def popularity_lists(train_dir: Path, fmt: str, k: int = 10) -> pd.DataFrame:
    """The popularity baseline on the same input: the k most shelved books each user has not shelved."""
    if fmt == "goodbooks":
        gr = pd.read_csv(train_dir / "books.csv").set_index("book_id")["goodreads_book_id"]
        name = goodbooks_rows(train_dir)
        rows = pd.read_csv(train_dir / name)
        rows = pd.DataFrame({"user_id": rows["user_id"].astype(str), "book_id": rows["book_id"].map(gr)})
    else:
        rows = pd.read_csv(train_dir / "goodreads_interactions.csv")
        users = pd.read_csv(train_dir / "user_id_map.csv").set_index("user_id_csv")["user_id"]
        books = pd.read_csv(train_dir / "book_id_map.csv").set_index("book_id_csv")["book_id"]
        rows = pd.DataFrame({"user_id": rows["user_id"].map(users), "book_id": rows["book_id"].map(books)})
    ranked = rows["book_id"].value_counts().index.to_numpy()[: k + 2000]
    seen = rows.groupby("user_id")["book_id"].apply(set)
    out = []
    for user, books in seen.items():
        picks = [b for b in ranked if b not in books][:k]
        out += [(user, r, int(b)) for r, b in enumerate(picks, 1)]
    return pd.DataFrame(out, columns=["user_id", "rank", "book_id"])


def per_user(recs: pd.DataFrame, truth: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """``(ndcg, recall)`` at ``k`` indexed by ``user_id``, for every user with a relevant held-out book (0 for a
    user without a list)."""
    rel = truth[truth["relevant"]].groupby("user_id")["book_id"].apply(set)
    lists = recs.sort_values(["user_id", "rank"]).groupby("user_id")["book_id"].apply(list)
    rows = {}
    for user, books in rel.items():
        got = lists.get(user, [])[:k]
        hits = [1.0 if b in books else 0.0 for b in got]
        dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
        idcg = sum(1 / math.log2(i + 2) for i in range(min(len(books), k)))
        rows[user] = (dcg / idcg, sum(hits) / len(books))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["ndcg", "recall"])


def score(recs: pd.DataFrame, truth: pd.DataFrame, k: int = 10) -> dict[str, float]:
    found = per_user(recs, truth, k)
    return {
        f"ndcg@{k}": round(float(found["ndcg"].mean()), 4),
        f"recall@{k}": round(float(found["recall"].mean()), 4),
        "users": len(found),
    }


def published_lists(lake: Path) -> list[tuple[pd.Series, pd.DataFrame]]:
    """Every published run of ``lake`` (its ``gold/runs`` row), oldest first, with its
    ``gold/user_recommendations`` rows (``user_id`` as str, ``book_id`` as int64), read with deltalake."""
    from deltalake import DeltaTable

    runs = DeltaTable(str(lake / "gold" / "runs")).to_pandas()
    runs = runs[runs["status"] == "published"].sort_values("finished_at")
    recs = DeltaTable(str(lake / "gold" / "user_recommendations")).to_pandas()
    recs = recs.assign(user_id=recs["user_id"].astype(str), book_id=recs["book_id"].astype("int64"))
    return [(run, recs[recs["run_id"] == run["run_id"]]) for _, run in runs.iterrows()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--source", type=Path)
    p.add_argument("--generate", type=float, help="generate UCSD data at this scale instead of --source")
    p.add_argument("--generate-ratings", type=float, help="generate goodbooks-format ratings at this scale")
    p.add_argument("--format", choices=["goodbooks", "goodreads"], required=True)
    p.add_argument(
        "--next-shelves",
        type=int,
        metavar="N",
        help="the sparse shape: N shelves per user as input, the next N as truth (written as UCSD CSVs)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    p.add_argument("run_args", nargs="*", help="extra `recspark run` arguments (after --)")
    a = p.parse_args()
    work = (a.work or Path(tempfile.mkdtemp(prefix="recspark-quality-"))).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    src = a.source
    if a.generate or a.generate_ratings:
        from recspark.sources.synthetic import generate, to_goodbooks

        src = work / "generated"
        generate(src, scale=a.generate or a.generate_ratings, seed=a.seed + 100)
        if a.generate_ratings:
            to_goodbooks(src, work / "generated-goodbooks")
            src = work / "generated-goodbooks"
    if a.next_shelves:
        truth = prepare_next(src.resolve(), a.format, work / "input", a.next_shelves, a.seed)
        a.format = "goodreads"
    else:
        truth = prepare(src.resolve(), a.format, work / "input", a.seed)
    lake = work / "lakehouse"
    cmd = [
        sys.executable, "-m", "recspark.cli", "run", "--source", str(work / "input"), "--format", a.format,
        "--lakehouse", str(lake), "--reports", str(work / "reports"), "--no-mlflow", *a.run_args,
    ]  # fmt: skip
    t0 = time.perf_counter()
    with open(work / "run.log", "w") as log:
        # run in this checkout: `python -m` puts the working directory first on the path, so a run started from
        # another checkout (a git worktree of an older commit measured from main) would import that one's recspark
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=HERE.parent)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"recspark run failed ({proc.returncode}); log: {work / 'run.log'}")
    run, recs = published_lists(lake)[-1]
    result = {
        "name": a.name,
        "command": "python bench/quality.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "held_out_rows": len(truth),
        **score(recs, truth),
        "popularity": score(popularity_lists(work / "input", a.format), truth),
        "model": json.loads(run["params"]).get("model", "als"),
        "internal_ndcg@10": internal_ndcg(lake, run["run_id"]),
        # the same over the held-out books validation counts (not disliked; read where reading is recorded)
        "internal_liked_ndcg@10": internal_ndcg(lake, run["run_id"], "liked_ndcg"),
        "params": json.loads(run["params"])["als"],
        "weights": json.loads(run["params"])["weights"]["scheme"],
        "itemcf": json.loads(run["params"]).get("itemcf"),
        "content": json.loads(run["params"]).get("content"),
        "tuning": json.loads(run["tuning"]) if run.get("tuning") else None,
        "run_seconds": round(wall, 1),
        "timings": json.loads(run["timings"]),
    }
    print(json.dumps(result, indent=1))
    append_result("quality", result, replace_key="name")
    if a.work is None:
        shutil.rmtree(work)


def internal_ndcg(lake: Path, run_id: str, metric: str = "ndcg") -> dict[str, float]:
    """Every model's NDCG@10 (or ``metric``, e.g. ``liked_ndcg``) on the run's own evaluation split
    (gold/evaluations), side by side; empty where the run did not write it."""
    from deltalake import DeltaTable

    path = lake / "gold" / "evaluations"
    if not path.exists():
        return {}
    ev = DeltaTable(str(path)).to_pandas()
    ev = ev[(ev["run_id"] == run_id) & (ev["k"] == 10) & (ev["metric"] == metric)]
    return {m: round(float(v), 4) for m, v in zip(ev["model"], ev["value"], strict=True)}


if __name__ == "__main__":
    main()
