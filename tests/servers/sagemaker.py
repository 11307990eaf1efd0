"""A faithful local Amazon SageMaker: control plane, runtime and STS, serving real models.

* Control plane (AWS JSON 1.1): ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>`` for
  ListEndpoints (``NextToken`` paging), DescribeEndpoint, DescribeEndpointConfig and
  DescribeModel; timestamps in epoch seconds; errors as ``{"__type", "message"}`` with
  ``x-amzn-ErrorType``.
* Runtime (REST-JSON): ``POST /endpoints/{name}/invocations`` runs the German credit models in
  CSV, JSON or JSON Lines and answers as the built-in algorithms do (linear-learner JSON,
  XGBoost-style CSV); the documented errors (ValidationError 400, ModelError 424,
  ModelNotReadyException 429, InternalFailure 500, ServiceUnavailable 503), 413 over 6 MB.
* STS (query protocol): ``AssumeRole`` issuing temporary keys that expire.

Every request must carry a valid SigV4 signature from a known key (``aws_sigv4.verify``).
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import aws_sigv4
from .models import ServedModel, served_models

ACCOUNT = "123456789012"
REGION = "us-east-1"
ACCESS_KEY = "AKIDSCRUTINYTEST0001"
SECRET_KEY = "scrutiny-test-secret-0001"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/scrutiny-monitor"
MAX_BODY = 6 * 1024 * 1024
IMAGE = f"683313688378.dkr.ecr.{REGION}.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
FAULTS = (
    "fault-internal",
    "fault-unavailable",
    "fault-not-ready",
    "fault-model-error",
    "fault-slow",
    "fault-garbage",
    "fault-shape",
    "fault-rows",
)


@dataclass
class FakeEndpoint:
    name: str
    model: str | None  # a key of served_models(); None for fault endpoints
    created: float
    status: str = "InService"
    output: str = "builtin"  # builtin (linear-learner / XGBoost style) | proba-list (sklearn container)

    @property
    def config_name(self) -> str:
        return f"{self.name}-config"

    @property
    def model_name(self) -> str:
        return f"{self.name}-model"


@dataclass
class SageMakerState:
    endpoints: dict[str, FakeEndpoint]
    keys: dict[str, tuple[str, str | None]] = field(default_factory=lambda: {ACCESS_KEY: (SECRET_KEY, None)})
    page_size: int = 3  # ListEndpoints returns fewer than MaxResults, so clients must follow NextToken
    role_seconds: int = 3600
    slow_seconds: float = 1.5
    invocations: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1


def default_state() -> SageMakerState:
    t0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC).timestamp()
    eps = [
        FakeEndpoint("credit-risk", "credit-risk", t0),
        FakeEndpoint("loan-purpose", "loan-purpose", t0 + 60),
        FakeEndpoint("credit-amount", "credit-amount", t0 + 120),
        FakeEndpoint("credit-risk-proba", "credit-risk", t0 + 180, output="proba-list"),
        FakeEndpoint("credit-risk-next", "credit-risk", t0 + 240, status="Creating"),
    ]
    eps += [FakeEndpoint(name, None, t0 + 300 + i) for i, name in enumerate(FAULTS)]
    return SageMakerState({e.name: e for e in eps})


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name}"


def _error(code: str, message: str, status: int, *, json_protocol: bool, **extra: Any) -> Response:
    body: dict[str, Any] = {"message": message, **extra}
    if json_protocol:
        body = {"__type": code, **body}
    media = "application/x-amz-json-1.1" if json_protocol else "application/json"
    return Response(orjson.dumps(body), status_code=status, media_type=media, headers={"x-amzn-ErrorType": f"{code}:"})


def _model_error(ep: FakeEndpoint, status: int, detail: str) -> Response:
    """A container failure as SageMaker reports it: 424 with the container's own status."""
    group = f"/aws/sagemaker/Endpoints/{ep.name}"
    return _error(
        "ModelError",
        f'Received client error ({status}) from primary with message "{detail}". See '
        f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logEventViewer:group={group} "
        f"in account {ACCOUNT} for more information.",
        424,
        json_protocol=False,
        OriginalStatusCode=status,
        OriginalMessage=detail,
        LogStreamArn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}",
    )


# -- model I/O, as the containers do it --------------------------------------------------------


