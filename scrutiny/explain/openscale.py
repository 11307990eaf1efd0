"""OpenScale's explanation task shape (contract §7.5), built from a stored explanation."""

from __future__ import annotations

from typing import Any

from scrutiny.explain.store import ERROR, Explanation


def task_entity(expl: Explanation) -> dict[str, Any]:
    """``GET /v1/data_marts/{dm}/explanation_tasks/{id}``: ``entity.status.state`` and
    ``entity.predictions[i].explanation_features``, the predicted class first."""
    status: dict[str, Any] = {"state": expl.status}
    if expl.status == ERROR and expl.error:
        status["failure"] = {
            "errors": [{"code": expl.error.get("code", "error"), "message": expl.error.get("message", "")}]
        }
    entity: dict[str, Any] = {
        "scoring_id": expl.scoring_id,
        "subscription_id": expl.subscription_id,
        "explanation_types": expl.method.split("+"),
        "status": status,
        "perturbed": False,
        "scoring_calls": expl.scoring_calls,
        "scored_rows": expl.scored_rows,
    }
    result = expl.result or {}
    if "classes" in result:
        entity["predictions"] = [
            {
                "value": c["class"],
                "probability": c["probability"],
                "explanation_features": _features(c["contributions"]),
            }
            for c in result["classes"]
        ]
    elif "contributions" in result and "lime" in expl.method.split("+"):
        entity["predictions"] = [
            {"value": result.get("prediction"), "explanation_features": _features(result["contributions"])}
        ]
    else:
        entity["predictions"] = []
    if "pertinent_positive" in result:
        pp, pn = result["pertinent_positive"], result["pertinent_negative"]
        entity["contrastive_explanation"] = {
            "pertinent_positive_features": _moves(pp["features"]),
            "pertinent_positive_prediction": pp.get("prediction"),
            "pertinent_negative_features": _moves(pn["features"]),
            "pertinent_negative_prediction": pn.get("prediction"),
            "pertinent_negative_exists": pn["exists"],
            "pertinent_negative_reason": pn.get("reason"),
            "base_values": result.get("base_values"),
        }
    return entity


def task(expl: Explanation) -> dict[str, Any]:
    return {
        "metadata": {
            "id": expl.id,
            "created_at": _iso(expl.created_at),
            "finished_at": _iso(expl.finished_at),
        },
        "entity": task_entity(expl),
    }


def _features(contributions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``weight`` is the surrogate's coefficient; ``percentage`` its signed share of Σ|weight|."""
    return [
        {
            "feature_name": c["feature"],
            "feature_value": c["value"],
            "weight": c.get("coefficient", c["weight"]),
            "percentage": c["weight"],
            "feature_range": c.get("condition"),
        }
        for c in contributions
    ]


def _moves(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"feature_name": f["feature"], "feature_value": f["value"], "new_value": f["moved_to"], "base_value": f["base"]}
        for f in features
    ]


def _iso(ts: Any) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts is not None else None


def v2_task(expl: Explanation) -> dict[str, Any]:
    """``GET /v2/explanation_tasks/{id}``: ``entity.explanations[]`` per explanation type."""
    v1 = task_entity(expl)
    explanations: list[dict[str, Any]] = []
    if "lime" in expl.method.split("+") and expl.result:
        explanations.append({"explanation_type": "lime", "predictions": v1["predictions"]})
    if "contrastive_explanation" in v1:
        explanations.append({"explanation_type": "contrastive", **v1["contrastive_explanation"]})
    record = expl.record
    return {
        "metadata": {
            "explanation_task_id": expl.id,
            "created_at": _iso(expl.created_at),
            "updated_at": _iso(expl.finished_at or expl.started_at or expl.created_at),
        },
        "entity": {
            "status": v1["status"],
            "asset": {"subscription_id": expl.subscription_id},
            "scoring_id": expl.scoring_id,
            "explanation_types": v1["explanation_types"],
            "input_features": [
                {"name": f, "value": v} for f, v in zip(record["fields"], record["values"][0], strict=True)
            ],
            "explanations": explanations,
            "scoring_calls": expl.scoring_calls,
            "scored_rows": expl.scored_rows,
        },
    }
