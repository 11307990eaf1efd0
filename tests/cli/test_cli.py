"""The command line: `scrutiny serve` key handling and `scrutiny demo` end to end, as real processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from scrutiny._server import free_port


def _wait(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRUTINY_")}
    return {**env, "SCRUTINY_DATA_DIR": str(data_dir), **extra}


def test_serve_creates_an_admin_key_file_readable_by_the_user_only(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrutiny", "serve", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(f"http://127.0.0.1:{port}", proc)
        key_file = tmp_path / "api_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        r = httpx.get(f"http://127.0.0.1:{port}/v1/data_marts", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert key not in out  # the key is in the file, never printed


def test_serve_takes_the_key_from_the_environment_and_binds_loopback(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrutiny", "serve", "--port", str(port)],
        env=_env(tmp_path, SCRUTINY_API_KEY="scr_from_env_123"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(f"http://127.0.0.1:{port}", proc)
        assert (
            httpx.get(
                f"http://127.0.0.1:{port}/v1/bindings", headers={"Authorization": "Bearer scr_from_env_123"}
            ).status_code
            == 200
        )
        assert (tmp_path / "api_key").read_text().strip() == "scr_from_env_123"
        out = (
            subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
            if Path("/usr/bin/ss").exists() or Path("/bin/ss").exists()
            else ""
        )
        if out:
            lines = [line for line in out.splitlines() if f":{port} " in line]
            assert lines and all("127.0.0.1" in line for line in lines)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_demo_runs_and_logs_payloads(tmp_path: Path) -> None:
    port = free_port()
    r = subprocess.run(
        [sys.executable, "-m", "scrutiny", "demo", "--duration", "8", "--rate", "10", "--port", str(port)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "API and docs" in r.stdout and "/docs" in r.stdout
    done = [line for line in r.stdout.splitlines() if line.startswith("Done:")]
    assert done, r.stdout
    scored = int(done[0].split()[1])
    stored = int(done[0].split(",")[1].split()[0])
    assert stored == scored >= 10  # every request the demo scored was logged (10/s, fewer on a loaded machine)
    assert (tmp_path / "scrutiny.db").exists()


def test_serve_on_https_with_a_certificate_and_its_key(tmp_path: Path) -> None:
    import ssl

    from tests.support.tls import self_signed

    cert, key = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    port = free_port()
    half = subprocess.run(
        [sys.executable, "-m", "scrutiny", "serve", "--port", str(port), "--tls-cert", str(cert)],
        env=_env(tmp_path / "a"),
        capture_output=True,
        timeout=60,
    )
    assert half.returncode != 0 and b"--tls-key" in half.stderr
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scrutiny",
            "serve",
            "--port",
            str(port),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        env=_env(tmp_path / "b"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/health", verify=trust, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert r.status_code == 200
        try:
            plain = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code
        except httpx.HTTPError:
            plain = None
        assert plain != 200  # https only
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert f"https://127.0.0.1:{port}" in out
