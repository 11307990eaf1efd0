"""Fault tests with real processes: ``scrutiny proxy`` killed with SIGKILL under load, and the
data mart (a private PostgreSQL cluster) stopped during traffic. The count that matters:
every request that got a response has exactly one payload row."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from scrutiny._server import BackgroundServer, free_port
from scrutiny.config import Settings
from scrutiny.demo import credit
from scrutiny.demo.engine import EngineOptions, create_engine_app
from scrutiny.service import Service
from scrutiny.spool.framing import Frame, scan
from scrutiny.spool.record import SpoolRecord
from tests.support.proxy import logger_key, rows, subscribe

pytestmark = pytest.mark.timeout(240)


class ProxyProcess:
    """``scrutiny proxy`` as a child process on a loopback port."""

    def __init__(self, data_dir: Path, port: int, database_url: str | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "SCRUTINY_DATA_DIR": str(data_dir),
            "SCRUTINY_SQLITE_SYNCHRONOUS": "NORMAL",
            "SCRUTINY_ENGINE_READ_TIMEOUT": "20",
        }
        if database_url:
            self.env["SCRUTINY_DATABASE_URL"] = database_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"proxy-{port}.log"

    def start(self, timeout: float = 60.0) -> ProxyProcess:
        cmd = [sys.executable, "-m", "scrutiny", "proxy", "--port", str(self.port), "--host", "127.0.0.1"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"scrutiny proxy exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"scrutiny proxy not ready in {timeout} s: {self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/health", timeout=5).json())


async def send_load(
    url: str,
    key: str,
    sub_id: str,
    ids: list[str],
    body: bytes,
    *,
    concurrency: int = 16,
    on_response: Callable[[int], Any] | None = None,
    pace: float = 0.0,
) -> dict[str, int | str]:
    """POST each id once (as X-Scrutiny-Scoring-Id); the status it got, or the error."""
    results: dict[str, int | str] = {}
    queue = list(reversed(ids))
    ok = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal ok
            while queue:
                sid = queue.pop()
                try:
                    r = await client.post(
                        f"/proxy/{sub_id}",
                        content=body,
                        headers={
                            "Authorization": f"Bearer {key}",
                            "Content-Type": "application/json",
                            "X-Scrutiny-Scoring-Id": sid,
                        },
                    )
                    results[sid] = r.status_code
                    if r.status_code == 200:
                        assert r.headers["x-scrutiny-scoring-id"] == sid
                        ok += 1
                        if on_response is not None:
                            res = on_response(ok)
                            if asyncio.iscoroutine(res):
                                await res
                except httpx.HTTPError as exc:
                    results[sid] = exc.__class__.__name__
                if pace:
                    await asyncio.sleep(pace)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def stored_ids(url: str, sub_id: str) -> list[str]:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            table = f"payload_{sub_id.replace('-', '')}"
            return [r[0] for r in conn.exec_driver_sql(f'SELECT scoring_id FROM "{table}"')]
    finally:
        eng.dispose()


def spooled_ids(spool_dir: Path) -> set[str]:
    """The scoring ids of the records in a spool directory, read straight from its segment files."""
    return {
        SpoolRecord.decode(e.payload).scoring_id
        for p in spool_dir.glob("*.seg")
        for e in scan(p.read_bytes())
        if isinstance(e, Frame)
    }


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def check_exactly_once(results: dict[str, int | str], stored: list[str]) -> None:
    """Every request answered 200 has one row; no row is duplicated or comes from nowhere."""
    assert len(stored) == len(set(stored)), "duplicate payload rows"
    answered = {sid for sid, status in results.items() if status == 200}
    rows_by_id = {s.rsplit("-", 1)[0] for s in stored}
    lost = answered - rows_by_id
    assert not lost, f"{len(lost)} acknowledged requests have no payload row, e.g. {sorted(lost)[:5]}"
    assert rows_by_id <= set(results), "rows for requests that were never sent"
    assert all(s.endswith("-1") for s in stored)


@pytest.fixture(scope="module")
def fault_engine() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_engine_app(EngineOptions())) as srv:
        yield srv


def prepare(data_dir: Path, engine_url: str, german: Any, database_url: str | None = None) -> tuple[str, str, str]:
    settings = Settings(data_dir=data_dir, database_url=database_url, sqlite_synchronous="NORMAL")
    svc = Service(settings)
    try:
        sub = subscribe(svc, engine_url, german)
        return sub.id, logger_key(svc), settings.store_url
    finally:
        svc.close()


def test_kill9_under_load_loses_nothing_and_duplicates_nothing(tmp_path: Path, fault_engine, german) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "data"
    sub_id, key, store_url = prepare(data_dir, fault_engine.url, german)
    body = httpx.Request("POST", "/", json={"fields": credit.FEATURES, "values": rows(german, 1)}).content
    port = free_port()
    proxy = ProxyProcess(data_dir, port).start()
    spool_dir = data_dir / "spool" / f"proxy-{port}"
    db_path = store_url.removeprefix("sqlite:///")
    lock: sqlite3.Connection | None = None
    try:
        # phase 1: plain traffic, the background writer keeps up
        first = asyncio.run(send_load(proxy.url, key, sub_id, [f"a{i}" for i in range(150)], body))
        assert all(s == 200 for s in first.values())

        # phase 2: the store stops accepting writes (a writer holds SQLite's lock), so answered
        # requests pile up in the spool only; SIGKILL the proxy in the middle of the traffic
        lock = sqlite3.connect(db_path, timeout=30)
        lock.execute("BEGIN IMMEDIATE")

        def kill_at(ok: int) -> None:
            if ok == 200:
                proxy.kill9()

        second = asyncio.run(
            send_load(proxy.url, key, sub_id, [f"b{i}" for i in range(400)], body, on_response=kill_at)
        )
        answered = sum(1 for s in second.values() if s == 200)
        assert 200 <= answered < 400, answered
        assert any(s != 200 for s in second.values())  # the rest hit a dead process
        acknowledged = {sid for sid, status in second.items() if status == 200}
        assert acknowledged <= spooled_ids(spool_dir)  # acknowledged means on disk, though not in the store
        assert not acknowledged & {s.rsplit("-", 1)[0] for s in stored_ids(store_url, sub_id)}
        lock.rollback()
        lock.close()
        lock = None

        # phase 3: restart on the same spool: it replays, and traffic continues
        proxy.start()
        third = asyncio.run(send_load(proxy.url, key, sub_id, [f"c{i}" for i in range(100)], body))
        assert all(s == 200 for s in third.values())
        wait_until(lambda: proxy.health()["spool"]["records"] == 0, 60, "the spool to drain")
        results = {**first, **second, **third}
        check_exactly_once(results, stored_ids(store_url, sub_id))
        assert len(stored_ids(store_url, sub_id)) >= 150 + answered + 100
    finally:
        if lock is not None:
            lock.close()
        proxy.stop()


# -- a private PostgreSQL cluster that the test may stop ----------------------------------------------


class PrivatePostgres:
    def __init__(self) -> None:
        initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not initdbs:
            pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
        self.bin = Path(initdbs[-1]).parent
        self.base = Path(tempfile.mkdtemp(prefix="scrutiny-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.run_as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to own a private cluster")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.start()
        admin = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql("CREATE DATABASE scrutiny")
        admin.dispose()

    def url(self, db: str = "scrutiny") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self.run_as, str(self.bin / tool), *args]
        r = subprocess.run(cmd, capture_output=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{tool} failed: {r.stdout.decode()[-2000:]} {r.stderr.decode()[-2000:]}")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-o", opts, "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        yield pg
    finally:
        pg.destroy()


def test_postgres_stopped_during_traffic_then_restarted(
    tmp_path: Path, fault_engine, german, private_pg: PrivatePostgres
) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "data"
    sub_id, key, store_url = prepare(data_dir, fault_engine.url, german, private_pg.url())
    body = httpx.Request("POST", "/", json={"fields": credit.FEATURES, "values": rows(german, 1)}).content
    proxy = ProxyProcess(data_dir, free_port(), private_pg.url()).start()
    outage: dict[str, float] = {}
    try:

        async def outage_at(ok: int) -> None:
            if ok == 100:  # stop the data mart while requests keep coming
                await asyncio.to_thread(private_pg.stop, "immediate")
                outage["down"] = time.monotonic()
            if ok == 400:  # ... and bring it back
                await asyncio.to_thread(private_pg.start)
                outage["up"] = time.monotonic()

        ids = [f"p{i}" for i in range(600)]
        results = asyncio.run(
            send_load(proxy.url, key, sub_id, ids, body, concurrency=8, on_response=outage_at, pace=0.004)
        )
        assert "down" in outage and "up" in outage
        # scoring never stopped: every request was answered while the store was away
        assert all(s == 200 for s in results.values()), {s for s in results.values() if s != 200}
        wait_until(lambda: proxy.health()["spool"]["records"] == 0, 90, "the spool to drain into PostgreSQL")
        stored = stored_ids(store_url, sub_id)
        check_exactly_once(results, stored)
        assert len(stored) == len(ids)
        assert httpx.get(f"{proxy.url}/metrics").status_code == 401
        metrics = httpx.get(f"{proxy.url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
        errors = [ln for ln in metrics.splitlines() if ln.startswith("scrutiny_spool_flush_errors_total ")]
        assert errors and float(errors[0].split()[1]) > 0  # the outage was seen and retried
    finally:
        proxy.stop()
