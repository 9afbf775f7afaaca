"""Optional MLflow tracking of pipeline runs (``pip install "recspark[mlflow]"``).

One MLflow run per pipeline run (named by the recspark run id) with the run configuration as parameters, every
evaluation metric at every K (``<model>.<metric>.at<K>``), the row counts and stage seconds, and the evaluation
report and its plot as artifacts; one nested run per tuning trial with the trial's parameters and its
validation NDCG. Where the tracking server is: ``MLFLOW_TRACKING_URI`` when set; on Databricks the workspace's
own server (MLflow's default there); otherwise ``./mlruns`` under the working directory (MLflow's folder store,
which MLflow 3 keeps behind ``MLFLOW_ALLOW_FILE_STORE=true``; set here unless you chose otherwise).

When MLflow is not installed, :func:`tracker` returns ``None`` (with a log line when tracking was asked for)
and the pipeline runs the same without it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXPERIMENT = "recspark"


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _key(name: str) -> str:
    """An MLflow metric/param key: letters, digits and ``_-. /`` only."""
    return re.sub(r"[^A-Za-z0-9_\-. /]+", "_", name).strip("_ ")


class MlflowTracker:
    """Logs to MLflow; every method is safe to call in any order (a missing parent run is started)."""

    def __init__(self, mlflow_module: Any, experiment: str = EXPERIMENT, uri: str | None = None) -> None:
        self.mlflow = mlflow_module
        uri = uri or _default_uri()
        if uri:
            if uri.startswith("file:"):
                # MLflow 3 keeps the folder store in maintenance mode behind this switch; it needs no database
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            self.mlflow.set_tracking_uri(uri)
        self.mlflow.set_experiment(experiment)
        self.parent = None
        self._pending_trials: list[dict] = []

    def _ensure_parent(self, name: str | None = None) -> None:
        if self.parent is None:
            self.parent = self.mlflow.start_run(run_name=name or "recspark")

    def trial(self, row: dict) -> None:
        """A tuning trial: a nested run with its parameters and validation NDCG (a trial cancelled by the
        per-trial cap has no score: it is tagged ``cancelled`` and logs only its seconds; one skipped as bound to be
        cancelled is tagged ``skipped`` with the reason)."""
        self._ensure_parent("recspark-tuning")
        with self.mlflow.start_run(run_name=f"trial-{row.get('rung')}-{row.get('rank')}", nested=True):
            self.mlflow.log_params(
                {k: row[k] for k in ("rank", "reg", "alpha", "scheme", "signals", "iterations")}
            )
            scores = {"seconds": float(row["seconds"])}
            if row.get("skipped"):
                self.mlflow.set_tag("skipped", row["skipped"])
            elif row.get("ndcg") is None:
                self.mlflow.set_tag("cancelled", "true")
            else:
                scores["validation_ndcg"] = float(row["ndcg"])
            self.mlflow.log_metrics(scores)

    def start(self, run_id: str, params: dict, tuning: dict | None) -> None:
        """The pipeline run: its parameters (flattened) and the tuning outcome."""
        self._ensure_parent(run_id)
        self.mlflow.set_tag("mlflow.runName", run_id)  # the parent may have been opened by the tuning trials
        self.mlflow.set_tag("recspark.run_id", run_id)
        flat = {_key(k): str(v)[:500] for k, v in _flatten(params).items()}
        self.mlflow.log_params(flat)
        if tuning:
            self.mlflow.log_dict(tuning, "tuning.json")
            best = tuning.get("best") or {}
            if "ndcg" in best:
                self.mlflow.log_metric("tuning.validation_ndcg", float(best["ndcg"]))

    def evaluation(self, ev: Any, report: Path) -> None:
        """Every metric at every K, and the report with its plot."""
        self._ensure_parent()
        values = {
            f"{model}.{metric}.at{k}": float(v)
            for model, by_k in ev.results.items()
            for k, ms in by_k.items()
            for metric, v in ms.items()
        }
        self.mlflow.log_metrics(values)
        for path in (report, report.with_suffix(".png")):
            if path.exists():
                self.mlflow.log_artifact(str(path))

    def finish(self, timings: dict, row_counts: dict) -> None:
        self._ensure_parent()
        self.mlflow.log_metrics({_key(f"seconds.{k}"): float(v) for k, v in timings.items()})
        self.mlflow.log_metrics({_key(f"rows.{k}"): float(v) for k, v in row_counts.items()})
        self.mlflow.log_text(json.dumps(row_counts, indent=1), "row_counts.json")
        self.mlflow.end_run()
        self.parent = None


def _default_uri() -> str | None:
    """``./mlruns`` unless MLFLOW_TRACKING_URI says otherwise or we are on Databricks (its own server)."""
    if os.environ.get("MLFLOW_TRACKING_URI") or "DATABRICKS_RUNTIME_VERSION" in os.environ:
        return None
    return Path("mlruns").resolve().as_uri()


def tracker(
    enabled: bool = True, experiment: str = EXPERIMENT, uri: str | None = None
) -> MlflowTracker | None:
    """An MLflow tracker, or None when ``enabled`` is false or MLflow is not installed."""
    if not enabled:
        return None
    try:
        import mlflow
    except ImportError:
        log.info('MLflow is not installed: runs are not tracked (pip install "recspark[mlflow]")')
        return None
    return MlflowTracker(mlflow, experiment, uri)
