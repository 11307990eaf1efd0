"""Amazon SageMaker: discovery through the control plane, scoring through ``sagemaker-runtime``.

boto3 is the real client (the optional extra ``scrutiny[sagemaker]``): it signs every call
with SigV4, so Scrutiny never hand-rolls AWS authentication. Bind with an access key pair and a
region, optionally a session token or a role to assume through STS (refreshed before the
temporary keys expire); ``endpoint_url``, ``runtime_endpoint_url`` and ``sts_endpoint_url``
point the clients elsewhere (VPC endpoints, local test servers).

Discovery maps ListEndpoints / DescribeEndpoint / DescribeEndpointConfig / DescribeModel to
deployments exactly as engines.md §5 says. Scoring speaks CSV, JSON or JSON Lines as the
deployment's ``options`` say (``content_type``, ``accept``, ``json_format``, ``scalar_output``,
``target_variant``...), in bodies cut to the 6 MB invocation limit. Scrutiny's own calls carry
``CustomAttributes: scrutiny-internal=1`` (SageMaker passes only its documented headers on to
the container).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse
from scrutiny.engines.base import INTERNAL_HEADER, Deployment, Engine, ModelContext, NativeRequest, NativeResponse
from scrutiny.engines.errors import (
    EngineAuthError,
    EngineBadResponse,
    EngineError,
    EngineRejected,
    EngineResponseShape,
    EngineServerError,
    EngineTimeout,
    EngineUnreachable,
)
from scrutiny.engines.native_tables import (
    NativeDecodeError,
    NativeShapeError,
    keep_outputs,
    labels_of_index,
    rename_roles,
    to_response,
)
from scrutiny.engines.sagemaker import codec as codec_mod
from scrutiny.errors import InvalidInput, NotFound

T = TypeVar("T")

INTERNAL_ATTRIBUTE = "scrutiny-internal=1"
# Error codes AWS uses when it refuses the credentials (status 400 on JSON services, 403 on REST ones).
AUTH_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccessDenied",
        "AccessDeniedException",
        "MissingAuthenticationTokenException",
        "MissingAuthenticationToken",
        "NotAuthorized",
        "AuthFailure",
    }
)
# Worth another attempt (engines.md §0: 429/502/503/504 and connection errors); ModelError never is.
RETRY_CODES = frozenset({"ModelNotReadyException", "ServiceUnavailable", "ThrottlingException", "Throttling"})
RETRY_STATUS = frozenset({429, 502, 503, 504})
# Request headers of InvokeEndpoint a forwarded native request may carry, and their parameters.
INVOKE_HEADERS = {
    "accept": "Accept",
    "x-amzn-sagemaker-custom-attributes": "CustomAttributes",
    "x-amzn-sagemaker-target-model": "TargetModel",
    "x-amzn-sagemaker-target-variant": "TargetVariant",
    "x-amzn-sagemaker-target-container-hostname": "TargetContainerHostname",
    "x-amzn-sagemaker-inference-id": "InferenceId",
    "x-amzn-sagemaker-inference-component": "InferenceComponentName",
    "x-amzn-sagemaker-enable-explanations": "EnableExplanations",
}
OPTION_PARAMS = {
    "target_variant": "TargetVariant",
    "target_model": "TargetModel",
    "inference_component": "InferenceComponentName",
}
_RUNTIME_URL = re.compile(r"/endpoints/([^/]+)/invocations/?$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
MAX_PAGES = 1000
ROLE_REFRESH_MARGIN = 300.0  # seconds before temporary keys expire


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        ts = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return ts.isoformat().replace("+00:00", "Z")
    return None if value is None else str(value)


class SageMakerEngine(Engine):
    engine_type = "sagemaker"
    aliases = ("amazon_sagemaker",)
    public_keys: ClassVar[frozenset[str]] = frozenset(
        {"region", "endpoint_url", "runtime_endpoint_url", "sts_endpoint_url", "role", "role_arn"}
    )
    required_keys = ("access_key_id", "secret_access_key", "region")

    def __init__(self, binding: Any) -> None:
        super().__init__(binding)
        self._lock = threading.Lock()
        self._control: Any = None
        self._runtime: Any = None
        self._expires: float | None = None  # monotonic time the assumed-role keys must be renewed by

    # -- binding -----------------------------------------------------------------------------
    @classmethod
    def check_credentials(cls, credentials: dict[str, Any]) -> None:
        super().check_credentials(credentials)
        region = str(credentials["region"])
        if not _REGION.match(region):
            raise InvalidInput(
                f"region {region!r} is not an AWS region name such as us-east-1", field="credentials.region"
            )
        for key in ("endpoint_url", "runtime_endpoint_url", "sts_endpoint_url"):
            url = credentials.get(key)
            if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
                raise InvalidInput(f"{key} must start with http:// or https://", field=f"credentials.{key}")
        role = credentials.get("role_arn") or credentials.get("role")
        if role is not None and (not isinstance(role, str) or not role.startswith("arn:")):
            raise InvalidInput("role must be an IAM role ARN (arn:aws:iam::...:role/...)", field="credentials.role")

    # -- clients -----------------------------------------------------------------------------
    def _clients(self) -> tuple[Any, Any]:
        """(control plane, runtime) clients, rebuilt when assumed-role keys near expiry."""
        with self._lock:
            stale = self._expires is not None and time.monotonic() >= self._expires
            if self._control is None or stale:
                self._build_clients()
            return self._control, self._runtime

    def _build_clients(self) -> None:
        creds = self.binding.credentials
        session = boto3.session.Session(
            aws_access_key_id=str(creds["access_key_id"]),
            aws_secret_access_key=str(creds["secret_access_key"]),
            aws_session_token=creds.get("session_token") or None,
            region_name=str(creds["region"]),
        )
        role = creds.get("role_arn") or creds.get("role")
        if role:
            session = self._assume_role(session, str(role))
        timeouts = {
            "connect_timeout": self.binding.connect_timeout,
            "read_timeout": self.binding.read_timeout,
            "user_agent_extra": "scrutiny",
            "max_pool_connections": 32,
        }
        control_cfg = Config(
            retries={"mode": "standard", "total_max_attempts": max(1, self.binding.retries)}, **timeouts
        )
        # Retries of invocations are Scrutiny's (never after a read timeout: the model may have run).
        runtime_cfg = Config(retries={"total_max_attempts": 1}, **timeouts)
        # Clients being replaced (renewed role keys) are left to finish their calls, not closed.
        self._control = session.client("sagemaker", endpoint_url=creds.get("endpoint_url") or None, config=control_cfg)
        self._runtime = session.client(
            "sagemaker-runtime", endpoint_url=creds.get("runtime_endpoint_url") or None, config=runtime_cfg
        )

    def _assume_role(self, session: Any, role: str) -> Any:
        creds = self.binding.credentials
        sts = session.client(
            "sts",
            endpoint_url=creds.get("sts_endpoint_url") or None,
            config=Config(connect_timeout=self.binding.connect_timeout, read_timeout=self.binding.read_timeout),
        )
        args: dict[str, Any] = {"RoleArn": role, "RoleSessionName": str(creds.get("role_session_name") or "scrutiny")}
        if creds.get("external_id"):
            args["ExternalId"] = str(creds["external_id"])
        out = self._call(lambda: sts.assume_role(**args), None, what="assume the role")["Credentials"]
        sts.close()
        expires = out["Expiration"]
        left = (expires - datetime.now(UTC)).total_seconds() if isinstance(expires, datetime) else 3600.0
        self._expires = time.monotonic() + max(0.0, left - ROLE_REFRESH_MARGIN)
        return boto3.session.Session(
            aws_access_key_id=out["AccessKeyId"],
            aws_secret_access_key=out["SecretAccessKey"],
            aws_session_token=out["SessionToken"],
            region_name=str(creds["region"]),
        )

    def close(self) -> None:
        for client in (self._control, self._runtime):
            if client is not None:
                client.close()
        self._control = self._runtime = None

    # -- errors ------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """Never echo a secret, whatever an error message carries."""
        for key in ("secret_access_key", "session_token", "access_key_id"):
            value = self.binding.credentials.get(key)
            if value:
                text = text.replace(str(value), "***")
        return text

    def _call(self, fn: Callable[[], T], deployment: Deployment | str | None, *, what: str) -> T:
        """A control-plane call (botocore retries those itself) with its errors mapped."""
        try:
            return fn()
        except ClientError as exc:
            raise self._client_error(exc, deployment, what) from None
        except BotoCoreError as exc:
            raise self._transport_error(exc, deployment, what) from None

    def _client_error(self, exc: ClientError, deployment: Deployment | str | None, what: str) -> EngineError:
        response = exc.response or {}
        err = response.get("Error") or {}
        code = str(err.get("Code") or "")
        message = self._scrub(str(err.get("Message") or "")).strip()
        status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0) or None
        kw: dict[str, Any] = {"engine_status": status, "engine_code": code or None}
        detail = f"{code}: {message}" if code and message else code or message or f"HTTP {status}"
        if code in AUTH_CODES or status in (401, 403):
            return self.error(EngineAuthError, f"AWS refused the credentials to {what} ({detail})", deployment, **kw)
        if code == "ModelError":
            original = response.get("OriginalStatusCode")
            log_stream = response.get("LogStreamArn")
            extra = {"original_status": original, "log_stream": log_stream}
            return self.error(
                EngineServerError,
                f"the model container failed (ModelError, container status {original}): {message}",
                deployment,
                **kw,
                **{k: v for k, v in extra.items() if v is not None},
            )
        if code == "ModelNotReadyException":
            return self.error(EngineServerError, f"the model is not ready to {what} ({detail})", deployment, **kw)
        if status == 413:
            return self.error(
                EngineRejected, f"the request body is over SageMaker's size limit ({detail})", deployment, **kw
            )
        if status is not None and status >= 500:
            return self.error(EngineServerError, f"SageMaker failed to {what} ({detail})", deployment, **kw)
        return self.error(EngineRejected, f"SageMaker refused to {what} ({detail})", deployment, **kw)

    def _transport_error(self, exc: BaseException, deployment: Deployment | str | None, what: str) -> EngineError:
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return self.error(EngineAuthError, f"no usable AWS credentials to {what}", deployment)
        if isinstance(exc, ReadTimeoutError):
            return self.error(EngineTimeout, f"no answer within {self.binding.read_timeout:g} s to {what}", deployment)
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
            return self.error(EngineUnreachable, f"cannot connect to SageMaker to {what}", deployment)
        if isinstance(exc, ConnectionClosedError):
            return self.error(EngineUnreachable, f"SageMaker closed the connection ({what})", deployment)
        name = type(exc).__name__
        return self.error(
            EngineUnreachable, f"{name} while trying to {what}: {self._scrub(str(exc))[:200]}", deployment
        )

    # -- discovery ---------------------------------------------------------------------------
    def list_deployments(self) -> list[Deployment]:
        control, _ = self._clients()
        summaries: list[dict[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            args: dict[str, Any] = {"MaxResults": 100, "SortBy": "CreationTime", "SortOrder": "Descending"}
            if token:
                args["NextToken"] = token
            page = self._call(lambda a=args: control.list_endpoints(**a), None, what="list endpoints")  # type: ignore[misc]
            summaries.extend(page.get("Endpoints") or [])
            token = page.get("NextToken")
            if not token or token in seen:
                break
            seen.add(token)
        models: dict[str, dict[str, Any]] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(summaries)))) as pool:
            return list(pool.map(lambda s: self._describe(control, s["EndpointName"], s, models), summaries))

    def get_deployment(self, deployment_id: str) -> Deployment:
        control, _ = self._clients()
        return self._describe(control, deployment_id, None, {})

    def _describe(
        self, control: Any, name: str, summary: dict[str, Any] | None, models: dict[str, dict[str, Any]]
    ) -> Deployment:
        try:
            ep = self._call(lambda: control.describe_endpoint(EndpointName=name), name, what="describe the endpoint")
        except EngineRejected as exc:
            if summary is None:
                raise NotFound(f"engine {self.binding.name!r} has no SageMaker endpoint {name!r}") from exc
            ep = dict(summary)  # deleted since it was listed: show what the listing said
        config: dict[str, Any] = {}
        model: dict[str, Any] = {}
        if ep.get("EndpointConfigName"):
            try:
                config = self._call(
                    lambda: control.describe_endpoint_config(EndpointConfigName=ep["EndpointConfigName"]),
                    name,
                    what="describe the endpoint config",
                )
            except EngineRejected:
                config = {}
        variants = config.get("ProductionVariants") or []
        model_name = variants[0].get("ModelName") if variants else None
        if model_name:
            model = models.get(model_name) or {}
            if not model:
                try:
                    model = self._call(
                        lambda: control.describe_model(ModelName=model_name), name, what="describe the model"
                    )
                    models[model_name] = model
                except EngineRejected:
                    model = {}
        return self._deployment(name, ep, config, model)

    def _deployment(self, name: str, ep: dict[str, Any], config: dict[str, Any], model: dict[str, Any]) -> Deployment:
        container: dict[str, Any] = model.get("PrimaryContainer") or next(iter(model.get("Containers") or []), {})
        live = {v.get("VariantName"): v for v in ep.get("ProductionVariants") or []}
        variants = []
        for v in config.get("ProductionVariants") or []:
            state = live.get(v.get("VariantName"), {})
            variants.append(
                {
                    "name": v.get("VariantName"),
                    "model": v.get("ModelName"),
                    "instance_type": v.get("InstanceType"),
                    "weight": state.get("CurrentWeight", v.get("InitialVariantWeight")),
                    "instances": state.get("CurrentInstanceCount", v.get("InitialInstanceCount")),
                }
            )
        model_name = model.get("ModelName") or (variants[0]["model"] if variants else None)
        status = ep.get("EndpointStatus")
        description = f"SageMaker endpoint ({status})" if status else "SageMaker endpoint"
        if variants:
            description += "; variants " + ", ".join(f"{v['name']}: {v['model']}" for v in variants)
        return Deployment(
            id=name,
            name=name,
            scoring_url=name,
            description=description,
            type="online",
            created_at=_iso(ep.get("CreationTime")),
            deployment_rn=ep.get("EndpointArn"),
            status=status,
            asset={
                "asset_id": model_name or name,
                "name": model_name or name,
                "asset_type": "model",
                "asset_rn": model.get("ModelArn"),
                "url": container.get("ModelDataUrl"),
                "created_at": _iso(model.get("CreationTime")),
                "runtime_environment": container.get("Image"),
                "production_variants": variants,
            },
        )

    # -- conversion --------------------------------------------------------------------------
    def codec(self, deployment: Deployment, context: ModelContext) -> codec_mod.Codec:
        return codec_mod.Codec.from_options({**deployment.options, **context.options})

    def encode_request(self, deployment: Deployment, request: ScoringRequest, context: ModelContext) -> NativeRequest:
        c = self.codec(deployment, context)
        fields, rows = codec_mod.ordered_rows(request, context.feature_fields)
        return NativeRequest(codec_mod.encode(c, fields, rows), c.content_type, headers={"Accept": c.accept})

    def decode_request(self, deployment: Deployment, native: NativeRequest, context: ModelContext) -> ScoringRequest:
        return codec_mod.decode_request(native.body, native.content_type, context)

    def decode_response(
        self, deployment: Deployment, native: NativeResponse, context: ModelContext, n_rows: int | None
    ) -> ScoringResponse:
        c = self.codec(deployment, context)
        try:
            out = codec_mod.decode_response(native.body, native.content_type, context, c, n_rows)
        except NativeDecodeError as exc:
            raise self.error(EngineBadResponse, str(exc), deployment, body=native.body) from None
        except NativeShapeError as exc:
            raise self.error(EngineResponseShape, str(exc), deployment, body=native.body) from None
        out = keep_outputs(out, context.feature_fields)  # a custom container may echo its inputs
        options = {**deployment.options, **context.options}
        if context.problem_type != "regression" and options.get("label_index", True) and "predicted_label" in out:
            # Built-in algorithms answer with the class index (0.0, 1.0...), never the label.
            out["predicted_label"] = labels_of_index(out["predicted_label"], context.labels)
        predictions = ("predicted_label", "score") if context.problem_type == "regression" else ("predicted_label",)
        return to_response(rename_roles(out, context, predictions=predictions, probabilities=("score",)))

    # -- transport ---------------------------------------------------------------------------
    def endpoint_name(self, deployment: Deployment) -> str:
        explicit = deployment.options.get("endpoint_name")
        if explicit:
            return str(explicit)
        url = deployment.scoring_url or ""
        if url.startswith(("http://", "https://")):
            match = _RUNTIME_URL.search(url.split("?")[0])
            if match:
                return match.group(1)
            raise self.error(
                EngineRejected, "scoring_url is not a SageMaker /endpoints/{name}/invocations URL", deployment
            )
        return url or deployment.id

    def _invoke_args(self, deployment: Deployment, native: NativeRequest, internal: bool) -> dict[str, Any]:
        args: dict[str, Any] = {"EndpointName": self.endpoint_name(deployment), "Body": native.body}
        if native.content_type:
            args["ContentType"] = native.content_type
        for option, param in OPTION_PARAMS.items():
            if deployment.options.get(option):
                args[param] = str(deployment.options[option])
        for header, value in native.headers.items():
            target = INVOKE_HEADERS.get(header.lower())
            if target and value:
                args[target] = value
        if internal or native.headers.get(INTERNAL_HEADER) == "1":
            existing = args.get("CustomAttributes")
            if not existing or INTERNAL_ATTRIBUTE not in existing:
                args["CustomAttributes"] = f"{existing},{INTERNAL_ATTRIBUTE}" if existing else INTERNAL_ATTRIBUTE
        return args

    def _invoke_once(self, deployment: Deployment, args: dict[str, Any]) -> NativeResponse:
        _, runtime = self._clients()
        t0 = time.perf_counter()
        r = runtime.invoke_endpoint(**args)
        body = r["Body"].read()
        headers = dict((r.get("ResponseMetadata") or {}).get("HTTPHeaders") or {})
        return NativeResponse(200, body, r.get("ContentType") or "", headers, (time.perf_counter() - t0) * 1000)

    def send(self, deployment: Deployment, native: NativeRequest, *, internal: bool) -> NativeResponse:
        args = self._invoke_args(deployment, native, internal)
        attempts = max(1, self.binding.retries)
        delay = 0.1
        for attempt in range(1, attempts + 1):
            try:
                return self._invoke_once(deployment, args)
            except ClientError as exc:
                code = str((exc.response.get("Error") or {}).get("Code") or "")
                status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
                if attempt < attempts and (code in RETRY_CODES or status in RETRY_STATUS):
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise self._client_error(exc, deployment, "invoke the endpoint") from None
            except (EndpointConnectionError, ConnectTimeoutError) as exc:
                if attempt < attempts:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise self._transport_error(exc, deployment, "invoke the endpoint") from None
            except BotoCoreError as exc:
                raise self._transport_error(exc, deployment, "invoke the endpoint") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def asend(self, deployment: Deployment, native: NativeRequest, *, internal: bool) -> NativeResponse:
        """Forward once, without retries; SageMaker's own error status and type are passed on."""
        import anyio

        args = self._invoke_args(deployment, native, internal)

        def once() -> NativeResponse:
            try:
                return self._invoke_once(deployment, args)
            except ClientError as exc:
                return _error_response(exc, self._scrub)
            except BotoCoreError as exc:
                raise self._transport_error(exc, deployment, "invoke the endpoint") from None

        return await anyio.to_thread.run_sync(once)

    # -- scoring: batches cut by encoded size ------------------------------------------------
    def score(
        self,
        deployment: Deployment,
        request: ScoringRequest,
        context: ModelContext | None = None,
        *,
        internal: bool = True,
    ) -> ScoringResponse:
        """Score in as few invocations as the 6 MB body limit and ``max_batch_rows`` allow, in order."""
        ctx = context or ModelContext()
        if len(request) == 0:
            return ScoringResponse([], [])
        c = self.codec(deployment, ctx)
        fields, rows = codec_mod.ordered_rows(request, ctx.feature_fields)
        parts = []
        for start, stop, body in codec_mod.batches(c, fields, rows, self.batch_rows(deployment, request)):
            native = NativeRequest(body, c.content_type, headers={"Accept": c.accept})
            decoded = self.decode_response(
                deployment, self.send(deployment, native, internal=internal), ctx, stop - start
            )
            if len(decoded) != stop - start:
                raise self.error(
                    EngineResponseShape,
                    f"returned {len(decoded)} output rows for {stop - start} input rows",
                    deployment,
                )
            parts.append(decoded)
        return ScoringResponse.concat(parts)


def _error_response(exc: ClientError, scrub: Callable[[str], str]) -> NativeResponse:
    """A SageMaker error as the native response the client would have seen."""
    response = exc.response or {}
    err = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    body: dict[str, Any] = {"message": scrub(str(err.get("Message") or ""))}
    for key in ("OriginalStatusCode", "OriginalMessage", "LogStreamArn"):
        if response.get(key) is not None:
            body[key] = response[key]
    headers = {k: v for k, v in (meta.get("HTTPHeaders") or {}).items() if k.lower() != "content-length"}
    if err.get("Code"):
        headers.setdefault("x-amzn-errortype", str(err["Code"]))
    return NativeResponse(int(meta.get("HTTPStatusCode") or 500), orjson.dumps(body), "application/json", headers)


__all__ = ["SageMakerEngine"]
