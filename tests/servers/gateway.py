"""An authenticating gateway in front of a real engine server, as production deployments have.

MLflow and MLServer have no authentication of their own; they are reached through an ingress or
API gateway that checks a bearer token or basic credentials and routes on the ``Host`` header
(KServe's Istio ingress does exactly that). This Starlette app does the same in front of the
real servers the tests start, so the adapters' auth, ``request_headers`` and timeouts are tested
against the real servers' answers. It can also misbehave the way a gateway does: answer slowly
(``X-Test-Delay`` seconds, for timeouts) or cut the upstream body short (``X-Test-Truncate``).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Gateway:
    upstreams: dict[str, str]  # Host header -> upstream root; "*" for any host
    token: str | None = None
    basic: tuple[str, str] | None = None
    delay_seconds: float = 0.0  # applied when the request carries X-Test-Delay: 1
    seen_hosts: list[str] = field(default_factory=list)

    def authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if self.token is not None and header == f"Bearer {self.token}":
            return True
        if self.basic is not None:
            expected = "Basic " + base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            return header == expected
        return self.token is None and self.basic is None

    def app(self) -> Starlette:
        client = httpx.AsyncClient(timeout=60)

        async def forward(request: Request) -> Response:
            host = request.headers.get("host", "").split(":")[0]
            self.seen_hosts.append(host)
            upstream = self.upstreams.get(host) or self.upstreams.get("*")
            if upstream is None:
                return JSONResponse({"error": f"no route for host {host!r}"}, status_code=404)
            if not self.authorised(request):
                return JSONResponse({"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            if request.headers.get("x-test-delay"):
                await asyncio.sleep(self.delay_seconds)
            url = upstream.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")
            headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}
            r = await client.request(request.method, url, content=await request.body(), headers=headers)
            body = r.content
            if request.headers.get("x-test-truncate"):
                body = body[: len(body) // 2]
            return Response(body, status_code=r.status_code, media_type=r.headers.get("content-type"))

        return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])
