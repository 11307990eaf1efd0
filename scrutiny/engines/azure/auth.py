"""Azure AD service-principal tokens and the Azure Resource Manager API, shared by both Azure engines.

A binding holds a service principal (``client_id``, ``client_secret``, ``tenant``,
``subscription_id``). Tokens come from the client-credentials grant of the v2.0 token endpoint,
one per scope, cached and renewed before they expire (and once more after a 401). Management
calls follow ``nextLink`` paging, only ever to the management host itself, so a token is never
sent anywhere else. ``authority_url`` and ``management_url`` point elsewhere (sovereign clouds,
local test servers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import orjson

from scrutiny.engines.base import Deployment, NativeRequest, NativeResponse
from scrutiny.engines.errors import DiscoveryUnsupported, EngineAuthError, EngineResponseShape
from scrutiny.engines.http import HttpEngine
from scrutiny.errors import InvalidInput

AUTHORITY = "https://login.microsoftonline.com"
MANAGEMENT = "https://management.azure.com"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
ML_SCOPE = "https://ml.azure.com/.default"  # AADToken-mode online endpoints
PRINCIPAL_KEYS = ("client_id", "client_secret", "tenant", "subscription_id")
PUBLIC_KEYS = frozenset({"client_id", "tenant", "subscription_id", "authority_url", "management_url"})
MAX_PAGES = 1000


def check_principal(credentials: dict[str, Any]) -> None:
    """A service principal is all four keys or none (classic services are bound by URL and key alone)."""
    given = [k for k in PRINCIPAL_KEYS if credentials.get(k)]
    if given and len(given) < len(PRINCIPAL_KEYS):
        missing = [k for k in PRINCIPAL_KEYS if k not in given]
        raise InvalidInput(
            f"a service principal needs {', '.join(PRINCIPAL_KEYS)}; missing {', '.join(missing)}",
            field=f"credentials.{missing[0]}",
        )
    for key in ("authority_url", "management_url"):
        url = credentials.get(key)
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise InvalidInput(f"{key} must start with http:// or https://", field=f"credentials.{key}")


def has_principal(credentials: dict[str, Any]) -> bool:
    return all(credentials.get(k) for k in PRINCIPAL_KEYS)


def renew_margin(lifetime: float) -> float:
    """Renew five minutes before expiry, or after 80% of a short lifetime."""
    return min(300.0, 0.2 * lifetime)


class AzureTokens:
    """Client-credentials tokens per scope, renewed before they expire. Thread-safe."""

    def __init__(self, engine: HttpEngine) -> None:
        self.engine = engine
        creds = engine.binding.credentials
        self.url = f"{str(creds.get('authority_url') or AUTHORITY).rstrip('/')}/{creds.get('tenant')}/oauth2/v2.0/token"
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, renew at, monotonic)
        self._lock = threading.Lock()

    def token(self, scope: str = MANAGEMENT_SCOPE, deployment: Any = None) -> str:
        with self._lock:
            hit = self._tokens.get(scope)
            if hit is not None and time.monotonic() < hit[1]:
                return hit[0]
            token, renew_at = self._fetch(scope, deployment)
            self._tokens[scope] = (token, renew_at)
            return token

    def forget(self, scope: str = MANAGEMENT_SCOPE) -> None:
        with self._lock:
            self._tokens.pop(scope, None)

    def _fetch(self, scope: str, deployment: Any) -> tuple[str, float]:
        creds = self.engine.binding.credentials
        form = {
            "grant_type": "client_credentials",
            "client_id": str(creds["client_id"]),
            "client_secret": str(creds["client_secret"]),
            "scope": scope,
        }
        r = self.engine.request(
            "POST",
            self.url,
            deployment=deployment,
            data=form,
            headers={"Accept": "application/json"},
            ok_statuses=(400, 401, 403),
        )
        data = _json_object(r)
        if r.status_code >= 400 or not data.get("access_token"):
            code = str(data.get("error") or f"HTTP {r.status_code}")
            detail = str(data.get("error_description") or "").split(".")[
                0
            ]  # "AADSTS7000215: Invalid client secret provided"
            raise self.engine.error(
                EngineAuthError,
                f"Azure AD refused the service principal ({code}{': ' + detail if detail else ''})",
                deployment,
                engine_status=r.status_code,
                engine_code=code,
            )
        lifetime = float(data.get("expires_in") or 3600)
        return str(data["access_token"]), time.monotonic() + lifetime - renew_margin(lifetime)


class AzureManagement:
    """Azure Resource Manager calls with the service principal's token, ``nextLink`` paging included."""

    def __init__(self, engine: HttpEngine, tokens: AzureTokens) -> None:
        self.engine = engine
        self.tokens = tokens
        creds = engine.binding.credentials
        self.base = str(creds.get("management_url") or MANAGEMENT).rstrip("/")
        self.subscription = str(creds.get("subscription_id") or "")
        self._origin = httpx.URL(self.base).copy_with(path="/", query=None)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base}/{path.lstrip('/')}"

    def call(
        self,
        method: str,
        path: str,
        *,
        api_version: str | None,
        deployment: Any = None,
        body: Any = None,
    ) -> Any:
        """One call; a 401 renews the token once (it may have been revoked early)."""
        url = self.url(path)
        params = {"api-version": api_version} if api_version else None
        content = orjson.dumps(body) if body is not None else (b"" if method == "POST" else None)
        for attempt in (1, 2):
            headers = {
                "Authorization": f"Bearer {self.tokens.token(MANAGEMENT_SCOPE, deployment)}",
                "Accept": "application/json",
            }
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                r = self.engine.request(
                    method, url, deployment=deployment, content=content, headers=headers, params=params
                )
            except EngineAuthError:
                if attempt == 1:
                    self.tokens.forget(MANAGEMENT_SCOPE)
                    continue
                raise
            return _json_object(r, self.engine, deployment)
        raise AssertionError("unreachable")  # pragma: no cover

    def pages(self, path: str, *, api_version: str, deployment: Any = None) -> Iterator[dict[str, Any]]:
        """Every item of a paged list (``value`` + ``nextLink``), page after page."""
        page = self.call("GET", path, api_version=api_version, deployment=deployment)
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            items = page.get("value")
            if not isinstance(items, list):
                raise self.engine.error(EngineResponseShape, f"management list {path} has no 'value' list", deployment)
            yield from (i for i in items if isinstance(i, dict))
            link = page.get("nextLink")
            if not link or link in seen:
                return
            seen.add(link)
            if httpx.URL(link).copy_with(path="/", query=None) != self._origin:
                raise self.engine.error(
                    EngineResponseShape, "a nextLink points away from the management endpoint; not followed", deployment
                )
            page = self.call("GET", link, api_version=None, deployment=deployment)  # nextLink carries its api-version


