"""Monitor runs end to end on a store that already holds a million payload and feedback rows.

    python bench/monitors.py [--rows 1000000] [--new 10000] [--backends sqlite,postgresql]

Per backend:

1. Load: ``--rows`` payload rows (20 numeric + 5 categorical features, the peer baselines'
   shape; prediction and probability) spread over 30 days, and as many feedback rows (true
   labels drawn from the probabilities), through ``scrutiny.ingest.writer.write_batch`` in this
   process (the fast ingest path, in 50,000-row transactions) with the monitors enabled, so
   partial aggregates are built as at ingest. The first 200,000 payload rows go in
   1,000-row batches, beside the same rows into a subscription with no monitor: the ingest
   overhead of the listeners.
2. A real ``scrutiny serve`` process (scheduler off) on that store; every monitor is run through
   ``POST /v1/subscriptions/{id}/monitors/{name}/runs`` and timed end to end (HTTP, every read
   from the store, evaluation, storing the measurement). Then ``--new`` rows of payload and of
   feedback arrive through the SDK (Arrow batches, JSON feedback) and each monitor runs again;
   then once more with nothing new. Peak RSS of the server process (VmHWM) is reported.
3. Backfill: a reconfiguration that changes what the partials depend on (quality's positive
   class) rebuilds them from every stored row, timed through ``PUT``.
4. Baselines in the same run, in memory in this process: SciPy ``ks_2samp`` over the 20 numeric
   columns (reference and current of ``--rows`` each, as in the peer baselines), scikit-learn's
   quality metrics over the same labels and scores, and a NumPy factorize+bincount favourable
   rate per group (the fairness floor). Quality values are checked against scikit-learn.

Prints one JSON line. The machine is shared while helpers work: compare figures within one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import CAT_COLS, FEATURES, NUM_COLS, emit, make_frame, peak_rss_mb, pg_available, pg_schema, server

PG_URL = os.environ.get("SCRUTINY_BENCH_PG_URL", "postgresql+psycopg://127.0.0.1:5432/test")
LABELS = ["bad", "good"]
CHUNK = 50_000
DAYS = 30
TARGETS = {"drift_s": 1.5, "drift_peak_rss_mb": 300, "fairness_s": 0.5, "quality_s": 1.5}


# -- data ----------------------------------------------------------------------------------------------


def outputs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability [n, 2], prediction labels, true labels drawn from the probability)."""
    rng = np.random.default_rng(seed + 7)
    p1 = np.round(rng.beta(2, 2, n), 6)
    proba = np.column_stack([1 - p1, p1])
    pred = np.where(p1 >= 0.5, "good", "bad").astype(object)
    truth = np.where(rng.random(n) < p1, "good", "bad").astype(object)
    return proba, pred, truth


