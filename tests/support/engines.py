"""What every cloud-adapter test asserts: outputs equal the same pipeline's in-process answers."""

from __future__ import annotations

from typing import Any

import numpy as np

from scrutiny.core.outputs import normalize_rows
from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse
from scrutiny.demo import credit
from scrutiny.engines import ModelContext
from tests.servers.models import ServedModel, sample_rows

TOLERANCE = 1e-9


def rows_for(model: ServedModel, n: int, *, start: int = 0) -> ScoringRequest:
    fields, values = sample_rows(model, n, start=start)
    return ScoringRequest(fields, values)


def feature_kinds(model: ServedModel) -> dict[str, str]:
    return {f: "integer" if f in credit.NUMERIC_FEATURES else "string" for f in model.features}


def input_schema(model: ServedModel) -> list[dict[str, str]]:
    return [{"name": f, "type": k} for f, k in feature_kinds(model).items()]


def context_for(model: ServedModel, **kw: Any) -> ModelContext:
    regression = model.problem_type == "regression"
    return ModelContext(
        feature_fields=list(model.features),
        labels=kw.pop("labels", None if regression else model.classes),
        problem_type=model.problem_type,
        prediction_field=kw.pop("prediction_field", "prediction"),
        probability_fields=kw.pop("probability_fields", [] if regression else ["probability"]),
        feature_kinds=feature_kinds(model),
        **kw,
    )


def expected(model: ServedModel, request: ScoringRequest) -> tuple[np.ndarray, np.ndarray | None]:
    return model.predict(model.frame(request.values, request.fields))


def assert_matches_model(
    response: ScoringResponse, model: ServedModel, request: ScoringRequest, ctx: ModelContext
) -> None:
    """Normalise as payload logging does, then compare with predict / predict_proba to 1e-9."""
    out = normalize_rows(
        response.fields,
        response.values,
        classification=model.problem_type != "regression",
        labels=ctx.labels,
        prediction_field=ctx.prediction_field,
        probability_fields=ctx.probability_fields,
    )
    pred, proba = expected(model, request)
    if proba is None:
        np.testing.assert_allclose(out.prediction.astype(np.float64), pred, rtol=0, atol=TOLERANCE)
        return
    assert out.probability is not None, f"no probability among {response.fields}"
    np.testing.assert_allclose(out.probability, proba, rtol=0, atol=TOLERANCE)
    assert out.prediction.tolist() == pred.tolist()
    np.testing.assert_allclose(out.prediction_probability, proba.max(axis=1), rtol=0, atol=TOLERANCE)  # type: ignore[arg-type]