def _json_object(r: httpx.Response, engine: HttpEngine | None = None, deployment: Any = None) -> dict[str, Any]:
    try:
        data = orjson.loads(r.content) if r.content else {}
    except orjson.JSONDecodeError:
        if engine is None:
            return {}
        raise engine.error(EngineResponseShape, "management response is not JSON", deployment) from None
    if not isinstance(data, dict):
        if engine is None:
            return {}
        raise engine.error(EngineResponseShape, "management response is not a JSON object", deployment)
    return data


def resource_group(resource_id: str) -> str | None:
    """``/subscriptions/s/resourceGroups/rg/providers/...`` -> ``rg``."""
    parts = resource_id.strip("/").split("/")
    for i, p in enumerate(parts[:-1]):
        if p.lower() == "resourcegroups":
            return parts[i + 1]
    return None


def unique_ids(candidates: list[tuple[str, str]]) -> list[str]:
    """Short ids (a service's name) where unique; ``qualifier/name`` where two share a name."""
    counts: dict[str, int] = {}
    for name, _ in candidates:
        counts[name] = counts.get(name, 0) + 1
    return [name if counts[name] == 1 else f"{qualifier}/{name}" for name, qualifier in candidates]


class AzureHttpEngine(HttpEngine):
    """What both Azure engines share: the service principal, and scoring credentials of discovered
    deployments kept fresh (a key fetched again after a 401, since keys get rotated; an endpoint
    token renewed before it expires). Deployments registered by hand use the key they were given."""

    public_keys: ClassVar[frozenset[str]] = PUBLIC_KEYS

    def __init__(self, binding: Any) -> None:
        super().__init__(binding)
        self.tokens = AzureTokens(self)
        self.management = AzureManagement(self, self.tokens)
        self._scoring_auth: dict[str, tuple[str, float]] = {}  # resource id -> (secret, renew at)
        self._auth_lock = threading.Lock()

    @classmethod
    def check_credentials(cls, credentials: dict[str, Any]) -> None:
        check_principal(credentials)

    def require_principal(self) -> None:
        if not has_principal(self.binding.credentials):
            raise self.error(
                DiscoveryUnsupported,
                "the binding has no service principal (client_id, client_secret, tenant, subscription_id): "
                "subscribe with a scoring URL and its key instead",
                None,
            )

    # -- hooks -------------------------------------------------------------------------------
    def auth_mode(self, deployment: Deployment) -> str:
        return str(deployment.options.get("auth_mode") or "Key")

    def fetch_key(self, deployment: Deployment) -> str:
        raise NotImplementedError

    def fetch_endpoint_token(self, deployment: Deployment) -> tuple[str, float]:
        """(token, seconds until it should be renewed)."""
        raise NotImplementedError

    # -- scoring credentials -----------------------------------------------------------------
    def managed(self, deployment: Deployment) -> bool:
        """Discovered through the management API, so its credential can be fetched again."""
        return bool(deployment.options.get("resource_id")) and has_principal(self.binding.credentials)

    def prepare_auth(self, deployment: Deployment, *, renew: bool = False) -> None:
        if not self.managed(deployment):
            return
        rid = str(deployment.options["resource_id"])
        mode = self.auth_mode(deployment)
        with self._auth_lock:
            cached = self._scoring_auth.get(rid)
            fresh = cached is not None and time.monotonic() < cached[1]
            if fresh and not renew:
                return
            if mode == "Key":
                if not renew and (deployment.credentials or {}).get("token"):
                    return
                self._scoring_auth[rid] = (self.fetch_key(deployment), float("inf"))
            elif mode == "AADToken":
                if renew:
                    self.tokens.forget(ML_SCOPE)
                self._scoring_auth[rid] = (self.tokens.token(ML_SCOPE, deployment), time.monotonic() + 60)
            else:  # AMLToken
                token, renew_in = self.fetch_endpoint_token(deployment)
                self._scoring_auth[rid] = (token, time.monotonic() + renew_in)

    def headers(
        self, deployment: Deployment | None, *, internal: bool, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        h = super().headers(deployment, internal=internal, extra=extra)
        if deployment is not None and deployment.options.get("resource_id"):
            cached = self._scoring_auth.get(str(deployment.options["resource_id"]))
            if cached is not None:
                h["Authorization"] = f"Bearer {cached[0]}"
        return h

    def send(self, deployment: Deployment, native: NativeRequest, *, internal: bool) -> NativeResponse:
        self.prepare_auth(deployment)
        try:
            return super().send(deployment, native, internal=internal)
        except EngineAuthError:
            if not self.managed(deployment):
                raise
            self.prepare_auth(deployment, renew=True)  # a rotated key, a revoked token
            return super().send(deployment, native, internal=internal)

    async def asend(self, deployment: Deployment, native: NativeRequest, *, internal: bool) -> NativeResponse:
        import anyio

        await anyio.to_thread.run_sync(lambda: self.prepare_auth(deployment))
        response = await super().asend(deployment, native, internal=internal)
        if response.status == 401 and self.managed(deployment):
            await anyio.to_thread.run_sync(lambda: self.prepare_auth(deployment, renew=True))
            response = await super().asend(deployment, native, internal=internal)
        return response


__all__ = [
    "MANAGEMENT_SCOPE",
    "ML_SCOPE",
    "PRINCIPAL_KEYS",
    "PUBLIC_KEYS",
    "AzureHttpEngine",
    "AzureManagement",
    "AzureTokens",
    "check_principal",
    "has_principal",
    "renew_margin",
    "resource_group",
    "unique_ids",
]
