"""Does a blend of ALS and EASE, its weight chosen on validation, beat the better of the two on held-out data?

    python bench/blend.py --source DIR [--als 64:0.5:5,16:0.007:0.6] [--lambdas 1,4,16,64] \
        [--weights 0,0.2,0.35,0.5,0.65,0.8,1] [--popularity 0,0.1,0.2,0.3] [--candidates 100]

The protocol of ``recspark run`` in plain numpy (and Spark's ALS): 20% of each user's rows held out for the
test (seed 42), then 20% of each user's remaining rows for validation (seed 43). On the validation split's
training side every ALS configuration (``rank:regParam:alpha``, implicit, unit ratings, 12 iterations) and every
EASE strength (``λ = l2 ×`` mean readers per book, over the 10,000 most-read books, each row cut to its 400
weights of largest magnitude, as the product keeps them) is fitted; the best of each family is chosen by
validation NDCG@10, then the blend weight ``w`` of ``(1 - w) · als / max|als| + w · ease / max|ease|`` (each
user's scores over the catalogue scaled by their largest magnitude), and with ``--popularity`` also the share
``p`` of ``(1 - p) · blend + p · popularity`` (chosen with ``w``). The two chosen models are refitted on the
whole training side and scored on the test: ALS alone, EASE alone, every blend weight, popularity.

Relevant books as the hidden checks count them on the test (ratings: 4-5 stars; UCSD CSVs: ``is_read``;
``to_read.csv``: every book) and as validation counts them in the product (not disliked: unrated or 4-5 stars).
Reads a goodbooks folder (``ratings.csv`` or ``to_read.csv``) or the UCSD CSVs. Appends to
``bench/results/blend.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from common import append_result, goodbooks_rows  # noqa: E402
from ease import als_factors, ease_weights  # noqa: E402  (bench/ease.py: the same ALS and B)

from recspark.metrics import paired_z, recorded_z  # noqa: E402

K = 10
DISC = 1 / np.log2(np.arange(2, K + 2))


def load(src: Path) -> tuple[pd.DataFrame, str]:
    """``(user, book, test_relevant, val_relevant)`` per row, ids factorised."""
    if (src / "goodreads_interactions.csv").exists():
        name = "goodreads_interactions.csv"
        df = pd.read_csv(src / name, usecols=["user_id", "book_id", "is_read", "rating"])
        test_rel = df["is_read"].to_numpy() == 1
        rating = df["rating"].to_numpy()
    else:
        name = goodbooks_rows(src)
        df = pd.read_csv(src / name)
        rating = df["rating"].to_numpy() if "rating" in df else np.zeros(len(df), int)
        test_rel = rating >= 4 if "rating" in df else np.ones(len(df), bool)
    return (
        pd.DataFrame(
            {
                "user": pd.factorize(df["user_id"])[0],
                "book": pd.factorize(df["book_id"])[0],
                "test_rel": test_rel,
                "val_rel": (rating == 0) | (rating >= 4),
            }
        ),
        name,
    )


def held_out(users: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A mask of ``floor(fraction · n)`` random rows of each user's ``n`` (``bench/ease.py``'s holdout)."""
    order = np.lexsort((np.random.default_rng(seed).random(len(users)), users))
    u = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(u)) + 1]
    counts = np.diff(np.r_[starts, len(u)])
    pos = np.arange(len(u)) - np.repeat(starts, counts)
    mask = np.zeros(len(users), bool)
    mask[order] = pos < np.repeat(np.floor(counts * fraction).astype(int), counts)
    return mask


def matrix(rows: pd.DataFrame, nu: int, nb: int) -> sparse.csr_matrix:
    x = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows["user"], rows["book"])), shape=(nu, nb))
    x.data[:] = 1.0
    return x


def truth_of(rows: pd.DataFrame, col: str) -> dict[int, np.ndarray]:
    rel = rows[rows[col]]
    return {int(u): g.to_numpy() for u, g in rel.groupby("user")["book"]}


def ndcg_rows(
    scores: np.ndarray, seen: np.ndarray, users: np.ndarray, truth: dict[int, np.ndarray]
) -> np.ndarray:
    """Per-user NDCG@10 of the top 10 by ``scores``, shelved books excluded."""
    s = np.where(seen > 0, -np.inf, scores)
    idx = np.argpartition(-s, K, axis=1)[:, :K]
    top = np.take_along_axis(idx, np.argsort(-np.take_along_axis(s, idx, 1), axis=1), 1)
    out = np.empty(len(users))
    for i, user in enumerate(users):
        rel = truth[int(user)]
        out[i] = (np.isin(top[i], rel) * DISC).sum() / DISC[: min(len(rel), K)].sum()
    return out


def ease_model(x: sparse.csr_matrix, l2: float, max_books: int = 10_000, keep: int = 400):
    """``(books, B)``: EASE over the ``max_books`` most-read books, each row cut to ``keep`` weights by magnitude."""
    readers = np.asarray(x.sum(0)).ravel()
    top = np.sort(np.argsort(-readers, kind="stable")[:max_books])
    xt = x[:, top]
    g = (xt.T @ xt).toarray().astype(np.float64)
    b = ease_weights(g, l2 * float(readers.mean()))
    if keep < len(top):
        thr = -np.partition(-np.abs(b), keep, axis=1)[:, keep : keep + 1]
        b = np.where(np.abs(b) >= thr, b, 0.0)
    return top, b.astype(np.float32)


