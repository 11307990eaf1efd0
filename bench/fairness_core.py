"""Fairness core at 1M rows, beside fairlearn, AIF360 and the NumPy floor, in the same run.

The data is the shape of docs/baselines (fairness): a binary outcome, ``sex`` (female/male) and
an integer age, with the favourable rate planted at 0.58 for women and 0.72 for men. Every
tool computes disparate impact female/male on the same arrays; the JSON reports each one's
best-of-N time and value, and the largest disagreement with Scrutiny.

Scrutiny is timed three ways:
* ``core``: partial counts of the columnar batch (sex + age, 48 bins) and the evaluation;
* ``merge_evaluate``: a run that merges 100 stored time-bucket partials and evaluates;
* ``database``: the same counts as one ``GROUP BY`` in SQLite (and PostgreSQL when it answers).

    python bench/fairness_core.py [--rows 1000000] [--repeat 3] [--no-db]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from scrutiny.monitors.builtin.fairness.binning import numeric_edges
from scrutiny.monitors.builtin.fairness.counting import FairnessCounts, count_columns
from scrutiny.monitors.builtin.fairness.evaluate import evaluate_attribute
from scrutiny.monitors.builtin.fairness.spec import AttributeSpec, FairnessSpec, OutcomeSpec

PG_URL = os.environ.get("SCRUTINY_TEST_PG_URL", "postgresql+psycopg://127.0.0.1:5432/test")


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sex = np.where(rng.random(n) < 0.35, "female", "male").astype(object)
    age = rng.integers(19, 76, n).astype(np.float64)
    p = np.where(sex == "female", 0.58, 0.72)
    outcome = np.where(rng.random(n) < p, "No Risk", "Risk").astype(object)
    return {"Sex": sex, "Age": age, "prediction": outcome}


def spec() -> FairnessSpec:
    age_edges = numeric_edges([[19, 25], [26, 75]], integer=True, stats=None)
    return FairnessSpec(
        [
            AttributeSpec("Sex", True, ["female"], ["male"], 0.8),
            AttributeSpec("Age", False, [[19, 25]], [[26, 75]], 0.8, integer=True, edges=[float(e) for e in age_edges]),
        ],
        OutcomeSpec("prediction", False, ["No Risk"], ["Risk"]),
        100,
    )


def scrutiny_core(cols: dict[str, np.ndarray], s: FairnessSpec) -> float | None:
    counts = count_columns(cols, s, len(cols["Sex"]))
    results = [evaluate_attribute(counts.attributes[a.name], a, s.outcome) for a in s.attributes]
    return results[0].fairness_value


def scrutiny_sex_only(cols: dict[str, np.ndarray], s: FairnessSpec) -> float | None:
    one = FairnessSpec(s.attributes[:1], s.outcome, s.min_records)
    counts = count_columns(cols, one, len(cols["Sex"]))
    return evaluate_attribute(counts.attributes["Sex"], one.attributes[0], one.outcome).fairness_value


def numpy_floor(cols: dict[str, np.ndarray]) -> float:
    """The least work that gives the answer: hash-factorize both columns, one bincount."""
    g, g_keys = pd.factorize(cols["Sex"])
    y, y_keys = pd.factorize(cols["prediction"])
    c = np.bincount(g * len(y_keys) + y, minlength=len(g_keys) * len(y_keys)).reshape(len(g_keys), len(y_keys))
    fav = list(y_keys).index("No Risk")
    rate = c[:, fav] / c.sum(axis=1)
    keys = list(g_keys)
    return float(rate[keys.index("female")] / rate[keys.index("male")])


def fairlearn_metricframe(cols: dict[str, np.ndarray]) -> float:
    from fairlearn.metrics import MetricFrame, selection_rate

    y = cols["prediction"] == "No Risk"
    mf = MetricFrame(metrics=selection_rate, y_true=y, y_pred=y, sensitive_features=cols["Sex"])
    mf.ratio()
    r = mf.by_group
    return float(r["female"] / r["male"])


def fairlearn_dpr(cols: dict[str, np.ndarray]) -> float:
    from fairlearn.metrics import demographic_parity_ratio

    y = cols["prediction"] == "No Risk"
    return float(demographic_parity_ratio(y, y, sensitive_features=cols["Sex"]))


def aif360_di(cols: dict[str, np.ndarray]) -> float:
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import BinaryLabelDatasetMetric

    frame = pd.DataFrame(
        {"y": (cols["prediction"] == "No Risk").astype(float), "male": (cols["Sex"] == "male").astype(float)}
    )
    ds = BinaryLabelDataset(
        df=frame, label_names=["y"], protected_attribute_names=["male"], favorable_label=1.0, unfavorable_label=0.0
    )
    m = BinaryLabelDatasetMetric(ds, unprivileged_groups=[{"male": 0.0}], privileged_groups=[{"male": 1.0}])
    return float(m.disparate_impact())


def merged_run(parts: list[FairnessCounts], s: FairnessSpec) -> float | None:
    total = parts[0]
    for p in parts[1:]:
        total = total.merge(p)
    return evaluate_attribute(total.attributes["Sex"], s.attributes[0], s.outcome).fairness_value


def database(url: str, cols: dict[str, np.ndarray], s: FairnessSpec, repeat: int) -> dict[str, Any]:
    import sqlalchemy as sa

    from scrutiny.ingest.batch import timestamp_texts
    from scrutiny.monitors.builtin.fairness import sql
    from scrutiny.store import bulk
    from scrutiny.store.database import create_db_engine
    from scrutiny.store.types import UTCDateTime

    engine = create_db_engine(url, sqlite_synchronous="OFF")
    md = sa.MetaData()
    name = f"bench_fairness_{os.getpid()}"
    t = sa.Table(
        name,
        md,
        sa.Column("scoring_id", sa.Text, primary_key=True),
        sa.Column("scoring_timestamp", UTCDateTime()),
        sa.Column("Sex", sa.Text),
        sa.Column("Age", sa.BigInteger),
        sa.Column("prediction", sa.Text),
    )
    n = len(cols["Sex"])
    # a thousand hours of history, so the backfill query builds a thousand bucket partials
    stamps = np.datetime64("2026-01-01T00:00:00", "us") + (np.arange(n) * (1000 * 3600 * 10**6 // n)).astype(
        "timedelta64[us]"
    )
    rows = list(
        zip(
            [f"r{i}" for i in range(n)],
            timestamp_texts(stamps, engine.dialect.name),
            cols["Sex"].tolist(),
            cols["Age"].astype(np.int64).tolist(),
            cols["prediction"].tolist(),
            strict=True,
        )
    )
    try:
        with engine.begin() as conn:
            md.drop_all(conn)
            md.create_all(conn)
            t0 = time.perf_counter()
            for i in range(0, n, 100_000):
                bulk.insert_rows(
                    conn, name, ["scoring_id", "scoring_timestamp", "Sex", "Age", "prediction"], rows[i : i + 100_000]
                )
            load = time.perf_counter() - t0
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.exec_driver_sql(f'ANALYZE "{name}"')

        def query() -> float | None:
            with engine.connect() as conn:
                counts = sql.count_query(conn, t, s, [])
            return evaluate_attribute(counts.attributes["Sex"], s.attributes[0], s.outcome).fairness_value

        seconds, value = best(query, repeat)
        out = {
            "backend": engine.dialect.name,
            "load_seconds": round(load, 3),
            "count_seconds": round(seconds, 4),
            "count_method": "GROUP BY with width_bucket"
            if engine.dialect.name == "postgresql"
            else "rows streamed, NumPy",
            "fairness_value": value,
        }
        if engine.dialect.name == "postgresql":  # backfill: every hour bucket's partial in one query

            def backfill() -> int:
                with engine.connect() as conn:
                    return len(sql.bucket_counts(conn, t, s) or [])

            seconds, buckets = best(backfill, repeat)
            out["backfill_bucket_partials_seconds"] = round(seconds, 4)
            out["backfill_buckets"] = buckets
        return out
    finally:
        with engine.begin() as conn:
            md.drop_all(conn)
        engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-db", action="store_true", help="skip the GROUP BY timings")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)

    cols = data(args.rows)
    s = spec()
    out: dict[str, Any] = {
        "benchmark": "fairness_core",
        "rows": args.rows,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "numpy": np.__version__},
        "timings_seconds": {},
        "fairness_value": {},
    }
    runs: dict[str, Callable[[], Any]] = {
        "scrutiny_core_sex_and_age": lambda: scrutiny_core(cols, s),
        "scrutiny_core_sex": lambda: scrutiny_sex_only(cols, s),
        "numpy_floor": lambda: numpy_floor(cols),
    }
    try:
        import fairlearn

        out["machine"]["fairlearn"] = fairlearn.__version__
        runs["fairlearn_metricframe"] = lambda: fairlearn_metricframe(cols)
        runs["fairlearn_demographic_parity_ratio"] = lambda: fairlearn_dpr(cols)
    except ImportError:
        out["fairlearn"] = "not installed (pip install -e '.[test]')"
    try:
        import aif360  # noqa: F401

        runs["aif360_disparate_impact"] = lambda: aif360_di(cols)
    except ImportError:
        out["aif360"] = "not installed"
    for name, fn in runs.items():
        seconds, value = best(fn, args.repeat)
        out["timings_seconds"][name] = round(seconds, 4)
        out["fairness_value"][name] = value

    # a run over stored partials: 100 time buckets of the same rows, merged, then evaluated
    bounds = np.linspace(0, args.rows, 101).astype(int)
    parts = [count_columns({k: v[a:b] for k, v in cols.items()}, s, int(b - a)) for a, b in itertools.pairwise(bounds)]
    parts = [FairnessCounts.from_bytes(p.to_bytes()) for p in parts]  # as stored in monitor_partials
    seconds, value = best(lambda: merged_run(parts, s), args.repeat)
    out["timings_seconds"]["scrutiny_merge_100_buckets_and_evaluate"] = round(seconds, 4)
    out["fairness_value"]["scrutiny_merge_100_buckets_and_evaluate"] = value
    out["partial_bytes_per_bucket"] = int(np.mean([len(p.to_bytes()) for p in parts]))

    if not args.no_db:
        out["database"] = []
        urls = [f"sqlite:///{os.path.abspath('bench-fairness.sqlite')}"]
        try:
            import sqlalchemy as sa

            eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as c:
                c.exec_driver_sql("select 1")
            eng.dispose()
            urls.append(PG_URL)
        except Exception as exc:
            out["database_postgresql"] = f"skipped: {exc.__class__.__name__}"
        for url in urls:
            try:
                out["database"].append(database(url, cols, s, args.repeat))
            finally:
                if url.startswith("sqlite"):
                    for suffix in ("", "-wal", "-shm"):
                        try:
                            os.remove("bench-fairness.sqlite" + suffix)
                        except FileNotFoundError:
                            pass
        for d in out["database"]:
            out["fairness_value"][f"scrutiny_group_by_{d['backend']}"] = d["fairness_value"]

    ref = out["fairness_value"]["scrutiny_core_sex_and_age"]
    others = {
        k: v for k, v in out["fairness_value"].items() if v is not None and k != "fairlearn_demographic_parity_ratio"
    }
    out["max_abs_difference_vs_scrutiny"] = max(abs(v - ref) for v in others.values())
    t = out["timings_seconds"]
    if "fairlearn_metricframe" in t:
        out["speedup_vs_fairlearn_metricframe"] = round(t["fairlearn_metricframe"] / t["scrutiny_core_sex"], 1)
    out["ratio_to_numpy_floor"] = round(t["scrutiny_core_sex"] / t["numpy_floor"], 2)
    out["note"] = "timings on a shared 2-core machine swing with background load; compare within one run"
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
