"""MLflow scoring servers (``mlflow models serve``, ``/invocations``), engines.md §2.

A scoring server hosts exactly one model and has no listing API, so a binding names its
servers: ``url`` for one, or ``servers: [{"name", "url", "model_uri"?, ...}]`` for several
bound as one engine. Each server is a deployment (id = its name, default ``host:port``); its
health comes from ``/ping`` and its MLflow version from ``/version``. With ``tracking_uri``,
the model registry describes the model a server serves (``model_uri``) and fills the input
schema from the version's signature; registered versions no server serves are listed too, as
``registered`` deployments that cannot be scored until a server is added for them.

Requests go out as ``dataframe_split`` (names sent once, column order kept) unless
``request_format`` says ``dataframe_records``, ``instances``, ``inputs`` or ``csv``; answers
are ``{"predictions": P}`` (or a bare ``P`` from MLflow 1.x) as ``scrutiny.engines.lists``
reads them, with ``output_mode`` saying what a list of numbers is when the shape cannot.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import httpx
import orjson

from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse
from scrutiny.engines import lists
from scrutiny.engines.base import BindingConfig, Deployment, Engine, ModelContext, NativeRequest, NativeResponse
from scrutiny.engines.errors import EngineError, EngineRejected, EngineResponseShape, EngineUnreachable
from scrutiny.engines.http import HttpEngine, _origin, build_auth, static_headers
from scrutiny.engines.mlflow.registry import Registry, parse_model_uri, predict_fn, signature_schema
from scrutiny.errors import InvalidInput

REQUEST_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs", "csv")
INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
SERVER_KEYS = frozenset({"name", "url", "model_uri", "request_format", "output_mode", "params", "max_batch_rows"})
CSV = "text/csv"


class MlflowEngine(HttpEngine):
    engine_type = "mlflow"
    aliases = ("mlflow_serving",)
    public_keys: ClassVar[frozenset[str]] = Engine.public_keys | {
        "servers",
        "tracking_uri",
        "request_format",
        "output_mode",
        "params",
    }

    def __init__(self, binding: BindingConfig) -> None:
        super().__init__(binding)
        self._tracking: httpx.Client | None = None

    # -- binding -----------------------------------------------------------------------------
    @classmethod
    def check_credentials(cls, credentials: dict[str, Any]) -> None:
        servers = _servers_of(credentials)
        seen: set[str] = set()
        for i, s in enumerate(servers):
            where = f"credentials.servers[{i}]" if "servers" in credentials else "credentials"
            unknown = sorted(set(s) - SERVER_KEYS)
            if unknown and "servers" in credentials:
                raise InvalidInput(f"unknown server key {unknown[0]!r}", field=f"{where}.{unknown[0]}")
            url = s.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise InvalidInput("url must start with http:// or https://", field=f"{where}.url")
            name = _server_name(s)
            if name in seen:
                raise InvalidInput(f"two servers are named {name!r}", field=f"{where}.name")
            seen.add(name)
            _check_options(s, where)
            if s.get("model_uri") is not None:
                try:
                    parse_model_uri(str(s["model_uri"]))
                except ValueError as exc:
                    raise InvalidInput(str(exc), field=f"{where}.model_uri") from None
        if not servers and not credentials.get("tracking_uri"):
            raise InvalidInput("mlflow credentials need url, servers or tracking_uri", field="credentials.url")
        _check_options(credentials, "credentials")
        tracking = credentials.get("tracking_uri")
        if tracking is not None and (not isinstance(tracking, str) or not tracking.startswith(("http://", "https://"))):
            raise InvalidInput("tracking_uri must start with http:// or https://", field="credentials.tracking_uri")
        for prefix in ("", "tracking_"):
            if (credentials.get(f"{prefix}username") is None) != (credentials.get(f"{prefix}password") is None):
                raise InvalidInput("basic auth needs both username and password", field=f"credentials.{prefix}password")

    @property
    def servers(self) -> list[dict[str, Any]]:
        return _servers_of(self.binding.credentials)

    # -- discovery ---------------------------------------------------------------------------
    def list_deployments(self) -> list[Deployment]:
        registry = self._registry()
        out = [self._server_deployment(s, registry) for s in self.servers]
        if registry is not None:
            served = {d.asset.get("model_version_key") for d in out}
            for v in registry.latest_versions():
                if _version_key(v) not in served:
                    out.append(self._registered_deployment(v, None))
        return out

    def get_deployment(self, deployment_id: str) -> Deployment:
        for s in self.servers:
            if _server_name(s) == deployment_id:
                return self._server_deployment(s, self._registry())
        registry = self._registry()
        if registry is not None and deployment_id.startswith("models:/"):
            try:
                version = registry.resolve(deployment_id)
            except (ValueError, LookupError, EngineRejected) as exc:
                from scrutiny.errors import NotFound

                what = exc.message if isinstance(exc, EngineRejected) else str(exc)
                raise NotFound(f"engine {self.binding.name!r}: no registered model {deployment_id}: {what}") from None
            return self._registered_deployment(version, registry)
        return super().get_deployment(deployment_id)

    def _server_deployment(self, server: dict[str, Any], registry: Registry | None) -> Deployment:
        name = _server_name(server)
        root = str(server["url"]).rstrip("/")
        status, version = self._health(root, name)
        options: dict[str, Any] = {
            k: server[k] for k in ("request_format", "output_mode", "params", "max_batch_rows") if k in server
        }
        dep = Deployment(
            id=name,
            name=name,
            scoring_url=root + "/invocations",
            description=f"MLflow scoring server at {_origin(root)}",
            status=status,
            asset={
                "asset_id": name,
                "name": name,
                "asset_type": "model",
                "url": root,
                "runtime_environment": f"mlflow-{version}" if version else None,
            },
            options=options,
        )
        model_uri = server.get("model_uri")
        if model_uri and registry is not None:
            try:
                mv = registry.resolve(str(model_uri))
            except (ValueError, LookupError, EngineError) as exc:  # the server is still listed
                dep.description += f"; {model_uri} not found in the registry: {getattr(exc, 'message', exc)}"
                dep.asset["model_uri"] = str(model_uri)
                return dep
            described = self._registered_deployment(mv, registry)
            dep.asset.update({k: v for k, v in described.asset.items() if k != "runtime_environment"})
            dep.asset["model_uri"] = str(model_uri)
            dep.created_at = described.created_at
            dep.asset_properties = described.asset_properties
            for k, v in described.options.items():
                dep.options.setdefault(k, v)
        elif model_uri:
            dep.asset["model_uri"] = str(model_uri)
        return dep

    def _registered_deployment(self, version: dict[str, Any], registry: Registry | None) -> Deployment:
        """A registered model version; with ``registry``, its signature is read too."""
        key = _version_key(version)
        created = _iso(version.get("creation_timestamp"))
        dep = Deployment(
            id=f"models:/{version['name']}/{version['version']}",
            name=f"{version['name']} v{version['version']}",
            scoring_url=None,
            description=version.get("description") or "",
            created_at=created,
            status="registered",
            asset={
                "asset_id": key,
                "name": str(version["name"]),
                "asset_type": "model",
                "url": version.get("source"),
                "created_at": created,
                "model_version": str(version["version"]),
                "model_version_key": key,
                "run_id": version.get("run_id"),
                "aliases": version.get("aliases") or [],
            },
        )
        if registry is not None:
            mlmodel = registry.mlmodel(version)
            if mlmodel:
                schema = signature_schema(mlmodel)
                if schema:
                    dep.asset_properties = {
                        "input_data_schema": {"fields": schema},
                        "feature_fields": [f["name"] for f in schema],
                    }
                if predict_fn(mlmodel) == "predict_proba":
                    dep.options["output_mode"] = "predict_proba"
        return dep

    def _health(self, root: str, name: str) -> tuple[str, str | None]:
        """(status, MLflow version): one quick try each, so a down server never blocks discovery."""
        headers = self.headers(None, internal=True)
        try:
            ping = self.client.get(root + "/ping", headers=headers, timeout=self.timeout.connect or 5.0)
        except httpx.HTTPError:
            return "unreachable", None
        if ping.status_code != 200:
            return f"unhealthy (HTTP {ping.status_code})", None
        try:
            v = self.client.get(root + "/version", headers=headers, timeout=self.timeout.connect or 5.0)
        except httpx.HTTPError:
            return "ready", None
        text = v.text.strip().strip('"') if v.status_code == 200 else ""
        return "ready", text[:40] if text and len(text) <= 40 and " " not in text else None

    def _registry(self) -> Registry | None:
        base = self.binding.credentials.get("tracking_uri")
        if not base:
            return None
        creds = self.binding.credentials
        tracking = {
            "username": creds.get("tracking_username"),
            "password": creds.get("tracking_password"),
            "token": creds.get("tracking_token"),
        }
        client = self._tracking_client(tracking)
        headers = {"Accept": "application/json", **static_headers(tracking)}
        base = str(base).rstrip("/")

        def call(path: str) -> httpx.Response:
            url = base + path
            try:
                r = client.get(url, headers=headers)
            except httpx.TimeoutException:
                raise self.error(EngineUnreachable, f"tracking server {_origin(url)} did not answer", None) from None
            except httpx.HTTPError as exc:
                raise self.error(
                    EngineUnreachable, f"cannot reach tracking server {_origin(url)}: {exc}", None
                ) from None
            return r

        def get(path: str, query: dict[str, Any] | None) -> Any:
            r = call(f"/api/2.0/mlflow/{path}" + ("?" + str(httpx.QueryParams(query)) if query else ""))
            return self.json(self.check(r, None), None)

        def get_text(path: str) -> str | None:
            r = call(path)
            return r.text if r.status_code == 200 else None

        return Registry(get, get_text)

    def _tracking_client(self, tracking: dict[str, Any]) -> httpx.Client:
        if self._tracking is None:
            self._tracking = httpx.Client(timeout=self.timeout, auth=build_auth(tracking), follow_redirects=False)
        return self._tracking

    # -- conversion --------------------------------------------------------------------------
    def encode_request(self, deployment: Deployment, request: ScoringRequest, context: ModelContext) -> NativeRequest:
        fmt = self._option("request_format", deployment, context) or "dataframe_split"
        fields, values = request.fields, request.values
        if fmt == "csv":
            return NativeRequest(lists.to_csv(fields, values), CSV)
        if fmt == "dataframe_split":
            body: dict[str, Any] = {"dataframe_split": {"columns": fields, "data": values}}
        elif fmt in ("dataframe_records", "instances"):
            body = {fmt: lists.to_records(fields, values)}
        elif fmt == "inputs":
            body = {"inputs": lists.to_columns(fields, values)}
        else:
            raise self.error(
                EngineRejected, f"unknown request_format {fmt!r}; one of {', '.join(REQUEST_FORMATS)}", deployment
            )
        params = self._option("params", deployment, context)
        if params:
            body["params"] = params
        return NativeRequest(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))

    def decode_request(self, deployment: Deployment, native: NativeRequest, context: ModelContext) -> ScoringRequest:
        """Every request form the scoring server accepts (the proxy logs what it forwards)."""
        ctype = native.content_type.split(";")[0].strip().lower()
        if ctype == CSV:
            return lists.from_csv(native.body, context.feature_fields, kinds=context.feature_kinds)
        try:
            data = orjson.loads(native.body)
        except orjson.JSONDecodeError:
            raise InvalidInput("the request body is neither JSON nor text/csv") from None
        keys = [k for k in INPUT_KEYS if isinstance(data, dict) and k in data]
        if len(keys) != 1:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise InvalidInput(
                f"an MLflow request is a JSON object with exactly one of {', '.join(INPUT_KEYS)}; got {got}"
            )
        key = keys[0]
        payload = data[key]
        if key == "dataframe_split":
            if not isinstance(payload, dict):
                raise InvalidInput("dataframe_split must be an object with columns and data", field=key)
            columns = payload.get("columns") or context.feature_fields
            rows = payload.get("data")
            if isinstance(rows, list) and rows and not isinstance(rows[0], list):
                rows = [rows]  # one row given flat
            return lists.table_from_rows(rows if rows is not None else [], columns, key)
        if key == "dataframe_records":
            if isinstance(payload, dict):  # pandas "index" orient: {"0": {...}, "1": {...}}
                payload = list(payload.values())
            return lists.table_from_rows(payload, context.feature_fields, key)
        if isinstance(payload, dict):  # instances/inputs as columns
            return lists.columns_table(payload, key)
        return lists.table_from_rows(payload, context.feature_fields, key)

    def decode_response(
        self, deployment: Deployment, native: NativeResponse, context: ModelContext, n_rows: int | None
    ) -> ScoringResponse:
        data = self.json(native, deployment)
        predictions = data["predictions"] if isinstance(data, dict) and "predictions" in data else data
        mode = self._option("output_mode", deployment, context) or "auto"

        def fail(msg: str) -> EngineError:
            return self.error(EngineResponseShape, msg, deployment, body=native.body)

        return lists.predictions_table(predictions, context, n_rows, output_mode=mode, fail=fail)

    def send(self, deployment: Deployment, native: NativeRequest, *, internal: bool) -> NativeResponse:
        if not deployment.scoring_url:
            raise self.error(
                EngineRejected,
                f"no scoring server serves this registered model: add a server with "
                f'"model_uri": "{deployment.id}" to the binding\'s servers',
                deployment,
            )
        return super().send(deployment, native, internal=internal)

    def _option(self, key: str, deployment: Deployment, context: ModelContext) -> Any:
        """Subscription/deployment option first, then the binding's default."""
        for source in (context.options, deployment.options, self.binding.credentials):
            if source.get(key) is not None:
                return source[key]
        return None

    def close(self) -> None:
        super().close()
        if self._tracking is not None:
            self._tracking.close()
            self._tracking = None