def als_model(spark, x: sparse.csr_matrix, cfg: str) -> tuple[np.ndarray, np.ndarray]:
    """``bench/ease.py``'s ALS factors of the shelves in ``x``."""
    coo = x.tocoo()
    df = spark.createDataFrame(
        pd.DataFrame({"u": coo.row.astype("int32"), "b": coo.col.astype("int32"), "r": np.float32(1.0)})
    ).cache()
    factors = als_factors(df, x.shape[0], x.shape[1], cfg)
    df.unpersist()
    return factors


def scaled(s: np.ndarray) -> np.ndarray:
    return s / np.maximum(np.abs(s).max(1, keepdims=True), 1e-12)


def candidate_scaled(
    s: np.ndarray, seen: np.ndarray, n: int, positive: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, proposed)`` as the product's blend sees a source: its top-``n`` unshelved books (``positive``:
    only books with a positive score, as item-CF lists them) keep their scores, every other book gets the lowest
    proposed score (0 when fewer than ``n`` were proposed); all divided by the user's top score."""
    s = np.where(seen > 0, -np.inf, s)
    if positive:
        s = np.where(s > 0, s, -np.inf)
    nth = -np.partition(-s, n - 1, axis=1)[:, n - 1 : n]
    proposed = (s >= nth) & np.isfinite(s)
    fill = np.where(np.isfinite(nth), nth, 0.0)
    top = np.where(proposed, s, -np.inf).max(1, keepdims=True)
    scale = np.where(np.isfinite(top) & (np.abs(top) > 1e-12), np.abs(top), 1.0)
    return np.where(proposed, s, fill) / scale, proposed


def scores_by_chunk(x, users, readers, als=None, ease=None, chunk: int = 4000, candidates: int = 0):
    """Yield ``(users, seen, als, ease, popularity, allowed)`` scores for chunks of ``users``: each source's scores
    over the catalogue scaled by their largest magnitude, or with ``candidates`` as the product's blend sees them
    (:func:`candidate_scaled`; ``allowed``: the union of the three sources' top-``candidates``, as the product's
    candidates are); popularity's scores are ``readers``, each book's shelves in ``x``."""
    for lo in range(0, len(users), chunk):
        us = users[lo : lo + chunk]
        seen = x[us].toarray()
        a = als[0][us] @ als[1].T if als is not None else np.zeros_like(seen)
        e = np.zeros_like(seen)
        if ease is not None:
            books, b = ease
            e[:, books] = seen[:, books] @ b
        pop = np.tile(readers, (len(us), 1))
        if candidates:
            a, in_a = candidate_scaled(a, seen, candidates, positive=False)
            e, in_e = candidate_scaled(e, seen, candidates, positive=True)
            pop, in_p = candidate_scaled(pop, seen, candidates, positive=False)
            yield us, seen, a, e, pop, in_a | in_e | in_p
        else:
            yield us, seen, scaled(a), scaled(e), scaled(pop), np.ones_like(seen, dtype=bool)


def key(w: float, p: float) -> str:
    """The result key of EASE's share ``w`` and popularity's share ``p`` (``"w 0.5"`` when ``p`` is 0)."""
    return f"w {w:g}" + (f" p {p:g}" if p else "")


