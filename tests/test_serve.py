"""The consumer's HTTP layer on 127.0.0.1 with a stand-in reader (no Spark, no Delta): bad ``n`` gets a 400 with
a JSON error, unknown paths a JSON 404, good requests the first ``n`` items; and the consumer imports where pyspark
is not installed."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

import pytest

from recspark.serve import MAX_N, Item, make_handler


class StubReader:
    run_id = "run-stub"

    def __init__(self) -> None:
        self.items = [Item(book_id=b, score=1.0 / b, title=f"t{b}", extra={}) for b in range(1, 21)]

    def recommend(self, user_id: str, n: int = 10):
        return self.items[:n], user_id != "known"

    def similar_to(self, book_id: int, n: int = 10):
        return self.items[:n]


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(StubReader()))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("n", ["-1", "0", "abc", "1.5", str(MAX_N + 1)])
def test_bad_n_is_a_400_with_a_json_error(server, n):
    status, body = get(f"{server}/recommendations/known?n={n}")
    assert status == 400 and "n must be" in body["error"]


def test_good_requests(server):
    status, body = get(f"{server}/recommendations/known?n=3")
    assert (
        status == 200 and [i["book_id"] for i in body["items"]] == [1, 2, 3] and body["cold_start"] is False
    )
    status, body = get(f"{server}/recommendations/someone")
    assert status == 200 and len(body["items"]) == 10 and body["cold_start"] is True
    status, body = get(f"{server}/similar/5?n=2")
    assert status == 200 and body["book_id"] == 5 and len(body["items"]) == 2


def test_unknown_path_is_a_json_404(server):
    status, body = get(f"{server}/nothing/here")
    assert status == 404 and "use GET /recommendations" in body["error"]


BLOCK_PYSPARK = """
import sys


class NoSpark:
    def find_spec(self, name, path=None, target=None):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ImportError("no pyspark here: " + name)
        return None


sys.meta_path.insert(0, NoSpark())
import recspark.serve

print("imported", sorted(m for m in sys.modules if m.startswith("recspark")))
"""


def test_the_consumer_imports_where_pyspark_is_not_installed():
    """``recspark.serve`` (with the fold-in, the blend, the series and MMR steps) runs where only the base
    dependencies are installed: imported in a fresh interpreter in which every pyspark import fails."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", BLOCK_PYSPARK], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'recspark.diversity'" in out.stdout and "'recspark.foldin'" in out.stdout
