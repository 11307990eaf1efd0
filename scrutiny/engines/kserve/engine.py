"""KServe: the V1 protocol and the Open Inference Protocol (V2), engines.md §3-§4.

``protocol: v1`` speaks ``/v1/models`` (discovery), ``/v1/models/{name}`` (readiness) and
``/v1/models/{name}:predict`` with ``{"instances"}`` in, ``{"predictions"}`` out; the lists are
read like MLflow's (``scrutiny.engines.lists``). ``protocol: v2`` speaks the Open Inference
Protocol that MLServer, KServe and Triton share (``scrutiny.engines.kserve.oip`` does the tensors).
Deployments are the server's models; servers without a listing are bound with ``models``.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import orjson

from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse
from scrutiny.engines import lists
from scrutiny.engines.base import Deployment, Engine, ModelContext, NativeRequest, NativeResponse
from scrutiny.engines.errors import DiscoveryUnsupported, EngineError, EngineResponseShape
from scrutiny.engines.http import HttpEngine, _origin
from scrutiny.engines.kserve import oip
from scrutiny.errors import InvalidInput, NotFound

PROTOCOLS = ("v1", "v2")
INSTANCE_FORMATS = ("list", "dict")
# how a model's requests and responses are shaped: per model, or for the binding as a default
SHAPE_OPTIONS = ("instance_format", "input_layout", "output_roles", "outputs", "output_mode", "input_name")
MODEL_OPTIONS = (*SHAPE_OPTIONS, "max_batch_rows")


class KServeEngine(HttpEngine):
    engine_type = "kserve"
    aliases = ("kserve_v1", "open_inference_protocol")
    public_keys: ClassVar[frozenset[str]] = Engine.public_keys | {"models", *SHAPE_OPTIONS}
    required_keys = ("url",)

    @classmethod
    def check_credentials(cls, credentials: dict[str, Any]) -> None:
        super().check_credentials(credentials)
        url = credentials["url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidInput("url must start with http:// or https://", field="credentials.url")
        if credentials.get("protocol", "v1") not in PROTOCOLS:
            raise InvalidInput("protocol must be v1 or v2 (Open Inference Protocol)", field="credentials.protocol")
        if (credentials.get("username") is None) != (credentials.get("password") is None):
            raise InvalidInput("basic auth needs both username and password", field="credentials.password")
        _check_options(credentials, "credentials")
        models = credentials.get("models")
        if models is not None:
            if not isinstance(models, list):
                raise InvalidInput(
                    "models must be a list of names or {name, version} objects", field="credentials.models"
                )
            for i, m in enumerate(models):
                if isinstance(m, dict):
                    if not m.get("name"):
                        raise InvalidInput("a model needs a name", field=f"credentials.models[{i}].name")
                    _check_options(m, f"credentials.models[{i}]")
                elif not isinstance(m, str) or not m:
                    raise InvalidInput(
                        "a model is a name or a {name, version} object", field=f"credentials.models[{i}]"
                    )

    @property
    def protocol(self) -> str:
        return str(self.binding.credentials.get("protocol") or "v1")

    @property
    def root(self) -> str:
        return str(self.binding.credentials["url"]).rstrip("/")

    def configured_models(self) -> list[dict[str, Any]]:
        out = []
        for m in self.binding.credentials.get("models") or []:
            out.append(dict(m) if isinstance(m, dict) else {"name": m})
        return out

    # -- discovery ---------------------------------------------------------------------------
    def list_deployments(self) -> list[Deployment]:
        listed = self._v1_index() if self.protocol == "v1" else self._v2_index()
        configured = {_model_id(m): m for m in self.configured_models()}
        if listed is None:
            if not configured:
                what = "/v1/models" if self.protocol == "v1" else "/v2/repository/index"
                raise self.error(
                    DiscoveryUnsupported,
                    f"{_origin(self.root)} has no {what}: list the served models in the binding's models",
                    None,
                )
            listed = list(configured.values())
        seen = {_model_id(m) for m in listed}
        listed += [m for k, m in configured.items() if k not in seen]
        return [self._deployment({**m, **configured.get(_model_id(m), {})}) for m in listed]

    def get_deployment(self, deployment_id: str) -> Deployment:
        for m in self.configured_models():
            if _model_id(m) == deployment_id:
                return self._deployment(m)
        name, _, version = deployment_id.partition("@")
        found = [d for d in self.list_deployments() if d.id == deployment_id]
        if found:
            return found[0]
        raise NotFound(
            f"engine {self.binding.name!r} has no model {name!r}" + (f" version {version!r}" if version else "")
        )

    def _v1_index(self) -> list[dict[str, Any]] | None:
        r = self.request(
            "GET",
            self.root + "/v1/models",
            deployment=None,
            headers=self.headers(None, internal=True),
            ok_statuses=(404, 405),
        )
        if r.status_code in (404, 405):
            return None
        data = self.json(r, None)
        names = data.get("models") if isinstance(data, dict) else None
        if not isinstance(names, list):
            raise self.error(EngineResponseShape, '/v1/models did not return {"models": [...]}', None, body=r.content)
        return [{"name": str(n)} for n in names]

    def _v2_index(self) -> list[dict[str, Any]] | None:
        r = self.request(
            "POST",
            self.root + "/v2/repository/index",
            deployment=None,
            content=b"{}",
            headers=self.headers(None, internal=True),
            ok_statuses=(400, 404, 405, 501),
        )
        if r.status_code >= 400:
            return None
        data = self.json(r, None)
        if not isinstance(data, list):
            raise self.error(EngineResponseShape, "/v2/repository/index did not return a list", None, body=r.content)
        out = []
        for m in data:
            if isinstance(m, dict) and m.get("name"):
                out.append(
                    {"name": str(m["name"]), "version": str(m.get("version") or "") or None, "state": m.get("state")}
                )
        return out

    def _deployment(self, model: dict[str, Any]) -> Deployment:
        name = str(model["name"])
        version = model.get("version") or None
        dep_id = _model_id(model)
        options = {k: model[k] for k in MODEL_OPTIONS if k in model}
        if self.protocol == "v1":
            base = f"{self.root}/v1/models/{quote(name, safe='')}"
            status = self._v1_status(base, dep_id)
            return Deployment(
                id=dep_id,
                name=name,
                scoring_url=base + ":predict",
                description=f"KServe V1 model at {_origin(self.root)}",
                status=status,
                asset={"asset_id": dep_id, "name": name, "asset_type": "model", "url": base},
                options=options,
            )
        base = f"{self.root}/v2/models/{quote(name, safe='')}" + (
            f"/versions/{quote(str(version), safe='')}" if version else ""
        )
        meta = self._v2_metadata(base, dep_id)
        state = model.get("state")
        dep = Deployment(
            id=dep_id,
            name=name,
            scoring_url=base + "/infer",
            description=f"Open Inference Protocol model at {_origin(self.root)}",
            status=str(state).lower() if state else ("ready" if meta is not None else "unknown"),
            asset={
                "asset_id": dep_id,
                "name": name,
                "asset_type": "model",
                "url": base,
                "runtime_environment": (meta or {}).get("platform") or None,
                "model_version": version,
            },
            options=options,
        )
        if meta:
            dep.options["metadata"] = {"inputs": meta.get("inputs") or [], "outputs": meta.get("outputs") or []}
            schema = oip.input_schema(meta.get("inputs") or [])
            if schema:
                dep.asset_properties = {
                    "input_data_schema": {"fields": schema},
                    "feature_fields": [f["name"] for f in schema],
                }
        return dep

    def _v1_status(self, base: str, dep_id: str) -> str:
        r = self.request(
            "GET", base, deployment=dep_id, headers=self.headers(None, internal=True), ok_statuses=(404, 503)
        )
        if r.status_code != 200:
            return f"not ready (HTTP {r.status_code})"
        data = self.json(r, dep_id)
        return "ready" if isinstance(data, dict) and data.get("ready") else "not ready"

    def _v2_metadata(self, base: str, dep_id: str) -> dict[str, Any] | None:
        r = self.request(
            "GET", base, deployment=dep_id, headers=self.headers(None, internal=True), ok_statuses=(400, 404, 503)
        )
        if r.status_code != 200:
            return None
        data = self.json(r, dep_id)
        return data if isinstance(data, dict) else None

    # -- conversion --------------------------------------------------------------------------
    def encode_request(self, deployment: Deployment, request: ScoringRequest, context: ModelContext) -> NativeRequest:
        if self.protocol == "v2":
            body = oip.encode(request, context, self._v2_options(deployment, context))
            return NativeRequest(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))
        fields, values = lists.ordered(request, context)
        fmt = self._option("instance_format", deployment, context) or "list"
        instances: Any = lists.to_records(fields, values) if fmt == "dict" else values
        return NativeRequest(orjson.dumps({"instances": instances}, option=orjson.OPT_SERIALIZE_NUMPY))

    def decode_request(self, deployment: Deployment, native: NativeRequest, context: ModelContext) -> ScoringRequest:
        try:
            data = orjson.loads(native.body)
        except orjson.JSONDecodeError:
            raise InvalidInput("the request body is not JSON") from None
        if self.protocol == "v2":
            return oip.decode_request(data, context, self._v2_options(deployment, context))
        if not isinstance(data, dict) or ("instances" not in data and "inputs" not in data):
            raise InvalidInput('a KServe V1 request is {"instances": [...]}', field="instances")
        key = "instances" if "instances" in data else "inputs"
        payload = data[key]
        if isinstance(payload, dict):
            return lists.columns_table(payload, key)
        return lists.table_from_rows(payload, context.feature_fields, key)

    def decode_response(
        self, deployment: Deployment, native: NativeResponse, context: ModelContext, n_rows: int | None
    ) -> ScoringResponse:
        data = self.json(native, deployment)

        def fail(msg: str) -> EngineError:
            return self.error(EngineResponseShape, msg, deployment, body=native.body)

        if isinstance(data, dict) and "error" in data and "outputs" not in data and "predictions" not in data:
            raise fail(f"the engine answered with an error: {str(data['error'])[:300]}")
        if self.protocol == "v2":
            expected_id = self._sent_id(native)
            return oip.decode_response(data, context, self._v2_options(deployment, context), n_rows, expected_id, fail)
        if not isinstance(data, dict) or "predictions" not in data:
            raise fail('a KServe V1 response is {"predictions": [...]}')
        mode = self._option("output_mode", deployment, context) or "auto"
        return lists.predictions_table(data["predictions"], context, n_rows, output_mode=mode, fail=fail)

    def send(self, deployment: Deployment, native: NativeRequest, *, internal: bool) -> NativeResponse:
        response = super().send(deployment, native, internal=internal)
        if self.protocol == "v2":  # remember the id we sent, to check the echo
            try:
                sent = orjson.loads(native.body).get("id")
            except (orjson.JSONDecodeError, AttributeError):
                sent = None
            if sent is not None:
                response.headers["x-scrutiny-request-id"] = str(sent)
        return response

    @staticmethod
    def _sent_id(native: NativeResponse) -> str | None:
        return native.headers.get("x-scrutiny-request-id")

    def _v2_options(self, deployment: Deployment, context: ModelContext) -> oip.Options:
        meta = deployment.options.get("metadata") or {}
        return oip.Options(
            layout=self._option("input_layout", deployment, context),
            input_name=self._option("input_name", deployment, context),
            output_roles=self._option("output_roles", deployment, context) or {},
            outputs=self._option("outputs", deployment, context),
            output_mode=self._option("output_mode", deployment, context) or "auto",
            inputs_meta=list(meta.get("inputs") or []),
            outputs_meta=list(meta.get("outputs") or []),
        )

    def _option(self, key: str, deployment: Deployment, context: ModelContext) -> Any:
        for source in (context.options, deployment.options, self.binding.credentials):
            if source.get(key) is not None:
                return source[key]
        return None


def _model_id(model: dict[str, Any]) -> str:
    version = model.get("version")
    return f"{model['name']}@{version}" if version else str(model["name"])


def _check_options(src: dict[str, Any], where: str) -> None:
    if src.get("instance_format") is not None and src["instance_format"] not in INSTANCE_FORMATS:
        raise InvalidInput("instance_format must be list or dict", field=f"{where}.instance_format")
    if src.get("input_layout") is not None and src["input_layout"] not in oip.LAYOUTS:
        raise InvalidInput("input_layout must be tensor or columns", field=f"{where}.input_layout")
    roles = src.get("output_roles")
    if roles is not None and (not isinstance(roles, dict) or not all(isinstance(v, str) for v in roles.values())):
        raise InvalidInput(
            'output_roles maps output names to roles: {"predict": "prediction"}', field=f"{where}.output_roles"
        )
    outputs = src.get("outputs")
    if outputs is not None and (not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs)):
        raise InvalidInput("outputs must be a list of output names", field=f"{where}.outputs")
    if src.get("output_mode") is not None and src["output_mode"] not in lists.OUTPUT_MODES:
        raise InvalidInput(f"output_mode must be one of {', '.join(lists.OUTPUT_MODES)}", field=f"{where}.output_mode")
