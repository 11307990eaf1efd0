"""Benchmark: explanations against a real model served by a local engine (the demo engine's
German credit model over loopback), with the `lime` package as the baseline in the same run.

Prints JSON. Scrutiny's LIME-style explanation (5000 perturbations, one batched scoring call,
stored in the data mart) is timed end to end, beside `lime`'s ``explain_instance`` on the same
rows against the same engine through a plain per-call predict function; contrastive
explanations report their scoring calls and time (OpenScale documents 201 calls for one).

    python bench/explain.py [--rows 10] [--repeat 3] [--database-url postgresql://...]

`lime` is a test-only dependency (``pip install -e '.[test]'``); without it the baseline is
reported as unavailable. Timings on a shared 2-core machine swing with its load: compare
figures within one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from scrutiny._server import BackgroundServer, free_port
from scrutiny.config import Settings
from scrutiny.demo import credit
from scrutiny.demo.engine import EngineOptions, create_engine_app
from scrutiny.service import Service

DEPLOYMENT = "credit-risk"
TARGETS = {"lime_seconds": 0.3, "lime_calls": 1, "contrastive_calls": 10, "contrastive_seconds": 1.0}


ENGINE_MAIN = """
import sys, uvicorn
from scrutiny.demo.engine import create_engine_app
uvicorn.run(create_engine_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


class EngineProcess:
    """The demo engine in its own process, as a real engine would be (no shared GIL)."""

    def __enter__(self) -> EngineProcess:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-c", ENGINE_MAIN, str(port)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{self.url}/_stats", timeout=2).raise_for_status()
                return self
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    self.proc.kill()
                    raise SystemExit(f"the demo engine did not start: {err[-2000:]}") from None
                time.sleep(0.2)

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "n": len(values),
    }


def python_row(frame: Any, i: int) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in frame.iloc[i][credit.FEATURES].tolist()]


def engine_calls(url: str) -> int:
    return int(httpx.get(f"{url}/_stats", timeout=10).json().get(f"calls:{DEPLOYMENT}", 0))


def setup(svc: Service, engine_url: str, rows: int) -> str:
    german = credit.load_german()
    binding, _ = svc.bindings.create(name="bench", engine_type="custom", credentials={"url": engine_url})
    sub = svc.subscriptions.create(
        binding_id=binding.id,
        deployment_id=DEPLOYMENT,
        asset_properties={"problem_type": "binary", "label_column": credit.LABEL},
        training_frame=german,
    )
    values = [python_row(german, i) for i in range(rows)]
    scored = svc.subscriptions.score(sub.id, {"fields": credit.FEATURES, "values": values})
    svc.payloads.store(
        sub.id,
        [
            {
                "scoring_id": f"tx-{i}",
                "request": {"fields": credit.FEATURES, "values": [values[i]]},
                "response": {"fields": scored["fields"][:2], "values": [scored["values"][i][:2]]},
            }
            for i in range(rows)
        ],
    )
    return sub.id


def bench_scrutiny(svc: Service, sub_id: str, engine_url: str, rows: int, repeat: int, method: str) -> dict[str, Any]:
    svc.explanations.explain(sub_id, scoring_id="tx-0", method=method)  # warm-up: connections, imports
    seconds, calls, stages = [], [], {}
    for _ in range(repeat):
        for i in range(rows):
            before = engine_calls(engine_url)
            t0 = time.perf_counter()
            expl = svc.explanations.explain(sub_id, scoring_id=f"tx-{i}", method=method)
            seconds.append(time.perf_counter() - t0)
            n = engine_calls(engine_url) - before
            if expl.status != "finished" or n != expl.scoring_calls:
                raise SystemExit(f"explanation failed or miscounted: {expl.status} {expl.error} {n}")
            calls.append(n)
            for k, v in (expl.timings or {}).items():
                stages.setdefault(k, []).append(v)
    return {
        "seconds": summary(seconds),
        "scoring_calls": {"median": statistics.median(calls), "max": max(calls), "min": min(calls)},
        "stage_ms_median": {k: round(statistics.median(v), 2) for k, v in sorted(stages.items())},
    }


def bench_api(svc: Service, sub_id: str, rows: int, repeat: int) -> dict[str, Any]:
    """The same LIME explanation through the REST API (POST answers 201 with the result)."""
    from scrutiny.api.app import create_app

    key = svc.keys.ensure_admin_key()
    seconds = []
    with (
        BackgroundServer(create_app(service=svc)) as api,
        httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client,
    ):
        url = f"/v1/subscriptions/{sub_id}/explanations"
        client.post(url, json={"scoring_id": "tx-0"}).raise_for_status()
        for _ in range(repeat):
            for i in range(rows):
                t0 = time.perf_counter()
                r = client.post(url, json={"scoring_id": f"tx-{i}"})
                seconds.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    raise SystemExit(f"API explanation failed: {r.status_code} {r.text[:300]}")
    return {"seconds": summary(seconds)}


