"""The Spark-free consumer under load: load time and memory at scale-0.1 size, GET and fold-in POST latency at
concurrency 1 and 8 on 127.0.0.1, and how close folded-in lists are to the batch lists.

    .venv/bin/python bench/serve.py --lakehouse LAKE            # LAKE: a lakehouse with a published run

1. **Quality** (on ``--lakehouse``, a real ``recspark run``): for up to ``--users`` users with published lists,
   their silver shelves (read with deltalake) are posted to the fold-in path; overlap@10 = the share of the
   published top-10 that the folded-in top-10 also holds; identical lists, and how many of the others the batch's
   series step changed (the consumer does not order series).
2. **Size** (``--books``, ``--users-at-size``; the defaults are scale 0.1 of Goodreads: 236k books, 88k users):
   gold tables of that size are written with deltalake (random factors and vectors of the published rank and
   dimension, 10 recommendations per user, 10 similar books per book) and loaded by the consumer: load seconds,
   resident memory, array bytes, extrapolated to full size (9M recommendation rows, 47M similar rows, 2.36M
   books).
3. **Latency** on the size-2 tables through the HTTP server: ``GET /recommendations/<user>`` and ``POST
   /recommendations`` with ``--shelves`` shelves, ``--requests`` requests per level (bounded by ``--seconds``),
   at concurrency 1 and 8 (keep-alive connections, one per client thread); p50/p99 milliseconds and requests/s.

Writes bench/results/serve.json.
"""

from __future__ import annotations

import os

# one BLAS thread per request thread, as the server sets for itself (recspark.serve): 8 request threads each
# starting 2 BLAS threads on 2 cores thrash
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from recspark import serve  # noqa: E402
from recspark.serve import GoldReader  # noqa: E402