def score_all(x, users, truth, als, ease, weights, candidates: int = 0, pops=(0.0,)) -> dict[str, np.ndarray]:
    """Per-user NDCG@10 of ALS alone (w 0), EASE alone (w 1), each blend weight and each popularity share ``p``
    of ``(1 - p) · blend + p · popularity``, plus popularity alone."""
    readers = np.asarray(x.sum(0)).ravel().astype(np.float32)
    tie = 1e-6 * readers / readers.max()  # popularity breaks ties (fills lists past EASE's candidates)
    out: dict[str, list[np.ndarray]] = {key(w, p): [] for p in pops for w in weights}
    out["popularity"] = []
    for us, seen, a, e, pop, allowed in scores_by_chunk(x, users, readers, als, ease, candidates=candidates):
        out["popularity"].append(ndcg_rows(np.tile(readers, (len(us), 1)), seen, us, truth))
        for p in pops:
            for w in weights:
                s = (1 - p) * ((1 - w) * a + w * e) + p * pop + tie
                out[key(w, p)].append(ndcg_rows(np.where(allowed, s, -np.inf), seen, us, truth))
    return {k: np.concatenate(v) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--als", default="64:0.5:5,16:0.007:0.6")
    p.add_argument("--lambdas", default="1,4,16,64")
    p.add_argument("--weights", default="0,0.2,0.35,0.5,0.65,0.8,1")
    p.add_argument(
        "--popularity",
        default="0",
        help="popularity's shares p of (1 - p) · blend + p · popularity, chosen on validation with w (0: no third source)",
    )
    p.add_argument(
        "--popularity-min-z",
        type=float,
        default=None,
        help="keep a popularity share only when it beats the best blend without it by this many standard errors "
        "of the per-user differences on validation (1 was tried in the product and withdrawn: docs/quality.md, Two-stage)",
    )
    p.add_argument(
        "--candidates",
        type=int,
        default=0,
        help="blend as the product does: over the union of each source's top-N, scaled by its top score (0: off)",
    )
    a = p.parse_args()
    t_start = time.perf_counter()
    rows, name = load(a.source)
    nu, nb = int(rows["user"].max()) + 1, int(rows["book"].max()) + 1
    test_mask = held_out(rows["user"].to_numpy(), 0.2, 42)
    train, test = rows[~test_mask], rows[test_mask]
    val_mask = held_out(train["user"].to_numpy(), 0.2, 43)
    tune, val = train[~val_mask], train[val_mask]
    weights = [float(w) for w in a.weights.split(",")]
    pops = [float(p) for p in a.popularity.split(",")]

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.master("local[2]").config("spark.driver.memory", "6g").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")

    def chosen(x, truth, users) -> tuple[dict, str, float]:
        """Fit every configuration on ``x``; the best of each family by NDCG@10 on ``truth``."""
        found = {}
        for cfg in a.als.split(","):
            s = score_all(x, users, truth, als_model(spark, x, cfg), None, [0.0])["w 0"]
            found[f"als {cfg}"] = float(s.mean())
            print(f"  als {cfg}: {s.mean():.4f}", flush=True)
        for lam in a.lambdas.split(","):
            s = score_all(x, users, truth, None, ease_model(x, float(lam)), [1.0])["w 1"]
            found[f"ease l2 {lam}"] = float(s.mean())
            print(f"  ease l2 {lam}: {s.mean():.4f}", flush=True)
        best_als = max((k for k in found if k.startswith("als")), key=found.get)
        best_ease = max((k for k in found if k.startswith("ease")), key=found.get)
        return found, best_als.split()[1], float(best_ease.split()[2])

    x_tune = matrix(tune, nu, nb)
    val_truth = truth_of(val, "val_rel")
    val_users = np.array(sorted(val_truth))
    print(f"validation: {len(tune):,} rows, {len(val_users):,} users", flush=True)
    singles, als_cfg, l2 = chosen(x_tune, val_truth, val_users)
    m_als, m_ease = als_model(spark, x_tune, als_cfg), ease_model(x_tune, l2)
    val_per_user = score_all(x_tune, val_users, val_truth, m_als, m_ease, weights, a.candidates, pops)
    on_val = {k: float(v.mean()) for k, v in val_per_user.items()}
    print("validation blends:", on_val, flush=True)
    w_best, p_best = max(((w, p) for p in pops for w in weights), key=lambda wp: on_val[key(*wp)])
    w_plain = max(weights, key=lambda w: on_val[key(w, 0.0)])
    share_z = None
    if p_best and a.popularity_min_z is not None:  # the one-standard-error rule
        share_z = paired_z(val_per_user[key(w_best, p_best)], val_per_user[key(w_plain, 0.0)])[1]
        if share_z < a.popularity_min_z:
            w_best, p_best = w_plain, 0.0

    x_train = matrix(train, nu, nb)
    test_truth = truth_of(test, "test_rel")
    test_users = np.array(sorted(test_truth))
    m_als, m_ease = als_model(spark, x_train, als_cfg), ease_model(x_train, l2)
    per_user = score_all(x_train, test_users, test_truth, m_als, m_ease, weights, a.candidates, pops)
    on_test = {k: round(float(v.mean()), 4) for k, v in per_user.items()}
    best_single = max(("w 0", "w 1", "popularity"), key=lambda k: on_val[k])
    gain = per_user[key(w_best, p_best)] - per_user[best_single]
    z = paired_z(per_user[key(w_best, p_best)], per_user[best_single])[1]
    spark.stop()
    result = {
        "source": f"{a.source.name}/{name}",
        "command": "python bench/blend.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "rows": {"train": len(train), "tune": len(tune), "validation": len(val), "test": len(test)},
        "users": {"validation": len(val_users), "test": len(test_users)},
        "books": nb,
        "candidates": a.candidates or "every book",
        "validation_ndcg@10": {"singles": {k: round(v, 4) for k, v in singles.items()}}
        | {"blends (w: EASE's share, p: popularity's)": {k: round(v, 4) for k, v in on_val.items()}},
        "chosen": {
            "als": als_cfg,
            "ease_l2": l2,
            "w": w_best,
            "p": p_best,
            "popularity_share_z_on_validation": None if share_z is None else recorded_z(share_z),
            "best_single_on_validation": best_single,
        },
        "test_ndcg@10": on_test,
        "test_gain_of_chosen_blend_over_best_single": {
            "mean": round(float(gain.mean()), 4),
            "z": recorded_z(z),  # None: the same difference for every user
        },
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    print(result, flush=True)
    append_result("blend", result)


if __name__ == "__main__":
    main()
