"""A lean HTTP/1.1 transport for httpx's async client, for engines reached over plain ``http://``.

The scoring proxy forwards every application request through ``Engine.asend``; httpx's default
async transport (httpcore + h11 over anyio) costs about a millisecond of CPU per request and
degrades badly with concurrency, which would make the proxy the bottleneck in front of a fast
engine. This transport keeps httpx's client (auth flows, headers, timeouts, error types) and
replaces only the wire: keep-alive connections as asyncio protocols, responses parsed by
``httptools`` (the C parser uvicorn uses). HTTPS, ``HEAD`` and anything unusual go to the
standard transport unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import httpx

try:
    import httptools
except ImportError:  # pragma: no cover - uvicorn[standard] ships it on CPython
    httptools = None  # type: ignore[assignment]


def fast_transport_available() -> bool:
    return httptools is not None


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = True
        self.received = False
        self.last_activity = 0.0
        self.used = 0

    # -- asyncio protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        self.last_activity = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None or self.waiter.done():
            return
        if self.headers_done and not self.complete and self._until_close():
            self.complete = True  # a body delimited by the end of the connection
            self.keep_alive = False
            self._finish(None)
            return
        self._finish(_Lost(self.received, exc))

    # -- httptools callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim response: wait for the real one
            self.headers = []
            return
        self.status = status
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True
            self._finish(None)

    # -- use ---------------------------------------------------------------------------------
    def _until_close(self) -> bool:
        names = {n.lower() for n, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _finish(self, error: BaseException | None) -> None:
        w = self.waiter
        if w is not None and not w.done():
            if error is None:
                w.set_result(None)
            else:
                w.set_exception(error)

    async def exchange(self, data: bytes, read_timeout: float | None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        assert self.transport is not None
        self.status, self.headers, self.body = 0, [], []
        self.headers_done = self.complete = self.received = False
        self.used += 1
        self.waiter = self.loop.create_future()
        self.last_activity = self.loop.time()
        self.transport.write(data)
        timer = None
        if read_timeout is not None:
            timer = self.loop.call_later(read_timeout, self._check_idle, read_timeout)
        try:
            await self.waiter
        finally:
            if timer is not None:
                timer.cancel()
            self.waiter = None
        return self.status, self.headers, b"".join(self.body)

    def _check_idle(self, timeout: float) -> None:
        """A read timeout counts silence, as httpx's does, not the whole exchange."""
        w = self.waiter
        if w is None or w.done():
            return
        idle = self.loop.time() - self.last_activity
        if idle >= timeout:
            self._finish(_ReadTimeout())
            self.close()
        else:
            self.loop.call_later(timeout - idle, self._check_idle, timeout)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Lost(Exception):
    def __init__(self, received: bool, exc: Exception | None) -> None:
        super().__init__(f"connection closed by the server{f': {exc}' if exc else ''}")
        self.received = received


class _ReadTimeout(Exception):
    pass