def _parse_rows(model: ServedModel, body: bytes, ctype: str) -> list[list[Any]] | list[dict[str, Any]]:
    if ctype == "text/csv":
        rows = [r for r in csv.reader(io.StringIO(body.decode())) if r]
        for i, r in enumerate(rows):
            if len(r) != len(model.features):
                raise ValueError(f"row {i} has {len(r)} columns, the model takes {len(model.features)}")
        return rows
    if ctype in ("application/jsonlines", "application/json"):
        if ctype == "application/jsonlines":
            items: Any = [orjson.loads(line) for line in body.splitlines() if line.strip()]
        else:
            data = orjson.loads(body)
            items = data.get("instances") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ValueError("expected an 'instances' list")
        out = []
        for i, item in enumerate(items):
            row = item.get("features", item) if isinstance(item, dict) else item
            if isinstance(row, dict) or (isinstance(row, list) and len(row) == len(model.features)):
                out.append(row)
            else:
                raise ValueError(f"instance {i} does not hold {len(model.features)} features")
        return out
    raise LookupError(ctype)


def _predict(model: ServedModel, rows: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    if rows and isinstance(rows[0], dict):
        df = model.frame([[r.get(f) for f in model.features] for r in rows])
    else:
        df = model.frame(rows)
    return model.predict(df)


def _render(
    ep: FakeEndpoint, model: ServedModel, pred: np.ndarray, proba: np.ndarray | None, accept: str
) -> tuple[bytes, str]:
    n = len(pred)
    if proba is not None:
        index = proba.argmax(axis=1)
        score: list[Any] = proba[:, 1].tolist() if proba.shape[1] == 2 else proba.tolist()
        items = [{"score": score[i], "predicted_label": float(index[i])} for i in range(n)]
    else:
        items = [{"score": float(v)} for v in pred]
    if accept == "text/csv":
        if proba is not None and proba.shape[1] > 2:  # one vector per line
            return "".join(",".join(repr(x) for x in row) + "\n" for row in proba.tolist()).encode(), "text/csv"
        values = proba[:, 1].tolist() if proba is not None else pred.tolist()
        sep = "," if proba is not None else "\n"  # XGBoost: binary scores on one line, regression one per line
        return sep.join(repr(float(v)) for v in values).encode(), "text/csv"
    if accept == "application/jsonlines":
        return b"".join(orjson.dumps(i) + b"\n" for i in items), "application/jsonlines"
    if ep.output == "proba-list" and proba is not None:
        return orjson.dumps({"predictions": proba.tolist()}), "application/json"
    return orjson.dumps({"predictions": items}), "application/json"


# -- the application ---------------------------------------------------------------------------


def create_sagemaker_app(state: SageMakerState | None = None) -> Starlette:
    st = state or default_state()
    models = served_models()

    async def authorized(request: Request, service: str) -> tuple[bytes, tuple[str, str] | None]:
        body = await request.body()
        problem = aws_sigv4.verify(
            method=request.method,
            raw_path=request.scope.get("raw_path", request.url.path.encode()).decode(),
            query=request.url.query,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            keys=st.keys,
            service=service,
            region=REGION,
        )
        return body, problem

    # -- control plane and STS share "/" ------------------------------------------------------
    async def root(request: Request) -> Response:
        target = request.headers.get("x-amz-target")
        if target is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return await sts(request)
        body, problem = await authorized(request, "sagemaker")
        if problem:
            return _error(problem[0], problem[1], 400, json_protocol=True)
        if not target or not target.startswith("SageMaker."):
            return _error("UnknownOperationException", "", 400, json_protocol=True)
        op = target.split(".", 1)[1]
        st.count(op)
        try:
            args = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            return _error(
                "SerializationException", "Start of structure or map found where not expected.", 400, json_protocol=True
            )
        handler = {
            "ListEndpoints": list_endpoints,
            "DescribeEndpoint": describe_endpoint,
            "DescribeEndpointConfig": describe_endpoint_config,
            "DescribeModel": describe_model,
        }.get(op)
        if handler is None:
            return _error("UnknownOperationException", f"{op} is not implemented here", 400, json_protocol=True)
        result = handler(args)
        if isinstance(result, Response):
            return result
        return Response(orjson.dumps(result), media_type="application/x-amz-json-1.1")

    def not_found(kind: str, name: str) -> Response:
        return _error(
            "ValidationException",
            f'Could not find {kind} "{_arn(kind.replace(" ", "-"), name)}".',
            400,
            json_protocol=True,
        )

    def list_endpoints(args: dict[str, Any]) -> Any:
        eps = list(st.endpoints.values())
        if args.get("StatusEquals"):
            eps = [e for e in eps if e.status == args["StatusEquals"]]
        key = (lambda e: e.name) if args.get("SortBy") == "Name" else (lambda e: e.created)
        eps.sort(key=key, reverse=args.get("SortOrder", "Descending") == "Descending")
        start = 0
        if args.get("NextToken"):
            try:
                start = int(base64.b64decode(args["NextToken"]).decode().split(":")[1])
            except (ValueError, IndexError):
                return _error("ValidationException", "Invalid pagination token", 400, json_protocol=True)
        size = min(int(args.get("MaxResults") or 10), st.page_size)
        page = eps[start : start + size]
        out: dict[str, Any] = {
            "Endpoints": [
                {
                    "EndpointName": e.name,
                    "EndpointArn": _arn("endpoint", e.name),
                    "CreationTime": e.created,
                    "LastModifiedTime": e.created + 5,
                    "EndpointStatus": e.status,
                }
                for e in page
            ]
        }
        if start + size < len(eps):
            out["NextToken"] = base64.b64encode(f"offset:{start + size}".encode()).decode()
        return out

    def describe_endpoint(args: dict[str, Any]) -> Any:
        e = st.endpoints.get(args.get("EndpointName", ""))
        if e is None:
            return not_found("endpoint", args.get("EndpointName", ""))
        return {
            "EndpointName": e.name,
            "EndpointArn": _arn("endpoint", e.name),
            "EndpointConfigName": e.config_name,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "DeployedImages": [
                        {"SpecifiedImage": IMAGE, "ResolvedImage": IMAGE + "@sha256:0f1e", "ResolutionTime": e.created}
                    ],
                    "CurrentWeight": 1.0,
                    "DesiredWeight": 1.0,
                    "CurrentInstanceCount": 1,
                    "DesiredInstanceCount": 1,
                }
            ],
            "EndpointStatus": e.status,
            "CreationTime": e.created,
            "LastModifiedTime": e.created + 5,
        }

    def describe_endpoint_config(args: dict[str, Any]) -> Any:
        name = args.get("EndpointConfigName", "")
        e = next((x for x in st.endpoints.values() if x.config_name == name), None)
        if e is None:
            return not_found("endpoint configuration", name)
        return {
            "EndpointConfigName": name,
            "EndpointConfigArn": _arn("endpoint-config", name),
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": e.model_name,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "InitialVariantWeight": 1.0,
                }
            ],
            "CreationTime": e.created,
        }

    def describe_model(args: dict[str, Any]) -> Any:
        name = args.get("ModelName", "")
        e = next((x for x in st.endpoints.values() if x.model_name == name), None)
        if e is None:
            return not_found("model", name)
        return {
            "ModelName": name,
            "PrimaryContainer": {
                "Image": IMAGE,
                "Mode": "SingleModel",
                "ModelDataUrl": f"s3://sagemaker-{REGION}-{ACCOUNT}/{e.name}/output/model.tar.gz",
                "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
            },
            "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution",
            "CreationTime": e.created - 30,
            "ModelArn": _arn("model", name),
            "EnableNetworkIsolation": False,
        }

    async def sts(request: Request) -> Response:
        body, problem = await authorized(request, "sts")

        def xml_error(code: str, message: str, status: int) -> Response:
            text = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{secrets.token_hex(8)}</RequestId></ErrorResponse>"
            )
            return Response(text, status_code=status, media_type="text/xml")

        if problem:
            code = "InvalidClientTokenId" if problem[0] == "UnrecognizedClientException" else "SignatureDoesNotMatch"
            return xml_error(code, problem[1], 403)
        form = dict(parse_qsl(body.decode()))
        if form.get("Action") != "AssumeRole":
            return xml_error("InvalidAction", f"Could not find operation {form.get('Action')}", 400)
        st.count("AssumeRole")
        if form.get("RoleArn") != ROLE_ARN:
            return xml_error(
                "AccessDenied",
                f"User is not authorized to perform: sts:AssumeRole on resource: {form.get('RoleArn')}",
                403,
            )
        akid, secret, token = (
            "ASIA" + secrets.token_hex(8).upper(),
            secrets.token_urlsafe(30),
            secrets.token_urlsafe(60),
        )
        st.keys[akid] = (secret, token)
        expires = datetime.fromtimestamp(time.time() + st.role_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        session = form.get("RoleSessionName", "session")
        text = (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
            f"<Credentials><AccessKeyId>{akid}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
            f"<SessionToken>{token}</SessionToken><Expiration>{expires}</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>AROA3XFRBF535PLBIFPI4:{session}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::{ACCOUNT}:assumed-role/scrutiny-monitor/{session}</Arn></AssumedRoleUser>"
            f"</AssumeRoleResult><ResponseMetadata><RequestId>{secrets.token_hex(8)}</RequestId></ResponseMetadata></AssumeRoleResponse>"
        )
        return Response(text, media_type="text/xml")

    # -- runtime ------------------------------------------------------------------------------
    async def invocations(request: Request) -> Response:
        body, problem = await authorized(request, "sagemaker")
        if problem:
            return _error(problem[0], problem[1], 403, json_protocol=False)
        name = request.path_params["name"]
        st.count("InvokeEndpoint")
        if len(body) > MAX_BODY:
            return Response(
                orjson.dumps({"message": f"HTTP content length exceeded {MAX_BODY} bytes."}),
                status_code=413,
                media_type="application/json",
            )
        ep = st.endpoints.get(name)
        if ep is None:
            return _error(
                "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.", 400, json_protocol=False
            )
        if ep.status != "InService":
            return _error(
                "ValidationError",
                f"Endpoint {name} of account {ACCOUNT} is not in service (status {ep.status}).",
                400,
                json_protocol=False,
            )
        ctype = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
        accept = request.headers.get("accept", "application/json").split(";")[0].strip()
        record = {
            "endpoint": name,
            "content_type": ctype,
            "accept": accept,
            "custom_attributes": request.headers.get("x-amzn-sagemaker-custom-attributes"),
            "target_variant": request.headers.get("x-amzn-sagemaker-target-variant"),
            "body": body,
        }
        st.invocations.append(record)
        response = await _invoke(ep, body, ctype, accept)
        record["status"] = response.status_code
        record["response_body"] = bytes(response.body)
        record["response_content_type"] = response.headers.get("content-type", "")
        return response

    async def _invoke(ep: FakeEndpoint, body: bytes, ctype: str, accept: str) -> Response:
        if ep.model is None:
            return await _fault(ep, body, ctype, accept)
        model = models[ep.model]
        if accept in ("*/*", ""):
            accept = "application/json"
        if accept not in ("application/json", "text/csv", "application/jsonlines"):
            return _model_error(ep, 406, f"accept type {accept} is not supported by this container")
        try:
            rows = _parse_rows(model, body, ctype)
            pred, proba = await asyncio.to_thread(_predict, model, rows)
        except LookupError:
            return _model_error(ep, 415, f"Content type {ctype} is not supported by this script.")
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return _model_error(ep, 400, f"Unable to read the input: {exc}")
        out, out_type = _render(ep, model, pred, proba, accept)
        return Response(out, media_type=out_type, headers={"x-Amzn-Invoked-Production-Variant": "AllTraffic"})

    async def _fault(ep: FakeEndpoint, body: bytes, ctype: str, accept: str) -> Response:
        name = ep.name
        if name == "fault-internal":
            return _error("InternalFailure", "An internal failure occurred.", 500, json_protocol=False)
        if name == "fault-unavailable":
            return _error(
                "ServiceUnavailable", "The service is unavailable. Try your call again.", 503, json_protocol=False
            )
        if name == "fault-not-ready":
            return _error("ModelNotReadyException", "Model is not ready to serve requests.", 429, json_protocol=False)
        if name == "fault-model-error":
            return _model_error(ep, 500, "Traceback (most recent call last): KeyError: 'features'")
        if name == "fault-garbage":
            return Response("<html><body>502 Bad Gateway</body></html>", media_type="text/html")
        if name == "fault-shape":
            return Response(orjson.dumps({"result": "ok"}), media_type="application/json")
        if name == "fault-rows":
            return Response(
                orjson.dumps({"predictions": [{"score": 0.5, "predicted_label": 1.0}]}), media_type="application/json"
            )
        await asyncio.sleep(st.slow_seconds)  # fault-slow
        return Response(orjson.dumps({"predictions": []}), media_type="application/json")

    app = Starlette(
        routes=[
            Route("/", root, methods=["POST"]),
            Route("/endpoints/{name}/invocations", invocations, methods=["POST"]),
        ]
    )
    app.state.sagemaker = st
    return app


__all__ = [
    "ACCESS_KEY",
    "ACCOUNT",
    "REGION",
    "ROLE_ARN",
    "SECRET_KEY",
    "SageMakerState",
    "create_sagemaker_app",
    "default_state",
]
