"""Engine servers run from their own virtualenvs (MLflow, MLServer, KServe) for the `servers` tests.

The venvs are built by ``scripts/engine-venvs.sh``. A test finds a venv's Python through
``SCRUTINY_<NAME>_PYTHON``, else at the script's default place; when neither exists it skips
and names the variable. Each server is a child process on a free loopback port, polled until
ready and killed (its whole process group) at the end.

A busy machine must slow these tests down, never fail them: servers start at most as many at a
time as there are cores (``start_all``), each waits for readiness up to ``READY_TIMEOUT``, a
bound on hangs rather than an expectation of speed, and the modules that start them time only
their test bodies (``SERVER_TESTS``), so a slow start is not charged to the first test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVERS = ROOT / "tests" / "servers"

# Quiet, an engine server is ready in seconds; on a loaded 2-core machine, minutes. Only a hang
# takes longer (a server that exits fails at once, with its log).
READY_TIMEOUT = float(os.environ.get("SCRUTINY_SERVER_READY_TIMEOUT", "900"))

# The pytest marks of a module that starts engine servers: `servers`, and pytest-timeout's
# limit on the test bodies only; the fixtures' own waits bound the start.
SERVER_TESTS = [pytest.mark.servers, pytest.mark.timeout(func_only=True)]


def venv_python(name: str) -> Path:
    var = f"SCRUTINY_{name.upper().replace('-', '_')}_PYTHON"
    given = os.environ.get(var)
    base = Path(os.environ.get("SCRUTINY_ENGINE_VENVS") or Path.home() / ".cache/scrutiny/engine-venvs")
    path = Path(given) if given else base / name / "bin" / "python"
    if not path.exists():
        pytest.skip(f"{var} is not set and {path} does not exist: run `bash scripts/engine-venvs.sh {name}`")
    return path


def venv_env(python: Path, **extra: str) -> dict[str, str]:
    """The child's environment: the venv's bin first on PATH (``mlflow models serve`` execs
    ``uvicorn`` by name), Scrutiny's tree on PYTHONPATH (the demo's training code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONHOME"))}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run(python: Path, *args: str, timeout: float = READY_TIMEOUT, **extra: str) -> None:
    """Run a script in the venv; fail with its output when it fails."""
    r = subprocess.run(
        [str(python), *args], env=venv_env(python, **extra), capture_output=True, text=True, timeout=timeout
    )
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")


class ServerProcess:
    """A server child process; ``ready_url`` answers 200 once it serves."""

    def __init__(
        self, argv: list[str], env: dict[str, str], ready_url: str, log: Path, cwd: Path | None = None
    ) -> None:
        self.argv = argv
        self.ready_url = ready_url
        self.log = log
        self._log = log.open("wb")
        self.started = time.monotonic()
        self.ready_after: float | None = None
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT, method: str = "GET", body: Any = None) -> ServerProcess:
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited {self.proc.returncode} before it was ready:\n{self.tail()}")
            try:
                r = httpx.request(method, self.ready_url, json=body, timeout=2.0)
                if r.status_code == 200:
                    self.ready_after = time.monotonic() - self.started
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.ready_url} not ready within {timeout:g} s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        self._log.flush()
        return self.log.read_bytes()[-n:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:  # the server's own session: workers it forked (MLflow's job runners) go too
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self._log.close()

    def kill(self) -> None:
        """Die abruptly, like a crashed engine."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def start_all(
    starts: Mapping[str, Callable[[], ServerProcess]], started: list[ServerProcess], at_once: int | None = None
) -> dict[str, ServerProcess]:
    """Start servers ``at_once`` at a time (default: one per core) and wait until each is ready.

    Started all together, six servers share the cores six ways and none is ready until all
    nearly are; in turns, each gets its share and is ready sooner. Every started server is
    appended to ``started`` (also when another fails), for the caller to stop.
    """
    lock = threading.Lock()

    def start(name: str) -> tuple[str, ServerProcess]:
        server = starts[name]()
        with lock:
            started.append(server)
        return name, server.wait_ready()

    with ThreadPoolExecutor(at_once or os.cpu_count() or 2) as pool:
        return dict(pool.map(start, starts))


def report_start(name: str, server: ServerProcess) -> None:
    """Start times go to ``$SCRUTINY_SERVER_TIMES`` when set (measurements for the docs)."""
    path = os.environ.get("SCRUTINY_SERVER_TIMES")
    if path and server.ready_after is not None:
        with open(path, "a") as f:
            f.write(f"{name}\t{server.ready_after:.2f}\n")