def record_batch(
    start: int, n: int, t0: np.datetime64, span_us: int, total: int, prefix: str, seed: int, feedback: bool
) -> Any:
    from scrutiny.core.schema import Kind
    from scrutiny.ingest.batch import RecordBatch

    frame = make_frame(n, seed=seed + start)
    proba, pred, truth = outputs(n, seed + start)
    cols: dict[str, np.ndarray] = {}
    kinds: dict[str, Kind] = {}
    for c in NUM_COLS:
        cols[c] = frame[c].to_numpy(dtype=np.float64)
        kinds[c] = Kind.FLOAT
    for c in CAT_COLS:
        cols[c] = frame[c].to_numpy(dtype=object)
        kinds[c] = Kind.STR
    cols["prediction"], kinds["prediction"] = pred, Kind.STR
    cols["prediction_probability"], kinds["prediction_probability"] = proba.max(axis=1), Kind.FLOAT
    cols["deployment_id"], kinds["deployment_id"] = np.full(n, "bench", dtype=object), Kind.STR
    cols["asset_revision"], kinds["asset_revision"] = np.full(n, None, dtype=object), Kind.STR
    if feedback:
        cols["label"], kinds["label"] = truth, Kind.STR
    else:
        cols["response_time"] = np.random.default_rng(seed + start).integers(5, 200, n).astype(np.float64)
        kinds["response_time"] = Kind.INT
    idx = np.arange(start, start + n)
    ts = t0 + (idx * (span_us // total)).astype("timedelta64[us]")
    return RecordBatch(
        ids=np.array([f"{prefix}{i}-1" for i in idx], dtype=object),
        timestamps=ts.astype("datetime64[us]"),
        columns=cols,
        kinds=kinds,
        probability=proba,
        client_ids=np.zeros(n, dtype=bool),  # new ids: skip the duplicate check
        record_index=np.arange(n),  # one row per record, as ingest marks them
    )


def subscribe(service: Any, name: str, training: Any) -> Any:
    binding, _ = service.bindings.create(name="bench", engine_type="custom", credentials={"url": "http://127.0.0.1:9"})
    return service.subscriptions.create(
        binding_id=binding.id,
        deployment={"name": name, "scoring_url": f"http://127.0.0.1:9/{name}"},
        asset_properties={
            "problem_type": "binary",
            "feature_fields": FEATURES,
            "categorical_fields": CAT_COLS,
            "label_column": "label",
            "labels": LABELS,
            "prediction_field": "prediction",
            "probability_fields": ["probability"],
        },
        training_frame=training,
    )


def monitor_configs(available: list[str]) -> dict[str, dict[str, Any]]:
    """Drift first: its peak RSS is measured from the server's resting footprint."""
    out: dict[str, dict[str, Any]] = {}
    if "drift" in available:
        # feature drift and data consistency; the accuracy detector needs the model's scores of the
        # training rows through an engine, which this bench has none of (bench/drift_core.py times it)
        out["drift"] = {"train_drift_model": False, "enable_model_drift": False}
    if "fairness" in available:
        out["fairness"] = {
            "features": [
                {"feature": "cat_0", "majority": ["c0_1", "c0_2", "c0_3"], "minority": ["c0_0"], "threshold": 0.8}
            ],
            "favourable_class": ["good"],
            "unfavourable_class": ["bad"],
            "min_records": 100,
        }
    out["quality"] = {"max_rows_per_evaluation": None}
    out["performance"] = {}
    return out


def load(
    service: Any,
    sub: Any,
    kind: str,
    total: int,
    t0: np.datetime64,
    span_us: int,
    seed: int,
    batch: int,
    start: int = 0,
    stop: int | None = None,
) -> float:
    from scrutiny.ingest.writer import write_batch

    stop = total if stop is None else stop
    t = time.perf_counter()
    for s in range(start, stop, batch):
        n = min(batch, stop - s)
        rb = record_batch(s, n, t0, span_us, total, "p", seed, feedback=(kind == "feedback"))
        r = write_batch(service.store, sub, rb, sub.layout, kind)
        assert r.stored == n, r
    return time.perf_counter() - t


def ingest_overhead(
    service: Any, plain: Any, sub: Any, t0: np.datetime64, span_us: int, rows: int, total: int
) -> dict[str, Any]:
    """The same rows in 1,000-row batches into a subscription with no monitor and into one with
    all of them, interleaved batch by batch (after a warm-up) so both see the same conditions."""
    from scrutiny.ingest.batch import RecordBatch
    from scrutiny.ingest.writer import write_batch

    def copy(rb: RecordBatch, prefix: str) -> RecordBatch:
        ids = np.array([prefix + i for i in rb.ids.tolist()], dtype=object)
        return RecordBatch(ids, rb.timestamps, dict(rb.columns), dict(rb.kinds), rb.probability,
                           record_index=rb.record_index, client_ids=rb.client_ids)  # fmt: skip

    warm = record_batch(0, 1000, t0, span_us, total, "warm", 1, False)
    for target in (plain, sub):
        write_batch(service.store, target, copy(warm, ""), target.layout, "payload")
    spent = {"no_monitors": 0.0, "all_monitors": 0.0}
    for s in range(0, rows, 1000):
        rb = record_batch(s, 1000, t0, span_us, total, "p", 1, False)
        for name, target in (("no_monitors", plain), ("all_monitors", sub)):
            batch = copy(rb, "")
            t = time.perf_counter()
            write_batch(service.store, target, batch, target.layout, "payload")
            spent[name] += time.perf_counter() - t
    out: dict[str, Any] = {
        name: {"rows": rows, "seconds": round(dt, 3), "rows_per_s": round(rows / dt)} for name, dt in spent.items()
    }
    out["listener_overhead"] = round(spent["all_monitors"] / spent["no_monitors"] - 1, 3)
    out["batch_rows"] = 1000
    return out


# -- runs through the API ----------------------------------------------------------------------------


def reset_peak_rss(pid: int) -> None:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux ``clear_refs``)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def timed_run(http: Any, sub_id: str, name: str) -> dict[str, Any]:
    t = time.perf_counter()
    r = http.post(f"/v1/subscriptions/{sub_id}/monitors/{name}/runs", timeout=600)
    dt = time.perf_counter() - t
    r.raise_for_status()
    m = r.json()
    out = {
        "seconds": round(dt, 3),
        "status": m["status"],
        "records": m["records"],
        "server_ms": m["duration_ms"],
        "measurement": m,
    }
    if m["status"] != "finished":
        out["message"] = m["message"]
    return out


# -- baselines ----------------------------------------------------------------------------------------


def baselines(rows: int) -> dict[str, Any]:
    import pandas as pd
    from scipy import stats
    from sklearn import metrics as skm

    out: dict[str, Any] = {}
    ref = make_frame(rows, seed=0)
    cur = pd.concat([make_frame(min(CHUNK, rows - s), seed=1 + s) for s in range(0, rows, CHUNK)], ignore_index=True)
    t = time.perf_counter()
    for c in NUM_COLS:
        stats.ks_2samp(ref[c].to_numpy(), cur[c].to_numpy())
    out["scipy_ks_2samp_20_numeric_s"] = round(time.perf_counter() - t, 3)
    parts = [outputs(min(CHUNK, rows - s), 1 + s) for s in range(0, rows, CHUNK)]
    proba = np.concatenate([p[0] for p in parts])
    pred = np.concatenate([p[1] for p in parts])
    truth = np.concatenate([p[2] for p in parts])
    t = time.perf_counter()
    yb, pb = (truth == "good").astype(int), (pred == "good").astype(int)
    prec, rec, _ = skm.precision_recall_curve(yb, proba[:, 1])
    sk = {
        "area_under_roc": skm.roc_auc_score(yb, proba[:, 1]),
        "area_under_pr": skm.auc(rec, prec),
        "accuracy": skm.accuracy_score(yb, pb),
        "recall": skm.recall_score(yb, pb),
        "precision": skm.precision_score(yb, pb),
        "f1_measure": skm.f1_score(yb, pb),
        "log_loss": skm.log_loss(yb, proba[:, 1]),
    }
    out["sklearn_quality_metrics_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    codes, _ = pd.factorize(cur["cat_0"].to_numpy())
    fav = np.bincount(codes, weights=(pred == "good"), minlength=codes.max() + 1) / np.bincount(codes)
    out["numpy_favourable_rate_per_group_s"] = round(time.perf_counter() - t, 4)
    out["_sklearn_values"] = sk
    out["_fav"] = fav.tolist()
    return out


# -- one backend --------------------------------------------------------------------------------------


def run_backend(name: str, url: str | None, rows: int, new: int, overhead_rows: int) -> dict[str, Any]:
    import httpx
    import pandas as pd

    from scrutiny.config import Settings
    from scrutiny.monitors import registry
    from scrutiny.sdk import Client
    from scrutiny.service import Service

    out: dict[str, Any] = {}
    available = registry.names()
    with tempfile.TemporaryDirectory() as d:
        db_url = url or f"sqlite:///{d}/bench.db"
        from cryptography.fernet import Fernet

        secret = Fernet.generate_key().decode()  # the server must open what the loader sealed (drift's archive)
        service = Service(
            Settings(data_dir=Path(d) / "loader", database_url=db_url, sqlite_synchronous="NORMAL", secret_key=secret)
        )
        training = make_frame(100_000, seed=0)
        training["label"] = outputs(100_000, 0)[2]
        sub = subscribe(service, "bench", training)
        plain = subscribe(service, "plain", training)
        service.monitors.disable(plain.id, "performance")
        configs = monitor_configs(available)
        for mon, cfg in configs.items():
            service.monitors.configure(sub.id, mon, cfg)
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        t0 = np.datetime64((end - timedelta(days=DAYS)).replace(tzinfo=None), "us")
        span_us = DAYS * 86400 * 1_000_000
        overhead_rows = min(overhead_rows, rows)
        out["ingest_overhead"] = ingest_overhead(service, plain, sub, t0, span_us, overhead_rows, rows)
        out["load"] = {
            "method": "scrutiny.ingest.writer.write_batch in the bench process, 50,000-row transactions, monitors enabled",
            "payload_s": round(load(service, sub, "payload", rows, t0, span_us, 1, CHUNK, start=overhead_rows), 2),
            "feedback_s": round(
                load(service, sub, "feedback", rows, t0 + np.timedelta64(1, "s"), span_us, 1, CHUNK), 2
            ),
        }
        service.close()

        with server(db_url, {"SCRUTINY_SCHEDULER": "0", "SCRUTINY_SECRET_KEY": secret}) as (api, key, pid):
            out["server_rss_at_start_mb"] = peak_rss_mb(pid)
            http = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"})
            runs: dict[str, Any] = {}
            for mon in configs:
                reset_peak_rss(pid)  # each monitor's own peak, not the previous one's
                runs[mon] = {"first": timed_run(http, sub.id, mon)}
                runs[mon]["first"]["server_peak_rss_mb"] = peak_rss_mb(pid)
            out["server_peak_rss_after_first_runs_mb"] = peak_rss_mb(pid)
            # new rows arrive through the API
            client = Client(api, key, timeout=600)
            csub = client.subscriptions.get(sub.id)
            new_frame = make_frame(new, seed=99)
            proba, pred, truth = outputs(new, 99)
            ids = [f"new{i}" for i in range(new)]
            now = datetime.now(UTC)
            t = time.perf_counter()
            res = csub.payload_logging.store(
                new_frame,
                pd.DataFrame({"prediction": pred, "probability": list(proba)}),
                scoring_ids=ids,
                scoring_timestamps=[now] * new,
                response_times=[20] * new,
                batch_size=1000,
            )
            assert res["stored"] == new, res
            fb = csub.feedback_logging.store(
                pd.DataFrame({"scoring_id": [f"{i}-1" for i in ids], "label": truth}), batch_size=5000
            )
            assert fb["stored"] == new, fb
            out["new_rows"] = {"rows": new, "payload_and_feedback_s": round(time.perf_counter() - t, 3)}
            for mon in configs:
                runs[mon]["after_new_rows"] = timed_run(http, sub.id, mon)
                runs[mon]["nothing_new"] = timed_run(http, sub.id, mon)
            out["server_peak_rss_mb"] = peak_rss_mb(pid)
            # backfill: a change of plan rebuilds partials from every stored feedback row
            t = time.perf_counter()
            r = http.put(
                f"/v1/subscriptions/{sub.id}/monitors/quality",
                json={"max_rows_per_evaluation": None, "positive_class": "bad"},
                timeout=900,
            )
            r.raise_for_status()
            out["quality_backfill_put_s"] = round(time.perf_counter() - t, 3)
            out["quality_backfill_rows"] = rows + new
            runs["quality"]["after_backfill"] = timed_run(http, sub.id, "quality")
            http.close()
            client.close()
        for _mon, r in runs.items():
            for k, v in r.items():
                v.pop("measurement", None) if k != "first" else None
        out["runs"] = runs
    return out


def summarise(out: dict[str, Any], base: dict[str, Any]) -> None:
    """Quality against scikit-learn on the same rows, and the per-monitor targets."""
    runs = out.get("runs", {})
    q = runs.get("quality", {}).get("first", {}).pop("measurement", None)
    if q is not None:
        sk = base["_sklearn_values"]
        diffs = {k: abs(q["values"][k] - v) for k, v in sk.items() if q["values"].get(k) is not None}
        out["quality_vs_sklearn_max_abs_diff"] = {
            "counts_and_log_loss": max(v for k, v in diffs.items() if not k.startswith("area")),
            "area_under_roc": diffs.get("area_under_roc"),
            "area_under_pr": diffs.get("area_under_pr"),
        }
    for mon in ("drift", "fairness"):
        m = runs.get(mon, {}).get("first", {}).pop("measurement", None)
        if m is not None:
            out[f"{mon}_values_sample"] = dict(list(m["values"].items())[:6])
    for _mon, r in runs.items():
        for v in r.values():
            v.pop("measurement", None)
    checks = {}
    if "quality" in runs:
        checks["quality_first_run_ok"] = runs["quality"]["first"]["seconds"] <= TARGETS["quality_s"]
    if "fairness" in runs:
        checks["fairness_first_run_ok"] = runs["fairness"]["first"]["seconds"] <= TARGETS["fairness_s"]
    if "drift" in runs:
        checks["drift_first_run_ok"] = runs["drift"]["first"]["seconds"] <= TARGETS["drift_s"]
        checks["drift_rss_ok"] = runs["drift"]["first"].get("server_peak_rss_mb", 1e9) <= TARGETS["drift_peak_rss_mb"]
    out["targets_met"] = checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--new", type=int, default=10_000)
    ap.add_argument("--overhead-rows", type=int, default=200_000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    a = ap.parse_args()
    from scrutiny.monitors import registry

    result: dict[str, Any] = {
        "bench": "monitors",
        "rows": a.rows,
        "new_rows": a.new,
        "monitors": registry.names(),
        "targets": TARGETS,
        "note": "shared 2-core machine while other work runs: compare within this run",
    }
    base = baselines(a.rows)
    for backend in a.backends.split(","):
        if backend == "sqlite":
            result["sqlite"] = run_backend("sqlite", None, a.rows, a.new, a.overhead_rows)
        elif backend == "postgresql":
            reason = pg_available(PG_URL)
            if reason:
                result["postgresql"] = {"skipped": reason}
                continue
            with pg_schema(PG_URL) as url:
                result["postgresql"] = run_backend("postgresql", url, a.rows, a.new, a.overhead_rows)
        summarise(result[backend], base)
    result["baselines"] = {k: v for k, v in base.items() if not k.startswith("_")}
    result["peer_figures_s"] = {"evidently_1m": 117.5, "nannyml_1m": 23.4, "scipy_ks_1m_idle_machine": 4.86}
    emit(result)


if __name__ == "__main__":
    main()
