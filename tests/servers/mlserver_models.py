"""Write an MLServer model repository of the demo's credit models; run by the MLServer venv's Python.

    python mlserver_models.py REPO_DIR HTTP_PORT GRPC_PORT METRICS_PORT

Scrutiny's source tree must be on PYTHONPATH (``scrutiny.demo.credit``). Models, all served by
``mlserver_sklearn.SKLearnModel`` from a joblib file:

* ``credit-numeric``: the numeric features only, scaled, logistic regression (tensor layout);
* ``credit``: the full ColumnTransformer pipeline fitted on a DataFrame (columns layout), its
  inputs declared in ``model-settings.json`` so the metadata names them;
* ``purpose``: the four-class loan-purpose pipeline (columns layout, no declared inputs);
* ``amount``: the credit-amount regression (columns layout).

``expected.json`` holds each model's in-process outputs on the 1000 German credit rows.
``settings.json`` listens on 127.0.0.1 only, with ``parallel_workers: 0`` (MLServer 1.7.1's
worker pool crashes under uvloop at start).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from scrutiny.demo import credit

_DATATYPE = {"i": "INT64", "f": "FP64", "b": "BOOL"}


def main() -> None:
    repo = Path(sys.argv[1])
    http_port, grpc_port, metrics_port = (int(p) for p in sys.argv[2:5])
    df = credit.load_german()
    numeric = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=2000))])
    numeric.fit(df[credit.NUMERIC_FEATURES].to_numpy(dtype=float), df[credit.LABEL])
    models = {
        "credit-numeric": (numeric, df[credit.NUMERIC_FEATURES].to_numpy(dtype=float)),
        "credit": (credit.train_credit_model(df), df[credit.FEATURES]),
        "purpose": (credit.train_purpose_model(df), df[credit.PURPOSE_FEATURES]),
        "amount": (credit.train_amount_model(df), df[credit.AMOUNT_FEATURES]),
    }
    expected: dict[str, dict[str, list]] = {}
    for name, (model, x) in models.items():
        folder = repo / name
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, folder / "model.joblib")
        settings: dict = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
        }
        if name == "credit":  # declared inputs: the metadata names one input per column
            settings["inputs"] = [
                {"name": c, "datatype": _DATATYPE.get(df[c].dtype.kind, "BYTES"), "shape": [-1, 1]}
                for c in credit.FEATURES
            ]
        (folder / "model-settings.json").write_text(json.dumps(settings))
        expected[name] = {"predict": model.predict(x).tolist()}
        if hasattr(model, "predict_proba"):
            expected[name]["predict_proba"] = model.predict_proba(x).tolist()
            expected[name]["classes"] = model.classes_.tolist()
    (repo / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "parallel_workers": 0,
            }
        )
    )
    (repo.parent / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main()