def bench_lime_package(engine_url: str, rows: int, repeat: int) -> dict[str, Any]:
    try:
        from lime.lime_tabular import LimeTabularExplainer
    except ImportError:
        return {"available": False, "reason": "the lime package is a test dependency: pip install -e '.[test]'"}
    import pandas as pd

    german = credit.load_german()
    categorical = credit.CATEGORICAL_FEATURES
    codes = {c: sorted(german[c].unique()) for c in categorical}
    X = german[credit.FEATURES].copy()
    for c in categorical:
        X[c] = X[c].map({v: i for i, v in enumerate(codes[c])})
    X = X.to_numpy(np.float64)
    numeric = [c for c in credit.FEATURES if c not in categorical]
    client = httpx.Client(timeout=60)

    def predict(arr: np.ndarray) -> np.ndarray:  # what a lime user writes for a remote model
        df = pd.DataFrame(arr, columns=credit.FEATURES)
        for c in categorical:
            df[c] = np.asarray(codes[c], dtype=object)[df[c].astype(int)]
        for c in numeric:
            df[c] = df[c].round().astype(int)
        values = [[v.item() if isinstance(v, np.generic) else v for v in r] for r in df.to_numpy(object)]
        r = client.post(
            f"{engine_url}/v1/deployments/{DEPLOYMENT}/online", json={"fields": credit.FEATURES, "values": values}
        )
        r.raise_for_status()
        body = r.json()
        j = body["fields"].index("probability")
        return np.array([v[j] for v in body["values"]], dtype=np.float64)

    t0 = time.perf_counter()
    explainer = LimeTabularExplainer(
        X,
        feature_names=credit.FEATURES,
        categorical_features=[credit.FEATURES.index(c) for c in categorical],
        discretize_continuous=True,
        random_state=0,
    )
    build = time.perf_counter() - t0
    explainer.explain_instance(X[0], predict, num_features=10, num_samples=5000)  # warm-up
    seconds, calls = [], []
    for _ in range(repeat):
        for i in range(rows):
            before = engine_calls(engine_url)
            t0 = time.perf_counter()
            explainer.explain_instance(X[i], predict, num_features=10, num_samples=5000)
            seconds.append(time.perf_counter() - t0)
            calls.append(engine_calls(engine_url) - before)
    client.close()
    return {
        "available": True,
        "seconds": summary(seconds),
        "build_explainer_seconds": round(build, 4),
        "scoring_calls": {"median": statistics.median(calls), "max": max(calls)},
        "note": "explain_instance only (the explainer is built once); nothing is stored",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10, help="logged transactions to explain (German credit rows)")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the rows")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument(
        "--engine-in-process", action="store_true", help="run the engine in a thread of this process, not its own"
    )
    args = parser.parse_args()

    load_start = os.getloadavg()
    engine_cm: Any = BackgroundServer(create_engine_app(EngineOptions())) if args.engine_in_process else EngineProcess()
    with tempfile.TemporaryDirectory() as tmp, engine_cm as engine:
        svc = Service(Settings(data_dir=Path(tmp), database_url=args.database_url, sqlite_synchronous="NORMAL"))
        try:
            sub_id = setup(svc, engine.url, args.rows)
            lime_ours = bench_scrutiny(svc, sub_id, engine.url, args.rows, args.repeat, "lime")
            baseline = bench_lime_package(engine.url, args.rows, args.repeat)
            contrastive = bench_scrutiny(svc, sub_id, engine.url, args.rows, args.repeat, "contrastive")
            api = bench_api(svc, sub_id, args.rows, args.repeat)
            store = svc.store.dialect
        finally:
            svc.close()
    out: dict[str, Any] = {
        "benchmark": "explanations",
        "model": "German credit, scikit-learn logistic regression (21 features), demo custom engine on loopback",
        "engine": "thread of this process" if args.engine_in_process else "own process",
        "store": store,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "explanations_per_method": args.rows * args.repeat,
        "scrutiny_lime": {**lime_ours, "perturbations": 5000, "includes": "sampling, scoring, fit, store"},
        "scrutiny_lime_via_api": api,
        "lime_package": baseline,
        "scrutiny_contrastive": contrastive,
        "openscale_contrastive_calls": 201,
        "targets": TARGETS,
    }
    ok = {
        "lime_one_call": lime_ours["scoring_calls"]["max"] == 1,
        "lime_time": lime_ours["seconds"]["median"] <= TARGETS["lime_seconds"],
        "contrastive_calls": contrastive["scoring_calls"]["max"] <= TARGETS["contrastive_calls"],
        "contrastive_time": contrastive["seconds"]["median"] <= TARGETS["contrastive_seconds"],
    }
    if baseline.get("available"):
        out["speedup_vs_lime_package"] = round(baseline["seconds"]["median"] / lime_ours["seconds"]["median"], 2)
    out["meets_targets"] = ok
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