FULL = {"recommendation_rows": 9_000_000, "similar_rows": 47_000_000, "books": 2_360_000}


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_in_fresh_process(root: Path) -> dict:
    """Resident memory of a fresh Python process before and after it loads the consumer (and its peak)."""
    import subprocess

    code = (
        f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import serve as b; from recspark import serve; "
        f"before = b.rss_mib(); r = serve.GoldReader({str(root)!r}); "
        "print(json.dumps({'rss_before_mib': before, 'rss_after_mib': b.rss_mib(), "
        "'peak_mib': b.rss_mib('VmHWM'), 'load_seconds': r.load_seconds}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def series_step(item) -> bool:
    """Whether the series step made this published item: "next in series", or the popular fill (no reason)."""
    reason = item.extra.get("explanation") or ""
    return reason.startswith("next in series") or item.extra.get("because_book_id") is None


def quality(lakehouse: str, users: int, seed: int) -> dict:
    """overlap@10 of folded-in lists with the published lists, for up to ``users`` sampled users."""
    from deltalake import DeltaTable

    reader = GoldReader(lakehouse)
    silver = f"{lakehouse.rstrip('/')}/silver"
    inter = DeltaTable(f"{silver}/interactions").to_pyarrow_table(
        columns=["user_idx", "book_idx", "rating", "is_read", "is_reviewed", "date_added"]
    )
    uids = DeltaTable(f"{silver}/users").to_pyarrow_table(columns=["user_idx", "user_id"]).to_pydict()
    bids = DeltaTable(f"{silver}/books").to_pyarrow_table(columns=["book_idx", "book_id"]).to_pydict()
    user_of = dict(zip(uids["user_idx"], uids["user_id"]))
    book_of = dict(zip(bids["book_idx"], bids["book_id"]))
    by_user: dict[int, list[dict]] = {}
    cols = inter.to_pydict()
    for i, u in enumerate(cols["user_idx"]):
        d = cols["date_added"][i]
        by_user.setdefault(u, []).append(
            {
                "book_id": book_of[cols["book_idx"][i]],
                "rating": cols["rating"][i] or 0,
                "is_read": bool(cols["is_read"][i]),
                "is_reviewed": bool(cols["is_reviewed"][i]),
                "date_added": None if d is None else d.isoformat(),
            }
        )
    rng = np.random.default_rng(seed)
    candidates = [u for u in by_user if reader.recs.find(user_of[u]) is not None]
    picked = rng.choice(len(candidates), size=min(users, len(candidates)), replace=False)
    overlaps, exact, touched, millis = [], 0, 0, []
    for j in picked:
        u = candidates[j]
        items = reader.recommend(user_of[u], 10)[0]
        batch = [i.book_id for i in items]
        shelves, _ = serve.parse_body(json.dumps({"shelves": by_user[u]}).encode())
        t = time.perf_counter()
        folded = [i["book_id"] for i in reader.fold_in(shelves, 10)["items"]]
        millis.append((time.perf_counter() - t) * 1000)
        overlaps.append(len(set(batch) & set(folded)) / max(len(batch), 1))
        exact += batch == folded
        # the batch's series step (recspark.series), which the consumer does not take: an earlier volume in a
        # later one's place ("next in series"), or a volume folded away and the list filled from popular books
        touched += batch != folded and any(series_step(i) for i in items)
    return {
        "lakehouse_run": reader.run_id,
        "model": reader.info.model,
        "item_level": reader.info.item_level,
        "users": len(picked),
        "overlap@10": round(float(np.mean(overlaps)), 4),
        "identical_lists": exact,
        "other_lists_the_series_step_changed": touched,
        "fold_in_ms_p50_in_process": round(float(np.percentile(millis, 50)), 2),
        "catalogue_books": len(reader.catalogue),
    }


def write_sized_gold(root: Path, n_books: int, n_users: int, rank: int, dim: int, seed: int) -> str:
    """Gold tables of the given size (random content) for one published run; returns the run id."""
    from deltalake import write_deltalake

    rng = np.random.default_rng(seed)
    run = "run-sized"
    book_ids = np.arange(1, n_books + 1, dtype=np.int64) * 7
    factors = (rng.standard_normal((n_books, rank)) * 0.1).astype(np.float32)
    vectors = rng.standard_normal((n_books, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    readers = np.maximum(rng.zipf(1.6, n_books), 1).astype(np.int64)
    titles = pa.array([f"Title of book {b}" for b in book_ids])
    authors = pa.array([f"Author {b % 9973}" for b in book_ids])

    def lists(values: np.ndarray, d: int) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), d).cast(pa.list_(pa.float32()))

    g = root / "gold"
    write_deltalake(
        str(g / "serving_books"),
        pa.table(
            {
                "run_id": [run] * n_books,
                "book_id": book_ids,
                "title": titles,
                "authors": authors,
                "readers": readers,
                "factors": lists(factors, rank),
                "vector": lists(vectors, dim),
            }
        ),
    )
    yty = (factors.astype(np.float64).T @ factors.astype(np.float64)).ravel().tolist()
    write_deltalake(
        str(g / "serving_model"),
        pa.table(
            {
                "run_id": [run],
                "model": ["als"],
                "alpha": [10.0],
                "reg": [1.0],
                "weights": [json.dumps({"scheme": "log"})],
                "yty": pa.array([yty], pa.list_(pa.float64())),
                "reference_date": pa.array([None], pa.timestamp("us")),
                "n_users": [n_users],
                "avg_books": [261.0],
                "content": [json.dumps({"half_life_days": 365.0, "popularity_weight": 1.0})],
            }
        ),
    )
    k = 10
    user_ids = np.array([f"{u:032x}" for u in range(n_users)])
    rec_books = book_ids[rng.integers(0, n_books, n_users * k)]
    write_deltalake(
        str(g / "user_recommendations"),
        pa.table(
            {
                "run_id": [run] * (n_users * k),
                "user_id": np.repeat(user_ids, k),
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n_users),
                "book_id": rec_books,
                "score": rng.random(n_users * k).astype(np.float32),
                "title": pa.nulls(n_users * k, pa.string()),
                "authors": pa.nulls(n_users * k, pa.string()),
                "because_book_id": book_ids[rng.integers(0, n_books, n_users * k)],
                "predicted_rating": pa.nulls(n_users * k, pa.float32()),
            }
        ),
    )
    write_deltalake(
        str(g / "similar_books"),
        pa.table(
            {
                "run_id": [run] * (n_books * k),
                "book_id": np.repeat(book_ids, k),
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n_books),
                "similar_book_id": book_ids[rng.integers(0, n_books, n_books * k)],
                "score": rng.random(n_books * k).astype(np.float32),
                "title": pa.nulls(n_books * k, pa.string()),
                "similar_title": pa.nulls(n_books * k, pa.string()),
                "method": ["als"] * (n_books * k),
            }
        ),
    )
    top = np.argsort(-readers)[:100]
    write_deltalake(
        str(g / "popular_books"),
        pa.table(
            {
                "run_id": [run] * 100,
                "window": ["all"] * 100,
                "rank": np.arange(1, 101, dtype=np.int32),
                "book_id": book_ids[top],
                "readers": readers[top],
                "title": titles.take(pa.array(top)),
                "authors": authors.take(pa.array(top)),
            }
        ),
    )
    now = pa.array([time.time() * 1e6], pa.int64()).cast(pa.timestamp("us"))
    write_deltalake(
        str(g / "runs"),
        pa.table(
            {
                "run_id": [run],
                "status": ["published"],
                "started_at": now,
                "finished_at": now,
            }
        ),
    )
    return run


