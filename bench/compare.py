"""Before/after tables of two results files of the same benchmark, step by step, as ratios.

    python bench/compare.py --before before.json --after bench/results/scale-0.001.json --out overhead \
        --title "Fixed overheads of one run at scale 0.001"

Reads results of ``bench/scale.py`` (``steps``: per-step seconds) or ``bench/ingest.py`` (``stages``: per-file
seconds and rows/s) and writes bench/results/<out>.json and .md with both commands. The two runs should run one
after the other on an otherwise idle machine; the ratio, not the seconds, is the result.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rows_of(result: dict) -> dict[str, float]:
    if "steps" in result:
        out = {s["step"]: s["seconds"] for s in result["steps"]}
        out["(total after Spark start)"] = result["total_seconds"]
        for f in result.get("ingest_files", []):
            out[f"ingest: {f['table']}"] = f["seconds"]
        return out
    out = {f"{s['table']} ({s['file']})": s["seconds"] for s in result["stages"]}
    out["(total)"] = result["ingest_seconds"]
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--before", required=True)
    p.add_argument("--after", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--title", required=True)
    p.add_argument("--note", default="")
    args = p.parse_args()
    before, after = (json.loads(Path(f).read_text()) for f in (args.before, args.after))
    b, a = rows_of(before), rows_of(after)
    steps = [s for s in b if s in a] + [s for s in a if s not in b]
    table = [
        {
            "step": s,
            "before_s": b.get(s),
            "after_s": a.get(s),
            "after_over_before": round(a[s] / b[s], 2) if b.get(s) and a.get(s) is not None else None,
        }
        for s in steps
    ]
    out = {
        "title": args.title,
        "measured": time.strftime("%Y-%m-%d"),
        "before_command": before.get("command"),
        "after_command": after.get("command"),
        "note": args.note,
        "steps": table,
    }
    results = HERE / "results"
    (results / f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"# {args.title} ({out['measured']})",
        "",
        f"Before: `{out['before_command']}` on the code before the change; after: `{out['after_command']}`. "
        + args.note,
        "",
        "| step | before s | after s | after / before |",
        "|---|---:|---:|---:|",
    ]
    for r in table:
        lines.append(f"| {r['step']} | {r['before_s']} | {r['after_s']} | {r['after_over_before']} |")
    (results / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
