"""The engine protocol: discovery and scoring, with native <-> common conversion as separate steps.

An adapter implements four small methods, and everything else (batching, the proxy's
forwarding, internal calls) is built from them:

* ``list_deployments()`` / ``get_deployment(id)``: discovery;
* ``encode_request(...)``: common request -> native bytes;
* ``send(...)``: native bytes -> native response (transport, auth, retries);
* ``decode_response(...)``: native response -> common response (output columns only);
* ``decode_request(...)``: native request -> common (used by the proxy to log what it forwards).

``score`` = encode -> send -> decode, split into chunks of ``max_batch_rows``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse
from scrutiny.engines.errors import EngineError, EngineResponseShape

INTERNAL_HEADER = "X-Scrutiny-Internal"


@dataclass
class Deployment:
    """A scoring endpoint an engine exposes (OpenScale contract §1.3)."""

    id: str
    name: str
    scoring_url: str | None = None
    description: str = ""
    type: str = "online"
    created_at: str | None = None
    deployment_rn: str | None = None
    status: str | None = None
    request_headers: dict[str, str] = field(default_factory=dict)
    asset: dict[str, Any] = field(default_factory=dict)
    asset_properties: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # engine-specific, non-secret
    credentials: dict[str, Any] | None = None  # per-endpoint secret (an Azure key); never returned

    def to_dict(self, *, secrets: bool = False) -> dict[str, Any]:
        out = {
            "id": self.id,
            "name": self.name,
            "scoring_url": self.scoring_url,
            "description": self.description,
            "type": self.type,
            "created_at": self.created_at,
            "deployment_rn": self.deployment_rn,
            "status": self.status,
            "scoring_endpoint": {"url": self.scoring_url, "request_headers": dict(self.request_headers)},
            "asset": dict(self.asset),
            "asset_properties": dict(self.asset_properties),
            "options": dict(self.options),
        }
        if secrets and self.credentials:
            out["credentials"] = dict(self.credentials)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Deployment:
        endpoint = d.get("scoring_endpoint") or {}
        return cls(
            id=str(d["id"]),
            name=str(d.get("name") or d["id"]),
            scoring_url=d.get("scoring_url") or endpoint.get("url"),
            description=d.get("description") or "",
            type=d.get("type") or "online",
            created_at=d.get("created_at"),
            deployment_rn=d.get("deployment_rn"),
            status=d.get("status"),
            request_headers=dict(d.get("request_headers") or endpoint.get("request_headers") or {}),
            asset=dict(d.get("asset") or {}),
            asset_properties=dict(d.get("asset_properties") or {}),
            options=dict(d.get("options") or {}),
            credentials=d.get("credentials"),
        )


@dataclass
class ModelContext:
    """What the subscription knows about the model, for adapters whose native format needs it
    (column order for CSV, label order to derive a prediction from probabilities...)."""

    feature_fields: list[str] | None = None
    labels: list[Any] | None = None
    problem_type: str | None = None
    prediction_field: str = "prediction"
    probability_fields: list[str] = field(default_factory=lambda: ["probability"])
    options: dict[str, Any] = field(default_factory=dict)
    # Kind of each input column (``integer``, ``double``, ``string``, ``boolean``): decoders of
    # untyped native bodies (CSV) use it to give logged values their schema types.
    feature_kinds: dict[str, str] = field(default_factory=dict)


@dataclass
class NativeRequest:
    body: bytes
    content_type: str = "application/json"
    path: str = ""  # appended to the scoring URL (the proxy's /proxy/{id}/{rest})
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class NativeResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0


@dataclass
class BindingConfig:
    """What an adapter is built from: the binding's settings and its decrypted secrets."""

    id: str
    name: str
    engine_type: str
    settings: dict[str, Any]
    credentials: dict[str, Any]
    request_headers: dict[str, str] = field(default_factory=dict)
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    retries: int = 3


