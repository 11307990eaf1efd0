"""Engines: bindings and their discovered deployments; bind an engine, subscribe a deployment."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, File, Form, Request, UploadFile
from starlette.responses import RedirectResponse, Response

from scrutiny.engines import Deployment, engine_types
from scrutiny.errors import InvalidInput, ScrutinyError
from scrutiny.web import access
from scrutiny.web.access import Viewer, read_access, write_access
from scrutiny.web.pages.overview import deployment_name
from scrutiny.web.render import base_path, fragment, page
from scrutiny.web.routing import web_router

router = web_router()


@router.get("/engines")
def engines_page(request: Request, viewer: Viewer = Depends(read_access)) -> Response:
    service = request.app.state.service
    bindings = service.bindings.list()
    subs: dict[str, list[Any]] = {}
    for s in service.subscriptions.list():
        subs.setdefault(s.binding_id, []).append(s)
    return page(
        request,
        "engines.html",
        nav="engines",
        bindings=bindings,
        subs=subs,
        names={s.id: deployment_name(s) for group in subs.values() for s in group},
        engine_types=engine_types(),
        form={},
        error=None,
    )


@router.get("/engines/{binding_id}/deployments")
def deployments_fragment(binding_id: str, request: Request, viewer: Viewer = Depends(read_access)) -> Response:
    """The binding's deployments, asked of the engine now (loaded into the Engines page)."""
    service = request.app.state.service
    binding = service.bindings.get(binding_id)
    subscribed = {s.deployment_id: s for s in service.subscriptions.list(binding.id)}
    error = None
    deployments: list[Deployment] = []
    try:
        deployments = service.bindings.deployments(binding.id)
    except ScrutinyError as exc:  # EngineError included: unreachable engine, bad credentials...
        error = exc.message
    return fragment(
        request, "_deployments.html", binding=binding, deployments=deployments, subscribed=subscribed, error=error
    )


@router.post("/engines")
def bind_engine(
    request: Request,
    name: str = Form(""),
    engine_type: str = Form(""),
    credentials: str = Form("{}"),
    description: str = Form(""),
    csrf: str = Form(""),
    viewer: Viewer = Depends(write_access),
) -> Response:
    access.check_csrf(request, viewer, csrf)
    service = request.app.state.service
    try:
        try:
            creds = json.loads(credentials or "{}")
        except ValueError as exc:
            raise InvalidInput(f"credentials are not JSON: {exc}", field="credentials") from None
        if not name.strip():
            raise InvalidInput("give the binding a name", field="name")
        row, _ = service.bindings.create(
            name=name.strip(), engine_type=engine_type, credentials=creds, description=description or None
        )
    except ScrutinyError as exc:
        bindings = service.bindings.list()
        return page(
            request,
            "engines.html",
            http_status=exc.status,
            nav="engines",
            bindings=bindings,
            subs={},
            names={},
            engine_types=engine_types(),
            form={"name": name, "engine_type": engine_type, "description": description},
            error=exc.message,
        )
    return RedirectResponse(f"{base_path(request)}/engines#binding-{row.id}", status_code=303)


@dataclass
class SubscribeForm:
    deployment_id: str
    problem_type: str = "binary"
    label_column: str = ""
    prediction_field: str = "prediction"
    probability_field: str = "probability"
    feature_fields: list[str] = field(default_factory=list)
    categorical_fields: list[str] = field(default_factory=list)
    source: str = ""  # where the proposed columns came from

    def asset_properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "problem_type": self.problem_type,
            "prediction_field": self.prediction_field or "prediction",
        }
        if self.label_column:
            props["label_column"] = self.label_column
        if self.problem_type == "regression":
            props["probability_fields"] = []
        elif self.probability_field:
            props["probability_fields"] = [self.probability_field]
        if self.feature_fields:
            props["feature_fields"] = self.feature_fields
        if self.categorical_fields:
            props["categorical_fields"] = self.categorical_fields
        return props


