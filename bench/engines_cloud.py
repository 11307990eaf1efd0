"""Cloud-engine adapters: what Scrutiny adds on top of the engine call, measured against a baseline
in the same run. Prints one JSON document.

* ``csv_encode_split``: 100 000 German-credit rows -> SageMaker CSV bodies cut at 6 MB
  (``sagemaker_codec.batches``), against a plain per-row join with a running byte count.
* ``sagemaker_decode``: a linear-learner JSON answer for 100 000 rows -> normalised prediction,
  probability vector and prediction_probability, against a hand-written loop over the records.
* ``studio_decode``: an Azure Studio all-string answer (21 echoed inputs) for 20 000 rows,
  against a hand-written loop.
* ``sagemaker_score_5001`` / ``azure_service_score_5001``: one explanation-sized batch scored
  through the adapter against the local fake servers (boto3 / httpx on loopback), against the same
  native body sent straight to the same server, so the difference is the adapter's own cost.

Run: ``python bench/engines_cloud.py`` (from the repository root; uses tests/servers for the fakes).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fake servers live with the tests (the package ``tests``)

from scrutiny._server import BackgroundServer  # noqa: E402
from scrutiny.core.outputs import normalize_rows  # noqa: E402
from scrutiny.core.scoring_format import ScoringRequest  # noqa: E402
from scrutiny.engines import BindingConfig, Deployment, ModelContext, NativeResponse  # noqa: E402
from scrutiny.engines.azure.service import AzureServiceEngine  # noqa: E402
from scrutiny.engines.azure.studio import AzureStudioEngine  # noqa: E402
from scrutiny.engines.sagemaker import codec  # noqa: E402
from scrutiny.engines.sagemaker.engine import SageMakerEngine  # noqa: E402
from tests.servers.azure import create_azure_app, default_state, legacy_url, principal  # noqa: E402
from tests.servers.models import sample_rows, served_models  # noqa: E402
from tests.servers.sagemaker import ACCESS_KEY, SECRET_KEY, create_sagemaker_app  # noqa: E402

LABELS = ["No Risk", "Risk"]


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def rows(n: int) -> tuple[list[str], list[list[Any]]]:
    fields, base = sample_rows(served_models()["credit-risk"], 1000)
    return fields, (base * (n // len(base) + 1))[:n]


def ctx() -> ModelContext:
    model = served_models()["credit-risk"]
    return ModelContext(feature_fields=model.features, labels=LABELS, problem_type="binary")


# -- conversions ---------------------------------------------------------------------------------


def bench_csv(n: int = 100_000) -> dict[str, Any]:
    fields, values = rows(n)
    c = codec.Codec(content_type=codec.CSV)

    def scrutiny() -> int:
        return sum(1 for _ in codec.batches(c, fields, values, max_rows=n))

    def baseline() -> int:
        bodies, current, size = 0, [], 0
        for row in values:
            line = ",".join("" if v is None else str(v) for v in row) + "\n"
            b = len(line.encode())
            if size + b > codec.MAX_PAYLOAD_BYTES:
                bodies += 1
                current, size = [], 0
            current.append(line)
            size += b
        return bodies + 1

    assert scrutiny() == baseline()
    return {"rows": n, "scrutiny_s": best_of(scrutiny), "baseline_s": best_of(baseline)}


def bench_sagemaker_decode(n: int = 100_000) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    p = rng.random(n)
    body = orjson.dumps({"predictions": [{"score": float(x), "predicted_label": float(x > 0.5)} for x in p]})
    engine = SageMakerEngine(
        BindingConfig(
            "b", "bench", "sagemaker", {}, {"access_key_id": "a", "secret_access_key": "b", "region": "us-east-1"}
        )
    )
    d = Deployment(id="x", name="x")
    context = ctx()

    def scrutiny() -> Any:
        out = engine.decode_response(d, NativeResponse(200, body, "application/json"), context, n)
        return normalize_rows(
            out.fields,
            out.values,
            classification=True,
            labels=LABELS,
            prediction_field="prediction",
            probability_fields=["probability"],
        )

    def baseline() -> Any:
        preds, probs, pp = [], [], []
        for item in orjson.loads(body)["predictions"]:
            s = item["score"]
            label = LABELS[int(item["predicted_label"])]
            vec = [1.0 - s, s]
            preds.append(label)
            probs.append(vec)
            pp.append(vec[LABELS.index(label)])
        return preds, probs, pp

    out = scrutiny()
    ref = baseline()
    assert out.prediction.tolist() == ref[0] and np.allclose(out.prediction_probability, ref[2])
    return {"rows": n, "scrutiny_s": best_of(scrutiny), "baseline_s": best_of(baseline)}


def bench_studio_decode(n: int = 20_000) -> dict[str, Any]:
    fields, values = rows(n)
    rng = np.random.default_rng(1)
    p = rng.random(n)
    records = []
    for row, x in zip(values, p, strict=True):
        rec = {f: str(v) for f, v in zip(fields, row, strict=True)}
        rec.update({"Scored Labels": LABELS[int(x > 0.5)], "Scored Probabilities": repr(float(x))})
        records.append(rec)
    body = orjson.dumps({"Results": {"output1": records}})
    engine = AzureStudioEngine(BindingConfig("b", "bench", "azure_ml_studio", {}, {}))
    d = Deployment(id="x", name="x", options={"format": "new"})
    context = ctx()

    def scrutiny() -> Any:
        out = engine.decode_response(d, NativeResponse(200, body), context, n)
        return normalize_rows(
            out.fields,
            out.values,
            classification=True,
            labels=LABELS,
            prediction_field="prediction",
            probability_fields=["probability"],
        )

    def baseline() -> Any:
        preds, pp = [], []
        for rec in orjson.loads(body)["Results"]["output1"]:
            s = float(rec["Scored Probabilities"])
            preds.append(rec["Scored Labels"])
            pp.append(s if rec["Scored Labels"] == LABELS[1] else 1.0 - s)
        return preds, pp

    out = scrutiny()
    ref = baseline()
    assert out.prediction.tolist() == ref[0] and np.allclose(out.prediction_probability, ref[1])
    return {"rows": n, "scrutiny_s": best_of(scrutiny), "baseline_s": best_of(baseline)}


# -- scoring through the fakes ---------------------------------------------------------------------


def bench_sagemaker_score(n: int = 5001) -> dict[str, Any]:
    import boto3

    fields, values = rows(n)
    request = ScoringRequest(fields, values)
    with BackgroundServer(create_sagemaker_app()) as srv:
        creds = {
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "region": "us-east-1",
            "endpoint_url": srv.url,
            "runtime_endpoint_url": srv.url,
        }
        engine = SageMakerEngine(BindingConfig("b", "bench", "sagemaker", {}, creds))
        d = Deployment(id="credit-risk", name="credit-risk", scoring_url="credit-risk")
        context = ctx()
        body = engine.encode_request(d, request, context).body
        raw = boto3.client(
            "sagemaker-runtime",
            region_name="us-east-1",
            endpoint_url=srv.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        engine.score(d, request, context)  # warm up clients and the model

        def scrutiny() -> Any:
            return engine.score(d, request, context)

        def baseline() -> Any:
            return raw.invoke_endpoint(EndpointName="credit-risk", Body=body, ContentType="application/json")[
                "Body"
            ].read()

        s = [best_of(scrutiny, 1) for _ in range(5)]
        b = [best_of(baseline, 1) for _ in range(5)]
    return {"rows": n, "scrutiny_s": statistics.median(s), "baseline_s": statistics.median(b)}


def bench_azure_score(n: int = 5001) -> dict[str, Any]:
    import httpx

    fields, values = rows(n)
    request = ScoringRequest(fields, values)
    state = default_state()
    with BackgroundServer(create_azure_app(state)) as srv:
        ep = state.endpoints["credit-risk-aci"]
        engine = AzureServiceEngine(BindingConfig("b", "bench", "azure_ml_service", {}, principal(srv.url)))
        d = Deployment(id="aci", name="aci", scoring_url=legacy_url(srv.url, ep), credentials={"token": ep.key})
        context = ctx()
        body = engine.encode_request(d, request, context).body
        engine.score(d, request, context)
        with httpx.Client() as http:

            def scrutiny() -> Any:
                return engine.score(d, request, context)

            def baseline() -> Any:
                return http.post(
                    d.scoring_url or "",
                    content=body,
                    headers={"Authorization": f"Bearer {ep.key}", "Content-Type": "application/json"},
                ).content

            s = [best_of(scrutiny, 1) for _ in range(5)]
            b = [best_of(baseline, 1) for _ in range(5)]
    return {"rows": n, "scrutiny_s": statistics.median(s), "baseline_s": statistics.median(b)}


def main() -> None:
    results = {
        "csv_encode_split": bench_csv(),
        "sagemaker_decode": bench_sagemaker_decode(),
        "studio_decode": bench_studio_decode(),
        "sagemaker_score_5001": bench_sagemaker_score(),
        "azure_service_score_5001": bench_azure_score(),
    }
    for r in results.values():
        r["ratio"] = round(r["scrutiny_s"] / r["baseline_s"], 3)
        r["scrutiny_rows_per_s"] = round(r["rows"] / r["scrutiny_s"])
        r["scrutiny_s"] = round(r["scrutiny_s"], 4)
        r["baseline_s"] = round(r["baseline_s"], 4)
    print(json.dumps({"benchmark": "engines_cloud", "results": results}, indent=2))


if __name__ == "__main__":
    main()
