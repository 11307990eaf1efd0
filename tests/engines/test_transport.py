"""The lean HTTP/1.1 transport behind ``Engine.asend``, against real sockets on loopback: framing
(content-length, chunked, close-delimited), keep-alive, stale connections, timeouts, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from scrutiny._server import BackgroundServer, free_port
from scrutiny.demo import credit
from scrutiny.demo.engine import EngineOptions, create_engine_app
from scrutiny.engines import BindingConfig, Deployment, NativeRequest
from scrutiny.engines.custom.engine import CustomEngine
from scrutiny.engines.errors import EngineTimeout, EngineUnreachable
from scrutiny.engines.transport import FastHTTPTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, int]], Awaitable[None]]
TIMEOUT = httpx.Timeout(5.0)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


async def with_server(handler: Handler, client: Callable[[str, dict[str, int]], Awaitable[Any]]) -> Any:
    counts = {"connections": 0, "requests": 0}

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["connections"] += 1
        try:
            await handler(reader, writer, counts)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await client(f"http://127.0.0.1:{port}/score?x=1", counts)
    finally:
        server.close()


def keep_alive(response: bytes, n: int = 100) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]) -> None:
        for _ in range(n):
            await read_request(reader)
            counts["requests"] += 1
            writer.write(response)
            await writer.drain()

    return handler


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


def test_content_length_and_keep_alive_reuse() -> None:
    async def client(url: str, counts: dict[str, int]) -> None:
        t = FastHTTPTransport()
        for _ in range(5):
            status, headers, body = await t.exchange("POST", url, {"Content-Type": "application/json"}, b"{}", TIMEOUT)
            assert (status, body) == (200, b'{"ok":true}')
            assert (b"Content-Type", b"application/json") in headers
        assert counts == {"connections": 1, "requests": 5}
        await t.aclose()

    asyncio.run(with_server(keep_alive(OK), client))


def test_chunked_and_close_delimited_bodies() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"

    async def close_delimited(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]
    ) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async def c1(url: str, counts: dict[str, int]) -> None:
        t = FastHTTPTransport()
        assert (await t.exchange("POST", url, {}, b"x", TIMEOUT))[2] == b"hello world"
        assert (await t.exchange("POST", url, {}, b"x", TIMEOUT))[2] == b"hello world"
        assert counts["connections"] == 1

    async def c2(url: str, counts: dict[str, int]) -> None:
        t = FastHTTPTransport()
        assert (await t.exchange("POST", url, {}, b"x", TIMEOUT))[2] == b"until the end"
        assert (await t.exchange("POST", url, {}, b"x", TIMEOUT))[2] == b"until the end"
        assert counts["connections"] == 2  # not kept alive

    asyncio.run(with_server(keep_alive(chunked), c1))
    asyncio.run(with_server(close_delimited, c2))


def test_a_kept_alive_connection_the_server_closed_is_retried_once_without_duplicating() -> None:
    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]
    ) -> None:
        await read_request(reader)
        counts["requests"] += 1
        writer.write(OK)  # claims keep-alive, then closes: an idle timeout on the server side
        await writer.drain()

    async def client(url: str, counts: dict[str, int]) -> None:
        t = FastHTTPTransport()
        for _ in range(3):
            await asyncio.sleep(0.05)  # let the close arrive
            status, _, body = await t.exchange("POST", url, {}, b"{}", TIMEOUT)
            assert (status, body) == (200, b'{"ok":true}')
        assert counts["requests"] == 3  # each request reached the server exactly once

    asyncio.run(with_server(one_per_connection, client))


def test_a_response_cut_short_is_an_error_and_not_retried() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]) -> None:
        await read_request(reader)
        counts["requests"] += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    async def client(url: str, counts: dict[str, int]) -> None:
        t = FastHTTPTransport()
        with pytest.raises(httpx.RemoteProtocolError):
            await t.exchange("POST", url, {}, b"{}", TIMEOUT)
        assert counts["requests"] == 1

    asyncio.run(with_server(cut, client))


def test_malformed_response_and_read_timeout() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async def c1(url: str, counts: dict[str, int]) -> None:
        with pytest.raises(httpx.RemoteProtocolError):
            await FastHTTPTransport().exchange("POST", url, {}, b"{}", TIMEOUT)

    async def c2(url: str, counts: dict[str, int]) -> None:
        t0 = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await FastHTTPTransport().exchange("POST", url, {}, b"{}", httpx.Timeout(0.3))
        assert 0.25 < time.monotonic() - t0 < 2.0

    asyncio.run(with_server(garbage, c1))
    asyncio.run(with_server(silent, c2))


def test_connection_refused() -> None:
    async def client() -> None:
        with pytest.raises(httpx.ConnectError):
            await FastHTTPTransport().exchange("POST", f"http://127.0.0.1:{free_port()}/x", {}, b"", TIMEOUT)

    asyncio.run(client())


def test_as_httpx_transport_against_uvicorn() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def echo(request: Request) -> Response:
        body = await request.body()
        return Response(
            body[::-1],
            status_code=201,
            media_type="application/octet-stream",
            headers={"X-Got": request.headers.get("x-sent", ""), "X-Query": request.url.query},
        )

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    big = bytes(range(256)) * 4096  # 1 MiB
    with BackgroundServer(app) as srv:

        async def client() -> None:
            async with httpx.AsyncClient(transport=FastHTTPTransport()) as c:
                r = await c.post(f"{srv.url}/echo?a=b%20c", content=big, headers={"X-Sent": "yes"})
                assert r.status_code == 201 and r.content == big[::-1]
                assert r.headers["x-got"] == "yes" and r.headers["x-query"] == "a=b%20c"

        asyncio.run(client())


def test_engine_asend_fast_path_matches_httpx() -> None:
    """The custom adapter's asend gives the same answer whichever wire it takes, including basic auth."""
    opts = EngineOptions(auth="basic", faults=True, slow_seconds=2.0)
    with BackgroundServer(create_engine_app(opts)) as srv:
        dep = Deployment(id="credit-risk", name="c", scoring_url=f"{srv.url}/v1/deployments/credit-risk/online")
        slow = Deployment(id="fault-slow", name="s", scoring_url=f"{srv.url}/v1/deployments/fault-slow/online")
        cfg = BindingConfig(
            id="b",
            name="b",
            engine_type="custom",
            settings={"url": srv.url},
            credentials={"url": srv.url, "username": opts.username, "password": opts.password},
            read_timeout=0.5,
        )
        engine = CustomEngine(cfg)
        assert engine._fast_auth  # basic auth is a fixed header: the fast path applies
        row = credit.load_german()[credit.FEATURES].iloc[:1].values.tolist()
        native = NativeRequest(orjson.dumps({"fields": credit.FEATURES, "values": row}))

        async def both() -> None:
            fast = await engine.asend(dep, native, internal=False)
            auth = engine._fast_auth
            engine._fast_auth = None  # force httpx's client
            slow_path = await engine.asend(dep, native, internal=False)
            assert (fast.status, fast.body, fast.content_type) == (
                slow_path.status,
                slow_path.body,
                slow_path.content_type,
            )
            assert fast.status == 200 and fast.elapsed_ms > 0
            engine._fast_auth = {}  # no credentials at all: the engine refuses, status passed on
            refused = await engine.asend(dep, native, internal=False)
            assert refused.status == 401
            engine._fast_auth = auth
            with pytest.raises(EngineTimeout):
                await engine.asend(slow, native, internal=False)
            gone = Deployment(id="g", name="g", scoring_url=f"http://127.0.0.1:{free_port()}/x")
            with pytest.raises(EngineUnreachable):
                await engine.asend(gone, native, internal=False)

        asyncio.run(both())