def _servers_of(credentials: dict[str, Any]) -> list[dict[str, Any]]:
    servers = credentials.get("servers")
    if servers is not None:
        if not isinstance(servers, list) or not all(isinstance(s, dict) for s in servers):
            raise InvalidInput("servers must be a list of {name, url} objects", field="credentials.servers")
        return list(servers)
    if credentials.get("url"):
        keys = ("name", "url", "model_uri")
        return [{k: credentials[k] for k in keys if credentials.get(k) is not None}]
    return []


def _server_name(server: dict[str, Any]) -> str:
    if server.get("name"):
        return str(server["name"])
    u = httpx.URL(str(server["url"]))
    return f"{u.host}:{u.port or (443 if u.scheme == 'https' else 80)}"


def _check_options(where_from: dict[str, Any], where: str) -> None:
    fmt = where_from.get("request_format")
    if fmt is not None and fmt not in REQUEST_FORMATS:
        raise InvalidInput(
            f"request_format must be one of {', '.join(REQUEST_FORMATS)}", field=f"{where}.request_format"
        )
    mode = where_from.get("output_mode")
    if mode is not None and mode not in lists.OUTPUT_MODES:
        raise InvalidInput(f"output_mode must be one of {', '.join(lists.OUTPUT_MODES)}", field=f"{where}.output_mode")
    params = where_from.get("params")
    if params is not None and not isinstance(params, dict):
        raise InvalidInput("params must be an object", field=f"{where}.params")


def _version_key(version: dict[str, Any]) -> str:
    return f"{version.get('name')}/{version.get('version')}"


def _iso(ms: Any) -> str | None:
    if not isinstance(ms, (int, float)):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
