"""Native-format conversion cost of the MLflow and KServe adapters, beside a baseline.

    python bench/engine_formats.py [--rows 5001] [--repeat 7]

One batch of ``--rows`` rows (one explanation call: 5000 perturbations + the row) of the peer
data shape (20 numeric + 5 categorical features) is converted the way each adapter does it,
without a network, so only Scrutiny's own work is timed:

* ``encode``: common request -> native body (each MLflow ``request_format``; OIP tensor and
  columns layouts; KServe V1 lists);
* ``decode_request``: native body -> common request (what the proxy does to log traffic);
* ``decode_response``: a native answer with a prediction and a probability vector per row ->
  output columns.

Baseline, same run: the custom engine's conversion (``orjson`` of ``{"fields", "values"}`` and
``parse_scoring_response``), the least any adapter can do; and pandas' ``to_json(orient="split")``
of the same rows, what MLflow's own Python client sends. Prints one JSON line (median ms).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import FEATURES, NUM_COLS, emit, make_frame, make_outputs

from scrutiny.core.scoring_format import ScoringRequest, parse_scoring_response
from scrutiny.engines import BindingConfig, Deployment, ModelContext, NativeResponse
from scrutiny.engines.kserve.engine import KServeEngine
from scrutiny.engines.mlflow.engine import REQUEST_FORMATS, MlflowEngine


def timed(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(runs), 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5001)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    n, rep = args.rows, args.repeat
    frame = make_frame(n)
    outputs = make_outputs(n)
    request = ScoringRequest(list(FEATURES), frame.astype(object).values.tolist())
    numeric = ScoringRequest(list(NUM_COLS), frame[NUM_COLS].astype(object).values.tolist())
    labels = ["bad", "good"]
    ctx = ModelContext(feature_fields=list(FEATURES), labels=labels, problem_type="binary")
    nctx = ModelContext(feature_fields=list(NUM_COLS), labels=labels, problem_type="binary")
    proba = [list(map(float, p)) for p in outputs["probability"]]

    def binding(kind: str, **creds: Any) -> BindingConfig:
        return BindingConfig(id="b", name="bench", engine_type=kind, settings={}, credentials=creds)

    results: dict[str, Any] = {}
    # baseline: the common format itself, and pandas' split JSON
    common_body = orjson.dumps(
        {
            "fields": ["prediction", "probability"],
            "values": [[p, v] for p, v in zip(outputs["prediction"], proba, strict=True)],
        }
    )
    results["baseline_common_encode_ms"] = timed(lambda: orjson.dumps(request.to_dict()), rep)
    results["baseline_common_decode_response_ms"] = timed(
        lambda: parse_scoring_response(orjson.loads(common_body)), rep
    )
    results["baseline_pandas_to_json_split_ms"] = timed(lambda: frame.to_json(orient="split", index=False), rep)

    mlflow = MlflowEngine(binding("mlflow", url="http://127.0.0.1:9"))
    dep = Deployment(id="m", name="m", scoring_url="http://127.0.0.1:9/invocations")
    for fmt in REQUEST_FORMATS:
        d = Deployment(id="m", name="m", scoring_url=dep.scoring_url, options={"request_format": fmt})
        native = mlflow.encode_request(d, request, ctx)
        results[f"mlflow_{fmt}_encode_ms"] = timed(lambda d=d: mlflow.encode_request(d, request, ctx), rep)
        results[f"mlflow_{fmt}_decode_request_ms"] = timed(
            lambda d=d, native=native: mlflow.decode_request(d, native, ctx), rep
        )
    vectors = NativeResponse(200, orjson.dumps({"predictions": proba}))
    records = NativeResponse(
        200,
        orjson.dumps(
            {
                "predictions": [
                    {"prediction": p, "probability": v} for p, v in zip(outputs["prediction"], proba, strict=True)
                ]
            }
        ),
    )
    results["mlflow_vectors_decode_response_ms"] = timed(lambda: mlflow.decode_response(dep, vectors, ctx, n), rep)
    results["mlflow_records_decode_response_ms"] = timed(lambda: mlflow.decode_response(dep, records, ctx, n), rep)

    oip = KServeEngine(binding("kserve", url="http://127.0.0.1:9", protocol="v2"))
    odep = Deployment(id="m", name="m", scoring_url="http://127.0.0.1:9/v2/models/m/infer")
    for layout, req, c in (("tensor", numeric, nctx), ("columns", request, ctx)):
        d = Deployment(id="m", name="m", scoring_url=odep.scoring_url, options={"input_layout": layout})
        native = oip.encode_request(d, req, c)
        results[f"oip_{layout}_encode_ms"] = timed(lambda d=d, req=req, c=c: oip.encode_request(d, req, c), rep)
        results[f"oip_{layout}_decode_request_ms"] = timed(
            lambda d=d, native=native, c=c: oip.decode_request(d, native, c), rep
        )
    answer = NativeResponse(
        200,
        orjson.dumps(
            {
                "outputs": [
                    {"name": "predict", "shape": [n, 1], "datatype": "BYTES", "data": outputs["prediction"].tolist()},
                    {
                        "name": "predict_proba",
                        "shape": [n, 2],
                        "datatype": "FP64",
                        "data": [x for p in proba for x in p],
                    },
                ]
            }
        ),
    )
    results["oip_decode_response_ms"] = timed(lambda: oip.decode_response(odep, answer, ctx, n), rep)

    v1 = KServeEngine(binding("kserve", url="http://127.0.0.1:9", protocol="v1"))
    vdep = Deployment(id="m", name="m", scoring_url="http://127.0.0.1:9/v1/models/m:predict")
    results["kserve_v1_list_encode_ms"] = timed(lambda: v1.encode_request(vdep, request, ctx), rep)

    base = results["baseline_common_encode_ms"]
    emit(
        {
            "benchmark": "engine_formats",
            "rows": n,
            "features": len(FEATURES),
            "results_ms": results,
            "encode_vs_common_baseline": {
                k.removesuffix("_encode_ms"): round(v / base, 2)
                for k, v in results.items()
                if k.endswith("_encode_ms") and not k.startswith("baseline")
            },
        }
    )


if __name__ == "__main__":
    main()
