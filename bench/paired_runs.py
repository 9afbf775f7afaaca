"""Two `bench/quality.py` runs on the same data, compared user by user: is the difference more than noise?

    python bench/paired_runs.py --source /tmp/gbl/ratings --format goodbooks \
        --before /tmp/q-gbl-old --after /tmp/q-gbl

Rebuilds the held-out truth exactly as ``bench/quality.py`` did (same ``--seed``, same ``--next-shelves``), reads
the latest published ``gold/user_recommendations`` of each run's lakehouse (``<work>/lakehouse``) with deltalake,
and prints each run's NDCG@10 and the mean of the per-user differences (after - before) over its standard error
(the paired z), over the users with at least one relevant held-out book. Prints only; the runs' own records are in
``bench/results/quality.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from quality import per_user, prepare, prepare_next, published_lists  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--format", choices=["goodbooks", "goodreads"], required=True)
    p.add_argument("--before", type=Path, required=True, help="the first run's --work folder")
    p.add_argument("--after", type=Path, required=True, help="the second run's --work folder")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--next-shelves", type=int, default=None)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if a.next_shelves:
            truth = prepare_next(a.source.resolve(), a.format, Path(tmp) / "in", a.next_shelves, a.seed)
        else:
            truth = prepare(a.source.resolve(), a.format, Path(tmp) / "in", a.seed)
    scores = {}
    for name, work in (("before", a.before), ("after", a.after)):
        _, recs = published_lists(work / "lakehouse")[-1]
        scores[name] = per_user(recs, truth)["ndcg"]
        print(f"{name}: NDCG@10 {scores[name].mean():.4f} over {len(scores[name])} users ({work})")
    d = (scores["after"] - scores["before"]).to_numpy()
    z = d.mean() / (d.std(ddof=1) / np.sqrt(len(d))) if d.std() > 0 else 0.0
    print(
        f"after - before: {d.mean():+.4f} ({d.mean() / scores['before'].mean():+.1%}), paired z {z:.2f}; "
        f"users better {int((d > 0).sum())}, worse {int((d < 0).sum())}, same {int((d == 0).sum())}"
    )


if __name__ == "__main__":
    main()
