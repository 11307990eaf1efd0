"""Engine failures, each distinct and each naming the binding and the deployment.

They map to HTTP 502 (the engine misbehaved) or 504 (it did not answer in time), so a client
can tell Scrutiny's own errors from its engine's.
"""

from __future__ import annotations

from typing import Any

from scrutiny.errors import ScrutinyError


class EngineError(ScrutinyError):
    code = "engine_error"
    status = 502

    def __init__(
        self,
        what: str,
        *,
        engine: str | None = None,
        binding: str | None = None,
        deployment: str | None = None,
        engine_status: int | None = None,
        engine_code: str | None = None,
        body: str | bytes | None = None,
        **context: Any,
    ) -> None:
        where = []
        if engine or binding:
            where.append(f"engine {binding!r} ({engine})" if binding else f"engine ({engine})")
        if deployment:
            where.append(f"deployment {deployment!r}")
        excerpt = None
        if body is not None:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            excerpt = text[:1024]
        message = f"{', '.join(where)}: {what}" if where else what
        if excerpt:
            message += f" (body: {excerpt[:300]!r})"
        super().__init__(
            message,
            engine=engine,
            binding=binding,
            deployment=deployment,
            engine_status=engine_status,
            engine_code=engine_code,
            engine_body=excerpt,
            **context,
        )
        self.engine_status = engine_status


class EngineUnreachable(EngineError):
    """No connection could be made (refused, DNS, TLS)."""

    code = "engine_unreachable"


class EngineTimeout(EngineError):
    code = "engine_timeout"
    status = 504


class EngineAuthError(EngineError):
    """401/403: the binding's credentials were refused."""

    code = "engine_auth_failed"


class EngineRejected(EngineError):
    """Another 4xx: the engine refused the request."""

    code = "engine_rejected_request"


class EngineServerError(EngineError):
    """5xx from the engine."""

    code = "engine_server_error"


class EngineBadResponse(EngineError):
    """The body could not be decoded (not JSON, not CSV...)."""

    code = "engine_invalid_response"


class EngineResponseShape(EngineError):
    """Decoded, but not the expected shape (missing keys, row count differs from the request)."""

    code = "engine_unexpected_response"


class DiscoveryUnsupported(EngineError):
    """The engine has no discovery: deployments are added by hand as a scoring URL."""

    code = "engine_discovery_unsupported"
    status = 409