class _Pool:
    """Idle connections per (host, port) for one event loop, and a cap on open connections."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_connections: int, max_keepalive: int) -> None:
        self.loop = loop
        self.idle: dict[tuple[str, int], deque[_Connection]] = {}
        self.slots = asyncio.Semaphore(max_connections)
        self.max_keepalive = max_keepalive
        self.n_idle = 0


Headers = list[tuple[bytes, bytes]]
_OWN = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class FastHTTPTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 keep-alive transport for ``http://`` URLs; other requests go to ``fallback``.

    ``exchange()`` is the bare form the proxy's hot path calls without building httpx models.
    """

    def __init__(
        self,
        *,
        max_connections: int = 256,
        max_keepalive: int = 64,
        fallback: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.max_keepalive = max_keepalive
        self.fallback = fallback or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_keepalive)
        )
        self._pools: dict[int, _Pool] = {}
        self._targets: dict[str, tuple[str, int, bytes, bytes]] = {}

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(id(loop))
        if pool is None or pool.loop is not loop:
            pool = self._pools[id(loop)] = _Pool(loop, self.max_connections, self.max_keepalive)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http" or request.method in ("HEAD", "CONNECT") or httptools is None:
            return await self.fallback.handle_async_request(request)
        body = await request.aread()
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        target = (url.host, url.port or 80, url.raw_path, b"")
        status, headers, content = await self._exchange(
            request.method.encode(), target, request.headers.raw, body, timeouts, request
        )
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(content), extensions={"http_version": b"HTTP/1.1"}
        )

    def target(self, url: str) -> tuple[str, int, bytes, bytes]:
        """(host, port, request target, Host header) of an ``http://`` URL, parsed once."""
        hit = self._targets.get(url)
        if hit is None:
            u = httpx.URL(url)
            port = u.port or 80
            host_header = u.host if port == 80 else f"{u.host}:{port}"
            if ":" in u.host:  # IPv6 literal
                host_header = f"[{u.host}]" if port == 80 else f"[{u.host}]:{port}"
            hit = (u.host, port, u.raw_path, host_header.encode("ascii"))
            if len(self._targets) > 4096:
                self._targets.clear()
            self._targets[url] = hit
        return hit

    async def exchange(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout: httpx.Timeout
    ) -> tuple[int, Headers, bytes]:
        """One request without httpx's models. Raises httpx's transport errors."""
        target = self.target(url)
        raw = [(b"Host", target[3])]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items() if k.lower() not in _OWN]
        raw.append((b"Content-Length", str(len(body)).encode()))
        return await self._exchange(method.encode(), target, raw, body, timeout.as_dict(), None)

    async def _exchange(
        self,
        method: bytes,
        target: tuple[str, int, bytes, bytes],
        headers: Headers,
        body: bytes,
        timeouts: dict[str, Any],
        request: httpx.Request | None,
    ) -> tuple[int, Headers, bytes]:
        host, port, path = target[0], target[1], target[2]
        head = [method, b" ", path, b" HTTP/1.1\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        data = b"".join(head) + body
        pool = self._pool()
        try:
            await asyncio.wait_for(pool.slots.acquire(), timeouts.get("pool"))
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection to the engine in time", request=request) from None
        try:
            for attempt in (1, 2):
                conn, reused = await self._connection(pool, host, port, timeouts.get("connect"), request)
                try:
                    status, rheaders, content = await conn.exchange(data, timeouts.get("read"))
                except _Lost as exc:
                    conn.close()
                    # A kept-alive connection the server had closed: nothing was processed, send again.
                    if reused and not exc.received and attempt == 1:
                        continue
                    raise httpx.RemoteProtocolError(str(exc), request=request) from None
                except _ReadTimeout:
                    raise httpx.ReadTimeout("timed out waiting for the engine", request=request) from None
                except httpx.RemoteProtocolError as exc:
                    conn.close()
                    raise httpx.RemoteProtocolError(str(exc), request=request) from None
                except BaseException:
                    conn.close()  # cancelled mid-exchange: the connection's state is unknown
                    raise
                self._release(pool, (host, port), conn)
                return status, rheaders, content
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            pool.slots.release()

    async def _connection(
        self, pool: _Pool, host: str, port: int, connect_timeout: float | None, request: httpx.Request | None
    ) -> tuple[_Connection, bool]:
        idle = pool.idle.get((host, port))
        while idle:
            conn = idle.pop()
            pool.n_idle -= 1
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn, True
        loop = pool.loop
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), host, port), connect_timeout
            )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        return conn, False

    def _release(self, pool: _Pool, key: tuple[str, int], conn: _Connection) -> None:
        if conn.closed or not conn.keep_alive or pool.n_idle >= pool.max_keepalive:
            conn.close()
            return
        pool.idle.setdefault(key, deque()).append(conn)
        pool.n_idle += 1

    async def aclose(self) -> None:
        for pool in self._pools.values():
            for conns in pool.idle.values():
                for c in conns:
                    with contextlib.suppress(Exception):
                        c.close()
            pool.idle.clear()
            pool.n_idle = 0
        self._pools.clear()
        await self.fallback.aclose()
