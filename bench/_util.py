"""Helpers shared by the benchmarks: the peer data shape, a server subprocess, JSON output."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

N_NUM, N_CAT = 20, 5
NUM_COLS = [f"num_{i}" for i in range(N_NUM)]
CAT_COLS = [f"cat_{i}" for i in range(N_CAT)]
CAT_LEVELS = [4, 6, 8, 10, 12]
FEATURES = NUM_COLS + CAT_COLS


def make_frame(n: int, seed: int = 0, drift: bool = False):  # type: ignore[no-untyped-def]
    """The peer baselines' synthetic payload shape (shared/peer-baselines/_common.py)."""
    import pandas as pd

    rng = np.random.default_rng(seed + (1000 if drift else 0))
    means = np.linspace(-2, 2, N_NUM)
    scales = np.linspace(0.5, 3, N_NUM)
    num = np.round(rng.standard_normal((n, N_NUM)) * scales + means, 6)
    if drift:
        num[:, :4] += 0.25 * scales[:4]
        num[:, 4:8] *= 1.3
    df = pd.DataFrame(num, columns=NUM_COLS)
    for j, k in enumerate(CAT_LEVELS):
        p = np.arange(1, k + 1, dtype=float)[::-1]
        if drift and j < 2:
            p = p[::-1]
        p /= p.sum()
        codes = rng.choice(k, size=n, p=p)
        df[CAT_COLS[j]] = np.array([f"c{j}_{v}" for v in range(k)], dtype=object)[codes]
    return df


def make_outputs(n: int, seed: int = 0):  # type: ignore[no-untyped-def]
    import pandas as pd

    rng = np.random.default_rng(seed + 7)
    p1 = np.round(rng.random(n), 6)
    return pd.DataFrame(
        {"prediction": np.where(p1 >= 0.5, "good", "bad"), "probability": list(np.column_stack([1 - p1, p1]))}
    )


def peak_rss_mb(pid: int | None = None) -> float:
    if pid is None:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return float("nan")


def versions() -> dict[str, Any]:
    from importlib import metadata

    out = {"python": platform.python_version(), "cpus": os.cpu_count()}
    for p in ("numpy", "sqlalchemy", "psycopg", "pyarrow", "fastapi", "uvicorn"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_process(
    data_dir: str,
    key: str,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    start_timeout: float = 60,
) -> Iterator[tuple[str, int]]:
    """``scrutiny serve [args]`` on ``data_dir`` in its own process, admitting ``key``; yields (url, pid)."""
    port = free_port()
    env = {**os.environ, "SCRUTINY_DATA_DIR": data_dir, "SCRUTINY_API_KEY": key, **(extra_env or {})}
    env.pop("SCRUTINY_DATABASE_URL", None)
    if database_url:
        env["SCRUTINY_DATABASE_URL"] = database_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrutiny", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                raise RuntimeError(f"scrutiny serve did not start: {err}")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def server(database_url: str | None = None, extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, str, int]]:
    """``scrutiny serve`` in its own process on a fresh data directory; yields (url, api key, pid)."""
    key = "scr_bench_" + os.urandom(8).hex()
    with tempfile.TemporaryDirectory() as d, serve_process(d, key, database_url, extra_env) as (url, pid):
        yield url, key, pid


def pg_available(url: str) -> str | None:
    try:
        import sqlalchemy as sa

        eng = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.exec_driver_sql("select 1")
        eng.dispose()
        return None
    except Exception as exc:
        return f"{exc.__class__.__name__}: {str(exc)[:200]}"


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A private PostgreSQL schema for one benchmark; yields a URL whose search_path is it."""
    import sqlalchemy as sa

    schema = "bench_" + os.urandom(4).hex()
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in url else "?"
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with eng.begin() as c:
            c.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        eng.dispose()


def emit(result: dict[str, Any]) -> None:
    result.setdefault("versions", versions())
    sys.stdout.write(json.dumps(result, indent=None, default=str) + "\n")
    sys.stdout.flush()