class Engine(ABC):
    """Base class of engine adapters. Subclasses set ``engine_type`` and implement the hooks."""

    engine_type: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    # Credential keys that are not secret: kept in the binding's visible settings.
    public_keys: ClassVar[frozenset[str]] = frozenset({"url", "region", "protocol", "endpoint_url"})
    required_keys: ClassVar[tuple[str, ...]] = ()
    max_batch_rows: ClassVar[int] = 5001  # one explanation call (5000 perturbations + the row)

    def __init__(self, binding: BindingConfig) -> None:
        self.binding = binding

    # -- binding -----------------------------------------------------------------------------
    @classmethod
    def check_credentials(cls, credentials: dict[str, Any]) -> None:
        """Raise ``InvalidInput`` naming a missing or malformed credential key."""
        from scrutiny.errors import InvalidInput

        missing = [k for k in cls.required_keys if not credentials.get(k)]
        if missing:
            raise InvalidInput(
                f"{cls.engine_type} credentials need {', '.join(missing)}", field=f"credentials.{missing[0]}"
            )

    # -- discovery ---------------------------------------------------------------------------
    @abstractmethod
    def list_deployments(self) -> list[Deployment]: ...

    def get_deployment(self, deployment_id: str) -> Deployment:
        for d in self.list_deployments():
            if d.id == deployment_id:
                return d
        from scrutiny.errors import NotFound

        raise NotFound(f"engine {self.binding.name!r} has no deployment {deployment_id!r}")

    # -- conversion and transport ------------------------------------------------------------
    @abstractmethod
    def encode_request(
        self, deployment: Deployment, request: ScoringRequest, context: ModelContext
    ) -> NativeRequest: ...

    @abstractmethod
    def decode_request(
        self, deployment: Deployment, native: NativeRequest, context: ModelContext
    ) -> ScoringRequest: ...

    @abstractmethod
    def decode_response(
        self, deployment: Deployment, native: NativeResponse, context: ModelContext, n_rows: int | None
    ) -> ScoringResponse: ...

    @abstractmethod
    def send(self, deployment: Deployment, native: NativeRequest, *, internal: bool) -> NativeResponse:
        """Deliver a native request. Raises an ``EngineError`` for transport failures and non-2xx."""

    async def asend(self, deployment: Deployment, native: NativeRequest, *, internal: bool) -> NativeResponse:
        """Async form for the proxy; adapters with an async client override it."""
        import anyio

        return await anyio.to_thread.run_sync(lambda: self.send(deployment, native, internal=internal))

    # -- scoring -----------------------------------------------------------------------------
    def batch_rows(self, deployment: Deployment, request: ScoringRequest) -> int:
        """Rows per call; adapters with a byte limit (SageMaker's 6 MB) override it."""
        return int(deployment.options.get("max_batch_rows") or self.max_batch_rows)

    def score(
        self,
        deployment: Deployment,
        request: ScoringRequest,
        context: ModelContext | None = None,
        *,
        internal: bool = True,
    ) -> ScoringResponse:
        """Score in the common format; split into as few calls as the engine's limits allow."""
        ctx = context or ModelContext()
        n = len(request)
        if n == 0:
            return ScoringResponse([], [])
        step = max(1, self.batch_rows(deployment, request))
        parts: list[ScoringResponse] = []
        for start in range(0, n, step):
            chunk = request.slice(start, start + step)
            native = self.encode_request(deployment, chunk, ctx)
            response = self.send(deployment, native, internal=internal)
            decoded = self.decode_response(deployment, response, ctx, len(chunk))
            if len(decoded) != len(chunk):
                raise self.error(
                    EngineResponseShape,
                    f"returned {len(decoded)} output rows for {len(chunk)} input rows",
                    deployment,
                )
            if parts and set(decoded.fields) != set(parts[0].fields):
                raise self.error(
                    EngineResponseShape,
                    f"answered a later batch with columns {decoded.fields}, the first with {parts[0].fields}",
                    deployment,
                )
            parts.append(decoded)
        return ScoringResponse.concat(parts)

    def error(self, cls: type[EngineError], what: str, deployment: Deployment | str | None, **kw: Any) -> EngineError:
        dep = deployment.id if isinstance(deployment, Deployment) else deployment
        return cls(what, engine=self.engine_type, binding=self.binding.name, deployment=dep, **kw)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
