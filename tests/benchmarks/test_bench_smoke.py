"""Each benchmark still runs and prints its JSON, at toy sizes.

The figures are not checked here (timings belong to ``bench/``, not to tests); what is checked
is that a benchmark a user runs does not crash on today's code and still reports what its
docstring promises, so a change to an API it drives cannot silently break it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import postgres_unavailable

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.bench, pytest.mark.timeout(900)]


def bench(script: str, *args: str, timeout: float = 840) -> Any:
    """Run a benchmark and read its JSON. Quiet, each takes seconds; ``timeout`` only bounds a hang
    (a busy machine takes minutes). It runs in a session of its own, so the servers it starts go
    with it when it is stopped."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, stderr[-2000:]
    return json.loads("\n".join(lines) if lines[0].startswith("{") and not lines[-1].startswith("{") else lines[-1])


def backends() -> str:
    return "sqlite" if postgres_unavailable() else "sqlite,postgresql"


def test_ingest() -> None:
    out = bench("ingest.py", "--rows", "3000", "--batch", "500", "--backends", backends())
    for backend in backends().split(","):
        result = out[backend]
        for path in ("sdk_dataframe", "sdk_records"):
            assert result[path]["rows"] == 3000 and result[path]["rows_per_s"] > 0
        assert result["raw_baseline"]["rows"] == 3000 and result["raw_baseline"]["rows_per_s"] > 0


def test_monitors() -> None:
    out = bench("monitors.py", "--rows", "20000", "--new", "1000", "--overhead-rows", "2000", "--backends", "sqlite")
    runs = out["sqlite"]["runs"]
    assert {"quality", "fairness", "drift", "performance"} <= set(runs)
    assert all(r["first"]["status"] == "finished" for r in runs.values())
    assert out["sqlite"]["quality_vs_sklearn_max_abs_diff"]["counts_and_log_loss"] < 1e-9


def test_proxy() -> None:
    out = bench("proxy.py", "--quick", "--engines", "light")
    (light,) = out["results"]
    assert light["logging"]["rows_equal_responses"] is True
    assert light["proxied_sequential"]["errors"] == 0


def test_explain() -> None:
    out = bench("explain.py", "--rows", "2", "--repeat", "1", "--engine-in-process")
    assert out["scrutiny_lime"]["scoring_calls"]["max"] == 1
    assert out["scrutiny_contrastive"]["scoring_calls"]["max"] <= 10


def test_dashboard() -> None:
    out = bench(
        "dashboard.py", "--rows", "3000", "--baseline-rows", "500", "--runs", "2", "--history", "10", "--repeat", "1",
        "--backends", "sqlite",
    )  # fmt: skip
    assert out["sqlite"]


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("drift_core.py", ["--rows", "20000", "--sizes", "1000"]),
        ("fairness_core.py", ["--rows", "20000", "--repeat", "1", "--no-db"]),
        ("engine_formats.py", ["--rows", "101", "--repeat", "1"]),
        ("engines_cloud.py", []),
        ("drift_calibration.py", ["--seeds", "1"]),
    ],
)
def test_cores(script: str, args: list[str]) -> None:
    assert bench(script, *args)
