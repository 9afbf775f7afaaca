"""What the series rule does to held-out hits, on a goodbooks-format quality run (``bench/quality.py --work W``).

    python bench/series.py --work W --source ../shared/data/goodbooks-10k [--seed 1] [--name NAME] \
        [--label RUN_ID=TEXT ...]

To compare versions of the rule on one trained model, publish the same run again after a code change with a
different list length (``recspark run ... --no-evaluate --k 11``: a new run id, the model and its tuning
reused; the top 10 are scored).

``W`` must hold ``input/`` (the training side the run saw) and ``lakehouse/`` (one or more published runs). The
held-out truth is rebuilt exactly as ``bench/quality.py`` built it (same source, same seed). For every published
run: NDCG@10 and recall@10 of its lists from outside (deltalake), and for each top-10 row the series rule
replaced (``explanation`` "next in series: ..."): whether the reader had already shelved a volume of that series
in training (a *started* series), whether the replacement is a held-out book (a hit), and whether the held-out
books hold a later volume of that series than the replacement (an upper bound on the model's own pick having
been a hit). Appends to ``bench/results/series.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import quality  # noqa: E402
from common import append_result, goodbooks_rows  # noqa: E402

from recspark.series import VOLUME_PATTERN  # noqa: E402

VOLUME = re.compile(VOLUME_PATTERN)


def volumes(books: pd.DataFrame) -> dict[int, tuple[str, int]]:
    """goodreads_book_id -> (series name, volume) for titles ending in ``(<series>, #<n>)``."""
    out = {}
    for gid, title in zip(books["goodreads_book_id"], books["title"], strict=True):
        m = VOLUME.search(str(title))
        if m:
            out[int(gid)] = (m.group(1).strip(), int(m.group(2)))
    return out


def replacements(recs: pd.DataFrame, truth: pd.DataFrame, shelves: pd.Series, vol: dict) -> dict[str, int]:
    """Counts over the top-10 rows the series rule replaced (see the module docstring)."""
    rel = truth[truth["relevant"]].groupby("user_id")["book_id"].apply(set)
    top = recs[recs["rank"] <= 10]
    replaced = top[top["explanation"].fillna("").str.startswith("next in series")]
    counts = {"top10_rows": len(top), "replaced": len(replaced)}
    for kind in ("started", "unstarted"):
        counts |= {f"{kind}": 0, f"{kind}_hits": 0, f"{kind}_truth_has_later_volume": 0}
    for r in replaced.itertuples():
        name, m = vol[r.book_id]
        kind = (
            "started"
            if any(vol.get(b, ("", 0))[0] == name for b in shelves.get(r.user_id, ()))
            else "unstarted"
        )
        held = rel.get(r.user_id, set())
        counts[kind] += 1
        counts[f"{kind}_hits"] += int(r.book_id in held)
        counts[f"{kind}_truth_has_later_volume"] += int(
            any(vol.get(b, ("", 0))[0] == name and vol[b][1] > m for b in held)
        )
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--name", default=None)
    p.add_argument("--label", action="append", default=[], help="RUN_ID=TEXT: what distinguishes that run")
    a = p.parse_args()
    labels = dict(x.split("=", 1) for x in a.label)
    truth = quality.prepare(a.source, "goodbooks", Path(tempfile.mkdtemp()) / "train", a.seed)
    truth = truth.assign(user_id=truth["user_id"].astype(str))
    books = pd.read_csv(a.source / "books.csv")
    vol = volumes(books)
    gid = dict(zip(books["book_id"], books["goodreads_book_id"], strict=True))
    name = goodbooks_rows(a.work / "input")
    train = pd.read_csv(a.work / "input" / name)
    shelves = (
        train.assign(user_id=train["user_id"].astype(str), gid=train["book_id"].map(gid))
        .groupby("user_id")["gid"]
        .apply(set)
    )
    out = []
    for run, recs in quality.published_lists(a.work / "lakehouse"):
        params = json.loads(run["params"])
        row = {"run_id": run["run_id"], "label": labels.get(run["run_id"]), "model": params["model"]}
        row |= {"itemcf": params.get("itemcf")}
        row |= quality.score(recs, truth)
        row |= replacements(recs, truth, shelves, vol)
        print(json.dumps(row))
        out.append(row)
    result = {
        "name": a.name or a.work.name,
        "command": "python bench/series.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "runs": out,
    }
    append_result("series", result)


if __name__ == "__main__":
    main()
