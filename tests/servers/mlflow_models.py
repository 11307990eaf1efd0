"""Train the demo's credit models and save them as MLflow models; run by the MLflow venv's Python.

    python mlflow_models.py OUT_DIR [--register TRACKING_URI]

Scrutiny's source tree must be on PYTHONPATH (for ``scrutiny.demo.credit``, which needs only
pandas and scikit-learn). Writes, under OUT_DIR:

* ``credit-proba``: sklearn flavour serving ``predict_proba`` (a probability vector per row);
* ``credit-label``: sklearn flavour serving ``predict`` (the label);
* ``credit-pyfunc``: a pyfunc returning a DataFrame with ``prediction`` and ``probability``;
* ``purpose-proba``: the four-class loan-purpose model, ``predict_proba``;
* ``amount``: the credit-amount regression, ``predict``;
* ``expected.json``: each model's in-process outputs on the 1000 German credit rows, the oracle
  the served outputs are compared with.

With ``--register``, ``credit-proba`` is also logged to that tracking server and registered as
the model ``credit`` (two versions, the second with alias ``champion``), and ``amount`` as
``amount`` (one version, logged without a signature).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature

from scrutiny.demo import credit


class CreditWithProbability(mlflow.pyfunc.PythonModel):
    """A pyfunc that answers both questions in one call: one record per row."""

    def __init__(self, model) -> None:  # type: ignore[no-untyped-def]
        self.model = model

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        proba = self.model.predict_proba(model_input[credit.FEATURES])
        labels = self.model.classes_[proba.argmax(axis=1)]
        return pd.DataFrame({"prediction": labels, "probability": list(proba)})


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    df = credit.load_german()
    x = df[credit.FEATURES]
    binary = credit.train_credit_model(df)
    purpose = credit.train_purpose_model(df)
    amount = credit.train_amount_model(df)
    xp, xa = df[credit.PURPOSE_FEATURES], df[credit.AMOUNT_FEATURES]

    # Explicit requirements: inferring them spawns a subprocess per model (~7 s each); the
    # server runs with --env-manager local, which never reads them.
    reqs = {"pip_requirements": ["scikit-learn", "pandas"]}
    saves = {
        "credit-proba": lambda p: mlflow.sklearn.save_model(
            binary, p, pyfunc_predict_fn="predict_proba", signature=infer_signature(x, binary.predict_proba(x)), **reqs
        ),
        "credit-label": lambda p: mlflow.sklearn.save_model(
            binary, p, signature=infer_signature(x, binary.predict(x)), **reqs
        ),
        "credit-pyfunc": lambda p: mlflow.pyfunc.save_model(
            p, python_model=CreditWithProbability(binary), signature=infer_signature(x), **reqs
        ),
        "purpose-proba": lambda p: mlflow.sklearn.save_model(
            purpose,
            p,
            pyfunc_predict_fn="predict_proba",
            signature=infer_signature(xp, purpose.predict_proba(xp)),
            **reqs,
        ),
        "amount": lambda p: mlflow.sklearn.save_model(
            amount, p, signature=infer_signature(xa, amount.predict(xa)), **reqs
        ),
    }
    for name, save in saves.items():
        if not (out / name / "MLmodel").exists():
            save(str(out / name))

    expected = {
        "sklearn_version": __import__("sklearn").__version__,
        "credit": {
            "classes": binary.classes_.tolist(),
            "predict": binary.predict(x).tolist(),
            "predict_proba": binary.predict_proba(x).tolist(),
        },
        "purpose": {
            "classes": purpose.classes_.tolist(),
            "predict": purpose.predict(xp).tolist(),
            "predict_proba": purpose.predict_proba(xp).tolist(),
        },
        "amount": {"predict": amount.predict(xa).tolist()},
    }
    (out / "expected.json").write_text(json.dumps(expected))

    if "--register" in sys.argv:
        mlflow.set_tracking_uri(sys.argv[sys.argv.index("--register") + 1])
        mlflow.set_experiment("scrutiny-test")
        sig = infer_signature(x, binary.predict_proba(x))
        for _ in range(2):
            with mlflow.start_run():
                mlflow.sklearn.log_model(
                    binary,
                    name="model",
                    signature=sig,
                    pyfunc_predict_fn="predict_proba",
                    registered_model_name="credit",
                    **reqs,
                )
        mlflow.MlflowClient().set_registered_model_alias("credit", "champion", "2")
        with mlflow.start_run():
            mlflow.sklearn.log_model(amount, name="model", registered_model_name="amount", **reqs)


if __name__ == "__main__":
    main()
