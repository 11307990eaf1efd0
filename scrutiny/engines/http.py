"""Shared HTTP transport for engine adapters: timeouts, bounded retries, auth, error mapping.

Retries follow the engines' own guidance: connection failures and 429/502/503/504 are retried
up to ``retries`` attempts with exponential backoff; other 4xx never are; a read timeout is not
retried either, since the engine may already have done the work.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import urllib.request
from collections.abc import Generator
from typing import Any, ClassVar

import httpx
import orjson

from scrutiny.engines.base import INTERNAL_HEADER, BindingConfig, Deployment, Engine, NativeRequest, NativeResponse
from scrutiny.engines.errors import (
    EngineAuthError,
    EngineBadResponse,
    EngineError,
    EngineRejected,
    EngineServerError,
    EngineTimeout,
    EngineUnreachable,
)
from scrutiny.engines.transport import FastHTTPTransport, fast_transport_available

log = logging.getLogger("scrutiny.engines")
# httpx logs every request URL at INFO; URLs can carry keys (Azure SAS, query tokens).
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

RETRY_STATUS = frozenset({429, 502, 503, 504})


class MintedBearer(httpx.Auth):
    """Bearer token minted from ``auth_url`` with an API key; refreshed at ``expires_in`` and once after a 401."""

    def __init__(self, auth_url: str, apikey: str) -> None:
        self.auth_url = auth_url
        self.apikey = apikey
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def _mint_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            self.auth_url,
            data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": self.apikey},
            headers={"Accept": "application/json"},
        )

    def _take(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise EngineAuthError(
                f"token endpoint {self.auth_url} refused the API key", engine_status=response.status_code
            )
        try:
            data = orjson.loads(response.read())
        except orjson.JSONDecodeError:
            raise EngineAuthError(f"token endpoint {self.auth_url} did not return JSON") from None
        token = data.get("access_token") or data.get("token")
        if not token:
            raise EngineAuthError(f"token endpoint {self.auth_url} returned no access_token")
        self._token = str(token)
        ttl = float(data.get("expires_in") or 3600)
        self._expires = time.monotonic() + ttl - min(30.0, ttl / 10)  # refresh before it runs out

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None or time.monotonic() >= self._expires:
            self._take((yield self._mint_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            self._take((yield self._mint_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    requires_response_body = True


def build_auth(credentials: dict[str, Any]) -> httpx.Auth | None:
    """none, HTTP Basic (``username``/``password``), bearer (``token``/``apikey``), or a minted bearer (``auth_url``)."""
    if credentials.get("auth_url") and credentials.get("apikey"):
        return MintedBearer(str(credentials["auth_url"]), str(credentials["apikey"]))
    if credentials.get("username") is not None and credentials.get("password") is not None:
        return httpx.BasicAuth(str(credentials["username"]), str(credentials["password"]))
    return None


def static_headers(credentials: dict[str, Any]) -> dict[str, str]:
    token = credentials.get("token") or (None if credentials.get("auth_url") else credentials.get("apikey"))
    return {"Authorization": f"Bearer {token}"} if token else {}


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class HttpEngine(Engine):
    """An engine reached over HTTP(S) with httpx."""

    default_headers: ClassVar[dict[str, str]] = {"Content-Type": "application/json", "Accept": "application/json"}

    def __init__(self, binding: BindingConfig) -> None:
        super().__init__(binding)
        self.timeout = httpx.Timeout(binding.read_timeout, connect=binding.connect_timeout)
        self.auth = build_auth(binding.credentials)
        self.auth_headers = static_headers(binding.credentials)
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._fast: FastHTTPTransport | None = None
        # The proxy's hot path skips httpx's client when auth is a fixed header (none, basic, static bearer).
        self._fast_auth: dict[str, str] | None = None
        if self.auth is None:
            self._fast_auth = {}
        elif isinstance(self.auth, httpx.BasicAuth):
            c = binding.credentials
            self._fast_auth = {"Authorization": basic_header(str(c["username"]), str(c["password"]))}

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, auth=self.auth, follow_redirects=False)
        return self._client

    @property
    def aclient(self) -> httpx.AsyncClient:
        if self._aclient is None:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            fast = self.fast_transport
            self._aclient = httpx.AsyncClient(
                timeout=self.timeout, auth=self.auth, limits=limits, follow_redirects=False, transport=fast
            )
        return self._aclient

    @property
    def fast_transport(self) -> FastHTTPTransport | None:
        """The lean transport for ``http://`` engines, unless httptools is missing or an HTTP proxy is set."""
        if (
            self._fast is None
            and fast_transport_available()
            and not urllib.request.getproxies_environment().get("http")
        ):
            self._fast = FastHTTPTransport(max_connections=256, max_keepalive=64)
        return self._fast

    def headers(
        self, deployment: Deployment | None, *, internal: bool, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        """Defaults, then auth, then binding headers, then the deployment's; later entries win."""
        h = {**self.default_headers, **self.auth_headers, **self.binding.request_headers}
        if deployment is not None:
            h.update(deployment.request_headers)
            token = (deployment.credentials or {}).get("token")
            if token:
                h["Authorization"] = f"Bearer {token}"
        if extra:
            h.update(extra)
        if internal:
            h[INTERNAL_HEADER] = "1"
        return h

    def request(
        self,
        method: str,
        url: str,
        *,
        deployment: Deployment | str | None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        ok_statuses: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One HTTP exchange with retries; returns a 2xx response or raises a distinct ``EngineError``."""
        attempts = max(1, self.binding.retries)
        delay = 0.1
        for attempt in range(1, attempts + 1):
            try:
                response = self.client.request(method, url, content=content, headers=headers, params=params, data=data)
            except EngineError as exc:  # raised inside an auth flow (token endpoint)
                raise self.error(type(exc), exc.message, deployment) from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < attempts:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise self.error(EngineUnreachable, f"cannot connect to {_origin(url)}: {exc}", deployment) from None
            except httpx.TimeoutException:
                raise self.error(
                    EngineTimeout, f"no answer from {_origin(url)} within {self.timeout.read:g} s", deployment
                ) from None
            except httpx.TransportError as exc:
                raise self.error(EngineUnreachable, f"connection to {_origin(url)} failed: {exc}", deployment) from None
            if response.status_code in RETRY_STATUS and attempt < attempts:
                time.sleep(min(_retry_after(response) or delay, 5.0))
                delay *= 2
                continue
            return self.check(response, deployment, ok_statuses)
        raise AssertionError("unreachable")  # pragma: no cover

    def check(
        self, response: httpx.Response, deployment: Deployment | str | None, ok_statuses: tuple[int, ...] = ()
    ) -> httpx.Response:
        status = response.status_code
        if status < 300 or status in ok_statuses:
            return response
        body = response.content
        code = _error_code(response)
        kw: dict[str, Any] = {"engine_status": status, "engine_code": code, "body": body}
        if status in (401, 403):
            raise self.error(EngineAuthError, f"credentials refused (HTTP {status})", deployment, **kw)
        if status < 500:
            raise self.error(EngineRejected, f"request rejected (HTTP {status})", deployment, **kw)
        raise self.error(EngineServerError, f"engine failed (HTTP {status})", deployment, **kw)

    def json(self, response: httpx.Response | NativeResponse, deployment: Deployment | str | None) -> Any:
        body = response.content if isinstance(response, httpx.Response) else response.body
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            ctype = (
                response.headers.get("content-type", "")
                if isinstance(response, httpx.Response)
                else response.content_type
            )
            raise self.error(
                EngineBadResponse, f"response is not JSON (content type {ctype or 'unknown'!r})", deployment, body=body
            ) from None

    def scoring_url(self, deployment: Deployment, native: NativeRequest) -> str:
        if not deployment.scoring_url:
            raise self.error(EngineRejected, "deployment has no scoring URL", deployment)
        url = deployment.scoring_url
        if native.path.startswith("?"):  # a query string only: keep the path as it is
            url += ("&" + native.path[1:]) if "?" in url else native.path
        elif native.path:
            base, sep, query = url.partition("?")  # Azure Studio: .../execute?api-version=2.0
            url = base.rstrip("/") + "/" + native.path.lstrip("/") + sep + query
        return url

    def send(self, deployment: Deployment, native: NativeRequest, *, internal: bool) -> NativeResponse:
        url = self.scoring_url(deployment, native)
        headers = self.headers(
            deployment, internal=internal, extra={"Content-Type": native.content_type, **native.headers}
        )
        t0 = time.perf_counter()
        r = self.request("POST", url, deployment=deployment, content=native.body, headers=headers)
        return NativeResponse(
            r.status_code,
            r.content,
            r.headers.get("content-type", ""),
            dict(r.headers),
            (time.perf_counter() - t0) * 1000,
        )

    async def asend(self, deployment: Deployment, native: NativeRequest, *, internal: bool) -> NativeResponse:
        """Forward once, without retries, and return whatever status the engine gave (the proxy passes it on)."""
        url = self.scoring_url(deployment, native)
        headers = self.headers(
            deployment, internal=internal, extra={"Content-Type": native.content_type, **native.headers}
        )
        t0 = time.perf_counter()
        fast_auth = self._fast_auth
        fast = self.fast_transport if fast_auth is not None and url.startswith("http://") else None
        try:
            if fast is not None and fast_auth is not None:
                status, raw, body = await fast.exchange(
                    "POST", url, {**headers, **fast_auth}, native.body, self.timeout
                )
                hdrs = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
                return NativeResponse(
                    status, body, hdrs.get("content-type", ""), hdrs, (time.perf_counter() - t0) * 1000
                )
            r = await self.aclient.post(url, content=native.body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self.error(EngineUnreachable, f"cannot connect to {_origin(url)}: {exc}", deployment) from None
        except httpx.TimeoutException:
            raise self.error(
                EngineTimeout, f"no answer from {_origin(url)} within {self.timeout.read:g} s", deployment
            ) from None
        except httpx.TransportError as exc:
            raise self.error(EngineUnreachable, f"connection to {_origin(url)} failed: {exc}", deployment) from None
        return NativeResponse(
            r.status_code,
            r.content,
            r.headers.get("content-type", ""),
            dict(r.headers),
            (time.perf_counter() - t0) * 1000,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._aclient = None  # async clients are closed by their event loop's shutdown
        self._fast = None


def _origin(url: str) -> str:
    """Scheme, host and port only: never echo paths or query strings, which may carry keys."""
    try:
        u = httpx.URL(url)
        return f"{u.scheme}://{u.host}" + (f":{u.port}" if u.port else "")
    except Exception:
        return "<invalid url>"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _error_code(response: httpx.Response) -> str | None:
    code = response.headers.get("x-amzn-errortype")
    if code:
        return code.split(":")[0]
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict):
        for key in ("error_code", "code", "errorCode"):
            if isinstance(data.get(key), str):
                return str(data[key])
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("code"), str):
            return str(err["code"])
    return None