def proposed(dep: Deployment) -> SubscribeForm:
    """The form prefilled from what the engine says about the deployment."""
    props = dep.asset_properties or {}
    form = SubscribeForm(deployment_id=dep.id)
    form.problem_type = str(props.get("problem_type") or "binary")
    form.label_column = str(props.get("label_column") or "")
    form.prediction_field = str(props.get("prediction_field") or props.get("predicted_target_field") or "prediction")
    probs = props.get("probability_fields") or (
        [props["prediction_probability_field"]] if props.get("prediction_probability_field") else None
    )
    form.probability_field = "" if form.problem_type == "regression" else str((probs or ["probability"])[0])
    features = list(props.get("feature_fields") or [])
    categorical = list(props.get("categorical_fields") or [])
    schema = props.get("input_data_schema") or {}
    fields = schema.get("fields") if isinstance(schema, dict) else None
    if not features and isinstance(fields, list):
        for f in fields:
            if not isinstance(f, dict) or not f.get("name") or f.get("name") == form.label_column:
                continue
            features.append(str(f["name"]))
            if str(f.get("type", "")).lower() in ("string", "str", "boolean", "bool") and not props.get(
                "categorical_fields"
            ):
                categorical.append(str(f["name"]))
    form.feature_fields, form.categorical_fields = features, categorical
    if features:
        form.source = "the engine's metadata"
    return form


def _lines(text: str) -> list[str]:
    return [x.strip() for x in text.replace(",", "\n").splitlines() if x.strip()]


def _subscribe_page(
    request: Request, binding: Any, dep: Deployment, form: SubscribeForm, error: str | None = None, status: int = 200
) -> Response:
    return page(
        request,
        "subscribe.html",
        http_status=status,
        nav="engines",
        binding=binding,
        dep=dep,
        form=form,
        error=error,
    )


@router.get("/engines/{binding_id}/subscribe")
def subscribe_form(
    binding_id: str, request: Request, deployment_id: str = "", viewer: Viewer = Depends(write_access)
) -> Response:
    service = request.app.state.service
    binding = service.bindings.get(binding_id)
    if not deployment_id:
        raise InvalidInput("choose a deployment", field="deployment_id")
    dep = service.bindings.engine(binding.id).get_deployment(deployment_id)
    return _subscribe_page(request, binding, dep, proposed(dep))


@router.post("/engines/{binding_id}/subscribe")
def subscribe(
    binding_id: str,
    request: Request,
    deployment_id: str = Form(...),
    problem_type: str = Form("binary"),
    label_column: str = Form(""),
    prediction_field: str = Form("prediction"),
    probability_field: str = Form(""),
    feature_fields: str = Form(""),
    categorical_fields: str = Form(""),
    training_file: UploadFile | None = File(None),
    csrf: str = Form(""),
    viewer: Viewer = Depends(write_access),
) -> Response:
    access.check_csrf(request, viewer, csrf)
    service = request.app.state.service
    binding = service.bindings.get(binding_id)
    form = SubscribeForm(
        deployment_id=deployment_id,
        problem_type=problem_type,
        label_column=label_column.strip(),
        prediction_field=prediction_field.strip(),
        probability_field=probability_field.strip(),
        feature_fields=_lines(feature_fields),
        categorical_fields=_lines(categorical_fields),
    )
    dep = Deployment(id=deployment_id, name=deployment_id)
    try:
        dep = service.bindings.engine(binding.id).get_deployment(deployment_id)
        frame = None
        if training_file is not None and training_file.filename:
            from scrutiny.core.training_stats import read_training_data

            data = training_file.file.read()
            fmt = "parquet" if training_file.filename.lower().endswith((".parquet", ".pq")) else "csv"
            frame = read_training_data(data=data, fmt=fmt)
        sub = service.subscriptions.create(
            binding_id=binding.id,
            deployment_id=deployment_id,
            asset_properties=form.asset_properties(),
            training_frame=frame,
        )
    except ScrutinyError as exc:
        return _subscribe_page(request, binding, dep, form, error=exc.message, status=exc.status)
    return RedirectResponse(f"{base_path(request)}/subscriptions/{sub.id}", status_code=303)
