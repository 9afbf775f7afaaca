"""A consumer that needs no Spark: reads the latest published run with ``deltalake`` (delta-rs) and answers
"top N for user X" and "books like Y" from in-memory indexes (microseconds per lookup after loading).

    python -m recspark.serve --lakehouse data/lakehouse --port 8000
    curl localhost:8000/recommendations/<user_id>?n=10
    curl localhost:8000/similar/<book_id>?n=10

Unknown users (cold start) get the published popular books. Only ``deltalake``, ``pyarrow`` and the standard
library are used -- this file does not import pyspark.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pyarrow.compute as pc
from deltalake import DeltaTable

log = logging.getLogger(__name__)


@dataclass
class Item:
    book_id: int
    score: float
    title: str | None
    extra: dict

    def as_dict(self) -> dict:
        return {"book_id": self.book_id, "score": self.score, "title": self.title, **self.extra}


class GoldReader:
    """Loads the latest published run's gold tables into dictionaries."""

    def __init__(self, lakehouse: str):
        self.root = lakehouse.rstrip("/")
        t0 = time.perf_counter()
        self.run_id = self._latest_published()
        self.recs = self._group(
            "user_recommendations",
            "user_id",
            lambda r: Item(
                r["book_id"],
                r["score"],
                r["title"],
                {
                    "authors": r["authors"],
                    "because_book_id": r["because_book_id"],
                    "predicted_rating": r.get("predicted_rating"),  # absent in runs published before it
                },
            ),
        )
        self.similar = self._group(
            "similar_books",
            "book_id",
            lambda r: Item(r["similar_book_id"], r["score"], r["similar_title"], {"method": r.get("method")}),
        )
        pop = self._table("popular_books")
        pop = pop.filter(pc.equal(pop["window"], "all")).sort_by("rank").to_pylist()
        self.popular = [
            Item(
                r["book_id"],
                float(r["readers"]),
                r["title"],
                {"authors": r["authors"], "because_book_id": None},
            )
            for r in pop
        ]
        self.load_seconds = time.perf_counter() - t0

    def _path(self, name: str) -> str:
        return f"{self.root}/gold/{name}"

    def _latest_published(self) -> str:
        runs = DeltaTable(self._path("runs")).to_pyarrow_table().to_pylist()
        published = [r for r in runs if r["status"] == "published"]
        if not published:
            raise LookupError(f"no published run in {self.root}")
        return max(published, key=lambda r: r["finished_at"])["run_id"]

    def _table(self, name: str):
        return DeltaTable(self._path(name)).to_pyarrow_table(filters=[("run_id", "=", self.run_id)])

    def _group(self, name: str, key: str, make) -> dict:
        out: dict = {}
        for r in self._table(name).sort_by([(key, "ascending"), ("rank", "ascending")]).to_pylist():
            out.setdefault(r[key], []).append(make(r))
        return out

    def recommend(self, user_id: str, n: int = 10) -> tuple[list[Item], bool]:
        """(items, cold_start)."""
        items = self.recs.get(user_id)
        if items is None:
            return self.popular[:n], True
        return items[:n], False

    def similar_to(self, book_id: int, n: int = 10) -> list[Item]:
        return self.similar.get(book_id, [])[:n]


MAX_N = 1000  # the largest list a request may ask for


def parse_n(query: str) -> int:
    """``n`` of a query string: a whole number in 1..MAX_N (default 10); ValueError with the reason otherwise."""
    raw = parse_qs(query).get("n", ["10"])[0]
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"n must be a whole number, not {raw!r}") from None
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n must be between 1 and {MAX_N}, not {n}")
    return n


def make_handler(reader: GoldReader):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            url = urlparse(self.path)
            try:
                n = parse_n(url.query)
            except ValueError as exc:
                self._json(400, {"error": str(exc)})
                return
            parts = [p for p in url.path.split("/") if p]
            t0 = time.perf_counter()
            if len(parts) == 2 and parts[0] == "recommendations":
                items, cold = reader.recommend(parts[1], n)
                body = {"user_id": parts[1], "cold_start": cold, "items": [i.as_dict() for i in items]}
            elif len(parts) == 2 and parts[0] == "similar" and parts[1].isdigit():
                body = {
                    "book_id": int(parts[1]),
                    "items": [i.as_dict() for i in reader.similar_to(int(parts[1]), n)],
                }
            else:
                self._json(404, {"error": "use /recommendations/<user_id> or /similar/<book_id>"})
                return
            body["run_id"] = reader.run_id
            body["millis"] = round((time.perf_counter() - t0) * 1000, 3)
            self._json(200, body)

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args) -> None:
            log.debug(fmt, *args)

    return Handler


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="serve recommendations from the latest published run (no Spark)")
    p.add_argument("--lakehouse", default="data/lakehouse")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args(argv)
    reader = GoldReader(args.lakehouse)
    print(
        f"run {reader.run_id}: {len(reader.recs):,} users, {len(reader.similar):,} books loaded in {reader.load_seconds:.2f} s"
    )
    print(f"listening on http://{args.host}:{args.port}/recommendations/<user_id> and /similar/<book_id>")
    ThreadingHTTPServer((args.host, args.port), make_handler(reader)).serve_forever()


if __name__ == "__main__":
    main()
