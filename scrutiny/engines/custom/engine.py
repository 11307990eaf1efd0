"""The custom ML engine: OpenScale's contract for a user's own REST service (contract §2).

Discovery is ``GET {url}/v1/deployments`` in either published form; scoring is a ``POST`` of
the common format to each deployment's scoring URL, answered in the common format.
"""

from __future__ import annotations

from typing import Any

import orjson

from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse, parse_scoring_request, parse_scoring_response
from scrutiny.engines.base import Deployment, ModelContext, NativeRequest, NativeResponse
from scrutiny.engines.errors import DiscoveryUnsupported, EngineBadResponse, EngineRejected, EngineResponseShape
from scrutiny.engines.http import HttpEngine
from scrutiny.errors import InvalidInput


class CustomEngine(HttpEngine):
    engine_type = "custom"
    aliases = ("custom_machine_learning",)
    required_keys = ()

    @classmethod
    def check_credentials(cls, credentials: dict[str, Any]) -> None:
        url = credentials.get("url")
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise InvalidInput("url must start with http:// or https://", field="credentials.url")
        if (credentials.get("username") is None) != (credentials.get("password") is None):
            raise InvalidInput("basic auth needs both username and password", field="credentials.password")
        if credentials.get("auth_url") and not credentials.get("apikey"):
            raise InvalidInput("a token auth_url needs an apikey", field="credentials.apikey")

    # -- discovery ---------------------------------------------------------------------------
    def list_deployments(self) -> list[Deployment]:
        base = self.binding.settings.get("url")
        if not base:
            raise self.error(DiscoveryUnsupported, "the binding has no url: subscribe with a scoring_url instead", None)
        url = base.rstrip("/") + "/v1/deployments"
        r = self.request("GET", url, deployment=None, headers=self.headers(None, internal=True), ok_statuses=(404, 405))
        if r.status_code in (404, 405):
            raise self.error(
                DiscoveryUnsupported,
                f"{url} does not exist (HTTP {r.status_code}): add deployments by hand as a scoring URL",
                None,
            )
        return parse_discovery(self.json(r, None), on_error=lambda msg: self.error(EngineResponseShape, msg, None))

    # -- conversion --------------------------------------------------------------------------
    def encode_request(self, deployment: Deployment, request: ScoringRequest, context: ModelContext) -> NativeRequest:
        return NativeRequest(
            orjson.dumps({"fields": request.fields, "values": request.values}, option=orjson.OPT_SERIALIZE_NUMPY)
        )

    def decode_request(self, deployment: Deployment, native: NativeRequest, context: ModelContext) -> ScoringRequest:
        try:
            return parse_scoring_request(orjson.loads(native.body))
        except orjson.JSONDecodeError:
            raise InvalidInput("request body is not JSON") from None

    def decode_response(
        self, deployment: Deployment, native: NativeResponse, context: ModelContext, n_rows: int | None
    ) -> ScoringResponse:
        data = self.json(native, deployment)
        try:
            response = parse_scoring_response(data)
        except InvalidInput as exc:
            raise self.error(
                EngineResponseShape, f"response is not {{fields, values}}: {exc.message}", deployment, body=native.body
            ) from None
        return drop_echoed_inputs(response, context.feature_fields)

    def send(self, deployment: Deployment, native: NativeRequest, *, internal: bool) -> NativeResponse:
        if not deployment.scoring_url:
            raise self.error(EngineRejected, "deployment has no scoring_url", deployment)
        return super().send(deployment, native, internal=internal)


def drop_echoed_inputs(response: ScoringResponse, feature_fields: list[str] | None) -> ScoringResponse:
    """Keep output columns only: engines may echo the inputs before their outputs."""
    if not feature_fields:
        return response
    inputs = set(feature_fields)
    keep = [i for i, f in enumerate(response.fields) if f not in inputs]
    if len(keep) == len(response.fields):
        return response
    return ScoringResponse(
        [response.fields[i] for i in keep], [[row[i] for i in keep] for row in response.values], response.labels
    )


def parse_discovery(data: Any, on_error: Any) -> list[Deployment]:
    """Both published forms of ``GET /v1/deployments`` (contract §2.3); ``count`` is informational."""
    if isinstance(data, list):
        resources = data
    elif isinstance(data, dict) and isinstance(data.get("resources"), list):
        resources = data["resources"]
    else:
        raise on_error("discovery response has no 'resources' list")
    out = []
    for i, res in enumerate(resources):
        if (
            not isinstance(res, dict)
            or not isinstance(res.get("metadata"), dict)
            or not isinstance(res.get("entity"), dict)
        ):
            raise on_error(f"discovery resource {i} needs 'metadata' and 'entity' objects")
        meta, ent = res["metadata"], res["entity"]
        dep_id = meta.get("guid") or meta.get("id")
        if not dep_id:
            raise on_error(f"discovery resource {i} has no metadata.guid")
        endpoint = ent.get("scoring_endpoint") or {}
        scoring_url = endpoint.get("url") or ent.get("scoring_url")
        asset = ent.get("asset") or {}
        asset_id = asset.get("asset_id") or asset.get("guid") or dep_id
        out.append(
            Deployment(
                id=str(dep_id),
                name=str(ent.get("name") or dep_id),
                scoring_url=scoring_url,
                description=ent.get("description") or "",
                type=ent.get("type") or "online",
                created_at=asset.get("created_at") or meta.get("created_at"),
                deployment_rn=ent.get("deployment_rn"),
                request_headers=dict(endpoint.get("request_headers") or {}),
                asset={
                    "asset_id": str(asset_id),
                    "name": asset.get("name") or ent.get("name") or str(dep_id),
                    "asset_type": asset.get("asset_type") or "model",
                    "url": asset.get("url") or scoring_url,
                    "asset_rn": asset.get("asset_rn"),
                    "created_at": asset.get("created_at") or meta.get("created_at"),
                },
                asset_properties=dict(ent.get("asset_properties") or {}),
            )
        )
    return out


__all__ = ["CustomEngine", "EngineBadResponse", "drop_echoed_inputs", "parse_discovery"]
