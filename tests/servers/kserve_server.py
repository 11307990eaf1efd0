"""A KServe 0.21 ``ModelServer`` serving the demo's credit models; run by the KServe venv's Python.

    python kserve_server.py HTTP_PORT EXPECTED_JSON

Scrutiny's source tree must be on PYTHONPATH (``scrutiny.demo.credit``). Custom ``kserve.Model``
subclasses, as a KServe user writes them, answer both protocols on one port:

* ``credit``: V1 ``instances`` as lists in feature order -> ``predictions`` = ``predict_proba``
  vectors (what KServe's sklearn server does with ``PREDICT_PROBA=true``); V2 -> outputs
  ``predict`` (INT64 class indexes) and ``predict_proba``;
* ``credit-dict``: V1 ``instances`` as records -> records ``{"prediction", "probability"}``;
* ``purpose``: multiclass, V1 lists -> probability vectors; V2 -> ``predict`` (BYTES labels) and
  ``predict_proba``;
* ``amount``: regression, V1 lists -> scalars; V2 -> ``predict``.

KServe 0.21 starts offline without Kubernetes, but its REST server binds 0.0.0.0 with no
option to change it, so ``uvicorn.Config`` is narrowed to 127.0.0.1 here (tests never listen
beyond loopback). The in-process outputs of every model are written to EXPECTED_JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import pandas as pd
import uvicorn

from scrutiny.demo import credit

_Config = uvicorn.Config


class LoopbackConfig(_Config):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        super().__init__(*args, **kwargs)


uvicorn.Config = LoopbackConfig  # type: ignore[misc]

import kserve  # noqa: E402  (after the loopback patch)
from kserve import InferOutput, InferRequest, InferResponse  # noqa: E402


class Sklearn(kserve.Model):
    def __init__(self, name: str, model: Any, features: list[str], v1: str, v2_index_labels: bool) -> None:
        super().__init__(name)
        self.model = model
        self.features = features
        self.v1 = v1  # "proba" | "records" | "predict"
        self.v2_index_labels = v2_index_labels
        self.ready = True

    def _frame(self, instances: list[Any]) -> pd.DataFrame:
        if instances and isinstance(instances[0], dict):
            return pd.DataFrame(instances)[self.features]
        return pd.DataFrame(instances, columns=self.features)

    def predict(self, payload: Any, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        if isinstance(payload, InferRequest):
            return self._predict_v2(payload)
        df = self._frame(payload["instances"])
        if self.v1 == "proba":
            return {"predictions": self.model.predict_proba(df).tolist()}
        if self.v1 == "records":
            proba = self.model.predict_proba(df)
            labels = self.model.classes_[proba.argmax(axis=1)]
            return {
                "predictions": [
                    {"prediction": str(p), "probability": list(v)} for p, v in zip(labels, proba.tolist(), strict=True)
                ]
            }
        return {"predictions": self.model.predict(df).tolist()}

    def _predict_v2(self, request: InferRequest) -> InferResponse:
        if len(request.inputs) == 1:  # tensor layout, features in order
            df = pd.DataFrame(request.inputs[0].as_numpy(), columns=self.features)
        else:
            df = pd.DataFrame({i.name: i.as_numpy().reshape(-1) for i in request.inputs})[self.features]
            for c in df.columns:
                if df[c].dtype == object:
                    df[c] = df[c].map(lambda v: v.decode() if isinstance(v, bytes) else v)
        wanted = [o.name for o in (request.request_outputs or [])] or ["predict", "predict_proba"]
        outputs = []
        for name in wanted:
            if name == "predict_proba" and hasattr(self.model, "predict_proba"):
                proba = self.model.predict_proba(df)
                outputs.append(InferOutput(name, list(proba.shape), "FP64", proba.ravel().tolist()))
            elif name == "predict":
                pred = self.model.predict(df)
                if self.v2_index_labels:
                    idx = np.searchsorted(self.model.classes_, pred)
                    outputs.append(InferOutput(name, [len(idx)], "INT64", idx.tolist()))
                elif pred.dtype.kind in "fi":
                    outputs.append(InferOutput(name, [len(pred), 1], "FP64", pred.astype(float).tolist()))
                else:
                    outputs.append(InferOutput(name, [len(pred), 1], "BYTES", [str(p) for p in pred]))
            else:
                raise kserve.errors.InvalidInput(f"unknown output {name!r}")
        return InferResponse(response_id=request.id, model_name=self.name, infer_outputs=outputs)


def main() -> None:
    port = int(sys.argv[1])
    df = credit.load_german()
    binary = credit.train_credit_model(df)
    purpose = credit.train_purpose_model(df)
    amount = credit.train_amount_model(df)
    expected = {
        "credit": {
            "predict": binary.predict(df[credit.FEATURES]).tolist(),
            "predict_proba": binary.predict_proba(df[credit.FEATURES]).tolist(),
        },
        "purpose": {
            "predict": purpose.predict(df[credit.PURPOSE_FEATURES]).tolist(),
            "predict_proba": purpose.predict_proba(df[credit.PURPOSE_FEATURES]).tolist(),
        },
        "amount": {"predict": amount.predict(df[credit.AMOUNT_FEATURES]).tolist()},
    }
    with open(sys.argv[2], "w") as f:
        json.dump(expected, f)
    models = [
        Sklearn("credit", binary, credit.FEATURES, "proba", v2_index_labels=True),
        Sklearn("credit-dict", binary, credit.FEATURES, "records", v2_index_labels=False),
        Sklearn("purpose", purpose, credit.PURPOSE_FEATURES, "proba", v2_index_labels=False),
        Sklearn("amount", amount, credit.AMOUNT_FEATURES, "predict", v2_index_labels=False),
    ]
    kserve.ModelServer(http_port=port, grpc_port=port + 1, enable_grpc=False, workers=1).start(models)


if __name__ == "__main__":
    main()
