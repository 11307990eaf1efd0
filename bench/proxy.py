"""Benchmark: the scoring proxy (logging on) against calling the engine directly, same run.

    python bench/proxy.py                     # latency + throughput, two engines, prints JSON
    python bench/proxy.py --sustained         # + >= 1,000 req/s for 60 s through the proxy, rows == responses
    python bench/proxy.py --quick             # smaller counts (CI smoke)

Three processes on loopback: the engine, ``scrutiny proxy`` (SQLite store unless
``--database-url``), and this load generator (asyncio, keep-alive connections, bounded
concurrency, no extra install). Two engines:

* ``sklearn``: the demo engine as shipped (``scrutiny engine demo``): a scikit-learn pipeline per
  request, a few ms of CPU each; the throughput comparison that reflects a real model.
* ``light``: the same demo engine app serving the same logistic regression with its arithmetic
  done in plain Python (identical probabilities, checked at start), so the engine is not the
  bottleneck: this is what isolates the proxy's own cost, and what the sustained run uses.

Targets (2 cores shared by engine, proxy and load generator): added p50 latency <= 2 ms,
proxied throughput >= 80% of direct, sustained >= 1,000 req/s for 60 s with payload rows equal
to responses served. Timings on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# -- the light engine --------------------------------------------------------------------------------


class LightCreditModel:
    """The demo's credit pipeline (one-hot + scaling + logistic regression) evaluated row by row in
    plain Python: same probabilities, a fraction of the CPU of a pandas/scikit-learn call."""

    problem_type = "binary"
    label_column = "Risk"

    def __init__(self) -> None:
        from scrutiny.demo import credit

        pipe = credit.train_credit_model()
        self.pipeline = pipe
        self.features = credit.FEATURES
        pre, clf = pipe.named_steps["pre"], pipe.named_steps["clf"]
        coef = clf.coef_[0]
        enc = pre.named_transformers_["cat"]
        scaler = pre.named_transformers_["num"]
        offset = 0
        self.cat: dict[str, dict[Any, float]] = {}
        for name, cats in zip(credit.CATEGORICAL_FEATURES, enc.categories_, strict=True):
            self.cat[name] = {c: float(coef[offset + i]) for i, c in enumerate(cats)}
            offset += len(cats)
        self.num = [
            (name, float(m), float(s), float(coef[offset + i]))
            for i, (name, m, s) in enumerate(zip(credit.NUMERIC_FEATURES, scaler.mean_, scaler.scale_, strict=True))
        ]
        self.intercept = float(clf.intercept_[0])
        self.classes = [str(c) for c in clf.classes_]
        sample = credit.load_german()[credit.FEATURES].head(50)
        ref = pipe.predict_proba(sample)[:, 1]
        mine = [self._p1(dict(zip(credit.FEATURES, r, strict=True))) for r in sample.values.tolist()]
        assert max(abs(a - b) for a, b in zip(ref, mine, strict=True)) < 1e-9, "light model disagrees with the pipeline"

    def _p1(self, row: dict[str, Any]) -> float:
        z = self.intercept
        for name, table in self.cat.items():
            z += table.get(row[name], 0.0)
        for name, mean, scale, c in self.num:
            z += c * (float(row[name]) - mean) / scale
        return 1.0 / (1.0 + math.exp(-z))

    def score(self, fields: list[str], values: list[list[Any]]) -> tuple[list[str], list[list[Any]], list[str]]:
        out = []
        for v in values:
            p = self._p1(dict(zip(fields, v, strict=True)))
            out.append([self.classes[int(p >= 0.5)], [1.0 - p, p]])
        return ["prediction", "probability"], out, self.classes


def serve_light_engine(port: int) -> None:
    import uvicorn

    from scrutiny.demo.engine import create_engine_app

    app = create_engine_app(models={"credit-risk": LightCreditModel()})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- processes ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready in {timeout} s")


class Proc:
    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as f:
            self.p = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()


# -- the load generator -------------------------------------------------------------------------------


class Conn:
    """One keep-alive HTTP/1.1 connection; responses must carry Content-Length (uvicorn's do)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(r, w)

    async def post(self, data: bytes) -> tuple[int, bytes]:
        self.w.write(data)
        head = await self.r.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        body = await self.r.readexactly(int(m.group(1))) if m else b""
        return status, body

    def close(self) -> None:
        self.w.close()


def request_bytes(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


async def closed_loop(port: int, data: bytes, n: int, concurrency: int, time_limit: float) -> dict[str, Any]:
    """``concurrency`` workers each sending back-to-back requests: latency and throughput."""
    conns = [await Conn.open(port) for _ in range(concurrency)]
    lat: list[float] = []
    errors = 0
    remaining = n
    deadline = time.perf_counter() + time_limit

    async def worker(c: Conn) -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            t = time.perf_counter()
            status, _ = await c.post(data)
            lat.append(time.perf_counter() - t)
            if status != 200:
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    lat.sort()
    return {
        "requests": len(lat),
        "errors": errors,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": round(percentile(lat, 0.5) * 1000, 3),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 3),
    }


async def open_loop(port: int, data: bytes, rate: float, duration: float, max_in_flight: int) -> dict[str, Any]:
    """``rate * duration`` requests started on schedule (10 ms ticks), at most ``max_in_flight`` at
    once; counts what was answered 200, so the payload rows can be checked against it."""
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(max_in_flight):
        pool.put_nowait(await Conn.open(port))
    lat: list[float] = []
    statuses: dict[int, int] = {}
    tasks: set[asyncio.Task[None]] = set()
    behind = 0

    async def one(scheduled: float) -> None:
        c = await pool.get()
        try:
            status, _ = await c.post(data)
        finally:
            pool.put_nowait(c)
        lat.append(time.perf_counter() - scheduled)  # from when it was due: queueing counts
        statuses[status] = statuses.get(status, 0) + 1

    total = int(rate * duration)
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        now = time.perf_counter() - t0
        due = min(total, int(now * rate) + 1)
        if due - sent > max_in_flight:
            behind = max(behind, due - sent)
        while sent < due:
            task = asyncio.get_running_loop().create_task(one(t0 + sent / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(0.01)
    await asyncio.gather(*list(tasks))
    elapsed = time.perf_counter() - t0
    while not pool.empty():
        pool.get_nowait().close()
    lat.sort()
    ok = statuses.get(200, 0)
    return {
        "target_rate": rate,
        "duration_s": duration,
        "sent": sent,
        "answered_200": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds_to_last_answer": round(elapsed, 2),
        "completed_rate": round(ok / elapsed, 1),
        "kept_up": elapsed <= duration * 1.02 + 0.5,
        "p50_ms": round(percentile(lat, 0.5) * 1000, 3),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 3),
        "max_backlog_requests": behind,
    }


def run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


# -- the benchmark ------------------------------------------------------------------------------------


def setup_store(data_dir: Path, engine_url: str, database_url: str | None) -> tuple[str, str, str]:
    from scrutiny.config import Settings
    from scrutiny.demo import credit
    from scrutiny.security import Role
    from scrutiny.service import Service

    svc = Service(Settings(data_dir=data_dir, database_url=database_url))
    try:
        binding, _ = svc.bindings.create(name="bench engine", engine_type="custom", credentials={"url": engine_url})
        sub = svc.subscriptions.create(
            binding_id=binding.id,
            deployment_id="credit-risk",
            asset_properties={
                "problem_type": "binary",
                "label_column": credit.LABEL,
                "feature_fields": credit.FEATURES,
                "categorical_fields": credit.CATEGORICAL_FEATURES,
            },
            training_frame=credit.load_german(),
        )
        key, _ = svc.keys.create("bench", Role.LOGGER)
        return sub.id, key, svc.settings.store_url
    finally:
        svc.close()


def count_rows(store_url: str, sub_id: str) -> int:
    import sqlalchemy as sa

    eng = sa.create_engine(store_url)
    try:
        with eng.connect() as c:
            return int(c.exec_driver_sql(f'SELECT count(*) FROM "payload_{sub_id.replace("-", "")}"').scalar_one())
    finally:
        eng.dispose()


def proxy_metrics(port: int, key: str) -> dict[str, float]:
    import httpx

    out: dict[str, float] = {}
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {key}"})
    r.raise_for_status()
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        if "{" in name:  # keep histogram buckets (le=...) and per-subscription sums, summed over labels
            base, labels = name.split("{", 1)
            le = re.search(r'le="([^"]+)"', labels)
            name = f"{base}:{le.group(1)}" if le else base
        out[name] = out.get(name, 0.0) + float(value)
    return out


def histogram_p50_ms(m: dict[str, float], name: str) -> float | None:
    """The upper bound of the bucket holding the median (Prometheus buckets, so an upper bound)."""
    total = m.get(f"{name}_count", 0)
    if not total:
        return None
    bounds = sorted(
        (float(k.rsplit(":", 1)[1]), v) for k, v in m.items() if k.startswith(f"{name}_bucket:") and "Inf" not in k
    )
    for bound, count in bounds:
        if count >= total / 2:
            return bound * 1000
    return None


def wait_drained(port: int, timeout: float = 300) -> float:
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if httpx.get(f"http://127.0.0.1:{port}/health").json()["spool"]["records"] == 0:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise TimeoutError("the spool did not drain")


def compare(engine: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    eport, pport = free_port(), free_port()
    data_dir = workdir / engine
    data_dir.mkdir()
    if engine == "light":
        ecmd = [sys.executable, __file__, "--serve-light-engine", str(eport)]
    else:
        ecmd = [sys.executable, "-m", "scrutiny", "engine", "demo", "--port", str(eport)]
    eng = Proc(ecmd, env, workdir / f"engine-{engine}.log")
    procs = [eng]
    try:
        engine_url = f"http://127.0.0.1:{eport}"
        wait_http(f"{engine_url}/v1/deployments")
        sub_id, key, store_url = setup_store(data_dir, engine_url, args.database_url)
        penv = {**env, "SCRUTINY_DATA_DIR": str(data_dir)}
        if args.database_url:
            penv["SCRUTINY_DATABASE_URL"] = args.database_url
        procs.append(
            Proc(
                [sys.executable, "-m", "scrutiny", "proxy", "--port", str(pport)], penv, workdir / f"proxy-{engine}.log"
            )
        )
        wait_http(f"http://127.0.0.1:{pport}/health")

        from scrutiny.demo import credit

        row = credit.load_german()[credit.FEATURES].iloc[:1].values.tolist()
        body = orjson.dumps({"fields": credit.FEATURES, "values": row})
        json_h = {"Content-Type": "application/json"}
        direct = request_bytes(eport, "/v1/deployments/credit-risk/online", body, json_h)
        proxied = request_bytes(pport, f"/proxy/{sub_id}", body, {**json_h, "Authorization": f"Bearer {key}"})
        n_lat, n_thr = args.latency_requests, args.throughput_requests
        if engine == "sklearn":
            n_thr = max(200, n_thr // 4)
        run(closed_loop(eport, direct, 200, 4, 30))  # warm-up both paths
        run(closed_loop(pport, proxied, 200, 4, 30))
        rounds: dict[str, list[dict[str, Any]]] = {
            "direct_latency": [],
            "proxied_latency": [],
            "direct": [],
            "proxied": [],
        }
        for _ in range(args.rounds):  # interleaved, so background load hits both alike
            rounds["direct_latency"].append(run(closed_loop(eport, direct, n_lat, 1, args.time_limit)))
            rounds["proxied_latency"].append(run(closed_loop(pport, proxied, n_lat, 1, args.time_limit)))
            rounds["direct"].append(run(closed_loop(eport, direct, n_thr, args.concurrency, args.time_limit)))
            rounds["proxied"].append(run(closed_loop(pport, proxied, n_thr, args.concurrency, args.time_limit)))
        best = {
            k: (
                min(v, key=lambda r: r["p50_ms"])
                if k.endswith("latency")
                else max(v, key=lambda r: r["requests_per_s"])
            )
            for k, v in rounds.items()
        }
        drained_in = wait_drained(pport)
        m = proxy_metrics(pport, key)
        proxied_ok = sum(r["requests"] - r["errors"] for k in ("proxied_latency", "proxied") for r in rounds[k]) + 200
        rows = count_rows(store_url, sub_id)
        result: dict[str, Any] = {
            "engine": engine,
            "direct_sequential": best["direct_latency"],
            "proxied_sequential": best["proxied_latency"],
            "direct_concurrent": best["direct"],
            "proxied_concurrent": best["proxied"],
            "added_p50_ms": round(best["proxied_latency"]["p50_ms"] - best["direct_latency"]["p50_ms"], 3),
            "throughput_ratio": round(best["proxied"]["requests_per_s"] / best["direct"]["requests_per_s"], 3),
            "rounds": [
                {
                    "direct_p50_ms": dl["p50_ms"],
                    "proxied_p50_ms": pl["p50_ms"],
                    "direct_rps": d["requests_per_s"],
                    "proxied_rps": p["requests_per_s"],
                }
                for dl, pl, d, p in zip(
                    rounds["direct_latency"],
                    rounds["proxied_latency"],
                    rounds["direct"],
                    rounds["proxied"],
                    strict=True,
                )
            ],
            "logging": {
                "proxied_200": proxied_ok,
                "payload_rows": rows,
                "rows_equal_responses": rows == proxied_ok,
                "spool_drained_after_s": round(drained_in, 2),
                "fsyncs": int(m.get("scrutiny_spool_fsync_seconds_count", 0)),
                "records_per_fsync": round(
                    m.get("scrutiny_spool_fsync_group_records_sum", 0)
                    / max(1, m.get("scrutiny_spool_fsync_group_records_count", 1)),
                    2,
                ),
                "fsync_p50_ms_at_most": histogram_p50_ms(m, "scrutiny_spool_fsync_seconds"),
                "proxy_overhead_p50_ms_at_most": histogram_p50_ms(m, "scrutiny_proxy_overhead_seconds"),
                "mean_engine_ms_seen_by_proxy": round(
                    1000
                    * m.get("scrutiny_proxy_engine_latency_seconds_sum", 0)
                    / max(1, m.get("scrutiny_proxy_engine_latency_seconds_count", 1)),
                    3,
                ),
                "mean_fsync_ms": round(
                    1000
                    * m.get("scrutiny_spool_fsync_seconds_sum", 0)
                    / max(1, m.get("scrutiny_spool_fsync_seconds_count", 1)),
                    3,
                ),
                "mean_proxy_overhead_ms": round(
                    1000
                    * m.get("scrutiny_proxy_overhead_seconds_sum", 0)
                    / max(1, m.get("scrutiny_proxy_overhead_seconds_count", 1)),
                    3,
                ),
            },
        }
        if args.sustained and engine == "light":
            before = count_rows(store_url, sub_id)
            s = run(open_loop(pport, proxied, args.rate, args.duration, args.max_in_flight))
            s["spool_drained_after_s"] = round(wait_drained(pport), 2)
            s["payload_rows"] = count_rows(store_url, sub_id) - before
            s["rows_equal_responses"] = s["payload_rows"] == s["answered_200"]
            s["met"] = (
                args.rate >= 1000 and s["kept_up"] and s["rows_equal_responses"] and s["answered_200"] == s["sent"]
            )
            result["sustained"] = s
        return result
    finally:
        for p in reversed(procs):
            p.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve-light-engine", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--engines", default="light,sklearn", help="light, sklearn or both (comma-separated)")
    ap.add_argument("--latency-requests", type=int, default=2000)
    ap.add_argument("--throughput-requests", type=int, default=8000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=30.0, help="seconds per measurement at most")
    ap.add_argument("--sustained", action="store_true", help="also run the sustained-rate test (light engine)")
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--max-in-flight", type=int, default=64)
    ap.add_argument("--database-url", default=None, help="store (default: SQLite in a temp dir)")
    ap.add_argument("--quick", action="store_true", help="small counts, one round")
    ap.add_argument("--pretty", action="store_true", help="indented JSON")
    args = ap.parse_args()
    if args.serve_light_engine:
        serve_light_engine(args.serve_light_engine)
        return
    if args.quick:
        args.latency_requests, args.throughput_requests, args.rounds = 300, 1000, 1
        args.duration = min(args.duration, 10.0)
    with tempfile.TemporaryDirectory(prefix="scrutiny-bench-proxy-") as tmp:
        results = [compare(e.strip(), args, Path(tmp)) for e in args.engines.split(",") if e.strip()]
    out = {
        "benchmark": "proxy",
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": "engine, proxy and load generator share the machine; other work on it skews timings",
        },
        "store": "postgresql" if args.database_url else "sqlite",
        "targets": {"added_p50_ms_max": 2.0, "throughput_ratio_min": 0.8, "sustained_rate_min": 1000},
        "results": results,
    }
    for r in results:
        r["met"] = {
            "added_p50": r["added_p50_ms"] <= 2.0,
            "throughput": r["throughput_ratio"] >= 0.8,
            "rows_equal_responses": r["logging"]["rows_equal_responses"],
        }
    print(json.dumps(out, indent=2 if args.pretty else None))


if __name__ == "__main__":
    main()