def load_test(url_port: int, make_request, n_requests: int, concurrency: int, limit_s: float) -> dict:
    """p50/p99 latency (ms) and throughput of ``n_requests`` from ``concurrency`` keep-alive clients."""
    latencies: list[float] = []
    failures = []
    lock = threading.Lock()
    deadline = time.perf_counter() + limit_s
    per_client = max(1, n_requests // concurrency)

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=30)
        mine = []
        for _ in range(per_client):
            if time.perf_counter() > deadline:
                break
            method, path, body = make_request(rng)
            t = time.perf_counter()
            conn.request(
                method, path, body=body, headers={"Content-Type": "application/json"} if body else {}
            )
            resp = conn.getresponse()
            resp.read()
            mine.append((time.perf_counter() - t) * 1000)
            if resp.status != 200:
                failures.append(resp.status)
        conn.close()
        with lock:
            latencies.extend(mine)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(latencies)
    return {
        "concurrency": concurrency,
        "requests": len(lat),
        "failures": len(failures),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "requests_per_s": round(len(lat) / wall, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lakehouse", help="a lakehouse with a published run (quality check); omitted: skipped")
    p.add_argument("--users", type=int, default=300, help="users sampled for the quality check")
    p.add_argument("--books", type=int, default=236_000)
    p.add_argument("--users-at-size", type=int, default=88_000)
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--shelves", type=int, default=50, help="shelves per fold-in POST")
    p.add_argument("--requests", type=int, default=2000, help="requests per (endpoint, concurrency)")
    p.add_argument("--seconds", type=float, default=60.0, help="time limit per (endpoint, concurrency)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--quality-only", action="store_true", help="only the quality check (kept beside earlier ones)"
    )
    a = p.parse_args()

    out = HERE / "results" / "serve.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    result: dict = {
        "command": "python bench/serve.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
    }

    def key(q: dict) -> tuple[str, str]:  # one row per published family and item level
        return q["model"], q.get("item_level", "edition")

    quality_rows = {key(q): q for q in previous.get("quality", [])}
    if a.lakehouse:
        row = {"command": result["command"], **quality(a.lakehouse, a.users, a.seed)}
        quality_rows[key(row)] = row
        print("quality", row, flush=True)
    result["quality"] = list(quality_rows.values())
    if a.quality_only:
        out.write_text(json.dumps({**previous, "quality": result["quality"]}, indent=1) + "\n")
        print(f"wrote {out}")
        return

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        write_sized_gold(work, a.books, a.users_at_size, a.rank, a.dim, a.seed)
        fresh = load_in_fresh_process(work)
        consumer = serve.Consumer(str(work))
        reader = consumer.reader
        rec_rows = len(reader.recs.columns["book_id"])
        sim_rows = len(reader.similar.columns["similar_book_id"])
        books = len(reader.catalogue)
        per = {
            "recs": reader.recs.nbytes / rec_rows,
            "similar": (reader.similar.nbytes + reader.sim_neighbour.nbytes + reader.sim_score.nbytes)
            / sim_rows,
            "books": (reader.catalogue.nbytes + reader.sim_indptr.nbytes) / books,
        }
        full_bytes = (
            per["recs"] * FULL["recommendation_rows"]
            + per["similar"] * FULL["similar_rows"]
            + per["books"] * FULL["books"]
        )
        result["size"] = {
            "books": books,
            "users": len(reader.recs),
            "recommendation_rows": rec_rows,
            "similar_rows": sim_rows,
            "rank": a.rank,
            "content_dim": a.dim,
            "load_seconds": round(fresh["load_seconds"], 2),
            "fresh_process_rss_mib": {k: round(v, 1) for k, v in fresh.items() if k.endswith("mib")},
            "array_mib": round(reader.nbytes / 2**20, 1),
            "bytes_per_row": {k: round(v, 1) for k, v in per.items()},
            "full_size_array_gib_estimate": round(full_bytes / 2**30, 2),
        }
        print("size", result["size"], flush=True)

        httpd = serve.ThreadingHTTPServer(("127.0.0.1", 0), serve.make_handler(consumer))
        port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        users = reader.recs.keys
        book_ids = reader.catalogue.book_ids

        def get(rng):
            return "GET", f"/recommendations/{users[rng.integers(len(users))].decode()}?n=10", None

        def post(rng):
            shelves = [
                {"book_id": int(b), "rating": int(rng.integers(0, 6))}
                for b in rng.choice(book_ids, a.shelves)
            ]
            return "POST", "/recommendations?n=10", json.dumps({"shelves": shelves}).encode()

        result["latency"] = []
        for name, make in (
            ("GET /recommendations/<user>", get),
            (f"POST /recommendations ({a.shelves} shelves)", post),
        ):
            for conc in (1, 8):
                row = {"endpoint": name, **load_test(port, make, a.requests, conc, a.seconds)}
                result["latency"].append(row)
                print(row, flush=True)
        httpd.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
